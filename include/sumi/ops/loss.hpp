#pragma once
// Loss functions with autograd, with PyTorch's values and gradients. Element-wise: mse_loss, l1_loss,
// smooth_l1_loss, huber_loss, bce_loss (torch's binary_cross_entropy) and bce_with_logits (both with
// per-element weights, bce_with_logits with pos_weight); over class labels: cross_entropy and nll_loss (class
// weights, an ignored label, cross_entropy's label smoothing). Each takes PyTorch's reduction: mean (the
// default), sum, or none. The target and the weights are constants: they get no gradient, even when the
// target requires one.
#include <algorithm>
#include <cmath>
#include <cstdint>
#include <functional>
#include <limits>
#include <numeric>
#include <optional>
#include <string>
#include <type_traits>
#include <utility>
#include <vector>

#include "sumi/autograd/variable.hpp"
#include "sumi/kernels/elementwise.hpp"
#include "sumi/kernels/threading.hpp"
#include "sumi/ops/along_dim.hpp"
#include "sumi/ops/elementwise.hpp"
#include "sumi/ops/reduction.hpp"
#include "sumi/util/number_text.hpp"

namespace sumi {

// How a loss combines its per-element (or per-sample) terms, as PyTorch's `reduction`: their (weighted)
// mean, their sum, or none (the terms themselves, in the shape of the input or of the labels).
enum class Reduction { mean, sum, none };

namespace detail {

template <class T>
void require_same_shape(const Variable<T>& input, const Variable<T>& target, const char* op) {
  if (input.shape() != target.shape())
    throw std::invalid_argument(std::string(op) + ": input of shape " + shape_str(input.shape()) +
                                " and target of shape " + shape_str(target.shape()) + " differ");
}

// term(x, t) or, for a loss with per-element settings, term(x, t, i).
template <class T, class F>
T element_term(const F& f, T x, T t, int64_t i) {
  if constexpr (std::is_invocable_v<const F&, T, T, int64_t>)
    return f(x, t, i);
  else
    return f(x, t);
}

// The terms w[i] * term(x[i], t[i]) reduced by `reduction`, with gradient g * w[i] * dterm(x[i], t[i]) for
// the input (g divided by the count under mean; g[i] under none). `weight` is contiguous in the input's
// shape, or undefined for w = 1; term and dterm may also take the flat index i. Sums are deterministic
// chunked sums in acc_t<T>; a mean over no elements is NaN, as PyTorch's.
template <class T, class Term, class DTerm>
Variable<T> elementwise_loss(const Variable<T>& input, const Variable<T>& target, Reduction reduction,
                             const char* op, Term term, DTerm dterm, const Tensor<T>& weight = {}) {
  input.require_defined(op);
  target.require_defined(op);
  require_same_shape(input, target, op);
  const Tensor<T> x = input.value().contiguous(), t = target.value().contiguous();
  const T* xp = x.data();
  const T* tp = t.data();
  const int64_t n = x.numel();
  const auto term_at = [term, xp, tp](int64_t i) { return element_term(term, xp[i], tp[i], i); };
  // The weight is applied outside the unweighted loops (mse_loss's are on the autoencoder's hot path).
  const auto times_weight = [](T value, T w) { return w * value; };
  Tensor<T> loss;
  if (reduction == Reduction::none) {
    loss = Tensor<T>::empty(x.shape());
    T* lp = loss.data();
    kernels::for_each_index(n, [=](int64_t i) { lp[i] = term_at(i); });
    if (weight.defined()) loss = zip(loss, weight, times_weight, op);
  } else {
    const auto sum_of = [n](const auto& value_at) {
      return chunked_sum<acc_t<T>>(n, [&](int64_t i) { return acc_t<T>(value_at(i)); });
    };
    const T* wp = weight.defined() ? weight.data() : nullptr;
    const acc_t<T> total =
        wp ? sum_of([&](int64_t i) { return times_weight(term_at(i), wp[i]); }) : sum_of(term_at);
    loss = Tensor<T>::scalar(T(reduction == Reduction::mean ? total / acc_t<T>(n) : total));
  }
  return Variable<T>::from_op(loss, op, {input}, [x, t, weight, n, reduction, dterm, op](const Tensor<T>& g) {
    const T scale = reduction == Reduction::none   ? T(1)
                    : reduction == Reduction::mean ? g.item() / T(n)
                                                   : g.item();
    // Per-element factors, where there are any: the upstream gradient under none, times the weight.
    Tensor<T> factors = reduction == Reduction::none ? g.contiguous() : Tensor<T>();
    const auto scaled = [scale](T w) { return scale * w; };
    if (weight.defined())
      factors = factors.defined() ? zip(factors, weight, std::multiplies<T>(), op) : map(weight, scaled, op);
    Tensor<T> gx = Tensor<T>::empty(x.shape());
    const T* xp = x.data();
    const T* tp = t.data();
    T* gp = gx.data();
    if (factors.defined()) {
      const T* fp = factors.data();
      kernels::for_each_index(n, [=](int64_t i) { gp[i] = element_term(dterm, xp[i], tp[i], i) * fp[i]; });
    } else {
      kernels::for_each_index(n, [=](int64_t i) { gp[i] = element_term(dterm, xp[i], tp[i], i) * scale; });
    }
    return std::vector<Tensor<T>>{gx};
  });
}

// `weight` (a loss's per-element weight, or bce_with_logits' pos_weight) broadcast to the input's shape as a
// contiguous tensor; undefined stays undefined. It must broadcast to the input's shape without growing it, as
// PyTorch 1.13 requires (its in-place products cannot grow the loss).
template <class T>
Tensor<T> element_weights(const Tensor<T>& weight, const Shape& input_shape, const char* op,
                          const char* name) {
  if (!weight.defined()) return weight;
  try {
    return expand_to(weight, input_shape);
  } catch (const std::invalid_argument&) {  // expand_to's message names neither the op nor the argument
    throw std::invalid_argument(std::string(op) + ": " + name + " of shape " + shape_str(weight.shape()) +
                                " does not broadcast to the input's shape " + shape_str(input_shape));
  }
}

}  // namespace detail

// (input - target)^2, reduced
template <class T>
Variable<T> mse_loss(const Variable<T>& input, const Variable<T>& target,
                     Reduction reduction = Reduction::mean) {
  return detail::elementwise_loss(
      input, target, reduction, "mse_loss", [](T x, T t) { return (x - t) * (x - t); },
      [](T x, T t) { return T(2) * (x - t); });
}

// |input - target|, reduced; the gradient is sign(input - target), 0 where they are equal, as PyTorch's.
template <class T>
Variable<T> l1_loss(const Variable<T>& input, const Variable<T>& target,
                    Reduction reduction = Reduction::mean) {
  return detail::elementwise_loss(
      input, target, reduction, "l1_loss", [](T x, T t) { return std::abs(x - t); },
      [](T x, T t) { return detail::sign(x - t); });
}

// With d = input - target: 0.5 * d^2 / beta where |d| < beta, else |d| - 0.5 * beta, reduced, as
// torch.nn.functional.smooth_l1_loss. The gradient is d / beta inside, sign(d) outside. beta = 0 is l1_loss,
// with its gradient 0 at d = 0 and at a NaN d (PyTorch's smooth_l1_loss gives -1 and NaN there).
template <class T>
Variable<T> smooth_l1_loss(const Variable<T>& input, const Variable<T>& target,
                           Reduction reduction = Reduction::mean, double beta = 1.0) {
  if (!(beta >= 0))
    throw std::invalid_argument("smooth_l1_loss: beta must be non-negative, got " +
                                util::format_round_trip(beta) + " (input of shape " +
                                shape_str(input.shape()) + ")");
  const T b = T(beta);
  if (b == T(0)) return l1_loss(input, target, reduction);  // also a beta that rounds to 0 in T
  return detail::elementwise_loss(
      input, target, reduction, "smooth_l1_loss",
      [b](T x, T t) {
        const T d = std::abs(x - t);
        return d < b ? T(0.5) * d * d / b : d - T(0.5) * b;
      },
      [b](T x, T t) {
        const T d = x - t;
        return d < -b ? T(-1) : d > b ? T(1) : d / b;
      });
}

// With d = input - target: 0.5 * d^2 where |d| < delta, else delta * (|d| - 0.5 * delta), reduced, as
// torch.nn.functional.huber_loss (delta > 0). The gradient is d clamped to [-delta, delta].
template <class T>
Variable<T> huber_loss(const Variable<T>& input, const Variable<T>& target,
                       Reduction reduction = Reduction::mean, double delta = 1.0) {
  if (!(delta > 0))
    throw std::invalid_argument("huber_loss: delta must be positive, got " + util::format_round_trip(delta) +
                                " (input of shape " + shape_str(input.shape()) + ")");
  const T c = T(delta);
  return detail::elementwise_loss(
      input, target, reduction, "huber_loss",
      [c](T x, T t) {
        const T d = std::abs(x - t);
        return d < c ? T(0.5) * d * d : c * (d - T(0.5) * c);
      },
      [c](T x, T t) {
        const T d = x - t;
        return d < -c ? -c : d > c ? c : d;
      });
}

// bce_loss's settings, PyTorch's arguments by name: bce_loss(probabilities, target, {.weight = w}).
template <class T>
struct BceLossOptions {
  // Each element's term is multiplied by its weight; broadcast to the input's shape. Undefined: all 1. The
  // mean still divides by the element count, as PyTorch's.
  Tensor<T> weight{};
  Reduction reduction = Reduction::mean;
};

// bce_with_logits' settings, PyTorch's arguments by name: bce_with_logits(logits, target, {.pos_weight = p}).
template <class T>
struct BceWithLogitsOptions {
  // As BceLossOptions::weight.
  Tensor<T> weight{};
  // The weight of the positive part (t * -log(sigmoid(z))) of each term, broadcast to the input's shape: with
  // shape [C] for an input [N, C], one per class (pos_weight > 1 raises recall). Undefined: all 1.
  Tensor<T> pos_weight{};
  Reduction reduction = Reduction::mean;
};

// Binary cross-entropy of probabilities `input` (each in [0, 1]) against `target`, as
// torch.nn.functional.binary_cross_entropy: -(t * max(log(x), -100) + (1 - t) * max(log(1 - x), -100)),
// and gradient (x - t) / max(x * (1 - x), 1e-12) per element, so exact 0 or 1 inputs give finite values.
template <class T>
Variable<T> bce_loss(const Variable<T>& input, const Variable<T>& target, const BceLossOptions<T>& options) {
  detail::require_same_shape(input, target, "bce_loss");
  const Tensor<T> x = input.value().contiguous();
  for (int64_t i = 0; i < x.numel(); ++i) {
    const T v = x.data()[i];
    if (!(v >= T(0) && v <= T(1)))
      throw std::invalid_argument("bce_loss: input values must be in [0, 1], got " + std::to_string(v) +
                                  " at flat index " + std::to_string(i) + " of shape " +
                                  shape_str(x.shape()));
  }
  return detail::elementwise_loss(
      input, target, options.reduction, "bce_loss",
      [](T x, T t) {
        const T log_x = std::max(std::log(x), T(-100)), log_1mx = std::max(std::log1p(-x), T(-100));
        return (t - T(1)) * log_1mx - t * log_x;
      },
      [](T x, T t) { return (x - t) / std::max((T(1) - x) * x, T(1e-12)); },
      detail::element_weights(options.weight, input.shape(), "bce_loss", "weight"));
}

template <class T>
Variable<T> bce_loss(const Variable<T>& input, const Variable<T>& target,
                     Reduction reduction = Reduction::mean) {
  return bce_loss(input, target, BceLossOptions<T>{.reduction = reduction});
}

// Binary cross-entropy of sigmoid(logits) against `target`, as torch's binary_cross_entropy_with_logits: with
// a = p * t (p the pos_weight, 1 by default), b = 1 - t and c = a + b = 1 + (p - 1) * t (exactly 1 without a
// pos_weight or with p = 1), a * softplus(-z) + b * softplus(z) = c * log(1 + exp(-|z|)) + a * max(-z, 0) +
// b * max(z, 0); gradient c * sigmoid(z) - a per element. A part whose factor a or b is 0 is left out, so an
// infinite logit gives the limit (inf or 0) where torch's form multiplies 0 by inf; a weight of 0 on an
// infinite term still gives NaN, as PyTorch's.
template <class T>
Variable<T> bce_with_logits(const Variable<T>& logits, const Variable<T>& target,
                            const BceWithLogitsOptions<T>& options) {
  logits.require_defined("bce_with_logits");
  const Tensor<T> pos_weight =
      detail::element_weights(options.pos_weight, logits.shape(), "bce_with_logits", "pos_weight");
  const T* pp = pos_weight.defined() ? pos_weight.data() : nullptr;
  return detail::elementwise_loss(
      logits, target, options.reduction, "bce_with_logits",
      [pos_weight, pp](T z, T t, int64_t i) {
        const T a = pp ? pp[i] * t : t, b = T(1) - t, c = pp ? T(1) + (pp[i] - T(1)) * t : T(1);
        return c * std::log1p(std::exp(-std::abs(z))) + (a != T(0) ? a * std::max(-z, T(0)) : T(0)) +
               (b != T(0) ? b * std::max(z, T(0)) : T(0));
      },
      [pos_weight, pp](T z, T t, int64_t i) {
        const T sigmoid = detail::sigmoid_and_complement(z).first;
        if (!pp) return sigmoid - t;
        return (T(1) + (pp[i] - T(1)) * t) * sigmoid - pp[i] * t;
      },
      detail::element_weights(options.weight, logits.shape(), "bce_with_logits", "weight"));
}

template <class T>
Variable<T> bce_with_logits(const Variable<T>& logits, const Variable<T>& target,
                            Reduction reduction = Reduction::mean) {
  return bce_with_logits(logits, target, BceWithLogitsOptions<T>{.reduction = reduction});
}

// cross_entropy's settings, PyTorch's arguments by name:
//   cross_entropy(logits, labels, {.weight = class_weights, .label_smoothing = 0.1});
template <class T>
struct CrossEntropyOptions {
  // One weight per class (shape [C]); undefined: every class weighs 1.
  Tensor<T> weight{};
  // Samples with this label count for nothing (no loss, no gradient, not in the mean). Unset by default,
  // unlike PyTorch's -100: a negative label is then an error rather than silently skipped.
  std::optional<int64_t> ignore_index{};
  // In [0, 1]: the target becomes (1 - s) * one_hot + s / C.
  double label_smoothing = 0;
  Reduction reduction = Reduction::mean;
};

// nll_loss's settings, PyTorch's arguments by name; as cross_entropy's, without label smoothing.
template <class T>
struct NllLossOptions {
  Tensor<T> weight{};
  std::optional<int64_t> ignore_index{};
  Reduction reduction = Reduction::mean;
};

namespace detail {

// Checks the arguments of a loss over class labels (cross_entropy, nll_loss) and returns the geometry of the
// input's class dimension: 1, or 0 for one unbatched sample of shape [C].
template <class T>
AlongDim class_geometry(const Variable<T>& input, const std::vector<int64_t>& labels, const Tensor<T>& weight,
                        std::optional<int64_t> ignore_index, const char* op) {
  input.require_defined(op);
  const std::string what = std::string(op) + ": input of shape " + shape_str(input.shape());
  if (input.dim() < 1) throw std::invalid_argument(what + ": it must be [C], [N, C] or [N, C, d1, ...]");
  const AlongDim geo(input.shape(), input.dim() == 1 ? 0 : 1, op);
  const int64_t C = geo.n;
  if (C == 0) throw std::invalid_argument(what + " has no classes");
  if (int64_t(labels.size()) != geo.lines())
    throw std::invalid_argument(what + ": " + std::to_string(labels.size()) + " labels, where it needs " +
                                std::to_string(geo.lines()) + " (one per sample and position)");
  for (std::size_t i = 0; i < labels.size(); ++i) {
    const int64_t label = labels[i];
    if ((label < 0 || label >= C) && label != ignore_index)
      throw std::out_of_range(
          std::string(op) + ": label " + std::to_string(label) + " at index " + std::to_string(i) +
          " is out of range for " + std::to_string(C) + " classes" +
          (ignore_index ? " and is not the ignore_index " + std::to_string(*ignore_index) : std::string()));
  }
  if (weight.defined()) {
    if (weight.shape() != Shape{C})
      throw std::invalid_argument(what + " has " + std::to_string(C) +
                                  " classes, so its weight needs shape [" + std::to_string(C) + "], not " +
                                  shape_str(weight.shape()));
    const Tensor<T> w = weight.contiguous();
    for (int64_t c = 0; c < C; ++c)
      if (!std::isfinite(w.data()[c]))
        throw std::invalid_argument(std::string(op) + ": weight of class " + std::to_string(c) + " is " +
                                    std::to_string(w.data()[c]) + ", not finite");
  }
  return geo;
}

// The per-class weights as a contiguous [C] tensor: `weight`, or ones.
template <class T>
Tensor<T> class_weights(const Tensor<T>& weight, int64_t classes) {
  return weight.defined() ? weight.contiguous() : Tensor<T>::ones({classes});
}

// A loss over class labels from its per-sample terms: the terms in the labels' shape (none), their sum, or
// their sum over the summed weights of the labels not ignored (mean; without weights, the count of those
// labels; NaN when that sum is 0). Also returns that divisor, for the backward pass.
template <class T>
std::pair<Tensor<T>, T> reduce_class_terms(const std::vector<T>& term, const std::vector<int64_t>& labels,
                                           const T* wp, std::optional<int64_t> ignore, Reduction reduction,
                                           const Shape& input_shape) {
  const auto samples = int64_t(term.size());
  const acc_t<T> divisor = chunked_sum<acc_t<T>>(samples, [&](int64_t l) {
    const int64_t label = labels[std::size_t(l)];
    return label == ignore ? T(0) : wp[label];
  });
  if (reduction == Reduction::none) {
    const Shape shape = reduced_shape(input_shape, input_shape.size() == 1 ? 0 : 1, false);
    return {Tensor<T>::from_vector(term, shape), T(divisor)};
  }
  const acc_t<T> total = chunked_sum<acc_t<T>>(samples, [&](int64_t l) { return term[std::size_t(l)]; });
  // A mean over no weight is NaN, as PyTorch's (its unsmoothed part is 0 / 0), also when label smoothing
  // makes the total non-zero.
  const acc_t<T> mean = divisor == 0 ? std::numeric_limits<acc_t<T>>::quiet_NaN() : total / divisor;
  return {Tensor<T>::scalar(T(reduction == Reduction::mean ? mean : total)), T(divisor)};
}

// The factor sample l's gradient takes from the loss's gradient g under `reduction`.
template <class T>
T sample_scale(const T* g, int64_t l, Reduction reduction, T divisor) {
  return reduction == Reduction::none ? g[l] : reduction == Reduction::mean ? g[0] / divisor : g[0];
}

}  // namespace detail

// Cross-entropy of logits against class labels, as torch.nn.functional.cross_entropy: for each sample,
// -w[y] * log_softmax(logits)[y], or with label smoothing s, (1 - s) times that plus s / C times
// -sum_c w[c] * log_softmax(logits)[c]. Logits are [N, C] (labels: N of them), [C] (one label) or
// [N, C, d1, ...] (labels: one per sample and position, in row-major order of [N, d1, ...]). The mean
// divides by the summed weights of the labels that are not ignored (without weights, their count); none
// gives the per-sample terms in the shape of the labels.
template <class T>
Variable<T> cross_entropy(const Variable<T>& logits, const std::vector<int64_t>& labels,
                          const CrossEntropyOptions<T>& options = {}) {
  const detail::AlongDim geo =
      detail::class_geometry(logits, labels, options.weight, options.ignore_index, "cross_entropy");
  if (!(options.label_smoothing >= 0 && options.label_smoothing <= 1))
    throw std::invalid_argument("cross_entropy: label_smoothing must be in [0, 1], got " +
                                util::format_round_trip(options.label_smoothing));
  const int64_t C = geo.n, samples = geo.lines();
  const Tensor<T> x = logits.value().contiguous();
  const Tensor<T> weight = detail::class_weights(options.weight, C);
  const std::optional<int64_t> ignore = options.ignore_index;
  const T smoothing = T(options.label_smoothing), keep = T(1) - smoothing;
  const T* xp = x.data();
  const T* wp = weight.data();
  // Per sample: its max m and log(sum(exp(x - m))), kept for the backward pass, and its term. Differences
  // are taken from x - m first, which keeps the digits that x - (m + log_sum) would lose for large logits.
  const auto count = static_cast<std::size_t>(samples);
  std::vector<T> row_max(count), log_sum(count), term(count);
  geo.for_each_line([&](int64_t l, int64_t offset) {
    const auto ul = std::size_t(l);
    const int64_t label = labels[ul];
    if (label == ignore) {
      term[ul] = T(0);
      return;
    }
    const T* line = xp + offset;
    T m = line[0];
    for (int64_t c = 1; c < C; ++c) m = std::max(m, line[c * geo.inner]);
    // A line of -inf only takes m = 0, as torch's logsumexp; a +inf logit is kept, so its line gives NaN
    // (inf - inf), as torch's cross_entropy and log_softmax.
    if (m == -std::numeric_limits<T>::infinity()) m = T(0);
    T s = T(0);
    for (int64_t c = 0; c < C; ++c) s += std::exp(line[c * geo.inner] - m);
    row_max[ul] = m;
    log_sum[ul] = std::log(s);
    term[ul] = wp[label] * (log_sum[ul] - (line[label * geo.inner] - m));
    if (smoothing != T(0)) {  // PyTorch adds the smoothing term only when s > 0 (0 * inf would be NaN)
      T spread = T(0);
      for (int64_t c = 0; c < C; ++c) spread += wp[c] * (log_sum[ul] - (line[c * geo.inner] - m));
      term[ul] = keep * term[ul] + smoothing / T(C) * spread;
    }
  });
  const Reduction reduction = options.reduction;
  auto [loss, divisor] = detail::reduce_class_terms(term, labels, wp, ignore, reduction, logits.shape());
  return Variable<T>::from_op(
      loss, "cross_entropy", {logits},
      [x, weight, row_max, log_sum, labels, geo, ignore, smoothing, keep, reduction,
       divisor = divisor](const Tensor<T>& g) {
        const int64_t C = geo.n;
        const Tensor<T> gc = g.contiguous();
        Tensor<T> gx = Tensor<T>::empty(x.shape());
        const T* xp = x.data();
        const T* wp = weight.data();
        T* gp = gx.data();
        // sum_c w[c], for the smoothing term's gradient (s / C) * (sum(w) * softmax - w).
        const T weight_total = std::accumulate(wp, wp + C, T(0));
        geo.for_each_line([&](int64_t l, int64_t offset) {
          const auto ul = std::size_t(l);
          const int64_t label = labels[ul];
          T* out = gp + offset;
          if (label == ignore) {
            for (int64_t c = 0; c < C; ++c) out[c * geo.inner] = T(0);
            return;
          }
          const T scale = detail::sample_scale(gc.data(), l, reduction, divisor);
          const T* line = xp + offset;
          // w[y] * (softmax - one_hot), with smoothing (1 - s) times that plus the smoothing term's.
          const T hit = scale * wp[label] * (smoothing != T(0) ? keep : T(1));
          const T softmax_scale = smoothing != T(0) ? hit + scale * smoothing / T(C) * weight_total : hit;
          for (int64_t c = 0; c < C; ++c)
            out[c * geo.inner] = std::exp((line[c * geo.inner] - row_max[ul]) - log_sum[ul]) * softmax_scale;
          out[label * geo.inner] -= hit;
          if (smoothing != T(0))
            for (int64_t c = 0; c < C; ++c) out[c * geo.inner] -= scale * smoothing / T(C) * wp[c];
        });
        return std::vector<Tensor<T>>{gx};
      });
}

// The negative log-likelihood of log-probabilities (log_softmax's output) at class labels, as
// torch.nn.functional.nll_loss: -w[y] * input[y] per sample, with cross_entropy's shapes, weights,
// ignore_index and reductions (cross_entropy(x, y) is nll_loss(log_softmax(x, 1), y), or of
// log_softmax(x, 0) for one unbatched sample).
template <class T>
Variable<T> nll_loss(const Variable<T>& input, const std::vector<int64_t>& labels,
                     const NllLossOptions<T>& options = {}) {
  const detail::AlongDim geo =
      detail::class_geometry(input, labels, options.weight, options.ignore_index, "nll_loss");
  const Tensor<T> x = input.value().contiguous();
  const Tensor<T> weight = detail::class_weights(options.weight, geo.n);
  const std::optional<int64_t> ignore = options.ignore_index;
  const T* xp = x.data();
  const T* wp = weight.data();
  std::vector<T> term(static_cast<std::size_t>(geo.lines()));
  geo.for_each_line([&](int64_t l, int64_t offset) {
    const int64_t label = labels[std::size_t(l)];
    term[std::size_t(l)] = label == ignore ? T(0) : -wp[label] * xp[offset + label * geo.inner];
  });
  const Reduction reduction = options.reduction;
  auto [loss, divisor] = detail::reduce_class_terms(term, labels, wp, ignore, reduction, input.shape());
  return Variable<T>::from_op(
      loss, "nll_loss", {input},
      [shape = input.shape(), weight, labels, geo, ignore, reduction, divisor = divisor](const Tensor<T>& g) {
        const Tensor<T> gc = g.contiguous();
        Tensor<T> gx = Tensor<T>::zeros(shape);
        const T* wp = weight.data();
        T* gp = gx.data();
        geo.for_each_line([&](int64_t l, int64_t offset) {
          const int64_t label = labels[std::size_t(l)];
          if (label != ignore)
            gp[offset + label * geo.inner] =
                -wp[label] * detail::sample_scale(gc.data(), l, reduction, divisor);
        });
        return std::vector<Tensor<T>>{gx};
      });
}

}  // namespace sumi
