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
#include "sumi/kernels/conv_epilogue.hpp"
#include "sumi/kernels/conv_gemm.hpp"
#include "sumi/kernels/conv_lanes.hpp"
#include "sumi/kernels/conv_winograd.hpp"

namespace sumi::kernels::gemm {

// relu: y = relu(conv(x) + bias), applied as the lanes kernels write y, else in a pass over y.
template <class KS>
void conv2d_forward_auto(const Conv2dGeometry& g, const float* x, const float* w, const float* bias, float* y,
                         bool relu = false) {
  if (prefer_lanes<KS>(g, 64) && !is_dense(g)) return conv2d_forward_lanes<KS>(g, x, w, bias, y, relu);
  if (is_dense(g))
    conv2d_forward_dense<KS>(g, x, w, bias, y);
  else if (winograd_forward_applies(g))
    conv2d_forward_winograd<KS>(g, x, w, bias, y);
  else
    conv2d_forward<KS>(g, x, w, bias, y);
  conv_output_epilogue(y, g.batch, g.out_channels, g.out_h() * g.out_w(), static_cast<const float*>(nullptr),
                       relu);
}

// Few channels: lanes unless their phases and widened grid more than double the work (e.g. the
// autoencoder's 7x7 -> 3x3 layer), then col2im in lanes, whose scatter is cheap next to its exact GEMM.
// bias (may be null) and relu: gx = relu(input gradient + bias), the transposed convolution's forward.
template <class KS>
void conv2d_backward_input_auto(const Conv2dGeometry& g, const float* gy, const float* w, float* gx,
                                const float* bias = nullptr, bool relu = false) {
  if (prefer_lanes<KS>(g) && !is_dense(g)) {
    if (lanes_backward_input_waste(g) <= 2.0)
      return conv2d_backward_input_lanes<KS>(g, gy, w, gx, bias, relu);
    return conv2d_backward_input_lanes_col2im<KS>(g, gy, w, gx, bias, relu);
  }
  if (is_dense(g))
    conv2d_backward_input_dense<KS>(g, gy, w, gx);
  else if (winograd_backward_input_applies(g))
    conv2d_backward_input_winograd<KS>(g, gy, w, gx);
  else
    conv2d_backward_input<KS>(g, gy, w, gx);
  conv_output_epilogue(gx, g.batch, g.in_channels, g.in_h * g.in_w, bias, relu);
}

template <class KS>
void conv2d_backward_weight_auto(const Conv2dGeometry& g, const float* x, const float* gy, float* gw,
                                 float* gbias) {
  if (is_dense(g)) return conv2d_backward_weight_dense<KS>(g, x, gy, gw, gbias);
  if (prefer_lanes<KS>(g)) return conv2d_backward_weight_lanes<KS>(g, x, gy, gw, gbias);
  if (winograd_backward_weight_applies(g)) return conv2d_backward_weight_winograd<KS>(g, x, gy, gw, gbias);
  conv2d_backward_weight<KS>(g, x, gy, gw, gbias);
}

// Both gradients of a transposed convolution with conv geometry g (gout: its output gradient, xin: its
// input): gx = conv2d forward of gout (no bias) and gw = the conv2d weight gradient for x = gout, gy = xin.
// In one lanes pass, which interleaves gout once for both, when both take the lanes path a block at a time.
template <class KS>
void conv_transpose2d_backward_auto(const Conv2dGeometry& g, const float* gout, const float* xin,
                                    const float* w, float* gx, float* gw) {
  if (prefer_lanes<KS>(g) && !is_dense(g) && lanes_weight_group_blocks<KS>(g) == 1)
    return conv_transpose2d_backward_lanes<KS>(g, gout, xin, w, gx, gw);
  conv2d_forward_auto<KS>(g, gout, w, nullptr, gx);
  conv2d_backward_weight_auto<KS>(g, gout, xin, gw, nullptr);
}

}  // namespace sumi::kernels::gemm
