// Money arithmetic, billing calendars, and BillingService over a real SQLite store with an
// injected clock: what is enqueued for Vercel, and that nothing is invoiced twice.
#include <gtest/gtest.h>
#include <sqlite3.h>

#include <filesystem>

#include "service/billing.h"
#include "store/sqlite/sqlite_store.h"
#include "util/crypto.h"
#include "util/money.h"

namespace wharf {
namespace {

using model::Json;
using util::Money;

int64_t ms(const std::string& iso) {
  int64_t out = 0;
  EXPECT_TRUE(util::parse_iso8601(iso, &out)) << iso;
  return out;
}

TEST(MoneyTest, ParsesAndPrintsExactly) {
  EXPECT_EQ(Money::parse("5")->micros(), 5000000);
  EXPECT_EQ(Money::parse("0.000025")->micros(), 25);
  EXPECT_EQ(Money::parse("-3.5")->str_cents(), "-3.50");
  EXPECT_EQ(Money::parse("0.10")->str(), "0.10");
  EXPECT_EQ(Money::parse("0.000025")->str(), "0.000025");
  for (const char* bad : {"", "1.", ".5", "1.0000001", "1e3", "1,00", "--1", "abc"})
    EXPECT_FALSE(Money::parse(bad)) << bad;
}

TEST(MoneyTest, ChargesRoundToCentsOnceHalfAwayFromZero) {
  // 0.25 per GiB-month for 1.5 GiB over a 30-day month: 0.375 → 0.38.
  EXPECT_EQ(
      Money::charge(*Money::parse("0.25"), 3LL * 536870912 * 30, 1073741824LL * 30).str_cents(),
      "0.38");
  // 1,234 rows at 0.10 per million: 0.0001234 → 0.00.
  EXPECT_EQ(Money::charge(*Money::parse("0.10"), 1234, 1000000).str_cents(), "0.00");
  // 5.00 for 2 hours of a 31-day month: 0.01344… → 0.01.
  EXPECT_EQ(Money::charge(*Money::parse("5.00"), 2, 744).str_cents(), "0.01");
  EXPECT_EQ(Money::charge(*Money::parse("0.01"), 1, 2).str_cents(), "0.01");  // half → up
  EXPECT_EQ(util::ratio_str(1, 3, 4), "0.3333");
  EXPECT_EQ(util::ratio_str(3, 2), "1.5");
  EXPECT_EQ(util::ratio_str(4, 2), "2");
}

TEST(BillingCalendarTest, MonthsAndDays) {
  EXPECT_EQ(service::month_start_ms(ms("2027-02-14T10:00:00Z")), ms("2027-02-01T00:00:00Z"));
  EXPECT_EQ(service::next_month_start_ms(ms("2027-12-31T23:59:59Z")), ms("2028-01-01T00:00:00Z"));
  EXPECT_EQ(service::next_month_start_ms(ms("2028-02-01T00:00:00Z")) - ms("2028-02-01T00:00:00Z"),
            29LL * 86400000);  // leap year
  EXPECT_EQ(service::day_start_ms(ms("2027-03-05T13:14:15.678Z")), ms("2027-03-05T00:00:00Z"));
  EXPECT_EQ(service::day_key(ms("2027-03-05T13:14:15Z")), "2027-03-05");
}

class BillingServiceTest : public ::testing::Test {
 protected:
  void SetUp() override {
    dir_ = std::filesystem::temp_directory_path() /
           ("wharf_billing_test_" + util::to_hex(util::random_bytes(6)));
    std::filesystem::create_directories(dir_);
    store_ = store::sqlite::open({(dir_ / "state.db").string(), 5000});
    catalog_ = model::Catalog::parse_text(model::builtin_catalog_json());
    billing_ = std::make_unique<service::BillingService>(*store_, catalog_, clock_,
                                                         service::BillingService::Options{});
    store_->write([&](store::WriteTx& tx) {
      store::InstallationRow inst;
      inst.id = "icfg_a";
      inst.account_id = "team_a";
      inst.installer_user_id = "u";
      inst.token_type = "Bearer";
      inst.created_ms = inst.updated_ms = clock_.now_ms();
      tx.put_installation(inst);
    });
  }
  void TearDown() override {
    billing_.reset();
    store_.reset();
    std::filesystem::remove_all(dir_);
  }

