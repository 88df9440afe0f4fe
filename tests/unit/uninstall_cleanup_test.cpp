// The uninstall cleanup of BillingService (docs/decisions.md, "Uninstall cleanup never
// stalls"): an uninstall whose finalization does not complete within the grace period, or
// whose installation Vercel reports gone, has its leftover resources suspended, then, a
// grace period later, handed to the deletion hook; the access token goes once nothing more
// will be sent. Over a real SQLite store with an injected clock.
#include <gtest/gtest.h>

#include <filesystem>

#include "app/config.h"
#include "service/billing.h"
#include "store/sqlite/sqlite_store.h"
#include "util/crypto.h"

namespace wharf {
namespace {

using model::Json;

constexpr int64_t kDay = 86400LL * 1000;
constexpr int64_t kGrace = 10 * kDay;

int64_t ms(const std::string& iso) {
  int64_t out = 0;
  EXPECT_TRUE(util::parse_iso8601(iso, &out)) << iso;
  return out;
}

class UninstallCleanupTest : public ::testing::Test {
 protected:
  void SetUp() override {
    dir_ = std::filesystem::temp_directory_path() /
           ("wharf_cleanup_test_" + util::to_hex(util::random_bytes(6)));
    std::filesystem::create_directories(dir_);
    store_ = store::sqlite::open({(dir_ / "state.db").string(), 5000});
    catalog_ = model::Catalog::parse_text(model::builtin_catalog_json());
    service::BillingService::Options options;
    options.uninstall_grace_ms = kGrace;
    billing_ =
        std::make_unique<service::BillingService>(*store_, catalog_, clock_, std::move(options));
    // The deletion hook marks the leftovers deleted (what ResourceService::remove_leftovers
    // does through the products), unless told to fail as a crash would.
    billing_->on_leftovers_due([this](const std::string& id) {
      due_calls_.push_back(id);
      if (fail_deletion_) throw std::runtime_error("crashed before deleting");
      store_->write([&](store::WriteTx& tx) {
        for (auto row : tx.live_resources_of(id)) {
          row.deleted_ms = clock_.now_ms();
          row.status = "uninstalled";
          tx.put_resource(row);
        }
      });
    });
    store_->write([&](store::WriteTx& tx) {
      store::InstallationRow inst;
      inst.id = "icfg_a";
      inst.account_id = "team_a";
      inst.installer_user_id = "u";
      inst.token_type = "Bearer";
      inst.access_token_sealed = std::string("sealed-token");
      inst.created_ms = inst.updated_ms = clock_.now_ms();
      tx.put_installation(inst);
    });
    put_resource("res_pro", "sqlite-pro");
    put_resource("res_free", "sqlite-free");
  }
  void TearDown() override {
    billing_.reset();
    store_.reset();
    std::filesystem::remove_all(dir_);
  }

  void put_resource(const std::string& id, const std::string& plan) {
    store_->write([&](store::WriteTx& tx) {
      store::ResourceRow r;
      r.id = id;
      r.installation_id = "icfg_a";
      r.product_id = "sqlite-db";
      r.name = id;
      r.status = "ready";
      r.billing_plan_id = plan;
      r.created_ms = r.updated_ms = clock_.now_ms();
      tx.put_resource(r);
    });
  }
  // Uninstalled without cascade, not finalized (as InstallationService::remove leaves it).
  void uninstall() {
    store_->write([&](store::WriteTx& tx) {
      auto inst = tx.installation("icfg_a");
      inst->status = "uninstalled";
      inst->deleted_ms = inst->updated_ms = clock_.now_ms();
      inst->finalized = false;
      tx.put_installation(*inst);
    });
  }
  void report_gone() {
    store_->write([&](store::WriteTx& tx) {
      store::OutboxRow item;
      item.installation_id = "icfg_a";
      item.last_status = 410;
      billing_->gone(tx, item, clock_.now_ms());
    });
  }
  store::ResourceRow resource(const std::string& id) {
    store::ResourceRow out;
    store_->read([&](store::ReadTx& tx) { out = *tx.resource(id); });
    return out;
  }
  store::InstallationRow installation() {
    store::InstallationRow out;
    store_->read([&](store::ReadTx& tx) { out = *tx.installation("icfg_a"); });
    return out;
  }
  size_t live() {
    size_t n = 0;
    store_->read([&](store::ReadTx& tx) { n = tx.live_resources_of("icfg_a").size(); });
    return n;
  }
  size_t pending_updates() {
    size_t n = 0;
    store_->read([&](store::ReadTx& tx) {
      for (auto& row : tx.outbox_list("pending", 10000))
        n += row.body.find("resource.updated") != std::string::npos ? 1 : 0;
    });
    return n;
  }
  // One pass at `at`, with an open (unpaid) final invoice so finalization cannot complete.
  service::BillingService::PassStats pass_at(int64_t at) {
    clock_.set_ms(at);
    return billing_->run(at);
  }
  void keep_an_invoice_open() {
    store_->write([&](store::WriteTx& tx) {
      store::InvoiceRow inv;
      inv.id = "whf_res_pro_sqlite-pro_2026-12";
      inv.installation_id = "icfg_a";
      inv.resource_id = "res_pro";
      inv.plan_id = "sqlite-pro";
      inv.period_start_ms = ms("2026-12-01T00:00:00Z");
      inv.period_end_ms = ms("2027-01-01T00:00:00Z");
      inv.total = "5.00";
      inv.state = "notpaid";
      inv.final = true;
      inv.created_ms = inv.updated_ms = clock_.now_ms();
      tx.put_invoice(inv);
    });
  }

