#include "vercel/outbox.h"

#include <algorithm>
#include <chrono>
#include <cmath>

#include <unistd.h>

#include "util/crypto.h"
#include "util/ids.h"
#include "util/log.h"

namespace wharf::vercel {

using model::Json;

Outbox::Outbox(store::Store& store, net::HttpClient& http, std::string base_url, TokenFn token,
               const util::Clock& clock, Options options)
    : store_(store),
      client_(http, std::move(base_url)),
      token_(std::move(token)),
      clock_(clock),
      options_(options) {
  if (options_.shared && options_.owner.empty())
    options_.owner = "replica-" + std::to_string(::getpid()) + "-" + util::random_token(9);
}

std::vector<store::OutboxRow> Outbox::due_heads(int64_t now_ms) {
  std::vector<store::OutboxRow> heads;
  if (options_.shared)
    store_.write([&](store::WriteTx& tx) {
      heads = store::claim_outbox_heads(tx, options_.owner, options_.batch, now_ms,
                                        now_ms + options_.lease_ms);
    });
  else
    store_.read([&](store::ReadTx& tx) { heads = tx.outbox_heads(options_.batch, now_ms); });
  return heads;
}

Outbox::~Outbox() {
  stop();
}

void Outbox::enqueue(store::WriteTx& tx, const std::string& installation_id, const Call& call,
                     int64_t now_ms, const std::string& lane) {
  store::OutboxRow row;
  row.id = util::new_id("obx");
  row.installation_id = installation_id;
  row.lane = lane;
  row.kind = call.kind;
  row.method = call.method;
  row.path = call.path;
  row.body = call.body ? call.body->dump() : "";
  row.next_attempt_ms = now_ms;
  row.created_ms = now_ms;
  tx.insert_outbox(row);
}

void Outbox::enqueue(store::WriteTx& tx, const std::string& installation_id, const Call& call,
                     std::string body_json, int64_t now_ms) {
  store::OutboxRow row;
  row.id = util::new_id("obx");
  row.installation_id = installation_id;
  row.kind = call.kind;
  row.method = call.method;
  row.path = call.path;
  row.body = std::move(body_json);
  row.next_attempt_ms = now_ms;
  row.created_ms = now_ms;
  tx.insert_outbox(row);
}

void Outbox::enqueue_event(store::WriteTx& tx, const std::string& installation_id,
                           const Json& event, int64_t now_ms) {
  enqueue(tx, installation_id, api::create_event(installation_id, event), now_ms);
}

void Outbox::enqueue_resource_updated(store::WriteTx& tx, const store::ResourceRow& row,
                                      int64_t now_ms) {
  enqueue_event(
      tx, row.installation_id,
      Json{{"type", "resource.updated"}, {"productId", row.product_id}, {"resourceId", row.id}},
      now_ms);
}

void Outbox::enqueue_product_call(store::WriteTx& tx, const std::string& installation_id,
                                  const std::string& resource_id, const std::string& what,
                                  const Json& body, int64_t now_ms) {
  store::OutboxRow row;
  row.id = util::new_id("obx");
  row.installation_id = installation_id;
  row.lane = "resource:" + resource_id;
  row.kind = "product." + what;
  row.method = "PRODUCT";
  row.path = resource_id;
  row.body = body.dump();
  row.next_attempt_ms = now_ms;
  row.created_ms = now_ms;
  tx.insert_outbox(row);
}

int64_t Outbox::backoff_ms(const store::OutboxRow& item, const net::HttpResult& result) const {
  // Exponential with "equal jitter": half fixed, half random, so retries of many items
  // spread out instead of arriving together.
  double exp =
      std::min(static_cast<double>(options_.max_backoff_ms),
               static_cast<double>(options_.base_backoff_ms) *
                   std::pow(2.0, static_cast<double>(std::max<int64_t>(0, item.attempts - 1))));
  unsigned char r = static_cast<unsigned char>(util::random_bytes(1)[0]);
  auto delay = static_cast<int64_t>(exp / 2 + exp / 2 * (r / 255.0));
  int64_t now = clock_.now_ms();
  for (const auto& [name, value] : result.headers) {
    if (name != "retry-after") continue;
    try {
      delay = std::max<int64_t>(delay, std::stoll(value) * 1000);
    } catch (const std::exception&) {
      // An HTTP-date Retry-After: the exponential delay stands.
    }
  }
  auto body = Json::parse(result.body, nullptr, false);
  if (body.is_object() && body.contains("error") && body["error"].is_object() &&
      body["error"].contains("limit") && body["error"]["limit"].is_object()) {
    const Json& limit = body["error"]["limit"];
    if (limit.contains("resetMs") && limit["resetMs"].is_number())
      delay = std::max<int64_t>(delay, limit["resetMs"].get<int64_t>() - now);
    else if (limit.contains("reset") && limit["reset"].is_number())
      delay = std::max<int64_t>(delay, limit["reset"].get<int64_t>() * 1000 - now);
  }
  return std::min(delay, options_.max_backoff_ms);
}

Outbox::Attempt Outbox::attempt(store::OutboxRow item) const {
  int64_t now = clock_.now_ms();
  item.attempts += 1;
  const bool product_call = item.kind.rfind("product.", 0) == 0;
  // A product call needs no Vercel token (an empty one stands for "may be sent").
  auto token = product_call ? std::optional<std::string>("") : token_(item.installation_id);
  net::HttpResult result;
  if (product_call) {
    if (product_calls_)
      result = product_calls_(item);
    else
      result.error = "no product calls on this server";
  } else if (token) {
    auto handler = handlers_.find(item.kind);
    result = handler != handlers_.end() ? handler->second(item, client_, *token)
                                        : client_.request(item.method, item.path, item.body, token);
  }
  Attempt a;
  a.now_ms = now;
  a.vercel_id = vercel_id_of(result);
  item.last_status = result.status;
  item.last_error = token ? result.error : "the installation has no access token (finalized)";

  int s = result.status;
  const DeliveryPolicy policy = delivery_policy(item.kind);
  bool retry = token && (!result.error.empty() || s == 429 || s >= 500 ||
                         (s == 409 && policy.conflict_is_retried));
  // Already there (an earlier attempt's answer got lost): delivered, and not sent twice.
  bool already =
      token && result.error.empty() &&
      ((s == 409 && policy.conflict_is_delivered) || (s == 404 && policy.not_found_is_done));
  if (already || (token && result.error.empty() && s >= 200 && s < 300)) {
    item.state = "delivered";
    item.done_ms = now;
  } else if (retry && now - item.created_ms < options_.give_up_after_ms) {
    item.next_attempt_ms = now + backoff_ms(item, result);
  } else {
    item.state = "dead";
    item.done_ms = now;
    item.response_body = result.body.substr(0, 64 * 1024);
    if (!product_call && policy.to_vercel &&
        (s == 401 || s == 403 || s == 410 || (s == 404 && policy.installation_scoped))) {
      item.last_error = "installation gone (Vercel answered " + std::to_string(s) + ")";
      a.gone = true;
    }
  }
  a.item = std::move(item);
  a.response = std::move(result.body);
  return a;
}

std::optional<Outbox::Attempt> Outbox::attempt_logged(store::OutboxRow item) const {
  std::string id = item.id;
  try {
    return attempt(std::move(item));
  } catch (const std::exception& e) {
    // Nothing to record: the call stays pending and is tried again.
    util::log_error("vercel outbox delivery failed").str("id", id).str("error", e.what());
    return std::nullopt;
  }
}

void Outbox::record_in(store::WriteTx& tx, const Attempt& a) {
  tx.update_outbox(a.item);
  if (options_.shared) tx.release_outbox_lease(a.item.ordering_key(), options_.owner);
  if (a.item.state == "delivered" && hooks_.delivered) hooks_.delivered(tx, a.item, a.response);
  if (a.gone && hooks_.gone) hooks_.gone(tx, a.item, a.now_ms);
}

std::vector<bool> Outbox::record(const std::vector<Attempt>& batch) {
  std::vector<bool> recorded(batch.size(), false);
  if (batch.empty()) return recorded;
  try {
    store_.write([&](store::WriteTx& tx) {
      for (const auto& a : batch) record_in(tx, a);
    });
    recorded.assign(batch.size(), true);
    return recorded;
  } catch (const std::exception& e) {
    if (batch.size() == 1) {
      util::log_error("vercel outbox delivery failed")
          .str("id", batch[0].item.id)
          .str("error", e.what());
      return recorded;
    }
    util::log_warn("vercel outbox: recording outcomes together failed, recording one by one")
        .num("outcomes", static_cast<int64_t>(batch.size()))
        .str("error", e.what());
  }
  for (size_t i = 0; i < batch.size(); ++i) {
    try {
      store_.write([&](store::WriteTx& tx) { record_in(tx, batch[i]); });
      recorded[i] = true;
    } catch (const std::exception& e) {
      // Not recorded: the call stays pending and is sent again.
      util::log_error("vercel outbox delivery failed")
          .str("id", batch[i].item.id)
          .str("error", e.what());
    }
  }
  return recorded;
}

void Outbox::finish(const Attempt& a) {
  const store::OutboxRow& item = a.item;
  // Counted once recorded: a reader of delivered_total() then sees the row delivered too.
  if (item.state == "delivered") delivered_.fetch_add(1);
  if (hooks_.after_commit) {
    try {
      hooks_.after_commit(item);
    } catch (const std::exception& e) {
      util::log_error("outbox after-commit hook failed").str("id", item.id).str("error", e.what());
    }
  }
  auto line = util::Log(item.state == "dead" ? util::LogLevel::kWarn : util::LogLevel::kInfo,
                        "vercel outbox delivery");
  line.str("id", item.id)
      .str("installation", item.installation_id)
      .str("kind", item.kind)
      .str("path", item.path)
      .num("status", item.last_status)
      .num("attempt", item.attempts)
      .str("state", item.state)
      .str("x_vercel_id", a.vercel_id)
      .str("error", item.last_error);
}

int Outbox::deliver_due() {
  std::vector<store::OutboxRow> heads = due_heads(clock_.now_ms());
  int64_t before = delivered_.load();
  // Heads are of distinct lanes: sent side by side, max_in_flight at a time, and their
  // outcomes recorded together once all are answered.
  std::vector<std::optional<Attempt>> answers(heads.size());
  size_t width = std::max<size_t>(1, options_.max_in_flight);
  std::atomic<size_t> next{0};
  auto work = [&] {
    for (size_t i = next++; i < heads.size(); i = next++)
      answers[i] = attempt_logged(std::move(heads[i]));
  };
  std::vector<std::thread> helpers;
  for (size_t t = 1; t < std::min(width, heads.size()); ++t) helpers.emplace_back(work);
  work();
  for (auto& t : helpers) t.join();
  std::vector<Attempt> batch;
  for (auto& a : answers)
    if (a) batch.push_back(std::move(*a));
  auto recorded = record(batch);
  for (size_t i = 0; i < batch.size(); ++i)
    if (recorded[i]) finish(batch[i]);
  return static_cast<int>(delivered_.load() - before);
}

void Outbox::run_sender() {
  std::unique_lock<std::mutex> lock(mu_);
  while (true) {
    work_cv_.wait(lock, [this] { return stop_ || !queue_.empty(); });
    if (queue_.empty()) return;  // stopping, nothing left to send
    store::OutboxRow item = std::move(queue_.front());
    queue_.pop_front();
    lock.unlock();
    std::string lane = item.ordering_key();
    std::string id = item.id;
    std::optional<Attempt> answer = attempt_logged(std::move(item));
    lock.lock();
    --sending_;
    if (answer) {
      answered_.push_back(std::move(*answer));
      record_cv_.notify_one();
    } else {
      busy_.erase(lane);  // nothing to record: the call stays pending
      finished_.insert(id);
    }
    cv_.notify_one();  // a sender is free
  }
}

void Outbox::run_recorder() {
  std::unique_lock<std::mutex> lock(mu_);
  while (true) {
    record_cv_.wait(lock, [this] { return senders_done_ || !answered_.empty(); });
    if (answered_.empty()) return;  // the senders are done and everything is recorded
    // Everything answered since the last commit goes in the next one.
    std::vector<Attempt> batch;
    batch.swap(answered_);
    lock.unlock();
    auto recorded = record(batch);
    lock.lock();
    // Lanes free again only now: their next call goes out after this one's outcome committed
    // (or, if it could not be recorded, the same call goes out again).
    for (const auto& a : batch) {
      busy_.erase(a.item.ordering_key());
      finished_.insert(a.item.id);
    }
    cv_.notify_one();
    lock.unlock();
    for (size_t i = 0; i < batch.size(); ++i)
      if (recorded[i]) finish(batch[i]);
    lock.lock();
  }
}

void Outbox::run_dispatcher() {
  using Steady = std::chrono::steady_clock;
  const size_t width = std::max<size_t>(1, options_.max_in_flight);
  // A read of the due heads costs about the same however few heads it finds (the store
  // looks at every pending row), so once a read's heads are handed out the dispatcher reads
  // again only when that pays: at once when woken (an enqueue) or at the poll; when lanes came
  // free since the last read, at once if they are at least `width` (enough to fill every
  // sender) or nothing is out any more, and otherwise once 4 times the last read's duration
  // has passed since it (so reads take at most about a fifth of the dispatcher's time).
  Steady::time_point last_read_end{};
  Steady::duration last_read_cost{};
  std::unique_lock<std::mutex> lock(mu_);
  while (!stop_) {
    // Hand out the heads of the last read whose lanes are free.
    while (sending_ < width && !ready_.empty()) {
      store::OutboxRow head = std::move(ready_.front());
      ready_.pop_front();
      // A lane still busy: its head was read while its call was out (or, committed by now,
      // is a newer head the next read finds again).
      if (busy_.count(head.ordering_key()) || finished_.count(head.id)) continue;
      busy_.insert(head.ordering_key());
      queue_.push_back(std::move(head));
      ++sending_;
      work_cv_.notify_one();
    }
    if (sending_ >= width) {
      cv_.wait(lock, [&] { return stop_ || sending_ < width; });
      continue;
    }
    // ready_ is empty and a sender is free.
    const auto now = Steady::now();
    const auto poll_at = last_read_end + std::chrono::milliseconds(options_.poll_ms);
    const auto paced_at = last_read_end + 4 * last_read_cost;
    const bool read_now =
        woken_ || now >= poll_at ||
        (!finished_.empty() && (finished_.size() >= width || busy_.empty() || now >= paced_at));
    if (!read_now) {
      // Until a call finishes or is recorded, an enqueue wakes us, or the pacing or poll ends.
      auto until = finished_.empty() ? poll_at : std::min(poll_at, paced_at);
      cv_.wait_until(lock, until);
      continue;
    }
    finished_.clear();  // from here on, a call that finishes is one the read may predate
    woken_ = false;
    lock.unlock();
    std::vector<store::OutboxRow> heads;
    const auto read_start = Steady::now();
    try {
      heads = due_heads(clock_.now_ms());
    } catch (const std::exception& e) {
      util::log_error("vercel outbox pass failed").str("error", e.what());
    }
    last_read_end = Steady::now();
    last_read_cost = last_read_end - read_start;
    lock.lock();
    ready_.assign(std::make_move_iterator(heads.begin()), std::make_move_iterator(heads.end()));
  }
}

void Outbox::start() {
  if (worker_.joinable()) return;
  size_t width = std::max<size_t>(1, options_.max_in_flight);
  for (size_t i = 0; i < width; ++i) senders_.emplace_back([this] { run_sender(); });
  recorder_ = std::thread([this] { run_recorder(); });
  worker_ = std::thread([this] { run_dispatcher(); });
}

void Outbox::wake() {
  {
    std::lock_guard<std::mutex> lock(mu_);
    woken_ = true;
  }
  cv_.notify_one();
}

bool Outbox::wait_idle(int64_t timeout_ms) {
  auto deadline = std::chrono::steady_clock::now() + std::chrono::milliseconds(timeout_ms);
  while (true) {
    bool due = false;
    int64_t now = clock_.now_ms();
    store_.read([&](store::ReadTx& tx) { due = !tx.outbox_heads(1, now).empty(); });
    if (!due) return true;
    if (std::chrono::steady_clock::now() >= deadline) return false;
    wake();
    std::this_thread::sleep_for(std::chrono::milliseconds(20));
  }
}

void Outbox::stop() {
  {
    std::lock_guard<std::mutex> lock(mu_);
    stop_ = true;
  }
  cv_.notify_all();
  work_cv_.notify_all();
  if (worker_.joinable()) worker_.join();
  // Calls already handed out are finished (each is a bounded HTTP call) and their outcomes
  // recorded, never abandoned half-recorded.
  for (auto& t : senders_) t.join();
  senders_.clear();
  {
    std::lock_guard<std::mutex> lock(mu_);
    senders_done_ = true;
  }
  record_cv_.notify_all();
  if (recorder_.joinable()) recorder_.join();
}

}  // namespace wharf::vercel
