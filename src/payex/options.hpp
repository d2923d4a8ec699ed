// Configuration of the PayEx Vipps client: where PayEx is, who the merchant is,
// and the limits of the HTTP layer. Plain values, no Boost; validated when a client
// is constructed (a bad value is a start-up error, std::invalid_argument).
#pragma once

#include <chrono>
#include <cstddef>
#include <functional>
#include <string>
#include <string_view>
#include <vector>

namespace payorch::payex {

// How the MSISDN is named in the authorization request body (api §5.2, §15):
// the docs say "msisdn", the SDKs "mobileNumber".
enum class MsisdnField { kMsisdn, kMobileNumber, kBoth };

struct ClientOptions {
  // ---- PayEx --------------------------------------------------------------
  // API base URL, e.g. https://api.externalintegration.payex.com. Only the origin
  // is used for the create call and for reading stored payment ids; operation
  // hrefs come from PayEx and must have this same origin (the bearer token is never
  // sent elsewhere).
  std::string base_url = "https://api.externalintegration.payex.com";
  // http:// base URLs are refused unless this is set (the simulator on loopback).
  bool allow_plain_http = false;
  // The merchant's bearer token. Never logged, never in an error message.
  std::string token;
  // The merchant system's User-Agent header (echoed as initiatingSystemUserAgent).
  std::string user_agent = "payorch/0.1.0";
  // Extra trust anchors (PEM file) besides the system store; empty: system store.
  std::string ca_file;

  // ---- the merchant, for create (api §4.1) -----------------------------------
  std::string payee_id;  // GUID issued by PayEx
  std::string payee_name;
  std::string product_category;
  std::string subsite;
  std::vector<std::string> host_urls;
  std::string complete_url = "https://example.com/payment-completed";
  std::string cancel_url;
  // The payer's browser User-Agent and language when the purchase carries none.
  std::string default_payer_user_agent = "Mozilla/5.0 (payorch)";
  std::string default_language = "nb-NO";
  // callbackUrl: callback_url(order_id) when set; otherwise, when callback_url_base
  // is set, "<base>/<order_id>?token=<callback_token(order_id)>" (percent-encoded;
  // without "?token=" when no token function is given). Empty: no callbackUrl.
  std::function<std::string(const std::string& order_id)> callback_url;
  std::string callback_url_base;
  std::function<std::string(const std::string& order_id)> callback_token;
  // Send payerReference as payment.payer.payerReference (current docs) instead of
  // the top-level payment.payerReference of the direct-API era (api §4.1).
  bool payer_reference_in_payer = false;
  MsisdnField msisdn_field = MsisdnField::kMsisdn;
  // $expand of a read when the call names none.
  std::string default_expand = "authorizations,captures,cancellations,reversals";

  // ---- HTTP -------------------------------------------------------------------
  // Bound on open connections (idle + busy) over all origins; requests beyond it
  // wait for a free one within their own deadline.
  std::size_t max_connections = 16;
  // Deadline of one HTTP exchange, from asking the pool to the last body byte.
  std::chrono::milliseconds request_timeout{10'000};
  // Part of the deadline granted to resolve + connect + TLS handshake.
  std::chrono::milliseconds connect_timeout{5'000};
  // Idle keep-alive connections older than this are closed, not reused.
  std::chrono::milliseconds idle_timeout{30'000};
  // Bigger responses are a classified error (bad response), not a crash.
  std::size_t max_response_bytes = 4u << 20;

  // ---- hypermedia ---------------------------------------------------------------
  // Operation hrefs come from the latest payment resource seen (create, read,
  // abort, or a GET made for this purpose). A cached resource younger than this is
  // used; an older one, or one that lacks the rel, is refreshed by a GET first.
  // Zero: always GET before an operation.
  std::chrono::milliseconds operations_cache_ttl{60'000};
  std::size_t operations_cache_size = 10'000;

  // One structured line per call (event=payex.call ...). Tokens never appear;
  // MSISDNs are masked. Empty: no logging.
  std::function<void(std::string_view line)> log;
};

}  // namespace payorch::payex
