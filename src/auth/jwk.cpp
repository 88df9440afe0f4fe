#include "auth/jwk.h"

#include <openssl/bn.h>
#include <openssl/core_names.h>
#include <openssl/evp.h>
#include <openssl/param_build.h>
#include <openssl/rsa.h>

#include <nlohmann/json.hpp>
#include <unordered_set>

#include "util/base64.h"

namespace wharf::auth {
namespace {

// RFC 7518 §3.3: RSA keys for RS*/PS* MUST be at least 2048 bits. The upper bound keeps a
// hostile or broken JWKS from making every verify arbitrarily slow (cost grows ~quadratically).
constexpr int kMinRsaBits = 2048;
constexpr int kMaxRsaBits = 8192;
constexpr int kMaxExponentBits = 64;

struct BnFree {
  void operator()(BIGNUM* b) const { BN_free(b); }
};
struct ParamBldFree {
  void operator()(OSSL_PARAM_BLD* b) const { OSSL_PARAM_BLD_free(b); }
};
struct ParamFree {
  void operator()(OSSL_PARAM* p) const { OSSL_PARAM_free(p); }
};
struct PkeyCtxFree {
  void operator()(EVP_PKEY_CTX* c) const { EVP_PKEY_CTX_free(c); }
};
struct MdCtxFree {
  void operator()(EVP_MD_CTX* c) const { EVP_MD_CTX_free(c); }
};
using PkeyCtx = std::unique_ptr<EVP_PKEY_CTX, PkeyCtxFree>;

// Digests fetched once from the default provider. In OpenSSL 3, passing EVP_sha256() to an
// init function triggers an implicit fetch (a locked method-store lookup) on every call;
// explicitly fetched objects skip that. Deliberately never freed: they live as long as the
// process, and freeing them from a static destructor could run after OpenSSL's own cleanup.
struct Digests {
  EVP_MD* sha256 = EVP_MD_fetch(nullptr, "SHA256", nullptr);
  EVP_MD* sha384 = EVP_MD_fetch(nullptr, "SHA384", nullptr);
  EVP_MD* sha512 = EVP_MD_fetch(nullptr, "SHA512", nullptr);
};

const Digests& digests() {
  static const Digests* d = new Digests();
  return *d;
}

const EVP_MD* digest_for(JwsAlg alg) {
  const Digests& d = digests();
  switch (alg) {
    case JwsAlg::kRS256:
    case JwsAlg::kPS256:
      return d.sha256;
    case JwsAlg::kRS384:
    case JwsAlg::kPS384:
      return d.sha384;
    case JwsAlg::kRS512:
    case JwsAlg::kPS512:
      return d.sha512;
  }
  return nullptr;
}

bool is_pss(JwsAlg alg) {
  return alg == JwsAlg::kPS256 || alg == JwsAlg::kPS384 || alg == JwsAlg::kPS512;
}

// A verify context for `alg` over a precomputed digest.
PkeyCtx make_verify_ctx(EVP_PKEY* pkey, JwsAlg alg) {
  const EVP_MD* md = digest_for(alg);
  if (md == nullptr) return nullptr;
  PkeyCtx ctx(EVP_PKEY_CTX_new_from_pkey(nullptr, pkey, nullptr));
  if (!ctx || EVP_PKEY_verify_init(ctx.get()) <= 0) return nullptr;
  if (is_pss(alg)) {
    // RFC 7518 §3.5: MGF1 with the same hash, salt length equal to the hash length.
    if (EVP_PKEY_CTX_set_rsa_padding(ctx.get(), RSA_PKCS1_PSS_PADDING) <= 0 ||
        EVP_PKEY_CTX_set_signature_md(ctx.get(), md) <= 0 ||
        EVP_PKEY_CTX_set_rsa_mgf1_md(ctx.get(), md) <= 0 ||
        EVP_PKEY_CTX_set_rsa_pss_saltlen(ctx.get(), RSA_PSS_SALTLEN_DIGEST) <= 0)
      return nullptr;
  } else {
    if (EVP_PKEY_CTX_set_rsa_padding(ctx.get(), RSA_PKCS1_PADDING) <= 0 ||
        EVP_PKEY_CTX_set_signature_md(ctx.get(), md) <= 0)
      return nullptr;
  }
  return ctx;
}

std::unique_ptr<BIGNUM, BnFree> to_bn(std::string_view bytes) {
  return std::unique_ptr<BIGNUM, BnFree>(
      BN_bin2bn(reinterpret_cast<const unsigned char*>(bytes.data()),
                static_cast<int>(bytes.size()), nullptr));
}

// JWK members are unpadded base64url (RFC 7517 §2); padding or any other character is a
// malformed key, not something to repair.
std::optional<std::string> decode_member(const nlohmann::json& jwk, const char* name) {
  auto it = jwk.find(name);
  if (it == jwk.end() || !it->is_string()) return std::nullopt;
  const std::string& text = it->get_ref<const std::string&>();
  if (text.empty() || text.find('=') != std::string::npos) return std::nullopt;
  return util::base64url_decode(text);
}

std::string optional_string(const nlohmann::json& jwk, const char* name, bool* bad) {
  auto it = jwk.find(name);
  if (it == jwk.end() || it->is_null()) return {};
  if (!it->is_string()) {
    *bad = true;
    return {};
  }
  return it->get<std::string>();
}

}  // namespace

std::optional<JwsAlg> parse_jws_alg(std::string_view name) {
  if (name == "RS256") return JwsAlg::kRS256;
  if (name == "RS384") return JwsAlg::kRS384;
  if (name == "RS512") return JwsAlg::kRS512;
  if (name == "PS256") return JwsAlg::kPS256;
  if (name == "PS384") return JwsAlg::kPS384;
  if (name == "PS512") return JwsAlg::kPS512;
  return std::nullopt;
}

std::string_view jws_alg_name(JwsAlg alg) {
  switch (alg) {
    case JwsAlg::kRS256:
      return "RS256";
    case JwsAlg::kRS384:
      return "RS384";
    case JwsAlg::kRS512:
      return "RS512";
    case JwsAlg::kPS256:
      return "PS256";
    case JwsAlg::kPS384:
      return "PS384";
    case JwsAlg::kPS512:
      return "PS512";
  }
  return "?";
}

Jwk::~Jwk() {
  EVP_PKEY_CTX_free(verify_template_);
}

std::shared_ptr<const Jwk> Jwk::from_rsa_components(std::string kid, std::string alg,
                                                    std::string use, std::string_view n,
                                                    std::string_view e, std::string* why) {
  auto bn_n = to_bn(n);
  auto bn_e = to_bn(e);
  if (!bn_n || !bn_e) {
    *why = "out of memory";
    return nullptr;
  }
  const int bits = BN_num_bits(bn_n.get());
  if (bits < kMinRsaBits || bits > kMaxRsaBits) {
    *why = "RSA modulus of " + std::to_string(bits) + " bits (need " + std::to_string(kMinRsaBits) +
           ".." + std::to_string(kMaxRsaBits) + ")";
    return nullptr;
  }
  // A valid public exponent is odd and > 1; a huge one only serves to slow verification down.
  if (!BN_is_odd(bn_e.get()) || BN_is_one(bn_e.get()) ||
      BN_num_bits(bn_e.get()) > kMaxExponentBits) {
    *why = "bad RSA public exponent";
    return nullptr;
  }

  std::unique_ptr<OSSL_PARAM_BLD, ParamBldFree> bld(OSSL_PARAM_BLD_new());
  if (!bld || !OSSL_PARAM_BLD_push_BN(bld.get(), OSSL_PKEY_PARAM_RSA_N, bn_n.get()) ||
      !OSSL_PARAM_BLD_push_BN(bld.get(), OSSL_PKEY_PARAM_RSA_E, bn_e.get())) {
    *why = "OSSL_PARAM_BLD failed";
    return nullptr;
  }
  std::unique_ptr<OSSL_PARAM, ParamFree> params(OSSL_PARAM_BLD_to_param(bld.get()));
  PkeyCtx from_ctx(EVP_PKEY_CTX_new_from_name(nullptr, "RSA", nullptr));
  EVP_PKEY* raw = nullptr;
  if (!params || !from_ctx || EVP_PKEY_fromdata_init(from_ctx.get()) <= 0 ||
      EVP_PKEY_fromdata(from_ctx.get(), &raw, EVP_PKEY_PUBLIC_KEY, params.get()) <= 0 ||
      raw == nullptr) {
    *why = "OpenSSL rejected the RSA key";
    return nullptr;
  }

  std::shared_ptr<Jwk> jwk(new Jwk());
  jwk->pkey_ = std::shared_ptr<EVP_PKEY>(raw, EVP_PKEY_free);
  jwk->kid_ = std::move(kid);
  jwk->alg_ = std::move(alg);
  jwk->use_ = std::move(use);
  jwk->bits_ = bits;
  jwk->allowed_alg_ =
      jwk->alg_.empty() ? std::optional<JwsAlg>(JwsAlg::kRS256) : parse_jws_alg(jwk->alg_);
  if (jwk->allowed_alg_) {
    PkeyCtx tmpl = make_verify_ctx(raw, *jwk->allowed_alg_);
    if (!tmpl) {
      *why = "cannot initialise RSA verification";
      return nullptr;
    }
    jwk->verify_template_ = tmpl.release();
  }
  return jwk;
}

bool Jwk::verify(JwsAlg alg, std::string_view signing_input, std::string_view signature) const {
  if (!allowed_alg_ || alg != *allowed_alg_ || verify_template_ == nullptr) return false;
  // RSA signatures are exactly the modulus length; anything else cannot be valid.
  if (signature.size() != static_cast<size_t>((bits_ + 7) / 8)) return false;

  unsigned char digest[EVP_MAX_MD_SIZE];
  unsigned int digest_len = 0;
  if (EVP_Digest(signing_input.data(), signing_input.size(), digest, &digest_len, digest_for(alg),
                 nullptr) != 1)
    return false;

  // Duplicating the initialised template is read-only on the template (safe across threads)
  // and avoids the method-store fetch that EVP_PKEY_verify_init would do.
  PkeyCtx ctx(EVP_PKEY_CTX_dup(verify_template_));
  if (!ctx) ctx = make_verify_ctx(pkey_.get(), alg);
  if (!ctx) return false;
  return EVP_PKEY_verify(ctx.get(), reinterpret_cast<const unsigned char*>(signature.data()),
                         signature.size(), digest, digest_len) == 1;
}

std::shared_ptr<const Jwk> parse_jwk(const nlohmann::json& jwk, std::string* why) {
  if (!jwk.is_object()) {
    *why = "not an object";
    return nullptr;
  }
  auto kty = jwk.find("kty");
  if (kty == jwk.end() || !kty->is_string() || kty->get_ref<const std::string&>() != "RSA") {
    *why = "kty is not RSA";
    return nullptr;
  }
  bool bad = false;
  std::string kid = optional_string(jwk, "kid", &bad);
  std::string use = optional_string(jwk, "use", &bad);
  std::string alg = optional_string(jwk, "alg", &bad);
  if (bad) {
    *why = "kid/use/alg is not a string";
    return nullptr;
  }
  // Tokens select their key by kid (partner-api.md §2.2), so a key without one is unusable.
  if (kid.empty()) {
    *why = "no kid";
    return nullptr;
  }
  if (!use.empty() && use != "sig") {
    *why = "use is not sig";
    return nullptr;
  }
  if (auto ops = jwk.find("key_ops"); ops != jwk.end() && ops->is_array()) {
    bool verify = false;
    for (const auto& op : *ops) verify = verify || (op.is_string() && op == "verify");
    if (!verify) {
      *why = "key_ops lacks verify";
      return nullptr;
    }
  }
  auto n = decode_member(jwk, "n");
  auto e = decode_member(jwk, "e");
  if (!n || !e) {
    *why = "n/e missing or not base64url";
    return nullptr;
  }
  return Jwk::from_rsa_components(std::move(kid), std::move(alg), std::move(use), *n, *e, why);
}

std::optional<JwksParseResult> parse_jwks(std::string_view json_text, std::string* error) {
  nlohmann::json doc = nlohmann::json::parse(json_text, nullptr, /*allow_exceptions=*/false);
  if (doc.is_discarded() || !doc.is_object()) {
    *error = "JWKS is not a JSON object";
    return std::nullopt;
  }
  auto keys = doc.find("keys");
  if (keys == doc.end() || !keys->is_array()) {
    *error = "JWKS has no keys array";
    return std::nullopt;
  }
  JwksParseResult result;
  std::unordered_set<std::string> seen;
  size_t index = 0;
  for (const auto& entry : *keys) {
    std::string why;
    auto key = parse_jwk(entry, &why);
    std::string label = "#" + std::to_string(index++);
    if (entry.is_object()) {
      if (auto kid = entry.find("kid"); kid != entry.end() && kid->is_string())
        label = kid->get<std::string>();
    }
    if (!key) {
      result.skipped.push_back(label + ": " + why);
      continue;
    }
    // Two keys under one kid would make selection ambiguous; the first one wins.
    if (!seen.insert(key->kid()).second) {
      result.skipped.push_back(label + ": duplicate kid");
      continue;
    }
    result.keys.push_back(std::move(key));
  }
  return result;
}

}  // namespace wharf::auth
