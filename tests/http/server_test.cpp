// The server over real TCP on 127.0.0.1:0. The server runs on an io_context thread
// of the fixture; the test thread is the client and reads server state through
// OnIo (posted to that thread), as the server is single-threaded by contract.
#include "http/server.hpp"

#include <atomic>
#include <future>
#include <thread>

#include <gtest/gtest.h>
#include <boost/asio/executor_work_guard.hpp>
#include <boost/asio/io_context.hpp>
#include <boost/asio/post.hpp>

#include "http/callback_token.hpp"
#include "http/callbacks.hpp"
#include "test_client.hpp"

namespace payorch::http {
namespace {

namespace asio = boost::asio;
using namespace payorch::http::testing;

class ServerTest : public ::testing::Test {
 protected:
  void TearDown() override { Shutdown(); }

  uint16_t Start(Handler handler, ServerOptions options = {}) {
    options.log = logs_.Sink();
    server_ = std::make_unique<Server>(io_.get_executor(), std::move(options), std::move(handler));
    uint16_t port = server_->Start();
    thread_ = std::thread([this] { io_.run(); });
    return port;
  }

  // Runs f on the server's thread and returns its result.
  template <class F>
  auto OnIo(F f) -> decltype(f()) {
    std::packaged_task<decltype(f())()> task(std::move(f));
    auto result = task.get_future();
    asio::post(io_, [&task] { task(); });
    return result.get();
  }

  Server::Stats Stats() {
    return OnIo([this] { return server_->stats(); });
  }

  void Shutdown() {
    if (!server_) return;
    OnIo([this] { server_->Stop(); });
    work_.reset();
    io_.stop();
    thread_.join();
    server_.reset();
  }

