// The flags product in the dashboard: a flag set's flags on its resource page, a page per flag
// with its editor, and the experimentation deep link. Reads for every member; every change
// needs the ADMIN role and the session's CSRF token, and goes through FlagService like the
// provider API (so Vercel's experimentation items and Global Config follow).
#include <functional>

#include "api/dashboard/html.h"
#include "api/dashboard/pages.h"

namespace wharf::api::dashboard {

using model::Json;

namespace {

std::string str(const Json& j, const char* key) {
  auto it = j.find(key);
  return it != j.end() && it->is_string() ? it->get<std::string>() : std::string();
}

std::string resource_base(const std::string& rid) {
  return "/dashboard/resources/" + net::percent_encode(rid);
}

std::string flag_href(const std::string& rid, const std::string& key) {
  return service::FlagService::page_path(rid, key);
}

std::string state_of(const Json& flag) {
  if (flag.value("archived", false)) return "archived";
  return flag.value("enabled", true) ? "on" : "off";
}

std::string badge(const std::string& state) {
  return "<span class=\"status status-flag-" + esc(state) + "\" data-flag-state=\"" + esc(state) +
         "\">" + esc(state) + "</span>";
}

// What the flag serves when no rule matches, in words.
std::string serves(const Json& flag) {
  if (flag.contains("rollout") && flag["rollout"].is_object()) {
    const Json& variants = flag["rollout"].value("variants", Json::array());
    int64_t total = 0;
    for (const auto& v : variants) total += v.value("weight", int64_t{0});
    std::string out;
    for (const auto& v : variants) {
      if (!out.empty()) out += ", ";
      int64_t w = v.value("weight", int64_t{0});
      out += str(v, "variant") + " " +
             std::to_string(total > 0 ? (w * 1000 / total) / 10.0 : 0.0).substr(0, 5) + "%";
    }
    return "rollout: " + out;
  }
  return str(flag, "defaultVariant");
}

service::FlagService& flags_of(const Deps& d) {
  if (!d.flags) throw model::ApiError::not_found("this server sells no feature flags");
  return *d.flags;
}

std::string form(const std::string& action, const service::Session& s, const std::string& inner,
                 const std::string& confirm = "") {
  return "<form method=\"post\" action=\"" + esc(action) + "\" class=\"inline\"" +
         (confirm.empty() ? std::string() : " data-confirm=\"" + esc(confirm) + "\"") + ">" +
         csrf_input(s) + inner + "</form> ";
}

struct FlagPageExtras {
  std::string notice;
  std::vector<model::FieldError> errors;
  std::optional<std::string> definition_text;  // what the user submitted, kept on an error
};

net::Response flag_page(const Deps& d, const service::Session& s, const std::string& rid,
                        const std::string& key, const FlagPageExtras& extras = {}) {
  auto& flags = flags_of(d);
  store::ResourceRow row = flags.resource_of(s.user.installation_id, rid);
  Json flag = flags.get(row, key);
  std::string href = flag_href(rid, key);
  std::string h = "<p class=\"crumbs\"><a href=\"/dashboard\">Resources</a> / <a href=\"" +
                  esc(resource_base(rid)) + "\">" + esc(row.name) + "</a> /</p>";
  h += "<h1 id=\"flag-title\">" + esc(str(flag, "name")) + " " + badge(state_of(flag)) + "</h1>";
  if (!extras.notice.empty())
    h += "<div class=\"notice notice-info\" role=\"status\">" + esc(extras.notice) + "</div>";
  if (!extras.errors.empty()) {
    h += "<div class=\"notice notice-error\" role=\"alert\" id=\"flag-errors\"><strong>Not "
         "saved.</strong><ul>";
    for (const auto& e : extras.errors)
      h += "<li><span class=\"mono\">" + esc(e.key) + "</span>: " + esc(e.message) + "</li>";
    h += "</ul></div>";
  }
  h += "<section class=\"card\"><h2>Details</h2><dl class=\"kv\"><dt>Key</dt><dd class=\"mono\" "
       "id=\"flag-key\">" +
       esc(key) + "</dd><dt>Type</dt><dd>" + esc(str(flag, "type")) +
       "</dd><dt>Description</dt><dd>" + esc(str(flag, "description")) + "</dd><dt>Rules</dt><dd>" +
       std::to_string(flag.value("rules", Json::array()).size()) +
       "</dd><dt>Serves by default</dt><dd id=\"flag-serves\">" + esc(serves(flag)) +
       "</dd><dt>Item id</dt><dd class=\"mono\">" + esc(str(flag, "id")) + "</dd></dl></section>";

  if (s.admin()) {
    bool enabled = flag.value("enabled", true);
    bool archived = flag.value("archived", false);
    h += "<section class=\"card\" id=\"flag-actions\"><h2>Change</h2>";
    h += form(href + "/toggle", s,
              std::string("<button type=\"submit\" id=\"flag-toggle\">") +
                  (enabled ? "Turn off" : "Turn on") + "</button>");
    h += form(href + "/archive", s,
              std::string("<button type=\"submit\" id=\"flag-archive\" class=\"secondary\">") +
                  (archived ? "Unarchive" : "Archive") + "</button>");
    h += form(href + "/delete", s,
              "<button type=\"submit\" id=\"flag-delete\" class=\"secondary\">Delete</button>",
              "Delete flag " + key + "? Apps evaluating it get FLAG_NOT_FOUND.");
    // A rollout of one variant to a share of users, the rest on the default variant.
    std::string options;
    for (auto it = flag["variants"].begin(); it != flag["variants"].end(); ++it)
      options += "<option value=\"" + esc(it.key()) + "\">" + esc(it.key()) + "</option>";
    h += "<h3>Roll out</h3>" +
         form(href + "/rollout", s,
              "<label>Serve <select name=\"variant\" id=\"rollout-variant\">" + options +
                  "</select></label> <label>to <input type=\"number\" name=\"percent\" "
                  "id=\"rollout-percent\" min=\"0\" max=\"100\" step=\"0.1\" value=\"10\" "
                  "required>% of users</label>, the others get <span class=\"mono\">" +
                  esc(str(flag, "defaultVariant")) +
                  "</span>. <button type=\"submit\" id=\"rollout-save\">Save rollout</button>");
    if (flag.contains("rollout"))
      h += form(href + "/rollout", s,
                "<input type=\"hidden\" name=\"clear\" value=\"1\"><button type=\"submit\" "
                "id=\"rollout-clear\" class=\"secondary\">Remove rollout</button>");
    h += "</section>";
  }

  Json def = flag;
  for (const char* k : {"id", "createdAt", "updatedAt", "url"}) def.erase(k);
  h += "<section class=\"card\" id=\"flag-definition\"><h2>Definition</h2>";
  if (s.admin()) {
    h += "<form method=\"post\" action=\"" + esc(href) + "/edit\">" + csrf_input(s) +
         "<label for=\"flag-definition-input\" class=\"muted\">Variants, rules (conditions: "
         "equals, not_equals, in, not_in, gt, gte, lt, lte, semver_*, matches, starts_with, "
         "ends_with, contains) and rollout, as JSON</label><textarea id=\"flag-definition-input\" "
         "name=\"definition\" rows=\"18\" spellcheck=\"false\" class=\"mono\">" +
         esc(extras.definition_text.value_or(def.dump(2))) +
         "</textarea><button type=\"submit\" id=\"flag-save\">Save</button></form>";
  } else {
    h += "<pre class=\"mono\">" + esc(def.dump(2)) +
         "</pre><p class=\"muted\" id=\"read-only\">You have read-only access (role USER): "
         "changing flags needs the ADMIN role.</p>";
  }
  h += "</section>";
  return html_page(extras.errors.empty() ? 200 : 400, str(flag, "name"), &s, h);
}

// A change from a form: applied, then back to the flag (303); a refused definition is shown
// on the flag page with its field errors.
// `make_patch` gets the flag as it is now.
net::Response apply(const Deps& d, const service::Session& s, const std::string& rid,
                    const std::string& key, const std::function<Json(const Json& flag)>& make_patch,
                    std::optional<std::string> text = std::nullopt) {
  auto& flags = flags_of(d);
  store::ResourceRow row = flags.resource_of(s.user.installation_id, rid);
  try {
    flags.update(row, key, make_patch(flags.get(row, key)));
  } catch (const model::ApiError& e) {
    if (e.status != 400) throw;
    FlagPageExtras extras;
    extras.errors = e.fields;
    if (extras.errors.empty()) extras.errors.push_back({"definition", e.message});
    extras.definition_text = std::move(text);
    return flag_page(d, s, rid, key, extras);
  }
  return see_other(flag_href(rid, key));
}

}  // namespace

std::string flags_section(const Deps& d, const service::Session& s, const std::string& rid) {
  auto& flags = flags_of(d);
  store::ResourceRow row = flags.resource_of(s.user.installation_id, rid);
  Json list = flags.list(row)["flags"];
  std::string base = resource_base(rid);
  std::string h = "<section class=\"card\" id=\"flags\"><h2>Flags</h2>";
  if (list.empty()) {
    h += "<p class=\"empty\">No flags yet.</p>";
  } else {
    h += "<div class=\"table-wrap\"><table class=\"flags\"><thead><tr><th>Flag</th><th>Type</th>"
         "<th>State</th><th>Serves by default</th></tr></thead><tbody>";
    for (const auto& f : list) {
      std::string key = str(f, "key");
      h += "<tr data-flag-key=\"" + esc(key) + "\"><td><a href=\"" + esc(flag_href(rid, key)) +
           "\">" + esc(str(f, "name")) + "</a><div class=\"muted mono\">" + esc(key) +
           "</div></td><td>" + esc(str(f, "type")) + "</td><td>" + badge(state_of(f)) +
           "</td><td>" + esc(serves(f)) + "</td></tr>";
    }
    h += "</tbody></table></div>";
  }
  if (s.admin()) {
    h += "<h3>New flag</h3><form method=\"post\" action=\"" + esc(base) + "/flags\">" +
         csrf_input(s) +
         "<label>Key <input name=\"key\" id=\"new-flag-key\" required maxlength=\"128\" "
         "pattern=\"[A-Za-z0-9][A-Za-z0-9_.:\\-]*\"></label> <label>Name <input name=\"name\" "
         "id=\"new-flag-name\" maxlength=\"1024\"></label> <label>Type <select name=\"type\" "
         "id=\"new-flag-type\"><option value=\"boolean\">boolean</option><option "
         "value=\"string\">string</option><option value=\"number\">number</option><option "
         "value=\"object\">JSON</option></select></label> <button type=\"submit\" "
         "id=\"new-flag-create\">Create flag</button></form>";
  }
  return h + "</section>";
}

void add_flag_routes(RouteTable& routes, Deps& d) {
  const std::string item = "/dashboard/resources/{resourceId}/flags/{key}";
  routes.add("GET", item,
             {false, {}, false, page_route(d, [&d](Context& ctx, const service::Session& s) {
                return flag_page(d, s, std::string(ctx.param("resourceId")),
                                 std::string(ctx.param("key")));
              })});

  auto add = [&routes, &d](const std::string& path, PageFn fn) {
    routes.add("POST", path,
               {false,
                {},
                false,
                form_route(d, [fn = std::move(fn)](Context& ctx, const service::Session& s) {
                  require_admin(s, "Changing flags");
                  return fn(ctx, s);
                })});
  };

  add("/dashboard/resources/{resourceId}/flags", [&d](Context& ctx, const service::Session& s) {
    std::string rid(ctx.param("resourceId"));
    auto fields = form_fields(ctx.req);
    std::string key = fields["key"];
    std::string type = fields["type"].empty() ? "boolean" : fields["type"];
    Json def = {{"key", key}, {"type", type}};
    if (!fields["name"].empty()) def["name"] = fields["name"];
    if (type == "boolean") {
      def["variants"] = {{"on", true}, {"off", false}};
      def["defaultVariant"] = "off";
    } else {
      def["variants"] = {{"default", type == "number"   ? Json(0)
                                     : type == "object" ? Json::object()
                                                        : Json("")}};
      def["defaultVariant"] = "default";
    }
    auto& flags = flags_of(d);
    flags.create(flags.resource_of(s.user.installation_id, rid), def);
    return see_other(flag_href(rid, key));
  });

  add(item + "/toggle", [&d](Context& ctx, const service::Session& s) {
    std::string rid(ctx.param("resourceId")), key(ctx.param("key"));
    return apply(d, s, rid, key, [](const Json& flag) {
      return Json{{"enabled", !flag.value("enabled", true)}};
    });
  });

  add(item + "/archive", [&d](Context& ctx, const service::Session& s) {
    std::string rid(ctx.param("resourceId")), key(ctx.param("key"));
    return apply(d, s, rid, key, [](const Json& flag) {
      return Json{{"archived", !flag.value("archived", false)}};
    });
  });

  add(item + "/delete", [&d](Context& ctx, const service::Session& s) {
    std::string rid(ctx.param("resourceId")), key(ctx.param("key"));
    auto& flags = flags_of(d);
    flags.remove(flags.resource_of(s.user.installation_id, rid), key);
    return see_other(resource_base(rid) + "#flags");
  });

  add(item + "/rollout", [&d](Context& ctx, const service::Session& s) {
    std::string rid(ctx.param("resourceId")), key(ctx.param("key"));
    auto fields = form_fields(ctx.req);
    if (fields.count("clear"))
      return apply(d, s, rid, key, [](const Json&) { return Json{{"rollout", nullptr}}; });
    double percent = 0;
    try {
      percent = std::stod(fields["percent"]);
    } catch (const std::exception&) {
      percent = -1;
    }
    if (!(percent >= 0 && percent <= 100))
      throw model::ApiError::validation("the share must be a number from 0 to 100",
                                        {{"percent", "must be a number from 0 to 100"}});
    // Weights in thousandths of a percent: 12.5 % → 12500 of 100000.
    auto weight = static_cast<int64_t>(percent * 1000 + 0.5);
    std::string variant = fields["variant"];
    return apply(d, s, rid, key, [&variant, weight](const Json& flag) {
      std::string fallback = str(flag, "defaultVariant");
      Json variants = Json::array();
      if (variant == fallback || weight >= 100000) {
        variants.push_back({{"variant", variant}, {"weight", 100000}});
      } else {
        variants.push_back({{"variant", variant}, {"weight", weight}});
        variants.push_back({{"variant", fallback}, {"weight", 100000 - weight}});
      }
      return Json{{"rollout", {{"variants", variants}}}};
    });
  });

  add(item + "/edit", [&d](Context& ctx, const service::Session& s) {
    std::string rid(ctx.param("resourceId")), key(ctx.param("key"));
    std::string text = form_fields(ctx.req)["definition"];
    Json def = Json::parse(text, nullptr, false);
    if (!def.is_object()) {
      FlagPageExtras extras;
      extras.errors.push_back({"definition", "is not a JSON object"});
      extras.definition_text = text;
      return flag_page(d, s, rid, key, extras);
    }
    // The whole definition replaces the flag's: members left out go back to their defaults.
    return apply(
        d, s, rid, key,
        [&def](const Json& current) {
          Json patch = def;
          for (auto it = current.begin(); it != current.end(); ++it)
            if (!def.contains(it.key()) && it.key() != "key") patch[it.key()] = nullptr;
          return patch;
        },
        text);
  });
}

std::optional<std::string> experimentation_item_path(const Deps& d,
                                                     const std::string& installation_id,
                                                     const std::string& item_id) {
  if (!d.flags) return std::nullopt;
  auto where = d.flags->locate(installation_id, item_id);
  if (!where) return std::nullopt;
  return flag_href(where->first, where->second);
}

}  // namespace wharf::api::dashboard
