#include "sandbox/state.h"

#include <cstdio>
#include <fstream>
#include <stdexcept>

namespace wharf::sandbox {

State::State(std::string path) : path_(std::move(path)), doc_(model::Json::object()) {
  std::ifstream in(path_);
  if (!in) return;
  std::string text((std::istreambuf_iterator<char>(in)), std::istreambuf_iterator<char>());
  auto doc = model::Json::parse(text, nullptr, false);
  if (doc.is_discarded() || !doc.is_object())
    throw std::runtime_error("sandbox state file " + path_ + " is not a JSON object");
  doc_ = std::move(doc);
}

model::Json State::snapshot() const {
  std::lock_guard<std::mutex> lock(mu_);
  return doc_;
}

void State::save_locked() {
  std::string tmp = path_ + ".tmp";
  {
    std::ofstream out(tmp, std::ios::trunc);
    out << doc_.dump(1);
    if (!out) throw std::runtime_error("cannot write " + tmp);
  }
  if (std::rename(tmp.c_str(), path_.c_str()) != 0)
    throw std::runtime_error("cannot replace " + path_);
}

}  // namespace wharf::sandbox