  LogCapture logs_;  // outlives io_: sessions hold the log sink
  asio::io_context io_{1};
  asio::executor_work_guard<asio::io_context::executor_type> work_ = asio::make_work_guard(io_);
  std::unique_ptr<Server> server_;
  std::thread thread_;
};

// Echoes what the server made of the request.
void Echo(Request r, Reply reply) {
  Response out;
  out.body = "method=" + r.method + "\npath=" + r.path + "\ntarget=" + r.target + "\n";
  for (const auto& [k, v] : r.query) out.body += "query:" + k + "=" + v + "\n";
  out.body +=
      "content_type=" + r.content_type + "\nremote=" + r.remote_address + "\nbody=" + r.body;
  out.headers.emplace_back("X-Echo", "yes");
  out.headers.emplace_back("Content-Length", "999");           // the server's: ignored
  out.headers.emplace_back("X-Evil", "a\r\nSet-Cookie: x=1");  // injection: dropped
  reply(std::move(out));
}

TEST_F(ServerTest, RoundTripDecodesTheRequestAndKeepsTheConnectionAlive) {
  uint16_t port = Start(Echo);
  ASSERT_NE(port, 0);
  Client c(port);
  ASSERT_TRUE(c.connected()) << c.connect_error();

  ASSERT_TRUE(c.Send(MakeRequest("POST", "/a%20b/c+d?x=1+2&y=%C3%A6&flag&x=3", "hello",
                                 {"Content-Type: application/json"})));
  RawResponse r1 = c.Read();
  ASSERT_EQ(r1.status, 200) << r1.error;
  EXPECT_NE(r1.body.find("method=POST\n"), std::string::npos) << r1.body;
  EXPECT_NE(r1.body.find("path=/a b/c+d\n"), std::string::npos) << r1.body;
  EXPECT_NE(r1.body.find("target=/a%20b/c+d?x=1+2&y=%C3%A6&flag&x=3\n"), std::string::npos);
  EXPECT_NE(r1.body.find("query:flag=\nquery:x=1 2\nquery:x=3\nquery:y=\xC3\xA6\n"),
            std::string::npos)
      << r1.body;
  EXPECT_NE(r1.body.find("content_type=application/json\n"), std::string::npos);
  EXPECT_NE(r1.body.find("remote=127.0.0.1\n"), std::string::npos);
  EXPECT_NE(r1.body.find("body=hello"), std::string::npos);
  EXPECT_EQ(r1.header("content-length"), std::to_string(r1.body.size()));
  EXPECT_EQ(r1.header("x-echo"), "yes");
  EXPECT_FALSE(r1.has("x-evil"));
  EXPECT_FALSE(r1.has("set-cookie"));
  EXPECT_FALSE(r1.has("connection")) << r1.head;

  // Same connection, second request.
  ASSERT_TRUE(c.Send(MakeRequest("GET", "/second")));
  RawResponse r2 = c.Read();
  ASSERT_EQ(r2.status, 200) << r2.error;
  EXPECT_NE(r2.body.find("path=/second\n"), std::string::npos);

  // The client asks to close: the server says so and closes.
  ASSERT_TRUE(c.Send(MakeRequest("GET", "/third", "", {"Connection: close"})));
  RawResponse r3 = c.Read();
  ASSERT_EQ(r3.status, 200) << r3.error;
  EXPECT_EQ(r3.header("connection"), "close");
  EXPECT_TRUE(c.WaitClosed(5s));

  auto stats = Stats();
  EXPECT_EQ(stats.accepted, 1u);
  EXPECT_EQ(stats.requests, 3u);
  EXPECT_EQ(stats.rejected, 0u);
  EXPECT_TRUE(
      logs_.Contains("event=http.request server=http method=POST path=/a%20b/c+d "
                     "status=200 ms="))
      << logs_.Joined();
}

// payorchd turns the line per request off below debug level: the request is answered
// and counted, the server's other events still reach the log.
TEST_F(ServerTest, RequestLinesCanBeTurnedOffAndOtherEventsStillLog) {
  ServerOptions options;
  options.log_requests = false;
  uint16_t port = Start(Echo, options);
  Client c(port);
  ASSERT_TRUE(c.Send(MakeRequest("GET", "/quiet", "", {"Connection: close"})));
  RawResponse r = c.Read();
  ASSERT_EQ(r.status, 200) << r.error;
  EXPECT_TRUE(c.WaitClosed(5s));
  EXPECT_EQ(Stats().requests, 1u);
  Shutdown();
  EXPECT_FALSE(logs_.Contains("event=http.request")) << logs_.Joined();
  EXPECT_TRUE(logs_.Contains("event=http.listening")) << logs_.Joined();
  EXPECT_TRUE(logs_.Contains("event=http.stop")) << logs_.Joined();
}

TEST_F(ServerTest, Http10ClientWithoutKeepAliveGetsConnectionClose) {
  uint16_t port = Start(Echo);
  Client c(port);
  ASSERT_TRUE(c.Send("GET /old HTTP/1.0\r\n\r\n"));
  RawResponse r = c.Read();
  ASSERT_EQ(r.status, 200) << r.error;
  EXPECT_EQ(r.header("connection"), "close");
  EXPECT_TRUE(r.has("content-length"));
  EXPECT_TRUE(c.WaitClosed(5s));
}

TEST_F(ServerTest, HeadAnswerHasTheLengthButNoBody) {
  uint16_t port = Start([](Request r, Reply reply) {
    Response out;
    out.body = "twelve bytes";
    reply(std::move(out));
  });
  Client c(port);
  ASSERT_TRUE(c.Send(MakeRequest("HEAD", "/h")));
  RawResponse r = c.Read(5s, /*head=*/true);
  ASSERT_EQ(r.status, 200) << r.error;
  EXPECT_EQ(r.header("content-length"), "12");
  // No body bytes follow: the next answer on the connection starts right away.
  ASSERT_TRUE(c.Send(MakeRequest("GET", "/g")));
  RawResponse g = c.Read();
  ASSERT_EQ(g.status, 200) << g.error;
  EXPECT_EQ(g.body, "twelve bytes");
}

TEST_F(ServerTest, AsyncHandlerRepliesLater) {
  std::vector<Reply> pending;  // server thread only
  uint16_t port = Start([&](Request r, Reply reply) { pending.push_back(std::move(reply)); });
  Client c(port);
  ASSERT_TRUE(c.Send(MakeRequest("GET", "/later")));
  ASSERT_TRUE(WaitUntil([&] { return OnIo([&] { return pending.size(); }) == 1; }));
  EXPECT_FALSE(c.Readable());  // nothing is sent before the handler answers

  OnIo([&] {
    Response r;
    r.status = 201;
    r.body = "done later";
    pending[0](std::move(r));
    pending[0](Response{});  // a second call is ignored
  });
  RawResponse r = c.Read();
  ASSERT_EQ(r.status, 201) << r.error;
  EXPECT_EQ(r.body, "done later");
  // The connection stays usable, so the ignored second answer left nothing behind.
  ASSERT_TRUE(c.Send(MakeRequest("GET", "/again")));
  ASSERT_TRUE(WaitUntil([&] { return OnIo([&] { return pending.size(); }) == 2; }));
  OnIo([&] { pending[1](Response{}); });
  RawResponse again = c.Read();
  EXPECT_EQ(again.status, 200) << again.error;
  EXPECT_EQ(again.body, "");
}

TEST_F(ServerTest, ReplyFromAnotherThreadIsCarriedToTheServerThread) {
  std::thread worker;
  uint16_t port = Start([&](Request r, Reply reply) {
    worker = std::thread([reply = std::move(reply)]() mutable {
      Response out;
      out.body = "from a worker";
      reply(std::move(out));
    });
  });
  RawResponse r = Exchange(port, MakeRequest("GET", "/worker"));
  EXPECT_EQ(r.status, 200) << r.error;
  EXPECT_EQ(r.body, "from a worker");
  ASSERT_TRUE(WaitUntil([&] { return OnIo([&] { return worker.joinable(); }); }));
  worker.join();
}

TEST_F(ServerTest, DroppedReplyAnswers500) {
  uint16_t port = Start([](Request, Reply) {});
  RawResponse r = Exchange(port, MakeRequest("GET", "/forgot"));
  EXPECT_EQ(r.status, 500) << r.error;
  EXPECT_TRUE(logs_.Contains("event=http.reply_dropped")) << logs_.Joined();
}

TEST_F(ServerTest, HandlerExceptionBecomes500AndIsLogged) {
  uint16_t port = Start([](Request, Reply) { throw std::runtime_error("boom in handler"); });
  RawResponse r = Exchange(port, MakeRequest("GET", "/throws"));
  EXPECT_EQ(r.status, 500) << r.error;
  EXPECT_EQ(r.body.find("boom"), std::string::npos);  // not shown to the client
  EXPECT_TRUE(logs_.Contains("event=http.handler_error server=http method=GET path=/throws"))
      << logs_.Joined();
  EXPECT_TRUE(logs_.Contains("boom in handler"));
  EXPECT_FALSE(logs_.Contains("reply_dropped"));
  // The server goes on serving.
  EXPECT_EQ(Exchange(port, MakeRequest("GET", "/again")).status, 500);
}

TEST_F(ServerTest, OversizedBodyByContentLengthIs413WithoutReadingIt) {
  std::atomic<int> calls{0};
  ServerOptions o;
  o.max_body_bytes = 1024;
  uint16_t port = Start(
      [&](Request, Reply reply) {
        ++calls;
        reply({});
      },
      o);
  Client c(port);
  // Only the header: the answer must come without the body ever being sent.
  ASSERT_TRUE(c.Send("POST /big HTTP/1.1\r\nHost: x\r\nContent-Length: 100000\r\n\r\n"));
  RawResponse r = c.Read();
  ASSERT_EQ(r.status, 413) << r.error;
  EXPECT_EQ(r.header("connection"), "close");
  EXPECT_TRUE(r.has("content-length"));
  EXPECT_TRUE(c.WaitClosed(5s));
  EXPECT_EQ(calls.load(), 0);
  EXPECT_EQ(Stats().rejected, 1u);
  EXPECT_TRUE(logs_.Contains("method=POST path=/big status=413")) << logs_.Joined();
  EXPECT_TRUE(logs_.Contains("reason=body_too_large")) << logs_.Joined();
}

TEST_F(ServerTest, OversizedBodySentInFullIs413) {
  std::atomic<int> calls{0};
  ServerOptions o;
  o.max_body_bytes = 1024;
  uint16_t port = Start(
      [&](Request r, Reply reply) {
        ++calls;
        Response out;
        out.body = std::to_string(r.body.size());
        reply(std::move(out));
      },
      o);
  // Exactly at the limit: accepted.
  RawResponse at_limit = Exchange(port, MakeRequest("POST", "/ok", std::string(1024, 'a')));
  ASSERT_EQ(at_limit.status, 200) << at_limit.error;
  EXPECT_EQ(at_limit.body, "1024");

  // Header and a 200 KiB body sent at once: the 413 must survive the unread bytes.
  Client c(port);
  ASSERT_TRUE(c.Send(MakeRequest("POST", "/big", std::string(200 * 1024, 'b'))));
  RawResponse r = c.Read();
  ASSERT_EQ(r.status, 413) << r.error;
  EXPECT_TRUE(c.WaitClosed(5s));

  // Chunked, no Content-Length: refused while reading, at the limit.
  std::string chunk(800, 'c');
  std::string chunked = "POST /chunked HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: chunked\r\n\r\n";
  for (int i = 0; i < 3; ++i) chunked += "320\r\n" + chunk + "\r\n";
  chunked += "0\r\n\r\n";
  RawResponse rc = Exchange(port, chunked);
  EXPECT_EQ(rc.status, 413) << rc.error;

  EXPECT_EQ(calls.load(), 1);
  EXPECT_EQ(Stats().rejected, 2u);
}

TEST_F(ServerTest, ExpectContinueGetsA100BeforeTheBody) {
  uint16_t port = Start(Echo);
  Client c(port);
  ASSERT_TRUE(
      c.Send("POST /e HTTP/1.1\r\nHost: x\r\nContent-Length: 5\r\n"
             "Expect: 100-continue\r\n\r\n"));
  RawResponse interim = c.Read();
  ASSERT_EQ(interim.status, 100) << interim.error;
  ASSERT_TRUE(c.Send("12345"));
  RawResponse r = c.Read();
  ASSERT_EQ(r.status, 200) << r.error;
  EXPECT_NE(r.body.find("body=12345"), std::string::npos);
}

TEST_F(ServerTest, GarbageIs400) {
  std::atomic<int> calls{0};
  uint16_t port = Start([&](Request, Reply reply) {
    ++calls;
    reply({});
  });
  Client c(port);
  ASSERT_TRUE(c.Send("HELLO THERE\r\n\r\n"));
  RawResponse r = c.Read();
  ASSERT_EQ(r.status, 400) << r.error;
  EXPECT_EQ(r.header("connection"), "close");
  EXPECT_TRUE(c.WaitClosed(5s));

  // Parsable HTTP, but a target that is not a path.
  EXPECT_EQ(Exchange(port, "GET * HTTP/1.1\r\nHost: x\r\n\r\n").status, 400);
  // A bad percent escape in the path.
  EXPECT_EQ(Exchange(port, MakeRequest("GET", "/a%zzb")).status, 400);
  // Content-Length that is not a number.
  EXPECT_EQ(Exchange(port, "POST / HTTP/1.1\r\nHost: x\r\nContent-Length: ten\r\n\r\n").status,
            400);

  EXPECT_EQ(calls.load(), 0);
  EXPECT_EQ(Stats().rejected, 4u);
  EXPECT_TRUE(logs_.Contains("status=400")) << logs_.Joined();
}

TEST_F(ServerTest, HeaderOverTheLimitIsRefused) {
  std::atomic<int> calls{0};
  ServerOptions o;
  o.max_header_bytes = 1024;
  uint16_t port = Start(
      [&](Request, Reply reply) {
        ++calls;
        reply({});
      },
      o);
  // Just under the limit passes.
  EXPECT_EQ(Exchange(port, MakeRequest("GET", "/", "", {"X-Pad: " + std::string(800, 'p')})).status,
            200);
  RawResponse r = Exchange(port, MakeRequest("GET", "/", "", {"X-Pad: " + std::string(4000, 'p')}));
  EXPECT_TRUE(r.status == 431 || r.status == 400) << r.status << " " << r.error;
  EXPECT_EQ(r.header("connection"), "close");
  EXPECT_EQ(calls.load(), 1);
  EXPECT_EQ(Stats().rejected, 1u);
}

TEST_F(ServerTest, ReadTimeoutDropsASlowClient) {
  ServerOptions o;
  o.read_timeout = std::chrono::milliseconds(200);
  uint16_t port = Start(Echo, o);

  // Half a request, then nothing: dropped without an answer.
  Client slow(port);
  ASSERT_TRUE(slow.Send("GET /slow?token=SLOWSECRET HTTP/1.1\r\nHost: x\r\n"));
  std::string received;
  EXPECT_TRUE(slow.WaitClosed(10s, &received));
  EXPECT_EQ(received, "");

  // Connected and silent: dropped as well.
  Client silent(port);
  ASSERT_TRUE(silent.connected());
  EXPECT_TRUE(silent.WaitClosed(10s));

  ASSERT_TRUE(WaitUntil([&] { return Stats().timeouts == 2; })) << Stats().timeouts;
  EXPECT_TRUE(logs_.Contains("event=http.timeout server=http phase=request")) << logs_.Joined();
  EXPECT_FALSE(logs_.Contains("SLOWSECRET"));
  // A prompt client is still served.
  EXPECT_EQ(Exchange(port, MakeRequest("GET", "/fast")).status, 200);
}

TEST_F(ServerTest, IdleKeepAliveConnectionIsClosedAfterIdleTimeout) {
  ServerOptions o;
  o.idle_timeout = std::chrono::milliseconds(200);
  uint16_t port = Start(Echo, o);
  Client c(port);
  ASSERT_TRUE(c.Send(MakeRequest("GET", "/once")));
  ASSERT_EQ(c.Read().status, 200);
  EXPECT_TRUE(c.WaitClosed(10s));
  ASSERT_TRUE(WaitUntil([&] { return Stats().open_connections == 0; }));
  EXPECT_EQ(Stats().timeouts, 0u);  // an idle close is not a slow client
}

TEST_F(ServerTest, AtTheLimitANewConnectionEvictsTheLongestWaiting) {
  ServerOptions o;
  o.max_connections = 2;
  uint16_t port = Start(Echo, o);
  Client c1(port);
  ASSERT_TRUE(c1.connected());
  ASSERT_TRUE(WaitUntil([&] { return Stats().open_connections == 1; }));
  Client c2(port);
  ASSERT_TRUE(c2.connected());
  ASSERT_TRUE(WaitUntil([&] { return Stats().open_connections == 2; }));

  // c1 has waited longest without a request: it makes room for c3.
  Client c3(port);
  ASSERT_TRUE(c3.connected());
  std::string received;
  EXPECT_TRUE(c1.WaitClosed(5s, &received));
  EXPECT_EQ(received, "");
  ASSERT_TRUE(c3.Send(MakeRequest("GET", "/c3")));
  EXPECT_EQ(c3.Read().status, 200);
  ASSERT_TRUE(c2.Send(MakeRequest("GET", "/c2")));
  EXPECT_EQ(c2.Read().status, 200);
  EXPECT_EQ(Stats().evicted, 1u);
  EXPECT_EQ(Stats().over_limit, 0u);
  EXPECT_EQ(Stats().accepted, 3u);
  EXPECT_TRUE(logs_.Contains("event=http.evicted")) << logs_.Joined();
}

TEST_F(ServerTest, WhenEveryConnectionIsBeingAnsweredANewOneIsClosedAtOnce) {
  ServerOptions o;
  o.max_connections = 2;
  std::vector<Reply> held;  // the server's thread only
  uint16_t port = Start([&](Request, Reply reply) { held.push_back(std::move(reply)); }, o);
  Client c1(port), c2(port);
  ASSERT_TRUE(c1.Send(MakeRequest("GET", "/slow1")) && c2.Send(MakeRequest("GET", "/slow2")));
  ASSERT_TRUE(WaitUntil([&] { return Stats().requests == 2; }));

  Client c3(port);
  ASSERT_TRUE(c3.connected());  // the kernel accepts; the server closes it
  std::string received;
  EXPECT_TRUE(c3.WaitClosed(5s, &received));
  EXPECT_EQ(received, "");
  ASSERT_TRUE(WaitUntil([&] { return Stats().over_limit == 1; }));
  EXPECT_EQ(Stats().evicted, 0u);

  // The two being answered are answered.
  OnIo([&] {
    for (Reply& r : held) r(Response{});
    held.clear();
  });
  EXPECT_EQ(c1.Read().status, 200);
  EXPECT_EQ(c2.Read().status, 200);
  EXPECT_TRUE(logs_.Contains("event=http.over_limit")) << logs_.Joined();
}

// Issue 11: thousands of idle connections must not lock a callback out. They are
// held open by this process (the server's limit is 200); a request on a new
// connection is still answered, and the server never holds more than its limit.
TEST_F(ServerTest, FourThousandIdleConnectionsDoNotLockARequestOut) {
  ServerOptions o;
  o.max_connections = 200;
  uint16_t port = Start(Echo, o);
  std::vector<std::unique_ptr<Client>> idle;
  for (int i = 0; i < 4000; ++i) {
    idle.push_back(std::make_unique<Client>(port));
    ASSERT_TRUE(idle.back()->connected()) << i << ": " << idle.back()->connect_error();
  }
  ASSERT_TRUE(WaitUntil([&] { return Stats().accepted == 4000; }, 30s))
      << Stats().accepted << " accepted";
  // Evicted connections close as their sessions see it.
  EXPECT_TRUE(WaitUntil([&] { return Stats().open_connections <= 200; }))
      << Stats().open_connections;
  EXPECT_GE(Stats().evicted, 3800u);
  for (int round = 0; round < 3; ++round) {
    RawResponse r = Exchange(port, MakeRequest("GET", "/callback", "", {"Connection: close"}));
    EXPECT_EQ(r.status, 200) << r.error;
  }
  // Logged at most about once a second, not once per connection.
  EXPECT_LT(logs_.Count("event=http.evicted"), 100u) << logs_.Count("event=http.evicted");
}

TEST_F(ServerTest, StopClosesIdleConnectionsAndLetsPendingRequestsFinish) {
  std::vector<Reply> pending;  // server thread only
  uint16_t port = Start([&](Request r, Reply reply) {
    if (r.path == "/now") {
      reply({});
    } else {
      pending.push_back(std::move(reply));
    }
  });
  Client idle(port);
  ASSERT_TRUE(idle.Send(MakeRequest("GET", "/now")));
  ASSERT_EQ(idle.Read().status, 200);
  Client half(port);  // still sending its request when Stop comes
  ASSERT_TRUE(half.Send("GET /half HTTP/1.1\r\n"));
  Client busy(port);
  ASSERT_TRUE(busy.Send(MakeRequest("GET", "/later")));
  ASSERT_TRUE(WaitUntil([&] { return OnIo([&] { return pending.size(); }) == 1; }));
  ASSERT_TRUE(WaitUntil([&] { return Stats().open_connections == 3; }));

  OnIo([&] { server_->Stop(); });
  EXPECT_TRUE(idle.WaitClosed(5s));
  std::string received;
  EXPECT_TRUE(half.WaitClosed(5s, &received));
  EXPECT_EQ(received, "");
  Client refused(port);
  EXPECT_FALSE(refused.connected());
  EXPECT_FALSE(busy.Readable());
  EXPECT_TRUE(WaitUntil([&] { return Stats().open_connections == 1; }));

  OnIo([&] {
    Response r;
    r.body = "finished";
    pending[0](std::move(r));
  });
  RawResponse r = busy.Read();
  ASSERT_EQ(r.status, 200) << r.error;
  EXPECT_EQ(r.body, "finished");
  EXPECT_EQ(r.header("connection"), "close");
  EXPECT_TRUE(busy.WaitClosed(5s));
  EXPECT_TRUE(WaitUntil([&] { return Stats().open_connections == 0; }));
}

TEST_F(ServerTest, QueryStringIsNeverLogged) {
  ServerOptions o;
  o.max_body_bytes = 16;
  o.read_timeout = std::chrono::milliseconds(200);
  uint16_t port =
      Start([](Request r, Reply reply) { throw std::runtime_error("handler failed"); }, o);
  const std::string secret = "TOPSECRET_TOKEN_123";
  // Through the handler (500), the 413 path and a bad escape in the query (400).
  EXPECT_EQ(Exchange(port, MakeRequest("POST", "/callbacks/payex/o1?token=" + secret, "{}")).status,
            500);
  EXPECT_EQ(Exchange(port, MakeRequest("POST", "/cb?token=" + secret, std::string(64, 'x'))).status,
            413);
  EXPECT_EQ(Exchange(port, MakeRequest("GET", "/cb?token=" + secret + "%zz")).status, 400);
  // Absolute-form target, with the query.
  EXPECT_EQ(Exchange(port, MakeRequest("GET", "http://h/abs?token=" + secret)).status, 500);
  // A timed-out request whose head arrived.
  Client slow(port);
  ASSERT_TRUE(slow.Send("POST /slow?token=" + secret + " HTTP/1.1\r\nContent-Length: 5\r\n\r\n"));
  EXPECT_TRUE(slow.WaitClosed(10s));
  ASSERT_TRUE(WaitUntil([&] { return Stats().timeouts == 1; }));

  EXPECT_TRUE(logs_.Contains("path=/callbacks/payex/o1 status=500")) << logs_.Joined();
  EXPECT_TRUE(logs_.Contains("path=/abs status=500")) << logs_.Joined();
  EXPECT_TRUE(logs_.Contains("path=/slow")) << logs_.Joined();
  EXPECT_TRUE(logs_.Contains("path=/cb status=413")) << logs_.Joined();
  EXPECT_TRUE(logs_.Contains("path=/cb status=400")) << logs_.Joined();
  for (const auto& line : logs_.Lines()) {
    EXPECT_EQ(line.find(secret), std::string::npos) << line;
    EXPECT_EQ(line.find("token="), std::string::npos) << line;
    EXPECT_EQ(line.find('?'), std::string::npos) << line;
  }
}

TEST_F(ServerTest, StartFailsWithAClearMessage) {
  uint16_t port = Start(Echo);
  // Other servers on the same executor, so on its thread.
  auto start_error = [&](ServerOptions o) {
    return OnIo([&]() -> std::string {
      Server other(io_.get_executor(), o, Echo);
      try {
        other.Start();
      } catch (const std::runtime_error& e) {
        return e.what();
      }
      return "started";
    });
  };
  ServerOptions same_port;
  same_port.port = port;
  std::string what = start_error(same_port);
  EXPECT_NE(what.find("127.0.0.1:" + std::to_string(port)), std::string::npos) << what;
  EXPECT_NE(what.find("in use"), std::string::npos) << what;

  ServerOptions bad_address;
  bad_address.address = "not-an-address";
  what = start_error(bad_address);
  EXPECT_NE(what.find("not-an-address:0"), std::string::npos) << what;

  EXPECT_THROW(OnIo([&] { return server_->Start(); }), std::runtime_error);  // twice
}

// The callback endpoint mounted in the real server: the raw target reaches it, so
// an order id with an encoded '/' is one segment.
TEST_F(ServerTest, CallbackEndpointOverTcp) {
  CallbackOptions co;
  co.secret = "a-secret-of-at-least-32-bytes-length!";
  std::vector<std::string> hints;  // server thread only
  uint16_t port = Start([&](Request r, Reply reply) {
    reply(HandleCallback(r, co, [&](const std::string& id) {
      hints.push_back(id);
      return HintResult::kAccepted;
    }));
  });
  std::string id = "shop/order 42+x";
  std::string url = "/callbacks/payex/" + PercentEncode(id) +
                    "?token=" + PercentEncode(CallbackToken(co.secret, id));
  RawResponse ok =
      Exchange(port, MakeRequest("POST", url, R"({"paymentOrder":{"id":"/psp/paymentorders/1"}})",
                                 {"Content-Type: application/json"}));
  EXPECT_EQ(ok.status, 200) << ok.error;
  EXPECT_EQ(ok.body, "");
  RawResponse forged = Exchange(
      port, MakeRequest("POST", "/callbacks/payex/" + PercentEncode(id) + "?token=xyz", "{}"));
  EXPECT_EQ(forged.status, 401);
  EXPECT_EQ(OnIo([&] { return hints; }), std::vector<std::string>{id});
}

}  // namespace
}  // namespace payorch::http
