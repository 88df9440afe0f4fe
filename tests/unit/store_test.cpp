// The SQLite store: group commit (concurrent writers share commits, each operation keeps
// its own outcome, nothing is acknowledged before its commit) and the shared reader pool.
#include <gtest/gtest.h>
#include <sqlite3.h>

#include <atomic>
#include <chrono>
#include <filesystem>
#include <mutex>
#include <stdexcept>
#include <thread>
#include <vector>

#include "store/sqlite/sqlite_store.h"

namespace wharf {
namespace {

namespace fs = std::filesystem;

class SqliteStoreTest : public ::testing::Test {
 protected:
  void SetUp() override {
    dir_ = fs::temp_directory_path() /
           ("wharf-store-test-" + std::to_string(::getpid()) + "-" +
            ::testing::UnitTest::GetInstance()->current_test_info()->name());
    fs::remove_all(dir_);
    fs::create_directories(dir_);
  }
  void TearDown() override { fs::remove_all(dir_); }

  std::unique_ptr<store::Store> open(
      size_t max_group = 64,
      std::chrono::milliseconds reader_idle_close_after = std::chrono::milliseconds(60000)) {
    store::sqlite::Options o;
    o.path = (dir_ / "state.db").string();
    o.max_group = max_group;
    o.reader_idle_close_after = reader_idle_close_after;
    o.on_commit = [this](size_t n) {
      std::lock_guard<std::mutex> lock(mu_);
      commits_.push_back(n);
    };
    return store::sqlite::open(o);
  }

  int64_t usage(store::Store& s, const std::string& resource) {
    int64_t v = 0;
    s.read([&](store::ReadTx& tx) {
      auto m = tx.usage(resource, "2025-03-01");
      auto it = m.find("writes");
      v = it == m.end() ? 0 : it->second;
    });
    return v;
  }

  // `n` reads in flight at the same time (each waits inside its transaction for the others).
  static void reads_at_once(store::Store& s, int n) {
    std::atomic<int> inside{0};
    std::vector<std::thread> ts;
    for (int t = 0; t < n; ++t)
      ts.emplace_back([&] {
        s.read([&](store::ReadTx&) {
          ++inside;
          while (inside < n) std::this_thread::sleep_for(std::chrono::milliseconds(1));
        });
      });
    for (auto& t : ts) t.join();
  }

  std::vector<size_t> commits() {
    std::lock_guard<std::mutex> lock(mu_);
    return commits_;
  }

