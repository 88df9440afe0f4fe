// The sandbox's state (sandbox/state.h): a snapshot plus an append-only journal. Round trips
// across restarts, journal replay, compaction, a torn last line, stale journals, rollback on
// throw, mutate_in, the shape check on load, and that a change costs its own size on disk.
#include <gtest/gtest.h>

#include <filesystem>
#include <fstream>
#include <random>
#include <stdexcept>

#include "sandbox/state.h"
#include "util/crypto.h"

namespace wharf::sandbox {
namespace {

using model::Json;
namespace fs = std::filesystem;

class SandboxStateTest : public ::testing::Test {
 protected:
  void SetUp() override {
    dir_ = fs::temp_directory_path() / ("wharf_state_test_" + util::to_hex(util::random_bytes(6)));
    fs::create_directories(dir_);
    path_ = (dir_ / "sandbox-state.json").string();
  }
  void TearDown() override { fs::remove_all(dir_); }

  uint64_t size_of(const std::string& p) const {
    return fs::exists(p) ? static_cast<uint64_t>(fs::file_size(p)) : 0;
  }
  std::string journal() const { return path_ + ".journal"; }
  static std::string text_of(const std::string& p) {
    std::ifstream in(p, std::ios::binary);
    return std::string((std::istreambuf_iterator<char>(in)), std::istreambuf_iterator<char>());
  }
  static void append_text(const std::string& p, const std::string& text) {
    std::ofstream out(p, std::ios::binary | std::ios::app);
    out << text;
  }

  // A document of `n` resources of about 500 bytes each, and a webhooks list.
  static void fill(State& s, int n) {
    s.mutate([&](Json& doc) {
      for (int i = 0; i < n; ++i) {
        std::string icfg = "icfg_" + std::to_string(i);
        doc["installations"][icfg] = {
            {"id", icfg}, {"status", "active"}, {"accessTokens", {"vat_" + std::string(40, 'x')}}};
        doc["resources"][icfg]["db_" + std::to_string(i)] = {
            {"id", "db_" + std::to_string(i)},
            {"name", "main"},
            {"status", "ready"},
            {"secrets", {{{"name", "DATABASE_URL"}, {"value", std::string(300, 's')}}}}};
      }
      doc["webhooks"] = Json::array();
      for (int i = 0; i < 1000; ++i)
        doc["webhooks"].push_back(
            {{"id", "whd_" + std::to_string(i)}, {"status", "delivered"}, {"attempts", 1}});
    });
  }

