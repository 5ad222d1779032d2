#pragma once
// 2-d convolution and transposed convolution with autograd, as torch.nn.functional.conv2d and
// conv_transpose2d. Both run on the three dispatch kernels of kernels/conv.hpp; the transposed convolution is
// the adjoint of a convolution, so it calls them with the roles of input and output swapped. A depthwise
// convolution (one channel per group on the side with fewer channels) runs on kernels/depthwise_conv.hpp's
// kernels, other grouped convolutions as one convolution per group on its slices of the channels.
#include <algorithm>
#include <cstdint>
#include <memory>
#include <stdexcept>
#include <string>
#include <vector>

#include <omp.h>

#include "sumi/autograd/gradient_zip.hpp"
#include "sumi/autograd/variable.hpp"
#include "sumi/kernels/conv.hpp"
#include "sumi/kernels/conv_geometry.hpp"
#include "sumi/kernels/depthwise_conv.hpp"
#include "sumi/kernels/elementwise.hpp"
#include "sumi/kernels/threading.hpp"
#include "sumi/ops/int_pair.hpp"

namespace sumi {

// An activation a convolution applies to its output as it writes it: conv2d(x, w, b, {.stride = 2,
// .activation = ConvActivation::relu}) is relu(conv2d(x, w, b, {.stride = 2})), values and gradients, with
// the output written once instead of written, read and written again by a separate relu.
enum class ConvActivation { none, relu };

// conv2d(x, weight, bias, {.stride = 2, .padding = 1})
struct Conv2dOptions {
  IntPair stride = 1;
  IntPair padding = 0;
  IntPair dilation = 1;
  // Input and output channels in this many groups, each group's outputs computed from its own inputs only:
  // weight [out_channels, in_channels / groups, kh, kw].
  int64_t groups = 1;
  ConvActivation activation = ConvActivation::none;
};

// conv_transpose2d(x, weight, bias, {.stride = 2, .padding = 1, .output_padding = 1})
struct ConvTranspose2dOptions {
  IntPair stride = 1;
  IntPair padding = 0;
  IntPair output_padding = 0;
  IntPair dilation = 1;
  // As Conv2dOptions::groups: weight [in_channels, out_channels / groups, kh, kw].
  int64_t groups = 1;
  ConvActivation activation = ConvActivation::none;
};

namespace detail {

// The largest spatial size the convolutions take: with kMaxIntPairValue, no output-size product or sum (at
// most about 2^32 * 2^24 * 2) can overflow int64.
inline constexpr int64_t kConvMaxSpatial = int64_t(1) << 32;

inline void conv_require_4d(const Shape& s, const char* op, const char* what, const char* layout) {
  if (s.size() != 4)
    throw std::invalid_argument(std::string(op) + ": " + what + " must be 4-d " + layout + ", got shape " +
                                shape_str(s));
  for (int64_t d : s)
    if (d < 0)
      throw std::invalid_argument(std::string(op) + ": " + what + " has a negative size: " + shape_str(s));
  if (s[2] > kConvMaxSpatial || s[3] > kConvMaxSpatial)
    throw std::invalid_argument(std::string(op) + ": " + what + " of shape " + shape_str(s) +
                                " has a spatial size above " + std::to_string(kConvMaxSpatial));
}

inline void conv_require_params(const char* op, const IntPair& stride, const IntPair& padding,
                                const IntPair& dilation) {
  if (stride.h < 1 || stride.w < 1)
    throw std::invalid_argument(std::string(op) + ": stride " + stride.to_string() + " must be positive");
  if (dilation.h < 1 || dilation.w < 1)
    throw std::invalid_argument(std::string(op) + ": dilation " + dilation.to_string() + " must be positive");
  if (padding.h < 0 || padding.w < 0)
    throw std::invalid_argument(std::string(op) + ": padding " + padding.to_string() +
                                " must be non-negative");
  for (const auto& [name, pair] : {std::pair{"stride", stride}, {"padding", padding}, {"dilation", dilation}})
    if (pair.h > kMaxIntPairValue || pair.w > kMaxIntPairValue)
      throw std::invalid_argument(std::string(op) + ": " + name + " " + pair.to_string() + " exceeds " +
                                  std::to_string(kMaxIntPairValue));
}

// The channel count a convolution's weight expects of its input: `per_group` channels in each of `groups`
// groups, refused when `groups` is not positive or that count overflows.
inline int64_t conv_grouped_channels(const char* op, int64_t per_group, int64_t groups) {
  int64_t channels = 0;
  if (groups < 1 || __builtin_mul_overflow(per_group, groups, &channels))
    throw std::invalid_argument(std::string(op) + ": groups " + std::to_string(groups) +
                                " must be positive and small enough to count the channels");
  return channels;
}

// A convolution in `groups` groups, one graph node: each group's ungrouped convolution `conv` runs on
// contiguous slices (copied where strided) of the input's channels, of the weight's first dimension and of
// the bias
// (`out_per_group` of it), as leaves of a graph of its own; the outputs fill their channels of the result.
// The node's backward pass calls each group's backward function on its channels of the output gradient and
// writes the gradients into their slices, so it costs one pass over the tensors, not one per group (as
// narrow-and-concat would). An error of one group's convolution names the whole operands too.
template <class T, class Conv>
Variable<T> conv_by_groups(const Variable<T>& x, const Variable<T>& weight, const Variable<T>& bias,
                           int64_t groups, int64_t out_per_group, const char* op, Conv conv) {
  const int64_t x_per_group = x.size(1) / groups, w_per_group = weight.size(0) / groups;
  const bool has_bias = bias.defined();
  std::vector<std::shared_ptr<Node<T>>> group_nodes;
  Tensor<T> y;
  for (int64_t g = 0; g < groups; ++g) {
    const Variable<T> xg(x.value().narrow(1, g * x_per_group, x_per_group).contiguous(), x.requires_grad());
    const Variable<T> wg(weight.value().narrow(0, g * w_per_group, w_per_group).contiguous(),
                         weight.requires_grad());
    const Variable<T> bg =
        has_bias ? Variable<T>(bias.value().narrow(0, g * out_per_group, out_per_group).contiguous(),
                               bias.requires_grad())
                 : Variable<T>();
    Variable<T> yg;
    try {
      yg = conv(xg, wg, bg);
    } catch (const std::invalid_argument& e) {
      throw std::invalid_argument(std::string(e.what()) + " (group " + std::to_string(g) + " of " +
                                  std::to_string(groups) + "; " + op + " of input of shape " +
                                  shape_str(x.shape()) + " and weight of shape " + shape_str(weight.shape()) +
                                  ")");
    }
    if (g == 0) {
      Shape shape = yg.shape();
      shape[1] *= groups;
      y = Tensor<T>::empty(shape);
    }
    y.narrow(1, g * out_per_group, out_per_group).copy_(yg.value());
    group_nodes.push_back(yg.grad_fn());
  }
  return Variable<T>::from_op(y, op, {x, weight, has_bias ? bias : Variable<T>()},
                              [group_nodes, x_shape = x.shape(), w_shape = weight.shape(),
                               b_shape = bias.shape(), needs_x = x.requires_grad(),
                               needs_w = weight.requires_grad(), needs_b = has_bias && bias.requires_grad(),
                               groups, x_per_group, w_per_group, out_per_group](const Tensor<T>& grad) {
                                Tensor<T> gx = needs_x ? Tensor<T>::empty(x_shape) : Tensor<T>();
                                Tensor<T> gw = needs_w ? Tensor<T>::empty(w_shape) : Tensor<T>();
                                Tensor<T> gb = needs_b ? Tensor<T>::empty(b_shape) : Tensor<T>();
                                for (int64_t g = 0; g < groups; ++g) {
                                  const std::vector<Tensor<T>> parts = group_nodes[std::size_t(g)]->backward(
                                      grad.narrow(1, g * out_per_group, out_per_group).contiguous());
                                  if (needs_x) gx.narrow(1, g * x_per_group, x_per_group).copy_(parts[0]);
                                  if (needs_w) gw.narrow(0, g * w_per_group, w_per_group).copy_(parts[1]);
                                  if (needs_b) gb.narrow(0, g * out_per_group, out_per_group).copy_(parts[2]);
                                }
                                return std::vector<Tensor<T>>{gx, gw, gb};
                              });
}

// Per-channel sums of [N, C, HW] data, accumulated plane by plane in image order: 16 running sums per
// channel in T, which vectorize as independent chains (one vector accumulator was a chain of dependent
// additions); each row's leftovers and the final sum in double. Each channel's order is fixed, so the
// result does not depend on how channels are split across threads.
template <class T>
class ChannelSums {
 public:
  explicit ChannelSums(int64_t channels) : part_(std::size_t(channels) * 16, T(0)), rest_(channels, 0.0) {}
  void add_plane(int64_t c, const T* row, int64_t HW) {
    T part[16];  // in registers: the member array could alias `row`, which kept it in memory
    std::copy_n(part_.data() + c * 16, 16, part);
    int64_t i = 0;
    for (; i + 16 <= HW; i += 16)
      for (int j = 0; j < 16; ++j) part[j] += row[i + j];
    std::copy_n(part, 16, part_.data() + c * 16);
    for (; i < HW; ++i) rest_[std::size_t(c)] += double(row[i]);
  }
  T total(int64_t c) const {
    double s = rest_[std::size_t(c)];
    for (int j = 0; j < 16; ++j) s += double(part_[std::size_t(c * 16 + j)]);
    return T(s);
  }

