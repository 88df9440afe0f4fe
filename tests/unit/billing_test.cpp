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
