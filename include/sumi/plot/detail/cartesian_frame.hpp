#pragma once
// The frame every x/y chart shares: margins sized to fit the tick labels, grid, axes box, ticks, labels and
// title. Charts draw their data between draw_background() and draw_axes().
#include <algorithm>
#include <cmath>
#include <string>
#include <vector>

#include "sumi/plot/detail/axis_ticks.hpp"
#include "sumi/plot/detail/svg_document.hpp"

namespace sumi::plot::detail {

inline constexpr double kTickFontSize = 12;
inline constexpr double kLabelFontSize = 13;
inline constexpr double kTitleFontSize = 15;
inline constexpr double kMajorTickLength = 3.5;
inline constexpr double kMinorTickLength = 2;

struct FrameSpec {
  double width = 640, height = 480;
  std::string title, x_label, y_label;
  double x_lo = 0, x_hi = 1, y_lo = 0, y_hi = 1;  // limits; log10 of the limits on a log axis
  bool log_x = false, log_y = false;
  bool minor_ticks = true;  // on log axes
  LogTickLabels log_labels = LogTickLabels::power;
  bool grid = true;
  double right_reserve = 0;  // extra room on the right, e.g. for an outside legend
};

struct Frame {
  Rect plot;
  AxisMap x, y;
  std::vector<Tick> x_ticks, y_ticks;
};

inline std::vector<Tick> axis_ticks(double lo, double hi, bool log, int target, const FrameSpec& spec) {
  return log ? log_ticks(lo, hi, spec.minor_ticks, spec.log_labels) : linear_ticks(lo, hi, target);
}

inline double widest_label(const std::vector<Tick>& ticks) {
  double widest = 0;
  for (const auto& tick : ticks) widest = std::max(widest, tick_label_width(tick, kTickFontSize));
  return widest;
}

// Sizes the margins from the title, axis labels and the widest y tick label, then picks as many x ticks as
// fit without their labels touching.
inline Frame layout_frame(const FrameSpec& spec) {
  Frame frame;
  const double top = spec.title.empty() ? 14 : 14 + kTitleFontSize + 12;
  const double bottom =
      kMajorTickLength + 4 + kTickFontSize + (spec.x_label.empty() ? 0 : 10 + kLabelFontSize) + 12;
  const double plot_height = std::max(20.0, spec.height - top - bottom);
  const int y_target = std::clamp(int(std::lround(plot_height / 60)), 3, 8);
  frame.y_ticks = axis_ticks(spec.y_lo, spec.y_hi, spec.log_y, y_target, spec);
  const double left = 12 + (spec.y_label.empty() ? 0 : kLabelFontSize + 10) + widest_label(frame.y_ticks) +
                      4 + kMajorTickLength;
  const double right = 20 + spec.right_reserve;
  const double plot_width = std::max(20.0, spec.width - left - right);
  frame.plot = {left, top, plot_width, plot_height};

  int x_target = std::clamp(int(std::lround(plot_width / 75)), 3, 9);
  for (;; --x_target) {
    frame.x_ticks = axis_ticks(spec.x_lo, spec.x_hi, spec.log_x, x_target, spec);
    if (spec.log_x || x_target <= 2 || frame.x_ticks.size() < 2) break;
    const double spacing =
        plot_width * (frame.x_ticks[1].value - frame.x_ticks[0].value) / (spec.x_hi - spec.x_lo);
    if (widest_label(frame.x_ticks) + 12 <= spacing) break;
  }
  frame.x = {spec.x_lo, spec.x_hi, spec.log_x, frame.plot.x, frame.plot.right()};
  frame.y = {spec.y_lo, spec.y_hi, spec.log_y, frame.plot.bottom(), frame.plot.y};  // pixels grow downwards
  return frame;
}

// Light grid lines at the major ticks (and fainter ones at minor ticks of log axes), under the data.
inline void draw_background(std::string& out, const Frame& frame, const FrameSpec& spec) {
  if (!spec.grid) return;
  for (const bool major : {false, true}) {
    std::string lines;
    auto add = [&](const Tick& tick, bool vertical) {
      if (tick.major != major) return;
      const double p = vertical ? frame.x(tick.value) : frame.y(tick.value);
      lines += 'M';
      if (vertical) {
        append_number(lines, p);
        lines += ' ';
        append_number(lines, frame.plot.y);
        lines += 'V';
        append_number(lines, frame.plot.bottom());
      } else {
        append_number(lines, frame.plot.x);
        lines += ' ';
        append_number(lines, p);
        lines += 'H';
        append_number(lines, frame.plot.right());
      }
    };
    for (const auto& tick : frame.x_ticks) add(tick, true);
    for (const auto& tick : frame.y_ticks) add(tick, false);
    if (lines.empty()) continue;
    out += major ? "<path class=\"grid\" stroke=\"#e0e0e0\" stroke-width=\"0.8\" fill=\"none\" d=\""
                 : "<path class=\"minor-grid\" stroke=\"#f0f0f0\" stroke-width=\"0.6\" fill=\"none\" d=\"";
    out += lines;
    out += "\"/>\n";
  }
}

// Axes box, outward ticks, tick labels, axis labels and title, over the data.
inline void draw_axes(std::string& out, const Frame& frame, const FrameSpec& spec) {
  const Rect& plot = frame.plot;
  out += "<rect class=\"axes\" x=\"";
  append_number(out, plot.x);
  out += "\" y=\"";
  append_number(out, plot.y);
  out += "\" width=\"";
  append_number(out, plot.width);
  out += "\" height=\"";
  append_number(out, plot.height);
  out += "\" fill=\"none\" stroke=\"#262626\" stroke-width=\"0.8\"/>\n";

  std::string ticks;
  for (const auto& tick : frame.x_ticks) {
    ticks += 'M';
    append_number(ticks, frame.x(tick.value));
    ticks += ' ';
    append_number(ticks, plot.bottom());
    ticks += 'v';
    append_number(ticks, tick.major ? kMajorTickLength : kMinorTickLength);
  }
  for (const auto& tick : frame.y_ticks) {
    ticks += 'M';
    append_number(ticks, plot.x);
    ticks += ' ';
    append_number(ticks, frame.y(tick.value));
    ticks += 'h';
    append_number(ticks, -(tick.major ? kMajorTickLength : kMinorTickLength));
  }
  if (!ticks.empty())
    out += "<path class=\"ticks\" stroke=\"#262626\" stroke-width=\"0.8\" d=\"" + ticks + "\"/>\n";

  out += "<g class=\"x-tick-labels\" font-size=\"" + number(kTickFontSize) + "\" fill=\"" +
         std::string(kTextColor) + "\">\n";
  const double x_label_baseline = plot.bottom() + kMajorTickLength + 3 + kTickFontSize;
  for (const auto& tick : frame.x_ticks)
    if (!tick.label.empty())
      append_tick_label(out, frame.x(tick.value), x_label_baseline, tick, kTickFontSize, "middle");
  out += "</g>\n<g class=\"y-tick-labels\" font-size=\"" + number(kTickFontSize) + "\" fill=\"" +
         std::string(kTextColor) + "\">\n";
  for (const auto& tick : frame.y_ticks)
    if (!tick.label.empty())
      append_tick_label(out, plot.x - kMajorTickLength - 4, frame.y(tick.value) + 0.36 * kTickFontSize, tick,
                        kTickFontSize, "end");
  out += "</g>\n";

  const std::string fill = "fill=\"" + std::string(kTextColor) + "\"";
  if (!spec.x_label.empty())
    append_text(out, plot.x + plot.width / 2, x_label_baseline + 10 + kLabelFontSize, spec.x_label,
                kLabelFontSize, "middle", "class=\"x-label\" " + fill);
  if (!spec.y_label.empty()) {
    const double x = 12 + kLabelFontSize * 0.8;
    const double y = plot.y + plot.height / 2;
    append_text(
        out, x, y, spec.y_label, kLabelFontSize, "middle",
        "class=\"y-label\" " + fill + " transform=\"rotate(-90 " + number(x) + " " + number(y) + ")\"");
  }
  if (!spec.title.empty())
    append_text(out, plot.x + plot.width / 2, 14 + kTitleFontSize, spec.title, kTitleFontSize, "middle",
                "class=\"title\" " + fill);
}

}  // namespace sumi::plot::detail
