// amqps:// (issue 14): a private broker node with a TLS listener and a CA this test
// makes (openssl), reached by the bus library, payorchd and payorchctl. A broker
// signed by the configured CA and named by the URL's host is used; one signed by
// another CA, or reached by a name its certificate does not carry, is a clear
// start-up error (payorchd exits 2, a configuration error; payorchctl 1), not a
// retry loop. The broker requires a client certificate: sent when configured.
#include <gtest/gtest.h>

#include <cstdlib>
#include <filesystem>
#include <fstream>
#include <sstream>

#include "bus/topology.hpp"
#include "kit/kit.hpp"

namespace payorch {
namespace {

using namespace std::chrono_literals;
namespace fs = std::filesystem;

// Runs a shell command; throws with its output when it fails.
void Run(const std::string& command) {
  const std::string cmd = command + " >/tmp/payorch-tls-cmd.log 2>&1";
  if (std::system(cmd.c_str()) != 0) {
    std::ifstream f("/tmp/payorch-tls-cmd.log");
    std::stringstream s;
    s << f.rdbuf();
    throw std::runtime_error("failed: " + command + "\n" + s.str());
  }
}


// A CA, the broker's certificate for DNS name "localhost" only, a client
// certificate, all signed by it; and another CA that signed nothing here.
void MakeCertificates(const fs::path& d) {
  const std::string dir = d.string();
  auto ca = [&](const std::string& name) {
    Run("openssl req -x509 -newkey rsa:2048 -nodes -days 2 -subj /CN=" + name + " -keyout " + dir +
        "/" + name + ".key -out " + dir + "/" + name + ".pem");
  };
  ca("ca");
  ca("other-ca");
  auto leaf = [&](const std::string& name, const std::string& ext) {
    Run("openssl req -newkey rsa:2048 -nodes -subj /CN=" + name + " -keyout " + dir + "/" + name +
        ".key -out " + dir + "/" + name + ".csr");
    std::ofstream(d / (name + ".ext")) << ext << "\n";
    Run("openssl x509 -req -in " + dir + "/" + name + ".csr -CA " + dir + "/ca.pem -CAkey " + dir +
        "/ca.key -CAcreateserial -days 2 -extfile " + dir + "/" + name + ".ext -out " + dir + "/" +
        name + ".pem");
  };
  leaf("server", "subjectAltName=DNS:localhost\nextendedKeyUsage=serverAuth");
  leaf("client", "extendedKeyUsage=clientAuth");
  for (const char* f : {"ca.pem", "server.pem", "server.key"})
    fs::permissions(d / f, fs::perms::owner_read | fs::perms::group_read | fs::perms::others_read,
                    fs::perm_options::add);
}

class TlsBroker {
 public:
  TlsBroker() {
    dir_ = fs::temp_directory_path() / ("payorch-tls-" + kit::RandomSuffix());
    fs::create_directories(dir_ / "certs");
    MakeCertificates(dir_ / "certs");
    tls_port_ = kit::FreeLoopbackPort();
    Run(Env() + " bash " + std::string(PAYORCH_SOURCE_DIR) + "/scripts/broker start");
  }
  ~TlsBroker() {
    try {
      Run(Env() + " bash " + std::string(PAYORCH_SOURCE_DIR) + "/scripts/broker stop");
    } catch (...) {
    }
    fs::remove_all(dir_);
  }
  std::string Env() const {
    return "PAYORCH_BROKER_DIR=" + (dir_ / "node").string() +
           " PAYORCH_BROKER_TLS_REQUIRE_CERT=true" +
           " PAYORCH_BROKER_TLS_PORT=" + std::to_string(tls_port_) +
           " PAYORCH_BROKER_TLS_DIR=" + (dir_ / "certs").string();
  }
  std::string Url(const std::string& host) const {
    return "amqps://guest:guest@" + host + ":" + std::to_string(tls_port_) + "/";
  }
  std::string Cert(const std::string& name) const { return (dir_ / "certs" / name).string(); }
  const fs::path& dir() const { return dir_; }