  void put_resource(const std::string& id, const std::string& plan) {
    store_->write([&](store::WriteTx& tx) {
      auto existing = tx.resource(id);
      store::ResourceRow r = existing.value_or(store::ResourceRow{});
      r.id = id;
      r.installation_id = "icfg_a";
      r.product_id = "sqlite-db";
      r.name = id;
      r.billing_plan_id = plan;
      if (!existing) r.created_ms = clock_.now_ms();
      r.updated_ms = clock_.now_ms();
      tx.put_resource(r);
    });
  }
  std::vector<store::OutboxRow> outbox(const std::string& kind) {
    std::vector<store::OutboxRow> out;
    store_->read([&](store::ReadTx& tx) {
      for (auto& row : tx.outbox_list("pending", 10000))
        if (row.kind == kind) out.push_back(row);
    });
    return out;
  }
  std::vector<store::InvoiceRow> invoices() {
    std::vector<store::InvoiceRow> out;
    store_->read([&](store::ReadTx& tx) { out = tx.invoices_of("icfg_a"); });
    return out;
  }

  std::filesystem::path dir_;
  util::ManualClock clock_{ms("2027-01-01T00:00:00Z")};
  std::unique_ptr<store::Store> store_;
  std::shared_ptr<const model::Catalog> catalog_;
  std::unique_ptr<service::BillingService> billing_;
};

TEST_F(BillingServiceTest, HourlyDataThenOneInvoicePerResourceAndPlan) {
  put_resource("res_pro", "sqlite-pro");
  put_resource("res_free", "sqlite-free");
  store_->write([&](store::WriteTx& tx) {
    tx.add_usage("res_pro", "2027-01-01", "rowsWritten", 3000000);
    tx.max_usage("res_pro", "2027-01-01", "storageBytes", 2147483648);  // 2 GiB all month
  });
  billing_->run(clock_.now_ms());
  ASSERT_EQ(outbox("billing").size(), 1u);
  billing_->run(clock_.now_ms() + 60000);  // within the interval: nothing new
  EXPECT_EQ(outbox("billing").size(), 1u);
  Json body = Json::parse(outbox("billing")[0].body);
  EXPECT_EQ(body["period"]["start"], "2027-01-01T00:00:00.000Z");
  EXPECT_EQ(body["period"]["end"], "2027-02-01T00:00:00.000Z");
  EXPECT_EQ(body["eod"], "2027-01-02T00:00:00.000Z");

  clock_.set_ms(ms("2027-02-01T00:30:00Z"));
  billing_->run(clock_.now_ms());
  billing_->run(clock_.now_ms() + 1000);  // a second pass never invoices again
  auto inv = invoices();
  ASSERT_EQ(inv.size(), 1u);
  EXPECT_EQ(inv[0].id, "whf_res_pro_sqlite-pro_2027-01");
  // 5.00 base + 3.00 (3M rows written at 1.00/M) + 0.50 (2 GiB × 0.25 per GiB-month).
  EXPECT_EQ(inv[0].total, "8.50");
  auto sent = outbox("invoice");
  ASSERT_EQ(sent.size(), 1u);
  Json invoice = Json::parse(sent[0].body);
  EXPECT_EQ(invoice["externalId"], inv[0].id);
  EXPECT_EQ(invoice["invoiceDate"], "2027-01-31T23:59:59.000Z");
  // Yesterday's final data goes out before the invoice (outbox order).
  auto data = outbox("billing");
  EXPECT_LT(data.back().seq, sent[0].seq);
  EXPECT_EQ(Json::parse(data[data.size() - 2].body)["eod"], "2027-02-01T00:00:00.000Z");
}

TEST_F(BillingServiceTest, PlanChangeProratesAndSmallAmountsAreCarried) {
  put_resource("res_x", "sqlite-pro");
  clock_.set_ms(ms("2027-01-04T00:00:00Z"));  // 3 days of 31 on pro: 5.00 × 3/31 = 0.48
  put_resource("res_x", "sqlite-free");
  clock_.set_ms(ms("2027-02-01T01:00:00Z"));
  billing_->run(clock_.now_ms());
  auto inv = invoices();
  ASSERT_EQ(inv.size(), 1u);
  EXPECT_EQ(inv[0].total, "0.48");
  EXPECT_EQ(inv[0].state, "carried");
  Json item = Json::parse(inv[0].items_json)[0];
  EXPECT_EQ(item["end"], "2027-01-04T00:00:00.000Z");
  EXPECT_TRUE(outbox("invoice").empty());

  // Back on pro in February: the carried 0.48 rides on February's invoice.
  put_resource("res_x", "sqlite-pro");
  clock_.set_ms(ms("2027-03-01T01:00:00Z"));
  billing_->run(clock_.now_ms());
  inv = invoices();
  ASSERT_EQ(inv.size(), 2u);
  EXPECT_EQ(inv[0].carried_into, inv[1].id);
  Json items = Json::parse(inv[1].items_json);
  EXPECT_EQ(items.back()["name"], "Carried from 2027-01");
  EXPECT_EQ(
      Money::parse(inv[1].total)->micros(),
      (Money::charge(*Money::parse("5.00"), ms("2027-03-01T00:00:00Z") - ms("2027-02-01T01:00:00Z"),
                     28LL * 86400000) +
       *Money::parse("0.48"))
          .micros());
  EXPECT_EQ(outbox("invoice").size(), 1u);
}

TEST_F(BillingServiceTest, OwesOnlyWhatIsNotSettled) {
  put_resource("res_free", "sqlite-free");
  bool owes = true;
  store_->read([&](store::ReadTx& tx) {
    owes = billing_->owes(tx, *tx.installation("icfg_a"), clock_.now_ms() + 3600000);
  });
  EXPECT_FALSE(owes);
  put_resource("res_pro", "sqlite-pro");
  clock_.advance_ms(5LL * 86400000);
  store_->read([&](store::ReadTx& tx) {
    owes = billing_->owes(tx, *tx.installation("icfg_a"), clock_.now_ms());
  });
  EXPECT_TRUE(owes);  // five days of pro: 0.81
}

}  // namespace
}  // namespace wharf

