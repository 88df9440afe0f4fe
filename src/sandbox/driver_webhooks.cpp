// The webhook deliverer: signed deliveries to the partner's webhook URL, each recorded in
// state.webhooks (for the inspector) and in the exchange log, retried with exponential backoff
// by one background worker, which also runs the finalization sweep of uninstalled
// installations.
#include <algorithm>
#include <chrono>

#include "sandbox/driver_internal.h"
#include "util/crypto.h"
#include "util/log.h"

namespace wharf::sandbox::detail {

namespace {

// state.webhooks keeps the finished deliveries for the inspector, but not forever.
constexpr size_t kMaxWebhookRecords = 1000;

std::string now_iso(const Context& ctx) {
  return util::format_iso8601_ms(ctx.clock.now_ms());
}

}  // namespace

std::string WebhookDeliverer::webhook_url() const {
  if (!ctx_.config.webhook_url.empty()) return ctx_.config.webhook_url;
  return partner_base(ctx_.config) + "/webhooks/vercel";
}

std::string WebhookDeliverer::send(const std::string& flow, const std::string& type,
                                   const Json& payload) {
  Delivery d = new_delivery(flow, type, payload, false);
  std::string id = d.id;
  enqueue(std::move(d));
  return id;
}

void WebhookDeliverer::clock_moved() {
  {
    std::lock_guard<std::mutex> lock(mu_);
    clock_moved_ = true;
  }
  cv_.notify_all();
}

void WebhookDeliverer::start() {
  {
    std::lock_guard<std::mutex> lock(mu_);
    if (worker_.joinable()) return;
    stopping_ = false;
  }
  requeue_persisted();
  worker_ = std::thread([this] { run_worker(); });
}

void WebhookDeliverer::stop() {
  {
    std::lock_guard<std::mutex> lock(mu_);
    stopping_ = true;
  }
  cv_.notify_all();
  if (worker_.joinable()) worker_.join();
}

Delivery WebhookDeliverer::new_delivery(const std::string& flow, const std::string& type,
                                        const Json& payload, bool bad_signature) {
  Delivery d;
  d.id = "whd_" + random_alnum(24);
  d.type = type;
  d.flow = flow;
  d.bad_signature = bad_signature;
  Json envelope = {{"id", d.id},
                   {"type", type},
                   {"createdAt", ctx_.clock.now_ms()},
                   {"region", nullptr},
                   {"payload", payload}};
  d.body = dump(envelope);
  d.due = SteadyClock::now();
  d.due_ms = ctx_.clock.now_ms();
  Json rec = {{"id", d.id},
              {"type", type},
              {"status", "pending"},
              {"attempts", 0},
              {"lastStatus", nullptr},
              {"createdAt", now_iso(ctx_)},
              {"badSignature", bad_signature},
              {"flow", flow},
              {"body", d.body}};
  ctx_.state.mutate_in({"webhooks"}, [&](Json& doc) {
    Json& list = doc["webhooks"];
    if (!list.is_array()) list = Json::array();
    list.push_back(rec);
    // Drop the oldest finished deliveries beyond the cap; pending ones stay.
    size_t excess = list.size() > kMaxWebhookRecords ? list.size() - kMaxWebhookRecords : 0;
    for (auto it = list.begin(); excess > 0 && it != list.end();) {
      if (it->value("status", "") != "pending") {
        it = list.erase(it);
        --excess;
      } else {
        ++it;
      }
    }
  });
  return d;
}

WebhookDeliverer::Attempt WebhookDeliverer::attempt(Delivery& d) {
  Attempt out;
  std::string url;
  try {
    url = webhook_url();
  } catch (const ApiError& e) {
    out.error = e.message;
  }
  std::string key = d.bad_signature ? "not-the-client-secret" : ctx_.config.client_secret;
  std::string signature = util::to_hex(util::hmac_sha1(key, d.body));
  std::vector<std::pair<std::string, std::string>> headers = {{"Content-Type", "application/json"},
                                                              {"x-vercel-signature", signature}};
  net::HttpResult res;
  auto started = SteadyClock::now();
  if (out.error.empty()) res = ctx_.http.request("POST", url, headers, d.body);
  double ms = std::chrono::duration<double, std::milli>(SteadyClock::now() - started).count();
  if (!out.error.empty()) res.error = out.error;
  ++d.attempts;

  out.status = res.status;
  out.error = res.error;
  std::string content_type;
  for (const auto& [name, value] : res.headers)
    if (name == "content-type") content_type = value;
  out.response = Recorder::parse_body(content_type, res.body);
  out.delivered = res.ok();
  if (!res.error.empty()) {
    out.findings.push_back("transport: " + res.error);
  } else {
    out.findings = check_partner_response("webhook", res.status, content_type, res.body);
    if (d.bad_signature && out.delivered)
      out.findings.push_back(
          "x-vercel-signature: the partner accepted a delivery whose "
          "signature is wrong (it must answer 401/403 and ignore it)");
    if (!d.bad_signature && (res.status == 401 || res.status == 403))
      out.findings.push_back(
          "x-vercel-signature: the partner rejected a correctly signed "
          "delivery (HMAC-SHA1 of the raw body with the client secret)");
  }

  out.exchange_id =
      recorder_.record("webhook", d.flow, "POST", url, headers, d.body, res, ms, out.findings);
  return out;
}

bool WebhookDeliverer::settle(Delivery& d, const Attempt& at) {
  // A deliberately bad signature is a one-off probe: Vercel never sends one, so never
  // retries one either.
  bool retry = !at.delivered && !d.bad_signature && d.attempts < ctx_.config.webhook_max_attempts;
  std::string status = at.delivered ? "delivered" : retry ? "pending" : "failed";
  std::string now = now_iso(ctx_);
  ctx_.state.mutate_in({"webhooks"}, [&](Json& doc) {
    Json& list = doc["webhooks"];
    if (!list.is_array()) return;
    for (auto& rec : list) {
      if (!rec.is_object() || rec.value("id", "") != d.id) continue;
      rec["attempts"] = d.attempts;
      rec["lastStatus"] = at.status == 0 ? Json() : Json(at.status);
      rec["status"] = status;
      rec["lastAttemptAt"] = now;
      if (!at.error.empty()) rec["lastError"] = at.error;
      if (!rec["exchanges"].is_array()) rec["exchanges"] = Json::array();
      rec["exchanges"].push_back(at.exchange_id);
      if (status != "pending") rec.erase("body");
    }
  });
  if (retry) {
    int64_t shift = std::min<int64_t>(d.attempts - 1, 20);
    int64_t delay = std::max<int64_t>(ctx_.config.webhook_first_retry_ms, 1) << shift;
    d.due = SteadyClock::now() + std::chrono::milliseconds(delay);
    d.due_ms = ctx_.clock.now_ms() + delay;
  }
  return retry;
}

void WebhookDeliverer::enqueue(Delivery d) {
  {
    std::lock_guard<std::mutex> lock(mu_);
    queue_.push_back(std::move(d));
  }
  cv_.notify_all();
}

Json WebhookDeliverer::deliver_now(const std::string& flow, const std::string& type,
                                   const Json& payload, bool bad_signature) {
  Delivery d = new_delivery(flow, type, payload, bad_signature);
  Attempt at = attempt(d);
  bool retry = settle(d, at);
  Json out = {{"id", d.id},
              {"type", type},
              {"ok", at.delivered},
              {"status", at.status},
              {"response", at.response},
              {"exchange", at.exchange_id},
              {"findings", at.findings},
              {"attempts", d.attempts},
              {"retrying", retry},
              {"signature", bad_signature ? "bad" : "good"}};
  if (!at.error.empty()) out["error"] = at.error;
  if (retry) enqueue(std::move(d));
  return out;
}

int WebhookDeliverer::finalize_expired() {
  int64_t now = ctx_.clock.now_ms();
  std::string now_text = util::format_iso8601_ms(now);
  return ctx_.state.mutate_in({"installations"}, [&](Json& doc) {
    int count = 0;
    Json& all = doc["installations"];
    if (!all.is_object()) return 0;
    for (auto& inst : all) {
      if (!inst.is_object() || inst.value("status", "") != "pending_deletion") continue;
      int64_t deleted = 0;
      if (!util::parse_iso8601(str_member(inst, "deletedAt"), &deleted)) continue;
      if (deleted + ctx_.config.finalization_window_ms > now) continue;
      inst["status"] = "finalized";
      inst["finalizedAt"] = now_text;
      ++count;
    }
    return count;
  });
}

void WebhookDeliverer::requeue_persisted() {
  std::vector<Delivery> pending = ctx_.state.read([&](const Json& doc) {
    std::vector<Delivery> out;
    const Json* list = member(doc, "webhooks");
    if (!list || !list->is_array()) return out;
    for (const auto& rec : *list) {
      if (!rec.is_object() || rec.value("status", "") != "pending" || !rec.contains("body"))
        continue;
      Delivery d;
      d.id = str_member(rec, "id");
      d.type = str_member(rec, "type");
      d.flow = str_member(rec, "flow");
      d.body = str_member(rec, "body");
      d.bad_signature = rec.value("badSignature", false);
      d.attempts = rec.value("attempts", int64_t{0});
      d.due = SteadyClock::now();
      d.due_ms = ctx_.clock.now_ms();
      out.push_back(std::move(d));
    }
    return out;
  });
  std::lock_guard<std::mutex> lock(mu_);
  for (auto& d : pending) {
    bool queued =
        std::any_of(queue_.begin(), queue_.end(), [&](const Delivery& q) { return q.id == d.id; });
    if (!queued) queue_.push_back(std::move(d));
  }
}

void WebhookDeliverer::run_worker() {
  auto next_finalize_check = SteadyClock::now();
  std::unique_lock<std::mutex> lock(mu_);
  while (!stopping_) {
    auto now = SteadyClock::now();
    int64_t now_ms = ctx_.clock.now_ms();
    if (clock_moved_) {
      clock_moved_ = false;
      next_finalize_check = now;
    }
    if (now >= next_finalize_check) {
      lock.unlock();
      try {
        finalize_expired();
      } catch (const std::exception& e) {
        util::log_warn("sandbox finalization check failed").str("error", e.what());
      }
      lock.lock();
      next_finalize_check = SteadyClock::now() + std::chrono::seconds(1);
      continue;
    }
    // The delivery due first, on whichever of its two clocks comes first.
    auto wake_of = [&](const Delivery& d) {
      return std::min(d.due,
                      now + std::chrono::milliseconds(std::max<int64_t>(0, d.due_ms - now_ms)));
    };
    auto due = std::min_element(
        queue_.begin(), queue_.end(),
        [&](const Delivery& x, const Delivery& y) { return wake_of(x) < wake_of(y); });
    if (due != queue_.end() && wake_of(*due) <= now) {
      Delivery d = std::move(*due);
      queue_.erase(due);
      lock.unlock();
      bool retry = false;
      try {
        Attempt at = attempt(d);
        retry = settle(d, at);
      } catch (const std::exception& e) {
        util::log_warn("sandbox webhook delivery failed").str("id", d.id).str("error", e.what());
      }
      lock.lock();
      if (retry) queue_.push_back(std::move(d));
      continue;
    }
    auto wake = next_finalize_check;
    if (due != queue_.end()) wake = std::min(wake, wake_of(*due));
    cv_.wait_until(lock, wake);
  }
}

}  // namespace wharf::sandbox::detail
