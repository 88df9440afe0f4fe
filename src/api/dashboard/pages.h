// The resource page is rendered by GET and by the actions that answer with it (revealed or
// rotated secrets are shown once, in the answer to the POST, never in a URL).
#pragma once
#include <optional>
#include <string>

#include "api/dashboard/routes.h"

namespace wharf::api::dashboard {

struct ResourcePageExtras {
  std::optional<model::Json> secrets;  // Secret[] to show in clear (ADMIN only)
  std::string notice;                  // a one-line confirmation
};

net::Response resource_page(const Deps& deps, const Context& ctx, const service::Session& s,
                            const std::string& resource_id, const ResourcePageExtras& extras);

}  // namespace wharf::api::dashboard
