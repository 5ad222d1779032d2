#pragma once
// RMSprop, as torch.optim.RMSprop (single-tensor path):
//   g = grad + weight_decay * p
//   v = alpha * v + (1 - alpha) * g * g
//   avg = sqrt(v - m * m) + eps with m = alpha * m + (1 - alpha) * g when centered, else sqrt(v) + eps
//   buf = momentum * buf + g / avg, p -= lr * buf  when momentum > 0, else p -= lr * g / avg
// eps is added outside the square root, as PyTorch does (and unlike Keras' RMSprop).
#include <Eigen/Core>
#include <initializer_list>
#include <utility>

#include "sumi/optim/optimizer.hpp"

namespace sumi::optim {

struct RMSpropOptions {
  double lr = 1e-2;
  double alpha = 0.99;
  double eps = 1e-8;
  double weight_decay = 0.0;
  double momentum = 0.0;
  bool centered = false;
};

template <std::floating_point T = float>
class RMSprop : public Optimizer<T> {
 public:
  // One parameter group with options.lr and options.weight_decay; add more with add_param_group.
  template <ParameterList<T> Params>
  explicit RMSprop(Params&& params, RMSpropOptions options = {}) : RMSprop(options) {
    this->add_first_param_group(std::forward<Params>(params), options.lr);
  }
  explicit RMSprop(std::initializer_list<Variable<T>> params, RMSpropOptions options = {})
      : RMSprop(std::vector<Variable<T>>(params), options) {}
  // No parameter groups yet.
  explicit RMSprop(RMSpropOptions options) : Optimizer<T>(options.weight_decay), options_(options) {
    this->check_setting("learning rate", options.lr);
    this->check_setting("alpha", options.alpha);
    this->check_setting("eps", options.eps);
    this->check_setting("momentum", options.momentum);
    this->check_setting("weight_decay", options.weight_decay);
  }

  const RMSpropOptions& options() const { return options_; }
  std::string name() const override { return "RMSprop"; }

 protected:
  void update(Variable<T>& p, ParamState<T>& s, const ParamGroup<T>& group) override {
    using Array = Eigen::Array<T, Eigen::Dynamic, 1>;
    using Map = Eigen::Map<Array>;
    Tensor<T>& value = p.value();
    const Tensor<T> grad_tensor = p.grad().contiguous();
    const Eigen::Index n = value.numel();
    Map param(value.data(), n), square_avg(this->buffer(s, "square_avg", value.shape()).data(), n);
    Eigen::Map<const Array> grad(grad_tensor.data(), n);
    const T alpha = T(options_.alpha), one_minus_alpha = T(1 - options_.alpha), eps = T(options_.eps);
    const T neg_lr = T(-group.lr), momentum = T(options_.momentum);
    // Each statement below is one vectorised pass over the parameter, without temporaries; p is written in
    // the last one only, so g (which reads p under weight decay) sees the old value throughout.
    auto step_with = [&](const auto& g, const auto& avg) {
      if (options_.momentum > 0) {
        Map buf(this->buffer(s, "momentum_buffer", value.shape()).data(), n);
        buf = buf * momentum + g / avg;
        param += neg_lr * buf;
      } else {
        param += neg_lr * (g / avg);
      }
    };
    auto apply = [&](const auto& g) {
      square_avg = square_avg * alpha + (one_minus_alpha * g) * g;
      if (options_.centered) {
        Map grad_avg(this->buffer(s, "grad_avg", value.shape()).data(), n);
        grad_avg = grad_avg * alpha + one_minus_alpha * g;
        step_with(g, (square_avg - grad_avg * grad_avg).sqrt() + eps);
      } else {
        step_with(g, square_avg.sqrt() + eps);
      }
    };
    this->with_l2_penalty(group.weight_decay, grad, param, apply);
  }

  std::vector<std::string> buffer_names() const override {
    return {"grad_avg", "momentum_buffer", "square_avg"};
  }
  std::vector<std::string> required_buffers() const override {
    std::vector<std::string> names{"square_avg"};
    if (options_.momentum > 0) names.push_back("momentum_buffer");
    if (options_.centered) names.push_back("grad_avg");
    return names;
  }

 private:
  RMSpropOptions options_;
};

template <std::floating_point T>
RMSprop(std::vector<Variable<T>>, RMSpropOptions = {}) -> RMSprop<T>;

}  // namespace sumi::optim
