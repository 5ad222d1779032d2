#pragma once
// Flatten and Unflatten, as torch.nn.Flatten (start_dim = 1 keeps the batch dimension) and
// torch.nn.Unflatten.
#include "sumi/nn/module.hpp"
#include "sumi/ops/shape_ops.hpp"

namespace sumi::nn {

template <std::floating_point T = float>
class Flatten : public Module<T> {
 public:
  explicit Flatten(int64_t start_dim = 1, int64_t end_dim = -1) : start_dim(start_dim), end_dim(end_dim) {}
  Variable<T> forward(const Variable<T>& x) override { return flatten(x, start_dim, end_dim); }
  std::string extra_repr() const override {
    return "start_dim=" + std::to_string(start_dim) + ", end_dim=" + std::to_string(end_dim);
  }

  const int64_t start_dim;
  const int64_t end_dim;
};

template <std::floating_point T = float>
class Unflatten : public Module<T> {
 public:
  // Splits dimension `dim` into `sizes`: Unflatten(1, {32, 3, 3}) maps [N, 288] to [N, 32, 3, 3].
  Unflatten(int64_t dim, Shape sizes) : dim(dim), sizes(std::move(sizes)) {
    if (this->sizes.empty()) throw std::invalid_argument("Unflatten: sizes must not be empty");
  }
  Variable<T> forward(const Variable<T>& x) override { return unflatten(x, dim, sizes); }
  std::string extra_repr() const override {
    return "dim=" + std::to_string(dim) + ", unflattened_size=" + detail::python_tuple(sizes);
  }

  const int64_t dim;
  const Shape sizes;
};

}  // namespace sumi::nn
