#pragma once
// Resampling of NCHW planes to another height and width, as PyTorch 1.13's CPU kernels compute it: nearest
// and bilinear interpolation (F.interpolate) and adaptive average pooling (F.adaptive_avg_pool2d). The source
// indices and weights are PyTorch's; a bilinear output may differ from PyTorch's in its last bit or two (its
// products are summed with other roundings). Each output row and column reads a fixed set of input rows and
// columns, so the source indices and weights are worked out once per axis and every plane (image and
// channel) reuses them; planes run in parallel when there is enough work. Where PyTorch's own kernels
// disagree, one rule is kept for forward and backward: nearest copies an axis whose size is kept and halves
// the index when it doubles (PyTorch's backward and its forward for one channel; its forward for more
// channels reads floor(dst / scale), in double for double input); a global adaptive pool sums in order where
// PyTorch's mean sums in blocks.
#include <algorithm>
#include <cmath>
#include <cstdint>
#include <optional>
#include <vector>

#include "sumi/kernels/plane_loops.hpp"

namespace sumi::kernels {

// x [planes, in_h, in_w] resampled to y [planes, out_h, out_w].
struct Resample2dGeometry {
  int64_t planes = 1;
  int64_t in_h = 1, in_w = 1;
  int64_t out_h = 1, out_w = 1;