  std::filesystem::path dir_;
  util::ManualClock clock_{ms("2027-01-05T00:00:00Z")};
  std::unique_ptr<store::Store> store_;
  std::shared_ptr<const model::Catalog> catalog_;
  std::unique_ptr<service::BillingService> billing_;
  std::vector<std::string> due_calls_;
  bool fail_deletion_ = false;
};

TEST_F(UninstallCleanupTest, AStalledFinalizationSuspendsThenDeletesAfterTheGrace) {
  keep_an_invoice_open();
  const int64_t t0 = clock_.now_ms();
  uninstall();
  pass_at(t0 + kDay);
  const size_t updates_before = pending_updates();
  // Within the grace: untouched.
  auto stats = pass_at(t0 + kGrace - 1000);
  EXPECT_EQ(stats.leftovers_suspended, 0);
  EXPECT_EQ(resource("res_pro").status, "ready");
  EXPECT_TRUE(due_calls_.empty());

  // The grace ended with the invoice still open: suspended, Vercel told, nothing deleted.
  stats = pass_at(t0 + kGrace);
  EXPECT_EQ(stats.leftovers_suspended, 2);
  for (const char* id : {"res_pro", "res_free"}) {
    auto r = resource(id);
    EXPECT_EQ(r.status, "suspended") << id;
    EXPECT_EQ(r.billing_hold, "uninstalled") << id;
    EXPECT_FALSE(r.deleted_ms) << id;
    ASSERT_TRUE(r.notification_json) << id;
    EXPECT_EQ(Json::parse(*r.notification_json)["level"], "error");
  }
  EXPECT_EQ(pending_updates(), updates_before + 2);
  EXPECT_TRUE(installation().access_token_sealed);  // the invoice may still be paid
  EXPECT_TRUE(due_calls_.empty());
  Json state = billing_->summary("icfg_a")["billing"];
  EXPECT_TRUE(state["leftoversSuspendedAt"].is_string());
  EXPECT_TRUE(state["leftoversDeletedAt"].is_null());

  // A repeated pass changes nothing (idempotent).
  stats = pass_at(t0 + kGrace + kDay);
  EXPECT_EQ(stats.leftovers_suspended, 0);
  EXPECT_EQ(pending_updates(), updates_before + 2);

  // A grace period after the suspension: deleted through the hook, the token dropped, the
  // invoice record kept.
  stats = pass_at(t0 + 2 * kGrace);
  EXPECT_EQ(stats.leftovers_deleting, 1);
  EXPECT_EQ(due_calls_, std::vector<std::string>{"icfg_a"});
  EXPECT_EQ(live(), 0u);
  EXPECT_FALSE(installation().access_token_sealed);
  EXPECT_EQ(billing_->invoices("icfg_a").size(), 1u);
  EXPECT_TRUE(billing_->summary("icfg_a")["billing"]["leftoversDeletedAt"].is_string());
  // Nothing left: no more calls.
  pass_at(t0 + 2 * kGrace + kDay);
  EXPECT_EQ(due_calls_.size(), 1u);
}

TEST_F(UninstallCleanupTest, ADeletionThatDiesIsRedoneByTheNextPass) {
  keep_an_invoice_open();
  const int64_t t0 = clock_.now_ms();
  uninstall();
  pass_at(t0 + kGrace);
  fail_deletion_ = true;
  pass_at(t0 + 2 * kGrace);
  EXPECT_EQ(due_calls_.size(), 1u);
  EXPECT_EQ(live(), 2u);
  fail_deletion_ = false;
  auto stats = pass_at(t0 + 2 * kGrace + 1000);
  EXPECT_EQ(stats.leftovers_deleting, 1);
  EXPECT_EQ(due_calls_.size(), 2u);
  EXPECT_EQ(live(), 0u);
}

TEST_F(UninstallCleanupTest, GoneAtVercelSuspendsAtOnceAndDropsTheToken) {
  keep_an_invoice_open();
  const int64_t t0 = clock_.now_ms();
  uninstall();
  pass_at(t0 + kDay);
  const size_t updates_before = pending_updates();
  clock_.set_ms(t0 + 2 * kDay);
  report_gone();
  for (const char* id : {"res_pro", "res_free"}) EXPECT_EQ(resource(id).status, "suspended") << id;
  EXPECT_FALSE(installation().access_token_sealed);
  EXPECT_EQ(pending_updates(), updates_before);  // Vercel refused it: not told
  // Deleted a grace period after the suspension, not after the uninstall.
  pass_at(t0 + kGrace + kDay);
  EXPECT_EQ(live(), 2u);
  pass_at(t0 + 2 * kDay + kGrace);
  EXPECT_EQ(live(), 0u);
  EXPECT_EQ(due_calls_, std::vector<std::string>{"icfg_a"});
}

TEST_F(UninstallCleanupTest, AnActiveInstallationGoneAtVercelKeepsItsResources) {
  report_gone();
  pass_at(clock_.now_ms() + 3 * kGrace);
  EXPECT_EQ(resource("res_pro").status, "ready");
  EXPECT_EQ(live(), 2u);
  EXPECT_TRUE(installation().access_token_sealed);
  EXPECT_TRUE(due_calls_.empty());
}

TEST_F(UninstallCleanupTest, AFinalizedUninstallIsNotTouched) {
  const int64_t t0 = clock_.now_ms();
  uninstall();
  store_->write([&](store::WriteTx& tx) {
    auto inst = tx.installation("icfg_a");
    inst->finalized = true;
    tx.put_installation(*inst);
  });
  pass_at(t0 + 3 * kGrace);
  EXPECT_EQ(resource("res_pro").status, "ready");
  EXPECT_TRUE(due_calls_.empty());
}

TEST_F(UninstallCleanupTest, BillingCannotResumeALeftoverItSuspended) {
  keep_an_invoice_open();
  const int64_t t0 = clock_.now_ms();
  uninstall();
  pass_at(t0 + kGrace);
  // The open invoice goes overdue and is then paid: the overdue hold must not replace the
  // uninstall's, and the payment must not resume the resource.
  billing_->invoice_event("marketplace.invoice.overdue", "icfg_a",
                          {{"externalInvoiceId", "whf_res_pro_sqlite-pro_2026-12"}});
  pass_at(t0 + kGrace + 1000);
  EXPECT_EQ(resource("res_pro").billing_hold, "uninstalled");
  billing_->invoice_event("marketplace.invoice.paid", "icfg_a",
                          {{"externalInvoiceId", "whf_res_pro_sqlite-pro_2026-12"}});
  EXPECT_EQ(resource("res_pro").status, "suspended");
  EXPECT_EQ(resource("res_pro").billing_hold, "uninstalled");
}

TEST(UninstallCleanupConfig, GraceDaysDefaultAndBounds) {
  std::map<std::string, std::string> env = {{"INTEGRATION_CLIENT_ID", "oac_x"},
                                            {"INTEGRATION_CLIENT_SECRET", "s"}};
  EXPECT_EQ(app::load_config(env, {}).uninstall_grace_days, 30);
  env["WHARF_UNINSTALL_GRACE_DAYS"] = "7";
  EXPECT_EQ(app::load_config(env, {}).uninstall_grace_days, 7);
  for (const char* bad : {"0", "-1", "3651", "ten", "7d", ""}) {
    env["WHARF_UNINSTALL_GRACE_DAYS"] = bad;
    try {
      app::load_config(env, {});
      ADD_FAILURE() << "accepted " << bad;
    } catch (const app::ConfigError& e) {
      EXPECT_EQ(e.variable, "WHARF_UNINSTALL_GRACE_DAYS") << bad;
    }
  }
}

}  // namespace
}  // namespace wharf
