#include "test_keys.h"

#include <openssl/bio.h>
#include <openssl/bn.h>
#include <openssl/core_names.h>
#include <openssl/evp.h>
#include <openssl/pem.h>
#include <openssl/rsa.h>

#include <stdexcept>

#include "util/base64.h"
#include "util/crypto.h"

namespace wharf::testutil {
namespace {

struct MdCtxFree {
  void operator()(EVP_MD_CTX* c) const { EVP_MD_CTX_free(c); }
};
struct BioFree {
  void operator()(BIO* b) const { BIO_free(b); }
};
struct BnFree {
  void operator()(BIGNUM* b) const { BN_free(b); }
};

std::string bn_bytes(EVP_PKEY* pkey, const char* param) {
  BIGNUM* raw = nullptr;
  if (EVP_PKEY_get_bn_param(pkey, param, &raw) != 1) throw std::runtime_error("get_bn_param");
  std::unique_ptr<BIGNUM, BnFree> bn(raw);
  std::string out(static_cast<size_t>(BN_num_bytes(bn.get())), '\0');
  BN_bn2bin(bn.get(), reinterpret_cast<unsigned char*>(out.data()));
  return out;
}

}  // namespace

TestKey::TestKey(std::string kid, int bits) : kid_(std::move(kid)) {
  EVP_PKEY* raw = EVP_RSA_gen(static_cast<unsigned int>(bits));
  if (raw == nullptr) throw std::runtime_error("EVP_RSA_gen failed");
  pkey_.reset(raw, EVP_PKEY_free);
}

const TestKey& TestKey::a() {
  static const TestKey key("key-a", 2048);
  return key;
}
const TestKey& TestKey::b() {
  static const TestKey key("key-b", 2048);
  return key;
}
const TestKey& TestKey::c() {
  static const TestKey key("key-c", 2048);
  return key;
}
const TestKey& TestKey::small() {
  static const TestKey key("key-small", 1024);
  return key;
}

nlohmann::json TestKey::jwk(std::optional<std::string> alg, std::optional<std::string> use) const {
  nlohmann::json j = {{"kty", "RSA"},
                      {"kid", kid_},
                      {"n", b64url(bn_bytes(pkey_.get(), OSSL_PKEY_PARAM_RSA_N))},
                      {"e", b64url(bn_bytes(pkey_.get(), OSSL_PKEY_PARAM_RSA_E))}};
  if (alg) j["alg"] = *alg;
  if (use) j["use"] = *use;
  return j;
}

std::string TestKey::public_pem() const {
  std::unique_ptr<BIO, BioFree> bio(BIO_new(BIO_s_mem()));
  if (!bio || PEM_write_bio_PUBKEY(bio.get(), pkey_.get()) != 1)
    throw std::runtime_error("PEM_write_bio_PUBKEY");
  char* data = nullptr;
  const long len = BIO_get_mem_data(bio.get(), &data);
  return std::string(data, static_cast<size_t>(len));
}

std::string TestKey::sign(const nlohmann::json& header, const nlohmann::json& payload,
                          std::string_view alg) const {
  const std::string input = signing_input(header, payload);
  const EVP_MD* md = nullptr;
  if (alg.substr(2) == "256") md = EVP_sha256();
  if (alg.substr(2) == "384") md = EVP_sha384();
  if (alg.substr(2) == "512") md = EVP_sha512();
  const bool pss = alg.substr(0, 2) == "PS";
  if (md == nullptr || (!pss && alg.substr(0, 2) != "RS"))
    throw std::invalid_argument("unsupported test alg");

  std::unique_ptr<EVP_MD_CTX, MdCtxFree> ctx(EVP_MD_CTX_new());
  EVP_PKEY_CTX* pctx = nullptr;
  if (!ctx || EVP_DigestSignInit(ctx.get(), &pctx, md, nullptr, pkey_.get()) != 1)
    throw std::runtime_error("EVP_DigestSignInit");
  if (pss && (EVP_PKEY_CTX_set_rsa_padding(pctx, RSA_PKCS1_PSS_PADDING) != 1 ||
              EVP_PKEY_CTX_set_rsa_pss_saltlen(pctx, RSA_PSS_SALTLEN_DIGEST) != 1))
    throw std::runtime_error("PSS setup");
  size_t len = 0;
  const auto* in = reinterpret_cast<const unsigned char*>(input.data());
  if (EVP_DigestSign(ctx.get(), nullptr, &len, in, input.size()) != 1)
    throw std::runtime_error("EVP_DigestSign size");
  std::string sig(len, '\0');
  if (EVP_DigestSign(ctx.get(), reinterpret_cast<unsigned char*>(sig.data()), &len, in,
                     input.size()) != 1)
    throw std::runtime_error("EVP_DigestSign");
  sig.resize(len);
  return input + "." + b64url(sig);
}

std::string TestKey::token(const nlohmann::json& payload, std::string_view alg) const {
  return sign({{"alg", alg}, {"typ", "JWT"}, {"kid", kid_}}, payload, alg);
}

std::string jwks_json(const std::vector<nlohmann::json>& keys) {
  nlohmann::json doc = {{"keys", nlohmann::json::array()}};
  for (const auto& k : keys) doc["keys"].push_back(k);
  return doc.dump();
}

std::string b64url(std::string_view bytes) {
  return util::base64url_encode(bytes);
}

std::string signing_input(const nlohmann::json& header, const nlohmann::json& payload) {
  return b64url(header.dump()) + "." + b64url(payload.dump());
}

std::string hs256_token(const nlohmann::json& header, const nlohmann::json& payload,
                        std::string_view secret) {
  const std::string input = signing_input(header, payload);
  return input + "." + b64url(util::hmac_sha256(secret, input));
}

nlohmann::json user_claims(int64_t now_s, const std::string& installation_id,
                           const std::string& role) {
  return {{"iss", kTestIssuer},
          {"sub", "account:a1b2c3:user:d4e5f6"},
          {"aud", kTestAudience},
          {"account_id", "team_a1b2c3"},
          {"installation_id", installation_id},
          {"user_id", "d4e5f6"},
          {"user_role", role},
          {"user_name", "Test User"},
          {"user_email", "user@example.com"},
          {"user_avatar_url", "https://example.com/a.png"},
          {"type", "access_token"},
          {"iat", now_s},
          {"nbf", now_s - 5},
          {"exp", now_s + 300}};
}

nlohmann::json system_claims(int64_t now_s, const std::string& installation_id) {
  return {{"iss", kTestIssuer},
          {"sub", "account:a1b2c3"},
          {"aud", kTestAudience},
          {"account_id", "team_a1b2c3"},
          {"installation_id", installation_id},
          {"type", "access_token"},
          {"iat", now_s},
          {"nbf", now_s - 5},
          {"exp", now_s + 300}};
}

}  // namespace wharf::testutil
