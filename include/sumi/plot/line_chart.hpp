#pragma once
// SVG line charts of named series, e.g. train/validation loss per epoch on a log-y axis (like matplotlib's
// semilogy). Output is standalone SVG 1.1, deterministic, and saved atomically.
//
//   sumi::plot::LineChart chart;
//   chart.title = "Reconstruction loss";
//   chart.x_label = "epoch";
//   chart.y_label = "MSE";
//   chart.log_y = true;
//   chart.add_series("train", epochs, train_loss);
//   chart.add_series("validation", epochs, val_loss, {.dashed = true});
//   chart.save("loss.svg");
#include <algorithm>
#include <cmath>
#include <filesystem>
#include <limits>
#include <optional>
#include <stdexcept>
#include <string>
#include <tuple>
#include <type_traits>
#include <utility>
#include <vector>

#include "sumi/plot/detail/axis_ticks.hpp"
#include "sumi/plot/detail/cartesian_frame.hpp"
#include "sumi/plot/detail/legend.hpp"
#include "sumi/plot/detail/number_range.hpp"
#include "sumi/plot/detail/svg_document.hpp"
#include "sumi/plot/palette.hpp"
#include "sumi/util/atomic_file.hpp"

namespace sumi::plot {

struct LineStyle {
  std::string color{};  // "#rrggbb" or any SVG colour; empty: the next tab10 colour
  double width = 1.5;   // stroke width in pixels
  bool dashed = false;
  bool markers = false;  // a dot at every point
};

struct LineSeries {
  std::string name;  // legend text; series with an empty name are left out of the legend
  std::vector<double> x, y;
  LineStyle style;
};

namespace detail {

// Whether the segment a-b passes through `box` (Liang-Barsky clipping), for legend placement.
inline bool segment_hits_rect(double ax, double ay, double bx, double by, const Rect& box) {
  double t0 = 0, t1 = 1;
  const double dx = bx - ax, dy = by - ay;
  const double p[4] = {-dx, dx, -dy, dy};
  const double q[4] = {ax - box.x, box.right() - ax, ay - box.y, box.bottom() - ay};
  for (int i = 0; i < 4; ++i) {
    if (p[i] == 0) {
      if (q[i] < 0) return false;
    } else {
      const double t = q[i] / p[i];
      if (p[i] < 0)
        t0 = std::max(t0, t);
      else
        t1 = std::min(t1, t);
      if (t0 > t1) return false;
    }
  }
  return true;
}

}  // namespace detail

class LineChart {
 public:
  std::string title, x_label, y_label;
  double width = 640, height = 480;   // whole picture, pixels
  bool log_x = false, log_y = false;  // non-positive values are skipped on a log axis (the line breaks)
  bool minor_ticks = true;            // minor ticks (and faint grid) at 2..9 x 10^k on log axes
  LogTickLabels log_labels = LogTickLabels::power;
  bool grid = true;
  LegendLocation legend = LegendLocation::best;
  std::optional<std::pair<double, double>> x_limits, y_limits;  // fixed axis limits instead of data + 5%

  // Adds a series; x and y are any ranges of numbers of equal length. NaN/inf points break the line.
  template <detail::NumberRange XRange, detail::NumberRange YRange>
  LineChart& add_series(std::string name, const XRange& x, const YRange& y, LineStyle style = {}) {
    LineSeries series{std::move(name), detail::to_doubles(x), detail::to_doubles(y), std::move(style)};
    if (series.x.size() != series.y.size())
      throw std::invalid_argument("LineChart::add_series('" + series.name +
                                  "'): " + std::to_string(series.x.size()) + " x values but " +
                                  std::to_string(series.y.size()) + " y values");
    if (series.style.color.empty()) series.style.color = std::string(tab10_color(series_.size()));
    series_.push_back(std::move(series));
    return *this;
  }

  const std::vector<LineSeries>& series() const { return series_; }

  std::string to_svg() const {
    detail::FrameSpec spec;
    spec.width = width;
    spec.height = height;
    spec.title = title;
    spec.x_label = x_label;
    spec.y_label = y_label;
    spec.log_x = log_x;
    spec.log_y = log_y;
    spec.minor_ticks = minor_ticks;
    spec.log_labels = log_labels;
    spec.grid = grid;
    std::tie(spec.x_lo, spec.x_hi) = limits(true);
    std::tie(spec.y_lo, spec.y_hi) = limits(false);

    std::vector<detail::LegendEntry> entries;
    for (const auto& series : series_)
      if (!series.name.empty())
        entries.push_back({series.name, series.style.color, true, series.style.markers, series.style.dashed,
                           series.style.width});
    const bool show_legend = legend != LegendLocation::none && !entries.empty();
    const double legend_w = detail::legend_width(entries), legend_h = detail::legend_height(entries);
    if (show_legend && legend == LegendLocation::outside_right) spec.right_reserve = legend_w + 12;

    const detail::Frame frame = detail::layout_frame(spec);
    std::string out = detail::svg_begin(width, height);
    out += "<defs><clipPath id=\"sumi-plot-area\"><rect x=\"" + detail::number(frame.plot.x) + "\" y=\"" +
           detail::number(frame.plot.y) + "\" width=\"" + detail::number(frame.plot.width) + "\" height=\"" +
           detail::number(frame.plot.height) + "\"/></clipPath></defs>\n";
    detail::draw_background(out, frame, spec);
    const auto pixels = pixel_segments(frame);
    for (std::size_t s = 0; s < series_.size(); ++s) append_series(out, series_[s], pixels[s]);
    detail::draw_axes(out, frame, spec);
    if (show_legend) {
      const auto coverage = [&](const detail::Rect& box) {
        double hits = 0;
        for (const auto& segments : pixels)
          for (const auto& segment : segments)
            for (std::size_t i = 0; i < segment.size(); ++i) {
              const auto& [ax, ay] = segment[i];
              const auto& [bx, by] = segment[i + 1 < segment.size() ? i + 1 : i];
              if (detail::segment_hits_rect(ax, ay, bx, by, box)) hits += 1;
            }
        return hits;
      };
      detail::append_legend(out, detail::place_legend(legend, frame.plot, legend_w, legend_h, coverage),
                            entries);
    }
    detail::append_svg_end(out);
    return out;
  }

