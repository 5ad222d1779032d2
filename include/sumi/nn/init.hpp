#pragma once
// Parameter initialisation, as torch.nn.init: in-place fills of a Tensor or a Variable's value from a
// Generator, and PyTorch's default initialisation of Linear and convolution layers.
//
// Values are drawn in row-major order, one Generator call per element, so the same seed gives the same
// weights on every platform (but not PyTorch's numbers: its generator differs).
#include <cmath>
#include <stdexcept>
#include <string>

#include "sumi/autograd/variable.hpp"
#include "sumi/tensor/random.hpp"

namespace sumi::nn::init {

struct Fans {
  int64_t fan_in = 0;
  int64_t fan_out = 0;
};

// As torch.nn.init._calculate_fan_in_and_fan_out: fan_in = size(1) * receptive field, fan_out = size(0) *
// receptive field, the receptive field being the product of the dimensions after the second. So a
// ConvTranspose2d weight [in, out, k, k] has fan_in = out * k * k, as in PyTorch.
inline Fans calculate_fans(const Shape& shape) {
  if (shape.size() < 2)
    throw std::invalid_argument(
        "init: fan in and fan out need a tensor of at least 2 dimensions, got shape " + shape_str(shape));
  int64_t receptive = 1;
  for (std::size_t i = 2; i < shape.size(); ++i) receptive *= shape[i];
  return {shape[1] * receptive, shape[0] * receptive};
}

enum class FanMode { fan_in, fan_out };
enum class Nonlinearity { linear, conv2d, sigmoid, tanh, relu, leaky_relu };

// torch.nn.init.calculate_gain; `param` is leaky_relu's negative slope.
inline double calculate_gain(Nonlinearity nonlinearity, double param = 0.01) {
  switch (nonlinearity) {
    case Nonlinearity::linear:
    case Nonlinearity::conv2d:
    case Nonlinearity::sigmoid:
      return 1.0;
    case Nonlinearity::tanh:
      return 5.0 / 3.0;
    case Nonlinearity::relu:
      return std::sqrt(2.0);
    case Nonlinearity::leaky_relu:
      return std::sqrt(2.0 / (1.0 + param * param));
  }
  return 1.0;
}

namespace detail {
// Sets every element of t (any strides) to f().
template <class T, class F>
void fill_with(Tensor<T>& t, F&& f) {
  if (t.is_contiguous()) {
    T* p = t.data();
    for (int64_t i = 0; i < t.numel(); ++i) p[i] = T(f());
  } else {
    T* p = t.data();
    t.for_each_offset([&](int64_t off) { p[off] = T(f()); });
  }
}
}  // namespace detail

// Uniform in [low, high).
template <class T>
Tensor<T> uniform_(Tensor<T> t, double low = 0.0, double high = 1.0, Generator& gen = default_generator()) {
  if (!(low <= high)) throw std::invalid_argument("init::uniform_: low must not exceed high");
  detail::fill_with(t, [&] { return gen.uniform(low, high); });
  return t;
}
template <class T>
Tensor<T> normal_(Tensor<T> t, double mean = 0.0, double std = 1.0, Generator& gen = default_generator()) {
  if (!(std >= 0)) throw std::invalid_argument("init::normal_: std must be non-negative");
  detail::fill_with(t, [&] { return gen.normal(mean, std); });
  return t;
}
template <class T>
Tensor<T> constant_(Tensor<T> t, double value) {
  t.fill_(T(value));
  return t;
}
template <class T>
Tensor<T> zeros_(Tensor<T> t) {
  return constant_(std::move(t), 0.0);
}
template <class T>
Tensor<T> ones_(Tensor<T> t) {
  return constant_(std::move(t), 1.0);
}
// U(-bound, bound) with bound = gain * sqrt(3 / fan), gain from the nonlinearity and `a` (leaky_relu's
// negative slope), as torch.nn.init.kaiming_uniform_.
template <class T>
Tensor<T> kaiming_uniform_(Tensor<T> t, double a = 0.0, FanMode mode = FanMode::fan_in,
                           Nonlinearity nonlinearity = Nonlinearity::leaky_relu,
                           Generator& gen = default_generator()) {
  const Fans fans = calculate_fans(t.shape());
  const int64_t fan = mode == FanMode::fan_in ? fans.fan_in : fans.fan_out;
  if (fan == 0) return t;  // PyTorch warns and leaves an empty tensor alone
  const double bound = calculate_gain(nonlinearity, a) * std::sqrt(3.0 / double(fan));
  return uniform_(std::move(t), -bound, bound, gen);
}
// N(0, std^2) with std = gain / sqrt(fan), as torch.nn.init.kaiming_normal_.
template <class T>
Tensor<T> kaiming_normal_(Tensor<T> t, double a = 0.0, FanMode mode = FanMode::fan_in,
                          Nonlinearity nonlinearity = Nonlinearity::leaky_relu,
                          Generator& gen = default_generator()) {
  const Fans fans = calculate_fans(t.shape());
  const int64_t fan = mode == FanMode::fan_in ? fans.fan_in : fans.fan_out;
  if (fan == 0) return t;
  return normal_(std::move(t), 0.0, calculate_gain(nonlinearity, a) / std::sqrt(double(fan)), gen);
}
// U(-a, a) with a = gain * sqrt(6 / (fan_in + fan_out)).
template <class T>
Tensor<T> xavier_uniform_(Tensor<T> t, double gain = 1.0, Generator& gen = default_generator()) {
  const Fans fans = calculate_fans(t.shape());
  const double bound = gain * std::sqrt(6.0 / double(fans.fan_in + fans.fan_out));
  return uniform_(std::move(t), -bound, bound, gen);
}

// The same fills on a Variable's value (in place; the Variable is a shared handle).
template <class T>
Variable<T> uniform_(Variable<T> v, double low = 0.0, double high = 1.0,
                     Generator& gen = default_generator()) {
  uniform_(v.value(), low, high, gen);
  v.mark_modified();
  return v;
}
template <class T>
Variable<T> normal_(Variable<T> v, double mean = 0.0, double std = 1.0,
                    Generator& gen = default_generator()) {
  normal_(v.value(), mean, std, gen);
  v.mark_modified();
  return v;
}
template <class T>
Variable<T> constant_(Variable<T> v, double value) {
  constant_(v.value(), value);
  v.mark_modified();
  return v;
}
template <class T>
Variable<T> zeros_(Variable<T> v) {
  return constant_(std::move(v), 0.0);
}
template <class T>
Variable<T> ones_(Variable<T> v) {
  return constant_(std::move(v), 1.0);
}
template <class T>
Variable<T> kaiming_uniform_(Variable<T> v, double a = 0.0, FanMode mode = FanMode::fan_in,
                             Nonlinearity nonlinearity = Nonlinearity::leaky_relu,
                             Generator& gen = default_generator()) {
  kaiming_uniform_(v.value(), a, mode, nonlinearity, gen);
  v.mark_modified();
  return v;
}
template <class T>
Variable<T> kaiming_normal_(Variable<T> v, double a = 0.0, FanMode mode = FanMode::fan_in,
                            Nonlinearity nonlinearity = Nonlinearity::leaky_relu,
                            Generator& gen = default_generator()) {
  kaiming_normal_(v.value(), a, mode, nonlinearity, gen);
  v.mark_modified();
  return v;
}
template <class T>
Variable<T> xavier_uniform_(Variable<T> v, double gain = 1.0, Generator& gen = default_generator()) {
  xavier_uniform_(v.value(), gain, gen);
  v.mark_modified();
  return v;
}

// PyTorch's reset_parameters() of Linear, Conv2d and ConvTranspose2d: weight ~ kaiming_uniform_(a =
// sqrt(5)), i.e. U(-1/sqrt(fan_in), 1/sqrt(fan_in)); bias (if defined) ~ U(-1/sqrt(fan_in), 1/sqrt(fan_in))
// with the weight's fan_in. The weight is drawn first, then the bias.
template <class T>
void default_layer_init_(Variable<T> weight, Variable<T> bias, Generator& gen = default_generator()) {
  kaiming_uniform_(weight, std::sqrt(5.0), FanMode::fan_in, Nonlinearity::leaky_relu, gen);
  if (!bias.defined()) return;
  const int64_t fan_in = calculate_fans(weight.shape()).fan_in;
  const double bound = fan_in > 0 ? 1.0 / std::sqrt(double(fan_in)) : 0.0;
  uniform_(bias, -bound, bound, gen);
}

}  // namespace sumi::nn::init
