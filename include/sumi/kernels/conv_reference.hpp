#pragma once
// Plain, obviously correct convolution kernels. Every vectorized kernel is tested against these.
#include <algorithm>
#include <cstdint>

#include "sumi/kernels/conv_geometry.hpp"

namespace sumi::kernels {

// y = conv(x, w) + bias. bias may be null. Overwrites y.
template <class T>
void conv2d_forward_reference(const Conv2dGeometry& g, const T* x, const T* w, const T* bias, T* y) {
  const int64_t oh = g.out_h(), ow = g.out_w();
  for (int64_t n = 0; n < g.batch; ++n)
    for (int64_t co = 0; co < g.out_channels; ++co)
      for (int64_t i = 0; i < oh; ++i)
        for (int64_t j = 0; j < ow; ++j) {
          T acc = bias ? bias[co] : T(0);
          for (int64_t ci = 0; ci < g.in_channels; ++ci)
            for (int64_t ki = 0; ki < g.kernel_h; ++ki) {
              const int64_t yi = i * g.stride_h - g.pad_h + ki * g.dilation_h;
              if (yi < 0 || yi >= g.in_h) continue;
              for (int64_t kj = 0; kj < g.kernel_w; ++kj) {
                const int64_t xj = j * g.stride_w - g.pad_w + kj * g.dilation_w;
                if (xj < 0 || xj >= g.in_w) continue;
                acc += x[((n * g.in_channels + ci) * g.in_h + yi) * g.in_w + xj] *
                       w[((co * g.in_channels + ci) * g.kernel_h + ki) * g.kernel_w + kj];
              }
            }
          y[((n * g.out_channels + co) * oh + i) * ow + j] = acc;
        }
}

// gx = d(loss)/dx given gy = d(loss)/dy. Overwrites gx.
template <class T>
void conv2d_backward_input_reference(const Conv2dGeometry& g, const T* gy, const T* w, T* gx) {
  const int64_t oh = g.out_h(), ow = g.out_w();
  std::fill(gx, gx + g.input_numel(), T(0));
  for (int64_t n = 0; n < g.batch; ++n)
    for (int64_t co = 0; co < g.out_channels; ++co)
      for (int64_t i = 0; i < oh; ++i)
        for (int64_t j = 0; j < ow; ++j) {
          const T gyv = gy[((n * g.out_channels + co) * oh + i) * ow + j];
          for (int64_t ci = 0; ci < g.in_channels; ++ci)
            for (int64_t ki = 0; ki < g.kernel_h; ++ki) {
              const int64_t yi = i * g.stride_h - g.pad_h + ki * g.dilation_h;
              if (yi < 0 || yi >= g.in_h) continue;
              for (int64_t kj = 0; kj < g.kernel_w; ++kj) {
                const int64_t xj = j * g.stride_w - g.pad_w + kj * g.dilation_w;
                if (xj < 0 || xj >= g.in_w) continue;
                gx[((n * g.in_channels + ci) * g.in_h + yi) * g.in_w + xj] +=
                    gyv * w[((co * g.in_channels + ci) * g.kernel_h + ki) * g.kernel_w + kj];
              }
            }
        }
}

// gw = d(loss)/dw and, when gbias is not null, gbias = d(loss)/dbias. Overwrites both.
template <class T>
void conv2d_backward_weight_reference(const Conv2dGeometry& g, const T* x, const T* gy, T* gw, T* gbias) {
  const int64_t oh = g.out_h(), ow = g.out_w();
  std::fill(gw, gw + g.weight_numel(), T(0));
  if (gbias) std::fill(gbias, gbias + g.out_channels, T(0));
  for (int64_t n = 0; n < g.batch; ++n)
    for (int64_t co = 0; co < g.out_channels; ++co)
      for (int64_t i = 0; i < oh; ++i)
        for (int64_t j = 0; j < ow; ++j) {
          const T gyv = gy[((n * g.out_channels + co) * oh + i) * ow + j];
          if (gbias) gbias[co] += gyv;
          for (int64_t ci = 0; ci < g.in_channels; ++ci)
            for (int64_t ki = 0; ki < g.kernel_h; ++ki) {
              const int64_t yi = i * g.stride_h - g.pad_h + ki * g.dilation_h;
              if (yi < 0 || yi >= g.in_h) continue;
              for (int64_t kj = 0; kj < g.kernel_w; ++kj) {
                const int64_t xj = j * g.stride_w - g.pad_w + kj * g.dilation_w;
                if (xj < 0 || xj >= g.in_w) continue;
                gw[((co * g.in_channels + ci) * g.kernel_h + ki) * g.kernel_w + kj] +=
                    gyv * x[((n * g.in_channels + ci) * g.in_h + yi) * g.in_w + xj];
              }
            }
        }
}

}  // namespace sumi::kernels
