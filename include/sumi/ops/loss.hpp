#pragma once
// Loss functions with autograd, mean reduction, with PyTorch's values and gradients: mse_loss,
// bce_loss (torch's binary_cross_entropy), bce_with_logits, cross_entropy. The result is a scalar of shape
// []. The target is a constant: it gets no gradient, even when it requires one.
#include <algorithm>
#include <cmath>
#include <cstdint>
#include <limits>
#include <string>
#include <vector>

#include "sumi/autograd/variable.hpp"
#include "sumi/kernels/elementwise.hpp"
#include "sumi/kernels/threading.hpp"
#include "sumi/ops/reduction.hpp"

namespace sumi {

namespace detail {

template <class T>
void require_same_shape(const Variable<T>& input, const Variable<T>& target, const char* op) {
  if (input.shape() != target.shape())
    throw std::invalid_argument(std::string(op) + ": input of shape " + shape_str(input.shape()) +
                                " and target of shape " + shape_str(target.shape()) + " differ");
}

// mean over i of term(x[i], t[i]), with gradient g * dterm(x[i], t[i]) / n for the input. The mean is a
// deterministic chunked sum in acc_t<T>.
template <class T, class Term, class DTerm>
Variable<T> elementwise_loss(const Variable<T>& input, const Variable<T>& target, const char* op, Term term,
                             DTerm dterm) {
  input.require_defined(op);
  target.require_defined(op);
  require_same_shape(input, target, op);
  const Tensor<T> x = input.value().contiguous(), t = target.value().contiguous();
  const T* xp = x.data();
  const T* tp = t.data();
  const int64_t n = x.numel();
  const acc_t<T> total = chunked_sum<acc_t<T>>(n, [&](int64_t i) { return acc_t<T>(term(xp[i], tp[i])); });
  Tensor<T> loss = Tensor<T>::scalar(T(total / acc_t<T>(n)));
  return Variable<T>::from_op(loss, op, {input}, [x, t, n, dterm](const Tensor<T>& g) {
    const T scale = g.item() / T(n);
    Tensor<T> gx = Tensor<T>::empty(x.shape());
    kernels::zip(n, x.data(), t.data(), gx.data(),
                 [scale, dterm](T xi, T ti) { return dterm(xi, ti) * scale; });
    return std::vector<Tensor<T>>{gx};
  });
}

}  // namespace detail

// mean((input - target)^2)
template <class T>
Variable<T> mse_loss(const Variable<T>& input, const Variable<T>& target) {
  return detail::elementwise_loss(
      input, target, "mse_loss", [](T x, T t) { return (x - t) * (x - t); },
      [](T x, T t) { return T(2) * (x - t); });
}

// Binary cross-entropy of probabilities `input` (each in [0, 1]) against `target`, as
// torch.nn.functional.binary_cross_entropy: -(t * max(log(x), -100) + (1 - t) * max(log(1 - x), -100)),
// and gradient (x - t) / max(x * (1 - x), 1e-12) per element, so exact 0 or 1 inputs give finite values.
template <class T>
Variable<T> bce_loss(const Variable<T>& input, const Variable<T>& target) {
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
      input, target, "bce_loss",
      [](T x, T t) {
        const T log_x = std::max(std::log(x), T(-100)), log_1mx = std::max(std::log1p(-x), T(-100));
        return (t - T(1)) * log_1mx - t * log_x;
      },
      [](T x, T t) { return (x - t) / std::max((T(1) - x) * x, T(1e-12)); });
}

// Binary cross-entropy of sigmoid(logits) against `target`, as torch's binary_cross_entropy_with_logits:
// t * softplus(-z) + (1 - t) * softplus(z) = log(1 + exp(-|z|)) + t * max(-z, 0) + (1 - t) * max(z, 0);
// gradient sigmoid(z) - t per element. A term whose weight is 0 is left out, so an infinite logit gives the
// limit (inf or 0) where torch's form multiplies 0 by inf.
template <class T>
Variable<T> bce_with_logits(const Variable<T>& logits, const Variable<T>& target) {
  return detail::elementwise_loss(
      logits, target, "bce_with_logits",
      [](T z, T t) {
        return std::log1p(std::exp(-std::abs(z))) + (t != T(0) ? t * std::max(-z, T(0)) : T(0)) +
               (t != T(1) ? (T(1) - t) * std::max(z, T(0)) : T(0));
      },
      [](T z, T t) {
        const T sig = z >= T(0) ? T(1) / (T(1) + std::exp(-z)) : std::exp(z) / (T(1) + std::exp(z));
        return sig - t;
      });
}

