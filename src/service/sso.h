// Vercel SSO into the dashboard (flows.md §2, partner-api.md §6.1): the Redirect Login URL's
// parameters, the code exchange and id_token check that start a session, where a deep link
// lands, and provider-initiated SSO links (§2.2).
#pragma once
#include <functional>
#include <optional>
#include <string>
#include <string_view>
#include <utility>
#include <vector>

#include "auth/authenticator.h"
#include "service/rate_limits.h"
#include "service/sessions.h"
#include "store/store.h"
#include "vercel/sso_client.h"

namespace wharf::service {

// Where the user wants to go (flows.md §2.1 step 2), validated.
struct DeepLink {
  std::optional<std::string> product_id, resource_id, project_id, check_id, experimentation_item_id,
      invoice_id, pr;
  std::optional<std::string> path;  // billing | usage | onboarding | secrets | support
  std::optional<std::string> url;   // a same-origin path ("/dashboard/…"), never absolute
};

struct SsoCallback {
  std::string code;
  std::string state;
  DeepLink link;
};

using QueryLookup = std::function<std::optional<std::string>(std::string_view name)>;

// Validates the Redirect Login URL's query. `public_url` is this server's public base URL
// (scheme://host[:port]); a `url` naming it is reduced to its path. Throws ApiError 400 with
// a message for people: mode other than sso, missing or malformed code/state, malformed ids,
// or a `url` that is not on this site (no open redirect). Unknown `path` values are ignored.
SsoCallback parse_sso_callback(const QueryLookup& query, std::string_view public_url);

// The path part of `url` when it stays on this site: a relative path starting with exactly
// one '/' (not "//", not "/\"), or an absolute URL on `public_url`'s origin. nullopt otherwise
// (other hosts, other schemes, backslashes, control characters).
std::optional<std::string> same_origin_path(std::string_view url, std::string_view public_url);

// The dashboard page a deep link lands on, by the priority of flows.md §2.1 step 7:
// url → invoice → experimentation item → check → resource (+project) → path → home.
std::string landing_path(const DeepLink& link);

// https://vercel.com/sso/integrations/{URLSlug}/{installationId}?{query} (flows.md §2.2);
// `sso_base` is the part before the slug. Values are percent-encoded.
std::string provider_sso_url(std::string_view sso_base, std::string_view url_slug,
                             std::string_view installation_id,
                             const std::vector<std::pair<std::string, std::string>>& query);

// The deep-link parameters provider-initiated links may carry (the Redirect Login URL's).
bool is_deep_link_param(std::string_view name);

class SsoService {
 public:
  SsoService(const vercel::SsoClient& client, const auth::Authenticator& authenticator,
             store::Store& store, SessionService& sessions, RateLimits* rate_limits = nullptr);

  // Exchanges the code (once), verifies the id_token like a user token, checks the
  // installation is active here, and starts a session. The id_token is not kept. Throws
  // ApiError: 400 refused code, 401 id_token not valid, 403 installation not active,
  // 429 too many sign-ins to the installation (abuse limit), 502 Vercel unreachable.
  SessionService::Started sign_in(const SsoCallback& callback);

 private:
  const vercel::SsoClient& client_;
  const auth::Authenticator& authenticator_;
  store::Store& store_;
  SessionService& sessions_;
  RateLimits* rate_limits_;
};

}  // namespace wharf::service
