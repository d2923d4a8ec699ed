// The thread-owning wrapper: one io_context on one thread runs the AsioClient, so
// the Asio rule "one executor thread" holds whatever thread calls in.
#include "payex/client.hpp"

#include <thread>

#include <boost/asio/co_spawn.hpp>
#include <boost/asio/executor_work_guard.hpp>
#include <boost/asio/io_context.hpp>
#include <boost/asio/post.hpp>

#include "payex/asio_client.hpp"

namespace payorch::payex {
namespace asio = boost::asio;

struct Client::Impl {
  asio::io_context io{1};
  asio::executor_work_guard<asio::io_context::executor_type> work{io.get_executor()};
  std::unique_ptr<AsioClient> client;
  std::thread thread;
  std::function<void(std::string_view)> log;

  // Runs `make()` (an awaitable) on the client's thread and hands its value to `done`.
  template <class Make, class Done>
  void Spawn(Make make, Done done) {
    asio::co_spawn(io, std::move(make),
                   [done = std::move(done), log = log](std::exception_ptr e, auto value) mutable {
                     if (e) {
                       // Execute never throws; a failure here is a bug worth a line.
                       if (log) log("event=payex.client_error what=uncaught exception in a call");
                       return;
                     }
                     done(std::move(value));
                   });
  }
};

Client::Client(ClientOptions options) : impl_(std::make_unique<Impl>()) {
  impl_->log = options.log;
  impl_->client = std::make_unique<AsioClient>(impl_->io.get_executor(), std::move(options));
  impl_->thread = std::thread([io = &impl_->io] { io->run(); });
}

Client::~Client() {
  asio::post(impl_->io, [c = impl_->client.get()] { c->Close(); });
  impl_->work.reset();
  impl_->io.stop();
  impl_->thread.join();
  impl_->client.reset();
}

void Client::Execute(domain::PayexCall call, std::function<void(domain::PayexResult)> done) {
  AsioClient* c = impl_->client.get();
  impl_->Spawn([c, call = std::move(call)]() mutable { return c->Execute(std::move(call)); },
               std::move(done));
}

std::future<domain::PayexResult> Client::Execute(domain::PayexCall call) {
  auto promise = std::make_shared<std::promise<domain::PayexResult>>();
  auto future = promise->get_future();
  Execute(std::move(call), [promise](domain::PayexResult r) { promise->set_value(std::move(r)); });
  return future;
}

std::future<PaymentResult> Client::GetPayment(std::string payment_id, std::string expand) {
  auto promise = std::make_shared<std::promise<PaymentResult>>();
  auto future = promise->get_future();
  AsioClient* c = impl_->client.get();
  impl_->Spawn(
      [c, id = std::move(payment_id), ex = std::move(expand)]() mutable {
        return c->GetPayment(std::move(id), std::move(ex));
      },
      [promise](PaymentResult r) { promise->set_value(std::move(r)); });
  return future;
}

std::future<ListResult> Client::ListTransactions(std::string payment_id) {
  auto promise = std::make_shared<std::promise<ListResult>>();
  auto future = promise->get_future();
  AsioClient* c = impl_->client.get();
  impl_->Spawn(
      [c, id = std::move(payment_id)]() mutable { return c->ListTransactions(std::move(id)); },
      [promise](ListResult r) { promise->set_value(std::move(r)); });
  return future;
}

PoolStats Client::Stats() const {
  std::promise<PoolStats> p;
  auto f = p.get_future();
  asio::post(impl_->io, [&] { p.set_value(impl_->client->Stats()); });
  return f.get();
}

}  // namespace payorch::payex
