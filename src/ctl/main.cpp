// payorchctl: the operator's CLI (src/ctl/ctl.hpp). Usage: payorchctl --help.
#include "ctl/ctl.hpp"

int main(int argc, char** argv) {
  std::vector<std::string> args(argv + 1, argv + argc);
  payorch::ctl::Io io = payorch::ctl::ProcessIo();
  return payorch::ctl::Main(args, io);
}
