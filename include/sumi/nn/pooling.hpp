#pragma once
// MaxPool2d, AvgPool2d and AdaptiveAvgPool2d, as torch.nn's, with the settings of max_pool2d, avg_pool2d
// and adaptive_avg_pool2d. Sizes are IntPairs: a single integer sets height and width; the stride is the
// kernel size unless given. The settings are checked against the input in forward(), as PyTorch does.
#include <optional>
#include <string>

#include "sumi/nn/module.hpp"
#include "sumi/ops/pooling.hpp"

namespace sumi::nn {

namespace detail {
// A setting as PyTorch prints it when given as an integer or a tuple: 2, or (3, 2).
inline std::string python_int_pair(const IntPair& p) {
  return p.h == p.w ? std::to_string(p.h) : p.to_string();
}
}  // namespace detail

template <std::floating_point T = float>
class MaxPool2d : public Module<T> {
 public:
  // MaxPool2d(3, {.stride = 2, .padding = 1}): the settings by name, as the op takes them (PyTorch's
  // positional order has return_indices, which sumi does not have, before ceil_mode).
  explicit MaxPool2d(IntPair kernel_size, const MaxPool2dOptions& options = {})
      : kernel_size(kernel_size),
        stride(options.stride.has_value() ? *options.stride : kernel_size),
        options_(options) {}

  Variable<T> forward(const Variable<T>& x) override { return max_pool2d(x, kernel_size, options_); }
  std::string extra_repr() const override {
    return "kernel_size=" + detail::python_int_pair(kernel_size) +
           ", stride=" + detail::python_int_pair(stride) +
           ", padding=" + detail::python_int_pair(options_.padding) +
           ", dilation=" + detail::python_int_pair(options_.dilation) +
           ", ceil_mode=" + detail::python_bool(options_.ceil_mode);
  }
  const MaxPool2dOptions& options() const { return options_; }

  const IntPair kernel_size, stride;

 private:
  MaxPool2dOptions options_;
};

template <std::floating_point T = float>
class AvgPool2d : public Module<T> {
 public:
  // AvgPool2d(2, {.count_include_pad = false}): the settings by name, as the op takes them.
  explicit AvgPool2d(IntPair kernel_size, const AvgPool2dOptions& options = {})
      : kernel_size(kernel_size),
        stride(options.stride.has_value() ? *options.stride : kernel_size),
        options_(options) {}

  Variable<T> forward(const Variable<T>& x) override { return avg_pool2d(x, kernel_size, options_); }
  std::string extra_repr() const override {
    return "kernel_size=" + detail::python_int_pair(kernel_size) +
           ", stride=" + detail::python_int_pair(stride) +
           ", padding=" + detail::python_int_pair(options_.padding);
  }
  const AvgPool2dOptions& options() const { return options_; }

  const IntPair kernel_size, stride;

 private:
  AvgPool2dOptions options_;
};

// AdaptiveAvgPool2d(output_size), as torch.nn.AdaptiveAvgPool2d: adaptive_avg_pool2d to a fixed output size.
template <std::floating_point T = float>
class AdaptiveAvgPool2d : public Module<T> {
 public:
  explicit AdaptiveAvgPool2d(IntPair output_size) : output_size(output_size) {}

  Variable<T> forward(const Variable<T>& x) override { return adaptive_avg_pool2d(x, output_size); }
  std::string extra_repr() const override { return "output_size=" + detail::python_int_pair(output_size); }

  const IntPair output_size;
};

}  // namespace sumi::nn
