#pragma once
// Nearest and bilinear resampling with autograd, as torch.nn.functional.interpolate over [N, C, H, W] inputs:
// interpolate(x, {.size = {8, 8}, .mode = InterpolateMode::bilinear}) or
// interpolate(x, {.scale_factor = 2.0}).
#include <cmath>
#include <cstdint>
#include <optional>
#include <stdexcept>
#include <string>
#include <vector>

#include "sumi/autograd/variable.hpp"
#include "sumi/kernels/resample.hpp"
#include "sumi/ops/int_pair.hpp"
#include "sumi/util/number_text.hpp"

namespace sumi {

enum class InterpolateMode { nearest, bilinear };

inline const char* interpolate_mode_name(InterpolateMode mode) {
  return mode == InterpolateMode::bilinear ? "bilinear" : "nearest";
}

// A (height, width) pair of scale factors; a single number sets both.
struct ScalePair {
  double h = 1, w = 1;
  constexpr ScalePair() = default;
  constexpr ScalePair(double both) : h(both), w(both) {}  // implicit: `.scale_factor = 2.0`
  constexpr ScalePair(double height, double width) : h(height), w(width) {}
  friend constexpr bool operator==(const ScalePair&, const ScalePair&) = default;
  std::string to_string() const {
    std::string s = "(";
    s += util::format_round_trip(h);
    s += ", ";
    s += util::format_round_trip(w);
    s += ")";
    return s;
  }
};

// An optional (height, width) pair that braces can also set from both values: `.size = {8, 3}` (a plain
// std::optional takes a single value only), `.size = 8`, or unset.
template <class Pair>
struct OptionalPair : std::optional<Pair> {
  using std::optional<Pair>::optional;
  template <class H, class W>
  constexpr OptionalPair(H height, W width) : std::optional<Pair>(Pair(height, width)) {}
};

// Exactly one of size and scale_factor. With a scale factor the output size is floor(input size * scale) and,
// as PyTorch (recompute_scale_factor unset), the source positions come from the scale itself, not from the
// rounded sizes. align_corners is bilinear's alone, false when unset; setting it (even to false) with
// nearest is refused, as PyTorch.
struct InterpolateOptions {
  OptionalPair<IntPair> size = std::nullopt;
  OptionalPair<ScalePair> scale_factor = std::nullopt;
  InterpolateMode mode = InterpolateMode::nearest;
  std::optional<bool> align_corners = std::nullopt;
};

namespace detail {

// The geometry of resampling an input of `shape` under `options`, checked as PyTorch checks it.
inline kernels::Resample2dGeometry interpolate_geometry(const Shape& shape,
                                                        const InterpolateOptions& options) {
  const std::string input = "interpolate: input of shape " + shape_str(shape);
  if (shape.size() != 4) throw std::invalid_argument(input + " must be 4-d [N, C, H, W]");
  require_2d_input_sizes(input, shape, 1);
  if (options.size.has_value() == options.scale_factor.has_value())
    throw std::invalid_argument(std::string("interpolate: give exactly one of size and scale_factor (") +
                                (options.size.has_value() ? "both were given" : "neither was given") + ")");
  if (options.align_corners.has_value() && options.mode == InterpolateMode::nearest)
    throw std::invalid_argument(
        "interpolate: align_corners can only be set with mode bilinear, not with mode nearest");
  kernels::Resample2dGeometry g{.planes = shape[0] * shape[1], .in_h = shape[2], .in_w = shape[3]};
  if (options.size.has_value()) {
    const IntPair size = *options.size;
    if (size.h < 1 || size.w < 1 || size.h > kMaxIntPairValue * kMaxIntPairValue ||
        size.w > kMaxIntPairValue * kMaxIntPairValue)
      throw std::invalid_argument(input + ": size " + size.to_string() + " must be in [1, 2^48]");
    g.out_h = size.h;
    g.out_w = size.w;
    return g;
  }
  const ScalePair scale = *options.scale_factor;
  if (!(scale.h > 0 && scale.w > 0 && std::isfinite(scale.h) && std::isfinite(scale.w)))
    throw std::invalid_argument(input + ": scale_factor " + scale.to_string() +
                                " must be positive and finite");
  // floor(in * scale), refused before the conversion to int64 could overflow.
  const double out_h = std::floor(double(g.in_h) * scale.h), out_w = std::floor(double(g.in_w) * scale.w);
  const double limit = double(kMaxIntPairValue * kMaxIntPairValue);
  if (out_h > limit || out_w > limit)
    throw std::invalid_argument(input + ": scale_factor " + scale.to_string() +
                                " gives an output size above 2^48");
  g.out_h = int64_t(out_h);
  g.out_w = int64_t(out_w);
  if (g.out_h < 1 || g.out_w < 1)
    throw std::invalid_argument(input + ": scale_factor " + scale.to_string() + " gives an empty output " +
                                IntPair(g.out_h, g.out_w).to_string());
  return g;
}

}  // namespace detail

// x resampled to options.size, or to its size times options.scale_factor. nearest (PyTorch's 'nearest', not
// 'nearest-exact') copies the input position at floor(output position * in / out); bilinear weighs the four
// input positions around the output's source position (see kernels::linear_taps). The gradient goes back
// along the same positions and weights.
template <class T>
Variable<T> interpolate(const Variable<T>& x, const InterpolateOptions& options) {
  x.require_defined("interpolate");
  const kernels::Resample2dGeometry g = detail::interpolate_geometry(x.shape(), options);
  const kernels::ResampleScales scales =
      options.scale_factor.has_value()
          ? kernels::ResampleScales{.h = options.scale_factor->h, .w = options.scale_factor->w}
          : kernels::ResampleScales{};
  const bool bilinear = options.mode == InterpolateMode::bilinear;
  const bool align_corners = options.align_corners.value_or(false);
  const Tensor<T> xv = x.value().contiguous();
  Tensor<T> y = Tensor<T>::empty({x.shape()[0], x.shape()[1], g.out_h, g.out_w});
  if (y.numel() > 0) {
    if (bilinear)
      kernels::upsample_bilinear2d_forward(g, align_corners, scales, xv.data(), y.data());
    else
      kernels::upsample_nearest2d_forward(g, scales, xv.data(), y.data());
  }
  const Shape input_shape = x.shape();
  return Variable<T>::from_op(std::move(y), bilinear ? "upsample_bilinear2d" : "upsample_nearest2d", {x},
                              [g, scales, bilinear, align_corners, input_shape](Tensor<T> grad) {
                                const Tensor<T> gy = grad.contiguous();
                                Tensor<T> gx = Tensor<T>::empty(input_shape);
                                if (gx.numel() > 0) {
                                  if (bilinear)
                                    kernels::upsample_bilinear2d_backward(g, align_corners, scales, gy.data(),
                                                                          gx.data());
                                  else
                                    kernels::upsample_nearest2d_backward(g, scales, gy.data(), gx.data());
                                }
                                return std::vector<Tensor<T>>{gx};
                              });
}

}  // namespace sumi
