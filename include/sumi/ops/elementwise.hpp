#pragma once
// Element-wise ops with autograd: arithmetic with broadcasting, activations, exp, log, sqrt, abs and clamp.
#include <algorithm>
#include <cmath>
#include <limits>
#include <stdexcept>
#include <string>
#include <type_traits>

#include "sumi/autograd/gradient_zip.hpp"
#include "sumi/autograd/variable.hpp"
#include "sumi/kernels/fast_math.hpp"
#include "sumi/tensor/arithmetic.hpp"
#include "sumi/util/number_text.hpp"

namespace sumi {

// ---- binary arithmetic with broadcasting ----------------------------------------------------------------

template <class T>
Variable<T> add(const Variable<T>& a, const Variable<T>& b) {
  return Variable<T>::from_op(zip(a.value(), b.value(), std::plus<T>(), "add"), "add", {a, b},
                              [sa = a.shape(), sb = b.shape()](const Tensor<T>& g) {
                                return std::vector<Tensor<T>>{sum_to_shape(g, sa), sum_to_shape(g, sb)};
                              });
}

template <class T>
Variable<T> sub(const Variable<T>& a, const Variable<T>& b) {
  return Variable<T>::from_op(
      zip(a.value(), b.value(), std::minus<T>(), "sub"), "sub", {a, b},
      [sa = a.shape(), sb = b.shape()](const Tensor<T>& g) {
        return std::vector<Tensor<T>>{sum_to_shape(g, sa), sum_to_shape(map(g, std::negate<T>()), sb)};
      });
}

template <class T>
Variable<T> mul(const Variable<T>& a, const Variable<T>& b) {
  const bool ga = a.requires_grad(), gb = b.requires_grad();
  return Variable<T>::from_op(
      zip(a.value(), b.value(), std::multiplies<T>(), "mul"), "mul", {a, b},
      [va = a.value(), vb = b.value(), ga, gb](const Tensor<T>& g) {
        return std::vector<Tensor<T>>{
            ga ? sum_to_shape(zip(g, vb, std::multiplies<T>(), "mul"), va.shape()) : Tensor<T>(),
            gb ? sum_to_shape(zip(g, va, std::multiplies<T>(), "mul"), vb.shape()) : Tensor<T>()};
      });
}

template <class T>
Variable<T> div(const Variable<T>& a, const Variable<T>& b) {
  const bool ga = a.requires_grad(), gb = b.requires_grad();
  return Variable<T>::from_op(
      zip(a.value(), b.value(), std::divides<T>(), "div"), "div", {a, b},
      [va = a.value(), vb = b.value(), ga, gb](const Tensor<T>& g) {
        Tensor<T> g_over_b = zip(g, vb, std::divides<T>(), "div");
        Tensor<T> grad_b;
        if (gb) {  // d(a/b)/db = -a/b^2 = -(g/b) * (a/b)
          Tensor<T> a_over_b = zip(va, vb, std::divides<T>(), "div");
          grad_b = sum_to_shape(zip(
                                    g_over_b, a_over_b, [](T x, T y) { return -x * y; }, "div"),
                                vb.shape());
        }
        return std::vector<Tensor<T>>{ga ? sum_to_shape(g_over_b, va.shape()) : Tensor<T>(), grad_b};
      });
}

// ---- unary ops --------------------------------------------------------------------------------------------

// y = f(x); the input gradient is dx(g, x, y) for output gradient g. The shared shape of every unary op
// below. dx returns the gradient itself rather than f'(x) so that a masked gradient (relu) is a select,
// which compilers vectorize, instead of a product with a 0/1 factor. Under GCC's default -ftrapping-math a
// conditional product (`v > 0 ? v : v * s`, or `v * (v > 0 ? 1 : s)`, which GCC turns into it) is a branch
// per element and never vectorized: select operands, then do the arithmetic unconditionally.
template <class T, class F, class DX>
Variable<T> unary_op(const Variable<T>& x, const char* name, F f, DX dx) {
  Tensor<T> y = map(x.value(), f, name);
  return Variable<T>::from_op(y, name, {x}, [xv = x.value(), y, dx](const Tensor<T>& g) {
    Tensor<T> gx = Tensor<T>::empty(g.shape());
    const Tensor<T> gc = g.contiguous(), xc = xv.contiguous();
    kernels::zip3(g.numel(), gc.data(), xc.data(), y.data(), gx.data(), dx);
    return std::vector<Tensor<T>>{gx};
  });
}

// y (already computed from x) with the input gradient dy(g, y): for functions whose derivative is a
// function of their output. The node keeps y alone, so x is freed after the forward pass unless something
// else holds it, and the backward pass reads two arrays instead of three.
template <class T, class DY>
Variable<T> output_gradient_op(const Variable<T>& x, Tensor<T> y, const char* name, DY dy) {
  return Variable<T>::from_op(y, name, {x}, [y, dy](Tensor<T> g) {
    return std::vector<Tensor<T>>{zip_gradient(std::move(g), y, dy)};
  });
}

template <class T>
Variable<T> neg(const Variable<T>& x) {
  return unary_op(x, "neg", std::negate<T>(), [](T g, T, T) { return -g; });
}
// relu and leaky_relu take the gradient's mask from y: for a non-negative slope y > 0 exactly where x > 0.
// As in PyTorch, NaN passes through relu (a diverged network's loss is NaN, not a finite number) and its
// gradient there is g (the mask is "y <= 0 gives 0").
template <class T>
Variable<T> relu(const Variable<T>& x) {
  return output_gradient_op(x,
                            map(
                                x.value(), [](T v) { return v < T(0) ? T(0) : v; }, "relu"),
                            "relu", [](T g, T y) { return y <= T(0) ? T(0) : g; });
}
template <class T>
Variable<T> leaky_relu(const Variable<T>& x, T negative_slope = T(0.01)) {
  // Both parts computed and added, each exact, rather than a conditional product (see unary_op).
  const auto f = [negative_slope](T v) { return std::max(v, T(0)) + negative_slope * std::min(v, T(0)); };
  const auto gradient = [negative_slope](T g, T v) {
    return (v > T(0) ? g : T(0)) + negative_slope * (v > T(0) ? T(0) : g);
  };
  if (negative_slope >= T(0))
    return output_gradient_op(x, map(x.value(), f, "leaky_relu"), "leaky_relu", gradient);
  return unary_op(x, "leaky_relu", f, [gradient](T g, T v, T) { return gradient(g, v); });
}
template <class T>
Variable<T> sigmoid(const Variable<T>& x) {
  const auto dy = [](T g, T y) { return g * y * (T(1) - y); };
  if constexpr (std::is_same_v<T, float>) {  // the vectorized kernel (2 ulp of the exact value)
    x.require_defined("sigmoid");
    const Tensor<T> xc = x.value().contiguous();
    Tensor<T> y = Tensor<T>::empty(xc.shape());
    kernels::sigmoid(xc.numel(), xc.data(), y.data());
    return output_gradient_op(x, std::move(y), "sigmoid", dy);
  } else {  // written so that nothing overflows exp()
    const auto f = [](T v) {
      const T e = std::exp(-std::abs(v));
      return v >= T(0) ? T(1) / (T(1) + e) : e / (T(1) + e);
    };
    return output_gradient_op(x, map(x.value(), f, "sigmoid"), "sigmoid", dy);
  }
}
template <class T>
Variable<T> tanh(const Variable<T>& x) {
  return output_gradient_op(x,
                            map(
                                x.value(), [](T v) { return std::tanh(v); }, "tanh"),
                            "tanh", [](T g, T y) { return g * (T(1) - y * y); });
}
template <class T>
Variable<T> exp(const Variable<T>& x) {
  return output_gradient_op(x,
                            map(
                                x.value(), [](T v) { return std::exp(v); }, "exp"),
                            "exp", [](T g, T y) { return g * y; });
}
template <class T>
Variable<T> log(const Variable<T>& x) {
  return unary_op(
      x, "log", [](T v) { return std::log(v); }, [](T g, T v, T) { return g / v; });
}
// sqrt's gradient g / (2 * y) is infinite at 0 (NaN where g is 0 too), as PyTorch's.
template <class T>
Variable<T> sqrt(const Variable<T>& x) {
  return output_gradient_op(x,
                            map(
                                x.value(), [](T v) { return std::sqrt(v); }, "sqrt"),
                            "sqrt", [](T g, T y) { return g / (T(2) * y); });
}
// abs's gradient is g * sign(x), with sign 0 at 0 and at NaN, as PyTorch's (so a NaN or infinite g gives
// NaN there).
template <class T>
Variable<T> abs(const Variable<T>& x) {
  return unary_op(
      x, "abs", [](T v) { return std::abs(v); }, [](T g, T v, T) { return g * (T(v > T(0)) - T(v < T(0))); });
}
// x limited to [lo, hi] (hi wins where lo > hi; NaN stays NaN), as torch.clamp, except that a NaN bound is
// refused (torch returns NaN). The gradient passes where lo <= x <= hi and is 0 elsewhere.
template <class T>
Variable<T> clamp(const Variable<T>& x, std::type_identity_t<T> lo, std::type_identity_t<T> hi) {
  if (std::isnan(lo) || std::isnan(hi))
    throw std::invalid_argument("clamp: bounds [" + util::format_round_trip(lo) + ", " +
                                util::format_round_trip(hi) + "] must not be NaN (input of shape " +
                                shape_str(x.shape()) + ")");
  return unary_op(
      x, "clamp", [lo, hi](T v) { return std::isnan(v) ? v : std::min(std::max(v, lo), hi); },
      [lo, hi](T g, T v, T) { return v >= lo && v <= hi ? g : T(0); });
}
template <class T>
Variable<T> clamp_min(const Variable<T>& x, std::type_identity_t<T> lo) {
  return clamp(x, lo, std::numeric_limits<T>::infinity());
}
template <class T>
Variable<T> clamp_max(const Variable<T>& x, std::type_identity_t<T> hi) {
  return clamp(x, -std::numeric_limits<T>::infinity(), hi);
}
// x * s and x + s for a constant s.
template <class T>
Variable<T> mul_scalar(const Variable<T>& x, T s) {
  return unary_op(
      x, "mul_scalar", [s](T v) { return v * s; }, [s](T g, T, T) { return g * s; });
}
// x / s divides (as PyTorch does) rather than multiplying by 1 / s, which is not correctly rounded and
// overflows for a tiny s.
template <class T>
Variable<T> div_scalar(const Variable<T>& x, T s) {
  return unary_op(
      x, "div_scalar", [s](T v) { return v / s; }, [s](T g, T, T) { return g / s; });
}
// s / x (PyTorch's `s / x`, which it computes as reciprocal(x) * s; this divides, so it is correctly
// rounded).
template <class T>
Variable<T> scalar_div(T s, const Variable<T>& x) {
  return unary_op(
      x, "scalar_div", [s](T v) { return s / v; }, [](T g, T v, T y) { return -(g / v) * y; });
}
template <class T>
Variable<T> add_scalar(const Variable<T>& x, T s) {
  return unary_op(
      x, "add_scalar", [s](T v) { return v + s; }, [](T g, T, T) { return g; });
}
template <class T>
Variable<T> pow_scalar(const Variable<T>& x, T p) {
  return unary_op(
      x, "pow", [p](T v) { return std::pow(v, p); },
      // p = 0 is a constant: its gradient is 0 everywhere, where 0 * pow(0, -1) would be NaN at v = 0.
      [p](T g, T v, T) { return p == T(0) ? T(0) : g * p * std::pow(v, p - T(1)); });
}

// ---- operators --------------------------------------------------------------------------------------------

template <class T>
Variable<T> operator+(const Variable<T>& a, const Variable<T>& b) {
  return add(a, b);
}
template <class T>
Variable<T> operator-(const Variable<T>& a, const Variable<T>& b) {
  return sub(a, b);
}
template <class T>
Variable<T> operator*(const Variable<T>& a, const Variable<T>& b) {
  return mul(a, b);
}
template <class T>
Variable<T> operator/(const Variable<T>& a, const Variable<T>& b) {
  return div(a, b);
}
template <class T>
Variable<T> operator-(const Variable<T>& a) {
  return neg(a);
}
template <class T>
Variable<T> operator*(const Variable<T>& a, std::type_identity_t<T> s) {
  return mul_scalar(a, s);
}
template <class T>
Variable<T> operator*(std::type_identity_t<T> s, const Variable<T>& a) {
  return mul_scalar(a, s);
}
template <class T>
Variable<T> operator/(const Variable<T>& a, std::type_identity_t<T> s) {
  return div_scalar(a, s);
}
template <class T>
Variable<T> operator/(std::type_identity_t<T> s, const Variable<T>& a) {
  return scalar_div(s, a);
}
template <class T>
Variable<T> operator+(const Variable<T>& a, std::type_identity_t<T> s) {
  return add_scalar(a, s);
}
template <class T>
Variable<T> operator+(std::type_identity_t<T> s, const Variable<T>& a) {
  return add_scalar(a, s);
}
template <class T>
Variable<T> operator-(const Variable<T>& a, std::type_identity_t<T> s) {
  return add_scalar(a, -s);
}
template <class T>
Variable<T> operator-(std::type_identity_t<T> s, const Variable<T>& a) {
  return add_scalar(neg(a), s);
}

}  // namespace sumi
