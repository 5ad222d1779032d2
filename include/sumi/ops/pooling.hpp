#pragma once
// 2-d max, average and adaptive average pooling with autograd, as torch.nn.functional.max_pool2d,
// avg_pool2d and adaptive_avg_pool2d, over [N, C, H, W] or [C, H, W] inputs.
#include <cstdint>
#include <optional>
#include <stdexcept>
#include <string>
#include <vector>

#include "sumi/autograd/variable.hpp"
#include "sumi/kernels/pooling.hpp"
#include "sumi/kernels/resample.hpp"
#include "sumi/ops/int_pair.hpp"

namespace sumi {

// max_pool2d(x, 3, {.stride = 2, .padding = 1}); the stride is the kernel size unless given. (The stride is
// read with has_value(), not value_or(): GCC 12 warns falsely of an uninitialised read in value_or under
// the sanitizers.)
struct MaxPool2dOptions {
  std::optional<IntPair> stride = std::nullopt;
  IntPair padding = 0;
  IntPair dilation = 1;
  bool ceil_mode = false;
};

// avg_pool2d(x, 2, {.count_include_pad = false}); the stride is the kernel size unless given.
struct AvgPool2dOptions {
  std::optional<IntPair> stride = std::nullopt;
  IntPair padding = 0;
  bool ceil_mode = false;
  bool count_include_pad = true;  // divide by the window's size including padding, as PyTorch by default
};

namespace detail {

// The number of planes of a pooling input, checked: 4-d [N, C, H, W] or 3-d [C, H, W], no empty channel or
// spatial dimension, and spatial sizes whose products with the window settings fit int64. `input` names the
// op and the shape in the errors.
inline int64_t pool_input_planes(const std::string& input, const Shape& shape) {
  if (shape.size() != 3 && shape.size() != 4)
    throw std::invalid_argument(input + " must be 4-d [N, C, H, W] or 3-d [C, H, W]");
  require_2d_input_sizes(input, shape, shape.size() == 4 ? 1 : 0);
  const std::size_t r = shape.size();
  int64_t planes = 1;
  for (std::size_t i = 0; i + 2 < r; ++i) planes *= shape[i];
  return planes;
}

// The geometry of pooling an input of `shape`, checked as PyTorch checks it.
inline kernels::Pool2dGeometry pool_geometry(const char* op, const Shape& shape, const IntPair& kernel,
                                             const IntPair& stride, const IntPair& padding,
                                             const IntPair& dilation, bool ceil_mode) {
  const std::string input = std::string(op) + ": input of shape " + shape_str(shape);
  const int64_t planes = pool_input_planes(input, shape);
  const auto require = [&](bool ok, const char* name, const IntPair& value, const std::string& rule) {
    if (!ok) throw std::invalid_argument(input + ": " + name + " " + value.to_string() + " " + rule);
  };
  require(kernel.h >= 1 && kernel.w >= 1 && kernel.h <= kMaxIntPairValue && kernel.w <= kMaxIntPairValue,
          "kernel size", kernel, "must be in [1, 2^24]");
  require(stride.h >= 1 && stride.w >= 1 && stride.h <= kMaxIntPairValue && stride.w <= kMaxIntPairValue,
          "stride", stride, "must be in [1, 2^24]");
  require(
      dilation.h >= 1 && dilation.w >= 1 && dilation.h <= kMaxIntPairValue && dilation.w <= kMaxIntPairValue,
      "dilation", dilation, "must be in [1, 2^24]");
  require(padding.h >= 0 && padding.w >= 0 && padding.h <= kernel.h / 2 && padding.w <= kernel.w / 2,
          "padding", padding, "must be in [0, half the kernel size " + kernel.to_string() + "]");
  const std::size_t r = shape.size();
  const kernels::Pool2dGeometry g{.planes = planes,
                                  .in_h = shape[r - 2],
                                  .in_w = shape[r - 1],
                                  .kernel_h = kernel.h,
                                  .kernel_w = kernel.w,
                                  .stride_h = stride.h,
                                  .stride_w = stride.w,
                                  .pad_h = padding.h,
                                  .pad_w = padding.w,
                                  .dilation_h = dilation.h,
                                  .dilation_w = dilation.w,
                                  .ceil_mode = ceil_mode};
  if (g.out_h() < 1 || g.out_w() < 1)
    throw std::invalid_argument(
        input + " gives an empty output " + IntPair(g.out_h(), g.out_w()).to_string() + " (kernel size " +
        kernel.to_string() + ", stride " + stride.to_string() + ", padding " + padding.to_string() +
        (dilation == IntPair(1) ? "" : ", dilation " + dilation.to_string()) +
        (ceil_mode ? ", ceil_mode" : "") + ")");
  return g;
}

// The geometry of adaptive pooling an input of `shape` to output_size, checked.
inline kernels::Resample2dGeometry adaptive_pool_geometry(const Shape& shape, const IntPair& output_size) {
  const std::string input = "adaptive_avg_pool2d: input of shape " + shape_str(shape);
  const int64_t planes = pool_input_planes(input, shape);
  if (output_size.h < 1 || output_size.w < 1 || output_size.h > kMaxIntPairValue ||
      output_size.w > kMaxIntPairValue)
    throw std::invalid_argument(input + ": output size " + output_size.to_string() + " must be in [1, 2^24]");
  const std::size_t r = shape.size();
  const kernels::Resample2dGeometry g{.planes = planes,
                                      .in_h = shape[r - 2],
                                      .in_w = shape[r - 1],
                                      .out_h = output_size.h,
                                      .out_w = output_size.w};
  // The windows' bounds take (i + 1) * in, which must fit int64.
  constexpr int64_t kLimit = int64_t(1) << 62;
  if (g.in_h > kLimit / (g.out_h + 1) || g.in_w > kLimit / (g.out_w + 1))
    throw std::invalid_argument(input + ": output size " + output_size.to_string() +
                                " times the input size is above 2^62");
  return g;
}

// `input` with its last two dimensions set to out_h and out_w.
inline Shape pool_output_shape(const Shape& input, int64_t out_h, int64_t out_w) {
  Shape out = input;
  out[out.size() - 2] = out_h;
  out[out.size() - 1] = out_w;
  return out;
}

}  // namespace detail

// The largest element of each kernel_size window. The gradient goes to each window's largest element
// (the first of equal ones; a NaN wins and passes NaN on, as PyTorch).
template <class T>
Variable<T> max_pool2d(const Variable<T>& x, IntPair kernel_size, const MaxPool2dOptions& options = {}) {
  x.require_defined("max_pool2d");
  const kernels::Pool2dGeometry g = detail::pool_geometry(
      "max_pool2d", x.shape(), kernel_size, options.stride.has_value() ? *options.stride : kernel_size,
      options.padding, options.dilation, options.ceil_mode);
  const Tensor<T> xv = x.value().contiguous();
  Tensor<T> y = Tensor<T>::empty(detail::pool_output_shape(x.shape(), g.out_h(), g.out_w()));
  std::vector<int64_t> argmax(std::size_t(y.numel()));
  if (y.numel() > 0) kernels::max_pool2d_forward(g, xv.data(), y.data(), argmax.data());
  const Shape input_shape = x.shape();
  return Variable<T>::from_op(std::move(y), "max_pool2d", {x},
                              [g, input_shape, argmax = std::move(argmax)](Tensor<T> grad) {
                                const Tensor<T> gy = grad.contiguous();
                                Tensor<T> gx = Tensor<T>::empty(input_shape);
                                if (gy.numel() > 0)
                                  kernels::max_pool2d_backward(g, gy.data(), argmax.data(), gx.data());
                                return std::vector<Tensor<T>>{gx};
                              });
}

// The mean of each kernel_size window; with padding, count_include_pad chooses whether padded positions
// count in the divisor (PyTorch's default: they do).
template <class T>
Variable<T> avg_pool2d(const Variable<T>& x, IntPair kernel_size, const AvgPool2dOptions& options = {}) {
  x.require_defined("avg_pool2d");
  const kernels::Pool2dGeometry g = detail::pool_geometry(
      "avg_pool2d", x.shape(), kernel_size, options.stride.has_value() ? *options.stride : kernel_size,
      options.padding, 1, options.ceil_mode);
  const Tensor<T> xv = x.value().contiguous();
  Tensor<T> y = Tensor<T>::empty(detail::pool_output_shape(x.shape(), g.out_h(), g.out_w()));
  const bool include_pad = options.count_include_pad;
  if (y.numel() > 0) kernels::avg_pool2d_forward(g, xv.data(), y.data(), include_pad);
  const Shape input_shape = x.shape();
  return Variable<T>::from_op(std::move(y), "avg_pool2d", {x}, [g, input_shape, include_pad](Tensor<T> grad) {
    const Tensor<T> gy = grad.contiguous();
    Tensor<T> gx = Tensor<T>::empty(input_shape);
    if (gy.numel() > 0) kernels::avg_pool2d_backward(g, gy.data(), gx.data(), include_pad);
    return std::vector<Tensor<T>>{gx};
  });
}

// The mean of each of output_size windows tiling the input, as PyTorch: output row i averages input rows
// floor(i * H / out_h) to ceil((i + 1) * H / out_h) - 1 (columns alike), so windows overlap when the sizes do
// not divide and repeat rows when the output is the larger. output_size 1 is global average pooling.
template <class T>
Variable<T> adaptive_avg_pool2d(const Variable<T>& x, IntPair output_size) {
  x.require_defined("adaptive_avg_pool2d");
  const kernels::Resample2dGeometry g = detail::adaptive_pool_geometry(x.shape(), output_size);
  const Tensor<T> xv = x.value().contiguous();
  Tensor<T> y = Tensor<T>::empty(detail::pool_output_shape(x.shape(), g.out_h, g.out_w));
  if (y.numel() > 0) kernels::adaptive_avg_pool2d_forward(g, xv.data(), y.data());
  const Shape input_shape = x.shape();
  return Variable<T>::from_op(std::move(y), "adaptive_avg_pool2d", {x}, [g, input_shape](Tensor<T> grad) {
    const Tensor<T> gy = grad.contiguous();
    Tensor<T> gx = Tensor<T>::empty(input_shape);
    if (gx.numel() > 0) kernels::adaptive_avg_pool2d_backward(g, gy.data(), gx.data());
    return std::vector<Tensor<T>>{gx};
  });
}

}  // namespace sumi
