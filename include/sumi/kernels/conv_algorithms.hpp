#pragma once
// Which convolution algorithm runs a given geometry, for one ISA's kernel set KS.
//
//  - a kernel covering the whole unpadded input (1x1 output): matrix products (conv_dense.hpp);
//  - few channels and at least a vector's worth of images: images in vector lanes (conv_lanes.hpp); input
//    gradients whose stride phases would waste too much use col2im there;
//  - otherwise the per-image implicit GEMM (conv_gemm.hpp), which itself picks per shape between packed
//    and direct operands, stride-phase and col2im input gradients, GEMM and dot-product weight gradients.
// The choices come from measurements on the study's layers (docs/benchmarks.md).
#include "sumi/kernels/conv_dense.hpp"
#include "sumi/kernels/conv_gemm.hpp"
#include "sumi/kernels/conv_lanes.hpp"
#include "sumi/kernels/conv_winograd.hpp"

namespace sumi::kernels::gemm {

template <class KS>
void conv2d_forward_auto(const Conv2dGeometry& g, const float* x, const float* w, const float* bias,
                         float* y) {
  if (is_dense(g)) return conv2d_forward_dense<KS>(g, x, w, bias, y);
  if (prefer_lanes<KS>(g, 64)) return conv2d_forward_lanes<KS>(g, x, w, bias, y);
  if (winograd_forward_applies(g)) return conv2d_forward_winograd<KS>(g, x, w, bias, y);
  conv2d_forward<KS>(g, x, w, bias, y);
}

// Few channels: lanes unless their phases and widened grid more than double the work (e.g. the
// autoencoder's 7x7 -> 3x3 layer), then col2im in lanes, whose scatter is cheap next to its exact GEMM.
template <class KS>
void conv2d_backward_input_auto(const Conv2dGeometry& g, const float* gy, const float* w, float* gx) {
  if (is_dense(g)) return conv2d_backward_input_dense<KS>(g, gy, w, gx);
  if (prefer_lanes<KS>(g)) {
    if (lanes_backward_input_waste(g) <= 2.0) return conv2d_backward_input_lanes<KS>(g, gy, w, gx);
    return conv2d_backward_input_lanes_col2im<KS>(g, gy, w, gx);
  }
  if (winograd_backward_input_applies(g)) return conv2d_backward_input_winograd<KS>(g, gy, w, gx);
  conv2d_backward_input<KS>(g, gy, w, gx);
}

template <class KS>
void conv2d_backward_weight_auto(const Conv2dGeometry& g, const float* x, const float* gy, float* gw,
                                 float* gbias) {
  if (is_dense(g)) return conv2d_backward_weight_dense<KS>(g, x, gy, gw, gbias);
  if (prefer_lanes<KS>(g)) return conv2d_backward_weight_lanes<KS>(g, x, gy, gw, gbias);
  if (winograd_backward_weight_applies(g)) return conv2d_backward_weight_winograd<KS>(g, x, gy, gw, gbias);
  conv2d_backward_weight<KS>(g, x, gy, gw, gbias);
}

}  // namespace sumi::kernels::gemm
