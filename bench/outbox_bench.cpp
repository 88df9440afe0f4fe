// Outbox delivery benchmark (bench/README.md, "Outbox delivery"), driven by bench/outbox.sh.
//
//   wharf-bench-outbox prepare --dir D [--installations K] [--resources M] [--items N] [--mix]
//     Creates D/outbox.db: K installations (upserted through InstallationService, so the
//     access token is sealed as serve seals it) with M resources each (sqlite-free and
//     sqlite-pro) and this month's usage up to today; runs one real billing pass at the
//     current time, which enqueues Submit Billing Data bodies, and enqueues copies of those
//     bodies until the outbox holds N items (all POST /v1/installations/{id}/billing).
//     Writes D/sandbox/sandbox-state.json (the K installations with their access tokens, the
//     way tests/integration/test_sandbox_faults.py seeds the sandbox), D/requests.tsv (the
//     same requests as "path<TAB>token<TAB>body" lines, for bench/outbox.lua) and D/box.key.
//     --mix (the stand-in mode): every copy is distinct (its billing data's `timestamp` is
//     moved on by a millisecond per item) and every fourth item is a Create Event
//     (resource.updated) instead, so the stand-in's record of what it received can be matched
//     item by item against the enqueue order.
//
//   wharf-bench-outbox deliver --dir D --url http://127.0.0.1:PORT
//     Runs the Outbox worker (start(), --concurrency senders: 8 as serve; --no-keepalive: a
//     new connection per call) against the sandbox until nothing is pending (or --timeout
//     seconds, 1800), and
//     prints one JSON line: items, seconds, items/s, dead items, and the cycle time (p50/p99:
//     from one delivery's start to the next's, over all senders, so with one sender the HTTP
//     call, the store write that records the outcome, the log line and, once per batch, the
//     read of the next heads).
//     --standin: the URL is `wharf-bench-outbox standin`'s; the JSON line adds the order check
//     (per installation, what the stand-in received against the enqueue order), this
//     process's CPU (user and system, getrusage over the delivery) and the stand-in's.
//
//   wharf-bench-outbox standin --installations K [--port P] [--threads T]
//     A minimal fast Vercel on 127.0.0.1 (net::Server, handlers on its I/O threads): answers
//     the Vercel API calls the outbox makes with their documented 2xx (vercel-api.md §3),
//     401 unless the bearer is the installation's token, 404 for an unknown installation or
//     path, 400 for a body that is not JSON; keeps per installation the order of what it
//     accepted (a hash of method, path and body per call), and reports it with its own CPU at
//     GET /_standin/report (GET /_standin/cpu: the CPU alone). Prints its port on stdout.
#include <sys/resource.h>

#include <algorithm>
#include <atomic>
#include <chrono>
#include <cstdint>
#include <cstdio>
#include <cstdlib>
#include <filesystem>
#include <fstream>
#include <iostream>
#include <map>
#include <memory>
#include <mutex>
#include <set>
#include <string>
#include <string_view>
#include <thread>
#include <unordered_map>
#include <vector>

#include "bench_util.h"
#include "model/catalog.h"
#include "net/http_client.h"
#include "net/server.h"
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
  bool mix = false;       // prepare: distinct items, events among the billing data
  bool standin = false;   // deliver: against the stand-in (order check, its CPU)
  int port = 0;           // standin
  int threads = 1;        // standin: I/O threads
  int timeout_s = 1800;   // deliver: give up after this long
  int concurrency = 8;    // deliver: Outbox::Options::max_in_flight (serve's default)
  bool keepalive = true;  // deliver: HttpClient keeps connections (serve's default)
};

[[noreturn]] void usage_exit(const std::string& problem) {
  std::cerr << "wharf-bench-outbox: " << problem
            << "\nusage: wharf-bench-outbox prepare --dir D [--installations K] [--resources M] "
               "[--items N] [--mix]\n       wharf-bench-outbox deliver --dir D --url URL "
               "[--standin] [--concurrency C] [--no-keepalive] [--timeout S]\n       "
               "wharf-bench-outbox standin "
               "--installations K "
               "[--port P] [--threads T]\n";
  std::exit(2);
}

