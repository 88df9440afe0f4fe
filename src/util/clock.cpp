#include "util/clock.h"

#include <chrono>
#include <cstdio>
#include <ctime>

namespace wharf::util {
namespace {

// Days from 1970-01-01 to y-m-d in the proleptic Gregorian calendar (H. Hinnant's algorithm).
int64_t days_from_civil(int64_t y, unsigned m, unsigned d) {
  y -= m <= 2;
  const int64_t era = (y >= 0 ? y : y - 399) / 400;
  const unsigned yoe = static_cast<unsigned>(y - era * 400);
  const unsigned doy = (153 * (m + (m > 2 ? -3 : 9)) + 2) / 5 + d - 1;
  const unsigned doe = yoe * 365 + yoe / 4 - yoe / 100 + doy;
  return era * 146097 + static_cast<int64_t>(doe) - 719468;
}

bool digits(const std::string& s, size_t pos, size_t n, int* out) {
  if (pos + n > s.size()) return false;
  int v = 0;
  for (size_t i = pos; i < pos + n; ++i) {
    if (s[i] < '0' || s[i] > '9') return false;
    v = v * 10 + (s[i] - '0');
  }
  *out = v;
  return true;
}

// y-m-d of a day count from 1970-01-01 (H. Hinnant's civil_from_days).
void civil_from_days(int64_t z, int64_t* y, unsigned* m, unsigned* d) {
  z += 719468;
  const int64_t era = (z >= 0 ? z : z - 146096) / 146097;
  const unsigned doe = static_cast<unsigned>(z - era * 146097);
  const unsigned yoe = (doe - doe / 1460 + doe / 36524 - doe / 146096) / 365;
  const unsigned doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
  const unsigned mp = (5 * doy + 2) / 153;
  *d = doy - (153 * mp + 2) / 5 + 1;
  *m = mp < 10 ? mp + 3 : mp - 9;
  *y = static_cast<int64_t>(yoe) + era * 400 + (*m <= 2);
}

// gmtime_r and snprintf: any year.
std::string format_iso8601_ms_slow(int64_t epoch_ms) {
  int64_t secs = epoch_ms / 1000;
  int64_t ms = epoch_ms % 1000;
  if (ms < 0) {
    ms += 1000;
    secs -= 1;
  }
  time_t t = static_cast<time_t>(secs);
  struct tm tm {};
  gmtime_r(&t, &tm);
  char buf[96];
  std::snprintf(buf, sizeof buf, "%04d-%02d-%02dT%02d:%02d:%02d.%03dZ", tm.tm_year + 1900,
                tm.tm_mon + 1, tm.tm_mday, tm.tm_hour, tm.tm_min, tm.tm_sec, static_cast<int>(ms));
  return buf;
}

void put_digits(char* out, unsigned v, int n) {
  for (int i = n - 1; i >= 0; --i, v /= 10) out[i] = static_cast<char>('0' + v % 10);
}

}  // namespace

// Billing formats a timestamp or a day key for every day of every resource it prices: the
// common case (years 0000-9999) is plain arithmetic, without gmtime_r and snprintf.
std::string format_iso8601_ms(int64_t epoch_ms) {
  constexpr int64_t kDayMs = 24LL * 3600 * 1000;
  int64_t days = epoch_ms / kDayMs;
  int64_t in_day = epoch_ms % kDayMs;
  if (in_day < 0) {
    in_day += kDayMs;
    --days;
  }
  int64_t y = 0;
  unsigned m = 0, d = 0;
  civil_from_days(days, &y, &m, &d);
  if (y < 0 || y > 9999) return format_iso8601_ms_slow(epoch_ms);
  std::string out = "0000-00-00T00:00:00.000Z";
  put_digits(&out[0], static_cast<unsigned>(y), 4);
  put_digits(&out[5], m, 2);
  put_digits(&out[8], d, 2);
  const auto ms = static_cast<unsigned>(in_day);
  put_digits(&out[11], ms / 3600000, 2);
  put_digits(&out[14], ms / 60000 % 60, 2);
  put_digits(&out[17], ms / 1000 % 60, 2);
  put_digits(&out[20], ms % 1000, 3);
  return out;
}

bool parse_iso8601(const std::string& s, int64_t* epoch_ms) {
  int y, mo, d, h, mi, se;
  if (!digits(s, 0, 4, &y) || s.size() < 19 || s[4] != '-' || !digits(s, 5, 2, &mo) ||
      s[7] != '-' || !digits(s, 8, 2, &d) || (s[10] != 'T' && s[10] != 't' && s[10] != ' ') ||
      !digits(s, 11, 2, &h) || s[13] != ':' || !digits(s, 14, 2, &mi) || s[16] != ':' ||
      !digits(s, 17, 2, &se))
    return false;
  if (mo < 1 || mo > 12 || d < 1 || d > 31 || h > 23 || mi > 59 || se > 60) return false;
  size_t pos = 19;
  int64_t frac_ms = 0;
  if (pos < s.size() && s[pos] == '.') {
    ++pos;
    int n = 0;
    while (pos < s.size() && s[pos] >= '0' && s[pos] <= '9') {
      if (n < 3) frac_ms = frac_ms * 10 + (s[pos] - '0');
      ++n;
      ++pos;
    }
    if (n == 0) return false;
    for (int i = n; i < 3; ++i) frac_ms *= 10;
  }
  int64_t offset_s = 0;
  if (pos < s.size() && (s[pos] == 'Z' || s[pos] == 'z')) {
    ++pos;
  } else if (pos < s.size() && (s[pos] == '+' || s[pos] == '-')) {
    int oh, om;
    if (!digits(s, pos + 1, 2, &oh) || pos + 3 >= s.size() || s[pos + 3] != ':' ||
        !digits(s, pos + 4, 2, &om))
      return false;
    offset_s = (oh * 3600 + om * 60) * (s[pos] == '+' ? 1 : -1);
    pos += 6;
  } else {
    return false;
  }
  if (pos != s.size()) return false;
  int64_t days = days_from_civil(y, static_cast<unsigned>(mo), static_cast<unsigned>(d));
  int64_t secs = days * 86400 + h * 3600 + mi * 60 + se - offset_s;
  *epoch_ms = secs * 1000 + frac_ms;
  return true;
}

namespace {
constexpr int64_t kDayMs = 24LL * 3600 * 1000;
}  // namespace

int64_t day_start_ms(int64_t ms) {
  int64_t d = ms / kDayMs;
  if (ms % kDayMs < 0) --d;
  return d * kDayMs;
}

int64_t month_start_ms(int64_t ms) {
  using namespace std::chrono;
  sys_days day{days{day_start_ms(ms) / kDayMs}};
  year_month_day ymd{day};
  return sys_days{ymd.year() / ymd.month() / 1}.time_since_epoch().count() * kDayMs;
}

int64_t next_month_start_ms(int64_t ms) {
  using namespace std::chrono;
  sys_days day{days{day_start_ms(ms) / kDayMs}};
  year_month_day ymd{day};
  year_month next = ymd.year() / ymd.month() + months{1};
  return sys_days{next / 1}.time_since_epoch().count() * kDayMs;
}

std::string day_key(int64_t ms) {
  std::string key = format_iso8601_ms(ms);
  key.resize(10);
  return key;
}

}  // namespace wharf::util