namespace wharf {
namespace {

TEST_F(BillingServiceTest, AnInstallationGoneAtVercelIsNoLongerBilled) {
  put_resource("res_pro", "sqlite-pro");
  billing_->run(clock_.now_ms());
  size_t before = outbox("billing").size();
  store_->write([&](store::WriteTx& tx) {
    store::OutboxRow item;
    item.installation_id = "icfg_a";
    item.last_status = 410;
    billing_->gone(tx, item, clock_.now_ms());
  });
  clock_.set_ms(ms("2027-02-01T01:00:00Z"));
  auto stats = billing_->run(clock_.now_ms());
  EXPECT_EQ(outbox("billing").size(), before);
  EXPECT_EQ(stats.invoices, 0);
  EXPECT_TRUE(invoices().empty());
  EXPECT_TRUE(billing_->summary("icfg_a")["billing"]["gone"].get<bool>());
}

}  // namespace
}  // namespace wharf

namespace wharf {
namespace {

TEST_F(BillingServiceTest, PrepaidUsageOfAPeriodsLastHoursIsDebitedAfterItEnds) {
  put_resource("res_c", "sqlite-credits");
  store_->write([&](store::WriteTx& tx) {
    tx.put_balance({"icfg_a", "res_c", 10000000, 0, clock_.now_ms()});  // $10.00
    tx.add_usage("res_c", "2027-01-31", "rowsWritten", 1000000);        // $1.00
  });
  clock_.set_ms(ms("2027-01-31T23:00:00Z"));
  billing_->run(clock_.now_ms());
  auto left = [&] {
    int64_t micros = 0;
    store_->read([&](store::ReadTx& tx) { micros = tx.balances_of("icfg_a")[0].remaining(); });
    return micros;
  };
  EXPECT_EQ(left(), 9000000);
  // The last hour of January is used after that pass; February's first pass debits it.
  store_->write([&](store::WriteTx& tx) {
    tx.add_usage("res_c", "2027-01-31", "rowsWritten", 2000000);  // $2.00 more
  });
  clock_.set_ms(ms("2027-02-01T00:30:00Z"));
  billing_->run(clock_.now_ms());
  EXPECT_EQ(left(), 7000000);
  clock_.set_ms(ms("2027-02-01T02:00:00Z"));
  billing_->run(clock_.now_ms());
  EXPECT_EQ(left(), 7000000);       // never twice
  EXPECT_TRUE(invoices().empty());  // prepayment plans are not invoiced
}

}  // namespace
}  // namespace wharf

