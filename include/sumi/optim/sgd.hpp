#pragma once
// SGD with momentum, dampening, Nesterov momentum and L2 weight decay, as torch.optim.SGD:
//   g = grad + weight_decay * p
//   buf = g on the first step, else momentum * buf + (1 - dampening) * g   (when momentum != 0)
//   g = nesterov ? g + momentum * buf : buf
//   p -= lr * g
#include <Eigen/Core>
#include <initializer_list>
#include <utility>

#include "sumi/optim/optimizer.hpp"

namespace sumi::optim {

struct SGDOptions {
  double lr = 1e-3;
  double momentum = 0.0;
  double dampening = 0.0;
  double weight_decay = 0.0;
  bool nesterov = false;
};

template <std::floating_point T = float>
class SGD : public Optimizer<T> {
 public:
  // One parameter group with options.lr and options.weight_decay; add more with add_param_group.
  template <ParameterList<T> Params>
  explicit SGD(Params&& params, SGDOptions options = {}) : SGD(options) {
    this->add_first_param_group(std::forward<Params>(params), options.lr);
  }
  explicit SGD(std::initializer_list<Variable<T>> params, SGDOptions options = {})
      : SGD(std::vector<Variable<T>>(params), options) {}
  // No parameter groups yet.
  explicit SGD(SGDOptions options) : Optimizer<T>(options.weight_decay), options_(options) {
    this->check_setting("learning rate", options.lr);
    this->check_setting("momentum", options.momentum);
    this->check_setting("weight_decay", options.weight_decay);
    if (options.nesterov && (options.momentum <= 0 || options.dampening != 0))
      throw std::invalid_argument("SGD: Nesterov momentum requires a momentum and zero dampening");
  }

  const SGDOptions& options() const { return options_; }
  std::string name() const override { return "SGD"; }

 protected:
  void update(Variable<T>& p, ParamState<T>& s, const ParamGroup<T>& group) override {
    using Array = Eigen::Array<T, Eigen::Dynamic, 1>;
    Tensor<T>& value = p.value();
    const Tensor<T> grad_tensor = p.grad().contiguous();
    const Eigen::Index n = value.numel();
    Eigen::Map<Array> param(value.data(), n);
    Eigen::Map<const Array> grad(grad_tensor.data(), n);
    const T neg_lr = T(-group.lr), momentum = T(options_.momentum), dampening = T(1 - options_.dampening);
    // Element-wise expressions, evaluated lazily inside one vectorised pass per statement (no temporaries).
    auto apply = [&](const auto& g) {
      if (options_.momentum == 0) {
        param += neg_lr * g;
        return;
      }
      auto it = s.buffers.find("momentum_buffer");
      if (it == s.buffers.end()) {
        Tensor<T> first = Tensor<T>::empty(value.shape());
        Eigen::Map<Array>(first.data(), n) = g;
        it = s.buffers.emplace("momentum_buffer", std::move(first)).first;
      } else {
        Eigen::Map<Array> buf(it->second.data(), n);
        buf = buf * momentum + dampening * g;
      }
      Eigen::Map<const Array> buf(it->second.data(), n);
      if (options_.nesterov)
        param += neg_lr * (g + momentum * buf);  // reads each p before writing it
      else
        param += neg_lr * buf;
    };
    this->with_l2_penalty(group.weight_decay, grad, param, apply);
  }

  std::vector<std::string> buffer_names() const override { return {"momentum_buffer"}; }
  std::vector<std::string> required_buffers() const override {
    return options_.momentum != 0 ? buffer_names() : std::vector<std::string>{};
  }

 private:
  SGDOptions options_;
};

// SGD opt(params, ...) takes its element type from the parameters (the constructor's deduced parameter type
// cannot say it).
template <std::floating_point T>
SGD(std::vector<Variable<T>>, SGDOptions = {}) -> SGD<T>;

}  // namespace sumi::optim
