#pragma once
// Text as error messages show it: text read from a file (CSV cells, safetensors names, metadata), and nouns
// with their article.
#include <cstddef>
#include <string>
#include <string_view>

namespace sumi::util {

// Text read from a file, fit for an error message: control bytes (a NUL would end the message early) shown
// as \xNN, and at most `limit` bytes of it followed by "...".
inline std::string printable(std::string_view text, std::size_t limit = 120) {
  std::string shown;
  for (std::size_t i = 0; i < text.size() && i < limit; ++i) {
    const auto byte = static_cast<unsigned char>(text[i]);
    if (byte < 0x20 || byte == 0x7f) {
      constexpr char digits[] = "0123456789abcdef";
      shown += {'\\', 'x', digits[byte >> 4], digits[byte & 15]};
    } else {
      shown += char(byte);
    }
  }
  if (text.size() > limit) shown += "...";
  return shown;
}

// "a CSV file", "an IDX file": the indefinite article by the first letter.
inline std::string with_article(std::string_view noun) {
  const bool vowel = !noun.empty() && std::string_view("AEIOUaeiou").find(noun[0]) != std::string_view::npos;
  return (vowel ? "an " : "a ") + std::string(noun);
}

}  // namespace sumi::util
