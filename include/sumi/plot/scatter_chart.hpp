#pragma once
// SVG scatter plots of 2-d points coloured by integer class (tab10), e.g. a latent space or a t-SNE/PCA
// embedding of all 70,000 MNIST digits. Points are small circles grouped per class under one fill, written
// with one decimal, so even 70k points stay a few MB and render quickly.
//
//   sumi::plot::ScatterChart chart;
//   chart.title = "Latent space";
//   chart.class_names = {"0", "1", ..., "9"};
//   chart.add_points(z0, z1, labels);
//   chart.save("latent.svg");
#include <algorithm>
#include <cmath>
#include <filesystem>
#include <limits>
#include <optional>
#include <stdexcept>
#include <string>
#include <tuple>
#include <utility>
#include <vector>

#include "sumi/plot/detail/cartesian_frame.hpp"
#include "sumi/plot/detail/legend.hpp"
#include "sumi/plot/detail/number_range.hpp"
#include "sumi/plot/detail/svg_document.hpp"
#include "sumi/plot/palette.hpp"
#include "sumi/util/atomic_file.hpp"
#include "sumi/util/csv.hpp"
#include "sumi/util/dense_ranks.hpp"

namespace sumi::plot {

class ScatterChart {
 public:
  std::string title, x_label, y_label;
  double width = 720, height = 560;  // whole picture, pixels
  double point_radius = 1.5;
  double point_opacity = 0.7;  // < 1 lets dense regions show their density
  bool grid = true;
  // Legend text per class index; classes without a name are labelled by their number. The legend lists the
  // named classes and those with points, and is shown when names are given or when there is more than one.
  std::vector<std::string> class_names;
  LegendLocation legend = LegendLocation::outside_right;
  std::optional<std::pair<double, double>> x_limits, y_limits;  // fixed limits; points outside are dropped

  // Adds points with their class (>= 0). Points with a NaN/inf coordinate are skipped.
  template <detail::NumberRange XRange, detail::NumberRange YRange, detail::NumberRange LabelRange>
  ScatterChart& add_points(const XRange& x, const YRange& y, const LabelRange& labels) {
    std::vector<double> xs = detail::to_doubles(x), ys = detail::to_doubles(y),
                        ls = detail::to_doubles(labels);
    if (xs.size() != ys.size() || xs.size() != ls.size())
      throw std::invalid_argument("ScatterChart::add_points: " + std::to_string(xs.size()) + " x, " +
                                  std::to_string(ys.size()) + " y and " + std::to_string(ls.size()) +
                                  " labels differ in length");
    for (std::size_t i = 0; i < xs.size(); ++i) {
      if (!(ls[i] >= 0) || ls[i] != std::floor(ls[i]) || ls[i] > 1e6)
        throw std::invalid_argument("ScatterChart::add_points: label " +
                                    util::format_round_trip(double(ls[i])) + " at index " +
                                    std::to_string(i) + " is not a class index >= 0");
      x_.push_back(xs[i]);
      y_.push_back(ys[i]);
      class_.push_back(static_cast<int>(ls[i]));
    }
    return *this;
  }

  // Adds points of class 0.
  template <detail::NumberRange XRange, detail::NumberRange YRange>
  ScatterChart& add_points(const XRange& x, const YRange& y) {
    return add_points(x, y, std::vector<int>(detail::to_doubles(x).size(), 0));
  }

  std::size_t size() const { return x_.size(); }

