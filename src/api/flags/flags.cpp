#include "api/flags/flags.h"

#include "api/respond.h"
#include "util/crypto.h"

namespace wharf::api::flags {

using model::Json;
using service::FlagService;

namespace {

std::string token_of(Context& ctx) {
  return std::string(auth::bearer_token(ctx.req.header("authorization").value_or("")));
}

FlagService::Caller caller_of(Context& ctx, FlagService& flags, bool admin) {
  return flags.authorize(std::string(ctx.param("resourceId")), token_of(ctx), admin);
}

// OFREP's request body: {context?: object}. An absent body or context is an empty context.
// Returns false (and sets `details`) when the context is not an object.
bool context_of(Context& ctx, Json& context, std::string& details) {
  context = Json::object();
  std::optional<Json> body;
  try {
    body = model::parse_optional_json_object_body(ctx.req.header("content-type").value_or(""),
                                                  ctx.req.body);
  } catch (const model::ApiError& e) {
    details = e.message;
    return false;
  }
  if (!body) return true;
  auto it = body->find("context");
  if (it == body->end() || it->is_null()) return true;
  if (!it->is_object()) {
    details = "`context` must be a JSON object";
    return false;
  }
  context = *it;
  return true;
}

Json success(const std::string& key, const product::flags::Result& r) {
  return Json{{"key", key},
              {"value", r.value},
              {"variant", r.variant},
              {"reason", r.reason},
              {"metadata", Json::object()}};
}

Json failure(const std::string& key, const std::string& code, const std::string& details) {
  return Json{{"key", key}, {"errorCode", code}, {"errorDetails", details}};
}

// The OFREP answer for one flag of a compiled set: (HTTP status, body).
std::pair<int, Json> evaluate_one(const FlagService::Compiled& set, const std::string& key,
                                  const Json& context) {
  const product::flags::Flag* flag = set.find(key);
  if (!flag) return {404, failure(key, "FLAG_NOT_FOUND", "flag " + key + " does not exist")};
  product::flags::Result r = product::flags::evaluate(*flag, context);
  if (!r.ok()) return {400, failure(key, r.error_code, r.error_details)};
  return {200, success(key, r)};
}

Json evaluate_all(const FlagService::Compiled& set, const Json& context, int64_t* evaluated) {
  Json out = Json::array();
  for (const auto& [key, flag] : set.flags) {
    if (flag.archived) continue;  // retired: not served in bulk
    product::flags::Result r = product::flags::evaluate(flag, context);
    out.push_back(r.ok() ? success(key, r) : failure(key, r.error_code, r.error_details));
    ++*evaluated;
  }
  return Json{{"flags", std::move(out)}};
}

}  // namespace

void add_routes(RouteTable& routes, FlagService& flags) {
  const std::string base = "/v1/flags/{resourceId}";
  // ---- provider API (FLAGS_ADMIN_KEY) ----
  routes.add("GET", base + "/flags", {false, {}, false, [&flags](Context& ctx) {
                                        auto caller = caller_of(ctx, flags, true);
                                        return json_response(200, flags.list(caller.row));
                                      }});
  routes.add("POST", base + "/flags", {false, {}, false, [&flags](Context& ctx) {
                                         auto caller = caller_of(ctx, flags, true);
                                         return json_response(
                                             201, flags.create(caller.row, ctx.json_body()));
                                       }});
  routes.add("GET", base + "/flags/{key}",
             {false, {}, false, [&flags](Context& ctx) {
                auto caller = caller_of(ctx, flags, true);
                return json_response(200, flags.get(caller.row, std::string(ctx.param("key"))));
              }});
  routes.add("PATCH", base + "/flags/{key}",
             {false, {}, false, [&flags](Context& ctx) {
                auto caller = caller_of(ctx, flags, true);
                return json_response(
                    200, flags.update(caller.row, std::string(ctx.param("key")), ctx.json_body()));
              }});
  routes.add("DELETE", base + "/flags/{key}", {false, {}, false, [&flags](Context& ctx) {
                                                 auto caller = caller_of(ctx, flags, true);
                                                 flags.remove(caller.row,
                                                              std::string(ctx.param("key")));
                                                 return net::Response::empty(204);
                                               }});

  // ---- OFREP (FLAGS_SDK_KEY) ----
  routes.add("POST", base + "/ofrep/v1/evaluate/flags/{key}",
             {false, {}, false, [&flags](Context& ctx) {
                auto caller = caller_of(ctx, flags, false);
                std::string key(ctx.param("key"));
                Json context;
                std::string details;
                if (!context_of(ctx, context, details))
                  return json_response(400, failure(key, "INVALID_CONTEXT", details));
                auto set = flags.compiled(caller);
                auto [status, body] = evaluate_one(*set, key, context);
                if (status != 404) flags.record_evaluations(caller, 1);
                return json_response(status, body);
              }});
  routes.add("POST", base + "/ofrep/v1/evaluate/flags",
             {false, {}, false, [&flags](Context& ctx) {
                auto caller = caller_of(ctx, flags, false);
                Json context;
                std::string details;
                if (!context_of(ctx, context, details))
                  return json_response(
                      400, Json{{"errorCode", "INVALID_CONTEXT"}, {"errorDetails", details}});
                auto set = flags.compiled(caller);
                // The answer depends only on the flag set's version and the context.
                std::string etag =
                    "\"" +
                    util::to_hex(util::sha256(caller.row.id + "\n" + std::to_string(set->version) +
                                              "\n" + context.dump()))
                        .substr(0, 32) +
                    "\"";
                if (auto inm = ctx.req.header("if-none-match");
                    inm && inm->find(etag) != std::string_view::npos) {
                  net::Response res = net::Response::empty(304);
                  res.headers.emplace_back("ETag", etag);
                  return res;
                }
                int64_t evaluated = 0;
                net::Response res = json_response(200, evaluate_all(*set, context, &evaluated));
                flags.record_evaluations(caller, evaluated);
                res.headers.emplace_back("ETag", etag);
                return res;
              }});
  routes.add("GET", base + "/ofrep/v1/configuration",
             {false, {}, false, [&flags](Context& ctx) {
                caller_of(ctx, flags, false);
                return json_response(
                    200,
                    Json{{"name", "wharf-flags"},
                         {"capabilities",
                          {{"cacheInvalidation",
                            {{"polling", {{"enabled", true}, {"minPollingIntervalMs", 1000}}}}},
                           {"flagEvaluation",
                            {{"supportedTypes",
                              Json::array({"boolean", "string", "int", "float", "object"})}}}}}});
              }});
}

}  // namespace wharf::api::flags
