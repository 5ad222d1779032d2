#pragma once
// 2-d max and average pooling over NCHW planes, as PyTorch's CPU kernels compute them: plain loops over
// raw pointers, one plane (image and channel) at a time, planes in parallel when there is enough work. The
// float max pool's forward is vectorized (max_pool_avx.hpp): its scalar compare is data-dependent branching
// that made it ten times its backward; the other kernels are memory-bound scalar loops.
#include <algorithm>
#include <cmath>
#include <cstdint>
#include <limits>
#include <type_traits>
#include <vector>

#include "sumi/kernels/cpu_features.hpp"
#include "sumi/kernels/max_pool_avx.hpp"
#include "sumi/kernels/plane_loops.hpp"

namespace sumi::kernels {

// x [planes, in_h, in_w] pooled to y [planes, out_h(), out_w()]. Window (oh, ow) covers rows
// oh * stride_h - pad_h + i * dilation_h, i < kernel_h (columns alike); padding adds no elements, it only
// shifts the windows. ceil_mode rounds the output size up, as PyTorch: a last window that starts inside the
// input or its left padding is kept even when it is not whole.
struct Pool2dGeometry {
  int64_t planes = 1;
  int64_t in_h = 1, in_w = 1;
  int64_t kernel_h = 1, kernel_w = 1;
  int64_t stride_h = 1, stride_w = 1;
  int64_t pad_h = 0, pad_w = 0;
  int64_t dilation_h = 1, dilation_w = 1;
  bool ceil_mode = false;

  int64_t out_h() const { return output_size(in_h, kernel_h, stride_h, pad_h, dilation_h); }
  int64_t out_w() const { return output_size(in_w, kernel_w, stride_w, pad_w, dilation_w); }

