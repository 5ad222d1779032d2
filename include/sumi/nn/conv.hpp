#pragma once
// Conv2d and ConvTranspose2d, as torch.nn.Conv2d and torch.nn.ConvTranspose2d. Conv2d weight
// [out, in / groups, kh, kw]; ConvTranspose2d weight [in, out / groups, kh, kw] (PyTorch's layouts); bias
// [out]. Sizes are IntPairs: a single integer sets height and width.
#include <concepts>

#include "sumi/nn/init.hpp"
#include "sumi/nn/module.hpp"
#include "sumi/nn/relu_fusable.hpp"
#include "sumi/ops/conv.hpp"

namespace sumi::nn {

namespace detail {
inline void check_conv_args(const char* layer, int64_t in_channels, int64_t out_channels,
                            const IntPair& kernel, int64_t groups) {
  if (in_channels < 1 || out_channels < 1 || kernel.h < 1 || kernel.w < 1)
    throw std::invalid_argument(std::string(layer) + ": channels and kernel size must be positive, got (" +
                                std::to_string(in_channels) + ", " + std::to_string(out_channels) +
                                ", kernel_size=" + kernel.to_string() + ")");
  if (groups < 1 || in_channels % groups != 0 || out_channels % groups != 0)
    throw std::invalid_argument(std::string(layer) + ": groups " + std::to_string(groups) +
                                " must be positive and divide in_channels " + std::to_string(in_channels) +
                                " and out_channels " + std::to_string(out_channels));
}

// The layer's arguments as PyTorch's _ConvNd.extra_repr prints them: those at their defaults left out.
inline std::string conv_extra_repr(int64_t in_channels, int64_t out_channels, const IntPair& kernel,
                                   const IntPair& stride, const IntPair& padding, const IntPair& dilation,
                                   const IntPair& output_padding, int64_t groups, bool has_bias) {
  std::string s = std::to_string(in_channels) + ", " + std::to_string(out_channels) +
                  ", kernel_size=" + kernel.to_string() + ", stride=" + stride.to_string();
  if (padding != IntPair(0)) s += ", padding=" + padding.to_string();
  if (dilation != IntPair(1)) s += ", dilation=" + dilation.to_string();
  if (output_padding != IntPair(0)) s += ", output_padding=" + output_padding.to_string();
  if (groups != 1) s += ", groups=" + std::to_string(groups);
  if (!has_bias) s += ", bias=False";
  return s;
}
}  // namespace detail

template <std::floating_point T = float>
class Conv2d : public Module<T>, public ReluFusable<T> {
 public:
  // Initialised as PyTorch's default (init::default_layer_init_) from `gen`.
  // The arguments in torch.nn.Conv2d's order.
  Conv2d(int64_t in_channels, int64_t out_channels, IntPair kernel_size, IntPair stride = 1,
         IntPair padding = 0, IntPair dilation = 1, int64_t groups = 1, bool bias = true,
         Generator& gen = default_generator())
      : in_channels(in_channels),
        out_channels(out_channels),
        kernel_size(kernel_size),
        stride(stride),
        padding(padding),
        dilation(dilation),
        groups(groups) {
    detail::check_conv_args("Conv2d", in_channels, out_channels, kernel_size, groups);
    weight = Variable<T>(Tensor<T>::empty({out_channels, in_channels / groups, kernel_size.h, kernel_size.w}),
                         true);
    if (bias) this->bias = Variable<T>(Tensor<T>::empty({out_channels}), true);
    this->bind_parameter("weight", weight);
    this->bind_parameter("bias", this->bias);
    reset_parameters(gen);
  }

  // A bool where groups goes is the bias argument of the signature before groups was added: refused at
  // compile time rather than read as groups = 0 or 1.
  template <std::same_as<bool> Bias>
  Conv2d(int64_t, int64_t, IntPair, IntPair, IntPair, IntPair, Bias) = delete;

