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

// The flags product (flags_pages.cpp): a flag set's section of its resource page, the flag
// pages and their forms, and where an experimentation item id lands (nullopt: not a flag of
// this installation).
std::string flags_section(const Deps& deps, const service::Session& s,
                          const std::string& resource_id);
std::optional<std::string> experimentation_item_path(const Deps& deps,
                                                     const std::string& installation_id,
                                                     const std::string& item_id);

net::Response resource_page(const Deps& deps, const Context& ctx, const service::Session& s,
                            const std::string& resource_id, const ResourcePageExtras& extras);

}  // namespace wharf::api::dashboard
