#pragma once
// Colours shared by every chart: matplotlib's tab10 for categories (series, classes) and the sequential
// "Blues" map for magnitudes (confusion matrices), so sumi's figures look like the ones readers know.
#include <algorithm>
#include <array>
#include <cmath>
#include <cstdio>
#include <string>
#include <string_view>

namespace sumi::plot {

// tab10: ten qualitative colours that stay distinguishable, also for most colour-blind readers.
inline constexpr std::array<std::string_view, 10> kTab10 = {"#1f77b4", "#ff7f0e", "#2ca02c", "#d62728",
                                                            "#9467bd", "#8c564b", "#e377c2", "#7f7f7f",
                                                            "#bcbd22", "#17becf"};

// Colour for category `index`; wraps around after ten.
inline std::string_view tab10_color(std::size_t index) {
  return kTab10[index % kTab10.size()];
}

// matplotlib's "Blues" colormap, control points at 0, 1/8, ..., 1.
inline constexpr std::array<std::array<unsigned char, 3>, 9> kBlues = {{{0xf7, 0xfb, 0xff},
                                                                        {0xde, 0xeb, 0xf7},
                                                                        {0xc6, 0xdb, 0xef},
                                                                        {0x9e, 0xca, 0xe1},
                                                                        {0x6b, 0xae, 0xd6},
                                                                        {0x42, 0x92, 0xc6},
                                                                        {0x21, 0x71, 0xb5},
                                                                        {0x08, 0x51, 0x9c},
                                                                        {0x08, 0x30, 0x6b}}};

// "#rrggbb" for `t` in [0, 1] (clamped; NaN counts as 0), interpolated linearly between control points.
inline std::string blues_color(double t) {
  if (!(t > 0.0)) t = 0.0;
  t = std::min(t, 1.0);
  const double position = t * double(kBlues.size() - 1);
  const auto index = std::min<std::size_t>(static_cast<std::size_t>(position), kBlues.size() - 2);
  const double fraction = position - double(index);
  char buffer[8];
  int channel[3];
  for (int c = 0; c < 3; ++c)
    channel[c] = static_cast<int>(
        std::lround(double(kBlues[index][c]) * (1.0 - fraction) + double(kBlues[index + 1][c]) * fraction));
  std::snprintf(buffer, sizeof(buffer), "#%02x%02x%02x", channel[0], channel[1], channel[2]);
  return buffer;
}

}  // namespace sumi::plot
