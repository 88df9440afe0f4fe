#include "sandbox/vercel_schema.h"

#include <algorithm>
#include <set>

#include "util/clock.h"
#include "util/utf8.h"

namespace wharf::sandbox::schema {

using model::Checker;
using model::Json;
using model::Kind;

namespace {

constexpr std::string_view kMoneyMessage =
    "must be a decimal string like \"12.50\" (^[0-9]+(\\.[0-9]+)?$: USD, no sign, no symbol)";
constexpr std::string_view kDateTimeMessage =
    "must be an RFC 3339 date-time string such as \"2025-01-31T23:59:59Z\"";
constexpr int64_t kDayMs = 24LL * 3600 * 1000;

std::string join(const std::string& path, std::string_view key) {
  return Checker::join(path, key);
}

// JSON type names as a provider would say them.
std::string kind_of(const Json& v) {
  if (v.is_null()) return "null";
  if (v.is_string()) return "a string";
  if (v.is_boolean()) return "a boolean";
  if (v.is_number()) return "a number";
  if (v.is_object()) return "an object";
  if (v.is_array()) return "an array";
  return "a value";
}

// The member `key` of `obj` if present, non-null and of `kind`; otherwise nullptr with the
// problem recorded. Unlike Checker::get, an explicit null for a non-nullable optional field
// is an error: Vercel's schema gives such fields no null type. With `nullable`, a null is
// returned as is.
const Json* field(Checker& check, const Json& obj, std::string_view key, const std::string& path,
                  Kind kind, bool required, bool nullable = false) {
  auto it = obj.find(key);
  if (it == obj.end()) {
    if (required) check.add(join(path, key), "is required");
    return nullptr;
  }
  if (it->is_null()) {
    if (nullable) return &*it;
    check.add(join(path, key), required ? "is required (got null)" : "must not be null");
    return nullptr;
  }
  if (!model::is_kind(*it, kind)) {
    check.add(join(path, key),
              std::string("must be ") + model::kind_name(kind) + ", got " + kind_of(*it));
    return nullptr;
  }
  return &*it;
}

std::optional<std::string> str(Checker& check, const Json& obj, std::string_view key,
                               const std::string& path, bool required, size_t max_len = 0,
                               bool non_empty = false) {
  const Json* v = field(check, obj, key, path, Kind::kString, required);
  if (!v) return std::nullopt;
  const auto& s = v->get_ref<const std::string&>();
  if (non_empty && s.empty()) {
    check.add(join(path, key), "must not be empty");
    return std::nullopt;
  }
  if (max_len && util::utf8_length(s) > max_len) {
    check.add(join(path, key), "must be at most " + std::to_string(max_len) + " characters (got " +
                                   std::to_string(util::utf8_length(s)) + ")");
    return std::nullopt;
  }
  return s;
}

std::optional<std::string> enum_of(Checker& check, const Json& obj, std::string_view key,
                                   const std::string& path, bool required,
                                   std::initializer_list<std::string_view> allowed,
                                   bool nullable = false) {
  const Json* v = field(check, obj, key, path, Kind::kString, required, nullable);
  if (!v || v->is_null()) return std::nullopt;
  const auto& s = v->get_ref<const std::string&>();
  for (auto a : allowed)
    if (s == a) return s;
  std::string msg = "must be one of";
  bool first = true;
  for (auto a : allowed) {
    msg += first ? " \"" : ", \"";
    msg += a;
    msg += '"';
    first = false;
  }
  msg += " (got \"" + s + "\")";
  check.add(join(path, key), msg);
  return std::nullopt;
}

std::optional<int64_t> date_time(Checker& check, const Json& obj, std::string_view key,
                                 const std::string& path, bool required) {
  const Json* v = field(check, obj, key, path, Kind::kString, required);
  if (!v) return std::nullopt;
  int64_t ms = 0;
  if (!parse_date_time(v->get_ref<const std::string&>(), &ms)) {
    check.add(join(path, key), std::string(kDateTimeMessage) + " (got \"" +
                                   v->get_ref<const std::string&>() + "\")");
    return std::nullopt;
  }
  return ms;
}

std::optional<std::string> money(Checker& check, const Json& obj, std::string_view key,
                                 const std::string& path, bool required) {
  auto it = obj.find(key);
  // A number where a money string belongs is the commonest mistake; say so precisely.
  if (it != obj.end() && it->is_number()) {
    check.add(join(path, key), std::string(kMoneyMessage) + ", got a number");
    return std::nullopt;
  }
  const Json* v = field(check, obj, key, path, Kind::kString, required);
  if (!v) return std::nullopt;
  const auto& s = v->get_ref<const std::string&>();
  if (!is_money(s)) {
    check.add(join(path, key), std::string(kMoneyMessage) + " (got \"" + s + "\")");
    return std::nullopt;
  }
  return s;
}

void number(Checker& check, const Json& obj, std::string_view key, const std::string& path,
            bool required, bool integer = false) {
  field(check, obj, key, path, integer ? Kind::kInteger : Kind::kNumber, required);
}

void boolean(Checker& check, const Json& obj, std::string_view key, const std::string& path,
             bool required) {
  field(check, obj, key, path, Kind::kBool, required);
}

bool is_url_or_sso(const std::string& s) {
  return s.rfind("https://", 0) == 0 || s.rfind("http://", 0) == 0 || s.rfind("sso:", 0) == 0;
}

bool object_body(Checker& check, const Json& body) {
  if (body.is_object()) return true;
  check.add("body", "must be a JSON object, got " + kind_of(body));
  return false;
}

// Optional start/end of a billing line or discount (§2.6–2.7).
void line_dates(Checker& check, const Json& v, const std::string& path) {
  auto start = date_time(check, v, "start", path, false);
  auto end = date_time(check, v, "end", path, false);
  if (start && end && *end < *start) check.add(join(path, "end"), "must not be before start");
}

template <typename Fn>
void each(Checker& check, const Json& obj, std::string_view key, const std::string& path,
          bool required, Fn&& fn) {
  const Json* arr = field(check, obj, key, path, Kind::kArray, required);
  if (!arr) return;
  for (size_t i = 0; i < arr->size(); ++i) fn((*arr)[i], Checker::index(join(path, key), i));
}

bool days_in_month_ok(int y, int m, int d) {
  static constexpr int kDays[] = {31, 28, 31, 30, 31, 30, 31, 31, 30, 31, 30, 31};
  bool leap = (y % 4 == 0 && y % 100 != 0) || y % 400 == 0;
  int max = kDays[m - 1] + (m == 2 && leap ? 1 : 0);
  return d >= 1 && d <= max;
}

}  // namespace

std::string describe(const Errors& errors) {
  std::string out;
  for (const auto& e : errors) {
    if (!out.empty()) out += "; ";
    out += e.key + ": " + e.message;
  }
  return out;
}

std::vector<std::string> findings(const Errors& errors) {
  std::vector<std::string> out;
  out.reserve(errors.size());
  for (const auto& e : errors) out.push_back(e.key + ": " + e.message);
  return out;
}

bool parse_date_time(std::string_view text, int64_t* epoch_ms) {
  // util::parse_iso8601 also takes a space separator and impossible dates (Feb 31); a JSON
  // Schema `date-time` does not.
  if (text.size() < 20 || (text[10] != 'T' && text[10] != 't')) return false;
  int64_t ms = 0;
  if (!util::parse_iso8601(std::string(text), &ms)) return false;
  auto num = [&](size_t pos, size_t n) {
    int v = 0;
    for (size_t i = pos; i < pos + n; ++i) v = v * 10 + (text[i] - '0');
    return v;
  };
  if (!days_in_month_ok(num(0, 4), num(5, 2), num(8, 2))) return false;
  if (epoch_ms) *epoch_ms = ms;
  return true;
}

bool is_money(std::string_view text) {
  return model::is_decimal_string(text);
}

void check_no_extra(Checker& check, const Json& obj, const std::string& path,
                    std::initializer_list<std::string_view> allowed) {
  if (!obj.is_object()) return;
  for (auto it = obj.begin(); it != obj.end(); ++it) {
    if (std::find(allowed.begin(), allowed.end(), it.key()) != allowed.end()) continue;
    std::string msg = "is not allowed (unknown property; allowed:";
    bool first = true;
    for (auto a : allowed) {
      msg += first ? " " : ", ";
      msg += a;
      first = false;
    }
    check.add(join(path, it.key()), msg + ")");
  }
}

void check_notification(Checker& check, const Json& v, const std::string& path, bool allow_clear) {
  if (allow_clear && (v.is_null() || v.is_string())) return;
  if (!v.is_object()) {
    check.add(path, std::string("must be a Notification object {level, title, message?, href?}") +
                        (allow_clear ? ", a string or null" : "") + ", got " + kind_of(v));
    return;
  }
  enum_of(check, v, "level", path, true, {"info", "warn", "error"});
  str(check, v, "title", path, true, 0, true);
  str(check, v, "message", path, false);
  if (auto href = str(check, v, "href", path, false); href && !is_url_or_sso(*href))
    check.add(join(path, "href"),
              "must be an absolute http:// or https:// URL or an sso: URL (got \"" + *href + "\")");
}

void check_billing_plan(Checker& check, const Json& v, const std::string& path) {
  if (!v.is_object()) {
    check.add(path, "must be a BillingPlan object, got " + kind_of(v));
    return;
  }
  str(check, v, "id", path, true, 0, true);
  enum_of(check, v, "type", path, true, {"prepayment", "subscription"});
  str(check, v, "name", path, true, 0, true);
  str(check, v, "description", path, false);
  boolean(check, v, "paymentMethodRequired", path, false);
  str(check, v, "cost", path, false);
  str(check, v, "effectiveDate", path, false);
  for (const char* list : {"details", "highlightedDetails"}) {
    each(check, v, list, path, false, [&](const Json& d, const std::string& p) {
      if (!d.is_object()) {
        check.add(p, "must be an object {label, value?}, got " + kind_of(d));
        return;
      }
      str(check, d, "label", p, true);
      str(check, d, "value", p, false);
    });
  }
  // Additional properties are allowed (§2.2); the ones the spec names are type-checked.
  enum_of(check, v, "scope", path, false, {"installation", "resource"});
  number(check, v, "preauthorizationAmount", path, false);
  for (const char* m :
       {"initialCharge", "minimumAmount", "maximumAmount", "maximumAmountAutoPurchasePerPeriod"})
    str(check, v, m, path, false);
  boolean(check, v, "disabled", path, false);
}

void check_secret(Checker& check, const Json& v, const std::string& path) {
  if (!v.is_object()) {
    check.add(path, "must be a Secret object {name, value, prefix?, environmentOverrides?}, got " +
                        kind_of(v));
    return;
  }
  check_no_extra(check, v, path, {"name", "value", "prefix", "environmentOverrides"});
  str(check, v, "name", path, true, 0, true);
  str(check, v, "value", path, true);
  str(check, v, "prefix", path, false);
  if (const Json* ov = field(check, v, "environmentOverrides", path, Kind::kObject, false)) {
    std::string p = join(path, "environmentOverrides");
    check_no_extra(check, *ov, p, {"development", "preview", "production"});
    for (const char* env : {"development", "preview", "production"}) str(check, *ov, env, p, false);
  }
}

void check_secrets(Checker& check, const Json& v, const std::string& path) {
  if (!v.is_array()) {
    check.add(path, "must be an array of Secret, got " + kind_of(v));
    return;
  }
  std::set<std::string> names;
  for (size_t i = 0; i < v.size(); ++i) {
    std::string p = Checker::index(path, i);
    check_secret(check, v[i], p);
    if (v[i].is_object() && v[i].contains("name") && v[i]["name"].is_string()) {
      const auto& name = v[i]["name"].get_ref<const std::string&>();
      if (!names.insert(name).second)
        check.add(join(p, "name"), "duplicates the secret name \"" + name +
                                       "\" (each name becomes one environment variable)");
    }
  }
}

bool check_period(Checker& check, const Json& v, const std::string& path, int64_t* start_ms,
                  int64_t* end_ms) {
  if (!v.is_object()) {
    check.add(path, "must be a Period object {start, end}, got " + kind_of(v));
    return false;
  }
  check_no_extra(check, v, path, {"start", "end"});
  auto start = date_time(check, v, "start", path, true);
  auto end = date_time(check, v, "end", path, true);
  if (!start || !end) return false;
  if (*end < *start) {
    check.add(join(path, "end"), "must not be before " + join(path, "start"));
    return false;
  }
  if (start_ms) *start_ms = *start;
  if (end_ms) *end_ms = *end;
  return true;
}

// The fields BillingItem and Discount share (vercel-api.md §2.6–2.7); false if `v` is not
// an object at all.
bool check_line(Checker& check, const Json& v, const std::string& path, const char* type) {
  if (!v.is_object()) {
    check.add(path, std::string("must be a ") + type + " object, got " + kind_of(v));
    return false;
  }
  str(check, v, "billingPlanId", path, true, 0, true);
  str(check, v, "resourceId", path, false);
  line_dates(check, v, path);
  str(check, v, "name", path, true, 0, true);
  str(check, v, "details", path, false);
  return true;
}

void check_billing_item(Checker& check, const Json& v, const std::string& path) {
  if (!check_line(check, v, path, "BillingItem")) return;
  money(check, v, "price", path, true);
  number(check, v, "quantity", path, true);
  str(check, v, "units", path, true);
  money(check, v, "total", path, true);
}

void check_discount(Checker& check, const Json& v, const std::string& path) {
  if (!check_line(check, v, path, "Discount")) return;
  money(check, v, "amount", path, true);
}

void check_usage(Checker& check, const Json& v, const std::string& path) {
  if (!v.is_object()) {
    check.add(path, "must be a Usage object, got " + kind_of(v));
    return;
  }
  str(check, v, "resourceId", path, false);
  str(check, v, "name", path, true, 0, true);
  enum_of(check, v, "type", path, true, {"total", "interval", "rate"});
  str(check, v, "units", path, true);
  number(check, v, "dayValue", path, true);
  number(check, v, "periodValue", path, true);
  number(check, v, "planValue", path, false);
}

void check_balance(Checker& check, const Json& v, const std::string& path) {
  if (!v.is_object()) {
    check.add(path, "must be a Balance object, got " + kind_of(v));
    return;
  }
  str(check, v, "resourceId", path, false);
  str(check, v, "credit", path, false);
  str(check, v, "nameLabel", path, false);
  // §1.2: "an integer number of US cents".
  number(check, v, "currencyValueInCents", path, true, /*integer=*/true);
}

void check_experimentation_item(Checker& check, const Json& v, const std::string& path,
                                bool create) {
  if (!v.is_object()) {
    check.add(path, "must be an ExperimentationItem object, got " + kind_of(v));
    return;
  }
  if (create) {
    check_no_extra(check, v, path,
                   {"id", "slug", "origin", "category", "name", "description", "isArchived",
                    "createdAt", "updatedAt"});
    str(check, v, "id", path, true, 1024, true);
  } else {
    if (v.contains("id"))
      check.add(join(path, "id"), "is not allowed in a patch (the item id is in the path)");
    check_no_extra(check, v, path,
                   {"id", "slug", "origin", "category", "name", "description", "isArchived",
                    "createdAt", "updatedAt"});
  }
  str(check, v, "slug", path, true, 1024, true);
  str(check, v, "origin", path, true, 2048, true);
  enum_of(check, v, "category", path, false, {"flag", "experiment"});
  str(check, v, "name", path, false, 1024);
  str(check, v, "description", path, false, 1024);
  boolean(check, v, "isArchived", path, false);
  number(check, v, "createdAt", path, false);
  number(check, v, "updatedAt", path, false);
}

void check_metadata(Checker& check, const Json& v, const std::string& path) {
  if (!v.is_object()) {
    check.add(path, "must be an object, got " + kind_of(v));
    return;
  }
  for (auto it = v.begin(); it != v.end(); ++it) {
    const Json& x = *it;
    bool ok = x.is_string() || x.is_number() || x.is_boolean();
    if (x.is_array()) {
      bool strings = std::all_of(x.begin(), x.end(), [](const Json& e) { return e.is_string(); });
      bool numbers = std::all_of(x.begin(), x.end(), [](const Json& e) { return e.is_number(); });
      ok = strings || numbers;
    }
    if (!ok)
      check.add(join(path, it.key()),
                "must be a string, number, boolean, string[] or number[], got " + kind_of(x));
  }
}

// ---- bodies ---------------------------------------------------------------------------------

Errors update_installation(const Json& body) {
  Checker check;
  if (!object_body(check, body)) return check.errors();
  check_no_extra(check, body, "", {"status", "externalId", "billingPlan", "notification"});
  enum_of(check, body, "status", "", false,
          {"ready", "pending", "onboarding", "suspended", "resumed", "uninstalled", "error"},
          /*nullable=*/true);
  field(check, body, "externalId", "", Kind::kString, false, /*nullable=*/true);
  if (const Json* v = field(check, body, "billingPlan", "", Kind::kObject, false, true);
      v && !v->is_null())
    check_billing_plan(check, *v, "billingPlan");
  if (auto it = body.find("notification"); it != body.end())
    check_notification(check, *it, "notification", /*allow_clear=*/true);
  return check.errors();
}

Errors rotate_credentials(const Json& body) {
  Checker check;
  if (!object_body(check, body)) return check.errors();
  str(check, body, "client_secret", "", true, 0, true);
  str(check, body, "client_id", "", false);
  return check.errors();
}

Errors create_event(const Json& body) {
  Checker check;
  if (!object_body(check, body)) return check.errors();
  check_no_extra(check, body, "", {"event"});
  const Json* ev = field(check, body, "event", "", Kind::kObject, true);
  if (!ev) return check.errors();
  auto type =
      enum_of(check, *ev, "type", "event", true, {"installation.updated", "resource.updated"});
  if (type == "resource.updated") {
    check_no_extra(check, *ev, "event", {"type", "resourceId", "productId"});
    str(check, *ev, "resourceId", "event", true, 0, true);
    str(check, *ev, "productId", "event", false);
  } else if (type == "installation.updated") {
    check_no_extra(check, *ev, "event", {"type", "billingPlanId"});
    str(check, *ev, "billingPlanId", "event", false);
  }
  return check.errors();
}

Errors import_resource(const Json& body) {
  Checker check;
  if (!object_body(check, body)) return check.errors();
  check_no_extra(check, body, "",
                 {"productId", "name", "status", "ownership", "metadata", "billingPlan",
                  "notification", "extras", "secrets"});
  str(check, body, "productId", "", true, 0, true);
  str(check, body, "name", "", true, 0, true);
  enum_of(check, body, "status", "", true,
          {"ready", "pending", "onboarding", "suspended", "resumed", "uninstalled", "error"});
  enum_of(check, body, "ownership", "", false, {"owned", "linked", "sandbox"});
  if (const Json* m = field(check, body, "metadata", "", Kind::kObject, false))
    check_metadata(check, *m, "metadata");
  if (const Json* p = field(check, body, "billingPlan", "", Kind::kObject, false))
    check_billing_plan(check, *p, "billingPlan");
  if (const Json* n = field(check, body, "notification", "", Kind::kObject, false))
    check_notification(check, *n, "notification", false);
  field(check, body, "extras", "", Kind::kObject, false);
  if (const Json* s = field(check, body, "secrets", "", Kind::kArray, false))
    check_secrets(check, *s, "secrets");
  return check.errors();
}

Errors update_resource(const Json& body) {
  Checker check;
  if (!object_body(check, body)) return check.errors();
  check_no_extra(check, body, "",
                 {"ownership", "name", "status", "metadata", "billingPlan", "notification",
                  "extras", "secrets"});
  enum_of(check, body, "ownership", "", false, {"owned", "linked", "sandbox"});
  str(check, body, "name", "", false, 0, true);
  enum_of(check, body, "status", "", false,
          {"ready", "pending", "onboarding", "suspended", "resumed", "uninstalled", "error"});
  if (const Json* m = field(check, body, "metadata", "", Kind::kObject, false))
    check_metadata(check, *m, "metadata");
  if (const Json* p = field(check, body, "billingPlan", "", Kind::kObject, false))
    check_billing_plan(check, *p, "billingPlan");
  if (auto it = body.find("notification"); it != body.end())
    check_notification(check, *it, "notification", /*allow_clear=*/true);
  field(check, body, "extras", "", Kind::kObject, false);
  if (auto it = body.find("secrets"); it != body.end()) {
    if (it->is_array()) {
      check_secrets(check, *it, "secrets");
    } else if (it->is_object()) {
      check_no_extra(check, *it, "secrets", {"secrets", "partial"});
      if (const Json* s = field(check, *it, "secrets", "secrets", Kind::kArray, true))
        check_secrets(check, *s, "secrets.secrets");
      boolean(check, *it, "partial", "secrets", false);
    } else {
      check.add("secrets",
                "must be an array of Secret or an object {secrets, partial?}, got " + kind_of(*it));
    }
  }
  return check.errors();
}

Errors update_secrets(const Json& body) {
  Checker check;
  if (!object_body(check, body)) return check.errors();
  check_no_extra(check, body, "", {"secrets", "partial"});
  if (const Json* s = field(check, body, "secrets", "", Kind::kArray, true))
    check_secrets(check, *s, "secrets");
  boolean(check, body, "partial", "", false);
  return check.errors();
}

Errors billing_data(const Json& body, int64_t now_ms) {
  Checker check;
  if (!object_body(check, body)) return check.errors();
  check_no_extra(check, body, "", {"timestamp", "eod", "period", "billing", "usage"});
  date_time(check, body, "timestamp", "", true);
  auto eod = date_time(check, body, "eod", "", true);
  int64_t start = 0, end = 0;
  bool period_ok = false;
  if (const Json* p = field(check, body, "period", "", Kind::kObject, true))
    period_ok = check_period(check, *p, "period", &start, &end);
  if (period_ok) {
    if (end < now_ms - kDayMs)
      check.add("period.end", "must not be more than 24 h in the past (it is " +
                                  body["period"]["end"].get<std::string>() + ", now is " +
                                  util::format_iso8601_ms(now_ms) + ")");
    if (eod && (*eod < start || *eod > end))
      check.add("eod", "must lie inside period (" + body["period"]["start"].get<std::string>() +
                           " .. " + body["period"]["end"].get<std::string>() + "), got " +
                           body["eod"].get<std::string>());
  }
  if (eod && *eod < now_ms - kDayMs)
    check.add("eod", "must not be more than 24 h in the past (it is " +
                         body["eod"].get<std::string>() + ", now is " +
                         util::format_iso8601_ms(now_ms) + ")");
  if (auto it = body.find("billing"); it == body.end() || it->is_null()) {
    check.add("billing", "is required");
  } else if (it->is_array()) {
    for (size_t i = 0; i < it->size(); ++i)
      check_billing_item(check, (*it)[i], Checker::index("billing", i));
  } else if (it->is_object()) {
    each(check, *it, "items", "billing", true,
         [&](const Json& x, const std::string& p) { check_billing_item(check, x, p); });
    each(check, *it, "discounts", "billing", false,
         [&](const Json& x, const std::string& p) { check_discount(check, x, p); });
  } else {
    check.add("billing", "must be an array of BillingItem or an object {items, discounts?}, got " +
                             kind_of(*it));
  }
  each(check, body, "usage", "", true,
       [&](const Json& x, const std::string& p) { check_usage(check, x, p); });
  return check.errors();
}

Errors invoice(const Json& body) {
  Checker check;
  if (!object_body(check, body)) return check.errors();
  check_no_extra(
      check, body, "",
      {"externalId", "invoiceDate", "memo", "period", "items", "discounts", "final", "test"});
  str(check, body, "externalId", "", false, 0, true);
  date_time(check, body, "invoiceDate", "", true);
  str(check, body, "memo", "", false);
  if (const Json* p = field(check, body, "period", "", Kind::kObject, true))
    check_period(check, *p, "period", nullptr, nullptr);
  each(check, body, "items", "", true,
       [&](const Json& x, const std::string& p) { check_billing_item(check, x, p); });
  each(check, body, "discounts", "", false,
       [&](const Json& x, const std::string& p) { check_discount(check, x, p); });
  boolean(check, body, "final", "", false);
  if (const Json* t = field(check, body, "test", "", Kind::kObject, false)) {
    check_no_extra(check, *t, "test", {"validate", "result"});
    boolean(check, *t, "validate", "test", false);
    enum_of(check, *t, "result", "test", false, {"paid", "notpaid", "overdue"});
  }
  return check.errors();
}

Errors invoice_rules(const Json& body) {
  // Runs on a body that passed invoice(), so shapes can be trusted.
  Checker check;
  int64_t start = 0, end = 0, date = 0;
  parse_date_time(body["period"]["start"].get<std::string>(), &start);
  parse_date_time(body["period"]["end"].get<std::string>(), &end);
  parse_date_time(body["invoiceDate"].get<std::string>(), &date);
  if (date < start || date > end)
    check.add("invoiceDate", "must fall inside period (" +
                                 body["period"]["start"].get<std::string>() + " .. " +
                                 body["period"]["end"].get<std::string>() + "), got " +
                                 body["invoiceDate"].get<std::string>());
  if (body["items"].empty()) check.add("items", "must contain at least one item");
  auto inside = [&](const Json& line, const std::string& p) {
    for (const char* k : {"start", "end"}) {
      int64_t t = 0;
      if (line.contains(k) && parse_date_time(line[k].get<std::string>(), &t) &&
          (t < start || t > end))
        check.add(join(p, k), "must lie inside period, got " + line[k].get<std::string>());
    }
  };
  Money items_total, discounts_total;
  for (size_t i = 0; i < body["items"].size(); ++i) {
    inside(body["items"][i], Checker::index("items", i));
    items_total = items_total + *Money::parse(body["items"][i]["total"].get<std::string>());
  }
  if (body.contains("discounts")) {
    for (size_t i = 0; i < body["discounts"].size(); ++i) {
      inside(body["discounts"][i], Checker::index("discounts", i));
      discounts_total =
          discounts_total + *Money::parse(body["discounts"][i]["amount"].get<std::string>());
    }
  }
  if (discounts_total.compare(items_total) > 0)
    check.add("discounts",
              "total " + discounts_total.str() + " exceeds the items total " + items_total.str());
  return check.errors();
}

Errors invoice_action(const Json& body) {
  Checker check;
  if (!object_body(check, body)) return check.errors();
  check_no_extra(check, body, "", {"action", "reason", "total"});
  enum_of(check, body, "action", "", true, {"refund"});
  str(check, body, "reason", "", true, 0, true);
  money(check, body, "total", "", true);
  return check.errors();
}

Errors balances(const Json& body) {
  Checker check;
  if (!object_body(check, body)) return check.errors();
  check_no_extra(check, body, "", {"timestamp", "balances"});
  date_time(check, body, "timestamp", "", true);
  each(check, body, "balances", "", true,
       [&](const Json& x, const std::string& p) { check_balance(check, x, p); });
  return check.errors();
}

Errors sso_token(const Json& body) {
  Checker check;
  if (!object_body(check, body)) return check.errors();
  auto grant =
      enum_of(check, body, "grant_type", "", false, {"authorization_code", "refresh_token"});
  if (grant == "refresh_token") {
    str(check, body, "refresh_token", "", true, 0, true);
  } else {
    str(check, body, "code", "", true, 0, true);
    str(check, body, "state", "", false);
    str(check, body, "redirect_uri", "", false);
  }
  str(check, body, "client_id", "", true, 0, true);
  str(check, body, "client_secret", "", true, 0, true);
  return check.errors();
}

Errors oauth_token(const Json& body) {
  Checker check;
  if (!object_body(check, body)) return check.errors();
  for (const char* k : {"client_id", "client_secret", "code", "redirect_uri"})
    str(check, body, k, "", true, 0, true);
  return check.errors();
}

Errors experimentation_items(const Json& body) {
  Checker check;
  if (!object_body(check, body)) return check.errors();
  check_no_extra(check, body, "", {"items"});
  const Json* items = field(check, body, "items", "", Kind::kArray, true);
  if (!items) return check.errors();
  if (items->size() > 50)
    check.add("items", "must contain at most 50 items per call (got " +
                           std::to_string(items->size()) + "); send them in batches");
  std::set<std::string> ids;
  for (size_t i = 0; i < items->size(); ++i) {
    std::string p = Checker::index("items", i);
    check_experimentation_item(check, (*items)[i], p, /*create=*/true);
    const Json& it = (*items)[i];
    if (it.is_object() && it.contains("id") && it["id"].is_string() &&
        !ids.insert(it["id"].get<std::string>()).second)
      check.add(join(p, "id"), "duplicates the id of an earlier item in this call");
  }
  return check.errors();
}

Errors experimentation_patch(const Json& body) {
  Checker check;
  if (!object_body(check, body)) return check.errors();
  check_experimentation_item(check, body, "", /*create=*/false);
  return check.errors();
}

Errors global_config_put(const Json& body) {
  Checker check;
  if (!object_body(check, body)) return check.errors();
  check_no_extra(check, body, "", {"data"});
  field(check, body, "data", "", Kind::kObject, true);
  return check.errors();
}

Errors deployment_action(const Json& body) {
  Checker check;
  if (!object_body(check, body)) return check.errors();
  enum_of(check, body, "status", "", false, {"running", "succeeded", "failed"});
  str(check, body, "statusText", "", false);
  if (auto url = str(check, body, "statusUrl", "", false); url && !is_url_or_sso(*url))
    check.add("statusUrl", "must match ^https?:// or ^sso: (got \"" + *url + "\")");
  each(check, body, "outcomes", "", false, [&](const Json& o, const std::string& p) {
    if (!o.is_object()) {
      check.add(p, "must be an object {kind, secrets}, got " + kind_of(o));
      return;
    }
    enum_of(check, o, "kind", p, true, {"resource-secrets"});
    each(check, o, "secrets", p, true, [&](const Json& s, const std::string& sp) {
      if (!s.is_object()) {
        check.add(sp, "must be an object {name, value}, got " + kind_of(s));
        return;
      }
      str(check, s, "name", sp, true, 0, true);
      str(check, s, "value", sp, true);
    });
  });
  return check.errors();
}

Errors create_check(const Json& body) {
  Checker check;
  if (!object_body(check, body)) return check.errors();
  check_no_extra(check, body, "",
                 {"name", "isRerequestable", "requires", "targets", "blocks", "timeout", "source"});
  str(check, body, "name", "", true, 100, true);
  boolean(check, body, "isRerequestable", "", false);
  enum_of(check, body, "requires", "", false, {"build-ready", "deployment-url", "none"});
  each(check, body, "targets", "", false, [&](const Json& t, const std::string& p) {
    if (!t.is_string() || t.get_ref<const std::string&>().empty())
      check.add(p, "must be a non-empty string (an environment such as \"production\"), got " +
                       (t.is_string() ? std::string("an empty string") : kind_of(t)));
  });
  enum_of(check, body, "blocks", "", false,
          {"build-start", "deployment-start", "deployment-alias", "deployment-promotion", "none"});
  if (const Json* t = field(check, body, "timeout", "", Kind::kInteger, false);
      t && t->get<int64_t>() <= 0)
    check.add("timeout", "must be a positive number of milliseconds (got " + t->dump() + ")");
  if (const Json* src = field(check, body, "source", "", Kind::kObject, false)) {
    check_no_extra(check, *src, "source", {"kind", "externalResourceId"});
    enum_of(check, *src, "kind", "source", true, {"integration"});
    str(check, *src, "externalResourceId", "source", false, 0, true);
  }
  return check.errors();
}

Errors update_check_run(const Json& body) {
  Checker check;
  if (!object_body(check, body)) return check.errors();
  check_no_extra(check, body, "",
                 {"status", "conclusion", "conclusionText", "externalId", "externalUrl", "output",
                  "completedAt"});
  auto status = enum_of(check, body, "status", "", false, {"queued", "running", "completed"});
  enum_of(check, body, "conclusion", "", false,
          {"canceled", "skipped", "timeout", "failed", "neutral", "succeeded"});
  str(check, body, "conclusionText", "", false);
  str(check, body, "externalId", "", false);
  if (auto url = str(check, body, "externalUrl", "", false);
      url && url->rfind("https://", 0) != 0 && url->rfind("http://", 0) != 0)
    check.add("externalUrl", "must be an absolute http(s) URL (got \"" + *url + "\")");
  field(check, body, "output", "", Kind::kObject, false);
  if (const Json* at = field(check, body, "completedAt", "", Kind::kNumber, false);
      at && at->get<double>() < 0)
    check.add("completedAt", "must be a time in epoch milliseconds, not negative");
  if (status == "completed" && !body.contains("conclusion"))
    check.add("conclusion", "is required when status is \"completed\"");
  if (status && *status != "completed" && body.contains("conclusion"))
    check.add("conclusion",
              "is only allowed with status \"completed\" (got status \"" + *status + "\")");
  return check.errors();
}

Errors create_check_v1(const Json& body) {
  Checker check;
  if (!object_body(check, body)) return check.errors();
  check_no_extra(check, body, "",
                 {"name", "path", "blocking", "detailsUrl", "externalId", "rerequestable"});
  str(check, body, "name", "", true, 100, true);
  str(check, body, "path", "", false, 255);
  boolean(check, body, "blocking", "", true);
  str(check, body, "detailsUrl", "", false);
  str(check, body, "externalId", "", false);
  boolean(check, body, "rerequestable", "", false);
  return check.errors();
}

Errors update_check_v1(const Json& body) {
  Checker check;
  if (!object_body(check, body)) return check.errors();
  check_no_extra(check, body, "",
                 {"name", "path", "status", "conclusion", "detailsUrl", "output", "externalId"});
  str(check, body, "name", "", false, 100, true);
  str(check, body, "path", "", false, 255);
  enum_of(check, body, "status", "", false, {"running", "completed"});
  enum_of(check, body, "conclusion", "", false,
          {"canceled", "failed", "neutral", "succeeded", "skipped"});
  str(check, body, "detailsUrl", "", false);
  field(check, body, "output", "", Kind::kObject, false);
  str(check, body, "externalId", "", false);
  return check.errors();
}

// ---- Money ----------------------------------------------------------------------------------

namespace {

std::string strip_zeros(std::string s) {
  size_t i = 0;
  while (i + 1 < s.size() && s[i] == '0') ++i;
  return s.substr(i);
}

int compare_magnitude(const std::string& a, const std::string& b) {
  if (a.size() != b.size()) return a.size() < b.size() ? -1 : 1;
  return a.compare(b) < 0 ? -1 : (a == b ? 0 : 1);
}

std::string add_magnitude(const std::string& a, const std::string& b) {
  std::string out;
  int carry = 0;
  for (size_t i = 0; i < std::max(a.size(), b.size()) || carry; ++i) {
    int d = carry;
    if (i < a.size()) d += a[a.size() - 1 - i] - '0';
    if (i < b.size()) d += b[b.size() - 1 - i] - '0';
    out.push_back(static_cast<char>('0' + d % 10));
    carry = d / 10;
  }
  std::reverse(out.begin(), out.end());
  return strip_zeros(out);
}

// a - b for a >= b.
std::string sub_magnitude(const std::string& a, const std::string& b) {
  std::string out;
  int borrow = 0;
  for (size_t i = 0; i < a.size(); ++i) {
    int d = (a[a.size() - 1 - i] - '0') - borrow;
    if (i < b.size()) d -= b[b.size() - 1 - i] - '0';
    borrow = d < 0 ? 1 : 0;
    if (d < 0) d += 10;
    out.push_back(static_cast<char>('0' + d));
  }
  std::reverse(out.begin(), out.end());
  return strip_zeros(out);
}

}  // namespace

std::optional<Money> Money::parse(std::string_view text) {
  if (!is_money(text)) return std::nullopt;
  Money m;
  auto dot = text.find('.');
  std::string whole(text.substr(0, dot));
  std::string frac = dot == std::string_view::npos ? "" : std::string(text.substr(dot + 1));
  m.digits_ = strip_zeros(whole + frac);
  m.scale_ = frac.size();
  return m;
}

namespace {
// Both magnitudes at the larger scale.
std::pair<std::string, std::string> aligned(const std::string& a, size_t sa, const std::string& b,
                                            size_t sb, size_t* scale) {
  *scale = std::max(sa, sb);
  return {strip_zeros(a + std::string(*scale - sa, '0')),
          strip_zeros(b + std::string(*scale - sb, '0'))};
}
}  // namespace

Money Money::operator+(const Money& other) const {
  Money r;
  auto [a, b] = aligned(digits_, scale_, other.digits_, other.scale_, &r.scale_);
  if (negative_ == other.negative_) {
    r.digits_ = add_magnitude(a, b);
    r.negative_ = negative_;
  } else if (compare_magnitude(a, b) >= 0) {
    r.digits_ = sub_magnitude(a, b);
    r.negative_ = negative_;
  } else {
    r.digits_ = sub_magnitude(b, a);
    r.negative_ = other.negative_;
  }
  if (r.digits_ == "0") r.negative_ = false;
  return r;
}

Money Money::operator-(const Money& other) const {
  Money neg = other;
  if (neg.digits_ != "0") neg.negative_ = !neg.negative_;
  return *this + neg;
}

int Money::compare(const Money& other) const {
  Money diff = *this - other;
  if (diff.digits_ == "0") return 0;
  return diff.negative_ ? -1 : 1;
}

Money Money::round_cents() const {
  if (scale_ <= 2) return *this;
  size_t drop = scale_ - 2;
  std::string padded =
      std::string(drop + 1 > digits_.size() ? drop + 1 - digits_.size() : 0, '0') + digits_;
  std::string kept = padded.substr(0, padded.size() - drop);
  bool up = padded[padded.size() - drop] >= '5';
  Money r;
  r.scale_ = 2;
  r.digits_ = strip_zeros(up ? add_magnitude(kept, "1") : kept);
  r.negative_ = negative_ && r.digits_ != "0";
  return r;
}

std::string Money::str() const {
  std::string d = digits_;
  if (d.size() <= scale_) d = std::string(scale_ + 1 - d.size(), '0') + d;
  std::string whole = d.substr(0, d.size() - scale_);
  std::string frac = d.substr(d.size() - scale_);
  while (frac.size() > 2 && frac.back() == '0') frac.pop_back();
  while (frac.size() < 2) frac.push_back('0');
  return (negative_ ? "-" : "") + whole + "." + frac;
}

}  // namespace wharf::sandbox::schema
