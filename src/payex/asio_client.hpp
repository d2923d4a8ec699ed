// The asynchronous PayEx Vipps client (C++20 coroutines on Asio, HTTP/1.1 through
// Beast, HTTPS with certificate verification, a bounded keep-alive pool, a deadline
// per request). For the engine, which runs on one io_context thread: every member
// must be used from the executor's (single) thread. Outcomes are values
// (domain::PayexResult classified per design.md §4); nothing throws after
// construction, which throws std::invalid_argument on a bad configuration.
// Beast stays in the .cpp: this header costs only Asio's awaitable.
#pragma once

#include <memory>
#include <string>

#include <boost/asio/any_io_executor.hpp>
#include <boost/asio/awaitable.hpp>

#include "domain/types.hpp"
#include "payex/options.hpp"
#include "payex/results.hpp"

namespace payorch::payex {

namespace detail {
class ClientCore;
}

class AsioClient {
 public:
  AsioClient(boost::asio::any_io_executor executor, ClientOptions options);
  ~AsioClient();  // closes idle connections; calls in flight finish or fail
  AsioClient(const AsioClient&) = delete;
  AsioClient& operator=(const AsioClient&) = delete;

  boost::asio::awaitable<domain::PayexResult> Execute(domain::PayexCall call);
  boost::asio::awaitable<PaymentResult> GetPayment(std::string payment_id, std::string expand = {});
  boost::asio::awaitable<ListResult> ListTransactions(std::string payment_id);

  // Closes idle connections and wakes requests waiting for the pool (they fail
  // as transient). Further calls fail as transient.
  void Close();
  PoolStats Stats() const;

 private:
  std::shared_ptr<detail::ClientCore> core_;
};

}  // namespace payorch::payex
