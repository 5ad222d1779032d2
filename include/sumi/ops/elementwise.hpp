#pragma once
// Element-wise ops with autograd: arithmetic with broadcasting, exp, log, sqrt, abs, clamp and the
// activations (relu, leaky_relu, sigmoid, tanh, elu, selu, gelu, silu, softplus, mish, hardtanh, relu6).
#include <algorithm>
#include <cmath>
#include <limits>
#include <stdexcept>
#include <string>
#include <string_view>
#include <type_traits>
#include <utility>

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

namespace detail {

// sigmoid(v) and 1 - sigmoid(v), neither computed as 1 minus the other (so both keep their digits when
// small) and each one correctly rounded division; exp() only of a non-positive number, so nothing overflows.
template <class T>
std::pair<T, T> sigmoid_and_complement(T v) {
  const T e = std::exp(-std::abs(v)), large = T(1) / (T(1) + e), small = e / (T(1) + e);
  return v >= T(0) ? std::pair{large, small} : std::pair{small, large};
}

// -1, 0 or 1, and 0 for NaN, as torch.sgn of a real number.
template <class T>
T sign(T v) {
  return T(v > T(0)) - T(v < T(0));
}

}  // namespace detail

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
  } else {
    const auto f = [](T v) { return detail::sigmoid_and_complement(v).first; };
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
      x, "abs", [](T v) { return std::abs(v); }, [](T g, T v, T) { return g * detail::sign(v); });
}
namespace detail {
// v limited to [lo, hi]; hi wins where lo > hi, and NaN stays NaN (said outright rather than left to the
// argument order of std::max and std::min).
template <class T>
T clamped(T v, T lo, T hi) {
  return std::isnan(v) ? v : std::min(std::max(v, lo), hi);
}
}  // namespace detail

