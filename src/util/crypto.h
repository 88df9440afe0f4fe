// Thin wrappers over OpenSSL 3: CSPRNG, digests, HMAC, constant-time compare and the
// AES-256-GCM sealing used for secrets at rest.
#pragma once
#include <optional>
#include <string>
#include <string_view>

namespace wharf::util {

std::string random_bytes(size_t n);         // CSPRNG; aborts if the RNG fails
std::string random_token(size_t n_bytes);   // base64url of n random bytes
std::string sha256(std::string_view data);  // raw 32 bytes
std::string hmac_sha1(std::string_view key, std::string_view data);    // raw 20 bytes
std::string hmac_sha256(std::string_view key, std::string_view data);  // raw 32 bytes
std::string to_hex(std::string_view bytes);
bool constant_time_equal(std::string_view a, std::string_view b);

// AES-256-GCM with a 32-byte key. Output = "v1" || 12-byte nonce || ciphertext || 16-byte tag.
// `aad` binds the ciphertext to its context (e.g. the owning row's id) so a sealed value
// copied to another row does not open there.
class SecretBox {
 public:
  explicit SecretBox(std::string key32);
  std::string seal(std::string_view plaintext, std::string_view aad) const;
  std::optional<std::string> open(std::string_view sealed, std::string_view aad) const;

 private:
  std::string key_;
};

}  // namespace wharf::util
