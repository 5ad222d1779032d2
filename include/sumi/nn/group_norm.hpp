#pragma once
// GroupNorm and InstanceNorm2d, as torch.nn's: group_norm over [N, C, *] inputs with, when affine,
// per-channel parameters weight (ones) and bias (zeros) [C], else none.
#include <cstddef>
#include <cstdint>
#include <stdexcept>
#include <string>

#include "sumi/nn/module.hpp"
#include "sumi/ops/group_norm.hpp"
#include "sumi/ops/shape_ops.hpp"
#include "sumi/util/number_text.hpp"

namespace sumi::nn {

namespace detail {

// Parameters weight and bias [C] of a normalisation layer, bound also without affine: undefined members are
// no parameters, as torch's registered None.
template <class T>
void bind_affine(Module<T>& m, bool affine, int64_t channels, Variable<T>& weight, Variable<T>& bias) {
  if (affine) {
    weight = Variable<T>(Tensor<T>::ones({channels}), true);
    bias = Variable<T>(Tensor<T>::zeros({channels}), true);
  }
  m.bind_parameter("weight", weight);
  m.bind_parameter("bias", bias);
}

// Channels in dimension `dim` of x (1, or 0 for an unbatched input).
inline void require_channels(const char* layer, const Shape& x, int64_t channels, std::size_t dim = 1) {
  if (x.size() <= dim || x[dim] != channels)
    throw std::invalid_argument(std::string(layer) + ": input of shape " + shape_str(x) + " does not have " +
                                std::to_string(channels) + " channels (expected " +
                                (dim == 0 ? "[" : "[N, ") + std::to_string(channels) + ", *])");
}

inline void require_eps(const char* layer, double eps) {
  if (!(eps >= 0))
    throw std::invalid_argument(std::string(layer) + ": eps " + util::format_round_trip(eps) +
                                " must be >= 0");
}

}  // namespace detail

// Splits the num_channels channels into num_groups groups of consecutive channels, each normalised per
// sample over its channels and positions. Without affine, as torch, any channel count that num_groups
// divides is taken; with affine the weight and bias fix it to num_channels.
template <std::floating_point T = float>
class GroupNorm : public Module<T> {
 public:
  GroupNorm(int64_t num_groups, int64_t num_channels, double eps = 1e-5, bool affine = true)
      : num_groups(num_groups), num_channels(num_channels), eps(T(eps)), affine(affine) {
    // Checked before the parameters are made: torch fails with a ZeroDivisionError or a negative size.
    if (num_groups <= 0)
      throw std::invalid_argument("GroupNorm: num_groups must be positive, got " +
                                  std::to_string(num_groups));
    if (num_channels < 0)
      throw std::invalid_argument("GroupNorm: num_channels must be >= 0, got " +
                                  std::to_string(num_channels));
    if (num_channels % num_groups != 0)
      throw std::invalid_argument("GroupNorm: num_channels " + std::to_string(num_channels) +
                                  " is not a multiple of num_groups " + std::to_string(num_groups));
    detail::require_eps("GroupNorm", eps);
    detail::bind_affine(*this, affine, num_channels, weight, bias);
  }

  Variable<T> forward(const Variable<T>& x) override {
    if (affine) detail::require_channels("GroupNorm", x.shape(), num_channels);
    return group_norm(x, num_groups, weight, bias, eps);
  }

  std::string extra_repr() const override {
    return std::to_string(num_groups) + ", " + std::to_string(num_channels) +
           ", eps=" + detail::python_float_repr(eps) + ", affine=" + detail::python_bool(affine);
  }

  const int64_t num_groups;
  const int64_t num_channels;
  const T eps;
  const bool affine;
  Variable<T> weight;
  Variable<T> bias;
};

// Normalises every channel of every sample over its H x W positions: group_norm with one group per channel.
// Only torch's default track_running_stats=False: no running statistics, so training and eval mode agree,
// and, as torch, a single position per channel is refused in both (momentum, taken in torch's argument
// order and kept for the repr, is unused). Takes [N, C, H, W] or an unbatched [C, H, W] input; a channel
// count other than num_features is refused also without affine, where torch only warns.
template <std::floating_point T = float>
class InstanceNorm2d : public Module<T> {
 public:
  explicit InstanceNorm2d(int64_t num_features, double eps = 1e-5, double momentum = 0.1, bool affine = false)
      : num_features(num_features), eps(T(eps)), momentum(T(momentum)), affine(affine) {
    if (num_features <= 0)
      throw std::invalid_argument("InstanceNorm2d: num_features must be positive, got " +
                                  std::to_string(num_features));
    detail::require_eps("InstanceNorm2d", eps);
    detail::bind_affine(*this, affine, num_features, weight, bias);
  }
  // A bool third argument (affine where torch puts momentum) would otherwise become a momentum of 1.
  InstanceNorm2d(int64_t num_features, double eps, bool affine) = delete;

  Variable<T> forward(const Variable<T>& x) override {
    const Shape& s = x.shape();
    if (s.size() != 3 && s.size() != 4)
      throw std::invalid_argument("InstanceNorm2d: expected 3D or 4D input, got shape " + shape_str(s));
    if (s.size() == 3) {  // unbatched: one sample
      detail::require_channels("InstanceNorm2d", s, num_features, 0);
      return reshape(forward(reshape(x, {1, s[0], s[1], s[2]})), s);
    }
    detail::require_channels("InstanceNorm2d", s, num_features);
    // As torch, in eval mode too (it has no running statistics to use instead): statistics of a single
    // position would normalise everything to 0.
    if (s[2] * s[3] == 1)
      throw std::invalid_argument(
          "InstanceNorm2d: expected more than 1 spatial element when training, got input "
          "of shape " +
          shape_str(s));
    return group_norm(x, num_features, weight, bias, eps);
  }

  std::string extra_repr() const override {
    return std::to_string(num_features) + ", eps=" + detail::python_float_repr(eps) +
           ", momentum=" + detail::python_float_repr(momentum) + ", affine=" + detail::python_bool(affine) +
           ", track_running_stats=False";
  }

  const int64_t num_features;
  const T eps;
  const T momentum;
  const bool affine;
  Variable<T> weight;
  Variable<T> bias;
};

}  // namespace sumi::nn
