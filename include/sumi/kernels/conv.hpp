#pragma once
// The conv kernel entry points that ops call. Each picks an implementation for the geometry and the CPU;
// all implementations compute the same result as the reference kernels (to float rounding).
//
// For float, the ISA in force (cpu_features.hpp: the best the CPU has, else SUMI_ISA or set_isa()) selects
// the AVX-512 or AVX2 implicit-GEMM kernels (conv_gemm.hpp), which choose their algorithm per shape and run
// on get_num_threads() threads (threading.hpp); Isa::scalar and every other element type use the
// reference kernels. Inputs and outputs are NCHW; outputs are overwritten.
//
// Transposed convolutions use the same three functions with the roles swapped (see conv_geometry.hpp):
// convT forward = conv2d_backward_input, convT input grad = conv2d_forward (no bias), convT weight grad =
// conv2d_backward_weight(g, convT output grad, convT input, gw, nullptr); conv_transpose2d_backward computes
// both gradients in one call.
#include <type_traits>

#include "sumi/kernels/conv_avx2.hpp"
#include "sumi/kernels/conv_avx512.hpp"
#include "sumi/kernels/conv_epilogue.hpp"
#include "sumi/kernels/conv_geometry.hpp"
#include "sumi/kernels/conv_reference.hpp"
#include "sumi/kernels/cpu_features.hpp"

namespace sumi::kernels {

namespace detail {
inline Isa& last_conv_isa_slot() {
  thread_local Isa isa = Isa::scalar;
  return isa;
}

// The vectorized implementation for T and the ISA in force, or Isa::scalar for the reference kernels.
template <class T>
Isa conv_isa() {
#if SUMI_X86_KERNELS
  if constexpr (std::is_same_v<T, float>) return active_isa();
#endif
  return Isa::scalar;
}

// Every entry point's dispatch: vectorized(KS) with the kernel set KS of the ISA in force (conv_avx2.hpp,
// conv_avx512.hpp) for float, else reference(); records the choice for last_conv_isa().
// Geometries whose padding dwarfs the image take the reference kernels (Conv2dGeometry::padding_dominated).
template <class T, class Vectorized, class Reference>
void dispatch_conv(const Conv2dGeometry& g, Vectorized&& vectorized, Reference&& reference) {
  g.validate();
  const Isa isa = g.padding_dominated() ? Isa::scalar : conv_isa<T>();
  last_conv_isa_slot() = isa;
#if SUMI_X86_KERNELS
  if constexpr (std::is_same_v<T, float>) {
    if (isa == Isa::avx512) return vectorized(avx512::Kernels{});
    if (isa == Isa::avx2) return vectorized(avx2::Kernels{});
  }
#endif
  reference();
}
}  // namespace detail

// Which implementation the calling thread's last conv2d_* call ran (for tests and diagnostics).
inline Isa last_conv_isa() {
  return detail::last_conv_isa_slot();
}

// y = conv2d(x, w) + bias (bias may be null), then relu(y) when `relu`.
template <class T>
void conv2d_forward(const Conv2dGeometry& g, const T* x, const T* w, const T* bias, T* y, bool relu = false) {
  detail::dispatch_conv<T>(
      g, [&](auto ks) { gemm::conv2d_forward_auto<decltype(ks)>(g, x, w, bias, y, relu); },
      [&] {
        conv2d_forward_reference(g, x, w, bias, y);
        conv_output_epilogue(y, g.batch, g.out_channels, g.out_h() * g.out_w(),
                             static_cast<const T*>(nullptr), relu);
      });
}

// gx = the input gradient of conv2d for output gradient gy; + bias[c] per input channel (bias may be null),
// then relu(gx) when `relu`: bias and relu serve the transposed convolution, whose forward this is.
template <class T>
void conv2d_backward_input(const Conv2dGeometry& g, const T* gy, const T* w, T* gx, const T* bias = nullptr,
                           bool relu = false) {
  detail::dispatch_conv<T>(
      g, [&](auto ks) { gemm::conv2d_backward_input_auto<decltype(ks)>(g, gy, w, gx, bias, relu); },
      [&] {
        conv2d_backward_input_reference(g, gy, w, gx);
        conv_output_epilogue(gx, g.batch, g.in_channels, g.in_h * g.in_w, bias, relu);
      });
}

template <class T>
void conv2d_backward_weight(const Conv2dGeometry& g, const T* x, const T* gy, T* gw, T* gbias) {
  detail::dispatch_conv<T>(
      g, [&](auto ks) { gemm::conv2d_backward_weight_auto<decltype(ks)>(g, x, gy, gw, gbias); },
      [&] { conv2d_backward_weight_reference(g, x, gy, gw, gbias); });
}

// Both gradients of a transposed convolution with conv geometry g, from its output gradient gout and its
// input xin: gx = conv2d_forward(g, gout, w) and gw = conv2d_backward_weight(g, gout, xin, gw, nullptr).
// One call, so that kernels can share their pass over gout.
template <class T>
void conv_transpose2d_backward(const Conv2dGeometry& g, const T* gout, const T* xin, const T* w, T* gx,
                               T* gw) {
  detail::dispatch_conv<T>(
      g, [&](auto ks) { gemm::conv_transpose2d_backward_auto<decltype(ks)>(g, gout, xin, w, gx, gw); },
      [&] {
        conv2d_forward_reference(g, gout, w, static_cast<const T*>(nullptr), gx);
        conv2d_backward_weight_reference(g, gout, xin, gw, static_cast<T*>(nullptr));
      });
}

}  // namespace sumi::kernels
