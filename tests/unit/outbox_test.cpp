// The outbox against a scripted Vercel on loopback, with an injected clock: retries with
// backoff on 503/429 (honouring Retry-After), dead letters for other 4xx, per-installation
// order, and nothing lost across a restart of the worker.
#include <gtest/gtest.h>

#include <atomic>
#include <chrono>
#include <condition_variable>
#include <filesystem>
#include <map>
#include <mutex>
#include <set>
#include <stdexcept>
#include <thread>

#include "scripted_server.h"
#include "service/retention.h"
#include "store/sqlite/sqlite_store.h"
#include "util/crypto.h"
#include "vercel/outbox.h"

namespace wharf::vercel {
namespace {

using model::Json;

class OutboxTest : public ::testing::Test {
 protected:
  void SetUp() override {
    dir_ = std::filesystem::temp_directory_path() /
           ("wharf_outbox_test_" + util::to_hex(util::random_bytes(6)));
    std::filesystem::create_directories(dir_);
    store_ = store::sqlite::open({(dir_ / "state.db").string(), 5000});
  }
  void TearDown() override {
    store_.reset();
    std::filesystem::remove_all(dir_);
  }

  // An outbox on `store` (the test's own by default) whose tokens are "tok_<installation>"
  // (none for icfg_gone).
  Outbox make_outbox(store::Store* store = nullptr, Outbox::Options options = {}) {
    return Outbox(
        *(store ? store : store_.get()), http_, vercel_.url(),
        [](const std::string& id) -> std::optional<std::string> {
          if (id == "icfg_gone") return std::nullopt;
          return "tok_" + id;
        },
        clock_, options);
  }
  // Four calls in flight, a fast dispatcher poll.
  static Outbox::Options concurrent() {
    Outbox::Options options;
    options.max_in_flight = 4;
    options.poll_ms = 20;
    return options;
  }

  void enqueue(const std::string& inst, const std::string& resource) {
    store_->write([&](store::WriteTx& tx) {
      Outbox::enqueue_event(tx, inst, Json{{"type", "resource.updated"}, {"resourceId", resource}},
                            clock_.now_ms());
    });
  }

  store::OutboxStats stats() {
    store::OutboxStats st;
    store_->read([&](store::ReadTx& tx) { st = tx.outbox_stats(); });
    return st;
  }

