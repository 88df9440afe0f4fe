#include "service/billing.h"

#include <algorithm>
#include <charconv>
#include <chrono>
#include <map>
#include <set>
#include <utility>

#include "model/api_error.h"
#include "util/log.h"
#include "vercel/outbox.h"

namespace wharf::service {

using model::ApiError;
using model::Json;
using util::Money;

namespace {

constexpr int64_t kDayMs = 24LL * 3600 * 1000;
constexpr int64_t kSettleMs = 5 * 60 * 1000;     // usage of a period is final this long after it
const Money kMinimumInvoice = Money::cents(50);  // Vercel does not charge less (§7.2)

std::string iso(int64_t ms) {
  return util::format_iso8601_ms(ms);
}

std::string month_key(int64_t ms) {
  return iso(ms).substr(0, 7);
}

// A quantity as dump() prints the number parsed from its exact decimal: integers as they
// are, fractions as the double they parse to (e.g. 0.00001 prints 1e-05).
std::string quantity_text(int64_t num, int64_t den, int digits = 6) {
  std::string s = util::ratio_str(num, den, digits);
  if (s.find('.') == std::string::npos && s.size() < 20) return s;
  return Json::parse(s).dump();
}

// JSON text written exactly as nlohmann::json::dump() writes the same values (compact, keys
// in sorted order, which the writers below keep by hand).
void put_str(std::string& out, const std::string& s) {
  bool plain = std::all_of(s.begin(), s.end(),
                           [](char c) { return c >= 0x20 && c <= 0x7e && c != '"' && c != '\\'; });
  if (!plain) {
    out += Json(s).dump();  // escapes, multi-byte UTF-8 (and rejects invalid UTF-8) as before
    return;
  }
  out += '"';
  out += s;
  out += '"';
}

void put_int(std::string& out, int64_t v) {
  char buf[24];
  auto r = std::to_chars(buf, buf + sizeof buf, v);
  out.append(buf, r.ptr);
}

// A BillingItem (BillingService::Computed::Line, private: deduced).
template <typename Line>
void put_line(std::string& out, const Line& l) {
  out += "{\"billingPlanId\":";
  put_str(out, l.plan_id);
  out += ",\"details\":";
  put_str(out, l.details);
  if (l.span) {
    out += ",\"end\":";
    put_str(out, iso(l.span->second));
  }
  out += ",\"name\":";
  put_str(out, l.name);
  out += ",\"price\":";
  put_str(out, l.price);
  out += ",\"quantity\":";
  out += l.quantity;
  if (!l.resource_id.empty()) {
    out += ",\"resourceId\":";
    put_str(out, l.resource_id);
  }
  if (l.span) {
    out += ",\"start\":";
    put_str(out, iso(l.span->first));
  }
  out += ",\"total\":";
  put_str(out, l.total_text);
  out += ",\"units\":";
  put_str(out, l.units);
  out += '}';
}

// A Discount (BillingService::Computed::Discount, private: deduced).
template <typename Discount>
void put_discount(std::string& out, const Discount& d) {
  out += "{\"amount\":";
  put_str(out, d.amount.str_cents());
  out += ",\"billingPlanId\":";
  put_str(out, d.plan_id);
  if (!d.details.empty()) {
    out += ",\"details\":";
    put_str(out, d.details);
  }
  if (d.span) {
    out += ",\"end\":";
    put_str(out, iso(d.span->second));
  }
  out += ",\"name\":";
  put_str(out, d.name);
  if (!d.resource_id.empty()) {
    out += ",\"resourceId\":";
    put_str(out, d.resource_id);
  }
  if (d.span) {
    out += ",\"start\":";
    put_str(out, iso(d.span->first));
  }
  out += '}';
}

// One Usage entry; `resource_id` null for the installation-wide aggregates.
void put_usage(std::string& out, const std::string* resource_id, const std::string& name,
               bool level, const std::string& units, int64_t day, int64_t period,
               std::optional<int64_t> plan_value) {
  out += "{\"dayValue\":";
  put_int(out, day);
  out += ",\"name\":";
  put_str(out, name);
  out += ",\"periodValue\":";
  put_int(out, period);
  if (plan_value) {
    out += ",\"planValue\":";
    put_int(out, *plan_value);
  }
  if (resource_id) {
    out += ",\"resourceId\":";
    put_str(out, *resource_id);
  }
  out += level ? ",\"type\":\"total\"" : ",\"type\":\"interval\"";
  out += ",\"units\":";
  put_str(out, units);
  out += '}';
}

void put_period(std::string& out, int64_t start, int64_t end) {
  out += "{\"end\":";
  put_str(out, iso(end));
  out += ",\"start\":";
  put_str(out, iso(start));
  out += '}';
}

std::string invoice_id_of(const std::string& resource_id, const std::string& plan_id,
                          int64_t period_start) {
  return "whf_" + (resource_id.empty() ? std::string("installation") : resource_id) + "_" +
         plan_id + "_" + month_key(period_start);
}

const char* kCreditsHold = "credits";
const char* kOverdueHold = "overdue:";
// A leftover resource of an unfinalized uninstall, suspended until it is deleted.
const char* kUninstallHold = "uninstalled";

}  // namespace

// Order of invoice states: an event never moves an invoice back (webhooks may arrive out
// of order, flows.md §3.1).
bool invoice_open(const std::string& s) {
  return s != "paid" && s != "refunded" && s != "carried" && s != "waived";
}

int invoice_state_rank(const std::string& s) {
  static const std::map<std::string, int> kRank = {
      {"submitting", 0}, {"submitted", 1},        {"draft", 2},   {"pending", 2},
      {"scheduled", 2},  {"invoiced", 3},         {"notpaid", 4}, {"overdue", 5},
      {"paid", 6},       {"refund_requested", 7}, {"refunded", 8}};
  auto it = kRank.find(s);
  return it == kRank.end() ? -1 : it->second;
}

// ---------------------------------------------------------------------------------------
// What an installation's plans and usage cost over (part of) a period.

BillingService::Computed BillingService::compute(store::ReadTx& tx,
                                                 const store::InstallationRow& inst, Period period,
                                                 int64_t cutoff, int64_t report_day) const {
  Ledger ledger;
  return compute(tx, ledger, inst, period, cutoff, report_day, Detail::kAll);
}

BillingService::Ledger::Month& BillingService::month_of(store::ReadTx& tx, Ledger& ledger,
                                                        const std::string& installation_id,
                                                        Period period) const {
  auto [it, fresh] = ledger.months.try_emplace({period.start, period.end});
  Ledger::Month& month = it->second;
  if (fresh) {
    month.spans = tx.plan_periods(installation_id, period.start, period.end);
    for (int64_t ds = period.start; ds < period.end; ds += kDayMs)
      month.days.push_back(day_key(ds));
  }
  return month;
}

std::vector<std::string> BillingService::ledger_resources(
    const std::vector<store::PlanPeriodRow>& spans) {
  std::vector<std::string> ids;
  for (const auto& span : spans)
    if (!span.resource_id.empty()) ids.push_back(span.resource_id);
  std::sort(ids.begin(), ids.end());
  ids.erase(std::unique(ids.begin(), ids.end()), ids.end());
  return ids;
}

void BillingService::expect_first_ledger(store::ReadTx& tx, const std::string& installation_id,
                                         int64_t now) const {
  // Yesterday's final figures first, unless they are done; else today's.
  const int64_t today = day_start_ms(now);
  auto st = tx.billing_state(installation_id);
  const int64_t day = st && st->final_through_ms >= today ? today : today - kDayMs;
  const Period p{month_start_ms(day), next_month_start_ms(day)};
  tx.expect_usage_between_many(ledger_resources(tx.plan_periods(installation_id, p.start, p.end)),
                               day_key(p.start), day_key(p.end - kDayMs));
}

const BillingService::Ledger::Usage& BillingService::usage_of(
    store::ReadTx& tx, Ledger& ledger, Ledger::Month& month, const std::string& resource_id,
    const product::Descriptor* kind) const {
  auto [it, unread] = month.usage.try_emplace(resource_id);
  Ledger::Usage& usage = it->second;
  if (!unread) return usage;
  if (!month.ledger) {
    month.resources = ledger_resources(month.spans);
    month.ledger = tx.usage_between_many(month.resources, month.days.front(), month.days.back());
    if (ledger.after_first_read) std::exchange(ledger.after_first_read, nullptr)();
  }
  // Priced resources come from the month's spans, so each was read above (none: no entries).
  std::vector<store::UsageEntry> entries;
  if (auto read = month.ledger->find(resource_id); read != month.ledger->end())
    entries = std::move(read->second);
  // Each entry's day, walking the days in order as the entries come (ordered by day).
  std::vector<size_t> taken;  // entries matched to a day, in order
  size_t k = 0;
  usage.day_end.resize(month.days.size());
  for (size_t d = 0; d < month.days.size(); ++d) {
    for (; k < entries.size() && entries[k].day == month.days[d]; ++k) taken.push_back(k);
    usage.day_end[d] = taken.size();
  }
  auto is_level = [kind](const std::string& m) {
    const product::MetricSpec* spec = kind ? kind->metric(m) : nullptr;
    return spec && spec->level;
  };
  // A resource has a handful of metrics: a linear look-up beats sorting a copy per entry.
  auto add_metric = [&](const std::string& m) {
    if (std::find(usage.metrics.begin(), usage.metrics.end(), m) == usage.metrics.end())
      usage.metrics.push_back(m);
  };
  for (size_t i : taken) add_metric(entries[i].metric);
  if (kind)
    for (const auto& m : kind->metrics)
      if (m.level) add_metric(m.name);
  std::sort(usage.metrics.begin(), usage.metrics.end());
  auto index = [&](const std::string& m) {
    return static_cast<size_t>(std::lower_bound(usage.metrics.begin(), usage.metrics.end(), m) -
                               usage.metrics.begin());
  };
  for (size_t i : taken) usage.values.emplace_back(index(entries[i].metric), entries[i].value);
  usage.level.resize(usage.metrics.size());
  usage.before.resize(usage.metrics.size());
  for (size_t m = 0; m < usage.metrics.size(); ++m) usage.level[m] = is_level(usage.metrics[m]);
  // A level's value before the period matters only until its first entry: not read when the
  // first day has one.
  if (kind)
    for (const auto& m : kind->metrics) {
      if (!m.level) continue;
      size_t mi = index(m.name);
      bool first_day_has = false;
      for (size_t i = 0; i < usage.day_end.front(); ++i)
        first_day_has = first_day_has || usage.values[i].first == mi;
      if (first_day_has) continue;
      auto [read, first] = month.before.try_emplace(m.name);
      if (first) read->second = tx.usage_before_many(month.resources, m.name, month.days.front());
      if (auto v = read->second.find(resource_id); v != read->second.end())
        usage.before[mi] = v->second;
    }
  return usage;
}

BillingService::Computed BillingService::compute(store::ReadTx& tx, Ledger& ledger,
                                                 const store::InstallationRow& inst, Period period,
                                                 int64_t cutoff, int64_t report_day,
                                                 Detail detail) const {
  Computed out;
  cutoff = std::min(cutoff, period.end);
  if (cutoff <= period.start) return out;
  const auto priced_key = std::make_tuple(period.start, period.end, cutoff);
  if (detail != Detail::kAll) {
    auto it = ledger.priced.find(priced_key);
    if (it != ledger.priced.end()) {
      out.groups = it->second;
      return out;
    }
  }
  const int64_t period_ms = period.end - period.start;
  const int64_t period_days = period_ms / kDayMs;
  // The spans and the ledger are read for the whole period once; a computation up to an
  // earlier cutoff takes the part before it.
  Ledger::Month& month = month_of(tx, ledger, inst.id, period);

  std::map<std::pair<std::string, std::string>, size_t> index;
  for (const auto& span : month.spans) {
    if (span.start_ms >= cutoff) continue;
    int64_t s = std::max(span.start_ms, period.start);
    int64_t e = std::min(span.end_ms.value_or(cutoff), cutoff);
    if (e <= s) continue;
    // A resource on an installation-scope plan is billed through the installation's span.
    const model::Plan* plan = catalog_->plan(span.plan_id);
    if (!span.resource_id.empty() && plan && plan->scope == "installation") continue;
    auto key = std::make_pair(span.resource_id, span.plan_id);
    auto it = index.find(key);
    if (it == index.end()) {
      it = index.emplace(key, out.groups.size()).first;
      Computed::Group g;
      g.resource_id = span.resource_id;
      g.plan_id = span.plan_id;
      g.plan = plan;
      out.groups.push_back(std::move(g));
    }
    out.groups[it->second].spans.push_back({s, e});
  }

  // Usage per resource and day, each day attributed to one group of the resource: the plan
  // it was on when the day began (or its first plan if it started that day).
  std::set<std::string> resources;
  for (const auto& g : out.groups)
    if (!g.resource_id.empty()) resources.insert(g.resource_id);
  // group index -> metric -> sum of daily values
  std::vector<std::map<std::string, int64_t>> sums(out.groups.size());
  const bool report = detail == Detail::kAll;
  const std::string report_key = report ? day_key(report_day) : std::string();
  struct Reported {
    std::map<std::string, int64_t> day, period;
  };
  std::map<std::string, Reported> reported;  // resource -> values for the usage report
  // The product kind of each resource (what its metrics are), from one read of the
  // installation's resources (deleted ones included: they are billed for their days).
  if (!ledger.kinds_read) {
    for (const auto& row : tx.resources_of(inst.id))
      ledger.kind_of[row.id] = descriptor_of(row.product_id);
    ledger.kinds_read = true;
  }
  auto& kind_of = ledger.kind_of;
  for (const auto& rid : resources) {
    // A resource transferred away since is billed here for its days but listed elsewhere.
    if (!kind_of.count(rid))
      if (auto row = tx.resource(rid)) kind_of[rid] = descriptor_of(row->product_id);
    const product::Descriptor* kind = kind_of[rid];
    std::vector<size_t> mine;
    for (size_t i = 0; i < out.groups.size(); ++i)
      if (out.groups[i].resource_id == rid) mine.push_back(i);
    // The position in `mine` of the group a day is billed to.
    auto group_for_day = [&](int64_t ds) -> std::optional<size_t> {
      std::optional<size_t> best;
      int64_t best_start = 0;
      for (size_t p = 0; p < mine.size(); ++p)
        for (const auto& [s, e] : out.groups[mine[p]].spans)
          if (s < ds + kDayMs && e > ds && (!best || s < best_start)) best = p, best_start = s;
      return best;
    };
    const Ledger::Usage& usage = usage_of(tx, ledger, month, rid, kind);
    const size_t n = usage.metrics.size();
    // Level metrics (storage) only get an entry on days with activity: a day without one
    // keeps the last known level.
    std::vector<std::optional<int64_t>> level = usage.before;
    std::vector<std::vector<int64_t>> group_sums(mine.size(), std::vector<int64_t>(n));
    std::vector<int64_t> rep_day(n), rep_period(n);
    std::vector<char> day_set(n), period_set(n);
    size_t from = 0;
    size_t day_index = 0;
    for (int64_t ds = period.start; ds < cutoff; ds += kDayMs, ++day_index) {
      const size_t to = usage.day_end[day_index];
      for (size_t i = from; i < to; ++i)
        if (usage.level[usage.values[i].first])
          level[usage.values[i].first] = usage.values[i].second;
      if (auto g = group_for_day(ds)) {
        std::vector<int64_t>& sum = group_sums[*g];
        for (size_t i = from; i < to; ++i)
          if (!usage.level[usage.values[i].first])
            sum[usage.values[i].first] += usage.values[i].second;
        for (size_t m = 0; m < n; ++m)
          if (level[m]) sum[m] += *level[m];
      }
      const std::string& key = month.days[day_index];
      if (report && key <= report_key) {
        for (size_t i = from; i < to; ++i)
          if (!usage.level[usage.values[i].first]) {
            rep_period[usage.values[i].first] += usage.values[i].second;
            period_set[usage.values[i].first] = 1;
          }
        for (size_t m = 0; m < n; ++m)
          if (level[m]) rep_period[m] = *level[m], period_set[m] = 1;
        if (key == report_key) {
          for (size_t i = from; i < to; ++i) {
            rep_day[usage.values[i].first] = usage.values[i].second;
            day_set[usage.values[i].first] = 1;
          }
          for (size_t m = 0; m < n; ++m)
            if (level[m]) rep_day[m] = *level[m], day_set[m] = 1;
        }
      }
      from = to;
    }
    for (size_t p = 0; p < mine.size(); ++p)
      for (size_t m = 0; m < n; ++m)
        if (group_sums[p][m]) sums[mine[p]][usage.metrics[m]] += group_sums[p][m];
    if (report) {
      Reported& rep = reported[rid];
      for (size_t m = 0; m < n; ++m) {
        if (period_set[m]) rep.period[usage.metrics[m]] = rep_period[m];
        if (day_set[m]) rep.day[usage.metrics[m]] = rep_day[m];
      }
    }
  }

  // Lines (totals only when the caller needs no more).
  const bool lines = detail != Detail::kTotals;
  for (size_t gi = 0; gi < out.groups.size(); ++gi) {
    auto& g = out.groups[gi];
    if (!g.plan) continue;  // a plan removed from the catalog bills nothing
    auto line = [&](std::string name, std::string details, std::string price, std::string quantity,
                    std::string units, Money total,
                    std::optional<std::pair<int64_t, int64_t>> span) {
      Computed::Line l{g.plan_id,         g.resource_id,
                       std::move(name),   std::move(details),
                       std::move(price),  std::move(quantity),
                       std::move(units),  total,
                       total.str_cents(), span};
      g.items.push_back(std::move(l));
    };
    const model::Pricing& pricing = g.plan->prices;
    if (pricing.base_fee > Money()) {
      for (const auto& [s, e] : g.spans) {
        Money total = Money::charge(pricing.base_fee, e - s, period_ms);
        g.total += total;
        if (!lines) continue;
        const bool whole = s == period.start && e == period.end;
        line(g.plan->public_json.value("name", g.plan_id) + " plan",
             whole ? "base fee" : "base fee, prorated for the time on the plan",
             pricing.base_fee.str_cents(), quantity_text(e - s, period_ms, 4), "month", total,
             whole ? std::nullopt : std::optional(std::make_pair(s, e)));
      }
    }
    int64_t first = g.spans.front().first, last = g.spans.back().second;
    for (const auto& m : pricing.metrics) {
      auto sum_it = sums[gi].find(m.ledger_metric);
      int64_t sum = sum_it == sums[gi].end() ? 0 : sum_it->second;
      int64_t den = m.type == "total" ? m.per * period_days : m.per;
      Money total = Money::charge(m.unit_price, sum, den);
      g.total += total;
      if (!lines) continue;
      line(m.name, m.type == "total" ? "average level over the period" : "consumed in the period",
           m.unit_price.str(), quantity_text(sum, den), m.unit, total,
           first != period.start || last != period.end ? std::optional(std::make_pair(first, last))
                                                       : std::nullopt);
    }
    // The plan's promotion: off what the group costs, for the periods it covers.
    const auto& promo = g.plan->discount;
    if (promo && g.plan->type == "subscription" && Money() < g.total) {
      int64_t since = first;  // when the resource (installation) took the plan
      if (promo->periods) {
        if (!ledger.all_spans) ledger.all_spans = tx.plan_periods(inst.id, 0, period.end);
        for (const auto& span : *ledger.all_spans)
          if (span.resource_id == g.resource_id && span.plan_id == g.plan_id)
            since = std::min(since, span.start_ms);
      }
      if (promo->applies(since, period.start) && Money() < promo->amount_off(g.total))
        g.discount = Computed::Discount{g.plan_id,
                                        g.resource_id,
                                        promo->name,
                                        promo->details,
                                        promo->amount_off(g.total),
                                        first != period.start || last != period.end
                                            ? std::optional(std::make_pair(first, last))
                                            : std::nullopt};
    }
  }
  if (lines) ledger.priced[priced_key] = out.groups;
  if (!report) return out;

  // Usage report: per resource, then installation-wide aggregates.
  std::map<std::string, std::pair<int64_t, int64_t>> totals;  // metric -> (day, period)
  std::map<std::string, product::MetricSpec> specs;           // metric -> as declared
  std::map<const model::Plan*, int64_t> storage_limits;       // plan -> its storage limit
  std::string& usage = out.usage;
  usage = "[";
  for (const auto& rid : resources) {
    const Reported& rep = reported[rid];
    const product::Descriptor* kind = kind_of[rid];
    std::optional<int64_t> storage_limit;
    for (const auto& g : out.groups)
      if (g.resource_id == rid && g.plan) {
        auto [lit, fresh] = storage_limits.try_emplace(g.plan, 0);
        if (fresh) lit->second = product::Limits::from_json(g.plan->limits).storage_bytes;
        if (lit->second > 0) storage_limit = lit->second;
      }
    // Every metric the kind records (zero when unused), and any other one recorded.
    std::vector<std::string> metrics;
    if (kind)
      for (const auto& m : kind->metrics) metrics.push_back(m.name);
    for (const auto& [m, v] : rep.period)
      if (std::find(metrics.begin(), metrics.end(), m) == metrics.end()) metrics.push_back(m);
    for (const auto& m : metrics) {
      product::MetricSpec spec = product::metric_spec(kind, m);
      specs.emplace(m, spec);
      auto day_it = rep.day.find(m);
      auto per_it = rep.period.find(m);
      int64_t day = day_it == rep.day.end() ? 0 : day_it->second;
      int64_t per = per_it == rep.period.end() ? 0 : per_it->second;
      if (usage.size() > 1) usage += ',';
      put_usage(usage, &rid, m, spec.level, spec.units, day, per,
                kind && m == kind->storage_metric ? storage_limit : std::nullopt);
      totals[m].first += day;
      totals[m].second += per;
    }
  }
  for (const auto& [m, v] : totals) {
    if (usage.size() > 1) usage += ',';
    put_usage(usage, nullptr, m, specs.at(m).level, specs.at(m).units, v.first, v.second,
              std::nullopt);
  }
  usage += ']';
  return out;
}

std::string BillingService::billing_data_body(const Computed& c, Period period, int64_t now,
                                              int64_t report_day) const {
  // {items, discounts} (vercel-api.md §7.1), keys in dump()'s order.
  std::string body = "{\"billing\":{";
  bool first = true;
  for (const auto& g : c.groups)
    if (g.discount) {
      body += first ? "\"discounts\":[" : ",";
      first = false;
      put_discount(body, *g.discount);
    }
  body += first ? "\"items\":[" : "],\"items\":[";
  first = true;
  for (const auto& g : c.groups)
    for (const auto& item : g.items) {
      if (!first) body += ',';
      first = false;
      put_line(body, item);
    }
  body += "]},\"eod\":";
  put_str(body, iso(std::min(report_day + kDayMs, period.end)));
  body += ",\"period\":";
  put_period(body, period.start, period.end);
  body += ",\"timestamp\":";
  put_str(body, iso(now));
  body += ",\"usage\":";
  body += c.usage;
  body += '}';
  return body;
}

// ---------------------------------------------------------------------------------------

BillingService::BillingService(store::Store& store, std::shared_ptr<const model::Catalog> catalog,
                               const util::Clock& clock, Options options)
    : store_(store), catalog_(std::move(catalog)), clock_(clock), options_(std::move(options)) {}

BillingService::~BillingService() {
  stop();
}

void BillingService::enqueue_billing_data(store::WriteTx& tx, Ledger& ledger,
                                          const store::InstallationRow& inst, int64_t now,
                                          int64_t report_day, int64_t cutoff) {
  Period period{month_start_ms(report_day), next_month_start_ms(report_day)};
  Computed c = compute(tx, ledger, inst, period, cutoff, report_day, Detail::kAll);
  vercel::Outbox::enqueue(tx, inst.id, vercel::api::submit_billing_data(inst.id, nullptr),
                          billing_data_body(c, period, now, report_day), now);
}

// Submit Invoice's body (vercel-api.md §7.2) for an invoice row and its rendered items.
std::string BillingService::invoice_body(const store::InvoiceRow& row, int64_t invoice_date,
                                         const std::string& items, const std::string& memo,
                                         const std::string& discounts) const {
  std::string body = "{";
  if (!discounts.empty()) body += "\"discounts\":" + discounts + ",";
  body += "\"externalId\":";
  put_str(body, row.id);
  if (row.final) body += ",\"final\":true";
  body += ",\"invoiceDate\":";
  put_str(body, iso(invoice_date));
  body += ",\"items\":" + items + ",\"memo\":";
  put_str(body, memo);
  body += ",\"period\":";
  put_period(body, row.period_start_ms, row.period_end_ms);
  if (row.test) {
    body += ",\"test\":{\"result\":";
    put_str(body, options_.invoice_test_result);
    body += ",\"validate\":true}";
  }
  body += '}';
  return body;
}

int BillingService::invoice_period(store::WriteTx& tx, Ledger& ledger,
                                   const store::InstallationRow& inst, Period period,
                                   int64_t cutoff, bool final, int64_t now) {
  Computed c = compute(tx, ledger, inst, period, cutoff, period.start, Detail::kItems);
  std::vector<store::InvoiceRow> carried;
  for (auto& inv : tx.invoices_of(inst.id))
    if (inv.state == "carried" && !inv.carried_into) carried.push_back(std::move(inv));

  struct Draft {
    std::string resource_id, plan_id;
    std::vector<Computed::Line> items;
    std::optional<Computed::Discount> discount;
  };
  std::vector<Draft> drafts;
  for (auto& g : c.groups) {
    if (!g.plan || g.plan->type != "subscription") continue;  // prepayment: never invoiced
    Draft d{g.resource_id, g.plan_id, {}, g.discount};
    for (auto& item : g.items)
      if (item.total != Money()) d.items.push_back(std::move(item));
    drafts.push_back(std::move(d));
  }
  // The final invoice also takes carried amounts whose resource and plan bill nothing more.
  if (final)
    for (const auto& cinv : carried)
      if (std::none_of(drafts.begin(), drafts.end(), [&](const Draft& d) {
            return d.resource_id == cinv.resource_id && d.plan_id == cinv.plan_id;
          }))
        drafts.push_back({cinv.resource_id, cinv.plan_id, {}, std::nullopt});

  int submitted = 0;
  for (auto& d : drafts) {
    store::InvoiceRow row;
    row.id = invoice_id_of(d.resource_id, d.plan_id, period.start);
    if (tx.invoice(inst.id, row.id)) continue;  // already invoiced: never twice
    std::vector<store::InvoiceRow*> taken;
    for (auto& cinv : carried) {
      if (cinv.resource_id != d.resource_id || cinv.plan_id != d.plan_id || cinv.carried_into)
        continue;
      d.items.push_back({d.plan_id, d.resource_id,
                         "Carried from " + month_key(cinv.period_start_ms),
                         "amount under $0.50 carried over from invoice " + cinv.id, cinv.total, "1",
                         "invoice", *Money::parse(cinv.total), cinv.total, std::nullopt});
      taken.push_back(&cinv);
    }
    if (d.items.empty()) continue;
    Money total;
    for (const auto& item : d.items) total += item.total;
    std::string items = "[";
    for (const auto& item : d.items) {
      if (items.size() > 1) items += ',';
      put_line(items, item);
    }
    items += ']';
    // The plan's discount comes off the invoice (never more than its items); the rest is
    // what is owed, and what the $0.50 minimum looks at.
    std::string discounts;
    const bool discounted = d.discount && Money() < d.discount->amount;
    if (discounted) {
      d.discount->amount = std::min(d.discount->amount, total);
      total -= d.discount->amount;
      discounts = "[";
      put_discount(discounts, *d.discount);
      discounts += ']';
    }
    row.installation_id = inst.id;
    row.resource_id = d.resource_id;
    row.plan_id = d.plan_id;
    row.period_start_ms = period.start;
    row.period_end_ms = period.end;
    row.items_json = items;
    row.total = total.str_cents();
    row.final = final;
    row.test = !options_.invoice_test_result.empty();
    row.created_ms = row.updated_ms = now;
    if (total < kMinimumInvoice) {
      // Nothing left after a discount: nothing to carry either.
      row.state = final || (discounted && total == Money()) ? "waived" : "carried";
    } else {
      row.state = "submitting";
      int64_t invoice_date = std::min(final ? cutoff : period.end, period.end) - 1000;
      vercel::Outbox::enqueue(
          tx, inst.id, vercel::api::submit_invoice(inst.id, nullptr),
          invoice_body(row, std::max(invoice_date, period.start), items,
                       std::string(final ? "Final invoice" : "Invoice") + " for " +
                           month_key(period.start) +
                           (d.resource_id.empty() ? "" : " — resource " + d.resource_id),
                       discounts),
          now);
      ++submitted;
    }
    for (auto* cinv : taken) {
      cinv->carried_into = row.id;
      cinv->updated_ms = now;
      tx.put_invoice(*cinv);
    }
    tx.put_invoice(row);
    util::log_info("invoice created")
        .str("installation", inst.id)
        .str("invoice", row.id)
        .str("total", row.total)
        .str("state", row.state);
  }
  return submitted;
}

bool BillingService::bill_installation(store::WriteTx& tx, const store::InstallationRow& inst,
                                       int64_t now, PassStats& stats,
                                       std::vector<std::string>& leftovers_due, Ledger& ledger) {
  auto existing = tx.billing_state(inst.id);
  store::BillingStateRow st;
  if (existing) {
    st = *existing;
  } else {
    st.installation_id = inst.id;
    st.final_through_ms = day_start_ms(inst.created_ms);
    st.invoiced_through_ms = month_start_ms(inst.created_ms);
  }
  const store::BillingStateRow before = st;
  // The uninstall cleanup of leftover resources, then the state saved if it changed.
  auto cleanup_and_save = [&] {
    bool due = false;
    cleanup_leftovers(tx, inst, st, now, stats.leftovers_suspended, due);
    if (due) leftovers_due.push_back(inst.id), ++stats.leftovers_deleting;
    bool changed = !existing || st != before;
    if (changed) tx.put_billing_state(st);
    return changed;
  };
  // Gone at Vercel, or given up on: nothing more is billed or sent; only the uninstall
  // cleanup of leftover resources goes on.
  if (st.gone_ms || st.leftovers_deleted_ms) return cleanup_and_save();
  const bool uninstalled = inst.status != "active";
  // Plan changes scheduled for a date that has come, before anything is priced: the spans
  // split at that date, so the old plan bills until it and the new one from it.
  if (!uninstalled) stats.plan_changes += apply_scheduled_plans(tx, inst.id, now);
  const int64_t end_of_service = uninstalled ? inst.deleted_ms.value_or(now) : now;
  const int64_t today = day_start_ms(now);

  // Yesterday's final figures (Vercel keeps the newest data per day; data for a day older
  // than 24 h is refused, so this is the one day a restart can still catch up).
  if (!uninstalled && st.final_through_ms < today) {
    int64_t yesterday = today - kDayMs;
    if (yesterday + kDayMs > inst.created_ms) {
      enqueue_billing_data(tx, ledger, inst, now, yesterday, next_month_start_ms(yesterday));
      ++stats.billing_data;
    }
    st.final_through_ms = today;
  }
  // Invoices for every period that ended (before the one the service ended in).
  while (st.invoiced_through_ms < month_start_ms(end_of_service)) {
    Period p{st.invoiced_through_ms, next_month_start_ms(st.invoiced_through_ms)};
    stats.invoices += invoice_period(tx, ledger, inst, p, p.end, false, now);
    st.invoiced_through_ms = p.end;
  }
  // Interim data for today.
  if (!uninstalled && now - st.last_data_ms >= options_.interval_ms) {
    enqueue_billing_data(tx, ledger, inst, now, today, next_month_start_ms(today));
    st.last_data_ms = now;
    ++stats.billing_data;
  }
  // Prepaid debits and balances.
  // The previous period's usage is final once a pass has run well into this one (the usage
  // ledger is flushed every second): from then on only this period can still be debited.
  bool previous_settled = before.last_data_ms >= month_start_ms(now) + kSettleMs;
  bool balances_changed =
      prepaid(tx, ledger, inst, std::min(now, end_of_service), previous_settled);
  if (balances_changed || (now - st.last_balance_ms >= options_.balance_interval_ms &&
                           !tx.balances_of(inst.id).empty())) {
    enqueue_balances(tx, inst.id, now);
    st.last_balance_ms = now;
    ++stats.balances;
  }
  stats.suspended += suspend_overdue(tx, inst.id, now);

  // Uninstall: final data and invoices for the period it ended in, then Finalize
  // Installation once every invoice is settled.
  if (uninstalled) {
    if (!st.final_submitted) {
      int64_t last_day = day_start_ms(end_of_service - 1);
      Period p{month_start_ms(end_of_service - 1), next_month_start_ms(end_of_service - 1)};
      if (end_of_service > inst.created_ms) {
        enqueue_billing_data(tx, ledger, inst, now, last_day, end_of_service);
        ++stats.billing_data;
        stats.invoices += invoice_period(tx, ledger, inst, p, end_of_service, true, now);
      }
      st.final_submitted = true;
      st.invoiced_through_ms = std::max(st.invoiced_through_ms, p.end);
    }
    if (!st.finalize_enqueued) {
      bool open = false;
      for (const auto& inv : tx.invoices_of(inst.id)) open = open || invoice_open(inv.state);
      if (!open) {
        vercel::Outbox::enqueue(tx, inst.id, vercel::api::finalize_installation(inst.id), now);
        st.finalize_enqueued = true;
        ++stats.finalizing;
      }
    }
  }
  if (uninstalled) return cleanup_and_save();
  bool changed = !existing || st != before;
  if (changed) tx.put_billing_state(st);
  return changed;
}

bool BillingService::prepaid(store::WriteTx& tx, Ledger& ledger, const store::InstallationRow& inst,
                             int64_t now, bool previous_settled) {
  Period current{month_start_ms(now), next_month_start_ms(now)};
  Period previous{month_start_ms(current.start - 1), current.start};
  // Any span on a prepayment plan in [previous.start, now]: the previous period's spans and
  // the current one's that began by now.
  auto prepayment = [&](const store::PlanPeriodRow& span) {
    const model::Plan* plan = catalog_->plan(span.plan_id);
    return plan && plan->type == "prepayment";
  };
  bool any = false;
  for (const auto& span : month_of(tx, ledger, inst.id, previous).spans)
    any = any || prepayment(span);
  for (const auto& span : month_of(tx, ledger, inst.id, current).spans)
    any = any || (span.start_ms <= now && prepayment(span));
  if (!any) return false;

  std::map<std::string, store::BalanceRow> balances;
  for (auto& b : tx.balances_of(inst.id)) balances[b.resource_id] = b;
  auto balance = [&](const std::string& rid) -> store::BalanceRow& {
    auto& b = balances[rid];
    b.installation_id = inst.id;
    b.resource_id = rid;
    return b;
  };
  bool changed = false;
  std::set<std::string> prepaid_resources;
  for (Period p : {previous, current}) {
    if (p.end <= inst.created_ms || (previous_settled && p.end == previous.end)) continue;
    Computed c = compute(tx, ledger, inst, p, std::min(now, p.end), p.start, Detail::kTotals);
    std::map<std::string, Money> cost;
    for (const auto& g : c.groups)
      if (g.plan && g.plan->type == "prepayment") {
        cost[g.resource_id] += g.total;
        prepaid_resources.insert(g.resource_id);
      }
    for (const auto& [rid, amount] : cost) {
      int64_t charged = tx.prepaid_charged(rid, p.start);
      int64_t due = amount.micros() - charged;
      if (due <= 0) continue;
      // From the resource's own credits first, then the installation's, the rest on the
      // resource (a negative balance, paid off by the next purchase).
      store::BalanceRow& own = balance(rid);
      int64_t from_own = std::clamp<int64_t>(own.remaining(), 0, due);
      own.debited_micros += from_own;
      int64_t rest = due - from_own;
      if (rest > 0 && !rid.empty()) {
        store::BalanceRow& shared = balance("");
        int64_t from_shared = std::clamp<int64_t>(shared.remaining(), 0, rest);
        shared.debited_micros += from_shared;
        shared.updated_ms = now;
        rest -= from_shared;
      }
      own.debited_micros += rest;
      own.updated_ms = now;
      tx.set_prepaid_charged(rid, p.start, amount.micros());
      changed = true;
    }
  }
  if (changed)
    for (const auto& [rid, b] : balances) tx.put_balance(b);

  // Out of credits: reads only, until a purchase credits the resource or the installation.
  int64_t shared_left = balances.count("") ? balances[""].remaining() : 0;
  for (const auto& rid : prepaid_resources) {
    if (rid.empty()) continue;
    auto row = tx.resource(rid);
    if (!row || row->deleted_ms || row->installation_id != inst.id) continue;
    const model::Plan* plan = catalog_->plan(row->billing_plan_id);
    bool on_prepaid = plan && plan->type == "prepayment";
    int64_t left = balances.count(rid) ? balances[rid].remaining() : 0;
    if (on_prepaid && left <= 0 && shared_left <= 0)
      hold(tx, inst.id, rid, kCreditsHold,
           notification("error", "Out of credits",
                        "The prepaid balance is used up: the database serves reads only until "
                        "more credits are bought.",
                        "/billing"),
           now);
    else
      release(tx, inst.id, rid, kCreditsHold, now);
  }
  return changed;
}

void BillingService::plan_taken(store::WriteTx& tx, const std::string& installation_id,
                                const std::string& resource_id, const std::string& plan_id,
                                int64_t now) {
  const model::Plan* plan = catalog_->plan(plan_id);
  if (!plan || plan->type != "subscription" || !plan->payment_method_required) return;
  auto text = plan->public_json.value("initialCharge", "");
  auto charge = Money::parse(text);
  if (!charge || !(Money() < *charge)) return;
  store::InvoiceRow row;
  row.id = "whf_" + (resource_id.empty() ? std::string("installation") : resource_id) + "_" +
           plan_id + "_signup";
  if (tx.invoice(installation_id, row.id)) return;  // once per resource and plan
  Period period{month_start_ms(now), next_month_start_ms(now)};
  Computed::Line line{plan_id,
                      resource_id,
                      plan->name + " sign-up",
                      "initial charge of the " + plan->name + " plan",
                      charge->str_cents(),
                      "1",
                      "sign-up",
                      *charge,
                      charge->str_cents(),
                      std::nullopt};
  std::string items = "[";
  put_line(items, line);
  items += ']';
  row.installation_id = installation_id;
  row.resource_id = resource_id;
  row.plan_id = plan_id;
  row.period_start_ms = period.start;
  row.period_end_ms = period.end;
  row.items_json = items;
  row.total = charge->str_cents();
  row.test = !options_.invoice_test_result.empty();
  row.created_ms = row.updated_ms = now;
  if (*charge < kMinimumInvoice) {
    row.state = "waived";  // Vercel charges nothing under $0.50; a one-off is not carried
  } else {
    row.state = "submitting";
    vercel::Outbox::enqueue(
        tx, installation_id, vercel::api::submit_invoice(installation_id, nullptr),
        invoice_body(row, now, items,
                     plan->name + " sign-up" +
                         (resource_id.empty() ? std::string() : " — resource " + resource_id)),
        now);
  }
  tx.put_invoice(row);
  util::log_info("sign-up invoice created")
      .str("installation", installation_id)
      .str("invoice", row.id)
      .str("total", row.total)
      .str("state", row.state);
}

void BillingService::installation_state(store::WriteTx& tx, const std::string& installation_id,
                                        const std::optional<std::string>& status,
                                        const Json& notification, int64_t now) {
  auto row = tx.installation(installation_id);
  if (!row || row->status != "active") return;
  std::optional<std::string> text;
  if (!notification.is_null()) text = notification.dump();
  if (row->notification_json == text && !status) return;
  row->notification_json = text;
  row->updated_ms = now;
  tx.put_installation(*row);
  if (options_.notice && !notification.is_null())
    options_.notice(tx, *row, notification, status, now);
  Json patch = {{"notification", notification}};
  if (status) patch["status"] = *status;
  vercel::Outbox::enqueue(tx, installation_id,
                          vercel::api::update_installation(installation_id, patch), now);
  util::log_info("installation state")
      .str("installation", installation_id)
      .str("status", status.value_or(""))
      .str("notification", notification.is_null() ? "" : notification.value("title", ""));
}

Json BillingService::notification(const std::string& level, const std::string& title,
                                  const std::string& message, const std::string& page) const {
  Json n = {{"level", level}, {"title", title}, {"message", message}};
  if (!options_.dashboard_url.empty()) n["href"] = "sso:" + options_.dashboard_url + page;
  return n;
}

const product::Descriptor* BillingService::descriptor_of(const std::string& product_id) const {
  if (options_.descriptor_of) return options_.descriptor_of(product_id);
  const model::Product* p = catalog_->product(product_id);
  return p && options_.kinds ? options_.kinds->descriptor(p->kind) : nullptr;
}

void BillingService::tell_product(store::WriteTx& tx, const store::ResourceRow& row,
                                  const std::string& status, int64_t now) const {
  // A remote product stops (or resumes) serving the resource itself: it is told from the
  // outbox, retried until it confirms. A local product is stopped by the service's checks.
  const product::Descriptor* kind = descriptor_of(row.product_id);
  if (!kind || !kind->capabilities.async_provisioning) return;
  vercel::Outbox::enqueue_product_call(tx, row.installation_id, row.id, "change",
                                       Json{{"status", status}}, now);
}

void BillingService::hold(store::WriteTx& tx, const std::string& installation_id,
                          const std::string& resource_id, const std::string& reason,
                          const Json& notification, int64_t now) {
  auto row = tx.resource(resource_id);
  if (!row || row->deleted_ms || row->installation_id != installation_id) return;
  if (row->billing_hold == reason) return;
  // Suspended by the uninstall cleanup: stays so whatever billing says (it is deleted next).
  if (row->billing_hold == kUninstallHold) return;
  // An overdue suspension outranks running out of credits.
  if (row->billing_hold && row->billing_hold->rfind(kOverdueHold, 0) == 0 && reason == kCreditsHold)
    return;
  row->billing_hold = reason;
  row->notification_json = notification.dump();
  const bool suspending = reason.rfind(kOverdueHold, 0) == 0 && row->status != "suspended";
  if (reason.rfind(kOverdueHold, 0) == 0) row->status = "suspended";
  row->updated_ms = now;
  tx.put_resource(*row);
  vercel::Outbox::enqueue_resource_updated(tx, *row, now);
  if (suspending) tell_product(tx, *row, "suspended", now);
  util::log_info("resource held by billing").str("resource", resource_id).str("hold", reason);
}

void BillingService::release(store::WriteTx& tx, const std::string& installation_id,
                             const std::string& resource_id, const std::string& reason,
                             int64_t now) {
  auto row = tx.resource(resource_id);
  if (!row || row->deleted_ms || row->installation_id != installation_id) return;
  if (row->billing_hold != reason) return;
  row->billing_hold.reset();
  row->notification_json.reset();
  const bool resuming = reason.rfind(kOverdueHold, 0) == 0 && row->status == "suspended";
  if (resuming) row->status = "ready";
  row->updated_ms = now;
  tx.put_resource(*row);
  vercel::Outbox::enqueue_resource_updated(tx, *row, now);
  if (resuming) tell_product(tx, *row, "resumed", now);
  util::log_info("resource released by billing").str("resource", resource_id).str("hold", reason);
}

int BillingService::suspend_overdue(store::WriteTx& tx, const std::string& installation_id,
                                    int64_t now) {
  int suspended = 0;
  for (auto& inv : tx.invoices_of(installation_id)) {
    if (inv.state != "overdue" || inv.suspended || !inv.overdue_ms ||
        *inv.overdue_ms + options_.overdue_grace_ms > now)
      continue;
    std::vector<std::string> targets;
    if (!inv.resource_id.empty())
      targets.push_back(inv.resource_id);
    else
      for (const auto& r : tx.live_resources_of(installation_id)) targets.push_back(r.id);
    for (const auto& rid : targets)
      hold(tx, installation_id, rid, kOverdueHold + inv.id,
           notification("error", "Payment overdue",
                        "Invoice " + inv.vercel_invoice_id.value_or(inv.id) +
                            " is overdue; the database is suspended until it is paid.",
                        "/billing?invoice=" + inv.vercel_invoice_id.value_or(inv.id)),
           now);
    // An installation-level invoice: the installation itself is shown suspended.
    if (inv.resource_id.empty())
      installation_state(tx, installation_id, "suspended",
                         notification("error", "Payment overdue",
                                      "Invoice " + inv.vercel_invoice_id.value_or(inv.id) +
                                          " is overdue; service is suspended until it is paid.",
                                      "/billing?invoice=" + inv.vercel_invoice_id.value_or(inv.id)),
                         now);
    inv.suspended = true;
    inv.updated_ms = now;
    tx.put_invoice(inv);
    ++suspended;
  }
  return suspended;
}

bool BillingService::cleanup_leftovers(store::WriteTx& tx, const store::InstallationRow& inst,
                                       store::BillingStateRow& st, int64_t now, int& suspended,
                                       bool& due) {
  due = false;
  // An active installation is never cleaned up here, even when Vercel answered 401/410 for
  // it (a token problem must not cost a customer their data); a finalized one had its
  // leftovers removed when Finalize Installation was delivered.
  if (inst.status == "active" || inst.finalized) return false;
  const int64_t grace = options_.uninstall_grace_ms;
  const int64_t uninstalled_ms = inst.deleted_ms.value_or(inst.updated_ms);
  bool changed = false;
  if (!st.leftovers_suspended_ms) {
    const bool gone = st.gone_ms.has_value();
    if (!gone && now < uninstalled_ms + grace) return false;
    st.leftovers_suspended_ms = now;
    changed = true;
    int count = 0;
    for (auto row : tx.live_resources_of(inst.id)) {
      if (row.billing_hold == kUninstallHold) continue;
      const bool suspending = row.status != "suspended";
      row.billing_hold = kUninstallHold;
      row.notification_json =
          notification("error", "Integration removed",
                       "The integration was removed but its billing could not be completed; "
                       "the database is suspended and will be deleted on " +
                           iso(now + grace) + ".",
                       "/billing")
              .dump();
      row.status = "suspended";
      row.updated_ms = now;
      tx.put_resource(row);
      // Vercel still holds the installation (pending deletion) unless it reported it gone.
      if (!gone) vercel::Outbox::enqueue_resource_updated(tx, row, now);
      if (suspending) tell_product(tx, row, "suspended", now);
      ++count;
    }
    suspended += count;
    util::log_warn("uninstall not finalized: leftover resources suspended")
        .str("installation", inst.id)
        .str("reason", gone ? "installation gone at Vercel"
                            : "finalization not complete within the grace period")
        .num("resources", count)
        .str("delete_after", iso(now + grace));
  }
  if (!st.leftovers_deleted_ms && now >= *st.leftovers_suspended_ms + grace) {
    st.leftovers_deleted_ms = now;
    changed = true;
    util::log_warn("uninstall not finalized: leftover resources to be deleted")
        .str("installation", inst.id)
        .num("resources", static_cast<int64_t>(tx.live_resources_of(inst.id).size()));
  }
  // Nothing more will be sent once Vercel refused the installation or the cleanup gave up on
  // it: the access token goes (invoice records stay, and webhooks still update them).
  if ((st.gone_ms || st.leftovers_deleted_ms) && inst.access_token_sealed) {
    auto row = tx.installation(inst.id);
    if (row && row->access_token_sealed) {
      row->access_token_sealed.reset();
      row->updated_ms = now;
      tx.put_installation(*row);
      util::log_info("uninstall not finalized: access token dropped").str("installation", inst.id);
    }
  }
  due = st.leftovers_deleted_ms && !tx.live_resources_of(inst.id).empty();
  return changed;
}

Json BillingService::balances_json(store::ReadTx& tx, const std::string& installation_id) const {
  std::map<std::string, int64_t> left;
  for (const auto& b : tx.balances_of(installation_id)) left[b.resource_id] = b.remaining();
  // Every live resource on a prepayment plan is reported, with 0 before its first purchase,
  // so Vercel's auto top-up sees it.
  for (const auto& r : tx.live_resources_of(installation_id)) {
    const model::Plan* plan = catalog_->plan(r.billing_plan_id);
    if (plan && plan->type == "prepayment") left.emplace(r.id, 0);
  }
  Json out = Json::array();
  for (const auto& [rid, micros] : left) {
    Money m = Money::micros(std::max<int64_t>(micros, 0));
    Json b = {{"currencyValueInCents", m.floor_cents()},
              {"credit", "$" + Money::cents(m.floor_cents()).str_cents()},
              {"nameLabel", "USD credit"}};
    if (!rid.empty()) b["resourceId"] = rid;
    out.push_back(b);
  }
  return out;
}

void BillingService::enqueue_balances(store::WriteTx& tx, const std::string& installation_id,
                                      int64_t now) {
  vercel::Outbox::enqueue(tx, installation_id,
                          vercel::api::submit_balances(
                              installation_id, {{"timestamp", iso(now)},
                                                {"balances", balances_json(tx, installation_id)}}),
                          now);
}

// ---------------------------------------------------------------------------------------

BillingService::PassStats BillingService::run(int64_t now) {
  std::lock_guard<std::mutex> lock(run_mu_);
  PassStats stats;
  std::vector<std::string> ids;
  store_.read([&](store::ReadTx& tx) {
    for (const auto& inst : tx.installations_to_bill()) ids.push_back(inst.id);
  });
  // Installations are billed in batches of one transaction each (a commit per installation
  // would be an fsync per installation); a batch that fails is retried one by one so one
  // bad installation cannot hold back the others. A batch ends after kBatch installations or
  // once it has held the write lock for kBatchMs, whichever comes first: fewer commits (each
  // an fsync, 157 of them for 10,000 installations in batches of 64) while other writers
  // wait no longer than behind one batch of 64 before the pass got faster (68 ms hourly,
  // 166 ms at a month's end, measured on a quiet machine).
  constexpr size_t kBatch = 256;
  constexpr auto kBatchMs = std::chrono::milliseconds(100);
  // Installations whose rows are read together (prefetch_billing: on PostgreSQL a statement
  // per table for all of them instead of one per installation and table); a batch stopped
  // early by kBatchMs wastes at most that many minus one.
  constexpr size_t kPrefetch = 32;
  // Bills ids[from, to) in one transaction, stopping early once the batch is old enough
  // (`timed`); returns the index it stopped at.
  std::vector<std::string> leftovers_due;
  auto bill = [&](size_t from, size_t to, bool timed) {
    PassStats local;
    std::vector<std::string> due;
    size_t end = from;
    store_.write([&](store::WriteTx& tx) {
      local = PassStats();
      due.clear();
      const auto started = std::chrono::steady_clock::now();
      size_t prefetched = from;
      for (end = from; end < to;) {
        if (end == prefetched) {
          prefetched = std::min(to, end + kPrefetch);
          tx.prefetch_billing({ids.begin() + static_cast<std::ptrdiff_t>(end),
                               ids.begin() + static_cast<std::ptrdiff_t>(prefetched)});
        }
        auto inst = tx.installation(ids[end++]);
        if (inst && !inst->finalized) {
          Ledger ledger;  // what the installation's computations read, read once
          // On a shared store (statements are round trips), the next installation's ledger
          // is sent ahead once this one's is read: the server reads it while this one is
          // priced. Only among the installations prefetched (their rows are at hand).
          if (store_.shared() && end < prefetched)
            ledger.after_first_read = [&, next = ids[end]] { expect_first_ledger(tx, next, now); };
          bill_installation(tx, *inst, now, local, due, ledger);
          ++local.installations;
        }
        if (timed && std::chrono::steady_clock::now() - started >= kBatchMs) break;
      }
    });
    stats.installations += local.installations;
    stats.billing_data += local.billing_data;
    stats.invoices += local.invoices;
    stats.balances += local.balances;
    stats.suspended += local.suspended;
    stats.finalizing += local.finalizing;
    stats.leftovers_suspended += local.leftovers_suspended;
    stats.leftovers_deleting += local.leftovers_deleting;
    stats.plan_changes += local.plan_changes;
    leftovers_due.insert(leftovers_due.end(), due.begin(), due.end());
    return end;
  };
  for (size_t from = 0; from < ids.size();) {
    size_t to = std::min(ids.size(), from + kBatch);
    try {
      from = bill(from, to, true);
    } catch (const std::exception&) {
      // Where the failed batch stopped is unknown: the whole range goes one by one.
      for (size_t i = from; i < to; ++i) {
        try {
          bill(i, i + 1, false);
        } catch (const std::exception& e) {
          util::log_error("billing pass failed for an installation")
              .str("installation", ids[i])
              .str("error", e.what());
        }
      }
      from = to;
    }
  }
  // Committed: the leftovers due for deletion go now (deleting needs the product, outside
  // the pass's transaction).
  for (const auto& id : leftovers_due) {
    if (!leftovers_due_) break;
    try {
      leftovers_due_(id);
    } catch (const std::exception& e) {
      util::log_error("uninstall cleanup failed; the next pass tries again")
          .str("installation", id)
          .str("error", e.what());
    }
  }
  if (stats.billing_data || stats.invoices || stats.balances || stats.suspended ||
      stats.finalizing || stats.leftovers_suspended || stats.leftovers_deleting ||
      stats.plan_changes) {
    util::log_info("billing pass")
        .num("installations", stats.installations)
        .num("billing_data", stats.billing_data)
        .num("invoices", stats.invoices)
        .num("balances", stats.balances)
        .num("suspended", stats.suspended)
        .num("finalizing", stats.finalizing)
        .num("leftovers_suspended", stats.leftovers_suspended)
        .num("leftovers_deleting", stats.leftovers_deleting)
        .num("plan_changes", stats.plan_changes);
    if (enqueued_) enqueued_();
  }
  return stats;
}

void BillingService::start() {
  if (worker_.joinable()) return;
  worker_ = std::thread([this] {
    int64_t next_pass = 0;
    std::unique_lock<std::mutex> lock(mu_);
    while (!stop_) {
      int64_t now = clock_.now_ms();
      bool due = woken_ || now >= next_pass;
      if (due && options_.leads && !options_.leads()) {
        woken_ = false;  // another replica leads and bills; look again next tick
      } else if (due) {
        woken_ = false;
        lock.unlock();
        try {
          run(now);
        } catch (const std::exception& e) {
          util::log_error("billing pass failed").str("error", e.what());
        }
        lock.lock();
        // Work falls due on the interval, at midnight (final data) and at the month's end;
        // anything else (webhooks, uninstalls, purchases) wakes the worker.
        next_pass = std::min({now + std::min(options_.interval_ms, options_.balance_interval_ms),
                              day_start_ms(now) + kDayMs});
      }
      cv_.wait_for(lock, std::chrono::milliseconds(options_.tick_ms),
                   [this] { return stop_ || woken_; });
    }
  });
}

void BillingService::wake() {
  {
    std::lock_guard<std::mutex> lock(mu_);
    woken_ = true;
  }
  cv_.notify_one();
}

void BillingService::stop() {
  {
    std::lock_guard<std::mutex> lock(mu_);
    stop_ = true;
  }
  cv_.notify_one();
  if (worker_.joinable()) worker_.join();
}

}  // namespace wharf::service
