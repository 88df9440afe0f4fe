// What every console (the REPL of a product) builds its answer with: the blocks collected and
// streamed as they are made, and the rows and bytes an input may still show.
#pragma once
#include <cstdint>
#include <functional>
#include <utility>

#include <string>
#include <string_view>
#include <vector>

#include <nlohmann/json.hpp>

#include "util/utf8.h"

namespace wharf::product::console {

// A REPL text block (partner-api.md §4.14). Every text goes through valid_utf8: databases quote
// client values in their messages, so a message can carry invalid UTF-8 that JSON cannot.
inline nlohmann::json text(const std::string& value, const char* color = nullptr,
                           bool bold = false) {
  nlohmann::json block = {{"type", "text"}, {"text", util::valid_utf8(value)}};
  if (color) block["color"] = color;
  if (bold) block["bold"] = true;
  return block;
}

inline nlohmann::json paragraph(nlohmann::json children) {
  return {{"type", "paragraph"}, {"children", std::move(children)}};
}

// The words of a console meta-command line (".schema t", "\\d t"), split on blanks.
inline std::vector<std::string> words(std::string_view line) {
  std::vector<std::string> out;
  size_t i = 0;
  while (i < line.size()) {
    size_t start = line.find_first_not_of(" \t\r", i);
    if (start == std::string_view::npos) break;
    size_t end = line.find_first_of(" \t\r", start);
    if (end == std::string_view::npos) end = line.size();
    out.emplace_back(line.substr(start, end - start));
    i = end;
  }
  return out;
}

// Collects the blocks and hands each to `emit` as soon as it is complete.
class Output {
 public:
  explicit Output(const std::function<void(const nlohmann::json&)>& emit) : emit_(emit) {}
  void add(nlohmann::json block) {
    if (emit_) emit_(block);
    blocks_.push_back(std::move(block));
  }
  nlohmann::json take() { return std::move(blocks_); }
  bool empty() const { return blocks_.empty(); }

 private:
  const std::function<void(const nlohmann::json&)>& emit_;
  nlohmann::json blocks_ = nlohmann::json::array();
};

// Rows and bytes the whole input may still show (the plan's maxRows / maxResultBytes).
struct Budget {
  int64_t rows_left;  // < 0: unlimited
  int64_t bytes_left;
  bool fits(int64_t row_bytes) const {
    return rows_left != 0 && (bytes_left < 0 || row_bytes <= bytes_left);
  }
  void spend(int64_t row_bytes) {
    if (rows_left > 0) --rows_left;
    if (bytes_left >= 0) bytes_left -= row_bytes;
  }
};

}  // namespace wharf::product::console