  int64_t in_plane() const { return in_h * in_w; }
  int64_t out_plane() const { return out_h * out_w; }
};

// The scale factors a caller gave (output size = floor(input size * scale)), per axis; PyTorch computes the
// source indices from them instead of from the sizes, which differs when the output size was rounded.
struct ResampleScales {
  std::optional<double> h, w;
};

// The input index that output index `dst` of a nearest resampling reads: floor(dst * in / out), or
// floor(dst / scale) when a scale was given, in float arithmetic, except that equal sizes copy and an output
// twice the input halves the index, whatever the scale, as PyTorch's nearest_idx (see the file's comment).
inline int64_t nearest_source_index(int64_t dst, int64_t in, int64_t out, std::optional<double> scale) {
  if (out == in) return dst;
  if (out == 2 * in) return dst >> 1;
  const float ratio = scale.has_value() && *scale > 0 ? float(1.0 / *scale) : float(in) / float(out);
  return std::min(int64_t(std::floor(float(dst) * ratio)), in - 1);
}

inline std::vector<int64_t> nearest_source_indices(int64_t in, int64_t out, std::optional<double> scale) {
  std::vector<int64_t> index(std::size_t(out), 0);
  for (int64_t o = 0; o < out; ++o) index[std::size_t(o)] = nearest_source_index(o, in, out, scale);
  return index;
}

// y = x at each output position's nearest source position.
template <class T>
void upsample_nearest2d_forward(const Resample2dGeometry& g, const ResampleScales& scales, const T* x, T* y) {
  const std::vector<int64_t> rows = nearest_source_indices(g.in_h, g.out_h, scales.h);
  const std::vector<int64_t> cols = nearest_source_indices(g.in_w, g.out_w, scales.w);
  detail::for_each_plane(g.planes, g.in_plane() + g.out_plane(), [&](int64_t p) {
    const T* xp = x + p * g.in_plane();
    T* yp = y + p * g.out_plane();
    for (int64_t oh = 0; oh < g.out_h; ++oh) {
      const T* x_row = xp + rows[std::size_t(oh)] * g.in_w;
      for (int64_t ow = 0; ow < g.out_w; ++ow) yp[oh * g.out_w + ow] = x_row[cols[std::size_t(ow)]];
    }
  });
}

// gx = the sum of gy over the output positions that read each input position (gx is overwritten).
template <class T>
void upsample_nearest2d_backward(const Resample2dGeometry& g, const ResampleScales& scales, const T* gy,
                                 T* gx) {
  const std::vector<int64_t> rows = nearest_source_indices(g.in_h, g.out_h, scales.h);
  const std::vector<int64_t> cols = nearest_source_indices(g.in_w, g.out_w, scales.w);
  detail::for_each_plane(g.planes, g.in_plane() + g.out_plane(), [&](int64_t p) {
    T* gxp = gx + p * g.in_plane();
    const T* gyp = gy + p * g.out_plane();
    std::fill_n(gxp, g.in_plane(), T(0));
    for (int64_t oh = 0; oh < g.out_h; ++oh) {
      T* gx_row = gxp + rows[std::size_t(oh)] * g.in_w;
      for (int64_t ow = 0; ow < g.out_w; ++ow) gx_row[cols[std::size_t(ow)]] += gyp[oh * g.out_w + ow];
    }
  });
}

// Output index o of a linear resampling reads input indices i0 and i1 = i0 or i0 + 1 with weights w0, w1.
template <class T>
struct LinearTap {
  int64_t i0 = 0, i1 = 0;
  T w0 = T(1), w1 = T(0);
};

// The taps of a linear resampling of one axis, as PyTorch computes them in T (float for float, double for
// double, as its opmath). An axis that keeps its size is copied whatever the scale, as PyTorch. Otherwise
// align_corners maps the first and last output centres onto the first and last input centres (src = dst *
// (in - 1) / (out - 1)); without it, pixel areas line up (src = (dst + 0.5) / scale - 0.5, where scale is
// the caller's or out / in) and a source before the first centre is clamped to it.
template <class T>
std::vector<LinearTap<T>> linear_taps(int64_t in, int64_t out, bool align_corners,
                                      std::optional<double> scale) {
  std::vector<LinearTap<T>> taps(static_cast<std::size_t>(out));
  if (out == in) {
    for (int64_t o = 0; o < out; ++o) taps[std::size_t(o)] = {o, o, T(1), T(0)};
    return taps;
  }
  T ratio;
  if (align_corners)
    ratio = out > 1 ? T(in - 1) / T(out - 1) : T(0);
  else
    ratio = scale.has_value() && *scale > 0 ? T(1.0 / *scale) : T(in) / T(out);
  for (int64_t o = 0; o < out; ++o) {
    T src = align_corners ? ratio * T(o) : ratio * (T(o) + T(0.5)) - T(0.5);
    if (src < T(0)) src = T(0);
    const int64_t i0 = std::min(int64_t(src), in - 1);
    // In [0, 1): the source never passes the last input centre by a whole step (PyTorch clamps it to
    // [0, 1] all the same, which changes nothing).
    const T lambda = src - T(i0);
    taps[std::size_t(o)] = {i0, i0 < in - 1 ? i0 + 1 : i0, T(1) - lambda, lambda};
  }
  return taps;
}

// y = the weighted sum of the four input positions around each output position's source.
template <class T>
void upsample_bilinear2d_forward(const Resample2dGeometry& g, bool align_corners,
                                 const ResampleScales& scales, const T* x, T* y) {
  const std::vector<LinearTap<T>> rows = linear_taps<T>(g.in_h, g.out_h, align_corners, scales.h);
  const std::vector<LinearTap<T>> cols = linear_taps<T>(g.in_w, g.out_w, align_corners, scales.w);
  detail::for_each_plane(g.planes, g.in_plane() + g.out_plane(), [&](int64_t p) {
    const T* xp = x + p * g.in_plane();
    T* yp = y + p * g.out_plane();
    for (int64_t oh = 0; oh < g.out_h; ++oh) {
      const LinearTap<T>& r = rows[std::size_t(oh)];
      const T* top = xp + r.i0 * g.in_w;
      const T* bottom = xp + r.i1 * g.in_w;
      for (int64_t ow = 0; ow < g.out_w; ++ow) {
        const LinearTap<T>& c = cols[std::size_t(ow)];
        yp[oh * g.out_w + ow] =
            r.w0 * (c.w0 * top[c.i0] + c.w1 * top[c.i1]) + r.w1 * (c.w0 * bottom[c.i0] + c.w1 * bottom[c.i1]);
      }
    }
  });
}

// gx = each output's gy spread over its four input positions by the same weights (gx is overwritten).
template <class T>
void upsample_bilinear2d_backward(const Resample2dGeometry& g, bool align_corners,
                                  const ResampleScales& scales, const T* gy, T* gx) {
  const std::vector<LinearTap<T>> rows = linear_taps<T>(g.in_h, g.out_h, align_corners, scales.h);
  const std::vector<LinearTap<T>> cols = linear_taps<T>(g.in_w, g.out_w, align_corners, scales.w);
  detail::for_each_plane(g.planes, g.in_plane() + g.out_plane(), [&](int64_t p) {
    T* gxp = gx + p * g.in_plane();
    const T* gyp = gy + p * g.out_plane();
    std::fill_n(gxp, g.in_plane(), T(0));
    for (int64_t oh = 0; oh < g.out_h; ++oh) {
      const LinearTap<T>& r = rows[std::size_t(oh)];
      T* top = gxp + r.i0 * g.in_w;
      T* bottom = gxp + r.i1 * g.in_w;
      for (int64_t ow = 0; ow < g.out_w; ++ow) {
        const LinearTap<T>& c = cols[std::size_t(ow)];
        const T v = gyp[oh * g.out_w + ow];
        top[c.i0] += r.w0 * c.w0 * v;
        top[c.i1] += r.w0 * c.w1 * v;
        bottom[c.i0] += r.w1 * c.w0 * v;
        bottom[c.i1] += r.w1 * c.w1 * v;
      }
    }
  });
}

// Adaptive pooling's window for output index o: input indices [floor(o * in / out), ceil((o + 1) * in /
// out)), never empty, overlapping when in is not a multiple of out, repeating inputs when out > in.
inline int64_t adaptive_window_begin(int64_t o, int64_t in, int64_t out) {
  return o * in / out;
}
inline int64_t adaptive_window_end(int64_t o, int64_t in, int64_t out) {
  return ((o + 1) * in + out - 1) / out;
}

namespace detail {

// f(output index in the plane, h0, h1, w0, w1) for every window of an adaptive pool.
template <class F>
void for_each_adaptive_window(const Resample2dGeometry& g, F f) {
  for (int64_t oh = 0; oh < g.out_h; ++oh) {
    const int64_t h0 = adaptive_window_begin(oh, g.in_h, g.out_h),
                  h1 = adaptive_window_end(oh, g.in_h, g.out_h);
    for (int64_t ow = 0; ow < g.out_w; ++ow)
      f(oh * g.out_w + ow, h0, h1, adaptive_window_begin(ow, g.in_w, g.out_w),
        adaptive_window_end(ow, g.in_w, g.out_w));
  }
}

}  // namespace detail

namespace detail {

// A window's sum (or gradient) divided as PyTorch divides it: by the window's height, then by its width
// (one division by the area rounds differently in about a quarter of float outputs), except for a global
// pool (output 1 x 1), which PyTorch computes as a mean, one division by the area.
template <class T>
T adaptive_window_share(const Resample2dGeometry& g, T v, int64_t kh, int64_t kw) {
  return g.out_h == 1 && g.out_w == 1 ? v / T(kh * kw) : v / T(kh) / T(kw);
}

}  // namespace detail

// y = the mean of each adaptive window.
template <class T>
void adaptive_avg_pool2d_forward(const Resample2dGeometry& g, const T* x, T* y) {
  detail::for_each_plane(g.planes, g.in_plane() + g.out_plane(), [&](int64_t p) {
    const T* xp = x + p * g.in_plane();
    T* yp = y + p * g.out_plane();
    detail::for_each_adaptive_window(g, [&](int64_t o, int64_t h0, int64_t h1, int64_t w0, int64_t w1) {
      yp[o] = detail::adaptive_window_share(g, detail::rectangle_sum(xp, g.in_w, h0, h1, w0, w1), h1 - h0,
                                            w1 - w0);
    });
  });
}

// gx = each window's gy, divided as the forward divides its sum, spread over the window (gx is
// overwritten; overlapping windows add up).
template <class T>
void adaptive_avg_pool2d_backward(const Resample2dGeometry& g, const T* gy, T* gx) {
  detail::for_each_plane(g.planes, g.in_plane() + g.out_plane(), [&](int64_t p) {
    T* gxp = gx + p * g.in_plane();
    const T* gyp = gy + p * g.out_plane();
    std::fill_n(gxp, g.in_plane(), T(0));
    detail::for_each_adaptive_window(g, [&](int64_t o, int64_t h0, int64_t h1, int64_t w0, int64_t w1) {
      detail::rectangle_add(gxp, g.in_w, h0, h1, w0, w1,
                            detail::adaptive_window_share(g, gyp[o], h1 - h0, w1 - w0));
    });
  });
}

}  // namespace sumi::kernels
