// The flags product's HTTP surface under FLAGS_URL = <public URL>/v1/flags/{resourceId}:
//
// Provider API, `Authorization: Bearer <FLAGS_ADMIN_KEY>` (the error envelope of the spec):
//   GET    …/flags               {flags: [flag]}
//   POST   …/flags               a flag definition → 201 flag; or {flags: [definition…]}
//                                (≤ 500, all or none) → 201 {flags}
//   GET    …/flags/{key}         flag
//   PATCH  …/flags/{key}         top-level members to change (null removes one) → flag
//   DELETE …/flags/{key}         204
//
// OpenFeature Remote Evaluation Protocol (OFREP), `Authorization: Bearer <FLAGS_SDK_KEY>` (or
// the admin key), so an OFREP provider configured with baseUrl = FLAGS_URL works unchanged:
//   POST …/ofrep/v1/evaluate/flags/{key}   {context} → {key, value, variant, reason, metadata}
//                                          404 FLAG_NOT_FOUND, 400 {key, errorCode, errorDetails}
//   POST …/ofrep/v1/evaluate/flags         {context} → {flags: [...]} with an ETag; If-None-Match
//                                          on an unchanged flag set and context → 304
//   GET  …/ofrep/v1/configuration          what the provider may assume (name, polling)
#pragma once
#include "api/route.h"
#include "service/flags.h"

namespace wharf::api::flags {

void add_routes(RouteTable& routes, service::FlagService& flags);

}  // namespace wharf::api::flags