Args parse_args(int argc, char** argv) {
  Args a;
  if (argc < 2) usage_exit("missing command");
  a.cmd = argv[1];
  if (a.cmd != "prepare" && a.cmd != "deliver" && a.cmd != "standin")
    usage_exit("unknown command " + a.cmd);
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
    } else if (f == "--mix") {
      a.mix = true;
    } else if (f == "--standin") {
      a.standin = true;
    } else if (f == "--port") {
      std::string v = value();
      a.port = v == "0" ? 0 : bench::positive_int(v);
    } else if (f == "--threads") {
      a.threads = number();
    } else if (f == "--no-keepalive") {
      a.keepalive = false;
    } else if (f == "--concurrency") {
      a.concurrency = number();
    } else if (f == "--timeout") {
      a.timeout_s = number();
    } else {
      usage_exit("unknown flag " + f);
    }
  }
  if (a.dir.empty() && a.cmd != "standin") usage_exit("--dir is required");
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

  // Copies of the pass's rows, round robin, in transactions of 1,000. With --mix each copy
  // is distinct (timestamp) and every fourth item is a Create Event of the same installation.
  std::vector<Json> seed_bodies;
  if (a.mix)
    for (const auto& s : seeds) seed_bodies.push_back(Json::parse(s.body));
  int64_t total = static_cast<int64_t>(seeds.size());
  while (total < a.items) {
    store->write([&](store::WriteTx& tx) {
      for (int k = 0; k < 1000 && total < a.items; ++k, ++total) {
        const size_t which = static_cast<size_t>(total) % seeds.size();
        store::OutboxRow row = seeds[which];
        if (a.mix && total % 4 == 3) {
          int64_t round = total / static_cast<int64_t>(seeds.size());
          std::string resource = row.installation_id + "_res" + std::to_string(round % a.resources);
          vercel::Outbox::enqueue_event(tx, row.installation_id,
                                        Json{{"type", "resource.updated"},
                                             {"productId", "sqlite-db"},
                                             {"resourceId", resource}},
                                        now);
          continue;
        }
        if (a.mix) {
          Json body = seed_bodies[which];
          body["timestamp"] = util::format_iso8601_ms(now - a.items + total);
          row.body = body.dump();
        }
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
// per delivery and one per read of the heads. The senders read it side by side, hence the lock.
class RecordingClock final : public util::Clock {
 public:
  explicit RecordingClock(size_t expected) { marks_.reserve(expected); }
  int64_t now_ms() const override {
    {
      std::lock_guard<std::mutex> lock(mu_);
      marks_.push_back(std::chrono::steady_clock::now().time_since_epoch().count());
    }
    return system_.now_ms();
  }
  std::vector<int64_t> marks() const {
    std::lock_guard<std::mutex> lock(mu_);
    return marks_;
  }

 private:
  util::SystemClock system_;
  mutable std::mutex mu_;
  mutable std::vector<int64_t> marks_;
};

double percentile(std::vector<double> v, double p) {
  if (v.empty()) return 0;
  std::sort(v.begin(), v.end());
  size_t i = static_cast<size_t>(p * static_cast<double>(v.size() - 1) + 0.5);
  return v[std::min(i, v.size() - 1)];
}

// What the stand-in records of a call (FNV-1a 64 of method, path and body), as hex.
std::string call_digest(std::string_view method, std::string_view path, std::string_view body) {
  uint64_t h = 0xcbf29ce484222325ULL;
  auto add = [&h](std::string_view s) {
    for (unsigned char c : s) {
      h ^= c;
      h *= 0x100000001b3ULL;
    }
  };
  add(method);
  add(" ");
  add(path);
  add("\n");
  add(body);
  char buf[17];
  std::snprintf(buf, sizeof buf, "%016llx", static_cast<unsigned long long>(h));
  return buf;
}

struct Cpu {
  double user_s = 0;
  double sys_s = 0;
};

Cpu self_cpu() {
  rusage ru{};
  getrusage(RUSAGE_SELF, &ru);
  auto sec = [](const timeval& t) {
    return static_cast<double>(t.tv_sec) + static_cast<double>(t.tv_usec) / 1e6;
  };
  return {sec(ru.ru_utime), sec(ru.ru_stime)};
}

Json fetch_json(const net::HttpClient& http, const std::string& url) {
  auto r = http.get(url);
  if (!r.ok()) usage_exit("GET " + url + " failed: " + std::to_string(r.status) + " " + r.error);
  return Json::parse(r.body);
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
  // The enqueue order, per installation, of what is to be delivered (stand-in mode).
  std::map<std::string, std::vector<std::string>> expected;
  if (a.standin) {
    std::vector<store::OutboxRow> rows;
    store->read([&](store::ReadTx& tx) {
      rows = tx.outbox_list("pending", static_cast<size_t>(before.pending));
    });
    std::sort(rows.begin(), rows.end(),
              [](const store::OutboxRow& x, const store::OutboxRow& y) { return x.seq < y.seq; });
    for (const auto& r : rows)
      expected[r.installation_id].push_back(call_digest(r.method, r.path, r.body));
  }
  RecordingClock clock(static_cast<size_t>(before.pending) * 2 + 1024);
  net::HttpClient::Options http_options;                // serve's defaults
  if (!a.keepalive) http_options.max_idle_handles = 0;  // a new connection per call
  net::HttpClient http(http_options);
  vercel::Outbox::Options options;  // serve's defaults but the concurrency
  options.max_in_flight = static_cast<size_t>(a.concurrency);
  vercel::Outbox outbox(
      *store, http, a.url,
      [&installations](const std::string& id) { return installations.access_token(id); }, clock,
      options);

  Json standin_before;
  if (a.standin) standin_before = fetch_json(http, a.url + "/_standin/cpu");
  const Cpu cpu0 = self_cpu();
  auto t0 = std::chrono::steady_clock::now();
  outbox.start();
  store::OutboxStats now_stats = before;
  auto last_stats = t0;
  while (true) {
    std::this_thread::sleep_for(std::chrono::milliseconds(10));
    // The store is read only when everything may be done, or once a second (a failed run:
    // what is left waits for a retry or is dead), so the watching costs next to nothing.
    auto t = std::chrono::steady_clock::now();
    if (outbox.delivered_total() < before.pending && t - last_stats < std::chrono::seconds(1))
      continue;
    last_stats = t;
    store->read([&](store::ReadTx& tx) { now_stats = tx.outbox_stats(); });
    if (now_stats.pending == 0) break;
    if (t - t0 > std::chrono::seconds(a.timeout_s)) break;
  }
  double seconds = std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count();
  const Cpu cpu1 = self_cpu();
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
              {"cycle_ms_max", percentile(cycle_ms, 1.0)},
              {"cpu_user_s", cpu1.user_s - cpu0.user_s},
              {"cpu_sys_s", cpu1.sys_s - cpu0.sys_s}};
  bool order_ok = true;
  if (a.standin) {
    Json report = fetch_json(http, a.url + "/_standin/report");
    out["standin_cpu_user_s"] =
        report["cpu_user_s"].get<double>() - standin_before["cpu_user_s"].get<double>();
    out["standin_cpu_sys_s"] =
        report["cpu_sys_s"].get<double>() - standin_before["cpu_sys_s"].get<double>();
    out["standin_accepted"] = report["accepted"];
    out["standin_rejected"] = report["rejected"];
    // Per installation, what the stand-in accepted must be the enqueue order exactly: no call
    // missing, none out of order, none twice.
    int64_t bad_installations = 0, duplicates = 0;
    std::string first_bad;
    const Json& got = report["installations"];
    std::set<std::string> names;
    for (const auto& [id, _] : expected) names.insert(id);
    for (auto it = got.begin(); it != got.end(); ++it) names.insert(it.key());
    for (const auto& id : names) {
      std::vector<std::string> seen;
      if (got.contains(id)) seen = got[id].get<std::vector<std::string>>();
      // Sent more often than enqueued (bodies may repeat: events of the same resource).
      std::unordered_map<std::string, int64_t> count;
      for (const auto& d : seen) ++count[d];
      for (const auto& d : expected[id]) --count[d];
      for (const auto& [d, n] : count) duplicates += std::max<int64_t>(0, n);
      if (seen != expected[id]) {
        ++bad_installations;
        if (first_bad.empty()) first_bad = id;
      }
    }
    order_ok = bad_installations == 0;
    out["installations"] = expected.size();
    out["order_ok"] = order_ok;
    out["order_bad_installations"] = bad_installations;
    out["order_first_bad"] = first_bad;
    out["duplicates"] = duplicates;
  }
  std::printf("%s\n", out.dump().c_str());
  return now_stats.pending == 0 && now_stats.dead == before.dead && order_ok ? 0 : 1;
}

// The minimal fast Vercel (see the header comment).
class StandIn {
 public:
  explicit StandIn(int installations) {
    for (int i = 0; i < installations; ++i) {
      std::string id = inst_id(i);
      bearer_[id] = "Bearer " + token_of(id);
      received_[id];  // every installation's list exists: the map is never resized after
    }
  }

  net::Response handle(net::Request& req) {
    std::string_view path = req.path;
    if (req.method == "GET" && path == "/_standin/cpu")
      return net::Response::json(200, cpu().dump());
    if (req.method == "GET" && path == "/_standin/report") return report();
    constexpr std::string_view kPrefix = "/v1/installations/";
    if (path.substr(0, kPrefix.size()) != kPrefix) return error(404, "not_found", "no such path");
    path.remove_prefix(kPrefix.size());
    const std::string id(path.substr(0, path.find('/')));
    std::string_view rest = path.substr(id.size());
    auto known = bearer_.find(id);
    if (known == bearer_.end()) return error(404, "not_found", "no such installation");
    auto auth = req.header("authorization");
    if (!auth || *auth != known->second)
      return error(401, "forbidden", "not this installation's access token");
    int status = status_of(req.method, rest);
    if (status == 0) return error(404, "not_found", "no such path");
    if (!req.body.empty()) {
      auto type = req.header("content-type");
      if (!type || type->substr(0, 16) != "application/json" || !Json::accept(req.body))
        return error(400, "bad_request", "the body is not JSON");
    }
    std::string digest = call_digest(req.method, req.path, req.body);
    {
      std::lock_guard<std::mutex> lock(mu_);
      received_[id].push_back(std::move(digest));
      ++accepted_;
    }
    if (status == 200 && rest == "/billing/invoices")
      return net::Response::json(200, R"({"invoiceId":"mi_)" + std::to_string(++invoices_) + "\"}");
    return status == 200 ? net::Response::json(200, "{}") : net::Response::empty(status);
  }

 private:
  // The documented success of each call the outbox makes (vercel-api.md §3); 0: no such call.
  static int status_of(const std::string& method, std::string_view rest) {
    std::vector<std::string_view> seg;
    while (!rest.empty()) {
      rest.remove_prefix(1);  // '/'
      size_t n = rest.find('/');
      seg.push_back(rest.substr(0, n));
      rest = n == std::string_view::npos ? std::string_view() : rest.substr(n);
    }
    auto is = [&seg](std::initializer_list<std::string_view> want) {
      if (seg.size() != want.size()) return false;
      size_t i = 0;
      for (auto w : want) {
        if (w != "*" && seg[i] != w) return false;
        ++i;
      }
      return true;
    };
    if (method == "PATCH" && seg.empty()) return 204;  // Update Installation
    if (method == "POST") {
      if (is({"events"}) || is({"billing"}) || is({"billing", "balance"})) return 201;
      if (is({"billing", "invoices"})) return 200;
      if (is({"billing", "finalize"}) || is({"billing", "invoices", "*", "actions"})) return 204;
      if (is({"resources", "*", "experimentation", "items"})) return 204;
    }
    if (method == "PUT" &&
        (is({"resources", "*", "secrets"}) || is({"products", "*", "resources", "*", "secrets"})))
      return 201;
    if ((method == "PUT" || method == "PATCH") && is({"resources", "*"})) return 200;
    if (method == "DELETE" && is({"resources", "*"})) return 204;
    if ((method == "PATCH" || method == "DELETE") &&
        is({"resources", "*", "experimentation", "items", "*"}))
      return 204;
    return 0;
  }

  net::Response error(int status, std::string_view code, std::string_view message) {
    ++rejected_;
    return net::Response::json(status,
                               Json{{"error", {{"code", code}, {"message", message}}}}.dump());
  }

  static Json cpu() {
    Cpu c = self_cpu();
    return {{"cpu_user_s", c.user_s}, {"cpu_sys_s", c.sys_s}};
  }

  net::Response report() {
    Json out = cpu();
    std::lock_guard<std::mutex> lock(mu_);
    out["accepted"] = accepted_;
    out["rejected"] = rejected_.load();
    Json per = Json::object();
    for (const auto& [id, list] : received_)
      if (!list.empty()) per[id] = list;
    out["installations"] = std::move(per);
    return net::Response::json(200, out.dump());
  }

  std::unordered_map<std::string, std::string> bearer_;
  std::mutex mu_;
  std::unordered_map<std::string, std::vector<std::string>> received_;
  int64_t accepted_ = 0;
  std::atomic<int64_t> rejected_{0};
  std::atomic<int64_t> invoices_{0};
};

int standin(const Args& a) {
  StandIn vercel(a.installations);
  net::ServerOptions options;
  options.host = "127.0.0.1";
  options.port = static_cast<uint16_t>(a.port);
  options.threads = a.threads;
  options.handler_threads = 0;  // every answer is immediate: handled on the I/O threads
  options.max_body_bytes = 4 << 20;
  net::Server server(
      options, [&vercel](net::Request& req) { return vercel.handle(req); },
      [](int status, std::string_view code, std::string_view message) {
        return net::Response::json(status,
                                   Json{{"error", {{"code", code}, {"message", message}}}}.dump());
      },
      nullptr);
  server.bind();
  std::printf("%u\n", static_cast<unsigned>(server.port()));
  std::fflush(stdout);
  server.run();  // until SIGTERM
  return 0;
}

}  // namespace

int main(int argc, char** argv) {
  Args a = parse_args(argc, argv);
  if (a.cmd == "standin") return standin(a);
  return a.cmd == "prepare" ? prepare(a) : deliver(a);
}
