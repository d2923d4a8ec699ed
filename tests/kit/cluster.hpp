// A private RabbitMQ cluster for one test (issue 13): scripts/cluster with a
// directory of its own, started by the constructor and stopped, its data removed,
// by the destructor. Tests that use one run alone (ctest RUN_SERIAL): three Erlang
// VMs take the machine, and the script picks the first free ports.
#pragma once

#include <string>
#include <vector>

namespace payorch::kit {

class Cluster {
 public:
  // Throws std::runtime_error with the script's output when the cluster does not
  // come up.
  explicit Cluster(int nodes = 3);
  ~Cluster();
  Cluster(const Cluster&) = delete;
  Cluster& operator=(const Cluster&) = delete;

  // Node i's URL (1-based: urls()[i - 1]) and all of them as bus.url takes them.
  const std::vector<std::string>& urls() const { return urls_; }
  std::string Url() const;

  // One node down and up again (1-based); throw with the script's output on failure.
  void StopNode(int i);
  void StartNode(int i);

 private:
  std::string Script(const std::string& args) const;  // runs it; throws unless it exits 0
  void Stop() noexcept;                                // the nodes, then the directory

  std::string dir_;
  int nodes_;
  std::vector<std::string> urls_;
};

}  // namespace payorch::kit
