#include "sandbox/state.h"

#include <fcntl.h>
#include <unistd.h>

#include <algorithm>
#include <cerrno>
#include <cstdio>
#include <cstring>
#include <fstream>
#include <iterator>

#include "util/log.h"

namespace wharf::sandbox {

namespace {

using model::Json;

enum class Shape { kObject, kArray };

struct Collection {
  const char* name;
  Shape shape;
  // Kind of each entry (object collections: each value; arrays: each element); null is
  // always allowed.
  model::Kind entry;
};

// state.h documents each entry's fields.
constexpr Collection kCollections[] = {
    {"integration", Shape::kObject, model::Kind::kObject},  // entries: any value (see below)
    {"installations", Shape::kObject, model::Kind::kObject},
    {"resources", Shape::kObject, model::Kind::kObject},
    {"billing", Shape::kObject, model::Kind::kArray},
    {"invoices", Shape::kObject, model::Kind::kObject},
    {"balances", Shape::kObject, model::Kind::kObject},
    {"events", Shape::kArray, model::Kind::kObject},
    {"ssoCodes", Shape::kObject, model::Kind::kObject},
    {"experimentation", Shape::kObject, model::Kind::kObject},
    {"deploymentActions", Shape::kArray, model::Kind::kObject},
    {"transfers", Shape::kObject, model::Kind::kObject},
    {"webhooks", Shape::kArray, model::Kind::kObject},
    {"projects", Shape::kObject, model::Kind::kObject},
    {"deployments", Shape::kObject, model::Kind::kObject},
    {"checks", Shape::kObject, model::Kind::kObject},
    {"oauthCodes", Shape::kObject, model::Kind::kObject},
};

// How far ahead the array diff looks for a deleted or inserted run before it settles for a
// replacement.
constexpr size_t kLookahead = 8;

std::string fnv1a(std::string_view s) {
  uint64_t h = 1469598103934665603ULL;
  for (unsigned char c : s) {
    h ^= c;
    h *= 1099511628211ULL;
  }
  char buf[17];
  std::snprintf(buf, sizeof buf, "%016llx", static_cast<unsigned long long>(h));
  return buf;
}

std::string dump(const Json& j) {
  return j.dump(-1, ' ', false, Json::error_handler_t::replace);
}

Json header_for(const std::string& snapshot_text) {
  return {{"journal", 1},
          {"snapshot", {{"bytes", snapshot_text.size()}, {"fnv1a", fnv1a(snapshot_text)}}}};
}

bool read_file(const std::string& path, std::string* out) {
  std::ifstream in(path, std::ios::binary);
  if (!in) return false;
  out->assign(std::istreambuf_iterator<char>(in), std::istreambuf_iterator<char>());
  return true;
}

void write_all(int fd, const std::string& data, const std::string& path) {
  size_t done = 0;
  while (done < data.size()) {
    ssize_t n = ::write(fd, data.data() + done, data.size() - done);
    if (n < 0 && errno == EINTR) continue;
    if (n <= 0) throw std::runtime_error("cannot write " + path + ": " + std::strerror(errno));
    done += static_cast<size_t>(n);
  }
}

// Writes `data` to `path` through a temporary file and an atomic rename.
void replace_file(const std::string& path, const std::string& data) {
  std::string tmp = path + ".tmp";
  int fd = ::open(tmp.c_str(), O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0644);
  if (fd < 0) throw std::runtime_error("cannot write " + tmp + ": " + std::strerror(errno));
  try {
    write_all(fd, data, tmp);
  } catch (...) {
    ::close(fd);
    throw;
  }
  ::close(fd);
  if (std::rename(tmp.c_str(), path.c_str()) != 0)
    throw std::runtime_error("cannot replace " + path + ": " + std::strerror(errno));
}

// ---- diffing ------------------------------------------------------------------------------

void push_splice(Json& ops, const std::string& c, size_t at, size_t del, Json ins) {
  // Extends the previous splice when this one starts where that one's insertion ends.
  if (!ops.empty()) {
    Json& last = ops.back();
    if (last["op"] == "splice" && last["c"] == c &&
        last["at"].get<size_t>() + last["ins"].size() == at) {
      last["del"] = last["del"].get<size_t>() + del;
      for (auto& e : ins) last["ins"].push_back(std::move(e));
      return;
    }
  }
  ops.push_back({{"op", "splice"}, {"c", c}, {"at", at}, {"del", del}, {"ins", std::move(ins)}});
}

// Splices turning array `a` into array `b`: greedy, matching equal elements in order and
// looking a few elements ahead for deleted or inserted runs (appends, trims at the front and
// in-place updates come out as small splices). Falls back to a whole put when the splices
// would carry most of `b` anyway.
void diff_array(const std::string& c, const Json& a, const Json& b, Json& ops) {
  Json mine = Json::array();
  size_t i = 0, j = 0, inserted = 0;
  const size_t n = a.size(), m = b.size();
  while (i < n && j < m) {
    if (a[i] == b[j]) {
      ++i, ++j;
      continue;
    }
    bool done = false;
    for (size_t k = 1; k <= kLookahead && i + k < n && !done; ++k) {
      if (a[i + k] == b[j]) {
        push_splice(mine, c, j, k, Json::array());
        i += k;
        done = true;
      }
    }
    for (size_t k = 1; k <= kLookahead && j + k < m && !done; ++k) {
      if (b[j + k] == a[i]) {
        Json ins = Json::array();
        for (size_t x = j; x < j + k; ++x) ins.push_back(b[x]);
        push_splice(mine, c, j, 0, std::move(ins));
        inserted += k;
        j += k;
        done = true;
      }
    }
    if (!done) {
      push_splice(mine, c, j, 1, Json::array({b[j]}));
      ++inserted;
      ++i, ++j;
    }
  }
  if (i < n) push_splice(mine, c, j, n - i, Json::array());
  if (j < m) {
    Json ins = Json::array();
    for (size_t x = j; x < m; ++x) ins.push_back(b[x]);
    inserted += m - j;
    push_splice(mine, c, j, 0, std::move(ins));
  }
  if (inserted > 1 && inserted * 2 > m) {
    ops.push_back({{"op", "put"}, {"c", c}, {"v", b}});
    return;
  }
  for (auto& op : mine) ops.push_back(std::move(op));
}

void diff_object(const std::string& c, const Json& a, const Json& b, Json& ops) {
  // Both are sorted maps: one merge pass.
  auto ia = a.begin(), ib = b.begin();
  while (ia != a.end() || ib != b.end()) {
    if (ib == b.end() || (ia != a.end() && ia.key() < ib.key())) {
      ops.push_back({{"op", "del"}, {"c", c}, {"k", ia.key()}});
      ++ia;
    } else if (ia == a.end() || ib.key() < ia.key()) {
      ops.push_back({{"op", "set"}, {"c", c}, {"k", ib.key()}, {"v", ib.value()}});
      ++ib;
    } else {
      if (ia.value() != ib.value())
        ops.push_back({{"op", "set"}, {"c", c}, {"k", ib.key()}, {"v", ib.value()}});
      ++ia, ++ib;
    }
  }
}

void diff_collection(const std::string& c, const Json* a, const Json* b, Json& ops) {
  if (!a && !b) return;
  if (!b) {
    ops.push_back({{"op", "drop"}, {"c", c}});
  } else if (!a || a->type() != b->type() || (!b->is_object() && !b->is_array())) {
    if (!a || *a != *b) ops.push_back({{"op", "put"}, {"c", c}, {"v", *b}});
  } else if (b->is_object()) {
    diff_object(c, *a, *b, ops);
  } else {
    diff_array(c, *a, *b, ops);
  }
}

const Json* find(const Json& doc, const std::string& key) {
  auto it = doc.find(key);
  return it == doc.end() ? nullptr : &*it;
}

void check_op(bool ok, const char* what) {
  if (!ok) throw std::runtime_error(std::string("bad journal op: ") + what);
}

}  // namespace

// ---- State --------------------------------------------------------------------------------

State::State(std::string path) : State(std::move(path), Options()) {}

State::State(std::string path, Options options)
    : path_(std::move(path)), options_(options), doc_(Json::object()) {
  load();
}

State::~State() {
  if (journal_fd_ >= 0) ::close(journal_fd_);
}

Json State::snapshot() const {
  std::lock_guard<std::mutex> lock(mu_);
  return doc_;
}

State::Sizes State::sizes() const {
  std::lock_guard<std::mutex> lock(mu_);
  return {snapshot_bytes_, journal_bytes_};
}

void State::validate(const Json& doc, const std::string& where) {
  if (!doc.is_object())
    throw std::runtime_error("sandbox state " + where + " is not a JSON object");
  for (const auto& c : kCollections) {
    auto it = doc.find(c.name);
    if (it == doc.end() || it->is_null()) continue;
    bool object = c.shape == Shape::kObject;
    if (object ? !it->is_object() : !it->is_array())
      throw std::runtime_error("sandbox state " + where + ": \"" + c.name + "\" must be " +
                               (object ? "an object" : "an array") + ", not " + it->type_name());
    if (std::string_view(c.name) == "integration") continue;  // a config echo: any values
    for (auto e = it->begin(); e != it->end(); ++e) {
      if (e->is_null() || model::is_kind(*e, c.entry)) continue;
      std::string at = object ? e.key() : std::to_string(std::distance(it->begin(), e));
      throw std::runtime_error(
          "sandbox state " + where + ": \"" + c.name + "\" entry " + at + " must be " +
          (c.entry == model::Kind::kArray ? "an array" : "an object") + ", not " + e->type_name());
    }
  }
}

void State::load() {
  std::string text;
  std::string header_text;  // the journal header this snapshot is continued by
  if (read_file(path_, &text)) {
    Json doc = Json::parse(text, nullptr, false);
    if (doc.is_discarded() || !doc.is_object())
      throw std::runtime_error("sandbox state file " + path_ + " is not a JSON object");
    validate(doc, "file " + path_);
    doc_ = std::move(doc);
    snapshot_bytes_ = text.size();
    header_text = dump(header_for(text));
  } else {
    header_text = dump(header_for(""));
  }

  std::string journal;
  if (!read_file(journal_path(), &journal)) return;
  size_t nl = journal.find('\n');
  if (nl == std::string::npos || journal.compare(0, nl, header_text) != 0) {
    // A journal for another snapshot (or a torn header): everything it held is in the
    // snapshot already, or was never committed. The next change starts a new one.
    return;
  }
  size_t good = nl + 1;  // bytes of the journal known good
  size_t line_no = 1;
  while (good < journal.size()) {
    ++line_no;
    size_t end = journal.find('\n', good);
    bool last = end == std::string::npos || end + 1 == journal.size();
    std::string_view line(journal.data() + good,
                          (end == std::string::npos ? journal.size() : end) - good);
    Json rec = Json::parse(line, nullptr, false);
    bool complete = end != std::string::npos;
    if (!complete || rec.is_discarded() || !rec.is_object() || !rec.contains("ops")) {
      if (last) break;  // torn by a crash mid-write: that change never committed
      throw std::runtime_error("sandbox state journal " + journal_path() + ": line " +
                               std::to_string(line_no) + " is not a journal record");
    }
    try {
      apply_ops(doc_, rec["ops"]);
    } catch (const std::exception& e) {
      throw std::runtime_error("sandbox state journal " + journal_path() + ": line " +
                               std::to_string(line_no) + ": " + e.what());
    }
    good = end + 1;
  }
  validate(doc_, "journal " + journal_path());

  journal_fd_ = ::open(journal_path().c_str(), O_WRONLY | O_APPEND | O_CLOEXEC);
  if (journal_fd_ < 0) return;  // not writable: the next change compacts
  if (good < journal.size() && ::ftruncate(journal_fd_, static_cast<off_t>(good)) != 0) {
    ::close(journal_fd_);
    journal_fd_ = -1;
    return;
  }
  journal_bytes_ = good;
}

Json State::diff(const Json& before, const Json& after, const std::vector<std::string>* only) {
  Json ops = Json::array();
  if (only) {
    for (const auto& c : *only) diff_collection(c, find(before, c), find(after, c), ops);
    return ops;
  }
  for (auto it = before.begin(); it != before.end(); ++it)
    if (!after.contains(it.key())) ops.push_back({{"op", "drop"}, {"c", it.key()}});
  for (auto it = after.begin(); it != after.end(); ++it)
    diff_collection(it.key(), find(before, it.key()), &it.value(), ops);
  return ops;
}

void State::apply_ops(Json& doc, const Json& ops) {
  check_op(ops.is_array(), "ops is not an array");
  for (const auto& op : ops) {
    check_op(op.is_object() && op.contains("op") && op["op"].is_string() && op.contains("c") &&
                 op["c"].is_string(),
             "no op or collection");
    const std::string& kind = op["op"].get_ref<const std::string&>();
    const std::string& c = op["c"].get_ref<const std::string&>();
    if (kind == "put") {
      check_op(op.contains("v"), "put without v");
      doc[c] = op["v"];
    } else if (kind == "drop") {
      doc.erase(c);
    } else if (kind == "set" || kind == "del") {
      check_op(op.contains("k") && op["k"].is_string(), "set/del without k");
      Json& coll = doc[c];
      check_op(coll.is_object() || coll.is_null(), "set/del on a non-object");
      if (kind == "set") {
        check_op(op.contains("v"), "set without v");
        coll[op["k"].get<std::string>()] = op["v"];
      } else if (coll.is_object()) {
        coll.erase(op["k"].get<std::string>());
      }
    } else if (kind == "splice") {
      Json& coll = doc[c];
      check_op(coll.is_array(), "splice on a non-array");
      check_op(op.contains("at") && op["at"].is_number_unsigned() && op.contains("del") &&
                   op["del"].is_number_unsigned() && op.contains("ins") && op["ins"].is_array(),
               "splice without at/del/ins");
      size_t at = op["at"].get<size_t>(), del = op["del"].get<size_t>();
      check_op(at <= coll.size() && del <= coll.size() - at, "splice out of range");
      auto& vec = coll.get_ref<Json::array_t&>();
      vec.erase(vec.begin() + static_cast<std::ptrdiff_t>(at),
                vec.begin() + static_cast<std::ptrdiff_t>(at + del));
      const auto& ins = op["ins"].get_ref<const Json::array_t&>();
      vec.insert(vec.begin() + static_cast<std::ptrdiff_t>(at), ins.begin(), ins.end());
    } else {
      check_op(false, "unknown op");
    }
  }
}

void State::commit_locked(const Json& before, const Json& after,
                          const std::vector<std::string>* only) {
  Json ops = diff(before, after, only);
  if (ops.empty()) return;
  append_locked(dump(Json{{"ops", std::move(ops)}}) + "\n");
}

Json State::take_locked(const std::vector<std::string>& names) {
  Json part = Json::object();
  for (const auto& c : names) {
    auto it = doc_.find(c);
    if (it == doc_.end()) continue;
    part[c] = std::move(*it);
    doc_.erase(it);
  }
  return part;
}

void State::put_back_locked(Json part) {
  for (auto it = part.begin(); it != part.end(); ++it) doc_[it.key()] = std::move(it.value());
}

void State::commit_part_locked(const Json& before, Json& part,
                               const std::vector<std::string>& names) {
  if (!part.is_object()) throw std::logic_error("State::mutate_in: the document was replaced");
  for (auto it = part.begin(); it != part.end(); ++it)
    if (std::find(names.begin(), names.end(), it.key()) == names.end())
      throw std::logic_error("State::mutate_in: touched \"" + it.key() +
                             "\", which is not among the named collections");
  commit_locked(before, part, &names);
  put_back_locked(std::move(part));
}

void State::append_locked(const std::string& line) {
  if (journal_fd_ < 0) {
    // No journal continues the snapshot on disk (first change, or a stale journal): write the
    // document as the new snapshot, which holds this change too.
    compact_locked();
    return;
  }
  try {
    write_all(journal_fd_, line, journal_path());
  } catch (...) {
    // Whatever part was written must not become the start of the next record.
    if (::ftruncate(journal_fd_, static_cast<off_t>(journal_bytes_)) != 0) {
      ::close(journal_fd_);
      journal_fd_ = -1;
    }
    throw;
  }
  journal_bytes_ += line.size();
  if (journal_bytes_ > std::max<uint64_t>(snapshot_bytes_, options_.compact_min_bytes)) {
    // The change is committed (in the journal); a failed compaction is retried later.
    try {
      compact_locked();
    } catch (const std::exception& e) {
      util::log_warn("sandbox state compaction failed").str("error", e.what());
    }
  }
}

void State::compact_locked() {
  std::string text = dump(doc_);
  replace_file(path_, text);  // throws with nothing changed on disk
  snapshot_bytes_ = text.size();
  // From here the snapshot holds everything; the old journal names the old snapshot, so it is
  // ignored at the next load should a crash come before the new one is in place.
  if (journal_fd_ >= 0) ::close(journal_fd_);
  journal_fd_ = -1;
  journal_bytes_ = 0;
  try {
    std::string header = dump(header_for(text)) + "\n";
    replace_file(journal_path(), header);
    journal_fd_ = ::open(journal_path().c_str(), O_WRONLY | O_APPEND | O_CLOEXEC);
    if (journal_fd_ < 0)
      throw std::runtime_error("cannot open " + journal_path() + ": " + std::strerror(errno));
    journal_bytes_ = header.size();
  } catch (const std::exception& e) {
    // The next change writes a snapshot again.
    util::log_warn("sandbox state journal not restarted").str("error", e.what());
  }
}

}  // namespace wharf::sandbox
