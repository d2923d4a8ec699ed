// The broker is stopped and started again (scripts/broker stop/start) in the middle
// of a stream of order events: the consumer and the publisher notice, reconnect by
// themselves, and every message the publisher saw confirmed is delivered. Runs
// alone (RUN_SERIAL): it takes the broker away from every other test.
#include <gtest/gtest.h>

#include <array>
#include <atomic>
#include <cstdio>
#include <future>
#include <set>

#include "bus_test_util.hpp"

namespace payorch::bus::testing {
namespace {

using namespace std::chrono_literals;

// Runs a command, returns its exit status and stdout.
std::pair<int, std::string> Shell(const std::string& command) {
  std::string out;
  FILE* pipe = popen((command + " 2>&1").c_str(), "r");
  if (!pipe) return {-1, ""};
  std::array<char, 512> buf;
  while (fgets(buf.data(), buf.size(), pipe)) out += buf.data();
  int status = pclose(pipe);
  return {WIFEXITED(status) ? WEXITSTATUS(status) : -1, out};
}

const std::string kBroker = std::string(PAYORCH_SOURCE_DIR) + "/scripts/broker";

class BrokerRestartTest : public BusTest {
 protected:
  void TearDown() override {
    // Whatever happened, leave a running broker behind for the tests after us.
    if (Shell(kBroker + " status").first != 0) Shell(kBroker + " start");
    // The admin's connection died with the broker: a new one cleans up.
    try {
      if (admin_) admin_ = std::make_unique<Admin>(config_, "payorch test admin");
    } catch (const std::exception& e) {
      ADD_FAILURE() << "reconnecting to clean up: " << e.what();
      admin_.reset();
    }
    BusTest::TearDown();
  }
};

TEST_F(BrokerRestartTest, ConsumerAndPublisherResumeAndNoConfirmedMessageIsLost) {
  auto [status_rc, status_out] = Shell(kBroker + " status");
  ASSERT_EQ(status_rc, 0) << "scripts/broker status: " << status_out;
  ASSERT_NE(status_out.find(url_), std::string::npos)
      << "the broker at " << url_ << " is not the one scripts/broker manages (" << status_out
      << "); this test must restart it";

  ASSERT_NO_THROW(DeclareTopology(config_));
  std::mutex mutex;
  std::set<std::string> delivered;
  size_t deliveries = 0;
  std::atomic<bool> consumer_lost{false}, publisher_lost{false};
  Consumer* consumer_ptr = nullptr;
  Consumer consumer(
      config_,
      [&](Delivery d) {
        {
          std::lock_guard lock(mutex);
          delivered.insert(d.message_id);
          ++deliveries;
        }
        consumer_ptr->Ack(d.generation, d.delivery_tag);  // "committed": ack at once
      },
      [&](const LinkStatus& s) {
        if (!s.connected && s.connects > 0) consumer_lost = true;
      });
  consumer_ptr = &consumer;
  Publisher publisher(config_, [&](const LinkStatus& s) {
    if (!s.connected && s.connects > 0) publisher_lost = true;
  });
  consumer.Start();
  publisher.Start();
  ASSERT_TRUE(WaitFor([&] { return consumer.Status().connected && publisher.Status().connected; }));

  // The outbox relay's way: publish a window, wait for the results, publish again
  // whatever did not get a confirm. Paced, so that the stream is still flowing
  // when the broker goes away and when it comes back.
  constexpr int kWindow = 20;
  std::atomic<bool> finish{false};
  std::atomic<int> confirmed{0};
  std::atomic<int> retries{0};
  std::set<std::string> confirmed_ids;
  auto event = OrderSamples(suffix_)[2];
  std::thread producer([&] {
    for (int start = 0; !finish; start += kWindow) {
      std::vector<int> todo;
      for (int i = start; i < start + kWindow; ++i) todo.push_back(i);
      while (!todo.empty()) {
        std::vector<std::pair<int, std::future<PublishResult>>> pending;
        for (int i : todo) {
          domain::OrderEvent e = event;
          e.event_id = "restart-" + std::to_string(i);
          pending.emplace_back(i, publisher.Publish(OrderMessage(config_, e, false)));
        }
        std::vector<int> again;
        for (auto& [i, f] : pending) {
          if (f.get().Ok()) {
            std::lock_guard lock(mutex);
            confirmed_ids.insert("restart-" + std::to_string(i));
            ++confirmed;
          } else {
            again.push_back(i);
          }
        }
        if (!again.empty()) {
          retries += static_cast<int>(again.size());
          std::this_thread::sleep_for(50ms);  // the relay's own backoff, not a test wait
        }
        todo.swap(again);
      }
      std::this_thread::sleep_for(10ms);  // pacing the load, at most 2000 messages/s
    }
  });

  ASSERT_TRUE(WaitFor([&] { return confirmed >= 300; }, 60s));
  auto [stop_rc, stop_out] = Shell(kBroker + " stop");
  ASSERT_EQ(stop_rc, 0) << stop_out;
  EXPECT_TRUE(WaitFor([&] { return consumer_lost && publisher_lost; }, 30s))
      << "consumer lost=" << consumer_lost << " publisher lost=" << publisher_lost;
  EXPECT_FALSE(consumer.Status().connected);
  EXPECT_FALSE(consumer.Status().last_error.empty());
  auto [start_rc, start_out] = Shell(kBroker + " start");
  ASSERT_EQ(start_rc, 0) << start_out;
  int at_restart = confirmed;
  bool resumed = WaitFor([&] { return confirmed >= at_restart + 300; }, 60s);
  finish = true;
  producer.join();
  ASSERT_TRUE(resumed) << "publishing did not resume after the restart";
  EXPECT_GT(retries.load(), 0) << "the restart did not interrupt the stream";
  bool all = WaitFor(
      [&] {
        std::lock_guard lock(mutex);
        return std::includes(delivered.begin(), delivered.end(), confirmed_ids.begin(),
                             confirmed_ids.end());
      },
      60s);
  std::lock_guard lock(mutex);
  std::vector<std::string> missing;
  std::set_difference(confirmed_ids.begin(), confirmed_ids.end(), delivered.begin(),
                      delivered.end(), std::back_inserter(missing));
  EXPECT_TRUE(all) << missing.size() << " confirmed messages never delivered, e.g. "
                   << (missing.empty() ? "" : missing.front());
  EXPECT_TRUE(consumer.Status().connected);
  EXPECT_TRUE(publisher.Status().connected);
  EXPECT_GE(consumer.Status().generation, 2u);
  EXPECT_GE(publisher.Status().generation, 2u);
  std::printf("delivered %zu distinct of %d confirmed (%zu deliveries, %d publish retries)\n",
              delivered.size(), confirmed.load(), deliveries, retries.load());
}

}  // namespace
}  // namespace payorch::bus::testing
