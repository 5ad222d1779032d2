#pragma once
// Adam and AdamW, as torch.optim.Adam / AdamW (single-tensor path):
//   g = grad (+ weight_decay * p for Adam; the stored grad is not modified)
//   m = beta1 * m + (1 - beta1) * g;  v = beta2 * v + (1 - beta2) * g * g
//   p -= lr / (1 - beta1^t) * m / (sqrt(v) / sqrt(1 - beta2^t) + eps)
// With amsgrad, the denominator uses v_max = max(v_max, v), the largest v so far, instead of v.
// AdamW instead decays the parameter first: p *= 1 - lr * weight_decay. Scalars are computed in double and
// rounded to T once, element-wise work is in T, as PyTorch does for float32 parameters.
#include <Eigen/Core>
#include <cmath>
#include <initializer_list>
#include <utility>

#include "sumi/optim/optimizer.hpp"

namespace sumi::optim {

struct AdamOptions {
  double lr = 1e-3;
  double beta1 = 0.9;
  double beta2 = 0.999;
  double eps = 1e-8;
  double weight_decay = 0.0;
  bool amsgrad = false;
};

template <std::floating_point T = float>
class Adam : public Optimizer<T> {
 public:
  // One parameter group with options.lr and options.weight_decay; add more with add_param_group.
  template <ParameterList<T> Params>
  explicit Adam(Params&& params, AdamOptions options = {}) : Adam(options) {
    this->add_first_param_group(std::forward<Params>(params), options.lr);
  }
  explicit Adam(std::initializer_list<Variable<T>> params, AdamOptions options = {})
      : Adam(std::vector<Variable<T>>(params), options) {}
  // No parameter groups yet.
  explicit Adam(AdamOptions options) : Adam(options, false) {}

  const AdamOptions& options() const { return options_; }
  std::string name() const override { return decoupled_ ? "AdamW" : "Adam"; }

 protected:
  Adam(AdamOptions options, bool decoupled)
      : Optimizer<T>(options.weight_decay), options_(options), decoupled_(decoupled) {
    this->check_setting("learning rate", options.lr);
    this->check_setting("eps", options.eps);
    this->check_setting("weight_decay", options.weight_decay);
    for (const auto& [setting, beta] : {std::pair{"beta1", options.beta1}, std::pair{"beta2", options.beta2}})
      if (!(beta >= 0 && beta < 1))
        throw std::invalid_argument(name() + ": invalid " + setting + " " + util::format_round_trip(beta) +
                                    " (must be in [0, 1))");
  }

  void update(Variable<T>& p, ParamState<T>& s, const ParamGroup<T>& group) override {
    using Array = Eigen::Array<T, Eigen::Dynamic, 1>;
    using Map = Eigen::Map<Array>;
    using ConstMap = Eigen::Map<const Array>;
    Tensor<T>& value = p.value();
    const Tensor<T> grad_tensor = p.grad().contiguous();
    const Eigen::Index n = value.numel();
    Tensor<T>& exp_avg = this->buffer(s, "exp_avg", value.shape());
    Tensor<T>& exp_avg_sq = this->buffer(s, "exp_avg_sq", value.shape());
    Map param(value.data(), n), m(exp_avg.data(), n), v(exp_avg_sq.data(), n);
    ConstMap grad(grad_tensor.data(), n);

    const double lr = group.lr, wd = group.weight_decay;
    const auto step = double(s.step);
    const T beta1 = T(options_.beta1), one_minus_beta1 = T(1 - options_.beta1);
    const T beta2 = T(options_.beta2), one_minus_beta2 = T(1 - options_.beta2);
    const double bias_correction1 = 1 - std::pow(options_.beta1, step);
    const double bias_correction2 = 1 - std::pow(options_.beta2, step);
    const T neg_step_size = T(-(lr / bias_correction1));
    const T bias_correction2_sqrt = T(std::sqrt(bias_correction2));
    const T eps = T(options_.eps);
    // Each statement below is one vectorised pass over the parameter.
    auto moments_and_step = [&](const auto& g) {
      m = m * beta1 + one_minus_beta1 * g;
      v = v * beta2 + (one_minus_beta2 * g) * g;
      if (options_.amsgrad) {
        Map v_max(this->buffer(s, "max_exp_avg_sq", value.shape()).data(), n);
        // NaN-propagating, as torch.maximum (Eigen 3.4's public max() has no NaN option and keeps v_max).
        v_max = v_max.binaryExpr(v, Eigen::internal::scalar_max_op<T, T, Eigen::PropagateNaN>());
        param += neg_step_size * (m / (v_max.sqrt() / bias_correction2_sqrt + eps));
      } else {
        param += neg_step_size * (m / (v.sqrt() / bias_correction2_sqrt + eps));
      }
    };
    if (decoupled_) {
      if (wd != 0) param *= T(1 - lr * wd);
      moments_and_step(grad);
    } else {
      this->with_l2_penalty(wd, grad, param, moments_and_step);
    }
  }

  std::vector<std::string> buffer_names() const override {
    return {"exp_avg", "exp_avg_sq", "max_exp_avg_sq"};
  }
  std::vector<std::string> required_buffers() const override {
    return options_.amsgrad ? buffer_names() : std::vector<std::string>{"exp_avg", "exp_avg_sq"};
  }

 private:
  AdamOptions options_;
  bool decoupled_;
};

// Adam with decoupled weight decay (Loshchilov & Hutter), as torch.optim.AdamW. Note torch's AdamW default
// weight_decay is 1e-2; here, as for Adam, it is whatever the options say (default 0).
template <std::floating_point T = float>
class AdamW : public Adam<T> {
 public:
  template <ParameterList<T> Params>
  explicit AdamW(Params&& params, AdamOptions options = {}) : Adam<T>(options, true) {
    this->add_first_param_group(std::forward<Params>(params), options.lr);
  }
  explicit AdamW(std::initializer_list<Variable<T>> params, AdamOptions options = {})
      : AdamW(std::vector<Variable<T>>(params), options) {}
  explicit AdamW(AdamOptions options) : Adam<T>(options, true) {}
};

// Adam opt(params, ...) and AdamW take their element type from the parameters (the constructors' deduced
// parameter type cannot say it).
template <std::floating_point T>
Adam(std::vector<Variable<T>>, AdamOptions = {}) -> Adam<T>;
template <std::floating_point T>
AdamW(std::vector<Variable<T>>, AdamOptions = {}) -> AdamW<T>;

}  // namespace sumi::optim
