#include "service/flags.h"

#include <algorithm>
#include <set>

#include "model/resource.h"
#include "net/http.h"
#include "util/crypto.h"
#include "util/ids.h"
#include "util/log.h"
#include "vercel/outbox.h"

namespace wharf::service {

using model::ApiError;
using model::Json;

namespace {

// A resource's calls about its flags go out in order, in a lane of their own: a busy flag
// set never holds up what Vercel is told about billing.
std::string lane_of(const std::string& resource_id) {
  return "flags:" + resource_id;
}

// Members of a flag as the API shows it that are not part of its definition: a client may
// send a flag it read back, and they are ignored.
bool read_only_member(const std::string& k) {
  return k == "id" || k == "createdAt" || k == "updatedAt" || k == "url";
}

// The digest Vercel reports for its store: GET and PUT both answer it (§9.4).
std::string digest_of(const net::HttpResult& r) {
  Json body = Json::parse(r.body, nullptr, false);
  if (body.is_object() && body.contains("digest") && body["digest"].is_string())
    return body["digest"].get<std::string>();
  return "";
}

std::string message_of(const net::HttpResult& r) {
  Json body = Json::parse(r.body, nullptr, false);
  if (body.is_object() && body.contains("error") && body["error"].is_object() &&
      body["error"].contains("message") && body["error"]["message"].is_string())
    return body["error"]["message"].get<std::string>();
  return r.error.empty() ? "HTTP " + std::to_string(r.status) : r.error;
}

net::HttpResult done(int status = 204) {
  net::HttpResult r;
  r.status = status;
  return r;
}

store::FlagSetRow new_set(const std::string& resource_id) {
  store::FlagSetRow set;
  set.resource_id = resource_id;
  return set;
}

// The flag set being changed, still live, and (with `key`) the flag: 404 otherwise.
store::ResourceRow require_live(store::ReadTx& tx, const std::string& resource_id) {
  auto current = tx.resource(resource_id);
  if (!current || current->deleted_ms)
    throw ApiError::not_found("flag set " + resource_id + " not found");
  return *current;
}

store::FlagRow require_flag(store::ReadTx& tx, const std::string& resource_id,
                            const std::string& key) {
  auto flag = tx.flag(resource_id, key);
  if (!flag) throw ApiError::not_found("flag " + key + " not found");
  return *flag;
}

Json settings_of(const store::ResourceRow& row) {
  if (!row.protocol_settings_json) return Json::object();
  return Json::parse(*row.protocol_settings_json, nullptr, false);
}

}  // namespace

std::string FlagService::page_path(const std::string& resource_id, const std::string& key) {
  return "/dashboard/resources/" + net::percent_encode(resource_id) + "/flags/" +
         net::percent_encode(key);
}

bool FlagService::is_flags(const std::string& product_id) const {
  const model::Product* p = catalog_->product(product_id);
  return p && p->kind == "flags";
}

void FlagService::wake() const {
  if (options_.wake_outbox) options_.wake_outbox();
}

const product::flags::Flag* FlagService::Compiled::find(const std::string& key) const {
  auto it =
      std::lower_bound(flags.begin(), flags.end(), key,
                       [](const auto& entry, const std::string& k) { return entry.first < k; });
  return it != flags.end() && it->first == key ? &it->second : nullptr;
}

FlagService::FlagService(store::Store& store, std::shared_ptr<const model::Catalog> catalog,
                         ResourceService& resources, const util::Clock& clock, Options options)
    : store_(store),
      catalog_(std::move(catalog)),
      resources_(resources),
      clock_(clock),
      options_(std::move(options)) {
  ResourceService::Hooks hooks;
  hooks.changed = [this](store::WriteTx& tx, const store::ResourceRow* before,
                         const store::ResourceRow& after) { on_changed(tx, before, after); };
  hooks.deleted = [this](store::WriteTx& tx, const store::ResourceRow& row) {
    if (!is_flags(row.product_id)) return;
    tx.delete_flags_of(row.id);
    std::lock_guard<std::mutex> lock(cache_mu_);
    cache_.erase(row.id);
  };
  resources_.add_hooks(std::move(hooks));
}

// ---- who may do what ---------------------------------------------------------------------

store::ResourceRow FlagService::resource_of(const std::string& installation_id,
                                            const std::string& resource_id) {
  std::optional<store::ResourceRow> row;
  store_.read([&](store::ReadTx& tx) { row = tx.resource(resource_id); });
  if (!row || row->deleted_ms || row->installation_id != installation_id ||
      !is_flags(row->product_id))
    throw ApiError::not_found("flag set " + resource_id + " not found");
  return *row;
}

FlagService::Caller FlagService::authorize(const std::string& resource_id, const std::string& token,
                                           bool need_admin) {
  if (token.empty()) throw ApiError::unauthorized("missing bearer token");
  Caller caller;
  std::string hash = ResourceService::token_hash(token);
  std::string access;
  store_.read([&](store::ReadTx& tx) {
    auto cred = tx.credential(hash);
    int64_t now = clock_.now_ms();
    if (!cred || cred->resource_id != resource_id || (cred->expires_ms && *cred->expires_ms <= now))
      throw ApiError::unauthorized("invalid or expired flags key");
    auto r = tx.resource(cred->resource_id);
    if (!r || r->deleted_ms) throw ApiError::not_found("flag set " + resource_id + " not found");
    caller.row = *r;
    access = cred->access;
    if (auto set = tx.flag_set(resource_id)) caller.version = set->version;
  });
  if (!is_flags(caller.row.product_id))
    throw ApiError::not_found("flag set " + resource_id + " not found");
  if (options_.rate_limits) options_.rate_limits->data_plane(hash, caller.row.installation_id);
  if (caller.row.status == "suspended")
    throw ApiError(403, "resource_suspended",
                   "flag set " + resource_id + " is suspended; resume it in Vercel to use it");
  caller.admin = access == "rw";
  if (need_admin && !caller.admin)
    throw ApiError::forbidden(
        "this key can only evaluate flags (FLAGS_SDK_KEY); managing them takes FLAGS_ADMIN_KEY");
  return caller;
}

void FlagService::check_writable(const store::ResourceRow& row) const {
  if (row.status == "suspended")
    throw ApiError(403, "resource_suspended",
                   "flag set " + row.id + " is suspended; resume it in Vercel to change flags");
  if (row.billing_hold == "credits")
    throw ApiError(402, "credits_exhausted",
                   "flag set " + row.id +
                       " is out of prepaid credits: flags evaluate but cannot change until more "
                       "credits are bought")
        .with_user(
            "This flag set has used up its prepaid credits: flags still evaluate but "
            "cannot be changed. Buy more credits in Vercel to change them.");
}

int64_t FlagService::max_flags(const store::ResourceRow& row) const {
  const model::Plan* plan = catalog_->plan(row.billing_plan_id);
  if (!plan || !plan->limits.is_object()) return 0;
  auto it = plan->limits.find("maxFlags");
  return it != plan->limits.end() && it->is_number() ? it->get<int64_t>() : 0;
}

// ---- rendering -------------------------------------------------------------------------------

Json FlagService::render(const store::FlagRow& flag) const {
  Json out = Json::parse(flag.definition_json);
  out["id"] = flag.id;
  out["createdAt"] = flag.created_ms;
  out["updatedAt"] = flag.updated_ms;
  out["url"] = options_.public_url + page_path(flag.resource_id, flag.key);
  return out;
}

Json FlagService::item_of(const store::FlagRow& flag, bool with_id) const {
  Json def = Json::parse(flag.definition_json);
  Json item = Json::object();
  if (with_id) item["id"] = flag.id;
  item["slug"] = flag.key;
  // An sso: link: Vercel signs the user in first, then lands on the flag (flows.md §2.3).
  item["origin"] = "sso:" + options_.public_url + page_path(flag.resource_id, flag.key);
  item["category"] = "flag";
  // Within Vercel's 1,024 characters: the rule engine holds name and description to that.
  item["name"] = def.value("name", flag.key);
  item["description"] = def.value("description", "");
  item["isArchived"] = flag.archived;
  item["createdAt"] = flag.created_ms;
  item["updatedAt"] = flag.updated_ms;
  return item;
}

Json FlagService::config_data(const std::vector<store::FlagRow>& flags) {
  Json set = Json::object();
  for (const auto& f : flags) set[f.key] = Json::parse(f.definition_json);
  return Json{{kConfigKey, set}};
}

// ---- management ------------------------------------------------------------------------------

Json FlagService::list(const store::ResourceRow& row) {
  Json out = Json::array();
  store_.read([&](store::ReadTx& tx) {
    for (const auto& f : tx.flags_of(row.id)) out.push_back(render(f));
  });
  return Json{{"flags", out}};
}

Json FlagService::get(const store::ResourceRow& row, const std::string& key) {
  std::optional<store::FlagRow> flag;
  store_.read([&](store::ReadTx& tx) { flag = tx.flag(row.id, key); });
  if (!flag) throw ApiError::not_found("flag " + key + " not found");
  return render(*flag);
}

void FlagService::bump(store::WriteTx& tx, const store::ResourceRow& row, int64_t now) {
  store::FlagSetRow set = tx.flag_set(row.id).value_or(new_set(row.id));
  set.version += 1;
  set.updated_ms = now;
  tx.put_flag_set(set);
}

void FlagService::enqueue_sync(store::WriteTx& tx, const store::ResourceRow& row, int64_t now) {
  Json settings = settings_of(row);
  if (!model::wants_config_sync(settings)) return;
  // The body names the resource only: what is written is read when the item goes out, so
  // a burst of changes ends in one write of the latest set.
  vercel::Call call =
      vercel::api::put_global_config(row.installation_id, row.id, Json::object(), "global-config");
  call.kind = "flags.sync";
  call.body = Json{{"resourceId", row.id}};
  vercel::Outbox::enqueue(tx, row.installation_id, call, now, lane_of(row.id));
}

void FlagService::enqueue_creates(store::WriteTx& tx, const store::ResourceRow& row,
                                  const std::vector<store::FlagRow>& flags, int64_t now) {
  // Vercel takes at most 50 items per Create call (§9.1).
  for (size_t i = 0; i < flags.size(); i += 50) {
    Json items = Json::array();
    for (size_t j = i; j < std::min(flags.size(), i + 50); ++j)
      items.push_back(item_of(flags[j], true));
    vercel::Outbox::enqueue(
        tx, row.installation_id,
        vercel::api::create_experimentation_items(row.installation_id, row.id, {{"items", items}}),
        now, lane_of(row.id));
  }
}

void FlagService::resource_moved(store::WriteTx& tx, const store::ResourceRow& row,
                                 const std::string& from) {
  if (!is_flags(row.product_id)) return;
  int64_t now = clock_.now_ms();
  enqueue_creates(tx, row, tx.flags_of(row.id), now);
  // The store is the new installation's resource's now: learn its digest afresh.
  store::FlagSetRow set = tx.flag_set(row.id).value_or(new_set(row.id));
  set.sync_digest.clear();
  set.sync_hash.clear();
  set.updated_ms = now;
  tx.put_flag_set(set);
  enqueue_sync(tx, row, now);
  util::log_info("flags moved to another installation")
      .str("resource", row.id)
      .str("from", from)
      .str("to", row.installation_id);
}

Json FlagService::create(const store::ResourceRow& row, const Json& body) {
  check_writable(row);
  model::Checker check;
  std::vector<product::flags::Flag> compiled;
  const bool batch = body.contains("flags");
  std::vector<std::pair<std::string, const Json*>> defs;
  if (batch) {
    const Json* list = check.get(body, "flags", "", model::Kind::kArray, true);
    for (auto it = body.begin(); it != body.end(); ++it)
      if (it.key() != "flags") check.add(it.key(), "unknown member (a batch has only `flags`)");
    if (list && list->empty()) check.add("flags", "must not be empty");
    if (list && list->size() > kMaxBatch)
      check.add("flags", "at most " + std::to_string(kMaxBatch) + " flags per request");
    if (list && list->size() <= kMaxBatch)
      for (size_t i = 0; i < list->size(); ++i)
        defs.emplace_back(model::Checker::index("flags", i), &(*list)[i]);
  } else {
    defs.emplace_back("", &body);
  }
  std::set<std::string> keys;
  for (const auto& [path, def] : defs) {
    Json clean = *def;
    if (clean.is_object())
      for (auto it = def->begin(); it != def->end(); ++it)
        if (read_only_member(it.key())) clean.erase(it.key());
    auto flag = product::flags::compile(clean, check, path);
    if (!flag) continue;
    std::string key = flag->definition["key"].get<std::string>();
    if (!keys.insert(key).second)
      check.add(model::Checker::join(path, "key"), "flag " + key + " appears twice");
    compiled.push_back(std::move(*flag));
  }
  check.throw_if_failed("flag definition");

  std::vector<store::FlagRow> made;
  store_.write([&](store::WriteTx& tx) {
    made.clear();  // a store may run the closure again (docs/decisions.md)
    const store::ResourceRow current = require_live(tx, row.id);
    int64_t now = clock_.now_ms();
    auto existing = static_cast<size_t>(tx.flag_count(row.id));
    int64_t cap = max_flags(current);
    if (cap > 0 && static_cast<int64_t>(existing + compiled.size()) > cap) {
      ApiError e(409, "flag_limit",
                 "flag set " + row.id + " would have " +
                     std::to_string(existing + compiled.size()) + " flags; its plan allows " +
                     std::to_string(cap));
      e.user_message = "This plan allows " + std::to_string(cap) +
                       " flags. Archive or delete flags, or change the plan.";
      throw e;
    }
    for (const auto& f : compiled) {
      std::string key = f.definition["key"].get<std::string>();
      if (tx.flag(row.id, key))
        throw ApiError::conflict("flag " + key + " already exists")
            .with_user("A flag with the key " + key + " already exists. Choose another key.");
      store::FlagRow r;
      r.id = util::new_id("flg");
      r.resource_id = row.id;
      r.key = key;
      r.definition_json = f.definition.dump();
      r.archived = f.definition.value("archived", false);
      r.created_ms = r.updated_ms = now;
      tx.put_flag(r);
      made.push_back(r);
    }
    bump(tx, current, now);
    enqueue_creates(tx, current, made, now);
    enqueue_sync(tx, current, now);
  });
  wake();
  if (!batch) return render(made.front());
  Json out = Json::array();
  for (const auto& r : made) out.push_back(render(r));
  return Json{{"flags", out}};
}

Json FlagService::update(const store::ResourceRow& row, const std::string& key, const Json& patch) {
  check_writable(row);
  if (!patch.is_object()) throw ApiError::bad_request("the body must be a JSON object");
  std::optional<store::FlagRow> result;
  bool changed = false;
  store_.write([&](store::WriteTx& tx) {
    const store::ResourceRow current = require_live(tx, row.id);
    store::FlagRow flag = require_flag(tx, row.id, key);
    Json def = Json::parse(flag.definition_json);
    model::Checker check;
    for (auto it = patch.begin(); it != patch.end(); ++it) {
      if (read_only_member(it.key())) continue;
      if (it.key() == "key" && *it != Json(key)) {
        check.add("key", "a flag's key cannot change (create a new flag instead)");
        continue;
      }
      if (it->is_null())
        def.erase(it.key());  // an optional member removed (e.g. `rollout`)
      else
        def[it.key()] = *it;
    }
    auto compiled = product::flags::compile(def, check, "");
    check.throw_if_failed("flag definition");
    if (!compiled) throw ApiError::bad_request("the flag definition is not valid");
    std::string canonical = compiled->definition.dump();
    result = flag;
    if (canonical == flag.definition_json) return;  // nothing to tell anyone
    changed = true;
    int64_t now = clock_.now_ms();
    flag.definition_json = canonical;
    flag.archived = compiled->definition.value("archived", false);
    flag.updated_ms = now;
    tx.put_flag(flag);
    result = flag;
    bump(tx, current, now);
    vercel::Outbox::enqueue(tx, row.installation_id,
                            vercel::api::update_experimentation_item(row.installation_id, row.id,
                                                                     flag.id, item_of(flag, false)),
                            now, lane_of(row.id));
    enqueue_sync(tx, current, now);
  });
  if (changed) wake();
  return render(*result);
}

void FlagService::remove(const store::ResourceRow& row, const std::string& key) {
  check_writable(row);
  store_.write([&](store::WriteTx& tx) {
    const store::ResourceRow current = require_live(tx, row.id);
    store::FlagRow flag = require_flag(tx, row.id, key);
    int64_t now = clock_.now_ms();
    tx.delete_flag(flag.id);
    bump(tx, current, now);
    vercel::Outbox::enqueue(
        tx, row.installation_id,
        vercel::api::delete_experimentation_item(row.installation_id, row.id, flag.id), now,
        lane_of(row.id));
    enqueue_sync(tx, current, now);
  });
  wake();
}

std::optional<std::pair<std::string, std::string>> FlagService::locate(
    const std::string& installation_id, const std::string& item_id) {
  std::optional<std::pair<std::string, std::string>> out;
  store_.read([&](store::ReadTx& tx) {
    auto flag = tx.flag_by_id(item_id);
    if (!flag) return;
    auto r = tx.resource(flag->resource_id);
    if (!r || r->deleted_ms || r->installation_id != installation_id) return;
    out = std::make_pair(flag->resource_id, flag->key);
  });
  return out;
}

// ---- evaluation --------------------------------------------------------------------------------

std::shared_ptr<const FlagService::Compiled> FlagService::compiled(const Caller& caller) {
  {
    std::lock_guard<std::mutex> lock(cache_mu_);
    auto it = cache_.find(caller.row.id);
    if (it != cache_.end() && it->second->version >= caller.version) return it->second;
  }
  auto set = std::make_shared<Compiled>();
  std::vector<store::FlagRow> rows;
  store_.read([&](store::ReadTx& tx) {
    rows = tx.flags_of(caller.row.id);
    if (auto s = tx.flag_set(caller.row.id)) set->version = s->version;
  });
  for (const auto& r : rows) {
    model::Checker check;
    auto flag = product::flags::compile(Json::parse(r.definition_json), check, "");
    if (!flag) {
      // Stored definitions were compiled when written; one that no longer compiles (a rule
      // the engine stopped accepting) is left out and evaluates as not found.
      util::log_error("stored flag does not compile")
          .str("resource", r.resource_id)
          .str("flag", r.key)
          .str("error", check.errors().empty() ? "" : check.errors().front().message);
      continue;
    }
    set->flags.emplace_back(r.key, std::move(*flag));
  }
  std::lock_guard<std::mutex> lock(cache_mu_);
  auto& slot = cache_[caller.row.id];
  if (!slot || slot->version < set->version) slot = set;
  return slot;
}

void FlagService::record_evaluations(const Caller& caller, int64_t n) {
  if (n > 0) resources_.record_metric(caller.row, "evaluations", n);
}

// ---- Global Config sync ------------------------------------------------------------------------

void FlagService::on_changed(store::WriteTx& tx, const store::ResourceRow* before,
                             const store::ResourceRow& after) {
  if (!is_flags(after.product_id)) return;
  Json now_settings = settings_of(after);
  if (!model::wants_config_sync(now_settings)) return;
  Json old_settings = before ? settings_of(*before) : Json::object();
  if (before && model::wants_config_sync(old_settings) &&
      old_settings.value("experimentation", Json::object()) ==
          now_settings.value("experimentation", Json::object()))
    return;  // the same store as before: nothing new to write
  // Syncing turned on, or onto another store: start over with a full write.
  int64_t now = clock_.now_ms();
  store::FlagSetRow set = tx.flag_set(after.id).value_or(new_set(after.id));
  set.sync_path.clear();
  set.sync_digest.clear();
  set.sync_hash.clear();
  set.updated_ms = now;
  tx.put_flag_set(set);
  enqueue_sync(tx, after, now);
}

void FlagService::stop_sync(const std::string& resource_id, int status, const std::string& why) {
  resources_.change_resource(resource_id, [&](store::WriteTx&, store::ResourceRow& row) {
    Json settings = settings_of(row);
    model::mark_config_sync_stopped(settings,
                                    "Vercel answered " + std::to_string(status) + ": " + why);
    row.protocol_settings_json = settings.dump();
    row.notification_json =
        Json{{"level", "error"},
             {"title", "Flag sync stopped"},
             {"message", "Flags no longer sync to your Global Config (" + why +
                             "). Choose a Global Config for this resource again to resume."}}
            .dump();
    return true;
  });
  util::log_warn("flag sync stopped")
      .str("resource", resource_id)
      .num("status", status)
      .str("reason", why);
}

net::HttpResult FlagService::deliver_sync(const store::OutboxRow& item,
                                          const vercel::Client& client, const std::string& token) {
  Json body = Json::parse(item.body, nullptr, false);
  std::string rid = body.is_object() ? body.value("resourceId", "") : "";
  std::optional<store::ResourceRow> row;
  store::FlagSetRow set = new_set(rid);
  std::vector<store::FlagRow> flags;
  store_.read([&](store::ReadTx& tx) {
    row = tx.resource(rid);
    if (auto s = tx.flag_set(rid)) set = *s;
    flags = tx.flags_of(rid);
  });
  // Nothing to write any more: the resource is gone, or syncing was turned off or stopped.
  if (!row || row->deleted_ms) return done();
  Json settings = settings_of(*row);
  if (!model::wants_config_sync(settings)) return done();
  Json data = config_data(flags);
  std::string payload = Json{{"data", data}}.dump();
  std::string hash = util::to_hex(util::sha256(payload));
  if (hash == set.sync_hash) return done();  // this exact set is what we wrote last

  const std::string icfg = row->installation_id;
  std::string path_name = set.sync_path.empty() ? "global-config" : set.sync_path;
  std::string digest = set.sync_digest;
  net::HttpResult r;
  // A GET answering 404 on both paths: the store holds nothing of ours yet, so the first
  // write has no digest to be conditional on.
  bool unconditional = false;
  for (int attempt = 0; attempt < 6; ++attempt) {
    if (digest.empty() && !unconditional) {
      // Learn the store's current digest (a first write, or after a 412).
      vercel::Call read = vercel::api::get_global_config(icfg, rid, path_name);
      r = client.request(read.method, read.path, "", token);
      if (r.status == 404 && path_name == "global-config") {
        path_name = "edge-config";  // Vercel before 2026-07-30 (§9.4)
        continue;
      }
      if (r.status == 404) {
        unconditional = true;
      } else if (!r.ok()) {
        break;
      } else {
        digest = digest_of(r);
      }
    }
    vercel::Call put = vercel::api::put_global_config(icfg, rid, Json::object(), path_name);
    std::vector<std::pair<std::string, std::string>> extra;
    if (!digest.empty()) extra.emplace_back("If-Match", "\"" + digest + "\"");
    r = client.request(put.method, put.path, payload, token, extra);
    if (r.ok()) {
      std::string written = digest_of(r);
      store_.write([&](store::WriteTx& tx) {
        store::FlagSetRow current = tx.flag_set(rid).value_or(new_set(rid));
        current.sync_path = path_name;
        current.sync_digest = written;
        current.sync_hash = hash;
        current.updated_ms = clock_.now_ms();
        tx.put_flag_set(current);
      });
      return r;
    }
    if (r.status == 412) {  // someone else wrote: read the new digest and write ours again
      digest.clear();
      unconditional = false;
      continue;
    }
    if (r.status == 404 && path_name == "global-config") {
      path_name = "edge-config";
      digest.clear();
      unconditional = false;
      continue;
    }
    break;
  }
  if (r.ok()) return r;
  if (r.error.empty() && (r.status == 409 || r.status == 410)) {
    stop_sync(rid, r.status, message_of(r));
    return done();
  }
  if (r.status == 412) {  // lost the race every time: back off and try again later
    r.status = 503;
    r.error = "Global Config changed under every write (412)";
  }
  return r;
}

}  // namespace wharf::service