  fs::path dir_;
  std::mutex mu_;
  std::vector<size_t> commits_;
};

TEST_F(SqliteStoreTest, ConcurrentWritersShareCommitsAndEveryWriteLands) {
  auto s = open();
  const int threads = 8, per_thread = 40;
  std::vector<std::thread> ts;
  for (int t = 0; t < threads; ++t) {
    ts.emplace_back([&, t] {
      for (int i = 0; i < per_thread; ++i)
        s->write([&](store::WriteTx& tx) {
          tx.add_usage("res_" + std::to_string(t), "2025-03-01", "writes", 1);
          // Hold the writer long enough for the other threads to queue behind it.
          std::this_thread::sleep_for(std::chrono::microseconds(200));
        });
    });
  }
  for (auto& t : ts) t.join();
  for (int t = 0; t < threads; ++t) EXPECT_EQ(usage(*s, "res_" + std::to_string(t)), per_thread);
  auto c = commits();
  size_t carried = 0;
  for (size_t n : c) carried += n;
  EXPECT_EQ(carried, static_cast<size_t>(threads * per_thread));
  // Eight writers each waiting on the one before: most commits carry several operations.
  EXPECT_LT(c.size(), static_cast<size_t>(threads * per_thread));
}

TEST_F(SqliteStoreTest, AFailingOperationRollsBackAloneAndOnlyItsCallerSeesTheError) {
  auto s = open();
  std::atomic<bool> first_running{false};
  std::thread first([&] {
    s->write([&](store::WriteTx& tx) {
      tx.add_usage("res_first", "2025-03-01", "writes", 1);
      first_running = true;
      // Everyone below queues while this transaction is being written.
      std::this_thread::sleep_for(std::chrono::milliseconds(300));
    });
  });
  while (!first_running) std::this_thread::sleep_for(std::chrono::milliseconds(1));
  std::atomic<int> failures{0}, successes{0};
  std::vector<std::thread> ts;
  for (int t = 0; t < 4; ++t) {
    ts.emplace_back([&, t] {
      try {
        s->write([&](store::WriteTx& tx) {
          tx.add_usage("res_" + std::to_string(t), "2025-03-01", "writes", 5);
          if (t == 2) throw std::runtime_error("refused");
        });
        ++successes;
      } catch (const std::runtime_error& e) {
        EXPECT_STREQ(e.what(), "refused");
        ++failures;
      }
    });
  }
  for (auto& t : ts) t.join();
  first.join();
  EXPECT_EQ(failures, 1);
  EXPECT_EQ(successes, 3);
  EXPECT_EQ(usage(*s, "res_first"), 1);
  EXPECT_EQ(usage(*s, "res_0"), 5);
  EXPECT_EQ(usage(*s, "res_1"), 5);
  EXPECT_EQ(usage(*s, "res_2"), 0);  // rolled back to its savepoint
  EXPECT_EQ(usage(*s, "res_3"), 5);
  auto c = commits();
  ASSERT_EQ(c.size(), 2u);  // the first alone, then the four queued behind it together
  EXPECT_EQ(c[0], 1u);
  EXPECT_EQ(c[1], 4u);
}

TEST_F(SqliteStoreTest, ALoneFailingOperationWritesNothing) {
  auto s = open();
  EXPECT_THROW(s->write([&](store::WriteTx& tx) {
    tx.add_usage("res_a", "2025-03-01", "writes", 7);
    throw std::runtime_error("no");
  }),
               std::runtime_error);
  EXPECT_EQ(usage(*s, "res_a"), 0);
  EXPECT_TRUE(commits().empty());
  s->write([&](store::WriteTx& tx) { tx.add_usage("res_a", "2025-03-01", "writes", 2); });
  EXPECT_EQ(usage(*s, "res_a"), 2);
}

TEST_F(SqliteStoreTest, MaxGroupOneCommitsEachOperationAlone) {
  auto s = open(/*max_group=*/1);
  std::vector<std::thread> ts;
  for (int t = 0; t < 4; ++t)
    ts.emplace_back([&, t] {
      for (int i = 0; i < 10; ++i)
        s->write([&](store::WriteTx& tx) {
          tx.add_usage("res_" + std::to_string(t), "2025-03-01", "writes", 1);
        });
    });
  for (auto& t : ts) t.join();
  auto c = commits();
  EXPECT_EQ(c.size(), 40u);
  for (size_t n : c) EXPECT_EQ(n, 1u);
}

// Descriptors open on the store's database file (the writer's and each reader's).
int open_on(const fs::path& file) {
  int n = 0;
  for (const auto& e : fs::directory_iterator("/proc/self/fd")) {
    std::error_code ec;
    if (fs::read_symlink(e.path(), ec) == file) ++n;
  }
  return n;
}

TEST_F(SqliteStoreTest, ReadersAreSharedAcrossThreadsNotOnePerThread) {
  auto s = open();
  s->write([&](store::WriteTx& tx) { tx.add_usage("res_a", "2025-03-01", "writes", 1); });
  const fs::path db = fs::canonical(dir_ / "state.db");
  // Sixteen threads reading one after another: one reader connection serves them all.
  for (int t = 0; t < 16; ++t) std::thread([&] { EXPECT_EQ(usage(*s, "res_a"), 1); }).join();
  EXPECT_EQ(open_on(db), 2);  // the writer and one reader
  // Reads at the same time need more, and they are kept (up to a bound) for the next ones.
  reads_at_once(*s, 4);
  EXPECT_EQ(open_on(db), 5);
  for (int t = 0; t < 16; ++t) std::thread([&] { EXPECT_EQ(usage(*s, "res_a"), 1); }).join();
  EXPECT_EQ(open_on(db), 5);
}

// Four reads at once open four readers; once a whole period passes in which none of them
// was needed, release_memory closes all but one (the soak benchmark's RSS).
TEST_F(SqliteStoreTest, ReadersNoReadNeededForAPeriodAreClosed) {
  int64_t freed[2] = {0, 0};  // by the last release_memory: with a minute's period, without
  for (auto period : {std::chrono::milliseconds(60000), std::chrono::milliseconds(0)}) {
    SCOPED_TRACE(period.count());
    auto s = open(64, period);
    const fs::path db = fs::canonical(dir_ / "state.db");
    reads_at_once(*s, 4);
    ASSERT_EQ(open_on(db), 5);         // the writer and four readers
    s->release_memory();               // a period starts; page caches dropped
    EXPECT_EQ(usage(*s, "res_a"), 0);  // one reader taken: it was needed
    int64_t before = sqlite3_memory_used();
    s->release_memory();
    freed[period.count() ? 0 : 1] = before - sqlite3_memory_used();
    EXPECT_EQ(usage(*s, "res_a"), 0);  // the reader kept still serves
    EXPECT_EQ(open_on(db), 5);
    s.reset();
    fs::remove_all(dir_);
    fs::create_directories(dir_);
  }
  // Both calls drop the used reader's page cache. A minute had not passed for the first:
  // nothing more. Without a period, the three readers no read took were closed too, each
  // giving back its own memory (schema, statements, lookaside); their descriptors wait in
  // SQLite for the next connection to that file (POSIX locks are per process), so the
  // descriptor count is not what falls.
  EXPECT_GT(freed[1] - freed[0], 3 * 8 * 1024) << freed[0] << " vs " << freed[1];
}

}  // namespace
}  // namespace wharf

