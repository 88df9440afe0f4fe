// The request path above net::Server: route match → authentication → idempotency →
// handler, with every failure rendered as the spec's error envelope.
#pragma once
#include <memory>

#include "api/metrics.h"
#include "api/route.h"
#include "auth/authenticator.h"
#include "net/http.h"
#include "service/idempotency.h"

namespace wharf::api {

class Dispatcher {
 public:
  // `quick_on_io_threads` false: quick routes go to the handler pool too, for a store whose
  // reads wait on the network (PostgreSQL), where a read would hold an I/O thread for its
  // round trips.
  Dispatcher(RouteTable routes, const auth::Authenticator& authenticator,
             service::IdempotencyService& idempotency, Metrics& metrics,
             bool quick_on_io_threads = true);

  // On an I/O thread (Request::on_io_thread) only quick routes run (and only while
  // quick_on_io_threads); any other request is answered Response::defer_to_pool right after
  // its route is matched.
  net::Response handle(net::Request& req) const;
  // For net::Server's observer: metrics + one access-log line per request.
  void observe(const net::Request& req, const net::Response& res, double elapsed_ms) const;

 private:
  net::Response run(net::Request& req) const;

  RouteTable routes_;
  const auth::Authenticator& authenticator_;
  service::IdempotencyService& idempotency_;
  Metrics& metrics_;
  bool quick_on_io_threads_;
};

}  // namespace wharf::api
