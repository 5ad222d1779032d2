#pragma once
// LayerNorm, as torch.nn's: normalises the trailing normalized_shape dimensions of its input; with
// elementwise_affine, parameters weight (ones) and bias (zeros) of shape normalized_shape, else none.
#include <cstdint>
#include <initializer_list>
#include <stdexcept>
#include <string>
#include <utility>

#include "sumi/nn/module.hpp"
#include "sumi/ops/layer_norm.hpp"
#include "sumi/util/number_text.hpp"

namespace sumi::nn {

template <std::floating_point T = float>
class LayerNorm : public Module<T> {
 public:
  explicit LayerNorm(Shape normalized_shape, double eps = 1e-5, bool elementwise_affine = true)
      : normalized_shape(checked_shape(std::move(normalized_shape))),
        eps(T(eps)),
        elementwise_affine(elementwise_affine) {
    if (!(eps >= 0))
      throw std::invalid_argument("LayerNorm: eps " + util::format_round_trip(eps) + " must be >= 0");
    if (elementwise_affine) {
      weight = Variable<T>(Tensor<T>::ones(this->normalized_shape), true);
      bias = Variable<T>(Tensor<T>::zeros(this->normalized_shape), true);
    }
    // Bound also without affine: undefined members are no parameters, as torch's registered None.
    this->bind_parameter("weight", weight);
    this->bind_parameter("bias", bias);
  }
  // LayerNorm({3, 4}): without this overload the braces could also convert to a LayerNorm, and the call
  // would be ambiguous with the (deleted) copy constructor.
  explicit LayerNorm(std::initializer_list<int64_t> normalized_shape, double eps = 1e-5,
                     bool elementwise_affine = true)
      : LayerNorm(Shape(normalized_shape), eps, elementwise_affine) {}
  // Over the last dimension, of size `normalized_size`.
  explicit LayerNorm(int64_t normalized_size, double eps = 1e-5, bool elementwise_affine = true)
      : LayerNorm(Shape{normalized_size}, eps, elementwise_affine) {}

  Variable<T> forward(const Variable<T>& x) override {
    return layer_norm(x, normalized_shape, weight, bias, eps);
  }

  std::string extra_repr() const override {
    return detail::python_tuple(normalized_shape) + ", eps=" + detail::python_float_repr(eps) +
           ", elementwise_affine=" + detail::python_bool(elementwise_affine);
  }

  const Shape normalized_shape;
  const T eps;
  const bool elementwise_affine;
  Variable<T> weight;
  Variable<T> bias;

 private:
  // Checked before the parameters are made of it: torch accepts an empty shape here and fails only in
  // forward, and a negative size would fail in the tensor, naming no layer.
  static Shape checked_shape(Shape shape) {
    if (shape.empty())
      throw std::invalid_argument("LayerNorm: normalized_shape must have at least one dimension, got []");
    for (const int64_t d : shape)
      if (d < 0)
        throw std::invalid_argument("LayerNorm: normalized_shape " + shape_str(shape) +
                                    " has a negative size");
    return shape;
  }
};

}  // namespace sumi::nn
