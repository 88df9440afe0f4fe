#include "sandbox/identity.h"

#include <fcntl.h>
#include <openssl/core_names.h>
#include <openssl/evp.h>
#include <openssl/pem.h>
#include <openssl/rsa.h>
#include <sys/stat.h>
#include <unistd.h>

#include <cstdio>
#include <stdexcept>

#include "util/base64.h"
#include "util/crypto.h"

namespace wharf::sandbox {

using model::Json;

struct Identity::Key {
  EVP_PKEY* pkey = nullptr;
  ~Key() { EVP_PKEY_free(pkey); }
};

namespace {

std::string bn_b64url(const EVP_PKEY* pkey, const char* name) {
  BIGNUM* bn = nullptr;
  if (!EVP_PKEY_get_bn_param(pkey, name, &bn)) throw std::runtime_error("cannot read RSA key");
  std::string bytes(static_cast<size_t>(BN_num_bytes(bn)), '\0');
  BN_bn2bin(bn, reinterpret_cast<unsigned char*>(bytes.data()));
  BN_free(bn);
  return util::base64url_encode(bytes);
}

EVP_PKEY* load_or_generate(const std::string& path) {
  if (FILE* f = std::fopen(path.c_str(), "r")) {
    EVP_PKEY* pkey = PEM_read_PrivateKey(f, nullptr, nullptr, nullptr);
    std::fclose(f);
    if (!pkey) throw std::runtime_error("cannot parse signing key " + path);
    return pkey;
  }
  EVP_PKEY* pkey = EVP_RSA_gen(2048);
  if (!pkey) throw std::runtime_error("RSA key generation failed");
  int fd = ::open(path.c_str(), O_WRONLY | O_CREAT | O_EXCL | O_CLOEXEC, 0600);
  if (fd < 0) {
    EVP_PKEY_free(pkey);
    return load_or_generate(path);  // created concurrently: use that one
  }
  FILE* f = fdopen(fd, "w");
  bool ok = f && PEM_write_PrivateKey(f, pkey, nullptr, nullptr, 0, nullptr, nullptr) == 1;
  if (f) std::fclose(f);
  if (!ok) {
    EVP_PKEY_free(pkey);
    throw std::runtime_error("cannot write signing key " + path);
  }
  return pkey;
}

}  // namespace

Identity::Identity(const std::string& data_dir, std::string issuer, std::string audience,
                   const util::Clock& clock)
    : key_(std::make_unique<Key>()),
      issuer_(std::move(issuer)),
      audience_(std::move(audience)),
      clock_(clock) {
  key_->pkey = load_or_generate(data_dir + "/signing-key.pem");
  // kid: a digest of the public modulus, so it is stable for a kept key and changes with it.
  kid_ = util::base64url_encode(util::sha256(bn_b64url(key_->pkey, OSSL_PKEY_PARAM_RSA_N)))
             .substr(0, 16);
}

Identity::~Identity() = default;

Json Identity::jwks() const {
  return {{"keys",
           {{{"kty", "RSA"},
             {"kid", kid_},
             {"use", "sig"},
             {"alg", "RS256"},
             {"n", bn_b64url(key_->pkey, OSSL_PKEY_PARAM_RSA_N)},
             {"e", bn_b64url(key_->pkey, OSSL_PKEY_PARAM_RSA_E)}}}}};
}

Json Identity::openid_configuration(const std::string& base_url) const {
  return {{"issuer", issuer_},
          {"jwks_uri", base_url + "/.well-known/jwks"},
          {"token_endpoint", base_url + "/v1/integrations/sso/token"},
          {"id_token_signing_alg_values_supported", {"RS256"}},
          {"response_types_supported", {"code"}},
          {"subject_types_supported", {"public"}}};
}

std::string Identity::sign(const Json& claims) const {
  Json header = {{"alg", "RS256"}, {"typ", "JWT"}, {"kid", kid_}};
  std::string input =
      util::base64url_encode(header.dump()) + "." + util::base64url_encode(claims.dump());
  EVP_MD_CTX* ctx = EVP_MD_CTX_new();
  size_t len = 0;
  std::string sig;
  bool ok = ctx && EVP_DigestSignInit(ctx, nullptr, EVP_sha256(), nullptr, key_->pkey) == 1 &&
            EVP_DigestSign(ctx, nullptr, &len, reinterpret_cast<const unsigned char*>(input.data()),
                           input.size()) == 1;
  if (ok) {
    sig.resize(len);
    ok = EVP_DigestSign(ctx, reinterpret_cast<unsigned char*>(sig.data()), &len,
                        reinterpret_cast<const unsigned char*>(input.data()), input.size()) == 1;
    sig.resize(len);
  }
  EVP_MD_CTX_free(ctx);
  if (!ok) throw std::runtime_error("RS256 signing failed");
  return input + "." + util::base64url_encode(sig);
}

Json Identity::user_claims(const std::string& installation_id, const UserIdentity& user,
                           const std::string& type, int64_t ttl_s) const {
  int64_t now = clock_.now_s();
  Json c = {{"iss", issuer_},
            {"aud", audience_},
            {"sub", "account:" + user.account_hex + ":user:" + user.user_hex},
            {"account_id", user.account_id},
            {"installation_id", installation_id},
            {"user_id", user.user_hex},
            {"user_role", user.role},
            {"type", type},
            {"iat", now},
            {"nbf", now},
            {"exp", now + ttl_s}};
  if (!user.email.empty()) c["user_email"] = user.email;
  if (!user.name.empty()) c["user_name"] = user.name;
  return c;
}

std::string Identity::user_token(const std::string& installation_id, const UserIdentity& user,
                                 const std::string& type, int64_t ttl_s) const {
  return sign(user_claims(installation_id, user, type, ttl_s));
}

std::string Identity::system_token(const std::optional<std::string>& installation_id,
                                   const std::optional<std::string>& account_hex,
                                   int64_t ttl_s) const {
  int64_t now = clock_.now_s();
  Json c = {{"iss", issuer_}, {"aud", audience_}, {"type", "access_token"},
            {"iat", now},     {"nbf", now},       {"exp", now + ttl_s}};
  c["installation_id"] = installation_id ? Json(*installation_id) : Json(nullptr);
  if (account_hex) {
    c["sub"] = "account:" + *account_hex;
    c["account_id"] = "team_" + *account_hex;
  } else {
    c["sub"] = nullptr;
  }
  return sign(c);
}

}  // namespace wharf::sandbox