  void reset_parameters(Generator& gen = default_generator()) {
    init::default_layer_init_(weight, bias, gen);
  }

  Variable<T> forward(const Variable<T>& x) override {
    return conv2d(x, weight, bias, Conv2dOptions{stride, padding, dilation, groups});
  }
  const std::type_info& fused_class() const override { return typeid(Conv2d<T>); }
  Variable<T> forward_relu(const Variable<T>& x) override {
    return conv2d(x, weight, bias, Conv2dOptions{stride, padding, dilation, groups, ConvActivation::relu});
  }

  std::string extra_repr() const override {
    return detail::conv_extra_repr(in_channels, out_channels, kernel_size, stride, padding, dilation, 0,
                                   groups, bias.defined());
  }

  const int64_t in_channels;
  const int64_t out_channels;
  const IntPair kernel_size;
  const IntPair stride;
  const IntPair padding;
  const IntPair dilation;
  const int64_t groups;
  Variable<T> weight;
  Variable<T> bias;  // undefined without a bias
};

template <std::floating_point T = float>
class ConvTranspose2d : public Module<T>, public ReluFusable<T> {
 public:
  // Initialised as PyTorch's default from `gen`; the weight's fan_in is out_channels * kh * kw, as in
  // PyTorch (it computes it from the [in, out, kh, kw] weight's second dimension).
  // torch.nn.ConvTranspose2d's arguments, but for dilation, which comes before groups as in Conv2d (PyTorch
  // puts it after bias).
  ConvTranspose2d(int64_t in_channels, int64_t out_channels, IntPair kernel_size, IntPair stride = 1,
                  IntPair padding = 0, IntPair output_padding = 0, IntPair dilation = 1, int64_t groups = 1,
                  bool bias = true, Generator& gen = default_generator())
      : in_channels(in_channels),
        out_channels(out_channels),
        kernel_size(kernel_size),
        stride(stride),
        padding(padding),
        output_padding(output_padding),
        dilation(dilation),
        groups(groups) {
    detail::check_conv_args("ConvTranspose2d", in_channels, out_channels, kernel_size, groups);
    weight = Variable<T>(Tensor<T>::empty({in_channels, out_channels / groups, kernel_size.h, kernel_size.w}),
                         true);
    if (bias) this->bias = Variable<T>(Tensor<T>::empty({out_channels}), true);
    this->bind_parameter("weight", weight);
    this->bind_parameter("bias", this->bias);
    reset_parameters(gen);
  }

  // As Conv2d's: a bool where groups goes is the bias argument of the signature before groups.
  template <std::same_as<bool> Bias>
  ConvTranspose2d(int64_t, int64_t, IntPair, IntPair, IntPair, IntPair, IntPair, Bias) = delete;

  void reset_parameters(Generator& gen = default_generator()) {
    init::default_layer_init_(weight, bias, gen);
  }

  Variable<T> forward(const Variable<T>& x) override {
    return conv_transpose2d(x, weight, bias,
                            ConvTranspose2dOptions{stride, padding, output_padding, dilation, groups});
  }
  const std::type_info& fused_class() const override { return typeid(ConvTranspose2d<T>); }
  Variable<T> forward_relu(const Variable<T>& x) override {
    return conv_transpose2d(
        x, weight, bias,
        ConvTranspose2dOptions{stride, padding, output_padding, dilation, groups, ConvActivation::relu});
  }

  std::string extra_repr() const override {
    return detail::conv_extra_repr(in_channels, out_channels, kernel_size, stride, padding, dilation,
                                   output_padding, groups, bias.defined());
  }

  const int64_t in_channels;
  const int64_t out_channels;
  const IntPair kernel_size;
  const IntPair stride;
  const IntPair padding;
  const IntPair output_padding;
  const IntPair dilation;
  const int64_t groups;
  Variable<T> weight;
  Variable<T> bias;  // undefined without a bias
};

}  // namespace sumi::nn
