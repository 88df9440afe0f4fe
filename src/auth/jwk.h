// RSA signing keys from a JSON Web Key Set (RFC 7517/7518), as Vercel publishes at
// https://marketplace.vercel.com/.well-known/jwks, and the signature check that uses them.
//
// Only what OIDC tokens from Vercel need is implemented: RSA keys, RS256/384/512 and
// PS256/384/512. Keys of any other type, keys not meant for signatures and keys we cannot
// parse are skipped (with a reason) so one odd entry never disables the whole set.
#pragma once
#include <openssl/types.h>

#include <memory>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

#include <nlohmann/json_fwd.hpp>

namespace wharf::auth {

// The JWS algorithms we implement. Anything else ("none", HS*, ES*, EdDSA…) has no value
// here, which is how it gets rejected.
enum class JwsAlg { kRS256, kRS384, kRS512, kPS256, kPS384, kPS512 };

// nullopt for any name we do not implement (case-sensitive, as RFC 7515 requires).
std::optional<JwsAlg> parse_jws_alg(std::string_view name);
std::string_view jws_alg_name(JwsAlg alg);

class Jwk {
 public:
  // Builds a verification key from the RSA modulus and public exponent (big-endian bytes).
  // `alg` is the JWK's "alg" member (empty when absent). Returns nullptr and sets *why on
  // failure (too small/large, bad exponent, OpenSSL error).
  static std::shared_ptr<const Jwk> from_rsa_components(std::string kid, std::string alg,
                                                        std::string use, std::string_view n,
                                                        std::string_view e, std::string* why);

  Jwk(const Jwk&) = delete;
  Jwk& operator=(const Jwk&) = delete;
  ~Jwk();

  const std::string& kid() const { return kid_; }
  const std::string& alg() const { return alg_; }  // empty when the JWK did not pin one
  const std::string& use() const { return use_; }  // empty when absent
  int bits() const { return bits_; }
  EVP_PKEY* pkey() const { return pkey_.get(); }

  // The one algorithm tokens signed with this key may use: the JWK's pinned "alg", or RS256
  // when it has none (Vercel documents RS256). nullopt when the pinned alg is not one we
  // implement, so such a key never verifies anything.
  std::optional<JwsAlg> allowed_alg() const { return allowed_alg_; }

  // Checks an RSA signature over `signing_input` with `alg`. False when `alg` is not
  // allowed_alg() or the signature does not verify. Thread-safe; called concurrently on the
  // request path, so it does no algorithm fetching (see jwk.cpp).
  bool verify(JwsAlg alg, std::string_view signing_input, std::string_view signature) const;

 private:
  Jwk() = default;

  std::string kid_;
  std::string alg_;
  std::string use_;
  int bits_ = 0;
  std::optional<JwsAlg> allowed_alg_;
  std::shared_ptr<EVP_PKEY> pkey_;
  // A verify context already initialised for allowed_alg_ (padding, digest, PSS salt). Each
  // verify duplicates it instead of re-initialising, which in OpenSSL 3 would look up the
  // signature implementation in the global (locked) method store every time.
  EVP_PKEY_CTX* verify_template_ = nullptr;
};

// Parses one JWK object. nullptr with *why set when it is not a usable RSA signing key.
std::shared_ptr<const Jwk> parse_jwk(const nlohmann::json& jwk, std::string* why);

struct JwksParseResult {
  std::vector<std::shared_ptr<const Jwk>> keys;  // usable keys, unique kids, in document order
  std::vector<std::string> skipped;              // one "<kid or #index>: reason" per skipped key
};

// Parses a JWKS document ({"keys":[...]}). nullopt (with *error) when the text is not JSON or
// has no "keys" array; otherwise the usable keys, which may be none.
std::optional<JwksParseResult> parse_jwks(std::string_view json_text, std::string* error);

}  // namespace wharf::auth
