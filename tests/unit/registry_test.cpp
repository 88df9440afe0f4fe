// The product registry: kinds by name, their declarations, and the factory making instances.
#include <gtest/gtest.h>
#include <unistd.h>

#include <filesystem>

#include "product/registry.h"

namespace wharf::product {
namespace {

TEST(Registry, BuiltinKindsDeclareWhatTheyOffer) {
  const Registry& kinds = builtin_kinds();
  EXPECT_EQ(kinds.kinds(), (std::vector<std::string>{"flags", "http", "postgres", "sqlite"}));
  EXPECT_FALSE(kinds.has("redis"));
  EXPECT_EQ(kinds.descriptor("redis"), nullptr);
  const Descriptor* sqlite = kinds.descriptor("sqlite");
  ASSERT_NE(sqlite, nullptr);
  std::vector<std::string> secrets;
  for (const auto& s : sqlite->secrets) secrets.push_back(s.name);
  EXPECT_EQ(secrets, (std::vector<std::string>{"DATABASE_URL", "DATABASE_TOKEN",
                                               "DATABASE_READONLY_TOKEN"}));
  ASSERT_NE(sqlite->metric("rowsWritten"), nullptr);
  EXPECT_FALSE(sqlite->metric("rowsWritten")->level);
  EXPECT_EQ(sqlite->metric("rowsWritten")->units, "rows");
  ASSERT_NE(sqlite->metric("storageBytes"), nullptr);
  EXPECT_TRUE(sqlite->metric("storageBytes")->level);
  EXPECT_EQ(sqlite->storage_metric, "storageBytes");
  EXPECT_TRUE(sqlite->capabilities.sql_data_plane);
  EXPECT_TRUE(sqlite->capabilities.sql_sessions);
  // Every counter the SQL data plane records is a declared metric.
  UsageDelta{}.for_each(
      [sqlite](const char* name, int64_t) { EXPECT_NE(sqlite->metric(name), nullptr) << name; });

  // Flags: OFREP's base URL and two keys of Wharf's, evaluations metered, Global Config sync.
  const Descriptor* flags = kinds.descriptor("flags");
  ASSERT_NE(flags, nullptr);
  secrets.clear();
  for (const auto& s : flags->secrets) secrets.push_back(s.name);
  EXPECT_EQ(secrets, (std::vector<std::string>{"FLAGS_URL", "FLAGS_ADMIN_KEY", "FLAGS_SDK_KEY"}));
  EXPECT_EQ(flags->data_plane_path, "/v1/flags/");
  ASSERT_NE(flags->metric("evaluations"), nullptr);
  EXPECT_FALSE(flags->metric("evaluations")->level);
  EXPECT_TRUE(flags->capabilities.config_sync);
  EXPECT_FALSE(sqlite->capabilities.config_sync);
}

TEST(Registry, MakesInstancesAndRefusesUnknownOrDuplicateKinds) {
  namespace fs = std::filesystem;
  fs::path dir = fs::temp_directory_path() / ("wharf_registry_" + std::to_string(getpid()));
  fs::remove_all(dir);
  KindSettings settings;
  settings.data_dir = dir.string();
  auto sqlite = builtin_kinds().make("sqlite", settings);
  ASSERT_NE(sqlite, nullptr);
  EXPECT_EQ(sqlite->kind(), "sqlite");
  // The instance declares what the registry holds for its kind.
  EXPECT_EQ(sqlite->descriptor().metrics.size(),
            builtin_kinds().descriptor("sqlite")->metrics.size());
  EXPECT_EQ(sqlite->descriptor().storage_metric,
            builtin_kinds().descriptor("sqlite")->storage_metric);
  EXPECT_TRUE(fs::is_directory(dir / "databases"));
  EXPECT_THROW(builtin_kinds().make("redis", settings), std::invalid_argument);

  Registry r;
  r.add("x", Descriptor{}, [](const KindSettings&) { return std::unique_ptr<Product>(); });
  EXPECT_THROW(
      r.add("x", Descriptor{}, [](const KindSettings&) { return std::unique_ptr<Product>(); }),
      std::logic_error);
  sqlite.reset();
  fs::remove_all(dir);
}

}  // namespace
}  // namespace wharf::product
