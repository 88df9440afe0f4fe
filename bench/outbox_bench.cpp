// Outbox delivery benchmark (bench/README.md, "Outbox delivery"), driven by bench/outbox.sh.
//
//   wharf-bench-outbox prepare --dir D [--installations K] [--resources M] [--items N]
//     Creates D/outbox.db: K installations (upserted through InstallationService, so the
//     access token is sealed as serve seals it) with M resources each (sqlite-free and
//     sqlite-pro) and this month's usage up to today; runs one real billing pass at the
//     current time, which enqueues Submit Billing Data bodies, and enqueues copies of those
//     bodies until the outbox holds N items (all POST /v1/installations/{id}/billing).
//     Writes D/sandbox/sandbox-state.json (the K installations with their access tokens, the
//     way tests/integration/test_sandbox_faults.py seeds the sandbox), D/requests.tsv (the
//     same requests as "path<TAB>token<TAB>body" lines, for bench/outbox.lua) and D/box.key.
//
//   wharf-bench-outbox deliver --dir D --url http://127.0.0.1:PORT
//     Runs the Outbox worker (start()) against the sandbox until nothing is pending, and
//     prints one JSON line: items, seconds, items/s, dead items, and the per-delivery cycle
//     time (p50/p99: from the start of one delivery to the start of the next, so the HTTP
//     call, the store write that records the outcome, the log line and, once per batch, the
//     read of the next heads).
#include <algorithm>
#include <chrono>
#include <cstdint>
#include <cstdio>
#include <cstdlib>
#include <filesystem>
#include <fstream>
#include <iostream>
#include <map>
#include <memory>
#include <string>
#include <thread>
#include <vector>

#include "bench_util.h"
#include "model/catalog.h"
#include "net/http_client.h"
#include "service/billing.h"
#include "service/installations.h"
#include "store/sqlite/sqlite_store.h"
#include "store/store.h"
#include "util/clock.h"
#include "util/crypto.h"
#include "util/ids.h"
#include "vercel/outbox.h"

