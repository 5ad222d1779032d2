#pragma once
// Parameter initialisation, as torch.nn.init: in-place fills of a Tensor or a Variable's value from a
// Generator (uniform_, normal_, trunc_normal_, constant_, zeros_, ones_, eye_, kaiming_uniform_,
// kaiming_normal_, xavier_uniform_, xavier_normal_, orthogonal_), and PyTorch's default initialisation of
// Linear and convolution layers.
//
// Values are drawn in row-major order, one Generator call per element, so the same seed gives the same
// weights on every platform (but not PyTorch's numbers: its generator differs).
#include <Eigen/Core>
#include <Eigen/QR>
#include <algorithm>
#include <cmath>
#include <limits>
#include <numbers>
#include <stdexcept>
#include <string>
#include <utility>

#include "sumi/autograd/variable.hpp"
#include "sumi/tensor/random.hpp"
#include "sumi/util/number_text.hpp"

namespace sumi::nn::init {

struct Fans {
  int64_t fan_in = 0;
  int64_t fan_out = 0;
};

// As torch.nn.init._calculate_fan_in_and_fan_out: fan_in = size(1) * receptive field, fan_out = size(0) *
// receptive field, the receptive field being the product of the dimensions after the second. So a
// ConvTranspose2d weight [in, out, k, k] has fan_in = out * k * k, as in PyTorch.
inline Fans calculate_fans(const Shape& shape) {
  if (shape.size() < 2)
    throw std::invalid_argument(
        "init: fan in and fan out need a tensor of at least 2 dimensions, got shape " + shape_str(shape));
  int64_t receptive = 1;
  for (std::size_t i = 2; i < shape.size(); ++i) receptive *= shape[i];
  return {shape[1] * receptive, shape[0] * receptive};
}

enum class FanMode { fan_in, fan_out };
enum class Nonlinearity { linear, conv2d, sigmoid, tanh, relu, leaky_relu };

// torch.nn.init.calculate_gain; `param` is leaky_relu's negative slope.
inline double calculate_gain(Nonlinearity nonlinearity, double param = 0.01) {
  switch (nonlinearity) {
    case Nonlinearity::linear:
    case Nonlinearity::conv2d:
    case Nonlinearity::sigmoid:
      return 1.0;
    case Nonlinearity::tanh:
      return 5.0 / 3.0;
    case Nonlinearity::relu:
      return std::sqrt(2.0);
    case Nonlinearity::leaky_relu:
      return std::sqrt(2.0 / (1.0 + param * param));
  }
  return 1.0;
}

namespace detail {
// Sets every element of t (any strides) to f().
template <class T, class F>
void fill_with(Tensor<T>& t, F&& f) {
  if (t.is_contiguous()) {
    T* p = t.data();
    for (int64_t i = 0; i < t.numel(); ++i) p[i] = T(f());
  } else {
    T* p = t.data();
    t.for_each_offset([&](int64_t off) { p[off] = T(f()); });
  }
}
}  // namespace detail

// Uniform in [low, high).
template <class T>
Tensor<T> uniform_(Tensor<T> t, double low = 0.0, double high = 1.0, Generator& gen = default_generator()) {
  if (!(low <= high)) throw std::invalid_argument("init::uniform_: low must not exceed high");
  detail::fill_with(t, [&] { return gen.uniform(low, high); });
  return t;
}
template <class T>
Tensor<T> normal_(Tensor<T> t, double mean = 0.0, double std = 1.0, Generator& gen = default_generator()) {
  if (!(std >= 0)) throw std::invalid_argument("init::normal_: std must be non-negative");
  detail::fill_with(t, [&] { return gen.normal(mean, std); });
  return t;
}
template <class T>
Tensor<T> constant_(Tensor<T> t, double value) {
  t.fill_(T(value));
  return t;
}
template <class T>
Tensor<T> zeros_(Tensor<T> t) {
  return constant_(std::move(t), 0.0);
}
template <class T>
Tensor<T> ones_(Tensor<T> t) {
  return constant_(std::move(t), 1.0);
}
// U(-bound, bound) with bound = gain * sqrt(3 / fan), gain from the nonlinearity and `a` (leaky_relu's
// negative slope), as torch.nn.init.kaiming_uniform_.
template <class T>
Tensor<T> kaiming_uniform_(Tensor<T> t, double a = 0.0, FanMode mode = FanMode::fan_in,
                           Nonlinearity nonlinearity = Nonlinearity::leaky_relu,
                           Generator& gen = default_generator()) {
  const Fans fans = calculate_fans(t.shape());
  const int64_t fan = mode == FanMode::fan_in ? fans.fan_in : fans.fan_out;
  if (fan == 0) return t;  // PyTorch warns and leaves an empty tensor alone
  const double bound = calculate_gain(nonlinearity, a) * std::sqrt(3.0 / double(fan));
  return uniform_(std::move(t), -bound, bound, gen);
}
// N(0, std^2) with std = gain / sqrt(fan), as torch.nn.init.kaiming_normal_.
template <class T>
Tensor<T> kaiming_normal_(Tensor<T> t, double a = 0.0, FanMode mode = FanMode::fan_in,
                          Nonlinearity nonlinearity = Nonlinearity::leaky_relu,
                          Generator& gen = default_generator()) {
  const Fans fans = calculate_fans(t.shape());
  const int64_t fan = mode == FanMode::fan_in ? fans.fan_in : fans.fan_out;
  if (fan == 0) return t;
  return normal_(std::move(t), 0.0, calculate_gain(nonlinearity, a) / std::sqrt(double(fan)), gen);
}
// U(-a, a) with a = gain * sqrt(6 / (fan_in + fan_out)).
template <class T>
Tensor<T> xavier_uniform_(Tensor<T> t, double gain = 1.0, Generator& gen = default_generator()) {
  const Fans fans = calculate_fans(t.shape());
  const double bound = gain * std::sqrt(6.0 / double(fans.fan_in + fans.fan_out));
  return uniform_(std::move(t), -bound, bound, gen);
}

// N(0, std^2) with std = gain * sqrt(2 / (fan_in + fan_out)), as torch.nn.init.xavier_normal_.
template <class T>
Tensor<T> xavier_normal_(Tensor<T> t, double gain = 1.0, Generator& gen = default_generator()) {
  const Fans fans = calculate_fans(t.shape());
  return normal_(std::move(t), 0.0, gain * std::sqrt(2.0 / double(fans.fan_in + fans.fan_out)), gen);
}

namespace detail {
// log Phi(x), the log of the standard normal CDF, to full precision for any x: log1p of the upper tail above
// the mean, erfc down to -37 (Phi(-37) = 5.7e-300, still a normal double), and beyond, where Phi underflows,
// the asymptotic series Phi(x) = phi(x) / |x| * (1 - 1/x^2 + 3/x^4 - 15/x^6 + ...), whose terms fall below
// 1e-17 long before they would grow again.
inline double log_normal_cdf(double x) {
  if (x > 0) return std::log1p(-0.5 * std::erfc(x / std::numbers::sqrt2));
  if (x >= -37) return std::log(0.5 * std::erfc(-x / std::numbers::sqrt2));
  const double x2 = x * x;
  double sum = 1, term = 1;
  for (int k = 1; k < 20 && std::abs(term) > 1e-17; ++k) {
    term *= -(2 * k - 1) / x2;
    sum += term;
  }
  return -0.5 * x2 - std::log(-x) - 0.5 * std::log(2 * std::numbers::pi) + std::log(sum);
}
// The x with log Phi(x) = log_p, for log_p <= 0. Below the median, Newton's method on log Phi (concave and
// increasing; the start -sqrt(-2 log p) is left of the root by the Mills-ratio bound, so the iterates rise
// monotonically to it); above it, the mirror image from log(1 - p).
inline double normal_quantile_of_log(double log_p) {
  // The ends (p = 0 from an infinite lower bound, p = 1 from rounding), where Newton's method would give NaN.
  if (log_p == -std::numeric_limits<double>::infinity()) return log_p;
  if (log_p >= 0) return std::numeric_limits<double>::infinity();
  if (log_p > -std::numbers::ln2) return -normal_quantile_of_log(std::log(-std::expm1(log_p)));
  double x = -std::sqrt(-2 * log_p);
  for (int i = 0; i < 200; ++i) {
    const double log_cdf = log_normal_cdf(x);
    const double slope =
        std::exp(-0.5 * x * x - 0.5 * std::log(2 * std::numbers::pi) - log_cdf);  // phi / Phi
    const double step = (log_p - log_cdf) / slope;
    x += step;
    if (!(std::abs(step) > 1e-14 * std::max(1.0, std::abs(x)))) break;
  }
  return x;
}
}  // namespace detail

// N(mean, std^2) truncated to [a, b], as torch.nn.init.trunc_normal_, by the inverse CDF of a uniform draw
// between Phi((a - mean) / std) and Phi((b - mean) / std). Probabilities are handled as logarithms, so an
// interval far in a tail works too (torch's float arithmetic clamps every draw to one bound there).
template <class T>
Tensor<T> trunc_normal_(Tensor<T> t, double mean = 0.0, double std = 1.0, double a = -2.0, double b = 2.0,
                        Generator& gen = default_generator()) {
  if (!(std > 0) || !std::isfinite(std) || !std::isfinite(mean) || !(a < b))
    throw std::invalid_argument(
        "init::trunc_normal_: needs a finite mean, a finite std > 0 and a < b, got mean " +
        util::format_round_trip(mean) + ", std " + util::format_round_trip(std) + ", [" +
        util::format_round_trip(a) + ", " + util::format_round_trip(b) + "]");
  // An interval above the mean is drawn as the mirror of one below it, where the probabilities are small
  // and keep their digits.
  const bool mirrored = a > mean;
  const double lo = mirrored ? (mean - b) / std : (a - mean) / std;
  const double hi = mirrored ? (mean - a) / std : (b - mean) / std;
  const double log_lo = detail::log_normal_cdf(lo), log_hi = detail::log_normal_cdf(hi);
  detail::fill_with(t, [&] {
    // p uniform in [Phi(lo), Phi(hi)), as log p = log Phi(hi) + log(u + (1 - u) Phi(lo) / Phi(hi)).
    const double u = gen.uniform();
    const double log_p = log_hi + std::log(u + (1 - u) * std::exp(log_lo - log_hi));
    const double z = std::clamp(detail::normal_quantile_of_log(log_p), lo, hi);
    return mirrored ? mean - std * z : mean + std * z;
  });
  return t;
}

// A semi-orthogonal matrix times gain, as torch.nn.init.orthogonal_: the tensor is seen as [size(0),
// numel / size(0)]; the Q of the QR decomposition of a matrix of N(0, 1) draws (of its transpose when it has
// more columns than rows), signed so that R's diagonal is positive. Its rows (or columns, whichever are
// fewer) are orthonormal.
template <class T>
Tensor<T> orthogonal_(Tensor<T> t, double gain = 1.0, Generator& gen = default_generator()) {
  if (t.dim() < 2)
    throw std::invalid_argument("init::orthogonal_: needs a tensor of at least 2 dimensions, got shape " +
                                shape_str(t.shape()));
  if (t.numel() == 0) return t;
  const Eigen::Index rows = t.size(0), cols = t.numel() / t.size(0);
  const bool transposed = rows < cols;
  Eigen::MatrixXd draws(transposed ? cols : rows, transposed ? rows : cols);  // tall: m >= n
  for (Eigen::Index r = 0; r < rows; ++r)  // drawn row-major over t, as the other fills draw
    for (Eigen::Index c = 0; c < cols; ++c) (transposed ? draws(c, r) : draws(r, c)) = gen.normal();
  const Eigen::HouseholderQR<Eigen::MatrixXd> qr(draws);
  Eigen::MatrixXd q = qr.householderQ() * Eigen::MatrixXd::Identity(draws.rows(), draws.cols());
  const Eigen::MatrixXd r = qr.matrixQR().topRows(draws.cols()).triangularView<Eigen::Upper>();
  for (Eigen::Index c = 0; c < q.cols(); ++c)
    if (r(c, c) < 0) q.col(c) *= -1;
  q *= gain;
  int64_t i = 0;
  const auto value = [&] {
    const Eigen::Index r = i / cols, c = i % cols;
    ++i;
    return transposed ? q(c, r) : q(r, c);
  };
  detail::fill_with(t, value);
  return t;
}

// The identity matrix, for a 2-d tensor (ones on the main diagonal of a rectangular one), as
// torch.nn.init.eye_.
template <class T>
Tensor<T> eye_(Tensor<T> t) {
  if (t.dim() != 2)
    throw std::invalid_argument("init::eye_: needs a 2-d tensor, got shape " + shape_str(t.shape()));
  int64_t i = 0;
  const int64_t cols = t.size(1);
  detail::fill_with(t, [&] {
    const bool diagonal = i / cols == i % cols;
    ++i;
    return diagonal ? 1.0 : 0.0;
  });
  return t;
}

// The same fills on a Variable's value (in place; the Variable is a shared handle).
namespace detail {
template <class T, class Fill>
Variable<T> fill_variable(Variable<T> v, Fill&& fill) {
  fill(v.value());
  v.mark_modified();
  return v;
}
}  // namespace detail
template <class T>
Variable<T> uniform_(Variable<T> v, double low = 0.0, double high = 1.0,
                     Generator& gen = default_generator()) {
  return detail::fill_variable(std::move(v), [&](Tensor<T>& t) { uniform_(t, low, high, gen); });
}
template <class T>
Variable<T> normal_(Variable<T> v, double mean = 0.0, double std = 1.0,
                    Generator& gen = default_generator()) {
  return detail::fill_variable(std::move(v), [&](Tensor<T>& t) { normal_(t, mean, std, gen); });
}
template <class T>
Variable<T> constant_(Variable<T> v, double value) {
  return detail::fill_variable(std::move(v), [&](Tensor<T>& t) { constant_(t, value); });
}
template <class T>
Variable<T> zeros_(Variable<T> v) {
  return constant_(std::move(v), 0.0);
}
template <class T>
Variable<T> ones_(Variable<T> v) {
  return constant_(std::move(v), 1.0);
}
template <class T>
Variable<T> kaiming_uniform_(Variable<T> v, double a = 0.0, FanMode mode = FanMode::fan_in,
                             Nonlinearity nonlinearity = Nonlinearity::leaky_relu,
                             Generator& gen = default_generator()) {
  return detail::fill_variable(std::move(v),
                               [&](Tensor<T>& t) { kaiming_uniform_(t, a, mode, nonlinearity, gen); });
}
template <class T>
Variable<T> kaiming_normal_(Variable<T> v, double a = 0.0, FanMode mode = FanMode::fan_in,
                            Nonlinearity nonlinearity = Nonlinearity::leaky_relu,
                            Generator& gen = default_generator()) {
  return detail::fill_variable(std::move(v),
                               [&](Tensor<T>& t) { kaiming_normal_(t, a, mode, nonlinearity, gen); });
}
template <class T>
Variable<T> xavier_uniform_(Variable<T> v, double gain = 1.0, Generator& gen = default_generator()) {
  return detail::fill_variable(std::move(v), [&](Tensor<T>& t) { xavier_uniform_(t, gain, gen); });
}
template <class T>
Variable<T> xavier_normal_(Variable<T> v, double gain = 1.0, Generator& gen = default_generator()) {
  return detail::fill_variable(std::move(v), [&](Tensor<T>& t) { xavier_normal_(t, gain, gen); });
}
template <class T>
Variable<T> trunc_normal_(Variable<T> v, double mean = 0.0, double std = 1.0, double a = -2.0, double b = 2.0,
                          Generator& gen = default_generator()) {
  return detail::fill_variable(std::move(v), [&](Tensor<T>& t) { trunc_normal_(t, mean, std, a, b, gen); });
}
template <class T>
Variable<T> orthogonal_(Variable<T> v, double gain = 1.0, Generator& gen = default_generator()) {
  return detail::fill_variable(std::move(v), [&](Tensor<T>& t) { orthogonal_(t, gain, gen); });
}
template <class T>
Variable<T> eye_(Variable<T> v) {
  return detail::fill_variable(std::move(v), [](Tensor<T>& t) { eye_(t); });
}

// PyTorch's reset_parameters() of Linear, Conv2d and ConvTranspose2d: weight ~ kaiming_uniform_(a =
// sqrt(5)), i.e. U(-1/sqrt(fan_in), 1/sqrt(fan_in)); bias (if defined) ~ U(-1/sqrt(fan_in), 1/sqrt(fan_in))
// with the weight's fan_in. The weight is drawn first, then the bias.
template <class T>
void default_layer_init_(Variable<T> weight, Variable<T> bias, Generator& gen = default_generator()) {
  kaiming_uniform_(weight, std::sqrt(5.0), FanMode::fan_in, Nonlinearity::leaky_relu, gen);
  if (!bias.defined()) return;
  const int64_t fan_in = calculate_fans(weight.shape()).fan_in;
  const double bound = fan_in > 0 ? 1.0 / std::sqrt(double(fan_in)) : 0.0;
  uniform_(bias, -bound, bound, gen);
}

}  // namespace sumi::nn::init
