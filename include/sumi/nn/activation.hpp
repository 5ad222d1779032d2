#pragma once
// Activation layers, as their torch.nn namesakes (no parameters): ReLU, LeakyReLU, Sigmoid, Tanh, ELU, SELU,
// GELU, SiLU, Softplus, Mish, Hardtanh, ReLU6, Softmax, LogSoftmax and Identity. Each forward is the op of
// the same name (ops/elementwise.hpp, ops/softmax.hpp); repr() prints what PyTorch 1.13 prints.
#include <cmath>
#include <concepts>
#include <cstdint>
#include <stdexcept>
#include <string>

#include "sumi/nn/module.hpp"
#include "sumi/ops/elementwise.hpp"
#include "sumi/ops/softmax.hpp"

namespace sumi::nn {

namespace detail {

// A layer setting that prints as PyTorch prints it: PyTorch's reprs show the argument as given, an integer
// without a decimal point (Softplus(beta=1)) and a floating-point number as Python's repr (ELU(alpha=1.0)).
class PythonNumber {
 public:
  template <std::integral I>
  requires(!std::same_as<I, bool>) PythonNumber(I value)
      : value_(double(value)), repr_(std::to_string(value)) {}
  template <std::floating_point F>
  PythonNumber(F value) : value_(double(value)), repr_(python_float_repr(value)) {}

  double value() const { return value_; }
  const std::string& repr() const { return repr_; }

 private:
  double value_;
  std::string repr_;
};

}  // namespace detail

template <std::floating_point T = float>
class ReLU : public Module<T> {
 public:
  Variable<T> forward(const Variable<T>& x) override { return relu(x); }
};

template <std::floating_point T = float>
class LeakyReLU : public Module<T> {
 public:
  explicit LeakyReLU(double negative_slope = 0.01) : negative_slope(T(negative_slope)) {}
  Variable<T> forward(const Variable<T>& x) override { return leaky_relu(x, negative_slope); }
  std::string extra_repr() const override {
    return "negative_slope=" + detail::python_float_repr(negative_slope);
  }

  const T negative_slope;
};

template <std::floating_point T = float>
class Sigmoid : public Module<T> {
 public:
  Variable<T> forward(const Variable<T>& x) override { return sigmoid(x); }
};

template <std::floating_point T = float>
class Tanh : public Module<T> {
 public:
  Variable<T> forward(const Variable<T>& x) override { return sumi::tanh(x); }
};

// elu(x, alpha). A non-finite alpha is refused here, when the layer is made.
template <std::floating_point T = float>
class ELU : public Module<T> {
 public:
  explicit ELU(detail::PythonNumber alpha = 1.0) : alpha(T(alpha.value())), alpha_repr_(alpha.repr()) {
    sumi::detail::check_elu_alpha(this->alpha, "ELU", alpha_repr_);
  }
  Variable<T> forward(const Variable<T>& x) override { return elu(x, alpha); }
  std::string extra_repr() const override { return "alpha=" + alpha_repr_; }

  const T alpha;

 private:
  std::string alpha_repr_;
};

template <std::floating_point T = float>
class SELU : public Module<T> {
 public:
  Variable<T> forward(const Variable<T>& x) override { return selu(x); }
};

template <std::floating_point T = float>
class GELU : public Module<T> {
 public:
  explicit GELU(GeluApproximation approximate = GeluApproximation::none)
      : approximate(approximate),
        approximate_name_(sumi::detail::gelu_approximation_name(approximate, "GELU")) {}
  // PyTorch's spelling: "none" or "tanh".
  explicit GELU(const std::string& approximate)
      : approximate(parse(approximate)), approximate_name_(approximate) {}

  Variable<T> forward(const Variable<T>& x) override { return gelu(x, approximate); }
  std::string extra_repr() const override { return "approximate='" + approximate_name_ + "'"; }

  const GeluApproximation approximate;

 private:
  std::string approximate_name_;

  static GeluApproximation parse(const std::string& s) {
    if (s == "none") return GeluApproximation::none;
    if (s == "tanh") return GeluApproximation::tanh;
    throw std::invalid_argument("GELU: approximate must be 'none' or 'tanh', got '" + s + "'");
  }
};

template <std::floating_point T = float>
class SiLU : public Module<T> {
 public:
  Variable<T> forward(const Variable<T>& x) override { return silu(x); }
};

// softplus(x, beta, threshold). A zero or non-finite beta and a NaN threshold are refused when the layer is
// made.
template <std::floating_point T = float>
class Softplus : public Module<T> {
 public:
  explicit Softplus(detail::PythonNumber beta = 1, detail::PythonNumber threshold = 20)
      : beta(T(beta.value())),
        threshold(T(threshold.value())),
        repr_("beta=" + beta.repr() + ", threshold=" + threshold.repr()) {
    sumi::detail::check_softplus_settings(this->beta, this->threshold, "Softplus", beta.repr());
  }
  Variable<T> forward(const Variable<T>& x) override { return softplus(x, beta, threshold); }
  std::string extra_repr() const override { return repr_; }

  const T beta, threshold;

 private:
  std::string repr_;
};

template <std::floating_point T = float>
class Mish : public Module<T> {
 public:
  Variable<T> forward(const Variable<T>& x) override { return mish(x); }
};

// hardtanh(x, min_val, max_val). As nn.Hardtanh, it needs min_val < max_val (the op also takes equal bounds).
template <std::floating_point T = float>
class Hardtanh : public Module<T> {
 public:
  explicit Hardtanh(detail::PythonNumber min_val = -1.0, detail::PythonNumber max_val = 1.0)
      : min_val(T(min_val.value())),
        max_val(T(max_val.value())),
        repr_("min_val=" + min_val.repr() + ", max_val=" + max_val.repr()) {
    if (!(this->min_val < this->max_val))  // also NaN
      throw std::invalid_argument("Hardtanh: min_val " + min_val.repr() + " must be less than max_val " +
                                  max_val.repr());
  }
  Variable<T> forward(const Variable<T>& x) override { return hardtanh(x, min_val, max_val); }
  std::string extra_repr() const override { return repr_; }

  const T min_val, max_val;

 private:
  std::string repr_;
};

template <std::floating_point T = float>
class ReLU6 : public Module<T> {
 public:
  Variable<T> forward(const Variable<T>& x) override { return relu6(x); }
};

// softmax along `dim` (negative counts from the end). PyTorch's dim=None, an implicit choice it warns about,
// has no counterpart.
template <std::floating_point T = float>
class Softmax : public Module<T> {
 public:
  explicit Softmax(int64_t dim) : dim(dim) {}
  Variable<T> forward(const Variable<T>& x) override { return softmax(x, dim); }
  std::string extra_repr() const override { return "dim=" + std::to_string(dim); }

  const int64_t dim;
};

template <std::floating_point T = float>
class LogSoftmax : public Module<T> {
 public:
  explicit LogSoftmax(int64_t dim) : dim(dim) {}
  Variable<T> forward(const Variable<T>& x) override { return log_softmax(x, dim); }
  std::string extra_repr() const override { return "dim=" + std::to_string(dim); }

  const int64_t dim;
};

// Returns its input (the same Variable: no new node), as a placeholder where a layer is optional.
template <std::floating_point T = float>
class Identity : public Module<T> {
 public:
  Variable<T> forward(const Variable<T>& x) override { return x; }
};

}  // namespace sumi::nn