// x limited to [lo, hi] (hi wins where lo > hi; NaN stays NaN), as torch.clamp, except that a NaN bound is
// refused (torch returns NaN). The gradient passes where lo <= x <= hi and is 0 elsewhere.
template <class T>
Variable<T> clamp(const Variable<T>& x, std::type_identity_t<T> lo, std::type_identity_t<T> hi) {
  if (std::isnan(lo) || std::isnan(hi))
    throw std::invalid_argument("clamp: bounds [" + util::format_round_trip(lo) + ", " +
                                util::format_round_trip(hi) + "] must not be NaN (input of shape " +
                                shape_str(x.shape()) + ")");
  return unary_op(
      x, "clamp", [lo, hi](T v) { return detail::clamped(v, lo, hi); },
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

// ---- activations, as their torch.nn.functional namesakes --------------------------------------------------
//
// Values and gradients follow PyTorch 1.13's formulas, with the same choice at each kink, but are written so
// that no intermediate overflows: exp() only of non-positive numbers, sigmoid and its complement each to full
// precision. At a NaN input the output is NaN; the gradient is what PyTorch's scalar (per-element) formula
// gives, which for elu, selu, hardtanh and relu6 is the incoming gradient (scaled), not NaN or 0.

namespace detail {

// log(1 + exp(v)) for any v; NaN stays NaN (std::max(v, 0) returns v when v is NaN).
template <class T>
T log1p_exp(T v) {
  return std::max(v, T(0)) + std::log1p(std::exp(-std::abs(v)));
}

// The settings checks of the activations, shared with their layers (nn/activation.hpp), which check when they
// are made. `shown` is the setting as the caller wrote it (a layer's repr); empty, the value is printed.
template <class T>
std::string setting_text(T value, std::string_view shown) {
  return shown.empty() ? util::format_round_trip(value) : std::string(shown);
}
template <class T>
void check_elu_alpha(T alpha, const char* name, std::string_view shown = {}) {
  if (!std::isfinite(alpha))
    throw std::invalid_argument(std::string(name) + ": alpha must be finite, got " +
                                setting_text(alpha, shown));
}
template <class T>
void check_softplus_settings(T beta, T threshold, const char* name, std::string_view beta_shown = {}) {
  if (beta == T(0) || !std::isfinite(beta))
    throw std::invalid_argument(std::string(name) + ": beta must be finite and nonzero, got " +
                                setting_text(beta, beta_shown));
  if (std::isnan(threshold)) throw std::invalid_argument(std::string(name) + ": threshold must not be NaN");
}

// scale * elu(x, alpha); its gradient at x <= 0 (0 included) is g * scale * alpha * exp(x), as PyTorch's.
template <class T>
Variable<T> elu_op(const Variable<T>& x, T alpha, T scale, const char* name) {
  check_elu_alpha(alpha, name);
  return unary_op(
      x, name,
      // expm1 keeps the digits that exp(x) - 1 loses near 0. NaN reaches the output through both parts.
      [alpha, scale](T v) { return scale * (std::max(v, T(0)) + alpha * std::expm1(std::min(v, T(0)))); },
      [alpha, scale](T g, T v, T) {
        // std::min(0, v) is 0 at NaN (and the forward's std::min(v, 0) NaN), so a NaN input gets g * scale,
        // as from PyTorch's `x <= 0 ? ... : g * scale`.
        const T e = std::exp(std::min(T(0), v));
        return scale * ((v <= T(0) ? T(0) : g) + alpha * e * (v <= T(0) ? g : T(0)));
      });
}

template <class T>
void check_hardtanh_range(T min_val, T max_val, const char* name) {
  if (std::isnan(min_val) || std::isnan(max_val) || min_val > max_val)
    throw std::invalid_argument(std::string(name) + ": min_val " + util::format_round_trip(min_val) +
                                " and max_val " + util::format_round_trip(max_val) +
                                " must be numbers with min_val <= max_val");
}

// x limited to [min_val, max_val] (min_val <= max_val). The gradient is 0 at both bounds, as PyTorch's
// `x <= min_val || x >= max_val ? 0 : g` (clamp passes it there), and g at NaN. y is at a bound exactly where
// x is at or beyond it, so the node keeps y alone.
template <class T>
Variable<T> hardtanh_op(const Variable<T>& x, T min_val, T max_val, const char* name) {
  return output_gradient_op(
      x,
      map(
          x.value(), [min_val, max_val](T v) { return clamped(v, min_val, max_val); }, name),
      name, [min_val, max_val](T g, T y) { return y <= min_val || y >= max_val ? T(0) : g; });
}

}  // namespace detail

// x for x > 0, alpha * (exp(x) - 1) otherwise, for any finite alpha, negative too. Unlike
// torch.nn.functional.elu, a non-finite alpha (NaN or infinite values) is refused.
template <class T>
Variable<T> elu(const Variable<T>& x, std::type_identity_t<T> alpha = T(1)) {
  return detail::elu_op(x, alpha, T(1), "elu");
}

// scale * elu(x, alpha) with PyTorch's constants (Klambauer et al., 2017).
template <class T>
Variable<T> selu(const Variable<T>& x) {
  return detail::elu_op(x, T(1.6732632423543772848170429916717), T(1.0507009873554804934193349852946),
                        "selu");
}

// gelu's cumulative normal Phi(x) (none) or PyTorch's tanh approximation of it (tanh).
enum class GeluApproximation { none, tanh };

namespace detail {
// PyTorch's spelling of an approximation ("none", "tanh"); a value outside the enumeration is refused.
inline std::string gelu_approximation_name(GeluApproximation approximate, const char* name) {
  switch (approximate) {
    case GeluApproximation::none:
      return "none";
    case GeluApproximation::tanh:
      return "tanh";
  }
  throw std::invalid_argument(std::string(name) +
                              ": approximate must be GeluApproximation::none or tanh, got " +
                              std::to_string(static_cast<int>(approximate)));
}
}  // namespace detail

// x * Phi(x). The tanh form, 0.5 * (1 + tanh(u)) with u = sqrt(2 / pi) * (x + 0.044715 * x^3), is computed as
// its equal sigmoid(2u), and Phi as erfc(-x / sqrt(2)) / 2: neither loses its digits to 1 + (-1 + small) for
// negative x.
template <class T>
Variable<T> gelu(const Variable<T>& x, GeluApproximation approximate = GeluApproximation::none) {
  constexpr T inv_sqrt2 = T(0.70710678118654752440), inv_sqrt_2pi = T(0.39894228040143267794);
  constexpr T beta = T(0.79788456080286535588), kappa = T(0.044715);  // sqrt(2 / pi)
  switch (approximate) {
    case GeluApproximation::none:
      return unary_op(
          x, "gelu", [](T v) { return v * (T(0.5) * std::erfc(-v * inv_sqrt2)); },
          [](T g, T v, T) {
            const T cdf = T(0.5) * std::erfc(-v * inv_sqrt2), pdf = inv_sqrt_2pi * std::exp(T(-0.5) * v * v);
            return g * (cdf + v * pdf);
          });
    case GeluApproximation::tanh:
      return unary_op(
          x, "gelu",
          [](T v) { return v * detail::sigmoid_and_complement(T(2) * beta * (v + kappa * v * v * v)).first; },
          [](T g, T v, T) {
            const auto [s, c] = detail::sigmoid_and_complement(T(2) * beta * (v + kappa * v * v * v));
            // d/dx = s + x * 2 s (1 - s) u'. Beyond |x| = 100, s (1 - s) is exactly 0 and x^2 may overflow
            // (NaN in PyTorch's formula for float |x| > 1.8e19): x^2 is capped there, so the term stays 0
            // (NaN at infinite x, as PyTorch's).
            const T x_sq = std::min(v * v, T(1e4));
            return g * (s + v * (T(2) * s * c * beta * (T(1) + T(3) * kappa * x_sq)));
          });
  }
  throw std::invalid_argument(detail::gelu_approximation_name(approximate, "gelu"));  // the name throws first
}

// x * sigmoid(x) (swish).
template <class T>
Variable<T> silu(const Variable<T>& x) {
  return unary_op(
      x, "silu", [](T v) { return v * detail::sigmoid_and_complement(v).first; },
      [](T g, T v, T) {
        const auto [s, c] = detail::sigmoid_and_complement(v);
        return g * (s * (T(1) + v * c));
      });
}

// log(1 + exp(beta * x)) / beta, and x itself where beta * x > threshold (gradient g there, sigmoid(beta * x)
// * g at and below it), as torch.nn.functional.softplus, computed in T as PyTorch does. Unlike PyTorch, a
// zero or non-finite beta (which gives inf or NaN there) and a NaN threshold are refused; the value does not
// overflow for any threshold (PyTorch's float one is inf for beta * x > 88 below the threshold).
template <class T>
Variable<T> softplus(const Variable<T>& x, std::type_identity_t<T> beta = T(1),
                     std::type_identity_t<T> threshold = T(20)) {
  detail::check_softplus_settings(beta, threshold, "softplus");
  return unary_op(
      x, "softplus",
      [beta, threshold](T v) {
        const T bv = v * beta, soft = detail::log1p_exp(bv) / beta;
        return bv > threshold ? v : soft;
      },
      [beta, threshold](T g, T v, T) {
        const T bv = v * beta, soft = g * detail::sigmoid_and_complement(bv).first;
        return bv > threshold ? g : soft;
      });
}

// x * tanh(softplus(x)).
template <class T>
Variable<T> mish(const Variable<T>& x) {
  return unary_op(
      x, "mish", [](T v) { return v * std::tanh(detail::log1p_exp(v)); },
      [](T g, T v, T) {
        const T t = std::tanh(detail::log1p_exp(v)), s = detail::sigmoid_and_complement(v).first;
        return g * (t + v * s * (T(1) - t * t));
      });
}

// x limited to [min_val, max_val]; the gradient is 0 at the bounds themselves. min_val == max_val gives that
// constant. Unlike torch.nn.functional.hardtanh (whose min_val > max_val gives max_val everywhere, and NaN
// bounds NaN), min_val > max_val and NaN bounds are refused, as nn.Hardtanh refuses the first.
template <class T>
Variable<T> hardtanh(const Variable<T>& x, std::type_identity_t<T> min_val = T(-1),
                     std::type_identity_t<T> max_val = T(1)) {
  detail::check_hardtanh_range(min_val, max_val, "hardtanh");
  return detail::hardtanh_op(x, min_val, max_val, "hardtanh");
}

// hardtanh(x, 0, 6), as PyTorch's: unlike relu's, the gradient at 0 is 0 and so is the one at 6.
template <class T>
Variable<T> relu6(const Variable<T>& x) {
  return detail::hardtanh_op(x, T(0), T(6), "relu6");
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
