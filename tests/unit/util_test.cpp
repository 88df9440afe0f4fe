#include <gtest/gtest.h>

#include "util/base64.h"
#include "util/clock.h"
#include "util/crypto.h"
#include "util/idle_low_water.h"
#include "util/ids.h"

namespace wharf::util {

TEST(Base64, RoundTripsAllLengths) {
  std::string data;
  for (int i = 0; i < 70; ++i) {
    EXPECT_EQ(base64_decode(base64_encode(data)), data);
    EXPECT_EQ(base64url_decode(base64url_encode(data)), data);
    data += static_cast<char>(i * 37);
  }
}

TEST(Base64, KnownVectorsAndRejections) {
  EXPECT_EQ(base64_encode("foobar"), "Zm9vYmFy");
  EXPECT_EQ(base64_encode("fo"), "Zm8=");
  EXPECT_EQ(base64url_encode("\xfb\xff"), "-_8");
  EXPECT_FALSE(base64_decode("Zm9v!"));
  EXPECT_FALSE(base64url_decode("Zm+v"));  // '+' is not in the URL alphabet
  EXPECT_FALSE(base64url_decode("Z"));     // impossible length
  EXPECT_FALSE(base64url_decode("Zh"));    // non-zero trailing bits
}

TEST(Iso8601, ParsesAndFormats) {
  int64_t ms = 0;
  ASSERT_TRUE(parse_iso8601("2024-02-28T10:00:00Z", &ms));
  EXPECT_EQ(ms, 1709114400000);
  ASSERT_TRUE(parse_iso8601("2024-02-28T10:00:00.5+01:00", &ms));
  EXPECT_EQ(ms, 1709114400000 - 3600000 + 500);
  EXPECT_EQ(format_iso8601_ms(1709114400123), "2024-02-28T10:00:00.123Z");
  EXPECT_FALSE(parse_iso8601("2024-02-28", &ms));
  EXPECT_FALSE(parse_iso8601("2024-13-28T10:00:00Z", &ms));
  EXPECT_FALSE(parse_iso8601("2024-02-28T10:00:00", &ms));  // no zone
  EXPECT_FALSE(parse_iso8601("yesterday", &ms));
}

TEST(SecretBox, SealsAndOpensWithMatchingAad) {
  SecretBox box(random_bytes(32));
  std::string sealed = box.seal("tok_secret", "installation:a");
  EXPECT_EQ(sealed.find("tok_secret"), std::string::npos);
  EXPECT_EQ(box.open(sealed, "installation:a"), "tok_secret");
  EXPECT_FALSE(box.open(sealed, "installation:b"));  // moved to another row
  std::string tampered = sealed;
  tampered[tampered.size() / 2] ^= 1;
  EXPECT_FALSE(box.open(tampered, "installation:a"));
  SecretBox other(random_bytes(32));
  EXPECT_FALSE(other.open(sealed, "installation:a"));
  EXPECT_NE(box.seal("tok_secret", "installation:a"), sealed);  // fresh nonce each time
}

TEST(Crypto, HmacSha1MatchesKnownVector) {
  // RFC 2202 test case 2.
  EXPECT_EQ(to_hex(hmac_sha1("Jefe", "what do ya want for nothing?")),
            "effcdf6ae5eb2fa2d27416d5f184df9c259a7c79");
  EXPECT_TRUE(constant_time_equal("abc", "abc"));
  EXPECT_FALSE(constant_time_equal("abc", "abd"));
  EXPECT_FALSE(constant_time_equal("abc", "abcd"));
}

TEST(Ids, PrefixedAndDistinct) {
  auto a = new_id("res"), b = new_id("res");
  EXPECT_EQ(a.rfind("res_", 0), 0u);
  EXPECT_EQ(a.size(), 24u);
  EXPECT_NE(a, b);
}

TEST(IdleLowWaterTest, ClosesOnlyWhatSatIdleThroughAWholePeriodKeepingSome) {
  using namespace std::chrono_literals;
  IdleLowWater w;
  auto t = IdleLowWater::Clock::time_point{} + 1h;
  EXPECT_EQ(w.surplus(5, 1, t, 60s), 0u);  // the first call starts a period
  w.taken(4);
  w.taken(2);  // at most 3 were in use at once: 2 never left the pool
  EXPECT_EQ(w.surplus(5, 1, t + 59s, 60s), 0u);  // not a whole period yet
  EXPECT_EQ(w.surplus(5, 1, t + 60s, 60s), 2u);
  // Next period: nothing taken, 3 idle: all but `keep` go.
  EXPECT_EQ(w.surplus(3, 1, t + 120s, 60s), 2u);
  EXPECT_EQ(w.surplus(1, 1, t + 180s, 60s), 0u);
  EXPECT_EQ(w.surplus(0, 1, t + 240s, 60s), 0u);
  // Everything taken at some point: nothing to close, whatever sits idle now.
  w.taken(0);
  EXPECT_EQ(w.surplus(6, 1, t + 300s, 60s), 0u);
  EXPECT_EQ(w.surplus(6, 2, t + 360s, 60s), 4u);
}

}  // namespace wharf::util
