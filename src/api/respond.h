// Rendering of responses, including the spec's error envelope (partner-api.md §3). This is
// the one place an ApiError becomes a response body.
#pragma once
#include <string_view>

#include "model/api_error.h"
#include "model/json_check.h"
#include "net/http.h"

namespace wharf::api {

net::Response json_response(int status, const model::Json& body);
net::Response error_response(const model::ApiError& error);
net::Response error_response(int status, std::string_view code, std::string_view message);

}  // namespace wharf::api
