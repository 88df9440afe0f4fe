// Maps (method, path) to a route. Patterns are literal segments and `{name}` parameters,
// e.g. "/v1/installations/{installationId}/plans". Matching is segment by segment, so the
// cost does not depend on the order routes were added.
#pragma once
#include <map>
#include <memory>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

#include "net/http.h"

namespace wharf::net {

using PathParams = std::vector<std::pair<std::string, std::string>>;

template <typename Route>
class Router {
 public:
  struct Match {
    const Route* route = nullptr;  // null: no route for this method (see method_not_allowed)
    PathParams params;
    bool method_not_allowed = false;  // the path exists, the method does not
    std::string pattern;              // matched pattern, for metrics/logs ("" if none)
  };

  void add(std::string method, const std::string& pattern, Route route) {
    Node* node = &root_;
    for (const auto& seg : split(pattern)) {
      if (seg.size() > 2 && seg.front() == '{' && seg.back() == '}') {
        if (!node->param) {
          node->param = std::make_unique<Node>();
          node->param->param_name = seg.substr(1, seg.size() - 2);
        }
        node = node->param.get();
      } else {
        node = &node->children[seg];
      }
    }
    node->pattern = pattern;
    node->routes[std::move(method)] = std::move(route);
  }

  // `path` is the raw path (no query); segments are percent-decoded before matching.
  Match match(std::string_view method, std::string_view path) const {
    Match m;
    const Node* node = &root_;
    for (auto& seg : split(path)) {
      auto it = node->children.find(seg);
      if (it != node->children.end()) {
        node = &it->second;
      } else if (node->param) {
        node = node->param.get();
        m.params.emplace_back(node->param_name, std::move(seg));
      } else {
        return Match{};
      }
    }
    if (node->routes.empty()) return Match{};
    m.pattern = node->pattern;
    auto r = node->routes.find(std::string(method));
    if (r == node->routes.end()) {
      m.method_not_allowed = true;
      return m;
    }
    m.route = &r->second;
    return m;
  }

  // Methods registered for a pattern's node (for the Allow header).
  std::vector<std::string> methods_for(std::string_view path) const {
    const Node* node = &root_;
    for (auto& seg : split(path)) {
      auto it = node->children.find(seg);
      if (it != node->children.end())
        node = &it->second;
      else if (node->param)
        node = node->param.get();
      else
        return {};
    }
    std::vector<std::string> out;
    for (const auto& [method, route] : node->routes) out.push_back(method);
    return out;
  }

 private:
  struct Node {
    std::map<std::string, Node, std::less<>> children;
    std::unique_ptr<Node> param;
    std::string param_name;
    std::string pattern;
    std::map<std::string, Route, std::less<>> routes;
  };

  static std::vector<std::string> split(std::string_view path) {
    std::vector<std::string> out;
    size_t i = 0;
    while (i < path.size()) {
      if (path[i] == '/') {
        ++i;
        continue;
      }
      size_t j = path.find('/', i);
      if (j == std::string_view::npos) j = path.size();
      out.push_back(decode(path.substr(i, j - i)));
      i = j;
    }
    return out;
  }

  static std::string decode(std::string_view seg) {
    auto decoded = percent_decode(seg, false);
    return decoded ? *decoded : std::string(seg);  // malformed escapes match literally
  }

  Node root_;
};

}  // namespace wharf::net