namespace {

using namespace wharf;
namespace fs = std::filesystem;
using bench::in_range;
using bench::mix;
using Json = model::Json;

constexpr int64_t kDayMs = 24LL * 3600 * 1000;

struct Args {
  std::string cmd;
  std::string dir;
  std::string url;
  int installations = 100;
  int resources = 10;
  int items = 20000;
};

[[noreturn]] void usage_exit(const std::string& problem) {
  std::cerr << "wharf-bench-outbox: " << problem
            << "\nusage: wharf-bench-outbox prepare --dir D [--installations K] [--resources M] "
               "[--items N]\n       wharf-bench-outbox deliver --dir D --url URL\n";
  std::exit(2);
}

Args parse_args(int argc, char** argv) {
  Args a;
  if (argc < 2) usage_exit("missing command");
  a.cmd = argv[1];
  if (a.cmd != "prepare" && a.cmd != "deliver") usage_exit("unknown command " + a.cmd);
  for (int i = 2; i < argc; ++i) {
    std::string f = argv[i];
    auto value = [&]() -> std::string {
      if (i + 1 >= argc) usage_exit(f + " needs a value");
      return argv[++i];
    };
    auto number = [&]() {
      std::string v = value();
      try {
        return bench::positive_int(v);
      } catch (const std::exception&) {
        usage_exit(f + ": expected a positive integer, got '" + v + "'");
      }
    };
    if (f == "--dir") {
      a.dir = value();
    } else if (f == "--url") {
      a.url = value();
    } else if (f == "--installations") {
      a.installations = number();
    } else if (f == "--resources") {
      a.resources = number();
    } else if (f == "--items") {
      a.items = number();
    } else {
      usage_exit("unknown flag " + f);
    }
  }
  if (a.dir.empty()) usage_exit("--dir is required");
  if (a.cmd == "deliver" && a.url.empty()) usage_exit("deliver needs --url");
  return a;
}

std::string inst_id(int i) {
  char buf[32];
  std::snprintf(buf, sizeof buf, "icfg_obench%06d", i);
  return buf;
}

std::string token_of(const std::string& installation_id) {
  return "tok_outbox_bench_" + installation_id + "_0123456789abcdef";
}

std::string read_file(const fs::path& p) {
  std::ifstream in(p, std::ios::binary);
  if (!in) usage_exit("cannot read " + p.string());
  return std::string(std::istreambuf_iterator<char>(in), {});
}

void write_file(const fs::path& p, const std::string& text) {
  std::ofstream out(p, std::ios::binary | std::ios::trunc);
  out << text;
  if (!out) usage_exit("cannot write " + p.string());
}

int prepare(const Args& a) {
  const fs::path dir = a.dir;
  fs::create_directories(dir / "sandbox");
  const fs::path db = dir / "outbox.db";
  if (fs::exists(db)) usage_exit(db.string() + " exists: prepare needs a fresh directory");

  const int64_t now = util::SystemClock().now_ms();
  const int64_t month_start = service::month_start_ms(now);
  const int64_t today = service::day_start_ms(now);
  util::ManualClock clock(month_start);  // installations and resources date from the 1st

  std::string key = util::random_bytes(32);
  write_file(dir / "box.key", key);
  util::SecretBox box(key);
  auto catalog = model::Catalog::parse_text(model::builtin_catalog_json());
  auto store = store::sqlite::open({db.string(), 5000});
  service::InstallationService installations(*store, catalog, box, clock);

  Json state_installations = Json::object();
  for (int i = 0; i < a.installations; ++i) {
    std::string id = inst_id(i);
    model::UpsertInstallationRequest req;
    req.scopes = {"read:resource", "write:resource"};
    req.accepted_policies = {{"toc", "2024-02-28T10:00:00Z"}};
    req.access_token = token_of(id);
    req.token_type = "Bearer";
    req.account =
        Json{{"url", "https://vercel.com/bench"}, {"contact", {{"email", "bench@example.com"}}}};
    installations.upsert(id, {"team_obench" + std::to_string(i), "user_obench"}, req);
    char hex[16];
    std::snprintf(hex, sizeof hex, "%06x", i);
    state_installations[id] = {
        {"id", id},
        {"accountHex", hex},
        {"accountId", std::string("team_") + hex},
        {"status", "active"},
        {"accessTokens", {token_of(id)}},
        {"users", Json::object()},
        {"account",
         {{"name", "Bench team"}, {"url", "https://vercel.com/bench"}, {"contact", nullptr}}}};
  }
  // Resources (60 % free, 40 % pro: no prepaid plan, so every item is billing data) and
  // usage for each day of the month so far.
  store->write([&](store::WriteTx& tx) {
    for (int i = 0; i < a.installations; ++i) {
      for (int j = 0; j < a.resources; ++j) {
        store::ResourceRow r;
        r.id = inst_id(i) + "_res" + std::to_string(j);
        r.installation_id = inst_id(i);
        r.product_id = "sqlite-db";
        r.name = "db-" + std::to_string(j);
        r.billing_plan_id =
            mix(static_cast<uint64_t>(i) * 1000003ULL + static_cast<uint64_t>(j)) % 100 < 60
                ? "sqlite-free"
                : "sqlite-pro";
        r.created_ms = r.updated_ms = month_start;
        tx.put_resource(r);
        int64_t storage = 1 << 20;
        for (int64_t d = month_start; d <= today; d += kDayMs) {
          uint64_t s = mix(static_cast<uint64_t>(i) << 20 | static_cast<uint64_t>(j)) ^
                       static_cast<uint64_t>(d);
          std::string day = service::day_key(d);
          tx.add_usage(r.id, day, "queries", in_range(s + 1, 1000, 50000));
          tx.add_usage(r.id, day, "rowsRead", in_range(s + 2, 10000, 10000000));
          tx.add_usage(r.id, day, "rowsWritten", in_range(s + 3, 1000, 100000));
          storage += in_range(s + 4, 0, 4LL << 20);
          tx.max_usage(r.id, day, "storageBytes", storage);
        }
      }
    }
  });

  // One real pass at the current time: yesterday's final data (unless today is the 1st) and
  // today's interim data, for every installation.
  clock.set_ms(now);
  service::BillingService billing(*store, catalog, clock, {});
  auto stats = billing.run(now);
  std::vector<store::OutboxRow> seeds;
  store->read([&](store::ReadTx& tx) {
    seeds = tx.outbox_list("pending", static_cast<size_t>(a.installations) * 4);
  });
  if (seeds.empty()) usage_exit("the billing pass enqueued nothing");
  for (const auto& s : seeds)
    if (s.kind != "billing") usage_exit("the billing pass enqueued a " + s.kind + " item");

  // Copies of the pass's rows, round robin, in transactions of 1,000.
  int64_t total = static_cast<int64_t>(seeds.size());
  while (total < a.items) {
    store->write([&](store::WriteTx& tx) {
      for (int k = 0; k < 1000 && total < a.items; ++k, ++total) {
        store::OutboxRow row = seeds[static_cast<size_t>(total) % seeds.size()];
        row.id = util::new_id("obx");  // what Outbox::enqueue writes, body included
        row.seq = 0;
        tx.insert_outbox(row);
      }
    });
  }

  std::string tsv;
  size_t body_bytes = 0;
  for (const auto& s : seeds) {
    tsv += s.path + "\t" + token_of(s.installation_id) + "\t" + s.body + "\n";
    body_bytes += s.body.size();
  }
  write_file(dir / "requests.tsv", tsv);
  write_file(dir / "sandbox" / "sandbox-state.json",
             Json{{"installations", state_installations}}.dump());

  store::OutboxStats os;
  store->read([&](store::ReadTx& tx) { os = tx.outbox_stats(); });
  Json out = {{"installations", a.installations},
              {"resources_per_installation", a.resources},
              {"billing_pass_items", stats.billing_data},
              {"distinct_bodies", seeds.size()},
              {"mean_body_bytes", static_cast<double>(body_bytes) / seeds.size()},
              {"pending", os.pending}};
  std::printf("%s\n", out.dump().c_str());
  return 0;
}

// System time; also records (steady clock, ns) every reading the Outbox worker takes: one
// per delivery and one per batch (deliver_due, right after it read the heads).
class RecordingClock final : public util::Clock {
 public:
  explicit RecordingClock(size_t expected) { marks_.reserve(expected); }
  int64_t now_ms() const override {
    marks_.push_back(std::chrono::steady_clock::now().time_since_epoch().count());
    return system_.now_ms();
  }
  const std::vector<int64_t>& marks() const { return marks_; }