 private:
  fs::path dir_;
  uint16_t tls_port_ = 0;
};

class TlsTest : public ::testing::Test {
 protected:
  static void SetUpTestSuite() { broker_ = new TlsBroker(); }
  static void TearDownTestSuite() {
    delete broker_;
    broker_ = nullptr;
  }
  bus::BusConfig Config(const std::string& host, const std::string& ca) {
    bus::BusConfig c = kit::UniqueBusConfig(broker_->Url(host), kit::RandomSuffix());
    c.tls_ca_file = broker_->Cert(ca);
    c.tls_cert_file = broker_->Cert("client.pem");
    c.tls_key_file = broker_->Cert("client.key");
    c.connect_timeout = 5s;
    return c;
  }
  static TlsBroker* broker_;
};
TlsBroker* TlsTest::broker_ = nullptr;

TEST_F(TlsTest, ABrokerSignedByTheCaAndNamedByTheUrlIsUsed) {
  bus::BusConfig c = Config("localhost", "ca.pem");
  ASSERT_NO_THROW(bus::DeclareTopology(c));
  bus::Admin admin(c, "tls test");
  EXPECT_EQ(admin.QueueDepth(c.topology.orders_queue), 0u);
  admin.DeleteTopology(c.topology);
}

// This broker requires a client certificate: one is sent only when configured.
TEST_F(TlsTest, WithoutTheClientCertificateTheHandshakeIsRefused) {
  bus::BusConfig c = Config("localhost", "ca.pem");
  c.tls_cert_file.clear();
  c.tls_key_file.clear();
  try {
    bus::Admin admin(c, "tls test without a client certificate");
    FAIL() << "a broker that requires a client certificate accepted none";
  } catch (const bus::TlsError& e) {
    FAIL() << "not a CA or host name problem: " << e.what();
  } catch (const bus::BusError& e) {
    EXPECT_NE(std::string(e.what()).find("client certificate"), std::string::npos) << e.what();
  }
}

TEST_F(TlsTest, AnotherCaIsAClearErrorNamingTheFile) {
  const bus::BusConfig c = Config("localhost", "other-ca.pem");
  try {
    bus::DeclareTopology(c);
    FAIL() << "connected to a broker the CA did not sign";
  } catch (const bus::TlsError& e) {
    const std::string what = e.what();
    EXPECT_NE(what.find("not signed by a CA in bus.tls_ca_file " + c.tls_ca_file + ","),
              std::string::npos)
        << what;
  }
}

TEST_F(TlsTest, AHostTheCertificateDoesNotNameIsAClearError) {
  const bus::BusConfig c = Config("127.0.0.1", "ca.pem");  // it names "localhost" only
  try {
    bus::Admin admin(c, "tls test");
    FAIL() << "connected by a name the certificate does not carry";
  } catch (const bus::TlsError& e) {
    EXPECT_NE(std::string(e.what()).find("does not name the host '127.0.0.1'"), std::string::npos)
        << e.what();
  }
}

// payorchd and payorchctl over amqps: a wrong CA stops payorchd at start (exit 2)
// with the reason; the right one serves; payorchctl reads the dead-letter queue.
TEST_F(TlsTest, PayorchdAndPayorchctlUseIt) {
  const std::string suffix = kit::RandomSuffix();
  const bus::BusConfig c = Config("localhost", "ca.pem");
  const fs::path work = broker_->dir() / ("payorchd-" + suffix);
  fs::create_directories(work);
  std::vector<std::string> sets = {
      "--set", "bus.url=" + c.url,
      "--set", "bus.tls_ca_file=" + broker_->Cert("other-ca.pem"),
      "--set", "bus.tls_cert_file=" + c.tls_cert_file,
      "--set", "bus.tls_key_file=" + c.tls_key_file,
      "--set", "bus.topology.orders_queue=" + c.topology.orders_queue,
      "--set", "bus.topology.dead_letter_queue=" + c.topology.dead_letter_queue,
      "--set", "store.path=" + (work / "payorch.db").string(),
      "--set", "http.port=0",
      "--set", "admin.port=0",
      "--set", "http.callback_base_url=http://127.0.0.1:1/cb",
      "--set", "payex.base_url=http://127.0.0.1:9",
      "--set", "payex.allow_plain_http=true"};
  std::vector<std::string> argv = {kit::FindBinary("payorchd"), "--config",
                                   std::string(PAYORCH_SOURCE_DIR) + "/config/payorch.toml"};
  argv.insert(argv.end(), sets.begin(), sets.end());
  const std::string log = (work / "payorchd.log").string();
  kit::Process refused = kit::Process::Start(argv, kit::DaemonEnvironment(), log);
  // A configuration error (exit 2): restarting it would only fail again.
  EXPECT_EQ(refused.Wait(30s), std::optional<int>(2)) << kit::ReadFile(log);
  EXPECT_NE(kit::ReadFile(log).find("not signed by a CA in bus.tls_ca_file"), std::string::npos)
      << kit::ReadFile(log);

  // The right CA: it serves (ready file written), and payorchctl talks to the broker.
  for (std::string& a : argv)
    if (a == "bus.tls_ca_file=" + broker_->Cert("other-ca.pem"))
      a = "bus.tls_ca_file=" + broker_->Cert("ca.pem");
  argv.push_back("--ready-file");
  argv.push_back((work / "ready").string());
  kit::Process served = kit::Process::Start(argv, kit::DaemonEnvironment(), log);
  ASSERT_TRUE(kit::WaitFor([&] { return fs::exists(work / "ready"); }, 30s)) << kit::ReadFile(log);

  std::vector<std::string> ctl = {kit::FindBinary("payorchctl"), "--config",
                                  std::string(PAYORCH_SOURCE_DIR) + "/config/payorch.toml"};
  for (size_t i = 0; i < sets.size(); i += 2)
    if (sets[i + 1].rfind("bus.", 0) == 0 || sets[i + 1].rfind("store.", 0) == 0) {
      ctl.push_back("--set");
      ctl.push_back(sets[i + 1] == "bus.tls_ca_file=" + broker_->Cert("other-ca.pem")
                        ? "bus.tls_ca_file=" + broker_->Cert("ca.pem")
                        : sets[i + 1]);
    }
  ctl.push_back("dlq");
  ctl.push_back("list");
  const std::string ctl_log = (work / "ctl.log").string();
  kit::Process listed = kit::Process::Start(ctl, {}, ctl_log);
  EXPECT_EQ(listed.Wait(30s), std::optional<int>(0)) << kit::ReadFile(ctl_log);
  served.Signal(SIGTERM);
  EXPECT_EQ(served.Wait(30s), std::optional<int>(0)) << kit::ReadFile(log);
  bus::Admin admin(c, "tls test cleanup");
  admin.DeleteTopology(c.topology);
}

}  // namespace
}  // namespace payorch
