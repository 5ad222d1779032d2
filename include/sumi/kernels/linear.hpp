#pragma once
// Fully connected layer kernels: y [n, out] = x [n, in] . w [out, in]^T + b [out], and its gradients; and
// matmul's products, which are the same three.
//
// A linear layer is a 1x1 convolution over a 1x1 image, so for float the vectorized conv kernels' dense path
// (conv_dense.hpp) computes it with the ISA in force. That matters: the library is built for generic x86-64,
// where Eigen's GEMM only uses SSE2, while the conv kernels pick AVX2/AVX-512 at run time. Other element
// types, and Isa::scalar, use Eigen.
#include <Eigen/Core>
#include <cstdint>
#include <type_traits>

#include "sumi/kernels/conv.hpp"

namespace sumi::kernels {

namespace detail {
template <class T>
using RowMatrix = Eigen::Matrix<T, Eigen::Dynamic, Eigen::Dynamic, Eigen::RowMajor>;
template <class T>
using ConstMatrixMap = Eigen::Map<const RowMatrix<T>>;
template <class T>
using MatrixMap = Eigen::Map<RowMatrix<T>>;

inline Conv2dGeometry linear_geometry(int64_t n, int64_t in, int64_t out) {
  Conv2dGeometry g;
  g.batch = n;
  g.in_channels = in;
  g.out_channels = out;
  return g;
}

// Empty products (no rows, inputs or outputs) go to Eigen, which gives zeros (plus bias) for them; the conv
// kernels require a non-empty geometry.
template <class T>
bool linear_uses_conv_kernels(int64_t n, int64_t in, int64_t out) {
  return conv_isa<T>() != Isa::scalar && n > 0 && in > 0 && out > 0;
}
}  // namespace detail

// y = x w^T + b; bias may be null.
template <class T>
void linear_forward(int64_t n, int64_t in, int64_t out, const T* x, const T* w, const T* bias, T* y) {
  if (detail::linear_uses_conv_kernels<T>(n, in, out))
    return conv2d_forward(detail::linear_geometry(n, in, out), x, w, bias, y);
  detail::MatrixMap<T> ym(y, n, out);
  ym.noalias() = detail::ConstMatrixMap<T>(x, n, in) * detail::ConstMatrixMap<T>(w, out, in).transpose();
  if (bias) ym.rowwise() += Eigen::Map<const Eigen::Matrix<T, 1, Eigen::Dynamic>>(bias, out);
}

// gx = gy w
template <class T>
void linear_backward_input(int64_t n, int64_t in, int64_t out, const T* gy, const T* w, T* gx) {
  if (detail::linear_uses_conv_kernels<T>(n, in, out))
    return conv2d_backward_input(detail::linear_geometry(n, in, out), gy, w, gx);
  detail::MatrixMap<T>(gx, n, in).noalias() =
      detail::ConstMatrixMap<T>(gy, n, out) * detail::ConstMatrixMap<T>(w, out, in);
}

// gw = gy^T x and gbias = column sums of gy (gbias may be null).
template <class T>
void linear_backward_weight(int64_t n, int64_t in, int64_t out, const T* x, const T* gy, T* gw, T* gbias) {
  if (detail::linear_uses_conv_kernels<T>(n, in, out))
    return conv2d_backward_weight(detail::linear_geometry(n, in, out), x, gy, gw, gbias);
  const detail::ConstMatrixMap<T> gym(gy, n, out);
  detail::MatrixMap<T>(gw, out, in).noalias() = gym.transpose() * detail::ConstMatrixMap<T>(x, n, in);
  if (gbias) Eigen::Map<Eigen::Matrix<T, 1, Eigen::Dynamic>>(gbias, out) = gym.colwise().sum();
}

// The three products of a matrix product c [n, m] = a [n, k] b [k, m] (row-major) and its gradients, on the
// same kernels: each is one of the linear layer's, with in = m and out = k.

// c = a b: the linear input gradient gx [n, in] = gy [n, out] w [out, in].
template <class T>
void matmul_forward(int64_t n, int64_t k, int64_t m, const T* a, const T* b, T* c) {
  linear_backward_input(n, m, k, a, b, c);
}

// ga [n, k] = g [n, m] b^T: the linear forward y [n, out] = x [n, in] w^T, without bias.
template <class T>
void matmul_backward_a(int64_t n, int64_t k, int64_t m, const T* g, const T* b, T* ga) {
  linear_forward(n, m, k, g, b, static_cast<const T*>(nullptr), ga);
}

// gb [k, m] = a^T g: the linear weight gradient gw [out, in] = gy^T x, without bias.
template <class T>
void matmul_backward_b(int64_t n, int64_t k, int64_t m, const T* a, const T* g, T* gb) {
  linear_backward_weight(n, m, k, g, a, gb, static_cast<T*>(nullptr));
}

}  // namespace sumi::kernels
