#pragma once
// Low-level SVG text building shared by the charts: XML escaping, compact locale-independent numbers,
// text-width estimates for layout, and the document frame.
#include <algorithm>
#include <charconv>
#include <cmath>
#include <cstdint>
#include <stdexcept>
#include <string>
#include <string_view>

namespace sumi::plot::detail {

inline constexpr std::string_view kFontFamily = "DejaVu Sans, Helvetica, Arial, sans-serif";
inline constexpr std::string_view kTextColor = "#262626";
// U+2212 MINUS SIGN: typeset negative tick labels like matplotlib (a hyphen looks too short).
inline constexpr std::string_view kMinusSign = "\xe2\x88\x92";

struct Rect {
  double x = 0, y = 0, width = 0, height = 0;
  double right() const { return x + width; }
  double bottom() const { return y + height; }
};

// Appends `text` as XML character data / attribute value: escapes markup characters, drops control
// characters that XML 1.0 forbids, and replaces invalid UTF-8 with U+FFFD, so any label gives a well-formed
// document.
inline void append_escaped(std::string& out, std::string_view text) {
  static constexpr std::string_view kReplacement = "\xef\xbf\xbd";
  for (std::size_t i = 0; i < text.size();) {
    const auto byte = static_cast<unsigned char>(text[i]);
    if (byte < 0x80) {
      switch (byte) {
        case '&':
          out += "&amp;";
          break;
        case '<':
          out += "&lt;";
          break;
        case '>':
          out += "&gt;";
          break;
        case '"':
          out += "&quot;";
          break;
        case '\'':
          out += "&apos;";
          break;
        default:
          if (byte >= 0x20 || byte == '\t' || byte == '\n' || byte == '\r') out += char(byte);
      }
      ++i;
      continue;
    }
    // Multi-byte sequence: accept only well-formed UTF-8 (no overlongs, surrogates or values past U+10FFFF).
    std::size_t length = byte >= 0xF0 ? 4 : byte >= 0xE0 ? 3 : byte >= 0xC2 ? 2 : 0;
    if (byte > 0xF4) length = 0;
    bool valid = length > 0 && i + length <= text.size();
    for (std::size_t k = 1; valid && k < length; ++k)
      valid = (static_cast<unsigned char>(text[i + k]) & 0xC0) == 0x80;
    if (valid && length >= 3) {
      const auto second = static_cast<unsigned char>(text[i + 1]);
      if (byte == 0xE0 && second < 0xA0) valid = false;   // overlong
      if (byte == 0xED && second >= 0xA0) valid = false;  // surrogate
      if (byte == 0xF0 && second < 0x90) valid = false;   // overlong
      if (byte == 0xF4 && second >= 0x90) valid = false;  // > U+10FFFF
    }
    // U+FFFE and U+FFFF (EF BF BE/BF) are well-formed UTF-8 but not XML characters: one replacement each.
    if (valid && byte == 0xEF && static_cast<unsigned char>(text[i + 1]) == 0xBF &&
        static_cast<unsigned char>(text[i + 2]) >= 0xBE) {
      out += kReplacement;
      i += length;
    } else if (valid) {
      out.append(text.substr(i, length));
      i += length;
    } else {
      out += kReplacement;
      ++i;
    }
  }
}

inline std::string escape_xml(std::string_view text) {
  std::string out;
  append_escaped(out, text);
  return out;
}

// Appends the SVG coordinate or size `value` with at most `decimals` (<= 6) decimals, trailing zeros dropped
// ("12.5", "3", never "-0"), independent of the C locale. Non-finite values become 0 (callers skip them;
// this keeps XML valid), and values are clamped to +-1e9 pixels: far off any canvas, and short enough to
// print (a point of a diverged loss can map to 1e100 pixels).
inline void append_number(std::string& out, double value, int decimals = 2) {
  if (!std::isfinite(value)) value = 0.0;
  value = std::clamp(value, -1e9, 1e9);
  decimals = std::clamp(decimals, 0, 6);
  char buffer[32];
  const auto result =
      std::to_chars(buffer, buffer + sizeof(buffer), value, std::chars_format::fixed, decimals);
  if (result.ec != std::errc()) throw std::logic_error("append_number: no room for " + std::to_string(value));
  char* end = result.ptr;
  if (decimals > 0) {
    while (end[-1] == '0') --end;
    if (end[-1] == '.') --end;
  }
  std::string_view text(buffer, std::size_t(end - buffer));
  if (text == "-0") text = "0";
  out.append(text);
}

inline std::string number(double value, int decimals = 2) {
  std::string out;
  append_number(out, value, decimals);
  return out;
}

// Approximate rendered width of `text` in DejaVu Sans (the widest common fallback) for layout decisions.
inline double text_width(std::string_view text, double font_size) {
  std::size_t characters = 0;
  for (char ch : text)
    if ((static_cast<unsigned char>(ch) & 0xC0) != 0x80) ++characters;
  return double(characters) * 0.62 * font_size;
}

// XML declaration, root element with the SVG namespace, and a white background.
inline std::string svg_begin(double width, double height) {
  std::string out = "<?xml version=\"1.0\" encoding=\"UTF-8\" standalone=\"no\"?>\n";
  out += "<svg xmlns=\"http://www.w3.org/2000/svg\" version=\"1.1\" width=\"" + number(width) +
         "\" height=\"" + number(height) + "\" viewBox=\"0 0 " + number(width) + " " + number(height) +
         "\" font-family=\"";
  out += kFontFamily;
  out += "\">\n<rect width=\"" + number(width) + "\" height=\"" + number(height) + "\" fill=\"#ffffff\"/>\n";
  return out;
}

inline void append_svg_end(std::string& out) {
  out += "</svg>\n";
}

// <text> with escaped content; `anchor` is start, middle or end; extra attributes are inserted verbatim.
inline void append_text(std::string& out, double x, double y, std::string_view text, double font_size,
                        std::string_view anchor = "middle", std::string_view extra_attributes = "") {
  out += "<text x=\"";
  append_number(out, x);
  out += "\" y=\"";
  append_number(out, y);
  out += "\" font-size=\"";
  append_number(out, font_size);
  out += "\"";
  if (anchor != "start") {
    out += " text-anchor=\"";
    out += anchor;
    out += "\"";
  }
  if (!extra_attributes.empty()) {
    out += ' ';
    out += extra_attributes;
  }
  out += '>';
  append_escaped(out, text);
  out += "</text>\n";
}

}  // namespace sumi::plot::detail
