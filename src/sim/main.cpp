// payex-sim: the PayEx Vipps simulator as a process. Prints its address on stdout
// once listening (tests and scripts read the port from there or --port-file) and
// runs until SIGINT or SIGTERM. A bad configuration exits 2 with a message.
#include <cstdio>
#include <iostream>

#include "sim/config.hpp"
#include "sim/server.hpp"

int main(int argc, char** argv) {
  using namespace payorch::sim;
  SimConfig config;
  std::string text;
  try {
    if (!ParseArgs(config, argc, argv, text)) {
      std::cout << text;
      return 0;
    }
  } catch (const std::exception& e) {
    std::cerr << "payex-sim: " << e.what() << "\n";
    return 2;
  }
  try {
    Server server(config);
    server.Run([&](uint16_t port) {
      std::cout << "payex-sim listening on http://" << config.listen << ":" << port << std::endl;
    });
  } catch (const std::exception& e) {
    std::cerr << e.what() << "\n";
    return 1;
  }
  return 0;
}
