// The engine's clock on Asio: wall and steady time, work posted to the io_context
// and steady_timers. Thread: the io_context's one thread (Post from any thread).
// Errors: none.
#pragma once

#include <boost/asio/any_io_executor.hpp>

#include "engine/ports.hpp"

namespace payorch::runtime {

class AsioClock : public engine::Clock {
 public:
  explicit AsioClock(boost::asio::any_io_executor executor) : executor_(executor) {}
  domain::Time Now() const override;
  engine::Steady Monotonic() const override;
  void Post(std::function<void()> fn) override;
  std::unique_ptr<engine::Timer> MakeTimer() override;

 private:
  boost::asio::any_io_executor executor_;
};

}  // namespace payorch::runtime
