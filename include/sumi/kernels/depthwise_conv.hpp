#pragma once
// Depthwise 2-d convolution (groups == in_channels): each input channel convolved with its own
// `multiplier` = out_channels / in_channels filters, output channel co reading input channel co / multiplier
// (PyTorch's order); weight [out_channels, 1, kernel_h, kernel_w]. A general convolution kernel would run it
// as in_channels convolutions of one channel each, whose matrix products have a reduction of kernel_h *
// kernel_w and whose set-up dominates; here one plane is one multiply-add per tap and element.
//
// The references are plain loops, one output element at a time. The fast kernels work a row at a time: for
// each tap, the output row's columns whose input lies inside the plane form a strided multiply-add (or dot
// product) compiled for each ISA (elementwise.hpp's loops) and picked at run time; the taps are visited in
// the reference's order. (Keeping a row's sums in registers across its taps, with masked loads at the edges,
// measured slower on 56-column rows than adding one tap at a time.) Planes run in parallel (output planes for
// the forward, input planes for the input gradient, channels for the weight gradient, so no two threads write
// the same element and results do not depend on the thread count).
#include <algorithm>
#include <cstdint>
#include <stdexcept>
#include <string>
#include <vector>

#include "sumi/kernels/conv_epilogue.hpp"
#include "sumi/kernels/conv_geometry.hpp"
#include "sumi/kernels/cpu_features.hpp"
#include "sumi/kernels/elementwise.hpp"
#include "sumi/kernels/threading.hpp"

