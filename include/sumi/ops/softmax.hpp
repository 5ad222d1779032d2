#pragma once
// softmax and log_softmax along one dimension, with autograd. Both subtract the maximum along the dimension
// before exponentiating, so large inputs do not overflow.
#include <algorithm>
#include <cmath>
#include <cstdint>
#include <limits>
#include <vector>

#include "sumi/autograd/variable.hpp"
#include "sumi/kernels/elementwise.hpp"
#include "sumi/ops/along_dim.hpp"

namespace sumi {

namespace detail {

// y = softmax (Log = false) or log_softmax (Log = true) of x along the lines of `geo`.
template <bool Log, class T>
void softmax_forward(const AlongDim& geo, const T* x, T* y) {
  geo.for_each_line([&](int64_t, int64_t off) {
    const int64_t stride = geo.inner;
    const T* xl = x + off;
    T* yl = y + off;
    T m = -std::numeric_limits<T>::infinity();
    for (int64_t k = 0; k < geo.n; ++k) m = std::max(m, xl[k * stride]);
    if (m == -std::numeric_limits<T>::infinity()) m = T(0);  // all -inf: no shift (gives NaN, as PyTorch)
    T s = T(0);
    if constexpr (Log) {
      for (int64_t k = 0; k < geo.n; ++k) s += std::exp(xl[k * stride] - m);
      const T log_s = std::log(s);  // (x - m) - log_s keeps the digits that x - (m + log_s) loses for large m
      for (int64_t k = 0; k < geo.n; ++k) yl[k * stride] = (xl[k * stride] - m) - log_s;
    } else {
      for (int64_t k = 0; k < geo.n; ++k) s += (yl[k * stride] = std::exp(xl[k * stride] - m));
      const T inv = T(1) / s;
      for (int64_t k = 0; k < geo.n; ++k) yl[k * stride] *= inv;
    }
  });
}

template <bool Log, class T>
Variable<T> softmax_op(const Variable<T>& x, int64_t dim, const char* op) {
  x.require_defined(op);
  const AlongDim geo(x.shape(), dim, op);
  const Tensor<T> xc = x.value().contiguous();
  Tensor<T> y = Tensor<T>::empty(x.shape());
  softmax_forward<Log>(geo, xc.data(), y.data());
  return Variable<T>::from_op(y, op, {x}, [geo, y](const Tensor<T>& g) {
    const Tensor<T> gc = g.contiguous();
    Tensor<T> gx = Tensor<T>::empty(y.shape());
    const T* gp = gc.data();
    const T* yp = y.data();
    T* out = gx.data();
    geo.for_each_line([&](int64_t, int64_t off) {
      const int64_t stride = geo.inner;
      const T *gl = gp + off, *yl = yp + off;
      T* ol = out + off;
      T s = T(0);
      if constexpr (Log) {  // dx = g - softmax * sum(g)
        for (int64_t k = 0; k < geo.n; ++k) s += gl[k * stride];
        for (int64_t k = 0; k < geo.n; ++k) ol[k * stride] = gl[k * stride] - std::exp(yl[k * stride]) * s;
      } else {  // dx = y * (g - sum(g * y))
        for (int64_t k = 0; k < geo.n; ++k) s += gl[k * stride] * yl[k * stride];
        for (int64_t k = 0; k < geo.n; ++k) ol[k * stride] = yl[k * stride] * (gl[k * stride] - s);
      }
    });
    return std::vector<Tensor<T>>{gx};
  });
}

}  // namespace detail

// exp(x) / sum(exp(x)) along `dim` (negative counts from the end).
template <class T>
Variable<T> softmax(const Variable<T>& x, int64_t dim) {
  return detail::softmax_op<false>(x, dim, "softmax");
}

// x - log(sum(exp(x))) along `dim`, computed without overflow.
template <class T>
Variable<T> log_softmax(const Variable<T>& x, int64_t dim) {
  return detail::softmax_op<true>(x, dim, "log_softmax");
}

}  // namespace sumi
