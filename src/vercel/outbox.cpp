#include "vercel/outbox.h"

#include <algorithm>
#include <chrono>
#include <cmath>

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
      options_(options) {}

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

void Outbox::deliver(store::OutboxRow item) {
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
  std::string vercel_id = vercel_id_of(result);
  item.last_status = result.status;
  item.last_error = token ? result.error : "the installation has no access token (finalized)";

  int s = result.status;
  const DeliveryPolicy policy = delivery_policy(item.kind);
  bool retry = token && (!result.error.empty() || s == 429 || s >= 500 ||
                         (s == 409 && policy.conflict_is_retried));
  // Already there (an earlier attempt's answer got lost): delivered, and not sent twice.
  bool already = token && result.error.empty() && s == 409 && policy.conflict_is_delivered;
  bool gone = false;
  if (already || (token && result.error.empty() && s >= 200 && s < 300)) {
    item.state = "delivered";
    item.done_ms = now;
  } else if (retry && now - item.created_ms < options_.give_up_after_ms) {
    item.next_attempt_ms = now + backoff_ms(item, result);
  } else {
    item.state = "dead";
    item.done_ms = now;
    item.response_body = result.body.substr(0, 64 * 1024);
    if (!product_call &&
        (s == 401 || s == 403 || s == 410 || (s == 404 && policy.installation_scoped))) {
      item.last_error = "installation gone (Vercel answered " + std::to_string(s) + ")";
      gone = true;
    }
  }
  store_.write([&](store::WriteTx& tx) {
    tx.update_outbox(item);
    if (item.state == "delivered" && hooks_.delivered) hooks_.delivered(tx, item, result.body);
    if (gone && hooks_.gone) hooks_.gone(tx, item, now);
  });
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
      .num("status", s)
      .num("attempt", item.attempts)
      .str("state", item.state)
      .str("x_vercel_id", vercel_id)
      .str("error", item.last_error);
}

void Outbox::deliver_logged(store::OutboxRow item) {
  std::string id = item.id;
  try {
    deliver(std::move(item));
  } catch (const std::exception& e) {
    // Its outcome was not recorded: the call stays pending and is tried again.
    util::log_error("vercel outbox delivery failed").str("id", id).str("error", e.what());
  }
}

int Outbox::deliver_due() {
  std::vector<store::OutboxRow> heads;
  int64_t now = clock_.now_ms();
  store_.read([&](store::ReadTx& tx) { heads = tx.outbox_heads(options_.batch, now); });
  int64_t before = delivered_.load();
  // Heads are of distinct lanes: delivered side by side, max_in_flight at a time.
  size_t width = std::max<size_t>(1, options_.max_in_flight);
  std::atomic<size_t> next{0};
  auto work = [&] {
    for (size_t i = next++; i < heads.size(); i = next++) deliver_logged(std::move(heads[i]));
  };
  std::vector<std::thread> helpers;
  for (size_t t = 1; t < std::min(width, heads.size()); ++t) helpers.emplace_back(work);
  work();
  for (auto& t : helpers) t.join();
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
    deliver_logged(std::move(item));
    lock.lock();
    busy_.erase(lane);
    finished_.insert(id);
    woken_ = true;
    cv_.notify_one();
  }
}

void Outbox::run_dispatcher() {
  const size_t width = std::max<size_t>(1, options_.max_in_flight);
  std::unique_lock<std::mutex> lock(mu_);
  while (!stop_) {
    if (busy_.size() >= width) {
      cv_.wait(lock, [&] { return stop_ || busy_.size() < width; });
      continue;
    }
    finished_.clear();  // from here on, a call that finishes is one the read may predate
    woken_ = false;
    lock.unlock();
    std::vector<store::OutboxRow> heads;
    try {
      int64_t now = clock_.now_ms();
      store_.read([&](store::ReadTx& tx) { heads = tx.outbox_heads(options_.batch, now); });
    } catch (const std::exception& e) {
      util::log_error("vercel outbox pass failed").str("error", e.what());
    }
    lock.lock();
    size_t dispatched = 0;
    for (auto& head : heads) {
      if (busy_.size() >= width) break;
      if (busy_.count(head.ordering_key()) || finished_.count(head.id)) continue;
      busy_.insert(head.ordering_key());
      queue_.push_back(std::move(head));
      ++dispatched;
    }
    if (dispatched) work_cv_.notify_all();
    // Nothing new to send: sleep until a call finishes, an enqueue wakes us, or the poll.
    if (!dispatched || busy_.size() >= width)
      cv_.wait_for(lock, std::chrono::milliseconds(options_.poll_ms),
                   [this] { return stop_ || woken_; });
  }
}

void Outbox::start() {
  if (worker_.joinable()) return;
  size_t width = std::max<size_t>(1, options_.max_in_flight);
  for (size_t i = 0; i < width; ++i) senders_.emplace_back([this] { run_sender(); });
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
  // Calls already handed out are finished (each is a bounded HTTP call), never abandoned
  // half-recorded.
  for (auto& t : senders_) t.join();
  senders_.clear();
}

}  // namespace wharf::vercel
