// The SQLite store's group commit: concurrent writers share commits, each operation keeps
// its own outcome, and nothing is acknowledged before its commit.
#include <gtest/gtest.h>

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

class GroupCommitTest : public ::testing::Test {
 protected:
  void SetUp() override {
    dir_ = fs::temp_directory_path() /
           ("wharf-store-test-" + std::to_string(::getpid()) + "-" +
            ::testing::UnitTest::GetInstance()->current_test_info()->name());
    fs::remove_all(dir_);
    fs::create_directories(dir_);
  }
  void TearDown() override { fs::remove_all(dir_); }

  std::unique_ptr<store::Store> open(size_t max_group = 64) {
    store::sqlite::Options o;
    o.path = (dir_ / "state.db").string();
    o.max_group = max_group;
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

  std::vector<size_t> commits() {
    std::lock_guard<std::mutex> lock(mu_);
    return commits_;
  }

  fs::path dir_;
  std::mutex mu_;
  std::vector<size_t> commits_;
};

TEST_F(GroupCommitTest, ConcurrentWritersShareCommitsAndEveryWriteLands) {
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

TEST_F(GroupCommitTest, AFailingOperationRollsBackAloneAndOnlyItsCallerSeesTheError) {
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

TEST_F(GroupCommitTest, ALoneFailingOperationWritesNothing) {
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

TEST_F(GroupCommitTest, MaxGroupOneCommitsEachOperationAlone) {
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

}  // namespace
}  // namespace wharf
