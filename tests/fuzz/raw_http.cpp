#include <boost/beast/core/flat_buffer.hpp>
#include <boost/beast/http/parser.hpp>
#include <boost/beast/http/string_body.hpp>

#include "fuzz_support.hpp"

namespace payorch::fuzz {

namespace bhttp = boost::beast::http;

std::optional<RawRequest> ParseRequest(std::string_view& bytes, size_t header_limit,
                                       size_t body_limit) {
  bhttp::request_parser<bhttp::string_body> parser;
  parser.eager(true);
  parser.header_limit(static_cast<uint32_t>(header_limit));
  parser.body_limit(body_limit);
  boost::system::error_code ec;
  while (!bytes.empty() && !parser.is_done()) {
    const size_t used = parser.put(boost::asio::buffer(bytes.data(), bytes.size()), ec);
    if (ec == bhttp::error::need_more) break;
    if (ec) break;
    if (used == 0) break;
    bytes.remove_prefix(used);
  }
  if (!ec && !parser.is_done() && parser.is_header_done() && bytes.empty()) {
    parser.put_eof(ec);  // a body delimited by the end of the connection
  }
  if (ec || !parser.is_done()) {
    bytes = {};
    return std::nullopt;
  }
  auto& m = parser.get();
  RawRequest r;
  r.method = std::string(m.method_string());
  r.target = std::string(m.target());
  for (const auto& f : m) r.headers.emplace_back(std::string(f.name_string()), std::string(f.value()));
  r.body = std::move(m.body());
  r.keep_alive = m.keep_alive();
  return r;
}

}  // namespace payorch::fuzz