namespace wharf {
namespace {

TEST_F(SqliteStoreTest, DeploymentBranchesRoundTripAndListByResource) {
  auto s = open();
  store::BranchRow a;
  a.id = "res_1-br-aaaa";
  a.resource_id = "res_1";
  a.installation_id = "icfg_1";
  a.deployment_id = "dpl_1";
  a.action = "branch";
  a.secrets_sealed = std::string("\x00\x01sealed", 8);
  a.created_ms = 10;
  a.updated_ms = 11;
  store::BranchRow b = a;
  b.id = "res_1-br-bbbb";
  b.deployment_id = "dpl_2";
  b.secrets_sealed.reset();
  b.created_ms = 20;
  store::BranchRow other = a;
  other.id = "res_2-br-cccc";
  other.resource_id = "res_2";
  s->write([&](store::WriteTx& tx) {
    tx.put_branch(b);
    tx.put_branch(a);
    tx.put_branch(other);
  });
  a.status = "succeeded";
  a.status_text = "ready";
  s->write([&](store::WriteTx& tx) { tx.put_branch(a); });  // replace
  s->read([&](store::ReadTx& tx) {
    auto got = tx.branch(a.id);
    ASSERT_TRUE(got);
    EXPECT_EQ(got->status, "succeeded");
    EXPECT_EQ(got->status_text, "ready");
    EXPECT_EQ(got->secrets_sealed, a.secrets_sealed);  // a blob, NULs included
    EXPECT_EQ(got->deployment_id, "dpl_1");
    EXPECT_EQ(got->created_ms, 10);
    auto mine = tx.branches_of("res_1");
    ASSERT_EQ(mine.size(), 2u);
    EXPECT_EQ(mine[0].id, a.id);  // oldest first
    EXPECT_FALSE(mine[1].secrets_sealed);
    EXPECT_FALSE(tx.branch("res_9-br-none"));
  });
}

TEST_F(SqliteStoreTest, AReadIsOneSnapshotWhileWritesCommit) {
  auto s = open();
  s->write([](store::WriteTx& tx) { tx.add_usage("res_1", "2025-03-01", "writes", 1); });
  std::atomic<bool> written{false};
  int64_t first = -1, second = -1;
  s->read([&](store::ReadTx& tx) {
    first = tx.usage("res_1", "2025-03-01")["writes"];
    std::thread writer([&] {
      s->write([](store::WriteTx& w) { w.add_usage("res_1", "2025-03-01", "writes", 5); });
      written = true;
    });
    writer.join();
    second = tx.usage("res_1", "2025-03-01")["writes"];
  });
  EXPECT_TRUE(written);
  EXPECT_EQ(first, 1);
  EXPECT_EQ(second, 1);              // the same snapshot, although the write committed
  EXPECT_EQ(usage(*s, "res_1"), 6);  // and a later read sees it
}

}  // namespace
}  // namespace wharf
