#pragma once
// A confusion-matrix picture as SVG: rows are true classes, columns predicted ones, each cell coloured on
// matplotlib's "Blues" scale and labelled with its count, class names on both axes and a colour bar.
#include <algorithm>
#include <concepts>
#include <cstdint>
#include <filesystem>
#include <span>
#include <stdexcept>
#include <string>
#include <vector>

#include "sumi/plot/detail/axis_ticks.hpp"
#include "sumi/plot/detail/svg_document.hpp"
#include "sumi/plot/palette.hpp"
#include "sumi/util/atomic_file.hpp"

namespace sumi::plot {

struct ConfusionMatrixOptions {
  std::string title = "Confusion matrix";
  std::string x_label = "Predicted label";
  std::string y_label = "True label";
  // Show and colour each row's fractions (per-class recall) instead of raw counts, so rare classes are
  // as readable as common ones.
  bool normalize_rows = false;
  bool colorbar = true;
  double cell_size = 0;  // pixels per cell; 0 picks one from the number of classes
};

// `counts` is the n x n matrix in row-major order (row = true class, column = predicted class), where n is
// the number of class names. Throws std::invalid_argument on a size mismatch or a negative count.
inline std::string confusion_matrix_svg(std::span<const int64_t> counts,
                                        std::span<const std::string> class_names,
                                        const ConfusionMatrixOptions& options = {}) {
  using detail::append_number;
  using detail::number;
  const std::size_t n = class_names.size();
  if (n == 0 || counts.size() != n * n)
    throw std::invalid_argument("confusion_matrix_svg: " + std::to_string(counts.size()) + " counts for " +
                                std::to_string(n) + " class names (need names.size() squared, at least one)");
  for (const int64_t count : counts)
    if (count < 0)
      throw std::invalid_argument("confusion_matrix_svg: negative count " + std::to_string(count));

  // Cell values in [0, 1] for colour, and their text.
  std::vector<double> shade(n * n);
  std::vector<std::string> text(n * n);
  const int64_t largest = std::max<int64_t>(1, *std::max_element(counts.begin(), counts.end()));
  for (std::size_t row = 0; row < n; ++row) {
    int64_t row_total = 0;
    for (std::size_t col = 0; col < n; ++col) row_total += counts[row * n + col];
    for (std::size_t col = 0; col < n; ++col) {
      const int64_t count = counts[row * n + col];
      if (options.normalize_rows) {
        const double fraction = row_total > 0 ? double(count) / double(row_total) : 0.0;
        shade[row * n + col] = fraction;
        text[row * n + col] = detail::format_fixed(fraction, 2);
      } else {
        shade[row * n + col] = double(count) / double(largest);
        text[row * n + col] = std::to_string(count);
      }
    }
  }

  constexpr double kNameFont = 12, kLabelFont = 13, kTitleFont = 15, kBarWidth = 14;
  const double cell = options.cell_size > 0 ? options.cell_size : std::clamp(440.0 / double(n), 18.0, 60.0);
  double widest_text = 0, widest_name = 0;
  for (const auto& t : text) widest_text = std::max(widest_text, detail::text_width(t, 1.0));
  for (const auto& name : class_names)
    widest_name = std::max(widest_name, detail::text_width(name, kNameFont));
  const double value_font = std::clamp((cell - 6) / std::max(widest_text, 1.0), 6.0, 12.0);
  const bool rotate_names = widest_name + 4 > cell;

  const double grid = cell * double(n);
  const double left = 12 + kLabelFont + 10 + widest_name + 8;
  const double top = 14 + (options.title.empty() ? 0 : kTitleFont + 14);
  const double name_band = rotate_names ? widest_name * 0.72 + kNameFont : kNameFont + 4;
  const double height = top + grid + 8 + name_band + 10 + kLabelFont + 12;

  // Colour bar ticks: counts 0..largest, or fractions 0..1.
  const double bar_max = options.normalize_rows ? 1.0 : double(largest);
  const auto bar_ticks = detail::linear_ticks(0.0, bar_max, 5);
  double widest_tick = 0;
  for (const auto& tick : bar_ticks)
    widest_tick = std::max(widest_tick, detail::text_width(tick.label, kNameFont));
  const double bar_x = left + grid + 18;
  const double width = options.colorbar ? bar_x + kBarWidth + 6 + widest_tick + 16 : left + grid + 20;

  std::string out = detail::svg_begin(width, height);
  if (options.colorbar) {
    out += "<defs><linearGradient id=\"sumi-blues\" x1=\"0\" y1=\"1\" x2=\"0\" y2=\"0\">";
    for (std::size_t i = 0; i < kBlues.size(); ++i) {
      const double offset = double(i) / double(kBlues.size() - 1);
      out += "<stop offset=\"" + number(offset, 4) + "\" stop-color=\"" + blues_color(offset) + "\"/>";
    }
    out += "</linearGradient></defs>\n";
  }

  out += "<g class=\"cells\">\n";
  for (std::size_t row = 0; row < n; ++row)
    for (std::size_t col = 0; col < n; ++col) {
      const double x = left + double(col) * cell, y = top + double(row) * cell;
      const double t = shade[row * n + col];
      out += "<rect class=\"cell\" x=\"";
      append_number(out, x);
      out += "\" y=\"";
      append_number(out, y);
      out += "\" width=\"" + number(cell) + "\" height=\"" + number(cell) + "\" fill=\"" + blues_color(t) +
             "\"/>";
      detail::append_text(
          out, x + cell / 2, y + cell / 2 + 0.36 * value_font, text[row * n + col], value_font, "middle",
          std::string("class=\"cell-value\" fill=\"") + (t > 0.5 ? "#ffffff" : "#262626") + "\"");
    }
  out += "</g>\n<rect x=\"" + number(left) + "\" y=\"" + number(top) + "\" width=\"" + number(grid) +
         "\" height=\"" + number(grid) + "\" fill=\"none\" stroke=\"#262626\" stroke-width=\"0.8\"/>\n";

  const std::string fill = "fill=\"" + std::string(detail::kTextColor) + "\"";
  out += "<g class=\"y-tick-labels\" " + fill + ">\n";
  for (std::size_t row = 0; row < n; ++row)
    detail::append_text(out, left - 6, top + (double(row) + 0.5) * cell + 0.36 * kNameFont, class_names[row],
                        kNameFont, "end");
  out += "</g>\n<g class=\"x-tick-labels\" " + fill + ">\n";
  for (std::size_t col = 0; col < n; ++col) {
    const double x = left + (double(col) + 0.5) * cell;
    if (rotate_names) {
      const double y = top + grid + 8 + kNameFont * 0.5;
      detail::append_text(out, x, y, class_names[col], kNameFont, "end",
                          "transform=\"rotate(-45 " + number(x) + " " + number(y) + ")\"");
    } else {
      detail::append_text(out, x, top + grid + 6 + kNameFont, class_names[col], kNameFont, "middle");
    }
  }
  out += "</g>\n";
  if (!options.x_label.empty())
    detail::append_text(out, left + grid / 2, top + grid + 8 + name_band + 10 + kLabelFont * 0.8,
                        options.x_label, kLabelFont, "middle", "class=\"x-label\" " + fill);
  if (!options.y_label.empty()) {
    const double x = 12 + kLabelFont * 0.8, y = top + grid / 2;
    detail::append_text(
        out, x, y, options.y_label, kLabelFont, "middle",
        "class=\"y-label\" " + fill + " transform=\"rotate(-90 " + number(x) + " " + number(y) + ")\"");
  }
  if (!options.title.empty())
    detail::append_text(out, left + grid / 2, 14 + kTitleFont, options.title, kTitleFont, "middle",
                        "class=\"title\" " + fill);

  if (options.colorbar) {
    out += "<g class=\"colorbar\">\n<rect x=\"" + number(bar_x) + "\" y=\"" + number(top) + "\" width=\"" +
           number(kBarWidth) + "\" height=\"" + number(grid) +
           "\" fill=\"url(#sumi-blues)\" stroke=\"#262626\" stroke-width=\"0.8\"/>\n";
    std::string tick_path;
    for (const auto& tick : bar_ticks) {
      const double y = top + grid - tick.value / bar_max * grid;
      tick_path += "M" + number(bar_x + kBarWidth) + " " + number(y) + "h3.5";
      detail::append_text(out, bar_x + kBarWidth + 6, y + 0.36 * kNameFont, tick.label, kNameFont, "start",
                          fill);
    }
    out += "<path stroke=\"#262626\" stroke-width=\"0.8\" d=\"" + tick_path + "\"/>\n</g>\n";
  }
  detail::append_svg_end(out);
  return out;
}

// From a vector of rows; empty `class_names` labels the classes 0..n-1.
template <std::integral T>
std::string confusion_matrix_svg(const std::vector<std::vector<T>>& matrix,
                                 std::vector<std::string> class_names = {},
                                 const ConfusionMatrixOptions& options = {}) {
  if (class_names.empty())
    for (std::size_t i = 0; i < matrix.size(); ++i) class_names.push_back(std::to_string(i));
  std::vector<int64_t> counts;
  for (const auto& row : matrix) {
    if (row.size() != matrix.size())
      throw std::invalid_argument("confusion_matrix_svg: the matrix is not square (" +
                                  std::to_string(matrix.size()) + " rows, a row of " +
                                  std::to_string(row.size()) + ")");
    for (const T value : row) counts.push_back(static_cast<int64_t>(value));
  }
  return confusion_matrix_svg(std::span<const int64_t>(counts), std::span<const std::string>(class_names),
                              options);
}

// Writes the picture to `path` atomically.
template <std::integral T>
void save_confusion_matrix_svg(const std::filesystem::path& path, const std::vector<std::vector<T>>& matrix,
                               std::vector<std::string> class_names = {},
                               const ConfusionMatrixOptions& options = {}) {
  util::write_file_atomically(path, confusion_matrix_svg(matrix, std::move(class_names), options));
}

}  // namespace sumi::plot
