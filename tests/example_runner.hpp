#pragma once
// Helpers for the tests that run the example programs end to end.
#include <sys/wait.h>

#include <catch2/catch.hpp>
#include <cstdlib>
#include <filesystem>
#include <fstream>
#include <iterator>
#include <string>

namespace sumi::test {

inline bool fashion_mnist_installed() {
  const char* env = std::getenv("SUMI_DATA");
  return std::filesystem::exists(std::filesystem::path(env ? env : "/usr/share/datasets/fashion-mnist") /
                                 "train-images-idx3-ubyte.gz");
}

inline std::string read_text(const std::filesystem::path& p) {
  std::ifstream in(p);
  return {std::istreambuf_iterator<char>(in), {}};
}

// Runs the built example `program` (a name under SUMI_EXAMPLES_DIR) with `args`, in the folder `cwd` when one
// is given and with the `environment` assignments ("NAME=value ...") added, its output going to `log`, and
// returns its exit status; a failing run's output goes into the test report.
inline int run_example(const std::string& program, const std::string& args, const std::filesystem::path& log,
                       const std::filesystem::path& cwd = {}, const std::string& environment = {}) {
  std::string command;
  if (!cwd.empty()) command += "cd '" + cwd.string() + "' && ";
  if (!environment.empty()) command += "env " + environment + " ";
  command += std::string(SUMI_EXAMPLES_DIR) + "/" + program + " " + args + " > " + log.string() + " 2>&1";
  const int status = std::system(command.c_str());
  const int code = WIFEXITED(status) ? WEXITSTATUS(status) : -1;
  if (code != 0) UNSCOPED_INFO(program << " " << args << " exited with " << code << ":\n" << read_text(log));
  return code;
}

}  // namespace sumi::test
