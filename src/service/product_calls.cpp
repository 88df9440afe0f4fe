// ResourceService, the part that talks with products whose work is remote: the product calls
// the outbox retries (provision, change, remove) and the backend's callbacks (W1–W3 of
// spec/product-protocol.md), and usage measured by the products themselves.
#include <chrono>
#include <cmath>
#include <set>

#include "model/json_check.h"
#include "service/resources.h"
#include "util/log.h"

namespace wharf::service {

using model::ApiError;
using model::Json;

namespace {

net::HttpResult answered(int status, std::string body = "{}", std::string error = "") {
  net::HttpResult r;
  r.status = status;
  r.body = std::move(body);
  r.error = std::move(error);
  return r;
}

product::ResourceChange change_from_json(const Json& j) {
  product::ResourceChange c;
  if (j.contains("name") && j["name"].is_string()) c.name = j["name"].get<std::string>();
  if (j.contains("metadata")) c.metadata = j["metadata"];
  c.plan_changed = j.value("plan", false);
  if (j.contains("status") && j["status"].is_string()) c.status = j["status"].get<std::string>();
  return c;
}

// A backend's Secret[] (W1, W3): each {name, value}, both strings, the name not empty.
void check_secrets(const Json* secrets, model::Checker& check) {
  if (!secrets) return;
  for (size_t i = 0; i < secrets->size(); ++i) {
    const Json& s = (*secrets)[i];
    if (!s.is_object() || !s.contains("name") || !s["name"].is_string() ||
        s["name"].get<std::string>().empty() || !s.contains("value") || !s["value"].is_string())
      check.add(model::Checker::index("secrets", i), "must be {name, value} strings");
  }
}

constexpr size_t kMaxUsageEvents = 1000;
constexpr int64_t kFutureSkewMs = 300 * 1000;

}  // namespace

net::HttpResult ResourceService::deliver_product_call(const store::OutboxRow& item) {
  std::optional<store::ResourceRow> row;
  store_.read([&](store::ReadTx& tx) { row = tx.resource(item.path); });
  if (!row) return answered(200);  // nothing to do for a resource that never was
  Json body = Json::parse(item.body, nullptr, false);
  if (!body.is_object()) body = Json::object();
  product::CallContext ctx;
  ctx.request_id = item.id;
  std::string what = item.kind.substr(std::string("product.").size());
  try {
    product::Product* impl = &product_of(*row);  // a product gone from the catalog: retried
    if (what == "provision") {
      // Finished meanwhile (the request's own call, or W1), failed, or deleted: done.
      if (row->deleted_ms || row->status != "pending") return answered(200);
      ctx.idempotency_key = "provision:" + row->id;
      product::ProductReply reply = impl->provision(info_of(*row), ctx);
      if (reply.pending) return answered(0, "", "the product answered pending");
      finish_provision(row->id, reply, /*push=*/true);
      return answered(200);
    }
    if (what == "change") {
      if (row->deleted_ms) return answered(200);  // a later delete supersedes it
      ctx.idempotency_key = "change:" + item.id;
      product::ProductReply reply = impl->change(info_of(*row), change_from_json(body), ctx);
      if (reply.notification)
        change_resource(row->id, [&](store::WriteTx&, store::ResourceRow& current) {
          current.notification_json = reply.notification->dump();
          return true;
        });
      return answered(200);
    }
    if (what == "transfer") {
      ctx.idempotency_key = "transfer:" + item.id;
      impl->transfer(info_of(*row), body.value("from", ""), body.value("to", ""), ctx);
      return answered(200);
    }
    if (what == "remove") {
      ctx.idempotency_key = "remove:" + row->id;
      impl->remove(info_of(*row), ctx);
      util::log_info("resource removal confirmed by the product").str("resource", row->id);
      return answered(200);
    }
    return answered(422, "{}", "unknown product call " + item.kind);
  } catch (const product::ProductRefused& e) {
    if (what == "provision")
      // Refused after Vercel was told pending: the resource shows the product's error.
      change_resource(row->id, [&](store::WriteTx&, store::ResourceRow& current) {
        if (current.status != "pending") return false;
        current.status = "error";
        current.notification_json = Json{
            {"level", "error"},
            {"title", "Provisioning failed"},
            {"message", e.user_message.value_or(
                            e.what())}}.dump();
        return true;
      });
    Json err = {{"error", {{"code", e.code}, {"message", e.what()}}}};
    return answered(e.status, err.dump());
  } catch (const product::ProductUnavailable& e) {
    return answered(0, "", e.what());
  } catch (const std::exception& e) {
    return answered(0, "", std::string("product call failed: ") + e.what());
  }
}

// ---- callbacks ----

void ResourceService::verify_callback(const std::string& product_id, const std::string& signature,
                                      const std::string& body) const {
  auto it = products_.find(product_id);  // the catalog's products, nothing else
  // An unknown product answers like a bad signature: nothing to learn from probing.
  int64_t now_s = clock_.now_ms() / 1000;
  if (it == products_.end() || !it->second || signature.empty() ||
      !it->second->verify_callback(signature, body, now_s))
    throw ApiError::unauthorized("missing or invalid Wharf-Signature");
}

Json ResourceService::backend_status(const std::string& product_id, const std::string& resource_id,
                                     const Json& body) {
  model::Checker check;
  auto status = check.one_of(body, "status", "", true, {"ready", "error", "suspended", "resumed"});
  const Json* secrets = check.get(body, "secrets", "", model::Kind::kArray, false);
  const Json* notification = check.get(body, "notification", "", model::Kind::kObject, false);
  check_secrets(secrets, check);
  check.throw_if_failed("status");

  bool found = false;
  bool pushed = false;
  const bool changed =
      change_resource(resource_id, [&](store::WriteTx& tx, store::ResourceRow& row) {
        found = row.product_id == product_id;
        if (!found) return false;
        const std::string before = row.status;
        if (*status == "ready" || *status == "resumed")
          row.status = row.overdue_hold() ? "suspended" : "ready";
        else
          row.status = *status;
        if (notification)
          row.notification_json = notification->dump();
        else if (*status == "error" && before != "error")
          row.notification_json = Json{{"level", "error"}, {"title", "The resource failed"}}.dump();
        if (secrets && !secrets->empty()) {
          auto [wharf_made, old_product] = split_secrets(row);
          Json all = seal_secrets(row, wharf_made, *secrets);
          if (old_product != *secrets) {
            push_secrets(tx, row, all, clock_.now_ms());
            pushed = true;
          }
        }
        // A repeated callback changes nothing, and Vercel hears nothing new.
        return row.status != before || notification || pushed;
      });
  if (!found) throw ApiError::not_found("resource " + resource_id + " not found");
  util::log_info("backend status callback")
      .str("product", product_id)
      .str("resource", resource_id)
      .str("status", *status)
      .num("changed", changed ? 1 : 0)
      .num("secrets_pushed", pushed ? 1 : 0);
  return Json::object();
}

Json ResourceService::backend_secrets(const std::string& product_id, const std::string& resource_id,
                                      const Json& body) {
  model::Checker check;
  const Json* secrets = check.get(body, "secrets", "", model::Kind::kArray, true);
  check_secrets(secrets, check);
  check.throw_if_failed("secrets");
  store_.write([&](store::WriteTx& tx) {
    auto row = tx.resource(resource_id);
    if (!row || row->product_id != product_id || row->deleted_ms)
      throw ApiError::not_found("resource " + resource_id + " not found");
    int64_t now = clock_.now_ms();
    Json all = seal_secrets(*row, split_secrets(*row).first, *secrets);
    row->updated_ms = now;
    tx.put_resource(*row);
    push_secrets(tx, *row, all, now);
  });
  wake_outbox();
  util::log_info("backend secrets callback")
      .str("product", product_id)
      .str("resource", resource_id);
  return Json::object();
}

Json ResourceService::ingest_usage(const std::string& product_id, const Json& body) {
  const model::Product& product = require_product(product_id);
  // The metrics a backend may report: those some plan of the product prices, and the two
  // every product has (§5).
  std::set<std::string> allowed = {"storageBytes", "requests"};
  for (const model::Plan* plan : catalog_->plans_of(product))
    for (const auto& price : plan->prices.metrics) allowed.insert(price.ledger_metric);

  model::Checker check;
  const Json* events = check.get(body, "events", "", model::Kind::kArray, true);
  check.throw_if_failed("usage");
  if (events->size() > kMaxUsageEvents)
    throw ApiError(422, "validation_error",
                   "a batch holds at most " + std::to_string(kMaxUsageEvents) + " events",
                   {{"events", "at most 1000 events"}});
  struct Event {
    std::string id, resource_id, metric, day;
    bool level = false;
    int64_t value = 0;
  };
  std::vector<Event> parsed;
  parsed.reserve(events->size());
  const int64_t now = clock_.now_ms();
  const int64_t period_start = util::month_start_ms(now);
  std::set<std::string> resources;
  for (size_t i = 0; i < events->size(); ++i) {
    const Json& e = (*events)[i];
    std::string path = model::Checker::index("events", i);
    if (!e.is_object()) {
      check.add(path, "must be an object");
      continue;
    }
    Event ev;
    ev.id = check.string(e, "id", path, true, true).value_or("");
    if (ev.id.size() > 200)
      check.add(model::Checker::join(path, "id"), "must be at most 200 characters");
    ev.resource_id = check.string(e, "resourceId", path, true, true).value_or("");
    ev.metric = check.string(e, "metric", path, true, true).value_or("");
    if (!ev.metric.empty() && !allowed.count(ev.metric))
      check.add(model::Checker::join(path, "metric"), "is not a metric a plan of " + product_id +
                                                          " prices (nor storageBytes or requests)");
    auto type = check.one_of(e, "type", path, true, {"interval", "total"});
    ev.level = type && *type == "total";
    auto v = e.find("value");
    if (v == e.end() || !v->is_number() || v->get<double>() < 0 || v->get<double>() > 9.0e15)
      check.add(model::Checker::join(path, "value"), "must be a non-negative number");
    else
      ev.value = v->is_number_integer() ? v->get<int64_t>()
                                        : static_cast<int64_t>(std::llround(v->get<double>()));
    int64_t ts = 0;
    auto t = e.find("timestamp");
    bool ts_ok = false;
    if (t != e.end() && t->is_number_integer()) {
      ts = t->get<int64_t>();
      ts_ok = true;
    } else if (t != e.end() && t->is_string()) {
      ts_ok = util::parse_iso8601(t->get<std::string>(), &ts);
    }
    std::string ts_path = model::Checker::join(path, "timestamp");
    if (!ts_ok)
      check.add(ts_path, "must be an ISO 8601 date-time or unix milliseconds");
    else if (ts > now + kFutureSkewMs)
      check.add(ts_path, "is in the future");
    else if (ts < period_start)
      check.add(ts_path, "is before the current billing period");
    else
      ev.day = util::day_key(ts);
    resources.insert(ev.resource_id);
    parsed.push_back(std::move(ev));
  }
  if (!check.errors().empty()) {
    ApiError err(422, "validation_error", "usage batch refused: nothing was counted",
                 check.errors());
    throw err;
  }
  int64_t accepted = 0, duplicates = 0;
  store_.write([&](store::WriteTx& tx) {
    accepted = duplicates = 0;  // a store may run the closure again (docs/decisions.md)
    // A request signed for this product names only its resources (§5); deleted ones still
    // count for the days they lived.
    for (const auto& rid : resources) {
      auto row = tx.resource(rid);
      if (!row || row->product_id != product_id)
        throw ApiError::not_found("resource " + rid + " not found");
    }
    for (const auto& ev : parsed) {
      if (!tx.record_usage_event(product_id, ev.id, now)) {
        ++duplicates;
        continue;
      }
      if (ev.level)
        tx.set_usage(ev.resource_id, ev.day, ev.metric, ev.value);
      else if (ev.value)
        tx.add_usage(ev.resource_id, ev.day, ev.metric, ev.value);
      ++accepted;
    }
  });
  return Json{{"accepted", accepted}, {"duplicates", duplicates}};
}

void ResourceService::sample_usage() {
  // Live resources of the products that measure their own usage.
  std::set<product::Product*> sampling;
  for (const auto& [id, impl] : products_)
    if (impl && impl->descriptor().capabilities.samples_usage) sampling.insert(impl);
  if (sampling.empty()) return;
  std::vector<store::ResourceRow> rows;
  store_.read([&](store::ReadTx& tx) {
    for (const auto& [id, impl] : products_) {
      if (!sampling.count(impl)) continue;
      for (auto& row : tx.live_resources_of_product(id)) rows.push_back(std::move(row));
    }
  });
  std::string day = util::day_key(clock_.now_ms());
  struct Sample {
    std::string resource_id, metric;
    bool level;
    int64_t value;
  };
  std::vector<Sample> samples;
  for (const auto& row : rows) {
    product::Product& impl = product_of(row);
    try {
      impl.sample_usage(row.id, [&](const std::string& metric, int64_t value) {
        samples.push_back(
            {row.id, metric, product::metric_spec(&impl.descriptor(), metric).level, value});
      });
    } catch (const std::exception& e) {
      util::log_warn("usage sample failed").str("resource", row.id).str("error", e.what());
    }
  }
  if (samples.empty()) return;
  store_.write([&](store::WriteTx& tx) {
    for (const auto& s : samples) {
      if (s.level)
        tx.max_usage(s.resource_id, day, s.metric, s.value);
      else if (s.value)
        tx.add_usage(s.resource_id, day, s.metric, s.value);
    }
  });
}

}  // namespace wharf::service
