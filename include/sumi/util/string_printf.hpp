#pragma once
// printf formatting into a std::string, for text that goes through something other than stdout (a progress
// bar's write, an error message). std::format is not in the compilers this library supports.
#include <cstdarg>
#include <cstdio>
#include <stdexcept>
#include <string>

namespace sumi::util {

[[gnu::format(printf, 1, 2)]] inline std::string string_printf(const char* format, ...) {
  std::va_list args;
  va_start(args, format);
  std::va_list sizing;
  va_copy(sizing, args);
  const int length = std::vsnprintf(nullptr, 0, format, sizing);
  va_end(sizing);
  if (length < 0) {
    va_end(args);
    throw std::runtime_error(std::string("string_printf: cannot format '") + format + "'");
  }
  std::string text;
  if (length > 0) {
    text.resize(static_cast<std::size_t>(length));
    std::vsnprintf(text.data(), text.size() + 1, format, args);
  }
  va_end(args);
  return text;
}

}  // namespace sumi::util
