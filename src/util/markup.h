// Escaping text for HTML and XML (the dashboard's pages, the conformance runner's JUnit).
#pragma once
#include <string>
#include <string_view>

namespace wharf::util {

// `s` safe inside element text and quoted attribute values of HTML and XML: & < > " ' become
// entity references (&#39; for the apostrophe, valid in both), and the control characters XML
// 1.0 forbids (all below U+0020 but tab, LF and CR) become '?'.
std::string markup_escape(std::string_view s);

}  // namespace wharf::util
