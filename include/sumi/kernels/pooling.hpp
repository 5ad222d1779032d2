#pragma once
// 2-d max and average pooling over NCHW planes, as PyTorch's CPU kernels compute them: plain loops over
// raw pointers, one plane (image and channel) at a time. Pooling moves a small fraction of a conv layer's
// data and does no multiply-adds, so these are scalar; planes run in parallel when there is enough work.
#include <algorithm>
#include <cmath>
#include <cstdint>
#include <limits>

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

// y = the largest element of each window, and argmax = its index in the plane (row * in_w + column), or -1
// for a window with no element. NaN wins over any number (the last NaN of the window), as PyTorch, so it
// propagates; a window of -infinity only points at its first element.
template <class T>
void max_pool2d_forward(const Pool2dGeometry& g, const T* x, T* y, int64_t* argmax) {
  const int64_t oh_n = g.out_h(), ow_n = g.out_w(), in_plane = g.in_h * g.in_w, out_plane = oh_n * ow_n;
  detail::for_each_plane(g.planes, in_plane + out_plane, [&](int64_t p) {
    const T* xp = x + p * in_plane;
    for (int64_t oh = 0; oh < oh_n; ++oh) {
      int64_t h0, h1;
      detail::window_range(oh, g.in_h, g.kernel_h, g.stride_h, g.pad_h, g.dilation_h, h0, h1);
      for (int64_t ow = 0; ow < ow_n; ++ow) {
        int64_t w0, w1;
        detail::window_range(ow, g.in_w, g.kernel_w, g.stride_w, g.pad_w, g.dilation_w, w0, w1);
        // A window whose every tap falls in the padding (possible with dilation) has no element: -infinity
        // and no gradient (PyTorch's index there points outside the plane).
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
        y[p * out_plane + oh * ow_n + ow] = best;
        argmax[p * out_plane + oh * ow_n + ow] = best_at;
      }
    }
  });
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
