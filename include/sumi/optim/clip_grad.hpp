#pragma once
// Gradient clipping between backward() and the optimiser's step(), as torch.nn.utils.clip_grad_norm_ and
// clip_grad_value_:
//
//   loss.backward();
//   optim::clip_grad_norm_(model.parameters(), 1.0);
//   optimizer.step();
//
// Parameters without a gradient are skipped; a strided gradient (a view) is written through, as PyTorch's
// in-place ops do. Unlike PyTorch: a parameter listed twice counts once (PyTorch would add its norm twice and
// scale its gradient twice); a negative or NaN limit is refused rather than flipping or poisoning every
// gradient, and so is a norm_type of 0 or below (PyTorch's 0 counts the non-zero norms); the norm and the
// scale factor are computed in double (PyTorch's float factor can differ in the last bit), the norm without
// overflow, so float gradients whose float norm overflows to inf in PyTorch get a finite norm: they are
// scaled rather than zeroed, and error_if_nonfinite does not throw.
#include <Eigen/Core>
#include <algorithm>
#include <cmath>
#include <concepts>
#include <initializer_list>
#include <limits>
#include <stdexcept>
#include <string>
#include <unordered_set>
#include <vector>

#include "sumi/autograd/variable.hpp"
#include "sumi/util/number_text.hpp"

namespace sumi::optim {

namespace detail {

// The distinct parameters that hold a gradient.
template <std::floating_point T>
std::vector<Variable<T>> parameters_with_gradients(const std::vector<Variable<T>>& parameters) {
  std::vector<Variable<T>> with_grad;
  std::unordered_set<const void*> seen;
  for (const Variable<T>& p : parameters)
    if (p.grad().defined() && seen.insert(p.id()).second) with_grad.push_back(p);
  return with_grad;
}

template <class T>
using GradientArray = Eigen::Map<Eigen::Array<T, Eigen::Dynamic, 1>>;
template <class T>
using ConstGradientArray = Eigen::Map<const Eigen::Array<T, Eigen::Dynamic, 1>>;

// The gradient's elements as one array: the gradient itself, or a contiguous copy of a strided one.
template <std::floating_point T>
Tensor<T> gradient_values(const Variable<T>& p) {
  return p.grad().contiguous();
}

// update(array) on the gradient's elements, written back through a strided gradient too (as PyTorch's
// in-place ops write through a view).
template <std::floating_point T, class Update>
void update_gradient(Variable<T> p, Update update) {
  Tensor<T> values = gradient_values(p);
  update(GradientArray<T>(values.data(), Eigen::Index(values.numel())));
  if (!values.shares_storage_with(p.grad())) p.grad().copy_(values);
}

}  // namespace detail

// Scales the gradients of `parameters` so that their total norm (the p-norm of all their elements together,
// p = norm_type > 0 or infinity) is at most max_norm: each is multiplied by max_norm / (norm + 1e-6) when
// that is below 1. Returns the total norm before clipping, computed in double without overflow. A NaN or
// infinite norm scales every gradient by NaN or 0 as PyTorch does, or throws when error_if_nonfinite.
template <std::floating_point T>
double clip_grad_norm_(const std::vector<Variable<T>>& parameters, double max_norm, double norm_type = 2.0,
                       bool error_if_nonfinite = false) {
  if (!(max_norm >= 0))
    throw std::invalid_argument("clip_grad_norm_: max_norm must be non-negative, got " +
                                util::format_round_trip(max_norm));
  if (!(norm_type > 0))
    throw std::invalid_argument("clip_grad_norm_: norm_type must be positive or infinity, got " +
                                util::format_round_trip(norm_type));
  const std::vector<Variable<T>> with_grad = detail::parameters_with_gradients(parameters);
  // The largest magnitude first: it is the infinity norm, and dividing by it keeps the p-th powers of the
  // p-norm in range.
  double largest = 0;
  for (const Variable<T>& p : with_grad) {
    const Tensor<T> values = detail::gradient_values(p);
    const detail::ConstGradientArray<T> g(values.data(), Eigen::Index(values.numel()));
    if (g.isNaN().any()) {
      largest = std::numeric_limits<double>::quiet_NaN();
      break;
    }
    if (g.size() > 0) largest = std::max(largest, double(g.abs().maxCoeff()));
  }
  double total = largest;
  if (std::isfinite(norm_type) && std::isfinite(largest) && largest > 0) {
    double sum = 0;
    for (const Variable<T>& p : with_grad) {
      const Tensor<T> values = detail::gradient_values(p);
      const detail::ConstGradientArray<T> g(values.data(), Eigen::Index(values.numel()));
      sum += (g.template cast<double>().abs() / largest).pow(norm_type).sum();
    }
    total = largest * std::pow(sum, 1 / norm_type);
  }
  if (error_if_nonfinite && !std::isfinite(total))
    throw std::domain_error("clip_grad_norm_: the total norm of order " + util::format_round_trip(norm_type) +
                            " of the gradients of " + std::to_string(with_grad.size()) + " parameters is " +
                            util::format_round_trip(total) + ", so it cannot be clipped");
  const double coefficient = max_norm / (total + 1e-6);
  if (!(coefficient >= 1))  // NaN too, as PyTorch's clamp(coefficient, max=1) passes it on
    for (const Variable<T>& p : with_grad) detail::update_gradient(p, [&](auto g) { g *= T(coefficient); });
  return total;
}

// A braced list ({w, b}) or one parameter, as PyTorch takes an iterable or a single tensor.
template <std::floating_point T>
double clip_grad_norm_(std::initializer_list<Variable<T>> parameters, double max_norm, double norm_type = 2.0,
                       bool error_if_nonfinite = false) {
  return clip_grad_norm_(std::vector<Variable<T>>(parameters), max_norm, norm_type, error_if_nonfinite);
}
template <std::floating_point T>
double clip_grad_norm_(const Variable<T>& parameter, double max_norm, double norm_type = 2.0,
                       bool error_if_nonfinite = false) {
  return clip_grad_norm_({parameter}, max_norm, norm_type, error_if_nonfinite);
}

// Limits every gradient element of `parameters` to [-clip_value, clip_value] (NaN stays NaN).
template <std::floating_point T>
void clip_grad_value_(const std::vector<Variable<T>>& parameters, double clip_value) {
  if (!(clip_value >= 0))
    throw std::invalid_argument("clip_grad_value_: clip_value must be non-negative, got " +
                                util::format_round_trip(clip_value));
  const T limit = T(clip_value);
  for (const Variable<T>& p : detail::parameters_with_gradients(parameters))
    detail::update_gradient(p, [limit](auto g) { g = g.isNaN().select(g, g.max(-limit).min(limit)); });
}

// A braced list or one parameter, as clip_grad_norm_'s.
template <std::floating_point T>
void clip_grad_value_(std::initializer_list<Variable<T>> parameters, double clip_value) {
  clip_grad_value_(std::vector<Variable<T>>(parameters), clip_value);
}
template <std::floating_point T>
void clip_grad_value_(const Variable<T>& parameter, double clip_value) {
  clip_grad_value_({parameter}, clip_value);
}

}  // namespace sumi::optim