namespace wharf {
namespace {

TEST(StoreResources, LiveResourcesSkipDeletedOnesThroughThePartialIndex) {
  auto dir = std::filesystem::temp_directory_path() /
             ("wharf_live_resources_" + util::to_hex(util::random_bytes(6)));
  std::filesystem::create_directories(dir);
  {
    auto store = store::sqlite::open({(dir / "state.db").string(), 5000});
    store->write([&](store::WriteTx& tx) {
      for (int i = 0; i < 3; ++i) {
        store::ResourceRow r;
        r.id = "res_" + std::to_string(i);
        r.installation_id = "icfg_a";
        r.product_id = "sqlite-db";
        r.name = r.id;
        r.billing_plan_id = "sqlite-free";
        r.created_ms = r.updated_ms = 1000 + i;
        if (i == 1) r.deleted_ms = 2000;
        tx.put_resource(r);
      }
    });
    std::vector<store::ResourceRow> all, live;
    store->read([&](store::ReadTx& tx) {
      all = tx.resources_of("icfg_a");
      live = tx.live_resources_of("icfg_a");
    });
    EXPECT_EQ(all.size(), 3u);
    ASSERT_EQ(live.size(), 2u);
    EXPECT_EQ(live[0].id, "res_0");
    EXPECT_EQ(live[1].id, "res_2");
  }
  // The query reads the partial index, not the deleted rows.
  sqlite3* db = nullptr;
  ASSERT_EQ(sqlite3_open((dir / "state.db").string().c_str(), &db), SQLITE_OK);
  sqlite3_stmt* stmt = nullptr;
  ASSERT_EQ(sqlite3_prepare_v2(db,
                               "EXPLAIN QUERY PLAN SELECT id FROM resources WHERE installation_id "
                               "= 'icfg_a' AND deleted_ms IS NULL ORDER BY created_ms, id",
                               -1, &stmt, nullptr),
            SQLITE_OK);
  std::string plan;
  while (sqlite3_step(stmt) == SQLITE_ROW)
    plan += reinterpret_cast<const char*>(sqlite3_column_text(stmt, 3)) + std::string("\n");
  sqlite3_finalize(stmt);
  sqlite3_close(db);
  EXPECT_NE(plan.find("resources_live"), std::string::npos) << plan;
  std::filesystem::remove_all(dir);
}

}  // namespace
}  // namespace wharf

