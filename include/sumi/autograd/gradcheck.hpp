#pragma once
// Numerical gradient checking: compares the gradients that backward() computes with central finite
// differences. Public, so users can check their own ops; use double precision.
#include <cmath>
#include <functional>
#include <sstream>
#include <string>
#include <vector>

#include "sumi/autograd/variable.hpp"

namespace sumi {

struct GradcheckOptions {
  double eps = 1e-6;     // finite-difference step
  double atol = 1e-5;    // absolute tolerance
  double rtol = 1e-4;    // relative tolerance
  uint64_t seed = 1234;  // for the random projection of non-scalar outputs
};

struct GradcheckResult {
  bool ok = true;
  double max_abs_error = 0;
  std::string message;  // the first mismatch: input, element, analytic and numeric values
};

// Checks d(sum(f(inputs) * r))/d(inputs) for a fixed random r, for every input that requires a gradient.
// f must be deterministic (reseed any randomness inside it) and compute from its argument alone: each input
// that requires a gradient is handed to it as a contiguous copy, a new leaf, so that the perturbation follows
// the elements' logical order (a transposed view's memory order is another) and leaves the caller's
// variables, and any storage they share, untouched.
template <std::floating_point T>
GradcheckResult gradcheck(const std::function<Variable<T>(const std::vector<Variable<T>>&)>& f,
                          std::vector<Variable<T>> inputs, GradcheckOptions options = {}) {
  GradcheckResult result;
  Tensor<T> projection;
  auto objective = [&](const std::vector<Variable<T>>& in) {
    NoGradGuard no_grad;
    const Tensor<T> out = f(in).value().contiguous();
    if (!projection.defined()) {
      Generator gen(options.seed);
      projection = Tensor<T>::rand(out.shape(), gen, T(-1), T(1));
    }
    double s = 0;
    for (int64_t i = 0; i < out.numel(); ++i) s += double(out.data()[i]) * double(projection.data()[i]);
    return s;
  };
  for (auto& in : inputs)
    if (in.requires_grad()) in = Variable<T>(in.value().clone(), true);
  objective(inputs);  // fixes the projection's shape

  Variable<T> out = f(inputs);
  out.backward(projection);

  for (std::size_t k = 0; k < inputs.size(); ++k) {
    Variable<T>& in = inputs[k];
    if (!in.requires_grad()) continue;
    Tensor<T>& value = in.value();
    for (int64_t i = 0; i < value.numel(); ++i) {
      const T saved = value.data()[i];
      value.data()[i] = T(double(saved) + options.eps);
      const double plus = objective(inputs);
      value.data()[i] = T(double(saved) - options.eps);
      const double minus = objective(inputs);
      value.data()[i] = saved;
      const double numeric = (plus - minus) / (2 * options.eps);
      const double analytic = in.grad().defined() ? double(in.grad().data()[i]) : 0.0;
      const double err = std::abs(numeric - analytic);
      // Written so that a NaN (in either gradient) fails and becomes the maximum rather than being skipped.
      if (!(err <= result.max_abs_error)) result.max_abs_error = err;
      if (result.ok && !(err <= options.atol + options.rtol * std::abs(numeric))) {
        result.ok = false;
        std::ostringstream msg;
        msg << "input " << k << " (shape " << shape_str(value.shape()) << ") element " << i << ": analytic "
            << analytic << " vs numeric " << numeric;
        result.message = msg.str();
      }
    }
  }
  return result;
}

}  // namespace sumi
