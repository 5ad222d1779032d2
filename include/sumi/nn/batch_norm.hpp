#pragma once
// BatchNorm1d and BatchNorm2d, as torch.nn's (affine, tracking running statistics): parameters weight (ones)
// and bias (zeros) [C]; buffers running_mean (zeros), running_var (ones) and the integer counter
// num_batches_tracked, incremented by every training-mode forward. Training mode normalises with the batch
// statistics and updates the running ones with `momentum`; eval mode uses the running statistics.
#include "sumi/nn/module.hpp"
#include "sumi/ops/batch_norm.hpp"

namespace sumi::nn {

template <std::floating_point T = float>
class BatchNormBase : public Module<T> {
 public:
  Variable<T> forward(const Variable<T>& x) override {
    check_input(x.shape());
    if (x.size(1) != num_features)
      throw std::invalid_argument(this->type_name() + ": input of shape " + shape_str(x.shape()) + " has " +
                                  std::to_string(x.size(1)) + " channels, expected " +
                                  std::to_string(num_features));
    Variable<T> y =
        batch_norm(x, running_mean, running_var, weight, bias, this->is_training(), momentum, eps);
    if (this->is_training()) ++num_batches_tracked;  // after the op, so a rejected input does not count
    return y;
  }

  // Running statistics back to mean 0, variance 1, no batches tracked.
  void reset_running_stats() {
    running_mean.fill_(T(0));
    running_var.fill_(T(1));
    num_batches_tracked = 0;
  }

  std::string extra_repr() const override {
    return std::to_string(num_features) + ", eps=" + detail::python_float_repr(eps) +
           ", momentum=" + detail::python_float_repr(momentum) + ", affine=True, track_running_stats=True";
  }

  const int64_t num_features;
  const T eps;
  const T momentum;
  Variable<T> weight;
  Variable<T> bias;
  Tensor<T>& running_mean;
  Tensor<T>& running_var;
  int64_t& num_batches_tracked;

 protected:
  BatchNormBase(const char* name, int64_t num_features, double eps, double momentum)
      : num_features(checked_features(name, num_features)),
        eps(T(eps)),
        momentum(T(momentum)),
        weight(Tensor<T>::ones({num_features}), true),
        bias(Tensor<T>::zeros({num_features}), true),
        running_mean(this->register_buffer("running_mean", Tensor<T>::zeros({num_features}))),
        running_var(this->register_buffer("running_var", Tensor<T>::ones({num_features}))),
        num_batches_tracked(this->register_counter("num_batches_tracked", 0)) {
    this->bind_parameter("weight", weight);
    this->bind_parameter("bias", bias);
  }
  virtual void check_input(const Shape& shape) const = 0;

 private:
  // Checked before the buffers are made of it: a negative size would fail there, naming no layer.
  static int64_t checked_features(const char* name, int64_t num_features) {
    if (num_features < 1)
      throw std::invalid_argument(std::string(name) + ": num_features must be positive, got " +
                                  std::to_string(num_features));
    return num_features;
  }
};

// Over [N, C] or [N, C, L] inputs.
template <std::floating_point T = float>
class BatchNorm1d : public BatchNormBase<T> {
 public:
  explicit BatchNorm1d(int64_t num_features, double eps = 1e-5, double momentum = 0.1)
      : BatchNormBase<T>("BatchNorm1d", num_features, eps, momentum) {}

 protected:
  void check_input(const Shape& shape) const override {
    if (shape.size() != 2 && shape.size() != 3)
      throw std::invalid_argument("BatchNorm1d: expected 2D or 3D input, got shape " + shape_str(shape));
  }
};

// Over [N, C, H, W] inputs.
template <std::floating_point T = float>
class BatchNorm2d : public BatchNormBase<T> {
 public:
  explicit BatchNorm2d(int64_t num_features, double eps = 1e-5, double momentum = 0.1)
      : BatchNormBase<T>("BatchNorm2d", num_features, eps, momentum) {}

 protected:
  void check_input(const Shape& shape) const override {
    if (shape.size() != 4)
      throw std::invalid_argument("BatchNorm2d: expected 4D input, got shape " + shape_str(shape));
  }
};

}  // namespace sumi::nn
