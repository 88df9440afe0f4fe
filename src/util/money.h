// Exact decimal money. Amounts are whole micro-dollars (1e-6 USD) in an int64 — prices in
// the catalog and Vercel's money strings fit exactly — and charges are computed as exact
// fractions (price × quantity / per) and rounded to cents once, half away from zero.
// Never a double on a money path.
#pragma once
#include <cstdint>
#include <optional>
#include <string>
#include <string_view>

namespace wharf::util {

class Money {
 public:
  static constexpr int64_t kMicrosPerCent = 10000;
  static constexpr int64_t kMicrosPerDollar = 1000000;

  constexpr Money() = default;
  static constexpr Money micros(int64_t m) { return Money(m); }
  static constexpr Money cents(int64_t c) { return Money(c * kMicrosPerCent); }
  // "12", "12.5", "12.50", "0.000025", "-3.00": at most 6 fraction digits; nullopt otherwise.
  static std::optional<Money> parse(std::string_view text);
  // unit × num / den rounded to whole cents, half away from zero (den > 0).
  static Money charge(Money unit, int64_t num, int64_t den);

  constexpr int64_t micros() const { return micros_; }
  // Whole cents, rounded half away from zero.
  int64_t round_cents() const;
  // Whole cents, rounded towards zero (a balance never shows more than is there).
  constexpr int64_t floor_cents() const { return micros_ / kMicrosPerCent; }
  // Two-decimal string of the amount rounded to cents: "5.00", "-0.25".
  std::string str_cents() const;
  // Shortest exact string with at least two decimals: "0.10", "0.000025".
  std::string str() const;

  constexpr bool operator==(const Money&) const = default;
  constexpr auto operator<=>(const Money&) const = default;
  constexpr Money operator+(Money o) const { return Money(micros_ + o.micros_); }
  constexpr Money operator-(Money o) const { return Money(micros_ - o.micros_); }
  constexpr Money operator-() const { return Money(-micros_); }
  Money& operator+=(Money o) {
    micros_ += o.micros_;
    return *this;
  }
  Money& operator-=(Money o) {
    micros_ -= o.micros_;
    return *this;
  }

 private:
  constexpr explicit Money(int64_t m) : micros_(m) {}
  int64_t micros_ = 0;
};

// A non-negative exact ratio num/den rendered with up to `digits` decimals (rounded half up,
// trailing zeros trimmed), e.g. quantities on billing lines: ratio_str(3, 2) = "1.5".
std::string ratio_str(int64_t num, int64_t den, int digits = 6);

}  // namespace wharf::util
