#include "api/dataplane/query.h"

#include <cctype>

#include "api/respond.h"
#include "util/log.h"

namespace wharf::api::dataplane {

namespace {

using model::Json;

// An HTTP-level failure in Hrana's form: the client reads {message, code} from the body;
// the spec's envelope rides along under "error".
net::Response hrana_error(const model::ApiError& e) {
  net::Response res = error_response(e);
  Json body = Json::parse(res.body, nullptr, /*allow_exceptions=*/false);
  std::string code = e.code;
  for (char& c : code) c = static_cast<char>(std::toupper(static_cast<unsigned char>(c)));
  if (body.is_object()) {
    body["message"] = e.message;
    body["code"] = code;
    res.body = body.dump(-1, ' ', false, Json::error_handler_t::replace);
  }
  return res;
}

struct Opened {
  service::ResourceService::SqlCaller caller;
  std::unique_ptr<hrana::Streams::Entry> entry;
  Json body;
};

// Authenticates the caller and finds (or opens) the stream the request's baton names.
Opened open_stream(Context& ctx, service::ResourceService& resources, hrana::Streams& streams) {
  Opened out;
  auto token = auth::bearer_token(ctx.req.header("authorization").value_or(""));
  out.caller = resources.authorize_sql(std::string(ctx.param("resourceId")), std::string(token));
  out.body = ctx.json_body();
  const Json* baton = nullptr;
  if (auto it = out.body.find("baton"); it != out.body.end() && !it->is_null()) baton = &*it;
  if (baton) {
    if (!baton->is_string()) throw model::ApiError::bad_request("`baton` must be a string or null");
    out.entry = streams.take(baton->get<std::string>(), out.caller.token_hash);
    if (!out.entry)
      throw model::ApiError(400, "stream_expired",
                            "the stream expired or its baton is not valid: streams close after "
                            "being idle, and an open transaction is rolled back then");
  } else {
    out.entry = std::make_unique<hrana::Streams::Entry>();
    out.entry->resource_id = out.caller.database_id;
    out.entry->token_hash = out.caller.token_hash;
    out.entry->stream.session = resources.open_sql_session(out.caller);
  }
  return out;
}

// Keeps the stream for the client's next request unless it was closed; returns the baton.
Json keep_stream(hrana::Streams& streams, std::unique_ptr<hrana::Streams::Entry> entry) {
  if (entry->stream.closed) return nullptr;
  return streams.put(std::move(entry));
}

// Runs `work(opened, budget)` on the request's stream, adds what it spent to the ledger (also
// when it fails), keeps the stream unless closed, and answers `render(baton, result)`; any
// ApiError becomes a Hrana error body.
template <typename Work, typename Render>
net::Response on_stream(Context& ctx, service::ResourceService& resources, hrana::Streams& streams,
                        Work work, Render render) {
  try {
    Opened opened = open_stream(ctx, resources, streams);
    hrana::RequestBudget budget;
    budget.out_of_credits = opened.caller.out_of_credits;
    decltype(work(opened, budget)) result;
    try {
      result = work(opened, budget);
    } catch (...) {
      resources.record_sql_usage(opened.caller, budget.usage);
      throw;
    }
    resources.record_sql_usage(opened.caller, budget.usage);
    return render(keep_stream(streams, std::move(opened.entry)), std::move(result));
  } catch (const model::ApiError& e) {
    return hrana_error(e);
  }
}

net::Response pipeline(Context& ctx, service::ResourceService& resources, hrana::Streams& streams) {
  return on_stream(
      ctx, resources, streams,
      [](Opened& opened, hrana::RequestBudget& budget) {
        auto requests = opened.body.find("requests");
        if (requests == opened.body.end() || !requests->is_array())
          throw model::ApiError::bad_request("a pipeline needs `requests`, an array");
        Json results = Json::array();
        for (const auto& request : *requests)
          results.push_back(hrana::execute_request(opened.entry->stream, request, budget));
        return results;
      },
      [](Json baton, Json results) {
        return json_response(200, Json{{"baton", std::move(baton)},
                                       {"base_url", nullptr},
                                       {"results", std::move(results)}});
      });
}

// v3/cursor: a batch whose results come back as lines of CursorEntry after a first line
// {baton, base_url}. The batch runs to the end first (results are bounded by the plan's
// maxRows/maxResultBytes), then the entries are written.
net::Response cursor(Context& ctx, service::ResourceService& resources, hrana::Streams& streams) {
  return on_stream(
      ctx, resources, streams,
      [](Opened& opened, hrana::RequestBudget& budget) {
        auto batch = opened.body.find("batch");
        if (batch == opened.body.end() || !batch->is_object())
          throw model::ApiError::bad_request("a cursor request needs `batch`, an object");
        std::vector<Json> entries;
        try {
          Json result = hrana::execute_batch(opened.entry->stream, *batch, budget);
          const Json& results = result["step_results"];
          const Json& errors = result["step_errors"];
          for (size_t i = 0; i < results.size(); ++i) {
            if (!errors[i].is_null()) {
              entries.push_back({{"type", "step_error"}, {"step", i}, {"error", errors[i]}});
            } else if (!results[i].is_null()) {
              entries.push_back(
                  {{"type", "step_begin"}, {"step", i}, {"cols", results[i]["cols"]}});
              for (const auto& row : results[i]["rows"])
                entries.push_back({{"type", "row"}, {"row", row}});
              entries.push_back({{"type", "step_end"},
                                 {"affected_row_count", results[i]["affected_row_count"]},
                                 {"last_insert_rowid", results[i]["last_insert_rowid"]}});
            }
          }
        } catch (const hrana::ProtoError& e) {
          entries.push_back({{"type", "error"}, {"error", hrana::encode_error(e.code, e.what())}});
        }
        return entries;
      },
      [](Json baton, std::vector<Json> entries) {
        std::string body = Json{{"baton", std::move(baton)}, {"base_url", nullptr}}.dump() + "\n";
        for (const auto& entry : entries)
          body += entry.dump(-1, ' ', false, Json::error_handler_t::replace) + "\n";
        return net::Response::json(200, std::move(body));
      });
}

}  // namespace

void add_routes(RouteTable& routes, service::ResourceService& resources, hrana::Streams& streams) {
  // Not an OIDC route: the database token is checked by the service.
  routes.add("POST", "/v1/databases/{resourceId}/query",
             {false, {}, false, [&resources](Context& ctx) {
                auto token = auth::bearer_token(ctx.req.header("authorization").value_or(""));
                return json_response(200, resources.query(std::string(ctx.param("resourceId")),
                                                          std::string(token), ctx.json_body()));
              }});
  for (std::string base : {"/v1/databases", "/v1/databases/{resourceId}"}) {
    for (const char* version : {"/v2", "/v3"}) {
      // Version check: a 2xx says the server speaks this version with JSON.
      routes.add("GET", base + version,
                 {false, {}, false, [](Context&) { return json_response(200, Json::object()); }});
      routes.add("POST", base + version + "/pipeline",
                 {false, {}, false, [&resources, &streams](Context& ctx) {
                    return pipeline(ctx, resources, streams);
                  }});
    }
    routes.add("POST", base + "/v3/cursor",
               {false, {}, false, [&resources, &streams](Context& ctx) {
                  return cursor(ctx, resources, streams);
                }});
  }
}

}  // namespace wharf::api::dataplane
