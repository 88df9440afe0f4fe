// Server-rendered dashboard pages. Everything shown comes from the services, scoped to the
// session's installation: another installation's resource is "not found".
#include "api/dashboard/pages.h"

#include "api/dashboard/html.h"
#include "service/sso.h"

namespace wharf::api::dashboard {
namespace {

using model::Json;

std::string str(const Json& j, const char* key) {
  auto it = j.find(key);
  return it != j.end() && it->is_string() ? it->get<std::string>() : std::string();
}

std::string status_badge(const std::string& status) {
  return "<span class=\"status status-" + esc(status) + "\">" + esc(status) + "</span>";
}

std::string notification_card(const Json& n) {
  if (!n.is_object()) return {};
  std::string level = str(n, "level");
  std::string h = "<div class=\"notice notice-" + esc(level) + "\" role=\"status\"><strong>" +
                  esc(str(n, "title")) + "</strong>";
  if (!str(n, "message").empty()) h += " <span>" + esc(str(n, "message")) + "</span>";
  return h + "</div>";
}

std::string resource_href(const std::string& id) {
  return "/dashboard/resources/" + net::percent_encode(id);
}

std::string plan_name(const Json& r) {
  return r.contains("billingPlan") && r["billingPlan"].is_object() ? str(r["billingPlan"], "name")
                                                                   : std::string("—");
}

std::string resources_table(const Json& resources) {
  if (resources.empty())
    return "<p class=\"empty\">No resources yet. Create one from the Vercel dashboard.</p>";
  std::string h =
      "<div class=\"table-wrap\"><table class=\"resources\"><thead><tr><th>Name</th><th>Status</th>"
      "<th>Plan</th><th>Notification</th></tr></thead><tbody>";
  for (const auto& r : resources) {
    std::string id = str(r, "id");
    h += "<tr data-resource-id=\"" + esc(id) + "\"><td><a href=\"" + esc(resource_href(id)) +
         "\">" + esc(str(r, "name")) + "</a><div class=\"muted mono\">" + esc(id) +
         "</div></td><td>" + status_badge(str(r, "status")) + "</td><td>" + esc(plan_name(r)) +
         "</td><td>" +
         (r.contains("notification") ? esc(str(r["notification"], "title")) : std::string()) +
         "</td></tr>";
  }
  return h + "</tbody></table></div>";
}

std::string usage_section(const Deps& d, const service::Session& s, const std::string& rid) {
  auto days = billing_period_days(d.clock.now_ms());
  std::string h = "<div class=\"charts\">";
  for (const auto& series : d.resources.usage_by_day(s.user.installation_id, rid, days))
    h += usage_chart(series.metric.name, days, series.values, series.metric.level,
                     series.metric.units);
  return h + "</div>";
}

std::string period_label(const Deps& d) {
  auto days = billing_period_days(d.clock.now_ms());
  return days.front() + " – " + days.back();
}

net::Response home(const Deps& d, const service::Session& s) {
  const auto& inst_id = s.user.installation_id;
  Json state = d.installations.get(inst_id).to_json();
  Json resources = d.resources.list(inst_id, {})["resources"];
  std::string h = "<h1>Resources</h1>";
  h += notification_card(state.value("notification", Json()));
  h += "<p class=\"muted\">Installation <span class=\"mono\">" + esc(inst_id) + "</span>";
  if (state.contains("billingPlan") && state["billingPlan"].is_object())
    h += " · plan " + esc(str(state["billingPlan"], "name"));
  h += "</p>";
  // The team and its contact as Vercel last gave them (Get Account Info).
  if (auto account = d.installations.account(inst_id)) {
    h += "<p class=\"muted\" id=\"account\">Team <strong>" + esc(str(*account, "name")) +
         "</strong>";
    const Json contact = account->value("contact", Json());
    if (contact.is_object() && contact.contains("email") && contact["email"].is_string()) {
      std::string who = str(contact, "name");
      h += " · contact " + (who.empty() ? std::string() : esc(who) + " ") + "&lt;" +
           esc(contact["email"].get<std::string>()) + "&gt;";
    }
    h += "</p>";
  }
  h += resources_table(resources);
  return html_page(200, "Resources", &s, h);
}

}  // namespace

net::Response resource_page(const Deps& d, const Context& ctx, const service::Session& s,
                            const std::string& rid, const ResourcePageExtras& extras) {
  const auto& inst = s.user.installation_id;
  Json r = d.resources.get(inst, rid);
  std::string base = resource_href(rid);
  std::string h = "<p class=\"crumbs\"><a href=\"/dashboard\">Resources</a> /</p>";
  h += "<h1>" + esc(str(r, "name")) + " " + status_badge(str(r, "status")) + "</h1>";
  if (!extras.notice.empty())
    h += "<div class=\"notice notice-info\" role=\"status\">" + esc(extras.notice) + "</div>";
  auto project = ctx.req.query_param("project");
  auto check = ctx.req.query_param("check");
  if (check)
    h += "<div class=\"notice notice-info\">Deployment check <span class=\"mono\">" + esc(*check) +
         "</span>" +
         (project ? " of project <span class=\"mono\">" + esc(*project) + "</span>" : "") +
         ": this resource has no deployment checks; its state is shown below.</div>";
  else if (project)
    h += "<p class=\"muted\">Opened from Vercel project <span class=\"mono\">" + esc(*project) +
         "</span>.</p>";
  if (r.contains("notification")) h += notification_card(r["notification"]);
  h += "<section class=\"card\"><h2>Details</h2><dl class=\"kv\"><dt>Resource id</dt><dd "
       "class=\"mono\">" +
       esc(rid) + "</dd><dt>Product</dt><dd>" + esc(str(r, "productId")) +
       "</dd><dt>Plan</dt><dd>" + esc(plan_name(r)) + "</dd><dt>Status</dt><dd>" +
       esc(str(r, "status")) + "</dd></dl></section>";

  // What the product offers decides what is shown (its descriptor, not its kind's name).
  const product::Descriptor* kind = d.resources.descriptor_of(str(r, "productId"));
  if (kind && kind->capabilities.config_sync && d.flags) h += flags_section(d, s, rid);
  const bool console = kind && kind->capabilities.repl;
  const bool sql = kind && kind->capabilities.sql_data_plane;
  const bool rotates = kind && (!kind->secrets.empty() || kind->capabilities.rotation);

  // Connection details: names always, values only to ADMIN and only on request.
  Json names = Json::array();
  if (extras.secrets) {
    names = *extras.secrets;
  } else {
    for (const auto& sec : d.resources.secrets(inst, rid))
      names.push_back({{"name", str(sec, "name")}});
  }
  h += "<section class=\"card\" id=\"connection\"><h2>Connection details</h2>";
  h += "<div class=\"table-wrap\"><table "
       "class=\"secrets\"><thead><tr><th>Variable</th><th>Value</th>"
       "</tr></thead><tbody>";
  for (const auto& sec : names) {
    h += "<tr><td class=\"mono\">" + esc(str(sec, "name")) + "</td><td class=\"mono secret\">";
    h += extras.secrets ? "<code class=\"secret-value\">" + esc(str(sec, "value")) + "</code>"
                        : std::string("<span class=\"masked\">••••••••</span>");
    h += "</td></tr>";
  }
  h += "</tbody></table></div>";
  if (s.admin()) {
    if (!extras.secrets)
      h += "<form method=\"post\" action=\"" + esc(base) + "/secrets\" class=\"inline\">" +
           csrf_input(s) +
           "<button type=\"submit\" id=\"show-secrets\">Show secrets</button></form>";
  } else {
    h += "<p class=\"muted\">Only team members with the ADMIN role can see secret values.</p>";
  }
  h += "</section>";

  // Management: ADMIN only; the forms are not even offered to USER sessions.
  h += "<section class=\"card\" id=\"manage\"><h2>Manage</h2>";
  if (s.admin()) {
    if (rotates)
      h += "<form method=\"post\" action=\"" + esc(base) +
           "/rotate\" class=\"inline\" data-confirm=\"Rotate the secrets? Deployed apps need a "
           "redeploy to get the new values.\">" +
           csrf_input(s) + "<button type=\"submit\" id=\"rotate\">Rotate secrets</button></form> ";
    bool suspended = str(r, "status") == "suspended";
    h += "<form method=\"post\" action=\"" + esc(base) + (suspended ? "/resume" : "/suspend") +
         "\" class=\"inline\">" + csrf_input(s) + "<button type=\"submit\" id=\"" +
         (suspended ? "resume" : "suspend") + "\" class=\"secondary\">" +
         (suspended ? "Resume" : "Suspend") + "</button></form>";
  } else {
    h += "<p class=\"muted\" id=\"read-only\">You have read-only access (role USER): rotating "
         "secrets and suspending need the ADMIN role.</p>";
  }
  h += "</section>";

  // The console (the product's REPL), when it has one; USER sessions run read-only.
  if (console) {
    h += std::string("<section class=\"card\" id=\"console\"><h2>") +
         (sql ? "SQL console" : "Console") + "</h2>";
    h += "<form id=\"console-form\" data-endpoint=\"" + esc(base) + "/console\" data-csrf=\"" +
         esc(s.csrf_token) + "\"><label for=\"console-input\" class=\"muted\">" +
         (sql ? (s.admin() ? std::string("SQL or .tables / .schema") : std::string("Read-only SQL"))
              : (s.admin() ? std::string("A command (try help)")
                           : std::string("A read-only command (try help)"))) +
         "</label><textarea id=\"console-input\" name=\"input\" rows=\"3\" spellcheck=\"false\">" +
         (sql ? "select 1" : "help") +
         "</textarea><button type=\"submit\" id=\"console-run\">Run</button></form>";
    h +=
        "<div id=\"console-output\" class=\"console-output\" aria-live=\"polite\"></div></section>";
  }

  h += "<section class=\"card\" id=\"usage\"><h2>Usage <span class=\"muted\">" +
       esc(period_label(d)) + "</span></h2>" + usage_section(d, s, rid) + "</section>";
  return html_page(200, str(r, "name"), &s, h);
}

void add_page_routes(RouteTable& routes, Deps& d) {
  auto add = [&routes, &d](const std::string& path, PageFn fn) {
    routes.add("GET", path, {false, {}, false, page_route(d, std::move(fn))});
  };
  add("/dashboard", [&d](Context&, const service::Session& s) { return home(d, s); });

  add("/dashboard/resources/{resourceId}", [&d](Context& ctx, const service::Session& s) {
    return resource_page(d, ctx, s, std::string(ctx.param("resourceId")), {});
  });

  add("/dashboard/usage", [&d](Context&, const service::Session& s) {
    Json resources = d.resources.list(s.user.installation_id, {})["resources"];
    std::string h = "<h1>Usage <span class=\"muted\">" + esc(period_label(d)) + "</span></h1>";
    if (resources.empty()) h += "<p class=\"empty\">No resources, so no usage yet.</p>";
    for (const auto& r : resources) {
      std::string id = str(r, "id");
      h += "<section class=\"card\" data-resource-id=\"" + esc(id) + "\"><h2><a href=\"" +
           esc(resource_href(id)) + "\">" + esc(str(r, "name")) + "</a></h2>" +
           usage_section(d, s, id) + "</section>";
    }
    return html_page(200, "Usage", &s, h);
  });

  add("/dashboard/billing", [&d](Context& ctx, const service::Session& s) {
    auto invoices = d.billing.invoices(s.user.installation_id);
    auto balances = d.billing.balances(s.user.installation_id);
    auto wanted = ctx.req.query_param("invoice");
    std::string h = "<h1>Billing</h1>";
    if (wanted) {
      bool found = false;
      for (const auto& i : invoices) found = found || i.id == *wanted || i.external_id == *wanted;
      if (!found)
        h += "<div class=\"notice notice-warn\" role=\"status\">Invoice <span class=\"mono\">" +
             esc(*wanted) + "</span> is not among this installation's invoices.</div>";
    }
    h += "<section class=\"card\" id=\"invoices\"><h2>Invoices</h2>";
    if (invoices.empty()) {
      h += "<p class=\"empty\">No invoices yet.</p>";
    } else {
      h += "<div "
           "class=\"table-wrap\"><table><thead><tr><th>Invoice</th><th>Period</th><th>State</th>"
           "<th class=\"num\">Total</th><th>Date</th></tr></thead><tbody>";
      for (const auto& i : invoices) {
        bool hl = wanted && (i.id == *wanted || i.external_id == *wanted);
        h += std::string("<tr") + (hl ? " class=\"highlight\"" : "") + " data-invoice-id=\"" +
             esc(i.id) + "\"><td class=\"mono\">" +
             esc(i.external_id.empty() ? i.id : i.external_id) + "</td><td>" +
             esc(i.period_start.substr(0, 10)) + " – " + esc(i.period_end.substr(0, 10)) +
             "</td><td>" + status_badge(i.state) + "</td><td class=\"num\">$" + esc(i.total) +
             "</td><td>" + esc(i.invoice_date.substr(0, 10)) + "</td></tr>";
      }
      h += "</tbody></table></div>";
    }
    h += "</section><section class=\"card\" id=\"balances\"><h2>Prepaid balances</h2>";
    if (balances.empty()) {
      h += "<p class=\"empty\">No prepaid balances.</p>";
    } else {
      h += "<div class=\"table-wrap\"><table><thead><tr><th>Applies to</th><th>Credit</th>"
           "<th class=\"num\">Value</th></tr></thead><tbody>";
      for (const auto& b : balances) {
        char value[48];
        std::snprintf(value, sizeof value, "$%lld.%02lld",
                      static_cast<long long>(b.currency_value_in_cents / 100),
                      static_cast<long long>(std::llabs(b.currency_value_in_cents % 100)));
        h += "<tr><td>" + esc(b.resource_id.value_or("Installation")) + "</td><td>" +
             esc(b.credit) + "</td><td class=\"num\">" + esc(value) + "</td></tr>";
      }
      h += "</tbody></table></div>";
    }
    return html_page(200, "Billing", &s, h + "</section>");
  });

  add("/dashboard/support", [&d](Context&, const service::Session& s) {
    std::string h = "<h1>Support</h1><section class=\"card\" id=\"support\">";
    if (d.options.support_email.empty() && d.options.support_url.empty())
      h += "<p>Contact the provider through the Vercel Marketplace integration page.</p>";
    if (!d.options.support_email.empty())
      h += "<p>E-mail: <a href=\"mailto:" + esc(d.options.support_email) + "\">" +
           esc(d.options.support_email) + "</a></p>";
    if (!d.options.support_url.empty())
      h += "<p>Help centre: <a href=\"" + esc(d.options.support_url) + "\">" +
           esc(d.options.support_url) + "</a></p>";
    h += "<p class=\"muted\">Mention your installation id <span class=\"mono\">" +
         esc(s.user.installation_id) + "</span>.</p></section>";
    return html_page(200, "Support", &s, h);
  });

  add("/dashboard/onboarding", [&d](Context&, const service::Session& s) {
    Json resources = d.resources.list(s.user.installation_id, {})["resources"];
    std::string h =
        "<h1>Getting started</h1><section class=\"card\"><ol><li>Connect a resource to a Vercel "
        "project: its <span class=\"mono\">DATABASE_URL</span>, <span "
        "class=\"mono\">DATABASE_TOKEN</span> and <span class=\"mono\">DATABASE_READONLY_TOKEN"
        "</span> become environment variables.</li><li>Send SQL with <span "
        "class=\"mono\">POST $DATABASE_URL/query</span> and <span class=\"mono\">Authorization: "
        "Bearer $DATABASE_TOKEN</span>.</li><li>Try statements in the SQL console of a "
        "resource.</li></ol></section>";
    h += resources_table(resources);
    return html_page(200, "Getting started", &s, h);
  });

  add("/dashboard/secrets", [&d](Context&, const service::Session& s) {
    Json resources = d.resources.list(s.user.installation_id, {})["resources"];
    std::string h = "<h1>Secrets</h1><p>Each resource's connection details are on its page.</p>";
    return html_page(200, "Secrets", &s, h + resources_table(resources));
  });

  add("/dashboard/experimentation", [&d](Context& ctx, const service::Session& s) {
    auto item = ctx.req.query_param("item").value_or("");
    // A flag of this installation: its page (SSO with experimentation_item_id lands here).
    if (auto path = experimentation_item_path(d, s.user.installation_id, item))
      return see_other(*path);
    std::string h =
        "<h1>Experimentation</h1><section class=\"card\"><p>Item <span class=\"mono\">" +
        esc(item) + "</span> is not a flag of this installation.</p></section>";
    return html_page(
        404, "Experimentation", &s,
        h + resources_table(d.resources.list(s.user.installation_id, {})["resources"]));
  });
}

}  // namespace wharf::api::dashboard
