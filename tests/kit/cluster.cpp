#include "kit/cluster.hpp"

#include <sys/wait.h>

#include <array>
#include <cstdio>
#include <filesystem>
#include <sstream>
#include <stdexcept>

#include "kit/kit.hpp"

namespace payorch::kit {

Cluster::Cluster(int nodes) : nodes_(nodes) {
  dir_ = (std::filesystem::temp_directory_path() / ("payorch-cluster-" + RandomSuffix())).string();
  std::filesystem::create_directories(dir_);
  try {
    Script("start");
    std::istringstream lines(Script("urls"));
    for (std::string line; std::getline(lines, line);)
      if (line.rfind("amqp://", 0) == 0) urls_.push_back(line);
    if (static_cast<int>(urls_.size()) != nodes_)
      throw std::runtime_error("scripts/cluster urls gave " + std::to_string(urls_.size()) +
                               " URLs for " + std::to_string(nodes_) + " nodes");
  } catch (...) {
    Stop();  // what did start must not outlive the test
    throw;
  }
}

void Cluster::Stop() noexcept {
  try {
    Script("stop");
  } catch (const std::exception& e) {
    std::fprintf(stderr, "stopping the test cluster: %s\n", e.what());
  }
  std::error_code ec;
  std::filesystem::remove_all(dir_, ec);
}

Cluster::~Cluster() { Stop(); }

std::string Cluster::Url() const {
  std::string out;
  for (const auto& u : urls_) out += (out.empty() ? "" : ",") + u;
  return out;
}

void Cluster::StopNode(int i) { Script("node " + std::to_string(i) + " stop"); }
void Cluster::StartNode(int i) { Script("node " + std::to_string(i) + " start"); }

std::string Cluster::Script(const std::string& args) const {
  const std::string command = "PAYORCH_CLUSTER_DIR='" + dir_ + "' PAYORCH_CLUSTER_NODES=" +
                              std::to_string(nodes_) + " '" + std::string(PAYORCH_SOURCE_DIR) +
                              "/scripts/cluster' " + args + " 2>&1";
  FILE* pipe = popen(command.c_str(), "r");
  if (!pipe) throw std::runtime_error("cannot run scripts/cluster " + args);
  std::string out;
  std::array<char, 512> buf;
  while (fgets(buf.data(), buf.size(), pipe)) out += buf.data();
  const int status = pclose(pipe);
  if (!WIFEXITED(status) || WEXITSTATUS(status) != 0)
    throw std::runtime_error("scripts/cluster " + args + " failed:\n" + out);
  return out;
}

}  // namespace payorch::kit
