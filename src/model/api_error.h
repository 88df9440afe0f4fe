// The one error type a request path throws. It is turned into the spec's error envelope
// (partner-api.md §3) in exactly one place: api/respond.cpp.
#pragma once
#include <cstdint>
#include <optional>
#include <stdexcept>
#include <string>
#include <vector>

namespace wharf::model {

struct FieldError {
  std::string key;      // e.g. "credentials.access_token" or a metadata key such as "region"
  std::string message;  // per-field message
};

class ApiError : public std::runtime_error {
 public:
  ApiError(int status_code, std::string error_code, std::string error_message,
           std::vector<FieldError> field_errors = {})
      : std::runtime_error(error_message),
        status(status_code),
        code(std::move(error_code)),
        message(std::move(error_message)),
        fields(std::move(field_errors)) {}

  int status;
  std::string code;
  std::string message;
  std::vector<FieldError> fields;
  std::optional<std::string> user_message;  // error.user.message, shown in Vercel's UI
  std::optional<std::string> user_url;      // error.user.url
  std::optional<int64_t> retry_after_s;     // a Retry-After header (429, 503)

  // Adds what a Vercel user reads (error.user, partner-api.md §3): `user_text` written for an
  // end user (no ids, no jargon), `url` a page where they can resolve the problem. Chains on
  // a temporary: throw ApiError::conflict("…").with_user("…");
  ApiError&& with_user(std::string user_text, std::optional<std::string> url = std::nullopt) && {
    user_message = std::move(user_text);
    if (url) user_url = std::move(url);
    return std::move(*this);
  }
  ApiError& with_user(std::string user_text, std::optional<std::string> url = std::nullopt) & {
    user_message = std::move(user_text);
    if (url) user_url = std::move(url);
    return *this;
  }

  static ApiError validation(std::string message, std::vector<FieldError> fields) {
    return ApiError(400, "validation_error", std::move(message), std::move(fields));
  }
  static ApiError bad_request(std::string message) {
    return ApiError(400, "bad_request", std::move(message));
  }
  static ApiError unauthorized(std::string message) {
    return ApiError(401, "unauthorized", std::move(message));
  }
  static ApiError forbidden(std::string message) {
    return ApiError(403, "forbidden", std::move(message));
  }
  static ApiError not_found(std::string message) {
    return ApiError(404, "not_found", std::move(message));
  }
  static ApiError conflict(std::string message) {
    return ApiError(409, "conflict", std::move(message));
  }
  static ApiError unprocessable(std::string message) {
    return ApiError(422, "unprocessable_entity", std::move(message));
  }
};

}  // namespace wharf::model
