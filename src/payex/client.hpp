// The PayEx Vipps client for code that does not use Asio: it owns one thread with
// an io_context that runs the asynchronous client (payex/asio_client.hpp). Calls
// may be made from any thread; completion callbacks run on the client's thread.
// Errors are values (domain::PayexResult with its ResultClass); only a bad
// configuration throws (std::invalid_argument, from the constructor).
#pragma once

#include <functional>
#include <future>
#include <memory>
#include <string>

#include "domain/types.hpp"
#include "payex/options.hpp"
#include "payex/results.hpp"

namespace payorch::payex {

class Client {
 public:
  explicit Client(ClientOptions options);
  // Closes connections and joins the thread; calls still in flight never complete
  // (their futures report broken_promise).
  ~Client();
  Client(const Client&) = delete;
  Client& operator=(const Client&) = delete;

  // Executes one call of the state machine (create, authorize, capture, cancel,
  // reverse, abort, read) and reports its classified outcome. `done` runs on the
  // client's thread and must not throw.
  void Execute(domain::PayexCall call, std::function<void(domain::PayexResult)> done);
  [[nodiscard]] std::future<domain::PayexResult> Execute(domain::PayexCall call);

  // GET the payment (with $expand) as a resource with its operations.
  [[nodiscard]] std::future<PaymentResult> GetPayment(std::string payment_id,
                                                      std::string expand = {});
  // Every transaction of the payment (GET with $expand=transactions).
  [[nodiscard]] std::future<ListResult> ListTransactions(std::string payment_id);

  // Blocks until the client's thread answers: never call it from a callback.
  [[nodiscard]] PoolStats Stats() const;

 private:
  struct Impl;
  std::unique_ptr<Impl> impl_;
};

}  // namespace payorch::payex