 private:
  std::vector<T> part_;
  std::vector<double> rest_;
};

// Channels [c0, c1) of every image, image by image: body(n, c0, c1) per image, for channel ranges split
// across threads when the data is large enough.
template <class Body>
void for_channel_ranges(int64_t N, int64_t C, int64_t HW, const Body& body) {
  const int nt = N * C * HW >= (int64_t(1) << 16) ? int(std::min<int64_t>(get_num_threads(), C)) : 1;
#pragma omp parallel num_threads(nt) if (nt > 1)
  {
    const int64_t t = omp_get_thread_num(), tn = omp_get_num_threads();
    const int64_t c0 = C * t / tn, c1 = C * (t + 1) / tn;
    for (int64_t n = 0; n < N && c1 > c0; ++n) body(n, c0, c1);
  }
}

// The sum of contiguous [N, C, HW] data over N and HW: a [C] tensor (the gradient of a per-channel bias).
template <class T>
Tensor<T> conv_channel_sum(const T* g, int64_t N, int64_t C, int64_t HW) {
  ChannelSums<T> sums(C);
  for_channel_ranges(N, C, HW, [&](int64_t n, int64_t c0, int64_t c1) {
    for (int64_t c = c0; c < c1; ++c) sums.add_plane(c, g + (n * C + c) * HW, HW);
  });
  Tensor<T> out = Tensor<T>::empty({C});
  for (int64_t c = 0; c < C; ++c) out.data()[c] = sums.total(c);
  return out;
}

// The output gradient through a fused relu: 0 where the output y [N, C, H, W] is <= 0, else g (NaN too, as
// the relu op). With
// `channel_sum`, also its sum per channel (a transposed convolution's bias gradient), taken from each
// image's masked planes while they are in the cache instead of in a second pass over the whole gradient.
template <class T>
Tensor<T> conv_relu_gradient(Tensor<T> grad, const Tensor<T>& y, Tensor<T>* channel_sum = nullptr) {
  const auto mask = [](T gv, T yv) { return yv <= T(0) ? T(0) : gv; };
  if (!channel_sum) return zip_gradient(std::move(grad), y, mask);
  Tensor<T> out = gradient_output_buffer(grad);
  const Tensor<T> g = grad.contiguous();
  const int64_t N = y.size(0), C = y.size(1), HW = y.size(2) * y.size(3);
  const kernels::Isa isa = kernels::active_isa();
  ChannelSums<T> sums(C);
  for_channel_ranges(N, C, HW, [&](int64_t n, int64_t c0, int64_t c1) {
    const T *gp = g.data(), *yp = y.data();
    T* op = out.data();
    kernels::detail::simd_range(isa, (n * C + c0) * HW, (n * C + c1) * HW,
                                [=](int64_t i) { op[i] = mask(gp[i], yp[i]); });
    for (int64_t c = c0; c < c1; ++c) sums.add_plane(c, op + (n * C + c) * HW, HW);
  });
  *channel_sum = Tensor<T>::empty({C});
  for (int64_t c = 0; c < C; ++c) channel_sum->data()[c] = sums.total(c);
  return out;
}

// A contiguous [N, C, H, W] copy of contiguous t [N, C, h, w] (h <= H, w <= W) with zeros appended at the
// bottom and right.
template <class T>
Tensor<T> conv_pad_bottom_right(const Tensor<T>& t, int64_t H, int64_t W) {
  const int64_t N = t.size(0), C = t.size(1), h = t.size(2), w = t.size(3);
  if (h == H && w == W) return t;
  Tensor<T> out = Tensor<T>::zeros({N, C, H, W});
  for (int64_t p = 0; p < N * C; ++p)
    for (int64_t i = 0; i < h; ++i) std::copy_n(t.data() + (p * h + i) * w, w, out.data() + (p * H + i) * W);
  return out;
}

// The top-left [N, C, h, w] corner of contiguous t [N, C, H, W], as a contiguous tensor.
template <class T>
Tensor<T> conv_crop_top_left(const Tensor<T>& t, int64_t h, int64_t w) {
  const int64_t N = t.size(0), C = t.size(1), H = t.size(2), W = t.size(3);
  if (h == H && w == W) return t;
  Tensor<T> out = Tensor<T>::empty({N, C, h, w});
  for (int64_t p = 0; p < N * C; ++p)
    for (int64_t i = 0; i < h; ++i) std::copy_n(t.data() + (p * H + i) * W, w, out.data() + (p * h + i) * w);
  return out;
}

}  // namespace detail

// y = conv2d(x [N, Cin, H, W], weight [Cout, Cin / groups, kh, kw]) + bias [Cout], y [N, Cout, Ho, Wo] with
// Ho = (H + 2 * padding - dilation * (kh - 1) - 1) / stride + 1. bias may be an undefined Variable (no bias).
template <class T>
Variable<T> conv2d(const Variable<T>& x, const Variable<T>& weight, const Variable<T>& bias = Variable<T>(),
                   const Conv2dOptions& options = {}) {
  constexpr const char* op = "conv2d";
  detail::conv_require_4d(x.shape(), op, "input", "[N, C, H, W]");
  detail::conv_require_4d(weight.shape(), op, "weight", "[out_channels, in_channels, kh, kw]");
  detail::conv_require_params(op, options.stride, options.padding, options.dilation);
  const bool has_bias = bias.defined();
  const std::string shapes =
      "input of shape " + shape_str(x.shape()) + " and weight of shape " + shape_str(weight.shape());
  const int64_t groups = options.groups,
                in_channels = detail::conv_grouped_channels(op, weight.size(1), groups);
  if (x.size(1) != in_channels)
    throw std::invalid_argument("conv2d: " + shapes + ": the input has " + std::to_string(x.size(1)) +
                                " channels but the weight expects " + std::to_string(in_channels) +
                                (groups != 1 ? " (" + std::to_string(groups) + " groups)" : std::string()));
  if (weight.size(0) % groups != 0)
    throw std::invalid_argument("conv2d: weight of shape " + shape_str(weight.shape()) + " has " +
                                std::to_string(weight.size(0)) +
                                " output channels, not a multiple of groups " + std::to_string(groups));
  if (has_bias && bias.shape() != Shape{weight.size(0)})
    throw std::invalid_argument("conv2d: bias of shape " + shape_str(bias.shape()) +
                                " does not match weight of shape " + shape_str(weight.shape()) + " (" +
                                std::to_string(weight.size(0)) + " output channels)");
  // One input channel per group (depthwise) has kernels of its own; other groups run group by group.
  const bool depthwise = groups > 1 && weight.size(1) == 1;
  if (groups != 1 && !depthwise) {
    Conv2dOptions one_group = options;
    one_group.groups = 1;
    return detail::conv_by_groups(
        x, weight, bias, groups, weight.size(0) / groups, op,
        [&one_group](const Variable<T>& xg, const Variable<T>& wg, const Variable<T>& bg) {
          return conv2d(xg, wg, bg, one_group);
        });
  }
  if (x.size(1) == 0 || x.size(2) == 0 || x.size(3) == 0 || weight.size(0) == 0 || weight.size(2) == 0 ||
      weight.size(3) == 0)
    throw std::invalid_argument("conv2d: " + shapes + " have an empty channel, spatial or kernel dimension");

  kernels::Conv2dGeometry g;
  g.batch = x.size(0);
  g.in_channels = x.size(1);
  g.in_h = x.size(2);
  g.in_w = x.size(3);
  g.out_channels = weight.size(0);
  g.kernel_h = weight.size(2);
  g.kernel_w = weight.size(3);
  g.stride_h = options.stride.h;
  g.stride_w = options.stride.w;
  g.pad_h = options.padding.h;
  g.pad_w = options.padding.w;
  g.dilation_h = options.dilation.h;
  g.dilation_w = options.dilation.w;
  if (g.in_h + 2 * g.pad_h < g.dilation_h * (g.kernel_h - 1) + 1 ||
      g.in_w + 2 * g.pad_w < g.dilation_w * (g.kernel_w - 1) + 1)
    throw std::invalid_argument(
        "conv2d: " + shapes + ": the padded input " +
        IntPair(g.in_h + 2 * g.pad_h, g.in_w + 2 * g.pad_w).to_string() +
        " is smaller than the dilated kernel " +
        IntPair(g.dilation_h * (g.kernel_h - 1) + 1, g.dilation_w * (g.kernel_w - 1) + 1).to_string());

  const Tensor<T> xv = x.value().contiguous(), wv = weight.value().contiguous();
  const Tensor<T> bv = has_bias ? bias.value().contiguous() : Tensor<T>();
  const bool relu = options.activation == ConvActivation::relu;
  Tensor<T> y = Tensor<T>::empty({g.batch, g.out_channels, g.out_h(), g.out_w()});
  if (g.batch > 0 && depthwise)
    kernels::depthwise_conv2d_forward(g, xv.data(), wv.data(), has_bias ? bv.data() : nullptr, y.data(),
                                      relu);
  else if (g.batch > 0)
    kernels::conv2d_forward(g, xv.data(), wv.data(), has_bias ? bv.data() : nullptr, y.data(), relu);
  const Tensor<T> ys = relu ? y : Tensor<T>();  // the relu's mask

  const bool need_x = x.requires_grad(), need_w = weight.requires_grad(),
             need_b = has_bias && bias.requires_grad();
  // Save only what the required gradients read: grad-input needs the weight, grad-weight needs the input.
  return Variable<T>::from_op(
      std::move(y), relu ? "conv2d_relu" : op, {x, weight, has_bias ? bias : Variable<T>()},
      [g, xs = need_w ? xv : Tensor<T>(), ws = need_x ? wv : Tensor<T>(), ys, need_x, need_w, need_b,
       depthwise](Tensor<T> grad) {
        const Tensor<T> gy =
            ys.defined() ? detail::conv_relu_gradient(std::move(grad), ys) : grad.contiguous();
        Tensor<T> gx, gw, gb;
        if (need_x) {
          gx = Tensor<T>::empty({g.batch, g.in_channels, g.in_h, g.in_w});
          if (g.batch > 0 && depthwise)
            kernels::depthwise_conv2d_backward_input(g, gy.data(), ws.data(), gx.data());
          else if (g.batch > 0)
            kernels::conv2d_backward_input(g, gy.data(), ws.data(), gx.data());
        }
        if (need_w && depthwise) {
          gw = Tensor<T>::zeros({g.out_channels, 1, g.kernel_h, g.kernel_w});
          if (g.batch > 0) kernels::depthwise_conv2d_backward_weight(g, xs.data(), gy.data(), gw.data());
        }
        if (need_w && !depthwise) {
          gw = Tensor<T>::zeros({g.out_channels, g.in_channels, g.kernel_h, g.kernel_w});
          if (need_b) gb = Tensor<T>::zeros({g.out_channels});
          if (g.batch > 0)
            kernels::conv2d_backward_weight(g, xs.data(), gy.data(), gw.data(), need_b ? gb.data() : nullptr);
        } else if (need_b) {
          gb = detail::conv_channel_sum(gy.data(), g.batch, g.out_channels, g.out_h() * g.out_w());
        }
        return std::vector<Tensor<T>>{gx, gw, gb};
      });
}

// y = conv_transpose2d(x [N, Cin, H, W], weight [Cin, Cout / groups, kh, kw]) + bias [Cout], y [N, Cout, Ho,
// Wo] with Ho = (H - 1) * stride - 2 * padding + dilation * (kh - 1) + output_padding + 1 (PyTorch's layout
// and sizes). output_padding must be smaller than the stride or the dilation. bias may be an undefined
// Variable.
template <class T>
Variable<T> conv_transpose2d(const Variable<T>& x, const Variable<T>& weight,
                             const Variable<T>& bias = Variable<T>(),
                             const ConvTranspose2dOptions& options = {}) {
  constexpr const char* op = "conv_transpose2d";
  detail::conv_require_4d(x.shape(), op, "input", "[N, C, H, W]");
  detail::conv_require_4d(weight.shape(), op, "weight", "[in_channels, out_channels, kh, kw]");
  detail::conv_require_params(op, options.stride, options.padding, options.dilation);
  const IntPair& s = options.stride;
  const IntPair& p = options.padding;
  const IntPair& op_ = options.output_padding;
  const IntPair& d = options.dilation;
  const bool has_bias = bias.defined();
  const std::string shapes =
      "input of shape " + shape_str(x.shape()) + " and weight of shape " + shape_str(weight.shape());
  const int64_t groups = options.groups,
                out_channels = detail::conv_grouped_channels(op, weight.size(1), groups);
  if (x.size(1) != weight.size(0))
    throw std::invalid_argument("conv_transpose2d: " + shapes + ": the input has " +
                                std::to_string(x.size(1)) + " channels but the weight expects " +
                                std::to_string(weight.size(0)));
  if (weight.size(0) % groups != 0)
    throw std::invalid_argument("conv_transpose2d: weight of shape " + shape_str(weight.shape()) + " has " +
                                std::to_string(weight.size(0)) +
                                " input channels, not a multiple of groups " + std::to_string(groups));
  if (has_bias && bias.shape() != Shape{out_channels})
    throw std::invalid_argument("conv_transpose2d: bias of shape " + shape_str(bias.shape()) +
                                " does not match weight of shape " + shape_str(weight.shape()) + " (" +
                                std::to_string(out_channels) + " output channels)");
  // One output channel per group (the adjoint of a depthwise convolution, any multiplier) has kernels of its
  // own; other groups run group by group.
  const bool depthwise = groups > 1 && weight.size(1) == 1;
  if (groups != 1 && !depthwise) {
    ConvTranspose2dOptions one_group = options;
    one_group.groups = 1;
    return detail::conv_by_groups(
        x, weight, bias, groups, weight.size(1), op,
        [&one_group](const Variable<T>& xg, const Variable<T>& wg, const Variable<T>& bg) {
          return conv_transpose2d(xg, wg, bg, one_group);
        });
  }
  if (x.size(1) == 0 || x.size(2) == 0 || x.size(3) == 0 || weight.size(1) == 0 || weight.size(2) == 0 ||
      weight.size(3) == 0)
    throw std::invalid_argument("conv_transpose2d: " + shapes +
                                " have an empty channel, spatial or kernel dimension");
  if (op_.h < 0 || op_.w < 0 || (op_.h >= s.h && op_.h >= d.h) || (op_.w >= s.w && op_.w >= d.w))
    throw std::invalid_argument("conv_transpose2d: " + shapes + ": output_padding " + op_.to_string() +
                                " must be non-negative and smaller than either stride " + s.to_string() +
                                " or dilation " + d.to_string());

  const int64_t N = x.size(0), Cin = x.size(1), H = x.size(2), W = x.size(3);
  const int64_t Cout = out_channels, kh = weight.size(2), kw = weight.size(3);
  const int64_t Ho = (H - 1) * s.h - 2 * p.h + d.h * (kh - 1) + op_.h + 1;
  const int64_t Wo = (W - 1) * s.w - 2 * p.w + d.w * (kw - 1) + op_.w + 1;
  if (Ho < 1 || Wo < 1)
    throw std::invalid_argument("conv_transpose2d: " + shapes + " with stride " + s.to_string() +
                                ", padding " + p.to_string() + ", output_padding " + op_.to_string() +
                                ", dilation " + d.to_string() + " give a non-positive output size " +
                                IntPair(Ho, Wo).to_string());

  // The convolution whose input is this op's output and whose output is this op's input. Its output size
  // is H + output_padding / stride, which exceeds H when output_padding >= stride (allowed when it is below
  // the dilation): this op's input is then zero-padded at the bottom/right to that size.
  kernels::Conv2dGeometry g;
  g.batch = N;
  g.in_channels = Cout;
  g.in_h = Ho;
  g.in_w = Wo;
  g.out_channels = Cin;
  g.kernel_h = kh;
  g.kernel_w = kw;
  g.stride_h = s.h;
  g.stride_w = s.w;
  g.pad_h = p.h;
  g.pad_w = p.w;
  g.dilation_h = d.h;
  g.dilation_w = d.w;
  const int64_t gh = g.out_h(), gw_ = g.out_w();  // >= H, W

  const Tensor<T> xv = x.value().contiguous(), wv = weight.value().contiguous();
  const bool relu = options.activation == ConvActivation::relu;
  Tensor<T> y = Tensor<T>::empty({N, Cout, Ho, Wo});
  if (N > 0) {
    const Tensor<T> xp = detail::conv_pad_bottom_right(xv, gh, gw_);
    const Tensor<T> bv = has_bias ? bias.value().contiguous() : Tensor<T>();
    if (depthwise) {
      kernels::depthwise_conv2d_backward_input(g, xp.data(), wv.data(), y.data());
      kernels::conv_output_epilogue(y.data(), N, Cout, Ho * Wo, has_bias ? bv.data() : nullptr, relu);
    } else {
      kernels::conv2d_backward_input(g, xp.data(), wv.data(), y.data(), has_bias ? bv.data() : nullptr, relu);
    }
  }
  const Tensor<T> ys = relu ? y : Tensor<T>();  // the relu's mask

  const bool need_x = x.requires_grad(), need_w = weight.requires_grad(),
             need_b = has_bias && bias.requires_grad();
  return Variable<T>::from_op(
      std::move(y), relu ? "conv_transpose2d_relu" : op, {x, weight, has_bias ? bias : Variable<T>()},
      [g, H, W, gh, gw_, xs = need_w ? xv : Tensor<T>(), ws = need_x ? wv : Tensor<T>(), ys, need_x, need_w,
       need_b, depthwise](Tensor<T> grad) {
        // [N, Cout, Ho, Wo]: the geometry's x
        Tensor<T> gb;  // with a relu, summed in the mask's pass
        const Tensor<T> gout = ys.defined()
                                   ? detail::conv_relu_gradient(std::move(grad), ys, need_b ? &gb : nullptr)
                                   : grad.contiguous();
        Tensor<T> gx, gw;
        // the geometry's y (this op's input gradient before cropping) and gy (this op's input)
        Tensor<T> full = need_x ? Tensor<T>::empty({g.batch, g.out_channels, gh, gw_}) : Tensor<T>();
        const Tensor<T> xp = need_w ? detail::conv_pad_bottom_right(xs, gh, gw_) : Tensor<T>();
        if (need_w)
          gw = Tensor<T>::zeros({g.out_channels, depthwise ? 1 : g.in_channels, g.kernel_h, g.kernel_w});
        if (g.batch > 0 && depthwise) {
          if (need_x)
            kernels::depthwise_conv2d_forward(g, gout.data(), ws.data(), static_cast<const T*>(nullptr),
                                              full.data());
          if (need_w) kernels::depthwise_conv2d_backward_weight(g, gout.data(), xp.data(), gw.data());
        } else if (g.batch > 0) {
          if (need_x && need_w)
            kernels::conv_transpose2d_backward(g, gout.data(), xp.data(), ws.data(), full.data(), gw.data());
          else if (need_x)
            kernels::conv2d_forward(g, gout.data(), ws.data(), static_cast<const T*>(nullptr), full.data());
          else if (need_w)
            kernels::conv2d_backward_weight(g, gout.data(), xp.data(), gw.data(), static_cast<T*>(nullptr));
        }
        if (need_x) gx = detail::conv_crop_top_left(full, H, W);
        if (need_b && !gb.defined())
          gb = detail::conv_channel_sum(gout.data(), g.batch, g.in_channels, g.in_h * g.in_w);
        return std::vector<Tensor<T>>{gx, gw, gb};
      });
}

}  // namespace sumi