  fs::path dir_;
  std::string path_;
};

TEST_F(SandboxStateTest, RoundTripAcrossRestart) {
  {
    State s(path_);
    s.mutate([](Json& doc) { doc["installations"]["icfg_1"] = {{"status", "active"}}; });
    s.mutate([](Json& doc) { doc["installations"]["icfg_1"]["status"] = "pending_deletion"; });
    s.mutate([](Json& doc) { doc["events"] = Json::array({{{"id", "evt_1"}}}); });
    s.mutate([](Json& doc) { doc["events"].push_back({{"id", "evt_2"}}); });
    s.mutate([](Json& doc) { doc["integration"] = {{"clientId", "oac_1"}}; });
  }
  State again(path_);
  Json doc = again.snapshot();
  EXPECT_EQ(doc["installations"]["icfg_1"]["status"], "pending_deletion");
  EXPECT_EQ(doc["events"], Json::parse(R"([{"id":"evt_1"},{"id":"evt_2"}])"));
  EXPECT_EQ(doc["integration"]["clientId"], "oac_1");
  // And carries on from there.
  again.mutate([](Json& doc2) { doc2["installations"].erase("icfg_1"); });
  EXPECT_FALSE(State(path_).snapshot()["installations"].contains("icfg_1"));
}

TEST_F(SandboxStateTest, ChangesAreJournaledAndReplayedNotRewritten) {
  State s(path_);
  s.mutate([](Json& doc) { doc["installations"]["icfg_1"] = {{"status", "active"}}; });
  uint64_t snapshot = size_of(path_);
  ASSERT_GT(snapshot, 0u);
  uint64_t journal_before = size_of(journal());
  for (int i = 0; i < 5; ++i)
    s.mutate([i](Json& doc) { doc["transfers"]["c" + std::to_string(i)] = {{"status", "x"}}; });
  EXPECT_EQ(size_of(path_), snapshot);  // the snapshot stays as it was
  EXPECT_GT(size_of(journal()), journal_before);
  // One line per change, after the header.
  std::string j = text_of(journal());
  EXPECT_EQ(std::count(j.begin(), j.end(), '\n'), 6);
  EXPECT_EQ(State(path_).snapshot(), s.snapshot());
}

TEST_F(SandboxStateTest, NoChangeWritesNothing) {
  State s(path_);
  s.mutate([](Json& doc) { doc["installations"]["icfg_1"] = {{"status", "active"}}; });
  uint64_t before = size_of(journal());
  s.mutate([](Json& doc) { doc["installations"]["icfg_1"]["status"] = "active"; });
  s.mutate([](Json&) {});
  EXPECT_EQ(size_of(journal()), before);
}

TEST_F(SandboxStateTest, SmallChangeToALargeDocumentAppendsASmallRecord) {
  State s(path_);
  fill(s, 2000);
  uint64_t snapshot = size_of(path_);
  ASSERT_GT(snapshot, 1000000u);  // about a megabyte
  uint64_t j0 = size_of(journal());

  s.mutate([](Json& doc) { doc["installations"]["icfg_77"]["status"] = "pending_deletion"; });
  uint64_t j1 = size_of(journal());
  EXPECT_LT(j1 - j0, 400u) << "one installation entry, not the document";

  // An append to a 1000-element list is an append, even with the oldest trimmed (a cap).
  s.mutate([](Json& doc) {
    doc["webhooks"].push_back({{"id", "whd_new"}, {"status", "pending"}, {"attempts", 0}});
    doc["webhooks"].erase(doc["webhooks"].begin());
  });
  uint64_t j2 = size_of(journal());
  EXPECT_LT(j2 - j1, 200u);
  // An update in the middle of the list is that element.
  s.mutate([](Json& doc) { doc["webhooks"][500]["status"] = "failed"; });
  uint64_t j3 = size_of(journal());
  EXPECT_LT(j3 - j2, 200u);
  // The same through mutate_in.
  s.mutate_in({"webhooks"}, [](Json& doc) { doc["webhooks"][10]["attempts"] = 2; });
  EXPECT_LT(size_of(journal()) - j3, 200u);

  EXPECT_EQ(size_of(path_), snapshot);
  EXPECT_EQ(State(path_).snapshot(), s.snapshot());
}

TEST_F(SandboxStateTest, JournalIsCompactedIntoANewSnapshot) {
  State::Options o;
  o.compact_min_bytes = 2048;
  State s(path_, o);
  s.mutate([](Json& doc) { doc["installations"]["icfg_1"] = {{"status", "active"}}; });
  uint64_t first_snapshot = size_of(path_);
  bool compacted = false;
  for (int i = 0; i < 200 && !compacted; ++i) {
    s.mutate([i](Json& doc) {
      doc["transfers"]["claim_" + std::to_string(i)] = {{"status", "created"}, {"n", i}};
    });
    compacted = size_of(path_) != first_snapshot;
  }
  ASSERT_TRUE(compacted);
  // The new snapshot holds everything; the journal restarted with just its header.
  std::string j = text_of(journal());
  EXPECT_EQ(std::count(j.begin(), j.end(), '\n'), 1);
  EXPECT_EQ(Json::parse(text_of(path_)), s.snapshot());
  EXPECT_LE(size_of(journal()), std::max<uint64_t>(size_of(path_), 2048));
  s.mutate([](Json& doc) { doc["transfers"]["after"] = {{"status", "created"}}; });
  EXPECT_EQ(State(path_, o).snapshot(), s.snapshot());
}

TEST_F(SandboxStateTest, TornLastLineIsIgnoredAndCutOff) {
  {
    State s(path_);
    s.mutate([](Json& doc) { doc["installations"]["icfg_1"] = {{"status", "active"}}; });
    s.mutate([](Json& doc) { doc["installations"]["icfg_2"] = {{"status", "active"}}; });
  }
  // A crash in the middle of writing the next record.
  append_text(journal(), R"({"ops":[{"op":"set","c":"installations","k":"icfg_3","v":{"sta)");
  {
    State s(path_);
    Json doc = s.snapshot();
    EXPECT_TRUE(doc["installations"].contains("icfg_2"));
    EXPECT_FALSE(doc["installations"].contains("icfg_3"));
    // The next record does not get glued to the torn one.
    s.mutate([](Json& d) { d["installations"]["icfg_4"] = {{"status", "active"}}; });
  }
  Json doc = State(path_).snapshot();
  EXPECT_TRUE(doc["installations"].contains("icfg_2"));
  EXPECT_TRUE(doc["installations"].contains("icfg_4"));
  EXPECT_FALSE(doc["installations"].contains("icfg_3"));
}

TEST_F(SandboxStateTest, CorruptJournalLineInTheMiddleIsAnErrorNamingTheFile) {
  {
    State s(path_);
    s.mutate([](Json& doc) { doc["installations"]["icfg_1"] = {{"status", "active"}}; });
  }
  append_text(journal(), "garbage\n");
  append_text(journal(), R"({"ops":[]})"
                         "\n");
  try {
    State s(path_);
    FAIL() << "expected an error";
  } catch (const std::runtime_error& e) {
    EXPECT_NE(std::string(e.what()).find(journal()), std::string::npos) << e.what();
    EXPECT_NE(std::string(e.what()).find("line 2"), std::string::npos) << e.what();
  }
}

TEST_F(SandboxStateTest, AJournalForAnotherSnapshotIsIgnored) {
  {
    State s(path_);
    s.mutate([](Json& doc) { doc["installations"]["icfg_1"] = {{"status", "active"}}; });
    s.mutate([](Json& doc) { doc["installations"]["icfg_2"] = {{"status", "active"}}; });
  }
  // The state file replaced by hand (as tests and benchmarks seed it).
  {
    std::ofstream out(path_, std::ios::trunc);
    out << R"({"installations":{"icfg_seeded":{"status":"active"}}})";
  }
  State s(path_);
  Json doc = s.snapshot();
  EXPECT_TRUE(doc["installations"].contains("icfg_seeded"));
  EXPECT_FALSE(doc["installations"].contains("icfg_2"));
  s.mutate([](Json& d) { d["installations"]["icfg_3"] = {{"status", "active"}}; });
  Json again = State(path_).snapshot();
  EXPECT_TRUE(again["installations"].contains("icfg_seeded"));
  EXPECT_TRUE(again["installations"].contains("icfg_3"));
  EXPECT_FALSE(again["installations"].contains("icfg_2"));
}

TEST_F(SandboxStateTest, ThrowingMutateRollsBackAndWritesNothing) {
  State s(path_);
  s.mutate([](Json& doc) { doc["installations"]["icfg_1"] = {{"status", "active"}}; });
  uint64_t journal_size = size_of(journal());
  EXPECT_THROW(s.mutate([](Json& doc) {
    doc["installations"]["icfg_1"]["status"] = "finalized";
    doc["resources"]["icfg_1"] = Json::object();
    throw std::runtime_error("no");
  }),
               std::runtime_error);
  EXPECT_EQ(s.snapshot()["installations"]["icfg_1"]["status"], "active");
  EXPECT_FALSE(s.snapshot().contains("resources"));
  EXPECT_EQ(size_of(journal()), journal_size);
  // mutate_in likewise.
  EXPECT_THROW(s.mutate_in({"installations"},
                           [](Json& doc) -> int {
                             doc["installations"]["icfg_1"]["status"] = "finalized";
                             throw std::runtime_error("no");
                           }),
               std::runtime_error);
  EXPECT_EQ(s.snapshot()["installations"]["icfg_1"]["status"], "active");
  EXPECT_EQ(size_of(journal()), journal_size);
  EXPECT_EQ(State(path_).snapshot(), s.snapshot());
}

TEST_F(SandboxStateTest, MutateInSeesOnlyTheNamedCollections) {
  State s(path_);
  s.mutate([](Json& doc) {
    doc["installations"]["icfg_1"] = {{"status", "active"}};
    doc["webhooks"] = Json::array();
  });
  int n = s.mutate_in({"webhooks"}, [](Json& doc) {
    EXPECT_FALSE(doc.contains("installations"));
    doc["webhooks"].push_back({{"id", "whd_1"}});
    return static_cast<int>(doc["webhooks"].size());
  });
  EXPECT_EQ(n, 1);
  Json doc = s.snapshot();
  EXPECT_EQ(doc["webhooks"].size(), 1u);
  EXPECT_EQ(doc["installations"]["icfg_1"]["status"], "active");
  // A collection absent so far is created.
  s.mutate_in({"transfers"}, [](Json& d) { d["transfers"]["c1"] = {{"status", "created"}}; });
  // Touching another collection is a programming error, and changes nothing.
  EXPECT_THROW(s.mutate_in({"webhooks"},
                           [](Json& d) {
                             d["webhooks"].push_back({{"id", "whd_2"}});
                             d["installations"]["icfg_1"]["status"] = "finalized";
                           }),
               std::logic_error);
  doc = s.snapshot();
  EXPECT_EQ(doc["webhooks"].size(), 1u);
  EXPECT_EQ(doc["installations"]["icfg_1"]["status"], "active");
  EXPECT_EQ(doc["transfers"]["c1"]["status"], "created");
  EXPECT_EQ(State(path_).snapshot(), doc);
}

TEST_F(SandboxStateTest, LoadedDocumentsAreCheckedAgainstTheCollectionShapes) {
  auto refused = [&](const std::string& text) {
    {
      std::ofstream out(path_, std::ios::trunc);
      out << text;
    }
    try {
      State s(path_);
      return std::string();
    } catch (const std::runtime_error& e) {
      EXPECT_NE(std::string(e.what()).find(path_), std::string::npos) << e.what();
      return std::string(e.what());
    }
  };
  EXPECT_NE(refused("[1,2]"), "");
  EXPECT_NE(refused("{\"installations\": "), "");
  EXPECT_NE(refused(R"({"installations": []})").find("\"installations\" must be an object"),
            std::string::npos);
  EXPECT_NE(refused(R"({"webhooks": {}})").find("\"webhooks\" must be an array"),
            std::string::npos);
  EXPECT_NE(refused(R"({"resources": {"icfg_1": 5}})").find("entry icfg_1"), std::string::npos);
  EXPECT_NE(refused(R"({"billing": {"icfg_1": {}}})").find("must be an array"), std::string::npos);
  // Null collections and entries (left by lookups) and unknown keys are fine.
  EXPECT_EQ(refused(R"({"events": null, "resources": {"icfg_1": null}, "extra": 1})"), "");
}

TEST(SandboxStateDiff, ApplyingTheDiffGivesTheNewDocument) {
  std::mt19937 rng(42);
  auto rand_list = [&](int n) {
    Json list = Json::array();
    for (int i = 0; i < n; ++i) list.push_back({{"id", static_cast<int>(rng() % 50)}});
    return list;
  };
  for (int round = 0; round < 500; ++round) {
    Json before = {{"events", rand_list(static_cast<int>(rng() % 30))},
                   {"installations", {{"a", 1}, {"b", {{"x", 1}}}}},
                   {"gone", 1}};
    Json after = before;
    after.erase("gone");
    after["new"] = {1, 2};
    Json& list = after["events"];
    int edits = static_cast<int>(rng() % 5);
    for (int e = 0; e < edits; ++e) {
      size_t at = list.empty() ? 0 : rng() % (list.size() + 1);
      switch (rng() % 3) {
        case 0:
          list.insert(list.begin() + static_cast<std::ptrdiff_t>(at), Json{{"id", 99}});
          break;
        case 1:
          if (at < list.size()) list.erase(list.begin() + static_cast<std::ptrdiff_t>(at));
          break;
        default:
          if (at < list.size()) list[at]["id"] = 100 + e;
      }
    }
    if (round % 2) after["installations"].erase("a");
    after["installations"]["c"] = round;
    Json ops = State::diff(before, after);
    Json replayed = before;
    State::apply_ops(replayed, ops);
    ASSERT_EQ(replayed, after) << "ops " << ops.dump();
  }
}

}  // namespace
}  // namespace wharf::sandbox
