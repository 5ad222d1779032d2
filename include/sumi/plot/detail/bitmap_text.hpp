#pragma once
// Tiny bitmap text for PNG figures (row labels in comparison grids), drawn with stb_easy_font's
// rectangle-only glyphs so no font file or rasteriser is needed. ASCII only.
#ifndef SUMI_PLOT_DETAIL_BITMAP_TEXT_INCLUDED
#define SUMI_PLOT_DETAIL_BITMAP_TEXT_INCLUDED

#include <algorithm>
#include <cmath>
#include <cstdint>
#include <cstring>
#include <string>
#include <string_view>
#include <vector>

#pragma GCC diagnostic push
#pragma GCC diagnostic ignored "-Wunused-function"
#pragma GCC diagnostic ignored "-Wunused-variable"
#pragma GCC diagnostic ignored "-Wsign-compare"
#pragma GCC diagnostic ignored "-Wmissing-field-initializers"
#pragma GCC diagnostic ignored "-Wconversion"
#pragma GCC diagnostic ignored "-Wdouble-promotion"
#include <stb/stb_easy_font.h>
#pragma GCC diagnostic pop

namespace sumi::plot::detail {

struct TextBox {
  int x0 = 0, y0 = 0, x1 = 0, y1 = 0;  // pixel rectangle, [x0, x1) x [y0, y1)
};

// The glyph rectangles of `text` at integer `scale`, relative to the text's top-left origin.
inline std::vector<TextBox> text_rectangles(std::string_view text, int scale) {
  std::string copy(text);  // stb takes a mutable char*
  // stb's font covers printable ASCII and indexes its tables with (c - 32) unchecked (newlines start a line):
  // anything else is drawn as '?' rather than read from outside the tables.
  for (char& c : copy)
    if (c != '\n' && (c < 32 || c > 126)) c = '?';
  std::vector<char> vertices(copy.size() * 300 + 64);  // stb's documented ~270 bytes per character
  const int quads = stb_easy_font_print(0, 0, copy.data(), nullptr, vertices.data(), int(vertices.size()));
  std::vector<TextBox> boxes;
  for (int q = 0; q < quads; ++q) {
    float min_x = 1e9f, min_y = 1e9f, max_x = -1e9f, max_y = -1e9f;
    for (int v = 0; v < 4; ++v) {
      float xy[2];
      std::memcpy(xy, vertices.data() + (std::size_t(q) * 4 + std::size_t(v)) * 16, sizeof(xy));
      min_x = std::min(min_x, xy[0]), max_x = std::max(max_x, xy[0]);
      min_y = std::min(min_y, xy[1]), max_y = std::max(max_y, xy[1]);
    }
    boxes.push_back({int(std::lround(min_x * float(scale))), int(std::lround(min_y * float(scale))),
                     int(std::lround(max_x * float(scale))), int(std::lround(max_y * float(scale)))});
  }
  return boxes;
}

// Size in pixels of `text` at `scale` (the ink's bounding box from the origin).
inline TextBox text_extent(std::string_view text, int scale) {
  TextBox extent;
  for (const auto& box : text_rectangles(text, scale))
    extent.x1 = std::max(extent.x1, box.x1), extent.y1 = std::max(extent.y1, box.y1);
  return extent;
}

// Draws `text` with its top-left corner at (x, y) into an interleaved 8-bit image, clipped to its bounds.
inline void draw_text(std::vector<uint8_t>& pixels, int width, int height, int channels, int x, int y,
                      std::string_view text, int scale, uint8_t value) {
  for (const auto& box : text_rectangles(text, scale))
    for (int py = std::max(0, y + box.y0); py < std::min(height, y + box.y1); ++py)
      for (int px = std::max(0, x + box.x0); px < std::min(width, x + box.x1); ++px)
        for (int c = 0; c < channels; ++c)
          pixels[(std::size_t(py) * std::size_t(width) + std::size_t(px)) * std::size_t(channels) +
                 std::size_t(c)] = value;
}

}  // namespace sumi::plot::detail

#endif  // SUMI_PLOT_DETAIL_BITMAP_TEXT_INCLUDED