  // Writes to_svg() to `path` atomically.
  void save(const std::filesystem::path& path) const { util::write_file_atomically(path, to_svg()); }

 private:
  using Polyline = std::vector<std::pair<double, double>>;

  bool usable(double value, bool log) const { return std::isfinite(value) && (!log || value > 0); }

  // Axis limits: fixed ones, else the data range plus 5% (in log10 units on a log axis).
  std::pair<double, double> limits(bool x_axis) const {
    const bool log = x_axis ? log_x : log_y;
    const auto& fixed = x_axis ? x_limits : y_limits;
    if (fixed) {
      if (log && !(fixed->first > 0 && fixed->second > fixed->first))
        throw std::invalid_argument("LineChart: log axis limits must satisfy 0 < low < high");
      if (!(fixed->second > fixed->first) || !std::isfinite(fixed->second - fixed->first))
        throw std::invalid_argument("LineChart: axis limits need low < high and a finite span");
      return log ? std::pair{std::log10(fixed->first), std::log10(fixed->second)} : *fixed;
    }
    double lo = std::numeric_limits<double>::infinity(), hi = -lo;
    for (const auto& series : series_)
      for (std::size_t i = 0; i < series.x.size(); ++i) {
        if (!usable(series.x[i], log_x) || !usable(series.y[i], log_y)) continue;
        const double value = x_axis ? series.x[i] : series.y[i];
        lo = std::min(lo, log ? std::log10(value) : value);
        hi = std::max(hi, log ? std::log10(value) : value);
      }
    if (!(lo <= hi)) return {0, 1};  // no data: log axes then span 1..10
    // A constant series on a log axis: a decade centred on it, which always holds labelled ticks (padding
    // by a share of log10(value) would leave a single tick, or none, for many values).
    if (log && lo == hi) return {lo - 0.5, hi + 0.5};
    return detail::padded_limits(lo, hi);
  }

  // Each series as pixel polylines, split wherever a point cannot be drawn.
  std::vector<std::vector<Polyline>> pixel_segments(const detail::Frame& frame) const {
    std::vector<std::vector<Polyline>> all;
    for (const auto& series : series_) {
      std::vector<Polyline> segments(1);
      for (std::size_t i = 0; i < series.x.size(); ++i) {
        if (usable(series.x[i], log_x) && usable(series.y[i], log_y)) {
          segments.back().emplace_back(frame.x(series.x[i]), frame.y(series.y[i]));
        } else if (!segments.back().empty()) {
          segments.emplace_back();
        }
      }
      if (segments.back().empty()) segments.pop_back();
      all.push_back(std::move(segments));
    }
    return all;
  }

  // One <g class="series"> per series with a <title> (its name) and one <polyline> per unbroken run; a
  // lone point gets a dot so it stays visible.
  static void append_series(std::string& out, const LineSeries& series,
                            const std::vector<Polyline>& segments) {
    const LineStyle& style = series.style;
    out += "<g class=\"series\" clip-path=\"url(#sumi-plot-area)\">";
    out += "<title>";
    detail::append_escaped(out, series.name);
    out += "</title>\n";
    const double dot_radius = std::max(2.0, style.width * 1.5);
    for (const auto& segment : segments) {
      if (segment.size() < 2) continue;
      out += "<polyline fill=\"none\" stroke=\"";
      detail::append_escaped(out, style.color);
      out += "\" stroke-width=\"" + detail::number(style.width) +
             "\" stroke-linejoin=\"round\" stroke-linecap=\"round\"";
      if (style.dashed)
        out += " stroke-dasharray=\"" + detail::number(4 * style.width) + "," +
               detail::number(2.5 * style.width) + "\"";
      out += " points=\"";
      for (std::size_t i = 0; i < segment.size(); ++i) {
        if (i) out += ' ';
        detail::append_number(out, segment[i].first);
        out += ',';
        detail::append_number(out, segment[i].second);
      }
      out += "\"/>\n";
    }
    std::string dots;
    for (const auto& segment : segments)
      if (style.markers || segment.size() == 1)
        for (const auto& [x, y] : segment) {
          dots += "<circle cx=\"";
          detail::append_number(dots, x);
          dots += "\" cy=\"";
          detail::append_number(dots, y);
          dots += "\" r=\"" + detail::number(dot_radius) + "\"/>";
        }
    if (!dots.empty()) {
      out += "<g class=\"markers\" fill=\"";
      detail::append_escaped(out, style.color);
      out += "\">" + dots + "</g>\n";
    }
    out += "</g>\n";
  }

  std::vector<LineSeries> series_;
};

}  // namespace sumi::plot
