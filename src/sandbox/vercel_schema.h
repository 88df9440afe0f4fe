// Strict validators for the request bodies of Vercel's Marketplace API (vercel-api.md §2–10),
// as wharf-sandbox enforces them on a partner's calls. Each body validator returns every
// problem it finds (not just the first), each named by its JSON path, e.g.
// `billing.items[0].total: must be a decimal string …`, so one 400 tells a provider all that
// is wrong. They are pure functions of the body (and, for billing data, the clock), so other
// modules (a conformance checker, tests) can reuse them.
//
// Strictness follows the spec: "no extra properties" is enforced exactly where the spec says
// it (request bodies, Period, Secret, ExperimentationItem); sub-objects whose schema allows
// or does not mention additional properties (BillingPlan, Notification, BillingItem, …) only
// have their known fields type-checked, so a partner is not failed for something Vercel
// accepts.
#pragma once
#include <cstdint>
#include <initializer_list>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

#include "model/api_error.h"
#include "model/json_check.h"

namespace wharf::sandbox::schema {

using Errors = std::vector<model::FieldError>;

// "a: is required; b.c: must be a string" — the text of a 400's message.
std::string describe(const Errors& errors);
// Each error as "path: message", for the exchange log's findings.
std::vector<std::string> findings(const Errors& errors);

// RFC 3339 date-time ("2025-01-31T23:59:59Z", fraction and ±hh:mm offset allowed; the
// date must exist). On success stores the instant in *epoch_ms when given.
bool parse_date_time(std::string_view text, int64_t* epoch_ms = nullptr);
// ^[0-9]+(\.[0-9]+)?$ — Vercel's money strings (USD, no sign, no exponent).
bool is_money(std::string_view text);

// ---- building blocks: each records problems of the value `v` found at `path` -------------

// Records "<path>.<key>: is not allowed (unknown property)" for keys outside `allowed`.
void check_no_extra(model::Checker& check, const model::Json& obj, const std::string& path,
                    std::initializer_list<std::string_view> allowed);
// Notification (§2.1). `allow_clear`: JSON null and a string are also accepted (the
// `Notification | string` of the update endpoints, where null clears).
void check_notification(model::Checker& check, const model::Json& v, const std::string& path,
                        bool allow_clear);
void check_billing_plan(model::Checker& check, const model::Json& v, const std::string& path);
void check_secret(model::Checker& check, const model::Json& v, const std::string& path);
// A Secret[]; also rejects two secrets with the same name (they would be one env var).
void check_secrets(model::Checker& check, const model::Json& v, const std::string& path);
// Period (§2.5); on success stores its bounds.
bool check_period(model::Checker& check, const model::Json& v, const std::string& path,
                  int64_t* start_ms, int64_t* end_ms);
void check_billing_item(model::Checker& check, const model::Json& v, const std::string& path);
void check_discount(model::Checker& check, const model::Json& v, const std::string& path);
void check_usage(model::Checker& check, const model::Json& v, const std::string& path);
void check_balance(model::Checker& check, const model::Json& v, const std::string& path);
// ExperimentationItem (§2.10); `create`: `id` required, otherwise `id` is refused.
void check_experimentation_item(model::Checker& check, const model::Json& v,
                                const std::string& path, bool create);
// Resource metadata (§5.1): string → string | number | boolean | string[] | number[].
void check_metadata(model::Checker& check, const model::Json& v, const std::string& path);

// ---- whole request bodies ------------------------------------------------------------------

Errors update_installation(const model::Json& body);  // §4.1
Errors rotate_credentials(const model::Json& body);   // §4.4
Errors create_event(const model::Json& body);         // §4.5
Errors import_resource(const model::Json& body);      // §5.3
Errors update_resource(const model::Json& body);      // §5.4
Errors update_secrets(const model::Json& body);       // §6.1 / §6.2
// §7.1, including the clock rules: eod inside period, period.end and eod not older than
// 24 h before `now_ms`.
Errors billing_data(const model::Json& body, int64_t now_ms);
// §7.2 types and shapes (always enforced, test mode or not).
Errors invoice(const model::Json& body);
// §7.2 "full validation" that test mode may skip: invoiceDate inside period, items present,
// item/discount dates inside the period, discounts not exceeding the items.
Errors invoice_rules(const model::Json& body);
Errors invoice_action(const model::Json& body);         // §7.4
Errors balances(const model::Json& body);               // §7.5
Errors sso_token(const model::Json& body);              // §8.1 (form fields as strings)
Errors oauth_token(const model::Json& body);            // §8.2
Errors experimentation_items(const model::Json& body);  // §9.1
Errors experimentation_patch(const model::Json& body);  // §9.2
Errors global_config_put(const model::Json& body);      // §9.4
Errors deployment_action(const model::Json& body);      // §10.1
// §10.2 Create Check: name (req), isRerequestable, requires, targets, blocks, timeout (ms, a
// positive integer), source {kind: "integration" (req), externalResourceId?}; nothing else.
Errors create_check(const model::Json& body);
// §10.2 Update Check Run: status, conclusion, conclusionText, externalId, externalUrl, output,
// completedAt; nothing else. status "completed" needs a conclusion and "queued"/"running"
// refuse one (a body without status is judged against the run's state by the caller).
Errors update_check_run(const model::Json& body);
// §10.3 legacy Checks v1: create {name (req, ≤100), blocking (req), path?, detailsUrl?,
// externalId?, rerequestable?} and update {name?, path?, status? (running|completed),
// conclusion?, detailsUrl?, output?, externalId?}; nothing else.
Errors create_check_v1(const model::Json& body);
Errors update_check_v1(const model::Json& body);

// Exact decimal arithmetic for money strings: invoice totals are sums of decimal strings and
// must not pick up binary floating-point error. Arbitrary precision (digits + scale).
class Money {
 public:
  Money() = default;  // zero
  // Accepts exactly the money pattern above.
  static std::optional<Money> parse(std::string_view text);

  Money operator+(const Money& other) const;
  Money operator-(const Money& other) const;
  // <0, 0, >0 as *this is less than, equal to, greater than `other`.
  int compare(const Money& other) const;
  bool negative() const { return negative_; }
  // Rounded half away from zero to whole cents.
  Money round_cents() const;
  // Decimal string with at least two fraction digits ("12.50", "0.000025", "-3.00").
  std::string str() const;

 private:
  bool negative_ = false;
  std::string digits_ = "0";  // |value| * 10^scale_, no leading zeros
  size_t scale_ = 0;
};

}  // namespace wharf::sandbox::schema
