#pragma once
// Conv2d and ConvTranspose2d, as torch.nn.Conv2d and torch.nn.ConvTranspose2d (groups = 1).
// Conv2d weight [out, in, kh, kw]; ConvTranspose2d weight [in, out, kh, kw] (PyTorch's layouts); bias [out].
// Sizes are IntPairs: a single integer sets height and width.
#include "sumi/nn/init.hpp"
#include "sumi/nn/module.hpp"
#include "sumi/nn/relu_fusable.hpp"
#include "sumi/ops/conv.hpp"

namespace sumi::nn {

namespace detail {
inline void check_conv_args(const char* layer, int64_t in_channels, int64_t out_channels,
                            const IntPair& kernel) {
  if (in_channels < 1 || out_channels < 1 || kernel.h < 1 || kernel.w < 1)
    throw std::invalid_argument(std::string(layer) + ": channels and kernel size must be positive, got (" +
                                std::to_string(in_channels) + ", " + std::to_string(out_channels) +
                                ", kernel_size=" + kernel.to_string() + ")");
}

// The layer's arguments as PyTorch's _ConvNd.extra_repr prints them: those at their defaults left out.
inline std::string conv_extra_repr(int64_t in_channels, int64_t out_channels, const IntPair& kernel,
                                   const IntPair& stride, const IntPair& padding, const IntPair& dilation,
                                   const IntPair& output_padding, bool has_bias) {
  std::string s = std::to_string(in_channels) + ", " + std::to_string(out_channels) +
                  ", kernel_size=" + kernel.to_string() + ", stride=" + stride.to_string();
  if (padding != IntPair(0)) s += ", padding=" + padding.to_string();
  if (dilation != IntPair(1)) s += ", dilation=" + dilation.to_string();
  if (output_padding != IntPair(0)) s += ", output_padding=" + output_padding.to_string();
  if (!has_bias) s += ", bias=False";
  return s;
}
}  // namespace detail

template <std::floating_point T = float>
class Conv2d : public Module<T>, public ReluFusable<T> {
 public:
  // Initialised as PyTorch's default (init::default_layer_init_) from `gen`.
  Conv2d(int64_t in_channels, int64_t out_channels, IntPair kernel_size, IntPair stride = 1,
         IntPair padding = 0, IntPair dilation = 1, bool bias = true, Generator& gen = default_generator())
      : in_channels(in_channels),
        out_channels(out_channels),
        kernel_size(kernel_size),
        stride(stride),
        padding(padding),
        dilation(dilation) {
    detail::check_conv_args("Conv2d", in_channels, out_channels, kernel_size);
    weight = Variable<T>(Tensor<T>::empty({out_channels, in_channels, kernel_size.h, kernel_size.w}), true);
    if (bias) this->bias = Variable<T>(Tensor<T>::empty({out_channels}), true);
    this->bind_parameter("weight", weight);
    this->bind_parameter("bias", this->bias);
    reset_parameters(gen);
  }

  void reset_parameters(Generator& gen = default_generator()) {
    init::default_layer_init_(weight, bias, gen);
  }

  Variable<T> forward(const Variable<T>& x) override {
    return conv2d(x, weight, bias, Conv2dOptions{stride, padding, dilation});
  }
  const std::type_info& fused_class() const override { return typeid(Conv2d<T>); }
  Variable<T> forward_relu(const Variable<T>& x) override {
    return conv2d(x, weight, bias, Conv2dOptions{stride, padding, dilation, ConvActivation::relu});
  }

  std::string extra_repr() const override {
    return detail::conv_extra_repr(in_channels, out_channels, kernel_size, stride, padding, dilation, 0,
                                   bias.defined());
  }

  const int64_t in_channels;
  const int64_t out_channels;
  const IntPair kernel_size;
  const IntPair stride;
  const IntPair padding;
  const IntPair dilation;
  Variable<T> weight;
  Variable<T> bias;  // undefined without a bias
};

template <std::floating_point T = float>
class ConvTranspose2d : public Module<T>, public ReluFusable<T> {
 public:
  // Initialised as PyTorch's default from `gen`; the weight's fan_in is out_channels * kh * kw, as in
  // PyTorch (it computes it from the [in, out, kh, kw] weight's second dimension).
  ConvTranspose2d(int64_t in_channels, int64_t out_channels, IntPair kernel_size, IntPair stride = 1,
                  IntPair padding = 0, IntPair output_padding = 0, IntPair dilation = 1, bool bias = true,
                  Generator& gen = default_generator())
      : in_channels(in_channels),
        out_channels(out_channels),
        kernel_size(kernel_size),
        stride(stride),
        padding(padding),
        output_padding(output_padding),
        dilation(dilation) {
    detail::check_conv_args("ConvTranspose2d", in_channels, out_channels, kernel_size);
    weight = Variable<T>(Tensor<T>::empty({in_channels, out_channels, kernel_size.h, kernel_size.w}), true);
    if (bias) this->bias = Variable<T>(Tensor<T>::empty({out_channels}), true);
    this->bind_parameter("weight", weight);
    this->bind_parameter("bias", this->bias);
    reset_parameters(gen);
  }

  void reset_parameters(Generator& gen = default_generator()) {
    init::default_layer_init_(weight, bias, gen);
  }

  Variable<T> forward(const Variable<T>& x) override {
    return conv_transpose2d(x, weight, bias,
                            ConvTranspose2dOptions{stride, padding, output_padding, dilation});
  }
  const std::type_info& fused_class() const override { return typeid(ConvTranspose2d<T>); }
  Variable<T> forward_relu(const Variable<T>& x) override {
    return conv_transpose2d(
        x, weight, bias,
        ConvTranspose2dOptions{stride, padding, output_padding, dilation, ConvActivation::relu});
  }

  std::string extra_repr() const override {
    return detail::conv_extra_repr(in_channels, out_channels, kernel_size, stride, padding, dilation,
                                   output_padding, bias.defined());
  }

  const int64_t in_channels;
  const int64_t out_channels;
  const IntPair kernel_size;
  const IntPair stride;
  const IntPair padding;
  const IntPair output_padding;
  const IntPair dilation;
  Variable<T> weight;
  Variable<T> bias;  // undefined without a bias
};

}  // namespace sumi::nn
