#pragma once
// Reads a whole file into memory, with errors that name the file and what it was meant to be.
#include <filesystem>
#include <fstream>
#include <sstream>
#include <stdexcept>
#include <string>
#include <system_error>

namespace sumi::util {

// The bytes of `path`; `kind` ("CSV file", "JSON file") names what was expected in the errors. A folder is
// refused up front: reading one fails with a stream error that names nothing.
inline std::string read_file_text(const std::filesystem::path& path, const std::string& kind) {
  std::error_code error;
  if (std::filesystem::is_directory(path, error))
    throw std::runtime_error("'" + path.string() + "' is a folder, not a " + kind);
  std::ifstream in(path, std::ios::binary);
  if (!in) throw std::runtime_error("cannot open " + kind + " '" + path.string() + "'");
  std::ostringstream content;
  content << in.rdbuf();
  if (in.bad()) throw std::runtime_error("cannot read " + kind + " '" + path.string() + "'");
  return content.str();
}

}  // namespace sumi::util
