#pragma once
// The shape of one 2-d convolution, shared by every conv kernel (reference and vectorized).
#include <cstdint>
#include <stdexcept>
#include <string>

namespace sumi::kernels {

// A 2-d convolution over NCHW data: x [batch, in_channels, in_h, in_w], weight [out_channels, in_channels,
// kernel_h, kernel_w], y [batch, out_channels, out_h(), out_w()].
// A transposed convolution is the same geometry with the roles of x and y swapped: its input is this
// geometry's y and its output is this geometry's x (see ops/conv.hpp).
struct Conv2dGeometry {
  int64_t batch = 1;
  int64_t in_channels = 1, in_h = 1, in_w = 1;
  int64_t out_channels = 1;
  int64_t kernel_h = 1, kernel_w = 1;
  int64_t stride_h = 1, stride_w = 1;
  int64_t pad_h = 0, pad_w = 0;
  int64_t dilation_h = 1, dilation_w = 1;

  int64_t out_h() const { return (in_h + 2 * pad_h - dilation_h * (kernel_h - 1) - 1) / stride_h + 1; }
  int64_t out_w() const { return (in_w + 2 * pad_w - dilation_w * (kernel_w - 1) - 1) / stride_w + 1; }
  int64_t input_numel() const { return batch * in_channels * in_h * in_w; }
  int64_t output_numel() const { return batch * out_channels * out_h() * out_w(); }
  int64_t weight_numel() const { return out_channels * in_channels * kernel_h * kernel_w; }
  // Multiply-adds times two, as benchmarks count them.
  double flops() const {
    return 2.0 * double(batch) * double(out_channels) * double(out_h() * out_w()) * double(in_channels) *
           double(kernel_h * kernel_w);
  }

  std::string to_string() const {
    return "N=" + std::to_string(batch) + " Cin=" + std::to_string(in_channels) + " " + std::to_string(in_h) +
           "x" + std::to_string(in_w) + " Cout=" + std::to_string(out_channels) +
           " k=" + std::to_string(kernel_h) + "x" + std::to_string(kernel_w) +
           " s=" + std::to_string(stride_h) + "," + std::to_string(stride_w) + " p=" + std::to_string(pad_h) +
           "," + std::to_string(pad_w) + " d=" + std::to_string(dilation_h) + "," +
           std::to_string(dilation_w);
  }

  // Whether the zero padding dwarfs the image and what the output reads of it. The vectorised kernels copy
  // each image padded (split by stride phase), which costs the padded area in time and memory (a 1x1 image
  // padded by 4096: 0.4 s and 700 MB, a bad_alloc at 65536), while the reference kernels visit only the
  // taps inside the image, so such geometries go to the reference kernels. Never the case below a million
  // padded pixels, nor for any of the study's layers.
  bool padding_dominated() const {
    const double padded = double(in_h + 2 * pad_h) * double(in_w + 2 * pad_w);
    const double used =
        double(in_h) * double(in_w) + double(out_h()) * double(out_w()) * double(kernel_h * kernel_w);
    return padded > 1e6 && padded > 16 * used;
  }

  void validate() const {
    if (batch < 1 || in_channels < 1 || out_channels < 1 || kernel_h < 1 || kernel_w < 1 || stride_h < 1 ||
        stride_w < 1 || dilation_h < 1 || dilation_w < 1 || pad_h < 0 || pad_w < 0 || out_h() < 1 ||
        out_w() < 1)
      throw std::invalid_argument("conv2d: invalid geometry " + to_string());
  }
};

}  // namespace sumi::kernels
