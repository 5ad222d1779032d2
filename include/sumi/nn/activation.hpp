#pragma once
// Activation layers: ReLU, LeakyReLU, Sigmoid, Tanh, as their torch.nn namesakes (no parameters).
#include "sumi/nn/module.hpp"
#include "sumi/ops/elementwise.hpp"

namespace sumi::nn {

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

}  // namespace sumi::nn