// Plan changes scheduled for a plan's effectiveDate and catalog discounts (flows.md F13
// step 5; vercel-api.md §2.7), over a catalog of their own.
namespace wharf {
namespace {

class ScheduledBillingTest : public BillingServiceTest {
 protected:
  void SetUp() override {
    BillingServiceTest::SetUp();
    catalog_ = model::Catalog::parse_text(R"({
      "products": [{"id": "sqlite-db", "kind": "sqlite", "name": "DB",
                    "plans": ["std", "next", "promo", "tenoff"]}],
      "plans": [
        {"id": "std", "type": "subscription", "name": "Standard", "description": "d",
         "pricing": {"baseFee": "31.00"}},
        {"id": "next", "type": "subscription", "name": "Next", "description": "d",
         "effectiveDate": "2027-01-11T00:00:00Z", "pricing": {"baseFee": "62.00"}},
        {"id": "promo", "type": "subscription", "name": "Promo", "description": "d",
         "pricing": {"baseFee": "10.00"},
         "discount": {"name": "Launch offer", "details": "20% off the first month",
                      "percent": 20, "periods": 1}},
        {"id": "tenoff", "type": "subscription", "name": "Small", "description": "d",
         "pricing": {"baseFee": "5.00"}, "discount": {"name": "Ten off", "amount": "10.00"}}
      ]})");
    billing_ = std::make_unique<service::BillingService>(*store_, catalog_, clock_,
                                                         service::BillingService::Options{});
  }
  std::optional<store::ResourceRow> resource(const std::string& id) {
    std::optional<store::ResourceRow> out;
    store_->read([&](store::ReadTx& tx) { out = tx.resource(id); });
    return out;
  }
  // What ResourceService::update does for a plan whose effectiveDate lies ahead.
  void request_plan(const std::string& id, const std::string& plan_id) {
    store_->write([&](store::WriteTx& tx) {
      auto row = *tx.resource(id);
      const model::Plan& plan = *catalog_->plan(plan_id);
      auto at = service::scheduled_start(plan, clock_.now_ms());
      ASSERT_TRUE(at);
      service::schedule_plan_change(tx, row.installation_id, row.id, plan, *at,
                                    row.notification_json, clock_.now_ms());
      row.updated_ms = clock_.now_ms();
      tx.put_resource(row);
    });
  }
  store::InvoiceRow invoice(const std::string& id) {
    for (auto& inv : invoices())
      if (inv.id == id) return inv;
    ADD_FAILURE() << "no invoice " << id;
    return {};
  }
  Json sent_invoice(const std::string& external_id) {
    for (auto& row : outbox("invoice")) {
      Json body = Json::parse(row.body);
      if (body["externalId"] == external_id) return body;
    }
    return nullptr;
  }
};

TEST_F(ScheduledBillingTest, AChangeWaitsForTheEffectiveDate) {
  const model::Plan& next = *catalog_->plan("next");
  EXPECT_EQ(service::scheduled_start(next, ms("2027-01-05T00:00:00Z")), ms("2027-01-11T00:00:00Z"));
  // On or after the date (or without one), a change is made at once.
  EXPECT_FALSE(service::scheduled_start(next, ms("2027-01-11T00:00:00Z")));
  EXPECT_FALSE(service::scheduled_start(*catalog_->plan("std"), ms("2027-01-05T00:00:00Z")));

  put_resource("r", "std");
  clock_.set_ms(ms("2027-01-05T00:00:00Z"));
  request_plan("r", "next");
  EXPECT_EQ(resource("r")->billing_plan_id, "std");  // the current plan stays
  Json notice = Json::parse(*resource("r")->notification_json);
  EXPECT_EQ(notice["level"], "info");
  EXPECT_NE(notice["message"].get<std::string>().find("2027-01-11T00:00:00.000Z"),
            std::string::npos);
  billing_->run(ms("2027-01-10T23:00:00Z"));
  EXPECT_EQ(resource("r")->billing_plan_id, "std");

  // The first pass after the date makes the change, as of the date.
  clock_.set_ms(ms("2027-01-12T05:00:00Z"));
  EXPECT_EQ(billing_->run(clock_.now_ms()).plan_changes, 1);
  EXPECT_EQ(resource("r")->billing_plan_id, "next");
  EXPECT_FALSE(resource("r")->notification_json);  // its notice is gone with it
  std::vector<store::PlanPeriodRow> spans;
  store_->read([&](store::ReadTx& tx) {
    spans = tx.plan_periods("icfg_a", ms("2027-01-01T00:00:00Z"), ms("2027-02-01T00:00:00Z"));
    EXPECT_TRUE(tx.plan_schedules_of("icfg_a").empty());
  });
  ASSERT_EQ(spans.size(), 2u);
  EXPECT_EQ(spans[0].plan_id, "std");
  EXPECT_EQ(spans[0].end_ms, ms("2027-01-11T00:00:00Z"));
  EXPECT_EQ(spans[1].plan_id, "next");
  EXPECT_EQ(spans[1].start_ms, ms("2027-01-11T00:00:00Z"));
  // Vercel re-reads the resource (resource.updated).
  bool told = false;
  for (const auto& row : outbox("event"))
    told = told || row.body.find("resource.updated") != std::string::npos;
  EXPECT_TRUE(told);

  // January: each plan invoiced once, for the days it was active.
  clock_.set_ms(ms("2027-02-01T01:00:00Z"));
  billing_->run(clock_.now_ms());
  ASSERT_EQ(invoices().size(), 2u);
  EXPECT_EQ(invoice("whf_r_std_2027-01").total, "10.00");   // 10 days × 31.00 / 31
  EXPECT_EQ(invoice("whf_r_next_2027-01").total, "42.00");  // 21 days × 62.00 / 31
  Json old_items = sent_invoice("whf_r_std_2027-01")["items"];
  EXPECT_EQ(old_items[0]["start"], "2027-01-01T00:00:00.000Z");
  EXPECT_EQ(old_items[0]["end"], "2027-01-11T00:00:00.000Z");
  Json new_items = sent_invoice("whf_r_next_2027-01")["items"];
  EXPECT_EQ(new_items[0]["start"], "2027-01-11T00:00:00.000Z");
  EXPECT_EQ(new_items[0]["end"], "2027-02-01T00:00:00.000Z");
}

TEST_F(ScheduledBillingTest, AnotherRequestCallsOffThePendingChange) {
  put_resource("r", "std");
  clock_.set_ms(ms("2027-01-05T00:00:00Z"));
  request_plan("r", "next");
  store_->write([&](store::WriteTx& tx) {
    auto row = *tx.resource("r");
    EXPECT_TRUE(service::cancel_plan_change(tx, "icfg_a", "r", row.notification_json));
    EXPECT_FALSE(row.notification_json);
    EXPECT_FALSE(service::cancel_plan_change(tx, "icfg_a", "r", row.notification_json));
    tx.put_resource(row);
  });
  clock_.set_ms(ms("2027-01-12T00:00:00Z"));
  EXPECT_EQ(billing_->run(clock_.now_ms()).plan_changes, 0);
  EXPECT_EQ(resource("r")->billing_plan_id, "std");
}

TEST_F(ScheduledBillingTest, AnotherNoticeIsNeitherReplacedNorCleared) {
  put_resource("r", "std");
  store_->write([&](store::WriteTx& tx) {
    auto row = *tx.resource("r");
    row.notification_json = Json{{"level", "warn"}, {"title", "Storage almost full"}}.dump();
    tx.put_resource(row);
  });
  clock_.set_ms(ms("2027-01-05T00:00:00Z"));
  request_plan("r", "next");
  clock_.set_ms(ms("2027-01-12T00:00:00Z"));
  billing_->run(clock_.now_ms());
  EXPECT_EQ(resource("r")->billing_plan_id, "next");
  EXPECT_NE(resource("r")->notification_json->find("Storage almost full"), std::string::npos);
}

TEST_F(ScheduledBillingTest, ADeletedResourcesScheduleIsDropped) {
  put_resource("r", "std");
  clock_.set_ms(ms("2027-01-05T00:00:00Z"));
  request_plan("r", "next");
  store_->write([&](store::WriteTx& tx) {
    auto row = *tx.resource("r");
    row.deleted_ms = row.updated_ms = ms("2027-01-06T00:00:00Z");
    tx.put_resource(row);
  });
  clock_.set_ms(ms("2027-01-12T00:00:00Z"));
  EXPECT_EQ(billing_->run(clock_.now_ms()).plan_changes, 0);
  EXPECT_EQ(resource("r")->billing_plan_id, "std");
  store_->read([&](store::ReadTx& tx) { EXPECT_TRUE(tx.plan_schedules_of("icfg_a").empty()); });
}

TEST_F(ScheduledBillingTest, ADiscountComesOffTheInvoiceAndTheBillingData) {
  put_resource("p", "promo");
  billing_->run(clock_.now_ms());
  Json data = Json::parse(outbox("billing").back().body);
  ASSERT_TRUE(data["billing"].contains("discounts")) << data.dump();
  EXPECT_EQ(data["billing"]["discounts"][0]["amount"], "2.00");
  EXPECT_EQ(data["billing"]["items"][0]["total"], "10.00");

  clock_.set_ms(ms("2027-02-01T01:00:00Z"));
  billing_->run(clock_.now_ms());
  EXPECT_EQ(invoice("whf_p_promo_2027-01").total, "8.00");  // 10.00 − 20%
  Json sent = sent_invoice("whf_p_promo_2027-01");
  ASSERT_TRUE(sent.is_object());
  EXPECT_EQ(sent["discounts"], Json::parse(R"([{"amount": "2.00", "billingPlanId": "promo",
      "details": "20% off the first month", "name": "Launch offer", "resourceId": "p"}])"));
  EXPECT_EQ(sent["items"][0]["total"], "10.00");  // the items as priced