namespace sumi::kernels {

namespace detail {

// out_channels / in_channels, after refusing a geometry the kernels cannot run (std::invalid_argument): the
// ops check their operands, but the kernels are public.
inline int64_t depthwise_multiplier(const Conv2dGeometry& g) {
  g.validate();
  if (g.out_channels % g.in_channels != 0)
    throw std::invalid_argument("depthwise conv2d: out_channels " + std::to_string(g.out_channels) +
                                " is not a multiple of in_channels " + std::to_string(g.in_channels) + " (" +
                                g.to_string() + ")");
  return g.out_channels / g.in_channels;
}

// The input position of output position o and tap k along one axis.
inline int64_t depthwise_input_index(int64_t o, int64_t k, int64_t stride, int64_t pad, int64_t dilation) {
  return o * stride - pad + k * dilation;
}

}  // namespace detail

// y [N, out_channels, out_h, out_w] = the depthwise convolution of x, + bias[co] (bias may be null), then
// relu (v < 0 ? 0 : v, NaN passing) when `relu`.
template <class T>
void depthwise_conv2d_forward_reference(const Conv2dGeometry& g, const T* x, const T* w, const T* bias, T* y,
                                        bool relu = false) {
  const int64_t m = detail::depthwise_multiplier(g), Ho = g.out_h(), Wo = g.out_w();
  for (int64_t n = 0; n < g.batch; ++n)
    for (int64_t co = 0; co < g.out_channels; ++co) {
      const T* xp = x + (n * g.in_channels + co / m) * g.in_h * g.in_w;
      const T* wp = w + co * g.kernel_h * g.kernel_w;
      for (int64_t oh = 0; oh < Ho; ++oh)
        for (int64_t ow = 0; ow < Wo; ++ow) {
          T acc = T(0);
          for (int64_t ki = 0; ki < g.kernel_h; ++ki)
            for (int64_t kj = 0; kj < g.kernel_w; ++kj) {
              const int64_t ih = detail::depthwise_input_index(oh, ki, g.stride_h, g.pad_h, g.dilation_h);
              const int64_t iw = detail::depthwise_input_index(ow, kj, g.stride_w, g.pad_w, g.dilation_w);
              if (ih >= 0 && ih < g.in_h && iw >= 0 && iw < g.in_w)
                acc += wp[ki * g.kernel_w + kj] * xp[ih * g.in_w + iw];
            }
          y[((n * g.out_channels + co) * Ho + oh) * Wo + ow] =
              conv_epilogue_value(acc, bias ? bias[co] : T(0), relu);
        }
    }
}

// gx [N, in_channels, in_h, in_w] = the input gradient of gy [N, out_channels, out_h, out_w] (overwritten).
template <class T>
void depthwise_conv2d_backward_input_reference(const Conv2dGeometry& g, const T* gy, const T* w, T* gx) {
  const int64_t m = detail::depthwise_multiplier(g), Ho = g.out_h(), Wo = g.out_w();
  std::fill_n(gx, g.input_numel(), T(0));
  for (int64_t n = 0; n < g.batch; ++n)
    for (int64_t co = 0; co < g.out_channels; ++co) {
      T* gxp = gx + (n * g.in_channels + co / m) * g.in_h * g.in_w;
      const T* wp = w + co * g.kernel_h * g.kernel_w;
      for (int64_t oh = 0; oh < Ho; ++oh)
        for (int64_t ow = 0; ow < Wo; ++ow)
          for (int64_t ki = 0; ki < g.kernel_h; ++ki)
            for (int64_t kj = 0; kj < g.kernel_w; ++kj) {
              const int64_t ih = detail::depthwise_input_index(oh, ki, g.stride_h, g.pad_h, g.dilation_h);
              const int64_t iw = detail::depthwise_input_index(ow, kj, g.stride_w, g.pad_w, g.dilation_w);
              if (ih >= 0 && ih < g.in_h && iw >= 0 && iw < g.in_w)
                gxp[ih * g.in_w + iw] +=
                    wp[ki * g.kernel_w + kj] * gy[((n * g.out_channels + co) * Ho + oh) * Wo + ow];
            }
    }
}

// gw [out_channels, 1, kernel_h, kernel_w] = the weight gradient (overwritten), summed in double.
template <class T>
void depthwise_conv2d_backward_weight_reference(const Conv2dGeometry& g, const T* x, const T* gy, T* gw) {
  const int64_t m = detail::depthwise_multiplier(g), Ho = g.out_h(), Wo = g.out_w();
  for (int64_t co = 0; co < g.out_channels; ++co)
    for (int64_t ki = 0; ki < g.kernel_h; ++ki)
      for (int64_t kj = 0; kj < g.kernel_w; ++kj) {
        double sum = 0;
        for (int64_t n = 0; n < g.batch; ++n) {
          const T* xp = x + (n * g.in_channels + co / m) * g.in_h * g.in_w;
          const T* gyp = gy + (n * g.out_channels + co) * Ho * Wo;
          for (int64_t oh = 0; oh < Ho; ++oh)
            for (int64_t ow = 0; ow < Wo; ++ow) {
              const int64_t ih = detail::depthwise_input_index(oh, ki, g.stride_h, g.pad_h, g.dilation_h);
              const int64_t iw = detail::depthwise_input_index(ow, kj, g.stride_w, g.pad_w, g.dilation_w);
              if (ih >= 0 && ih < g.in_h && iw >= 0 && iw < g.in_w)
                sum += double(gyp[oh * Wo + ow]) * double(xp[ih * g.in_w + iw]);
            }
        }
        gw[(co * g.kernel_h + ki) * g.kernel_w + kj] = T(sum);
      }
}

namespace detail {

// The output columns [begin, end) whose tap at column offset kj reads inside the input row: 0 <= ow * stride
// - pad + kj * dilation < in_w.
struct ColumnRange {
  int64_t begin = 0, end = 0;
  int64_t input_begin = 0;  // the input column of output column `begin`
};

inline ColumnRange depthwise_columns(const Conv2dGeometry& g, int64_t kj) {
  const int64_t offset = kj * g.dilation_w - g.pad_w, Wo = g.out_w();
  ColumnRange r;
  r.begin = offset >= 0 ? 0 : std::min(Wo, (-offset + g.stride_w - 1) / g.stride_w);
  const int64_t last = g.in_w - 1 - offset;  // ow * stride <= last
  r.end = last < 0 ? r.begin : std::clamp(last / g.stride_w + 1, r.begin, Wo);
  r.input_begin = r.begin * g.stride_w + offset;
  return r;
}

// y[i] += a * x[i * stride] for i < n, vectorized with the ISA in force (unit and double stride get their own
// loops, so the compiler knows the stride).
template <class T>
void strided_axpy(Isa isa, int64_t n, T a, const T* x, int64_t stride, T* y) {
  if (stride == 1) return simd_range(isa, 0, n, [=](int64_t i) { y[i] += a * x[i]; });
  if (stride == 2) return simd_range(isa, 0, n, [=](int64_t i) { y[i] += a * x[2 * i]; });
  simd_range(isa, 0, n, [=](int64_t i) { y[i] += a * x[i * stride]; });
}

// y[i * stride] += a * x[i] for i < n.
template <class T>
void strided_scatter_axpy(Isa isa, int64_t n, T a, const T* x, int64_t stride, T* y) {
  if (stride == 1) return strided_axpy(isa, n, a, x, 1, y);
  for (int64_t i = 0; i < n; ++i) y[i * stride] += a * x[i];
}

// The sum of a[i] * x[i * stride] for i < n, in T: 16 partial sums (independent vector lanes), then the
// rest. STRIDE > 0 fixes the stride at compile time, so that the compiler knows it.
template <int STRIDE, class T>
[[gnu::always_inline]] inline T strided_dot_body(int64_t n, const T* a, const T* x, int64_t stride) {
  if constexpr (STRIDE > 0) stride = STRIDE;
  T part[16] = {};
  int64_t i = 0;
  for (; i + 16 <= n; i += 16)
    for (int j = 0; j < 16; ++j) part[j] += a[i + j] * x[(i + j) * stride];
  T sum = T(0);
  for (; i < n; ++i) sum += a[i] * x[i * stride];
  for (int j = 0; j < 16; ++j) sum += part[j];
  return sum;
}

template <class T>
T strided_dot(Isa isa, int64_t n, const T* a, const T* x, int64_t stride) {
  return call_compiled_for(isa, [&] {
    return stride == 1 ? strided_dot_body<1>(n, a, x, stride) : strided_dot_body<0>(n, a, x, stride);
  });
}

// What the row kernels of one geometry share: the ISA, the sizes, and each kernel column's output column
// range.
struct DepthwiseRowPlan {
  Isa isa;
  int64_t multiplier, out_h, out_w, taps;
  std::vector<ColumnRange> columns;