 private:
  int64_t output_size(int64_t in, int64_t k, int64_t s, int64_t p, int64_t d) const {
    const int64_t span = in + 2 * p - d * (k - 1) - 1 + (ceil_mode ? s - 1 : 0);
    int64_t out = (span >= 0 ? span / s : -((-span + s - 1) / s)) + 1;  // floor division
    if (ceil_mode && (out - 1) * s >= in + p) --out;  // the last window starts in the padding
    return out;
  }
};

namespace detail {

// The window's first row and one past its last inside the input, for output row o.
inline void window_range(int64_t o, int64_t in, int64_t k, int64_t s, int64_t p, int64_t d, int64_t& begin,
                         int64_t& end) {
  begin = o * s - p;
  end = std::min(begin + (k - 1) * d + 1, in);
  while (begin < 0) begin += d;
}

}  // namespace detail

namespace detail {

// One max-pool window: the largest of rows [h0, h1) and columns [w0, w1) of plane xp, stepping by the
// dilation, and its index in the plane; NaN wins over any number (the last NaN of the window), so it
// propagates; a window of -infinity points at its first element, and one with no element (every tap in the
// padding, possible with dilation) gives -infinity and index -1 (no gradient; PyTorch's index there points
// outside the plane).
template <class T>
void max_window(const Pool2dGeometry& g, const T* xp, int64_t h0, int64_t h1, int64_t w0, int64_t w1, T& y,
                int64_t& argmax) {
  T best = -std::numeric_limits<T>::infinity();
  int64_t best_at = h0 < h1 && w0 < w1 ? h0 * g.in_w + w0 : -1;
  for (int64_t h = h0; h < h1; h += g.dilation_h)
    for (int64_t w = w0; w < w1; w += g.dilation_w) {
      const T v = xp[h * g.in_w + w];
      if (v > best || std::isnan(v)) {
        best = v;
        best_at = h * g.in_w + w;
      }
    }
  y = best;
  argmax = best_at;
}

// Output columns [ow0, ow1) of output row oh of plane xp, window by window.
template <class T>
void max_pool_columns(const Pool2dGeometry& g, const T* xp, int64_t oh, int64_t ow0, int64_t ow1, T* y_row,
                      int64_t* argmax_row) {
  int64_t h0, h1;
  window_range(oh, g.in_h, g.kernel_h, g.stride_h, g.pad_h, g.dilation_h, h0, h1);
  for (int64_t ow = ow0; ow < ow1; ++ow) {
    int64_t w0, w1;
    window_range(ow, g.in_w, g.kernel_w, g.stride_w, g.pad_w, g.dilation_w, w0, w1);
    max_window(g, xp, h0, h1, w0, w1, y_row[ow], argmax_row[ow]);
  }
}

}  // namespace detail

// y = the largest element of each window, and argmax = its index in the plane (row * in_w + column), or -1
// for a window with no element (see detail::max_window). The scalar reference the vectorized kernel is held
// to.
template <class T>
void max_pool2d_forward_reference(const Pool2dGeometry& g, const T* x, T* y, int64_t* argmax) {
  const int64_t oh_n = g.out_h(), ow_n = g.out_w(), in_plane = g.in_h * g.in_w, out_plane = oh_n * ow_n;
  detail::for_each_plane(g.planes, in_plane + out_plane, [&](int64_t p) {
    for (int64_t oh = 0; oh < oh_n; ++oh)
      detail::max_pool_columns(g, x + p * in_plane, oh, 0, ow_n, y + p * out_plane + oh * ow_n,
                               argmax + p * out_plane + oh * ow_n);
  });
}

#if SUMI_X86_KERNELS
namespace detail {

// The float max pool with AVX2 or AVX-512 (max_pool_avx.hpp): the output columns whose windows lie inside
// the input one vector lane each, the rest (edge columns, rows whose taps all fall in the padding) window by
// window as the reference.
inline void max_pool2d_forward_vectorized(Isa isa, const Pool2dGeometry& g, const float* x, float* y,
                                          int64_t* argmax) {
  const int64_t oh_n = g.out_h(), ow_n = g.out_w(), in_plane = g.in_h * g.in_w, out_plane = oh_n * ow_n;
  // Interior columns: ow * stride - pad >= 0 and the window's last column ow * stride - pad + (k - 1) *
  // dilation < in_w.
  const int64_t last_start = g.in_w - 1 - (g.kernel_w - 1) * g.dilation_w + g.pad_w;
  const int64_t ow_begin = std::min(ow_n, (g.pad_w + g.stride_w - 1) / g.stride_w);
  const int64_t ow_end = last_start < 0 ? ow_begin : std::clamp(last_start / g.stride_w + 1, ow_begin, ow_n);
  // Each output row's taps (the window rows inside the input, all kernel_w columns), in the reference's
  // order, as offsets from the window's first column. Only where some window lies inside the input, which
  // bounds kernel_w by in_w; the rows inside are at most in_h. (A kernel far larger than the input, which
  // its padding allows, must not size this.)
  const int64_t taps_per_row = ow_begin < ow_end ? std::min(g.kernel_h, g.in_h) * g.kernel_w : 0;
  std::vector<int32_t> tap_offsets(std::size_t(oh_n * taps_per_row));
  std::vector<int64_t> taps(static_cast<std::size_t>(oh_n));
  for (int64_t oh = 0; oh < oh_n && taps_per_row > 0; ++oh) {
    int64_t h0, h1;
    window_range(oh, g.in_h, g.kernel_h, g.stride_h, g.pad_h, g.dilation_h, h0, h1);
    for (int64_t h = h0; h < h1; h += g.dilation_h)
      for (int64_t kw = 0; kw < g.kernel_w; ++kw)
        tap_offsets[std::size_t(oh * taps_per_row + taps[std::size_t(oh)]++)] =
            int32_t(h * g.in_w + kw * g.dilation_w);
  }
  for_each_plane(g.planes, in_plane + out_plane, [&](int64_t p) {
    const float* xp = x + p * in_plane;
    for (int64_t oh = 0; oh < oh_n; ++oh) {
      float* y_row = y + p * out_plane + oh * ow_n;
      int64_t* argmax_row = argmax + p * out_plane + oh * ow_n;
      if (taps[std::size_t(oh)] == 0 || ow_begin == ow_end) {
        max_pool_columns(g, xp, oh, 0, ow_n, y_row, argmax_row);
        continue;
      }
      max_pool_columns(g, xp, oh, 0, ow_begin, y_row, argmax_row);
      const MaxPoolRow row{.plane = xp,
                           .tap_offsets = tap_offsets.data() + oh * taps_per_row,
                           .taps = taps[std::size_t(oh)],
                           .first_column = ow_begin * g.stride_w - g.pad_w,
                           .stride = g.stride_w,
                           .count = ow_end - ow_begin,
                           .y = y_row + ow_begin,
                           .argmax = argmax_row + ow_begin};
      if (isa == Isa::avx512)
        avx512::max_pool_row(row);
      else
        avx2::max_pool_row(row);
      max_pool_columns(g, xp, oh, ow_end, ow_n, y_row, argmax_row);
    }
  });
}

}  // namespace detail
#endif

// max_pool2d_forward_reference's results, vectorized for float where the ISA in force has vectors (the
// lanes' indices are 32-bit, so for planes of fewer than 2^31 elements).
template <class T>
void max_pool2d_forward(const Pool2dGeometry& g, const T* x, T* y, int64_t* argmax) {
#if SUMI_X86_KERNELS
  if constexpr (std::is_same_v<T, float>) {
    const Isa isa = active_isa();
    if (isa != Isa::scalar && g.in_h * g.in_w <= std::numeric_limits<int32_t>::max())
      return detail::max_pool2d_forward_vectorized(isa, g, x, y, argmax);
  }
#endif
  max_pool2d_forward_reference(g, x, y, argmax);
}

// gx = gy added at each window's argmax (gx is overwritten; overlapping windows add up).
template <class T>
void max_pool2d_backward(const Pool2dGeometry& g, const T* gy, const int64_t* argmax, T* gx) {
  const int64_t in_plane = g.in_h * g.in_w, out_plane = g.out_h() * g.out_w();
  detail::for_each_plane(g.planes, in_plane + out_plane, [&](int64_t p) {
    T* gxp = gx + p * in_plane;
    std::fill_n(gxp, in_plane, T(0));
    for (int64_t o = 0; o < out_plane; ++o)
      if (const int64_t at = argmax[p * out_plane + o]; at >= 0) gxp[at] += gy[p * out_plane + o];
  });
}

namespace detail {

// Calls f(h0, h1, w0, w1, divisor) for every window of an average pool: the window's rows and columns
// inside the input, and what its sum is divided by (the window clipped to the padded input when
// count_include_pad, else the elements inside the input), as PyTorch.
template <class F>
void for_each_average_window(const Pool2dGeometry& g, bool count_include_pad, F f) {
  const int64_t oh_n = g.out_h(), ow_n = g.out_w();
  for (int64_t oh = 0; oh < oh_n; ++oh) {
    const int64_t top = oh * g.stride_h - g.pad_h, bottom = std::min(top + g.kernel_h, g.in_h + g.pad_h);
    const int64_t h0 = std::max<int64_t>(top, 0), h1 = std::min(bottom, g.in_h);
    for (int64_t ow = 0; ow < ow_n; ++ow) {
      const int64_t left = ow * g.stride_w - g.pad_w, right = std::min(left + g.kernel_w, g.in_w + g.pad_w);
      const int64_t w0 = std::max<int64_t>(left, 0), w1 = std::min(right, g.in_w);
      const int64_t divisor = count_include_pad ? (bottom - top) * (right - left) : (h1 - h0) * (w1 - w0);
      f(oh * ow_n + ow, h0, h1, w0, w1, divisor);
    }
  }
}

}  // namespace detail

// y = the mean of each window (dilation must be 1, as PyTorch's avg_pool2d has none).
template <class T>
void avg_pool2d_forward(const Pool2dGeometry& g, const T* x, T* y, bool count_include_pad) {
  const int64_t in_plane = g.in_h * g.in_w, out_plane = g.out_h() * g.out_w();
  detail::for_each_plane(g.planes, in_plane + out_plane, [&](int64_t p) {
    const T* xp = x + p * in_plane;
    T* yp = y + p * out_plane;
    detail::for_each_average_window(
        g, count_include_pad,
        [&](int64_t o, int64_t h0, int64_t h1, int64_t w0, int64_t w1, int64_t divisor) {
          yp[o] = detail::rectangle_sum(xp, g.in_w, h0, h1, w0, w1) / T(divisor);
        });
  });
}

// gx = each window's gy / divisor spread over the window's elements (gx is overwritten).
template <class T>
void avg_pool2d_backward(const Pool2dGeometry& g, const T* gy, T* gx, bool count_include_pad) {
  const int64_t in_plane = g.in_h * g.in_w, out_plane = g.out_h() * g.out_w();
  detail::for_each_plane(g.planes, in_plane + out_plane, [&](int64_t p) {
    T* gxp = gx + p * in_plane;
    const T* gyp = gy + p * out_plane;
    std::fill_n(gxp, in_plane, T(0));
    detail::for_each_average_window(
        g, count_include_pad,
        [&](int64_t o, int64_t h0, int64_t h1, int64_t w0, int64_t w1, int64_t divisor) {
          detail::rectangle_add(gxp, g.in_w, h0, h1, w0, w1, gyp[o] / T(divisor));
        });
  });
}

}  // namespace sumi::kernels