  // Only the first period: February is billed in full.
  clock_.set_ms(ms("2027-03-01T01:00:00Z"));
  billing_->run(clock_.now_ms());
  EXPECT_EQ(invoice("whf_p_promo_2027-02").total, "10.00");
  EXPECT_FALSE(sent_invoice("whf_p_promo_2027-02").contains("discounts"));
}

TEST_F(ScheduledBillingTest, ADiscountNeverExceedsTheItems) {
  put_resource("s", "tenoff");
  clock_.set_ms(ms("2027-01-16T12:00:00Z"));  // half of January: 2.50 of items, 10.00 off
  billing_->run(clock_.now_ms());
  Json data = Json::parse(outbox("billing").back().body);
  EXPECT_EQ(data["billing"]["discounts"][0]["amount"], data["billing"]["items"][0]["total"]);
  clock_.set_ms(ms("2027-02-01T01:00:00Z"));
  billing_->run(clock_.now_ms());
  auto inv = invoice("whf_s_tenoff_2027-01");
  EXPECT_EQ(inv.total, "0.00");
  EXPECT_EQ(inv.state, "waived");  // nothing left to owe, nor to carry
  EXPECT_TRUE(sent_invoice("whf_s_tenoff_2027-01").is_null());
  bool owes = true;
  store_->read([&](store::ReadTx& tx) {
    owes = billing_->owes(tx, *tx.installation("icfg_a"), ms("2027-02-20T00:00:00Z"));
  });
  EXPECT_FALSE(owes);  // February so far: 5.00 × 19/28 of items, all discounted
}

}  // namespace
}  // namespace wharf
