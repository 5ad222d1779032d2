#pragma once
// Adagrad, as torch.optim.Adagrad (dense gradients):
//   g = grad + weight_decay * p
//   sum = sum + g * g            (sum starts at initial_accumulator_value)
//   p -= lr / (1 + (t - 1) * lr_decay) * g / (sqrt(sum) + eps)
#include <Eigen/Core>
#include <initializer_list>
#include <utility>

#include "sumi/optim/optimizer.hpp"

namespace sumi::optim {

struct AdagradOptions {
  double lr = 1e-2;
  double lr_decay = 0.0;
  double weight_decay = 0.0;
  double initial_accumulator_value = 0.0;
  double eps = 1e-10;
};

template <std::floating_point T = float>
class Adagrad : public Optimizer<T> {
 public:
  // One parameter group with options.lr and options.weight_decay; add more with add_param_group.
  template <ParameterList<T> Params>
  explicit Adagrad(Params&& params, AdagradOptions options = {}) : Adagrad(options) {
    this->add_first_param_group(std::forward<Params>(params), options.lr);
  }
  explicit Adagrad(std::initializer_list<Variable<T>> params, AdagradOptions options = {})
      : Adagrad(std::vector<Variable<T>>(params), options) {}
  // No parameter groups yet.
  explicit Adagrad(AdagradOptions options) : Optimizer<T>(options.weight_decay), options_(options) {
    this->check_setting("learning rate", options.lr);
    this->check_setting("lr_decay", options.lr_decay);
    this->check_setting("weight_decay", options.weight_decay);
    this->check_setting("initial_accumulator_value", options.initial_accumulator_value);
    this->check_setting("eps", options.eps);
  }

  const AdagradOptions& options() const { return options_; }
  std::string name() const override { return "Adagrad"; }

 protected:
  void update(Variable<T>& p, ParamState<T>& s, const ParamGroup<T>& group) override {
    using Array = Eigen::Array<T, Eigen::Dynamic, 1>;
    using Map = Eigen::Map<Array>;
    Tensor<T>& value = p.value();
    const Tensor<T> grad_tensor = p.grad().contiguous();
    const Eigen::Index n = value.numel();
    Map param(value.data(), n);
    Map sum(this->buffer(s, "sum", value.shape(), T(options_.initial_accumulator_value)).data(), n);
    Eigen::Map<const Array> grad(grad_tensor.data(), n);
    const T neg_clr = T(-(group.lr / (1 + double(s.step - 1) * options_.lr_decay))), eps = T(options_.eps);
    // Two vectorised passes; p is written in the second only, so g (which reads p under weight decay) sees
    // the old value throughout.
    auto apply = [&](const auto& g) {
      sum += g * g;
      param += neg_clr * (g / (sum.sqrt() + eps));
    };
    this->with_l2_penalty(group.weight_decay, grad, param, apply);
  }

  std::vector<std::string> buffer_names() const override { return {"sum"}; }

 private:
  AdagradOptions options_;
};

template <std::floating_point T>
Adagrad(std::vector<Variable<T>>, AdagradOptions = {}) -> Adagrad<T>;

}  // namespace sumi::optim
