// Test helpers: real RSA keys (OpenSSL) and tokens signed with them, so auth tests exercise
// the same cryptography as production instead of mocks.
#pragma once
#include <openssl/types.h>

#include <cstdint>
#include <memory>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

#include <nlohmann/json.hpp>

namespace wharf::testutil {

inline constexpr const char* kTestIssuer = "https://marketplace.vercel.com";
inline constexpr const char* kTestAudience = "oac_9f4YG9JFjgKkRlxoaaGG0y05";

class TestKey {
 public:
  // Generates a fresh key pair; 2048-bit generation takes ~0.1 s, so tests share the keys
  // below rather than making their own.
  TestKey(std::string kid, int bits);

  // Keys generated once per test binary.
  static const TestKey& a();
  static const TestKey& b();
  static const TestKey& c();
  static const TestKey& small();  // 1024 bits: below the RFC 7518 minimum

  const std::string& kid() const { return kid_; }
  // The public JWK. `alg` nullopt omits the member; `use` likewise.
  nlohmann::json jwk(std::optional<std::string> alg = std::string("RS256"),
                     std::optional<std::string> use = std::string("sig")) const;
  std::string public_pem() const;  // SubjectPublicKeyInfo PEM

  // Signs header.payload with RS256/384/512 or PS256/384/512 and returns the compact JWS.
  std::string sign(const nlohmann::json& header, const nlohmann::json& payload,
                   std::string_view alg) const;
  // Convenience: header {"alg":alg,"typ":"JWT","kid":kid()}.
  std::string token(const nlohmann::json& payload, std::string_view alg = "RS256") const;

 private:
  std::string kid_;
  std::shared_ptr<EVP_PKEY> pkey_;
};

// {"keys":[...]} as text.
std::string jwks_json(const std::vector<nlohmann::json>& keys);

std::string b64url(std::string_view bytes);
// "<b64(header)>.<b64(payload)>" — a signing input.
std::string signing_input(const nlohmann::json& header, const nlohmann::json& payload);
// HS256 over the signing input with `secret` as the HMAC key (the key-confusion attack when
// the secret is the public key PEM).
std::string hs256_token(const nlohmann::json& header, const nlohmann::json& payload,
                        std::string_view secret);

// Claim sets in Vercel's shape (partner-api.md §2.3/§2.4), valid at `now_s` for 5 minutes.
nlohmann::json user_claims(int64_t now_s, const std::string& installation_id,
                           const std::string& role = "ADMIN");
nlohmann::json system_claims(int64_t now_s, const std::string& installation_id);

}  // namespace wharf::testutil
