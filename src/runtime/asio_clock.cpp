#include "runtime/asio_clock.hpp"

#include <chrono>

#include <boost/asio/post.hpp>
#include <boost/asio/steady_timer.hpp>

namespace payorch::runtime {

namespace asio = boost::asio;

namespace {

class AsioTimer : public engine::Timer {
 public:
  explicit AsioTimer(asio::any_io_executor ex) : timer_(ex) {}
  // Re-arming cancels the wait before (its handler sees operation_aborted).
  void Arm(std::chrono::milliseconds delay, std::function<void()> fn) override {
    timer_.expires_after(delay);
    timer_.async_wait([fn = std::move(fn)](boost::system::error_code ec) {
      if (!ec) fn();
    });
  }
  void Cancel() override { timer_.cancel(); }

 private:
  asio::steady_timer timer_;
};

}  // namespace

domain::Time AsioClock::Now() const {
  return std::chrono::time_point_cast<std::chrono::milliseconds>(std::chrono::system_clock::now());
}

engine::Steady AsioClock::Monotonic() const {
  return std::chrono::steady_clock::now().time_since_epoch();
}

void AsioClock::Post(std::function<void()> fn) {
  asio::post(executor_, std::move(fn));
}

std::unique_ptr<engine::Timer> AsioClock::MakeTimer() {
  return std::make_unique<AsioTimer>(executor_);
}

}  // namespace payorch::runtime
