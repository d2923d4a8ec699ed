// The engine's PayEx executor on the PayEx client (payex::AsioClient): each call
// runs as a coroutine on the engine's io_context. Thread: the io_context's one
// thread. Errors: an exception from the client is an outcome, kInDoubt (it is not
// known whether the request reached PayEx), logged with the order id.
#pragma once

#include <memory>

#include <boost/asio/any_io_executor.hpp>

#include "engine/ports.hpp"
#include "payex/options.hpp"

namespace payorch::payex {
class AsioClient;
}

namespace payorch::runtime {

class PayexPort : public engine::PayexExecutor {
 public:
  PayexPort(boost::asio::any_io_executor executor, payex::ClientOptions options);
  ~PayexPort() override;
  void Execute(const domain::PayexCall& call,
               std::function<void(domain::PayexResult)> done) override;
  void Close() override;

 private:
  boost::asio::any_io_executor executor_;
  std::unique_ptr<payex::AsioClient> client_;
};

}  // namespace payorch::runtime
