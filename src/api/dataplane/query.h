// The data plane: POST /v1/databases/{resourceId}/query with `Authorization: Bearer
// <DATABASE_TOKEN or DATABASE_READONLY_TOKEN>`, the credentials a Vercel project receives
// as env vars. Body: {"sql": "...", "params": [...]} or {"statements": [{sql, params}, …]}
// (one transaction). Answer: {"results": [{columns, rows, rowsAffected, lastInsertId}]}.
#pragma once
#include "api/route.h"
#include "service/resources.h"

namespace wharf::api::dataplane {

void add_routes(RouteTable& routes, service::ResourceService& resources);

}  // namespace wharf::api::dataplane
