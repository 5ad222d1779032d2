#pragma once
// JSON run summaries and configs on disk: written atomically so a crashed run never leaves half a file.
#include <filesystem>
#include <nlohmann/json.hpp>
#include <stdexcept>
#include <string>

#include "sumi/util/atomic_file.hpp"
#include "sumi/util/read_file.hpp"

namespace sumi::util {

// Pretty-prints `value` (indent spaces, trailing newline) and replaces `path` atomically. Invalid UTF-8 in
// strings is replaced with U+FFFD instead of throwing, so a stray byte in a label cannot lose a summary.
inline void write_json_atomically(const std::filesystem::path& path, const nlohmann::json& value,
                                  int indent = 2) {
  std::string text = value.dump(indent, ' ', false, nlohmann::json::error_handler_t::replace);
  text += '\n';
  write_file_atomically(path, text);
}

// Parses a JSON file; the error message names the path (missing file or malformed content).
inline nlohmann::json read_json_file(const std::filesystem::path& path) {
  const std::string text = read_file_text(path, "JSON file");
  try {
    return nlohmann::json::parse(text);
  } catch (const nlohmann::json::exception& error) {
    throw std::runtime_error("cannot parse JSON file '" + path.string() + "': " + error.what());
  }
}

}  // namespace sumi::util