 private:
  util::SystemClock system_;
  mutable std::vector<int64_t> marks_;  // only the worker thread reads the clock
};

double percentile(std::vector<double> v, double p) {
  if (v.empty()) return 0;
  std::sort(v.begin(), v.end());
  size_t i = static_cast<size_t>(p * static_cast<double>(v.size() - 1) + 0.5);
  return v[std::min(i, v.size() - 1)];
}

int deliver(const Args& a) {
  const fs::path dir = a.dir;
  util::SecretBox box(read_file(dir / "box.key"));
  auto catalog = model::Catalog::parse_text(model::builtin_catalog_json());
  auto store = store::sqlite::open({(dir / "outbox.db").string(), 5000});
  util::SystemClock system;
  service::InstallationService installations(*store, catalog, box, system);

  store::OutboxStats before;
  store->read([&](store::ReadTx& tx) { before = tx.outbox_stats(); });
  RecordingClock clock(static_cast<size_t>(before.pending) * 2 + 1024);
  net::HttpClient http;  // serve's defaults
  vercel::Outbox outbox(
      *store, http, a.url,
      [&installations](const std::string& id) { return installations.access_token(id); }, clock,
      {});

  auto t0 = std::chrono::steady_clock::now();
  outbox.start();
  store::OutboxStats now_stats = before;
  while (true) {
    std::this_thread::sleep_for(std::chrono::milliseconds(10));
    store->read([&](store::ReadTx& tx) { now_stats = tx.outbox_stats(); });
    // Everything delivered, or what is left is waiting for a retry (a failed run).
    if (now_stats.pending == 0) break;
    if (std::chrono::steady_clock::now() - t0 > std::chrono::minutes(30)) break;
  }
  double seconds = std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count();
  outbox.stop();

  // Cycle times: a batch's clock reading is followed within microseconds by its first
  // delivery's, so readings closer than 20 µs count as one.
  std::vector<int64_t> events;
  for (int64_t m : clock.marks()) {
    if (!events.empty() && m - events.back() < 20000)
      events.back() = m;
    else
      events.push_back(m);
  }
  std::vector<double> cycle_ms;
  for (size_t i = 1; i < events.size(); ++i)
    cycle_ms.push_back(static_cast<double>(events[i] - events[i - 1]) / 1e6);

  int64_t delivered = outbox.delivered_total();
  Json out = {{"items", before.pending},
              {"delivered", delivered},
              {"dead", now_stats.dead - before.dead},
              {"left_pending", now_stats.pending},
              {"seconds", seconds},
              {"items_per_s", static_cast<double>(delivered) / seconds},
              {"cycle_ms_p50", percentile(cycle_ms, 0.50)},
              {"cycle_ms_p99", percentile(cycle_ms, 0.99)},
              {"cycle_ms_max", percentile(cycle_ms, 1.0)}};
  std::printf("%s\n", out.dump().c_str());
  return now_stats.pending == 0 && now_stats.dead == before.dead ? 0 : 1;
}

}  // namespace

int main(int argc, char** argv) {
  Args a = parse_args(argc, argv);
  return a.cmd == "prepare" ? prepare(a) : deliver(a);
}