  explicit DepthwiseRowPlan(const Conv2dGeometry& g)
      : isa(active_isa()),
        multiplier(depthwise_multiplier(g)),
        out_h(g.out_h()),
        out_w(g.out_w()),
        taps(g.kernel_h * g.kernel_w),
        columns(static_cast<std::size_t>(g.kernel_w)) {
    for (int64_t kj = 0; kj < g.kernel_w; ++kj) columns[std::size_t(kj)] = depthwise_columns(g, kj);
  }

  // f(tap, ih, columns) for each tap (ki, kj) of output row oh whose input row ih lies inside the input, in
  // the reference's order; tap = ki * kernel_w + kj.
  template <class F>
  void for_each_tap(const Conv2dGeometry& g, int64_t oh, F f) const {
    for (int64_t ki = 0; ki < g.kernel_h; ++ki) {
      const int64_t ih = depthwise_input_index(oh, ki, g.stride_h, g.pad_h, g.dilation_h);
      if (ih < 0 || ih >= g.in_h) continue;
      for (int64_t kj = 0; kj < g.kernel_w; ++kj) f(ki * g.kernel_w + kj, ih, columns[std::size_t(kj)]);
    }
  }
};

}  // namespace detail

// depthwise_conv2d_forward_reference's result, a row and a tap at a time.
template <class T>
void depthwise_conv2d_forward(const Conv2dGeometry& g, const T* x, const T* w, const T* bias, T* y,
                              bool relu = false) {
  if (active_isa() == Isa::scalar) return depthwise_conv2d_forward_reference(g, x, w, bias, y, relu);
  const detail::DepthwiseRowPlan plan(g);
  const int64_t Ho = plan.out_h, Wo = plan.out_w, planes = g.batch * g.out_channels;
  parallel_for(planes, planes * (Ho * Wo * plan.taps + g.in_h * g.in_w), [&](int64_t plane) {
    const int64_t co = plane % g.out_channels, n = plane / g.out_channels;
    const T* xp = x + (n * g.in_channels + co / plan.multiplier) * g.in_h * g.in_w;
    const T* wp = w + co * plan.taps;
    for (int64_t oh = 0; oh < Ho; ++oh) {
      T* yr = y + (plane * Ho + oh) * Wo;
      std::fill_n(yr, Wo, T(0));
      plan.for_each_tap(g, oh, [&](int64_t tap, int64_t ih, const detail::ColumnRange& c) {
        detail::strided_axpy(plan.isa, c.end - c.begin, wp[tap], xp + ih * g.in_w + c.input_begin, g.stride_w,
                             yr + c.begin);
      });
      const T b = bias ? bias[co] : T(0);
      for (int64_t ow = 0; ow < Wo; ++ow) yr[ow] = conv_epilogue_value(yr[ow], b, relu);
    }
  });
}

// depthwise_conv2d_backward_input_reference's result, a row and a tap at a time: each tap's output gradient
// row spread onto its input columns.
template <class T>
void depthwise_conv2d_backward_input(const Conv2dGeometry& g, const T* gy, const T* w, T* gx) {
  if (active_isa() == Isa::scalar) return depthwise_conv2d_backward_input_reference(g, gy, w, gx);
  const detail::DepthwiseRowPlan plan(g);
  const int64_t m = plan.multiplier, Ho = plan.out_h, Wo = plan.out_w, planes = g.batch * g.in_channels;
  parallel_for(planes, planes * (m * Ho * Wo * plan.taps + g.in_h * g.in_w), [&](int64_t plane) {
    const int64_t ci = plane % g.in_channels, n = plane / g.in_channels;
    T* gxp = gx + plane * g.in_h * g.in_w;
    std::fill_n(gxp, g.in_h * g.in_w, T(0));
    for (int64_t co = ci * m; co < (ci + 1) * m; ++co) {
      const T* gyp = gy + (n * g.out_channels + co) * Ho * Wo;
      const T* wp = w + co * plan.taps;
      for (int64_t oh = 0; oh < Ho; ++oh)
        plan.for_each_tap(g, oh, [&](int64_t tap, int64_t ih, const detail::ColumnRange& c) {
          detail::strided_scatter_axpy(plan.isa, c.end - c.begin, wp[tap], gyp + oh * Wo + c.begin,
                                       g.stride_w, gxp + ih * g.in_w + c.input_begin);
        });
    }
  });
}

// depthwise_conv2d_backward_weight_reference's result: each row's dot products in T, their sum in double.
template <class T>
void depthwise_conv2d_backward_weight(const Conv2dGeometry& g, const T* x, const T* gy, T* gw) {
  if (active_isa() == Isa::scalar) return depthwise_conv2d_backward_weight_reference(g, x, gy, gw);
  const detail::DepthwiseRowPlan plan(g);
  const int64_t Ho = plan.out_h, Wo = plan.out_w;
  parallel_for(g.out_channels, g.batch * g.out_channels * (Ho * Wo * plan.taps + g.in_h * g.in_w),
               [&](int64_t co) {
                 std::vector<double> sums(static_cast<std::size_t>(plan.taps), 0.0);
                 for (int64_t n = 0; n < g.batch; ++n) {
                   const T* xp = x + (n * g.in_channels + co / plan.multiplier) * g.in_h * g.in_w;
                   const T* gyp = gy + (n * g.out_channels + co) * Ho * Wo;
                   for (int64_t oh = 0; oh < Ho; ++oh)
                     plan.for_each_tap(g, oh, [&](int64_t tap, int64_t ih, const detail::ColumnRange& c) {
                       sums[std::size_t(tap)] +=
                           double(detail::strided_dot(plan.isa, c.end - c.begin, gyp + oh * Wo + c.begin,
                                                      xp + ih * g.in_w + c.input_begin, g.stride_w));
                     });
                 }
                 for (int64_t k = 0; k < plan.taps; ++k) gw[co * plan.taps + k] = T(sums[std::size_t(k)]);
               });
}

}  // namespace sumi::kernels
