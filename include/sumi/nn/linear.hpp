#pragma once
// Linear: y = x W^T + b, as torch.nn.Linear. weight [out_features, in_features], bias [out_features].
#include "sumi/nn/init.hpp"
#include "sumi/nn/module.hpp"
#include "sumi/ops/linalg.hpp"

namespace sumi::nn {

template <std::floating_point T = float>
class Linear : public Module<T> {
 public:
  // Initialised as PyTorch's default (init::default_layer_init_) from `gen`.
  Linear(int64_t in_features, int64_t out_features, bool bias = true, Generator& gen = default_generator())
      : in_features(in_features), out_features(out_features) {
    if (in_features < 0 || out_features < 0)
      throw std::invalid_argument("Linear: negative size (" + std::to_string(in_features) + ", " +
                                  std::to_string(out_features) + ")");
    weight = Variable<T>(Tensor<T>::empty({out_features, in_features}), true);
    if (bias) this->bias = Variable<T>(Tensor<T>::empty({out_features}), true);
    this->bind_parameter("weight", weight);
    this->bind_parameter("bias", this->bias);
    reset_parameters(gen);
  }

  void reset_parameters(Generator& gen = default_generator()) {
    init::default_layer_init_(weight, bias, gen);
  }

  Variable<T> forward(const Variable<T>& x) override { return linear(x, weight, bias); }

  std::string extra_repr() const override {
    return "in_features=" + std::to_string(in_features) + ", out_features=" + std::to_string(out_features) +
           ", bias=" + detail::python_bool(bias.defined());
  }

  const int64_t in_features;
  const int64_t out_features;
  Variable<T> weight;
  Variable<T> bias;  // undefined without a bias
};

}  // namespace sumi::nn