  std::filesystem::path dir_;
  util::ManualClock clock_{1'800'000'000'000};
  net::HttpClient http_;
  testutil::ScriptedServer vercel_;
  std::unique_ptr<store::Store> store_;
};

TEST_F(OutboxTest, RetriesWithBackoffThenDeliversInOrder) {
  int calls = 0;
  vercel_.script([&](const net::Request&) {
    ++calls;
    if (calls == 1) return net::Response::json(503, R"({"error":{"code":"x","message":"down"}})");
    if (calls == 2) {
      auto r = net::Response::json(429, R"({"error":{"code":"rate_limited","message":"slow"}})");
      r.headers.emplace_back("Retry-After", "120");
      return r;
    }
    return net::Response::empty(201);
  });
  auto outbox = make_outbox();
  enqueue("icfg_a", "res_1");
  enqueue("icfg_a", "res_2");

  EXPECT_EQ(outbox.deliver_due(), 0);  // 503: backoff
  EXPECT_EQ(outbox.deliver_due(), 0);  // not due yet: nothing is sent
  EXPECT_EQ(calls, 1);
  clock_.advance_ms(1000);             // first backoff is at most base (1 s)
  EXPECT_EQ(outbox.deliver_due(), 0);  // 429 with Retry-After: 120
  EXPECT_EQ(calls, 2);
  clock_.advance_ms(119'000);
  EXPECT_EQ(outbox.deliver_due(), 0);  // Retry-After honoured: still waiting
  EXPECT_EQ(calls, 2);
  clock_.advance_ms(1'000);
  EXPECT_EQ(outbox.deliver_due(), 1);  // res_1, and only then res_2
  EXPECT_EQ(outbox.deliver_due(), 1);
  auto reqs = vercel_.requests();
  ASSERT_EQ(reqs.size(), 4u);
  EXPECT_EQ(reqs[0].path, "/v1/installations/icfg_a/events");
  EXPECT_EQ(reqs[0].header("authorization"), "Bearer tok_icfg_a");
  EXPECT_EQ(Json::parse(reqs[2].body)["event"]["resourceId"], "res_1");
  EXPECT_EQ(Json::parse(reqs[3].body)["event"]["resourceId"], "res_2");
  EXPECT_EQ(stats().pending, 0);
}

// Regression: the batch took the first heads whether due or not, so with a batch's worth of
// installations in backoff a due item waited up to the longest backoff.
TEST_F(OutboxTest, HeadsInBackoffDoNotHideADueItem) {
  std::set<std::string> failing;
  for (int i = 0; i < 100; ++i)
    failing.insert("/v1/installations/icfg_" + std::to_string(i) + "/events");
  vercel_.script([&](const net::Request& req) {
    if (failing.count(req.path))
      return net::Response::json(503, R"({"error":{"code":"x","message":"down"}})");
    return net::Response::empty(201);
  });
  auto outbox = make_outbox();
  for (int i = 0; i < 100; ++i) enqueue("icfg_" + std::to_string(i), "res_" + std::to_string(i));
  // Every one of the 100 fails once and goes into backoff (several passes: batches).
  for (int pass = 0; pass < 10; ++pass) outbox.deliver_due();
  size_t sent = vercel_.requests().size();
  EXPECT_EQ(sent, 100u);
  enqueue("icfg_due", "res_due");  // newest of all, behind 100 heads in backoff
  EXPECT_EQ(outbox.deliver_due(), 1);
  auto reqs = vercel_.requests();
  ASSERT_EQ(reqs.size(), sent + 1);
  EXPECT_EQ(reqs.back().path, "/v1/installations/icfg_due/events");
  EXPECT_EQ(stats().pending, 100);  // the 100 are still pending, in backoff
}

TEST_F(OutboxTest, ClientErrorsBecomeDeadLettersWithTheResponseKept) {
  vercel_.script([](const net::Request& req) {
    if (req.path.find("icfg_bad") != std::string::npos)
      return net::Response::json(400, R"({"error":{"code":"bad_request","message":"event.type"}})");
    if (req.path.find("icfg_removed") != std::string::npos)
      return net::Response::json(410, R"({"error":{"code":"gone","message":"gone"}})");
    return net::Response::json(404, R"({"error":{"code":"not_found","message":"no resource"}})");
  });
  auto outbox = make_outbox();
  std::vector<std::string> gone;
  vercel::Outbox::Hooks hooks;
  hooks.gone = [&gone](store::WriteTx&, const store::OutboxRow& item, int64_t) {
    gone.push_back(item.installation_id);
  };
  outbox.set_hooks(hooks);
  enqueue("icfg_bad", "res_1");
  enqueue("icfg_removed", "res_2");
  enqueue("icfg_gone", "res_3");  // no access token left
  // A 404 to an event about a resource says nothing of the installation, and leaves nothing
  // to tell (the resource is gone at Vercel): done, not a dead letter.
  enqueue("icfg_res404", "res_4");
  outbox.deliver_due();
  EXPECT_EQ(stats().dead, 3);
  EXPECT_EQ(stats().pending, 0);
  EXPECT_EQ(gone, std::vector<std::string>{"icfg_removed"});
  std::vector<store::OutboxRow> dead;
  store_->read([&](store::ReadTx& tx) {
    dead = tx.outbox_list("dead", 10);
    auto done = tx.outbox_list("delivered", 10);
    ASSERT_EQ(done.size(), 1u);
    EXPECT_EQ(done[0].installation_id, "icfg_res404");
    EXPECT_EQ(done[0].last_status, 404);
  });
  ASSERT_EQ(dead.size(), 3u);
  for (const auto& d : dead) {
    if (d.installation_id == "icfg_bad") {
      EXPECT_EQ(d.last_status, 400);
      EXPECT_NE(d.response_body.find("event.type"), std::string::npos);
    } else if (d.installation_id == "icfg_removed") {
      EXPECT_NE(d.last_error.find("installation gone"), std::string::npos);
    } else if (d.installation_id == "icfg_res404") {
      EXPECT_EQ(d.last_status, 404);
      EXPECT_EQ(d.last_error.find("installation gone"), std::string::npos);
    } else {
      EXPECT_NE(d.last_error.find("no access token"), std::string::npos);
    }
  }
}

TEST_F(OutboxTest, UndeliveredItemsSurviveARestart) {
  vercel_.script([](const net::Request&) { return net::Response::json(503, "{}"); });
  {
    auto outbox = make_outbox();
    enqueue("icfg_a", "res_1");
    outbox.deliver_due();
  }
  // The store is reopened (a new process): the item is still there and goes out.
  store_.reset();
  store_ = store::sqlite::open({(dir_ / "state.db").string(), 5000});
  vercel_.script([](const net::Request&) { return net::Response::empty(201); });
  auto outbox = make_outbox();
  clock_.advance_ms(5000);
  EXPECT_EQ(outbox.deliver_due(), 1);
  EXPECT_EQ(stats().pending, 0);
}

TEST_F(OutboxTest, AnOperatorRetriesOrDropsDeadLetters) {
  bool vercel_refuses = true;
  vercel_.script([&vercel_refuses](const net::Request&) {
    return vercel_refuses ? net::Response::json(400, R"({"error":{"code":"bad_request"}})")
                          : net::Response::empty(201);
  });
  auto outbox = make_outbox();
  enqueue("icfg_a", "res_1");
  enqueue("icfg_b", "res_2");
  enqueue("icfg_c", "res_3");
  outbox.deliver_due();
  ASSERT_EQ(stats().dead, 3);
  std::vector<store::OutboxRow> dead;
  store_->read([&](store::ReadTx& tx) { dead = tx.outbox_list("dead", 10); });
  std::map<std::string, std::string> id_of;
  for (const auto& d : dead) id_of[d.installation_id] = d.id;

  // Vercel fixed: one dead letter retried by id goes out, another is dropped for good.
  vercel_refuses = false;
  int64_t changed = 0;
  store_->write([&](store::WriteTx& tx) {
    changed = tx.retry_dead_outbox(id_of["icfg_a"], clock_.now_ms());
  });
  EXPECT_EQ(changed, 1);
  store_->write(
      [&](store::WriteTx& tx) { changed = tx.drop_dead_outbox(id_of["icfg_b"], clock_.now_ms()); });
  EXPECT_EQ(changed, 1);
  store_->write([&](store::WriteTx& tx) {
    changed = tx.drop_dead_outbox(id_of["icfg_b"], clock_.now_ms());  // not dead any more
  });
  EXPECT_EQ(changed, 0);
  EXPECT_EQ(outbox.deliver_due(), 1);
  EXPECT_EQ(stats().dead, 1);
  // --all: every dead letter left.
  store_->write([&](store::WriteTx& tx) { changed = tx.retry_dead_outbox("", clock_.now_ms()); });
  EXPECT_EQ(changed, 1);
  EXPECT_EQ(outbox.deliver_due(), 1);
  EXPECT_EQ(stats().dead, 0);
  EXPECT_EQ(stats().pending, 0);
  store_->read([&](store::ReadTx& tx) { dead = tx.outbox_list("dropped", 10); });
  ASSERT_EQ(dead.size(), 1u);
  EXPECT_EQ(dead[0].installation_id, "icfg_b");
}

TEST_F(OutboxTest, RetentionPurgesOnlyWhatIsOldAndSettled) {
  vercel_.script([](const net::Request& req) {
    if (req.path.find("icfg_dead") != std::string::npos)
      return net::Response::json(400, R"({"error":{"code":"bad_request"}})");
    if (req.path.find("icfg_slow") != std::string::npos) return net::Response::json(503, "{}");
    return net::Response::empty(201);
  });
  auto outbox = make_outbox();
  enqueue("icfg_ok", "res_1");
  enqueue("icfg_dead", "res_2");
  enqueue("icfg_slow", "res_3");
  outbox.deliver_due();
  const int64_t day = 86400 * 1000LL;
  store_->write([&](store::WriteTx& tx) {
    tx.put_webhook_event({"evt_old", "x", std::nullopt, "{}", clock_.now_ms(), clock_.now_ms()});
    tx.put_webhook_event(
        {"evt_unprocessed", "x", std::nullopt, "{}", clock_.now_ms(), std::nullopt});
    tx.add_usage("res_1", util::day_key(clock_.now_ms()), "queries", 5);
    tx.add_usage("res_1", util::day_key(clock_.now_ms() + 20 * day), "queries", 7);
  });
  clock_.advance_ms(31 * day);
  store_->write([&](store::WriteTx& tx) {
    tx.put_webhook_event({"evt_new", "x", std::nullopt, "{}", clock_.now_ms(), clock_.now_ms()});
  });
  service::Retention::Options options;
  options.usage_days = 25;
  service::Retention retention(*store_, clock_, options);
  auto purged = retention.run();
  EXPECT_EQ(purged.outbox, 1);    // the delivered one; dead and pending stay
  EXPECT_EQ(purged.webhooks, 1);  // processed and old; unprocessed and recent stay
  EXPECT_EQ(purged.usage, 1);     // the day 31 days back; the one 11 days back stays
  EXPECT_EQ(stats().dead, 1);
  EXPECT_EQ(stats().pending, 1);
  store_->read([&](store::ReadTx& tx) {
    EXPECT_FALSE(tx.webhook_event("evt_old"));
    EXPECT_TRUE(tx.webhook_event("evt_unprocessed"));
    EXPECT_TRUE(tx.webhook_event("evt_new"));
    EXPECT_EQ(tx.usage_between("res_1", "2000-01-01", "2100-01-01").size(), 1u);
  });
  EXPECT_EQ(retention.run().outbox, 0);  // nothing left to do
}

TEST_F(OutboxTest, ASlowInstallationDoesNotHoldUpTheOthers) {
  // icfg_slow's calls are held until the test releases them; the others answer at once.
  std::mutex mu;
  std::condition_variable cv;
  bool released = false;
  vercel_.script([&](const net::Request& req) {
    if (req.path.find("icfg_slow") != std::string::npos) {
      std::unique_lock lock(mu);
      cv.wait_for(lock, std::chrono::seconds(20), [&] { return released; });
    }
    return net::Response::empty(201);
  });
  Outbox::Options options = concurrent();
  Outbox outbox = make_outbox(nullptr, options);
  enqueue("icfg_slow", "res_s1");
  enqueue("icfg_slow", "res_s2");
  for (int i = 0; i < 5; ++i)
    for (int n = 0; n < 3; ++n)
      enqueue("icfg_fast" + std::to_string(i),
              "res_" + std::to_string(i) + "_" + std::to_string(n));
  outbox.start();
  // Every fast installation's calls are delivered while icfg_slow's first call is still out.
  auto deadline = std::chrono::steady_clock::now() + std::chrono::seconds(15);
  while (outbox.delivered_total() < 15 && std::chrono::steady_clock::now() < deadline)
    std::this_thread::sleep_for(std::chrono::milliseconds(10));
  EXPECT_EQ(outbox.delivered_total(), 15);
  EXPECT_EQ(stats().pending, 2);  // both of icfg_slow's, the first one in flight
  {
    std::lock_guard lock(mu);
    released = true;
  }
  cv.notify_all();
  EXPECT_TRUE(outbox.wait_idle(15000));
  outbox.stop();
  EXPECT_EQ(outbox.delivered_total(), 17);
  // Order per installation, and every call exactly once.
  std::map<std::string, std::vector<std::string>> seen;
  for (const auto& req : vercel_.requests()) {
    auto body = Json::parse(req.body);
    std::string inst = req.path.substr(std::string("/v1/installations/").size());
    inst = inst.substr(0, inst.find('/'));
    seen[inst].push_back(body["event"]["resourceId"]);
  }
  EXPECT_EQ(seen["icfg_slow"], (std::vector<std::string>{"res_s1", "res_s2"}));
  for (int i = 0; i < 5; ++i) {
    std::vector<std::string> want;
    for (int n = 0; n < 3; ++n)
      want.push_back("res_" + std::to_string(i) + "_" + std::to_string(n));
    EXPECT_EQ(seen["icfg_fast" + std::to_string(i)], want);
  }
}

TEST_F(OutboxTest, ProductCallsHaveALanePerResourceAndAreRetriedUntilDone) {
  // A product call whose backend is down is retried with backoff in its resource's lane,
  // while the installation's calls to Vercel and another resource's calls go on.
  vercel_.script([](const net::Request&) { return net::Response::empty(201); });
  Outbox outbox = make_outbox();
  std::mutex mu;  // a pass delivers its heads (one per lane) side by side
  std::vector<std::string> made;
  int down_left = 2;
  outbox.set_product_calls([&](const store::OutboxRow& item) {
    std::lock_guard lock(mu);
    made.push_back(item.path + ":" + item.kind);
    net::HttpResult r;
    if (item.path == "res_down" && down_left-- > 0) {
      r.error = "backend unreachable";
      return r;
    }
    r.status = 200;
    return r;
  });
  store_->write([&](store::WriteTx& tx) {
    Outbox::enqueue_product_call(tx, "icfg_a", "res_down", "provision", Json::object(),
                                 clock_.now_ms());
    Outbox::enqueue_product_call(tx, "icfg_a", "res_down", "remove", Json::object(),
                                 clock_.now_ms());
    Outbox::enqueue_product_call(tx, "icfg_a", "res_up", "change", Json{{"name", "x"}},
                                 clock_.now_ms());
  });
  enqueue("icfg_a", "res_event");
  // First pass: one call per lane; the down backend's provision fails, the rest go.
  EXPECT_EQ(outbox.deliver_due(), 2);
  EXPECT_EQ(vercel_.requests().size(), 1u);  // the installation's event was not held up
  EXPECT_EQ(stats().pending, 2);             // res_down's provision, then its remove
  for (int i = 0; i < 2; ++i) {
    clock_.advance_ms(20 * 60 * 1000);  // past any backoff
    outbox.deliver_due();
  }
  clock_.advance_ms(20 * 60 * 1000);
  outbox.deliver_due();
  EXPECT_EQ(stats().pending, 0);
  // Order within the lane: the provision (three attempts) before the remove.
  std::vector<std::string> down;
  for (const auto& m : made)
    if (m.rfind("res_down", 0) == 0) down.push_back(m);
  EXPECT_EQ(down,
            (std::vector<std::string>{"res_down:product.provision", "res_down:product.provision",
                                      "res_down:product.provision", "res_down:product.remove"}));
  // Never sent to Vercel, and a 4xx from a product is a dead letter, not "installation gone".
  for (const auto& req : vercel_.requests())
    EXPECT_EQ(req.path.find("res_down"), std::string::npos);
  outbox.set_product_calls([](const store::OutboxRow&) {
    net::HttpResult r;
    r.status = 404;
    return r;
  });
  store_->write([&](store::WriteTx& tx) {
    Outbox::enqueue_product_call(tx, "icfg_a", "res_x", "change", Json::object(), clock_.now_ms());
  });
  outbox.deliver_due();
  EXPECT_EQ(stats().dead, 1);
  enqueue("icfg_a", "res_after");
  EXPECT_EQ(outbox.deliver_due(), 1);  // the installation still delivers
}

// A store that counts what the outbox asks of it and can hold its writes (commits) back.
class GatedStore final : public store::Store {
 public:
  explicit GatedStore(store::Store& inner) : inner_(inner) {}
  void read(const std::function<void(store::ReadTx&)>& fn) override {
    ++reads;
    inner_.read(fn);
  }
  void write(const std::function<void(store::WriteTx&)>& fn) override {
    {
      std::unique_lock lock(mu_);
      cv_.wait(lock, [this] { return open_; });
    }
    if (write_delay_ms > 0) std::this_thread::sleep_for(std::chrono::milliseconds(write_delay_ms));
    ++writes;
    inner_.write(fn);
  }
  bool healthy() override { return inner_.healthy(); }
  std::string describe() const override { return inner_.describe(); }
  void hold() {
    std::lock_guard lock(mu_);
    open_ = false;
  }
  void release() {
    {
      std::lock_guard lock(mu_);
      open_ = true;
    }
    cv_.notify_all();
  }

  std::atomic<int> reads{0};
  std::atomic<int> writes{0};
  int write_delay_ms = 0;

 private:
  store::Store& inner_;
  std::mutex mu_;
  std::condition_variable cv_;
  bool open_ = true;
};

// What each installation's events named, in the order Vercel received them.
std::map<std::string, std::vector<std::string>> received_by_installation(
    const std::vector<net::Request>& requests) {
  std::map<std::string, std::vector<std::string>> seen;
  for (const auto& req : requests) {
    std::string inst = req.path.substr(std::string("/v1/installations/").size());
    inst = inst.substr(0, inst.find('/'));
    seen[inst].push_back(Json::parse(req.body)["event"]["resourceId"]);
  }
  return seen;
}

TEST_F(OutboxTest, OutcomesOfAPassAreRecordedInOneTransaction) {
  vercel_.script([](const net::Request&) { return net::Response::empty(201); });
  GatedStore gated(*store_);
  Outbox outbox = make_outbox(&gated);
  for (int i = 0; i < 5; ++i) enqueue("icfg_" + std::to_string(i), "res_" + std::to_string(i));
  EXPECT_EQ(outbox.deliver_due(), 5);
  EXPECT_EQ(gated.writes, 1);  // five outcomes, one commit
  EXPECT_EQ(stats().pending, 0);
}

TEST_F(OutboxTest, AnOutcomeThatCannotBeRecordedHoldsUpNoOther) {
  vercel_.script([](const net::Request&) { return net::Response::empty(201); });
  GatedStore gated(*store_);
  Outbox outbox = make_outbox(&gated);
  Outbox::Hooks hooks;
  hooks.delivered = [](store::WriteTx&, const store::OutboxRow& item, const std::string&) {
    if (item.installation_id == "icfg_bad") throw std::runtime_error("hook failed");
  };
  outbox.set_hooks(hooks);
  enqueue("icfg_a", "res_a");
  enqueue("icfg_bad", "res_bad");
  enqueue("icfg_c", "res_c");
  EXPECT_EQ(outbox.deliver_due(), 2);
  EXPECT_EQ(gated.writes, 4);  // the three together (rolled back), then one by one
  EXPECT_EQ(stats().pending, 1);
  std::vector<store::OutboxRow> pending;
  store_->read([&](store::ReadTx& tx) { pending = tx.outbox_list("pending", 10); });
  ASSERT_EQ(pending.size(), 1u);
  EXPECT_EQ(pending[0].installation_id, "icfg_bad");
  EXPECT_EQ(pending[0].attempts, 0);  // nothing of that attempt was recorded
  // Still pending, so sent again (at least once) and recorded once it can be.
  outbox.set_hooks({});
  EXPECT_EQ(outbox.deliver_due(), 1);
  EXPECT_EQ(stats().pending, 0);
  EXPECT_EQ(vercel_.requests().size(), 4u);
}

TEST_F(OutboxTest, ALaneWaitsForItsOutcomeToCommit) {
  // icfg_a's second call must not go out while the outcome of its first is not committed:
  // a crash then would have Vercel see the second before the first's resend.
  vercel_.script([](const net::Request&) { return net::Response::empty(201); });
  GatedStore gated(*store_);
  Outbox::Options options = concurrent();
  Outbox outbox = make_outbox(&gated, options);
  enqueue("icfg_a", "res_a1");
  enqueue("icfg_a", "res_a2");
  enqueue("icfg_b", "res_b1");
  gated.hold();
  outbox.start();
  auto deadline = std::chrono::steady_clock::now() + std::chrono::seconds(10);
  while (vercel_.requests().size() < 2 && std::chrono::steady_clock::now() < deadline)
    std::this_thread::sleep_for(std::chrono::milliseconds(5));
  std::this_thread::sleep_for(std::chrono::milliseconds(300));  // dispatcher polls meanwhile
  // a1 and b1 only: icfg_a stays busy until a1's outcome commits (freed earlier, its head,
  // still a1 in the store, would go out again; a2 must wait too).
  EXPECT_EQ(vercel_.requests().size(), 2u);
  EXPECT_EQ(outbox.delivered_total(), 0);
  gated.release();
  EXPECT_TRUE(outbox.wait_idle(10000));
  outbox.stop();
  EXPECT_EQ(outbox.delivered_total(), 3);
  auto seen = received_by_installation(vercel_.requests());
  EXPECT_EQ(seen["icfg_a"], (std::vector<std::string>{"res_a1", "res_a2"}));
  EXPECT_EQ(seen["icfg_b"], (std::vector<std::string>{"res_b1"}));
}

TEST_F(OutboxTest, TheWorkerRecordsOutcomesTogetherAndKeepsEachInstallationsOrder) {
  // Commits are slow (20 ms): the calls answered meanwhile go in the next one, not one each.
  vercel_.script([](const net::Request&) { return net::Response::empty(201); });
  GatedStore gated(*store_);
  gated.write_delay_ms = 20;
  Outbox::Options options = concurrent();
  Outbox outbox = make_outbox(&gated, options);
  constexpr int kInstallations = 20, kEach = 5;
  for (int n = 0; n < kEach; ++n)
    for (int i = 0; i < kInstallations; ++i)
      enqueue("icfg_" + std::to_string(i), "res_" + std::to_string(i) + "_" + std::to_string(n));
  outbox.start();
  // Watched through the counter, not wait_idle(): its reads and wake-ups would count too.
  auto deadline = std::chrono::steady_clock::now() + std::chrono::seconds(30);
  while (outbox.delivered_total() < kInstallations * kEach &&
         std::chrono::steady_clock::now() < deadline)
    std::this_thread::sleep_for(std::chrono::milliseconds(10));
  outbox.stop();
  EXPECT_EQ(outbox.delivered_total(), kInstallations * kEach);
  EXPECT_EQ(stats().pending, 0);
  EXPECT_LT(gated.writes, kInstallations * kEach / 2);
  // The due heads are read once per handful of calls, not once per call.
  EXPECT_LT(gated.reads, kInstallations * kEach / 2);
  auto seen = received_by_installation(vercel_.requests());
  ASSERT_EQ(seen.size(), static_cast<size_t>(kInstallations));
  for (int i = 0; i < kInstallations; ++i) {
    std::vector<std::string> want;
    for (int n = 0; n < kEach; ++n)
      want.push_back("res_" + std::to_string(i) + "_" + std::to_string(n));
    EXPECT_EQ(seen["icfg_" + std::to_string(i)], want);  // in order, each exactly once
  }
}

// Replicas on one store (issue 13): two outboxes claim lanes with leases; every call goes
// out exactly once, each installation's in order, and a replica that dies holding a lease
// loses its lanes to the other once the lease ends.
TEST_F(OutboxTest, ReplicasSharingAStoreSendEachCallOnceInOrderPerLane) {
  std::mutex mu;
  std::map<std::string, std::vector<std::string>> seen;  // installation -> resources, in order
  vercel_.script([&](const net::Request& req) {
    std::lock_guard<std::mutex> lock(mu);
    seen[req.path].push_back(Json::parse(req.body)["event"]["resourceId"]);
    return net::Response::empty(201);
  });
  for (int i = 0; i < 6; ++i)
    for (int r = 0; r < 5; ++r) enqueue("icfg_" + std::to_string(i), "res_" + std::to_string(r));
  Outbox::Options a_opts;
  a_opts.shared = true;
  a_opts.owner = "replica-a";
  a_opts.lease_ms = 60000;
  Outbox::Options b_opts = a_opts;
  b_opts.owner = "replica-b";
  auto a = make_outbox(nullptr, a_opts);
  auto b = make_outbox(nullptr, b_opts);
  // Both replicas poll until every call is out (a round that finds every lane leased by the
  // other delivers nothing, so the number of rounds depends on timing: under a sanitizer 20
  // rounds each were not always enough).
  std::atomic<int> delivered{0};
  const auto deadline = std::chrono::steady_clock::now() + std::chrono::seconds(30);
  auto poll = [&](Outbox& o) {
    while (delivered.load() < 30 && std::chrono::steady_clock::now() < deadline) {
      int n = o.deliver_due();
      delivered += n;
      if (n == 0) std::this_thread::sleep_for(std::chrono::milliseconds(1));
    }
  };
  std::thread ta([&] { poll(a); });
  std::thread tb([&] { poll(b); });
  ta.join();
  tb.join();
  EXPECT_EQ(delivered.load(), 30);
  EXPECT_EQ(stats().pending, 0);
  ASSERT_EQ(seen.size(), 6u);
  for (const auto& [path, order] : seen)
    EXPECT_EQ(order, (std::vector<std::string>{"res_0", "res_1", "res_2", "res_3", "res_4"}))
        << path;
  // Every lease was given back with its outcome.
  store_->read([&](store::ReadTx& tx) {
    for (int i = 0; i < 6; ++i) EXPECT_FALSE(tx.outbox_lease("icfg_" + std::to_string(i)));
  });

  // A replica that claimed a lane and died (no outcome): the other waits for the lease.
  enqueue("icfg_z", "res_late");
  store_->write([&](store::WriteTx& tx) {
    auto claimed =
        store::claim_outbox_heads(tx, "replica-dead", 10, clock_.now_ms(), clock_.now_ms() + 60000);
    ASSERT_EQ(claimed.size(), 1u);
  });
  EXPECT_EQ(b.deliver_due(), 0);  // leased by the dead replica
  clock_.advance_ms(60000);
  EXPECT_EQ(b.deliver_due(), 1);  // the lease ended: taken over
  EXPECT_EQ(seen["/v1/installations/icfg_z/events"], std::vector<std::string>{"res_late"});
}

}  // namespace
}  // namespace wharf::vercel