  std::string to_svg() const {
    detail::FrameSpec spec;
    spec.width = width;
    spec.height = height;
    spec.title = title;
    spec.x_label = x_label;
    spec.y_label = y_label;
    spec.grid = grid;
    std::tie(spec.x_lo, spec.x_hi) = limits(x_, y_, x_limits);
    std::tie(spec.y_lo, spec.y_hi) = limits(y_, x_, y_limits);

    // The classes drawn and listed, in order: every named class and every class with points, so sparse
    // labels (100 and 200) get no empty legend rows; point_class[i] is point i's position among them.
    std::vector<int> point_then_named_classes = class_;
    for (std::size_t c = 0; c < class_names.size(); ++c) point_then_named_classes.push_back(int(c));
    const util::DenseRanks<int> listed = util::dense_ranks(point_then_named_classes);
    const std::vector<int>& shown = listed.distinct;
    const std::vector<int64_t>& point_class = listed.ranks;  // the points come first
    const auto classes = shown.size();
    std::vector<detail::LegendEntry> entries;
    for (std::size_t k = 0; k < classes; ++k)
      entries.push_back(
          {class_name(shown[k]), std::string(tab10_color(colour_index(shown, k))), false, true});
    const bool show_legend =
        legend != LegendLocation::none && classes > 0 && (!class_names.empty() || classes > 1);
    const double legend_w = detail::legend_width(entries), legend_h = detail::legend_height(entries);
    if (show_legend && legend == LegendLocation::outside_right) spec.right_reserve = legend_w + 12;

    const detail::Frame frame = detail::layout_frame(spec);
    std::string out = detail::svg_begin(width, height);
    detail::draw_background(out, frame, spec);

    // Bucket point indices per class once: O(points) rather than one pass per class.
    std::vector<std::vector<std::size_t>> members(classes);
    for (std::size_t i = 0; i < x_.size(); ++i)
      if (visible(i, frame)) members[std::size_t(point_class[i])].push_back(i);
    const std::string radius = detail::number(point_radius, 2);
    for (std::size_t k = 0; k < classes; ++k) {
      out += "<g class=\"points\" fill=\"";
      out += tab10_color(colour_index(shown, k));
      out += "\"";
      if (point_opacity < 1)
        out += " fill-opacity=\"" + detail::number(std::max(0.0, point_opacity), 3) + "\"";
      out += "><title>";
      detail::append_escaped(out, class_name(shown[k]));
      out += "</title>\n";
      for (const std::size_t i : members[k]) {
        out += "<circle cx=\"";
        detail::append_number(out, frame.x(x_[i]), 1);
        out += "\" cy=\"";
        detail::append_number(out, frame.y(y_[i]), 1);
        out += "\" r=\"" + radius + "\"/>\n";
      }
      out += "</g>\n";
    }
    detail::draw_axes(out, frame, spec);
    if (show_legend) {
      // For inside placements prefer the corner with the fewest points under it.
      const auto coverage = [&](const detail::Rect& box) {
        double covered = 0;
        for (std::size_t i = 0; i < x_.size(); ++i) {
          if (!visible(i, frame)) continue;
          const double px = frame.x(x_[i]), py = frame.y(y_[i]);
          if (px >= box.x && px <= box.right() && py >= box.y && py <= box.bottom()) covered += 1;
        }
        return covered;
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
  // When every shown class is below 10, each has its own tab10 colour (a class looks the same in charts of
  // different subsets); otherwise colours go by position in the list, so sparse class numbers stay distinct.
  static std::size_t colour_index(const std::vector<int>& shown, std::size_t k) {
    return std::size_t(shown.back()) < kTab10.size() ? std::size_t(shown[k]) : k;
  }

  std::string class_name(int c) const {
    const auto index = static_cast<std::size_t>(c);
    return index < class_names.size() && !class_names[index].empty() ? class_names[index] : std::to_string(c);
  }

  bool visible(std::size_t i, const detail::Frame& frame) const {
    return std::isfinite(x_[i]) && std::isfinite(y_[i]) && frame.x.contains(x_[i]) && frame.y.contains(y_[i]);
  }

  // Fixed limits, else the range of the drawable points (both coordinates finite) plus 5%.
  static std::pair<double, double> limits(const std::vector<double>& values, const std::vector<double>& other,
                                          const std::optional<std::pair<double, double>>& fixed) {
    if (fixed) {
      if (!(fixed->second > fixed->first) || !std::isfinite(fixed->second - fixed->first))
        throw std::invalid_argument("ScatterChart: axis limits need low < high and a finite span");
      return *fixed;
    }
    double lo = std::numeric_limits<double>::infinity(), hi = -lo;
    for (std::size_t i = 0; i < values.size(); ++i)
      if (std::isfinite(values[i]) && std::isfinite(other[i]))
        lo = std::min(lo, values[i]), hi = std::max(hi, values[i]);
    if (!(lo <= hi)) return {0, 1};
    return detail::padded_limits(lo, hi);
  }

  std::vector<double> x_, y_;
  std::vector<int> class_;
};

}  // namespace sumi::plot
