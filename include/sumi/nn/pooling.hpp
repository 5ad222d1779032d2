#pragma once
// MaxPool2d and AvgPool2d, as torch.nn.MaxPool2d and torch.nn.AvgPool2d. Sizes are IntPairs: a single
// integer sets height and width; the stride is the kernel size unless given. The settings are checked
// against the input in forward(), as PyTorch does.
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
  explicit MaxPool2d(IntPair kernel_size, std::optional<IntPair> stride = std::nullopt, IntPair padding = 0,
                     IntPair dilation = 1, bool ceil_mode = false)
      : kernel_size(kernel_size),
        stride(stride.value_or(kernel_size)),
        padding(padding),
        dilation(dilation),
        ceil_mode(ceil_mode) {}

  Variable<T> forward(const Variable<T>& x) override {
    return max_pool2d(x, kernel_size, MaxPool2dOptions{stride, padding, dilation, ceil_mode});
  }
  std::string extra_repr() const override {
    return "kernel_size=" + detail::python_int_pair(kernel_size) +
           ", stride=" + detail::python_int_pair(stride) + ", padding=" + detail::python_int_pair(padding) +
           ", dilation=" + detail::python_int_pair(dilation) +
           ", ceil_mode=" + detail::python_bool(ceil_mode);
  }

  const IntPair kernel_size, stride, padding, dilation;
  const bool ceil_mode;
};

template <std::floating_point T = float>
class AvgPool2d : public Module<T> {
 public:
  explicit AvgPool2d(IntPair kernel_size, std::optional<IntPair> stride = std::nullopt, IntPair padding = 0,
                     bool ceil_mode = false, bool count_include_pad = true)
      : kernel_size(kernel_size),
        stride(stride.value_or(kernel_size)),
        padding(padding),
        ceil_mode(ceil_mode),
        count_include_pad(count_include_pad) {}

  Variable<T> forward(const Variable<T>& x) override {
    return avg_pool2d(x, kernel_size, AvgPool2dOptions{stride, padding, ceil_mode, count_include_pad});
  }
  std::string extra_repr() const override {
    return "kernel_size=" + detail::python_int_pair(kernel_size) +
           ", stride=" + detail::python_int_pair(stride) + ", padding=" + detail::python_int_pair(padding);
  }

  const IntPair kernel_size, stride, padding;
  const bool ceil_mode, count_include_pad;
};

}  // namespace sumi::nn
