// Fuzz target: the feature-flags rule engine (src/product/flags/engine.cpp): compile() of an
// untrusted flag definition (every field check, RE2 compilation under its memory bound, SemVer
// parsing, rollout ranges), then evaluate() of the compiled flag against an untrusted context.
//
// Input: a flag definition as JSON, a '\n', then an evaluation context as JSON. Input whose
// first part is not valid JSON is skipped (the API's JSON parser only passes valid JSON); a
// definition that does not compile must have recorded at least one field error, and then the
// context is not used. A context that is not valid JSON is evaluated as null.
//
// Checked after each input: compile() never throws and fails exactly when it records an error;
// the canonical definition dumps as strict JSON and compiles again to itself; evaluate() never
// throws, gives a variant of the flag (and its value) or an error with a null value, and gives
// the same result for a copy of the flag.
#include <cstddef>
#include <cstdint>
#include <string>

#include <nlohmann/json.hpp>

#include "model/json_check.h"
#include "product/flags/engine.h"

namespace {

using nlohmann::json;
namespace flags = wharf::product::flags;

void check_result(const flags::Flag& flag, const flags::Result& r) {
  if (r.ok()) {
    bool found = false;
    for (const auto& v : flag.variants)
      if (v.name == r.variant) found = v.value == r.value;
    if (!found) __builtin_trap();
    if (r.reason != "STATIC" && r.reason != "DEFAULT" && r.reason != "TARGETING_MATCH" &&
        r.reason != "SPLIT" && r.reason != "DISABLED")
      __builtin_trap();
  } else {
    if (r.reason != "ERROR" || !r.value.is_null() || !r.variant.empty()) __builtin_trap();
  }
}

}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  const uint8_t* end = data + size;
  const uint8_t* newline = data;
  while (newline != end && *newline != '\n') ++newline;

  json def = json::parse(data, newline, nullptr, /*allow_exceptions=*/false);
  if (def.is_discarded()) return -1;

  wharf::model::Checker check;
  auto flag = flags::compile(def, check);
  if (flag.has_value() != check.ok()) __builtin_trap();
  if (!flag) return 0;

  // The canonical definition is strict JSON and a fixed point of compile().
  (void)flag->definition.dump();
  wharf::model::Checker again;
  auto recompiled = flags::compile(flag->definition, again);
  if (!recompiled || recompiled->definition != flag->definition) __builtin_trap();

  json context = nullptr;
  if (newline != end) {
    context = json::parse(newline + 1, end, nullptr, /*allow_exceptions=*/false);
    if (context.is_discarded()) context = nullptr;
  }
  const flags::Result r = flags::evaluate(*flag, context);
  check_result(*flag, r);
  const flags::Result r2 = flags::evaluate(*recompiled, context);
  if (r2.value != r.value || r2.variant != r.variant || r2.reason != r.reason ||
      r2.error_code != r.error_code)
    __builtin_trap();
  (void)flags::evaluate(*flag, json::object());
  return 0;
}
