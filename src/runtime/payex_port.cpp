#include "runtime/payex_port.hpp"

#include <boost/asio/co_spawn.hpp>

#include "engine/log.hpp"
#include "payex/asio_client.hpp"

namespace payorch::runtime {

namespace asio = boost::asio;
using engine::Level;
using engine::Log;

PayexPort::PayexPort(asio::any_io_executor executor, payex::ClientOptions options)
    : executor_(executor), client_(std::make_unique<payex::AsioClient>(executor, std::move(options))) {}

PayexPort::~PayexPort() = default;

namespace {
asio::awaitable<void> Run(payex::AsioClient& client, domain::PayexCall call,
                          std::function<void(domain::PayexResult)> done) {
  domain::PayexResult r;
  try {
    r = co_await client.Execute(call);
  } catch (const std::exception& e) {
    // Unknown whether it reached PayEx: in doubt, resolved by reading.
    Log(Level::kError, "payex.call_failed", {{"order_id", call.order_id}, {"error", e.what()}});
    r = domain::PayexResult{};
    r.result = domain::ResultClass::kInDoubt;
  }
  done(std::move(r));
}
}  // namespace

void PayexPort::Execute(const domain::PayexCall& call,
                        std::function<void(domain::PayexResult)> done) {
  asio::co_spawn(executor_, Run(*client_, call, std::move(done)), [](std::exception_ptr e) {
    if (!e) return;
    try {
      std::rethrow_exception(e);
    } catch (const std::exception& ex) {
      Log(Level::kError, "payex.call_crashed", {{"error", ex.what()}});
    }
  });
}

void PayexPort::Close() {
  client_->Close();
}

}  // namespace payorch::runtime
