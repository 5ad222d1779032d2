#pragma once
// Axis limits, tick placement and tick labels in matplotlib's spirit: 5% data margins, "nice" linear steps
// (1, 2, 2.5, 5 x 10^k) and decade ticks with optional minor ticks on log axes.
#include <algorithm>
#include <charconv>
#include <cmath>
#include <string>
#include <utility>
#include <vector>

#include "sumi/plot/detail/svg_document.hpp"
#include "sumi/util/number_text.hpp"

namespace sumi::plot {

// How a log axis labels its decades: 10 with a superscript exponent, or plain decimals (0.01, 1, 100).
enum class LogTickLabels { power, decimal };

}  // namespace sumi::plot

namespace sumi::plot::detail {

struct Tick {
  double value = 0;         // in data units
  std::string label;        // empty: an unlabelled (minor) tick
  std::string superscript;  // exponent drawn raised after `label` ("10" + "−2")
  bool major = true;
};

// Maps data values on one axis to pixels. For a log axis, lo/hi are log10 of the limits.
struct AxisMap {
  double lo = 0, hi = 1;
  bool log = false;
  double pixel_lo = 0, pixel_hi = 1;

  double operator()(double value) const {
    const double v = log ? std::log10(value) : value;
    return pixel_lo + (v - lo) / (hi - lo) * (pixel_hi - pixel_lo);
  }
  // Whether `value` lies within the limits (with a little slack for rounding).
  bool contains(double value) const {
    const double v = log ? std::log10(value) : value;
    const double slack = 1e-9 * (hi - lo);
    return v >= lo - slack && v <= hi + slack;
  }
};

// Data limits widened by `margin` of their span on each side; a zero span is widened so that a constant
// series still gets a usable axis. Works on log10 values for log axes. Limits are kept within +-1e307 so
// that the span and the tick arithmetic stay finite (values beyond, a diverged loss, fall off the plot).
inline std::pair<double, double> padded_limits(double lo, double hi, double margin = 0.05) {
  constexpr double kLargest = 1e307;
  lo = std::clamp(lo, -kLargest, kLargest);
  hi = std::clamp(hi, -kLargest, kLargest);
  if (!(hi > lo)) {
    const double half = lo == 0 ? 1.0 : std::abs(lo) * 0.1;
    return {lo - half, hi + half};
  }
  const double pad = (hi - lo) * margin;
  return {lo - pad, hi + pad};
}

// Replaces a leading '-' with the typographic minus sign.
inline std::string with_minus_sign(std::string text) {
  if (!text.empty() && text.front() == '-') text = std::string(kMinusSign) + text.substr(1);
  return text;
}

inline std::string format_fixed(double value, int decimals) {
  char buffer[128];
  const auto result =
      std::to_chars(buffer, buffer + sizeof(buffer), value, std::chars_format::fixed, decimals);
  std::string text(buffer, result.ptr);
  if (text.find_first_not_of("-0.") == std::string::npos)
    text = decimals > 0 ? "0." + std::string(std::size_t(decimals), '0') : "0";
  return text;
}

// `value` with its significant digits down to the 10^lowest_exponent place, as printf's %g writes them
// (1.475e-09, 4.15e+12): i * step carries rounding noise that the shortest form would show.
inline std::string format_significant(double value, int lowest_exponent) {
  if (value == 0) return "0";
  const int digits = std::clamp(int(std::floor(std::log10(std::abs(value)))) - lowest_exponent + 1, 1, 17);
  char buffer[64];
  const auto result =
      std::to_chars(buffer, buffer + sizeof(buffer), value, std::chars_format::general, digits);
  return std::string(buffer, result.ptr);
}

// The step among 1, 2, 2.5, 5 x 10^k that gives about `target` intervals over `span`.
inline double nice_step(double span, int target) {
  const double raw = span / std::max(1, target);
  const double magnitude = std::pow(10.0, std::floor(std::log10(raw)));
  for (const double multiple : {1.0, 2.0, 2.5, 5.0, 10.0})
    if (multiple * magnitude >= raw * (1 - 1e-9)) return multiple * magnitude;
  return 10.0 * magnitude;
}

// Ticks at multiples of a nice step inside [lo, hi], labelled with just enough decimals for the step.
inline std::vector<Tick> linear_ticks(double lo, double hi, int target) {
  std::vector<Tick> ticks;
  if (!(hi > lo) || !std::isfinite(lo) || !std::isfinite(hi)) return ticks;
  const double step = nice_step(hi - lo, target);
  const int exponent = int(std::floor(std::log10(step) + 1e-9));
  const double mantissa = step / std::pow(10.0, exponent);
  const int lowest = exponent - (std::abs(mantissa - 2.5) < 1e-6 ? 1 : 0);  // the step's last digit
  const int decimals = std::max(0, -lowest);
  const double largest = std::max(std::abs(lo), std::abs(hi));
  const bool general = decimals > 6 || largest >= 1e7;  // very small or large: 2.5e-08, 1e+09
  const auto first = static_cast<long long>(std::ceil(lo / step - 1e-9));
  const auto last = static_cast<long long>(std::floor(hi / step + 1e-9));
  for (long long i = first; i <= last; ++i) {
    const double value = double(i) * step;
    Tick tick;
    tick.value = value;
    tick.label = with_minus_sign(general ? format_significant(i == 0 ? 0.0 : value, lowest)
                                         : format_fixed(value, decimals));
    ticks.push_back(std::move(tick));
  }
  return ticks;
}

inline std::string decimal_power_label(int mantissa, int exponent) {
  const double value = double(mantissa) * std::pow(10.0, exponent);
  if (exponent < -6 || exponent > 6) return util::format_round_trip(value);
  return format_fixed(value, std::max(0, -exponent));
}

// Log-axis ticks for log10 limits [log_lo, log_hi]: labelled decades (every k-th one when many), minor ticks
// at 2..9 x 10^k; when the range holds fewer than two decades the minor ticks get decimal labels too, and
// a range that holds none of them gets linear ticks, so the axis is never left unlabelled.
inline std::vector<Tick> log_ticks(double log_lo, double log_hi, bool minor, LogTickLabels style) {
  std::vector<Tick> ticks;
  if (!(log_hi > log_lo) || !std::isfinite(log_lo) || !std::isfinite(log_hi)) return ticks;
  const auto first = static_cast<int>(std::ceil(log_lo - 1e-9));
  const auto last = static_cast<int>(std::floor(log_hi + 1e-9));
  const int decades = last - first + 1;
  const int stride = std::max(1, (decades + 7) / 8);
  const bool label_minor = decades < 2;
  const double span = log_hi - log_lo;
  for (int k = first; k <= last; ++k) {
    Tick tick;
    tick.value = std::pow(10.0, k);
    tick.major = ((k % stride) + stride) % stride == 0;
    if (tick.major) {
      if (style == LogTickLabels::decimal || label_minor) {
        tick.label = decimal_power_label(1, k);
      } else {
        tick.label = "10";
        tick.superscript = with_minus_sign(std::to_string(k));
      }
    }
    ticks.push_back(std::move(tick));
  }
  if ((minor && stride == 1) || label_minor) {
    for (int k = static_cast<int>(std::floor(log_lo)); k <= static_cast<int>(std::floor(log_hi)); ++k)
      for (int m = 2; m <= 9; ++m) {
        const double v = std::log10(double(m)) + k;
        if (v < log_lo - 1e-9 || v > log_hi + 1e-9) continue;
        Tick tick;
        tick.value = double(m) * std::pow(10.0, k);
        tick.major = false;
        if (label_minor && (span <= 0.5 || m == 2 || m == 3 || m == 5))
          tick.label = decimal_power_label(m, k);
        ticks.push_back(std::move(tick));
      }
  }
  // A range narrower than the gap between its minor ticks holds no labelled one (0.142 to 0.153, say):
  // label it as a linear axis would; over so short a range the log scale is nearly linear.
  if (std::none_of(ticks.begin(), ticks.end(), [](const Tick& t) { return !t.label.empty(); }))
    return linear_ticks(std::pow(10.0, log_lo), std::pow(10.0, log_hi), 5);
  std::sort(ticks.begin(), ticks.end(), [](const Tick& a, const Tick& b) { return a.value < b.value; });
  return ticks;
}

// Estimated width of a tick label including its superscript.
inline double tick_label_width(const Tick& tick, double font_size) {
  return text_width(tick.label, font_size) + text_width(tick.superscript, font_size * 0.75);
}

// <text> for a tick label, with the exponent raised and smaller.
inline void append_tick_label(std::string& out, double x, double y, const Tick& tick, double font_size,
                              std::string_view anchor) {
  out += "<text x=\"";
  append_number(out, x);
  out += "\" y=\"";
  append_number(out, y);
  out += "\"";
  if (anchor != "start") {
    out += " text-anchor=\"";
    out += anchor;
    out += "\"";
  }
  out += '>';
  append_escaped(out, tick.label);
  if (!tick.superscript.empty()) {
    out += "<tspan dy=\"";
    append_number(out, -0.4 * font_size);
    out += "\" font-size=\"";
    append_number(out, 0.75 * font_size);
    out += "\">";
    append_escaped(out, tick.superscript);
    out += "</tspan>";
  }
  out += "</text>\n";
}

}  // namespace sumi::plot::detail
