#include "util/money.h"

#include <stdexcept>

namespace wharf::util {

namespace {

__extension__ using i128 = __int128;

// num/den rounded half away from zero.
i128 div_round(i128 num, i128 den) {
  if (den < 0) num = -num, den = -den;
  i128 q = num / den;
  i128 r = num % den;
  if (r < 0) r = -r;
  if (2 * r >= den) q += num < 0 ? -1 : 1;
  return q;
}

std::string digits_of(i128 v) {
  if (v == 0) return "0";
  std::string s;
  while (v > 0) {
    s.insert(s.begin(), static_cast<char>('0' + static_cast<int>(v % 10)));
    v /= 10;
  }
  return s;
}

// |micros| as "<int>.<6 digits>" with a sign.
std::string fixed6(int64_t micros) {
  bool neg = micros < 0;
  i128 v = micros;
  if (neg) v = -v;
  std::string whole = digits_of(v / Money::kMicrosPerDollar);
  std::string frac = digits_of(v % Money::kMicrosPerDollar);
  frac.insert(frac.begin(), 6 - frac.size(), '0');
  return (neg ? "-" : "") + whole + "." + frac;
}

}  // namespace

std::optional<Money> Money::parse(std::string_view text) {
  if (text.empty()) return std::nullopt;
  bool neg = false;
  size_t i = 0;
  if (text[0] == '-') neg = true, i = 1;
  i128 whole = 0;
  size_t whole_digits = 0;
  for (; i < text.size() && text[i] >= '0' && text[i] <= '9'; ++i, ++whole_digits) {
    whole = whole * 10 + (text[i] - '0');
    if (whole > (i128{1} << 62) / kMicrosPerDollar) return std::nullopt;
  }
  if (whole_digits == 0) return std::nullopt;
  i128 frac = 0;
  size_t frac_digits = 0;
  if (i < text.size() && text[i] == '.') {
    ++i;
    for (; i < text.size() && text[i] >= '0' && text[i] <= '9'; ++i, ++frac_digits) {
      if (frac_digits == 6) return std::nullopt;
      frac = frac * 10 + (text[i] - '0');
    }
    if (frac_digits == 0) return std::nullopt;
  }
  if (i != text.size()) return std::nullopt;
  for (size_t k = frac_digits; k < 6; ++k) frac *= 10;
  i128 v = whole * kMicrosPerDollar + frac;
  return Money(static_cast<int64_t>(neg ? -v : v));
}

Money Money::charge(Money unit, int64_t num, int64_t den) {
  if (den <= 0) throw std::invalid_argument("Money::charge: denominator must be positive");
  i128 cents =
      div_round(static_cast<i128>(unit.micros_) * num, static_cast<i128>(den) * kMicrosPerCent);
  return Money::cents(static_cast<int64_t>(cents));
}

int64_t Money::round_cents() const {
  return static_cast<int64_t>(div_round(micros_, kMicrosPerCent));
}

std::string Money::str_cents() const {
  std::string s = fixed6(round_cents() * kMicrosPerCent);
  return s.substr(0, s.size() - 4);
}

std::string Money::str() const {
  std::string s = fixed6(micros_);
  while (s.size() > 0 && s.back() == '0' && s[s.size() - 3] != '.') s.pop_back();
  return s;
}

std::string ratio_str(int64_t num, int64_t den, int digits) {
  if (den <= 0 || num < 0) throw std::invalid_argument("ratio_str: needs num >= 0, den > 0");
  i128 scale = 1;
  for (int k = 0; k < digits; ++k) scale *= 10;
  i128 v = div_round(static_cast<i128>(num) * scale, den);
  std::string whole = digits_of(v / scale);
  if (digits == 0) return whole;
  std::string frac = digits_of(v % scale);
  frac.insert(frac.begin(), static_cast<size_t>(digits) - frac.size(), '0');
  while (!frac.empty() && frac.back() == '0') frac.pop_back();
  return frac.empty() ? whole : whole + "." + frac;
}

}  // namespace wharf::util
