#pragma once
// Upsample, as torch.nn.Upsample: interpolate with fixed settings, and no parameters.
#include <string>

#include "sumi/nn/module.hpp"
#include "sumi/nn/pooling.hpp"
#include "sumi/ops/interpolate.hpp"

namespace sumi::nn {

template <std::floating_point T = float>
class Upsample : public Module<T> {
 public:
  // Upsample({.scale_factor = 2.0}) or Upsample({.size = {8, 8}, .mode = InterpolateMode::bilinear}); the
  // settings are checked against the input in forward(), as PyTorch does.
  explicit Upsample(const InterpolateOptions& options) : options_(options) {}

  Variable<T> forward(const Variable<T>& x) override { return interpolate(x, options_); }
  // As PyTorch: the scale factor when given, else the size, and the mode (align_corners is not shown).
  std::string extra_repr() const override {
    std::string info;
    if (options_.scale_factor.has_value()) {
      const ScalePair s = *options_.scale_factor;
      info = "scale_factor=" + (s.h == s.w ? detail::python_float_repr(s.h)
                                           : "(" + detail::python_float_repr(s.h) + ", " +
                                                 detail::python_float_repr(s.w) + ")");
    } else if (options_.size.has_value()) {
      info = "size=" + detail::python_int_pair(*options_.size);
    } else {
      info = "size=None";
    }
    return info + ", mode=" + interpolate_mode_name(options_.mode);
  }
  const InterpolateOptions& options() const { return options_; }

 private:
  InterpolateOptions options_;
};

}  // namespace sumi::nn
