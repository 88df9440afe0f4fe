// The data plane, authenticated by `Authorization: Bearer <DATABASE_TOKEN or
// DATABASE_READONLY_TOKEN>`, the credentials a Vercel project receives as env vars:
// - POST /v1/databases/{resourceId}/query — Wharf's own API. Body: {"sql": "...", "params":
//   [...]} or {"statements": [{sql, params}, …]} (one transaction). Answer: {"results":
//   [{columns, rows, rowsAffected, lastInsertId}]}.
// - libSQL's Hrana over HTTP (hrana.h) relative to DATABASE_URL, so `createClient({url:
//   DATABASE_URL, authToken: DATABASE_TOKEN})` works: POST …/v2/pipeline, …/v3/pipeline,
//   …/v3/cursor and GET …/v2, …/v3. A client resolves these against DATABASE_URL, which
//   has no trailing slash, so they arrive as /v1/databases/v2/pipeline and the token names
//   the database; /v1/databases/{resourceId}/v2/pipeline (a URL with a trailing slash) works
//   too, for that database's tokens only.
#pragma once
#include "api/dataplane/hrana.h"
#include "api/route.h"
#include "service/resources.h"

namespace wharf::api::dataplane {

void add_routes(RouteTable& routes, service::ResourceService& resources, hrana::Streams& streams);

}  // namespace wharf::api::dataplane