// Cross-entropy of logits [N, C] against class labels (N of them, each in [0, C)), averaged over N, as
// torch.nn.functional.cross_entropy: mean over i of logsumexp(logits[i]) - logits[i, labels[i]].
template <class T>
Variable<T> cross_entropy(const Variable<T>& logits, const std::vector<int64_t>& labels) {
  logits.require_defined("cross_entropy");
  if (logits.dim() != 2)
    throw std::invalid_argument("cross_entropy: logits must be 2-d [N, C], got shape " +
                                shape_str(logits.shape()));
  const int64_t N = logits.size(0), C = logits.size(1);
  if (int64_t(labels.size()) != N)
    throw std::invalid_argument("cross_entropy: " + std::to_string(labels.size()) +
                                " labels for logits of shape " + shape_str(logits.shape()));
  for (int64_t i = 0; i < N; ++i) {
    const int64_t label = labels[std::size_t(i)];
    if (label < 0 || label >= C)
      throw std::out_of_range("cross_entropy: label " + std::to_string(label) + " at index " +
                              std::to_string(i) + " is out of range for " + std::to_string(C) + " classes");
  }
  const Tensor<T> x = logits.value().contiguous();
  // Per row: its max m and log(sum(exp(x - m))), kept for the backward pass. Differences are taken from
  // x - m first, which keeps the digits that x - (m + log_sum) would lose for large logits.
  std::vector<T> row_max(static_cast<std::size_t>(N)), log_sum(static_cast<std::size_t>(N));
  const T* xp = x.data();
#pragma omp parallel for schedule(static) \
    num_threads(sumi::get_num_threads()) if (N > 1 && N * C >= kernels::kParallelThreshold)
  for (int64_t i = 0; i < N; ++i) {
    const T* row = xp + i * C;
    T m = *std::max_element(row, row + C);
    // A row of -inf only takes m = 0, as torch's logsumexp; a +inf logit is kept, so its row gives NaN
    // (inf - inf), as torch's cross_entropy and log_softmax.
    if (m == -std::numeric_limits<T>::infinity()) m = T(0);
    T s = T(0);
    for (int64_t c = 0; c < C; ++c) s += std::exp(row[c] - m);
    row_max[std::size_t(i)] = m;
    log_sum[std::size_t(i)] = std::log(s);
  }
  const detail::acc_t<T> total = detail::chunked_sum<detail::acc_t<T>>(N, [&](int64_t i) {
    const auto ui = std::size_t(i);
    return detail::acc_t<T>(log_sum[ui] - (xp[i * C + labels[ui]] - row_max[ui]));
  });
  Tensor<T> loss = Tensor<T>::scalar(T(total / detail::acc_t<T>(N)));
  return Variable<T>::from_op(
      loss, "cross_entropy", {logits}, [x, row_max, log_sum, labels, N, C](const Tensor<T>& g) {
        const T scale = g.item() / T(N);
        Tensor<T> gx = Tensor<T>::empty(x.shape());
        const T* xp = x.data();
        T* gp = gx.data();
#pragma omp parallel for schedule(static) \
    num_threads(sumi::get_num_threads()) if (N > 1 && N * C >= kernels::kParallelThreshold)
        for (int64_t i = 0; i < N; ++i) {  // (softmax - one_hot) / N
          const auto ui = std::size_t(i);
          for (int64_t c = 0; c < C; ++c)
            gp[i * C + c] = std::exp((xp[i * C + c] - row_max[ui]) - log_sum[ui]) * scale;
          gp[i * C + labels[ui]] -= scale;
        }
        return std::vector<Tensor<T>>{gx};
      });
}

}  // namespace sumi
