// The Import Resource URL (flows.md F14): Vercel sends the browser here with installation_id,
// product_id (when one was chosen), state (opaque, single-use) and return (where to send the
// browser back). The user is signed in through provider-initiated SSO when they have no
// session for that installation; an ADMIN then creates a database, or picks one the
// installation already has, and Wharf pushes it to Vercel with Import Resource — completed
// before the browser is redirected to `return` with installation_id, resource_id and state.
#include "api/dashboard/html.h"
#include "api/respond.h"
#include "service/imports.h"
#include "service/sso.h"

namespace wharf::api::dashboard {

namespace {

// scheme://host[:port] of an absolute http(s) URL, or "".
std::string origin_of(std::string_view url) {
  auto scheme = url.find("://");
  if (scheme == std::string_view::npos) return "";
  std::string_view s = url.substr(0, scheme);
  if (s != "https" && s != "http") return "";
  auto end = url.find_first_of("/?#", scheme + 3);
  return std::string(url.substr(0, end));
}

struct ImportRequest {
  std::string installation_id;
  std::string product_id;  // may be empty
  std::string state;
  std::string return_url;
};

// The request's parameters, checked: `return` must lead back to Vercel (the origin SSO uses),
// never to another site.
ImportRequest checked(const Deps& d,
                      const std::function<std::optional<std::string>(const char*)>& get) {
  ImportRequest r;
  r.installation_id = get("installation_id").value_or("");
  r.product_id = get("product_id").value_or("");
  r.state = get("state").value_or("");
  r.return_url = get("return").value_or("");
  std::vector<model::FieldError> bad;
  if (r.installation_id.empty()) bad.push_back({"installation_id", "is required"});
  if (r.state.empty()) bad.push_back({"state", "is required"});
  std::string vercel = origin_of(d.options.sso_base);
  if (r.return_url.empty() || origin_of(r.return_url).empty() || origin_of(r.return_url) != vercel)
    bad.push_back({"return", "must be a URL on " + vercel});
  if (!bad.empty())
    throw model::ApiError::validation("This import link is not valid. Start again from Vercel.",
                                      bad);
  return r;
}

std::string hidden(const char* name, const std::string& value) {
  return std::string("<input type=\"hidden\" name=\"") + name + "\" value=\"" + esc(value) + "\">";
}

net::Response import_page(const Deps& d, const service::Session& s, const ImportRequest& r) {
  require_admin(s, "Importing a database into Vercel");
  std::string keep = csrf_input(s) + hidden("installation_id", r.installation_id) +
                     hidden("state", r.state) + hidden("return", r.return_url);
  std::string h = "<section class=\"card\" id=\"import\"><h1>Import into Vercel</h1>";
  h += "<p class=\"muted\">Choose the database to add to your Vercel team. It is added "
       "before you are sent back to Vercel.</p>";

  // A new database.
  h += "<form method=\"post\" action=\"/dashboard/import\" id=\"import-new\">" + keep +
       "<h2>Create a database</h2><label>Name <input name=\"name\" required "
       "maxlength=\"128\" value=\"imported-db\"></label><label>Plan <select name=\"plan\">";
  for (const auto& product : d.catalog->products()) {
    if (!r.product_id.empty() && product.id != r.product_id) continue;
    for (const model::Plan* plan : d.catalog->plans_of(product)) {
      if (plan->disabled) continue;
      h += "<option value=\"" + esc(product.id + "/" + plan->id) + "\">" +
           esc(product.name + " — " + plan->name) + "</option>";
    }
  }
  h += "</select></label><button type=\"submit\">Create and import</button></form>";

  // One it already has (Vercel lacks it, or it is imported again: an upsert).
  model::Json existing = d.resources.list(r.installation_id, {})["resources"];
  h += "<h2>Or one you already have</h2>";
  if (existing.empty()) h += "<p class=\"muted\">No databases yet.</p>";
  for (const auto& res : existing) {
    if (!r.product_id.empty() && res.value("productId", "") != r.product_id) continue;
    h += "<form method=\"post\" action=\"/dashboard/import\" class=\"import-existing\">" + keep +
         hidden("resource_id", res.value("id", "")) + "<span>" + esc(res.value("name", "")) +
         " <span class=\"muted\">" + esc(res.value("id", "")) +
         "</span></span><button type=\"submit\">Import</button></form>";
  }
  h += "</section>";
  net::Response page = html_page(200, "Import into Vercel", &s, h);
  // The form's answer redirects to Vercel: browsers hold a form's redirects to form-action.
  for (auto& [name, value] : page.headers)
    if (name == "Content-Security-Policy") {
      auto at = value.find("form-action 'self'");
      if (at != std::string::npos)
        value.insert(at + std::string("form-action 'self'").size(),
                     " " + origin_of(d.options.sso_base));
    }
  return page;
}

}  // namespace

void add_import_routes(RouteTable& routes, Deps& d) {
  if (!d.imports || !d.catalog) return;
  routes.add(
      "GET", "/dashboard/import",
      {false, {}, false, [&d](Context& ctx) {
         auto s = session_of(ctx, d);
         try {
           auto r = checked(d, [&](const char* n) { return ctx.req.query_param(n); });
           if (!s || s->user.installation_id != r.installation_id) {
             // Signed in through Vercel first (§2.2), then back here.
             if (d.options.url_slug.empty())
               throw model::ApiError::unauthorized(
                   "Open this integration from Vercel first, then import again.");
             std::string here = d.options.public_url + std::string(ctx.req.target);
             return see_other(service::provider_sso_url(d.options.sso_base, d.options.url_slug,
                                                        r.installation_id, {{"url", here}}));
           }
           return import_page(d, *s, r);
         } catch (const model::ApiError& e) {
           return error_page(e, s ? &*s : nullptr);
         }
       }});

  routes.add(
      "POST", "/dashboard/import",
      {false, {}, false, form_route(d, [&d](Context& ctx, const service::Session& s) {
         auto f = form_fields(ctx.req);
         auto get = [&f](const char* n) -> std::optional<std::string> {
           auto it = f.find(n);
           return it == f.end() ? std::nullopt : std::optional(it->second);
         };
         auto r = checked(d, get);
         if (s.user.installation_id != r.installation_id)
           throw model::ApiError::forbidden(
               "You are signed in to another installation. Start again from Vercel.");
         require_admin(s, "Importing a database into Vercel");
         std::string rid = get("resource_id").value_or("");
         if (rid.empty()) {
           // A new database, created on our side: the state (single-use) makes a
           // resubmitted form find the one it created.
           std::string choice = get("plan").value_or("");
           auto slash = choice.find('/');
           model::ProvisionResourceRequest req;
           req.product_id = choice.substr(0, slash);
           req.billing_plan_id = slash == std::string::npos ? "" : choice.substr(slash + 1);
           req.name = get("name").value_or("");
           if (req.name.empty() || req.product_id.empty() || req.billing_plan_id.empty())
             throw model::ApiError::validation("Give the database a name and choose a plan.",
                                               {{"name", "is required"}, {"plan", "is required"}});
           model::Json made = d.resources.provision(r.installation_id, req, "import:" + r.state);
           rid = made.value("id", "");
         }
         d.imports->import(r.installation_id, rid);
         std::string back = r.return_url;
         back += back.find('?') == std::string::npos ? '?' : '&';
         back += "installation_id=" + net::percent_encode(r.installation_id) +
                 "&resource_id=" + net::percent_encode(rid) +
                 "&state=" + net::percent_encode(r.state);
         return see_other(back);
       })});
}

}  // namespace wharf::api::dashboard
