#pragma once
// Chart legends: sizing, placement (including matplotlib's "best": the corner covering the least data) and
// drawing.
#include <algorithm>
#include <array>
#include <functional>
#include <string>
#include <vector>

#include "sumi/plot/detail/svg_document.hpp"

namespace sumi::plot {

// Where a chart puts its legend. `best` picks the inside corner that covers the least data;
// `outside_right` shrinks the plot to make room beside it (good for dense scatter plots).
enum class LegendLocation { best, upper_right, upper_left, lower_left, lower_right, outside_right, none };

}  // namespace sumi::plot

namespace sumi::plot::detail {

struct LegendEntry {
  std::string label;
  std::string color;
  bool line = true;     // a short line sample (line charts)
  bool marker = false;  // a dot (scatter classes, or line series drawn with markers)
  bool dashed = false;
  double line_width = 1.5;
};

inline constexpr double kLegendFontSize = 12;
inline constexpr double kLegendRow = 18;
inline constexpr double kLegendPadding = 8;
inline constexpr double kLegendSample = 22;
inline constexpr double kLegendGap = 6;
inline constexpr double kLegendInset = 8;  // distance from the plot area's edges

inline double legend_width(const std::vector<LegendEntry>& entries) {
  double text = 0;
  for (const auto& entry : entries) text = std::max(text, text_width(entry.label, kLegendFontSize));
  return 2 * kLegendPadding + kLegendSample + kLegendGap + text;
}

inline double legend_height(const std::vector<LegendEntry>& entries) {
  return 2 * kLegendPadding + double(entries.size()) * kLegendRow - (kLegendRow - kLegendFontSize);
}

// The legend's rectangle for `location`; `coverage` scores a candidate (lower is better) for `best`.
inline Rect place_legend(LegendLocation location, const Rect& plot, double width, double height,
                         const std::function<double(const Rect&)>& coverage) {
  const Rect upper_right{plot.right() - kLegendInset - width, plot.y + kLegendInset, width, height};
  const Rect upper_left{plot.x + kLegendInset, plot.y + kLegendInset, width, height};
  const Rect lower_left{plot.x + kLegendInset, plot.bottom() - kLegendInset - height, width, height};
  const Rect lower_right{plot.right() - kLegendInset - width, plot.bottom() - kLegendInset - height, width,
                         height};
  switch (location) {
    case LegendLocation::upper_right:
      return upper_right;
    case LegendLocation::upper_left:
      return upper_left;
    case LegendLocation::lower_left:
      return lower_left;
    case LegendLocation::lower_right:
      return lower_right;
    case LegendLocation::outside_right:
      return {plot.right() + 12, plot.y, width, height};
    default:
      break;
  }
  // matplotlib's order of preference breaks ties.
  const std::array<Rect, 4> candidates = {upper_right, upper_left, lower_left, lower_right};
  Rect best = candidates[0];
  double best_score = coverage ? coverage(best) : 0;
  for (std::size_t i = 1; i < candidates.size() && coverage; ++i) {
    const double score = coverage(candidates[i]);
    if (score < best_score) best_score = score, best = candidates[i];
  }
  return best;
}

inline void append_legend(std::string& out, const Rect& box, const std::vector<LegendEntry>& entries) {
  out += "<g class=\"legend\">\n<rect x=\"";
  append_number(out, box.x);
  out += "\" y=\"";
  append_number(out, box.y);
  out += "\" width=\"";
  append_number(out, box.width);
  out += "\" height=\"";
  append_number(out, box.height);
  out += "\" rx=\"3\" fill=\"#ffffff\" fill-opacity=\"0.85\" stroke=\"#cccccc\" stroke-width=\"0.8\"/>\n";
  for (std::size_t i = 0; i < entries.size(); ++i) {
    const LegendEntry& entry = entries[i];
    const double middle = box.y + kLegendPadding + double(i) * kLegendRow + kLegendFontSize / 2;
    const double sample_x = box.x + kLegendPadding;
    out += "<g class=\"legend-entry\">";
    if (entry.line) {
      out += "<line x1=\"";
      append_number(out, sample_x);
      out += "\" y1=\"";
      append_number(out, middle);
      out += "\" x2=\"";
      append_number(out, sample_x + kLegendSample);
      out += "\" y2=\"";
      append_number(out, middle);
      out += "\" stroke=\"" + escape_xml(entry.color) + "\" stroke-width=\"";
      append_number(out, entry.line_width);
      out += "\"";
      if (entry.dashed) out += " stroke-dasharray=\"5,3\"";
      out += "/>";
    }
    if (entry.marker) {
      out += "<circle cx=\"";
      append_number(out, sample_x + kLegendSample / 2);
      out += "\" cy=\"";
      append_number(out, middle);
      out +=
          "\" r=\"" + std::string(entry.line ? "3" : "4.5") + "\" fill=\"" + escape_xml(entry.color) + "\"/>";
    }
    out += "<text x=\"";
    append_number(out, sample_x + kLegendSample + kLegendGap);
    out += "\" y=\"";
    append_number(out, middle + 0.36 * kLegendFontSize);
    out += "\" font-size=\"";
    append_number(out, kLegendFontSize);
    out += "\" fill=\"";
    out += kTextColor;
    out += "\">";
    append_escaped(out, entry.label);
    out += "</text></g>\n";
  }
  out += "</g>\n";
}

}  // namespace sumi::plot::detail
