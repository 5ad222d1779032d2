#include <catch2/catch.hpp>

#include <algorithm>
#include <cmath>
#include <cstdint>
#include <random>
#include <vector>

#include "gradcheck_helpers.hpp"
#include "isa_guard.hpp"
#include "max_error.hpp"
#include "sumi/kernels/depthwise_conv.hpp"
#include "sumi/ops/conv.hpp"
#include "sumi/ops/elementwise.hpp"
#include "sumi/ops/reduction.hpp"
#include "sumi/tensor/random.hpp"
#include "thread_count_guard.hpp"

using namespace sumi;
using sumi::test::leaf;
using sumi::test::require_gradcheck;
namespace sk = sumi::kernels;

namespace {

template <class T>
std::vector<T> values(const Tensor<T>& t) {
  const Tensor<T> c = t.contiguous();
  return {c.data(), c.data() + c.numel()};
}

// The largest |a - b| relative to the largest |a|.
template <class T>
double relative_error(const std::vector<T>& a, const std::vector<T>& b) {
  double worst = 0, scale = 0;
  for (std::size_t i = 0; i < a.size(); ++i) {
    worst = test::nan_max(worst, std::abs(double(a[i]) - double(b[i])));
    scale = std::max(scale, std::abs(double(a[i])));
  }
  return worst / std::max(scale, 1e-30);
}

// Every kernel of every depthwise geometry in a sweep (kernel sizes, strides past the 1 and 2 that get their
// own loops, padding wider than a tap's reach, dilation, channel multipliers, widths on both sides of a
// vector; each setting different along the rows and the columns, so that one used for the other shows), the
// row kernels of every ISA against the references.
template <class T>
void check_kernels_against_references(double tolerance) {
  const test::IsaGuard restore_isa;
  std::mt19937 gen(5);
  std::uniform_real_distribution<T> uniform(-1, 1);
  int compared = 0;
  for (int64_t k : {1, 2, 3})
    for (int64_t stride : {1, 2, 3})
      for (int64_t pad : {0, 1, 3})
        for (int64_t dilation : {1, 2})
          for (int64_t multiplier : {1, 2})
            for (int64_t width : {4, 17, 37}) {
              const sk::Conv2dGeometry g{.batch = 2,
                                         .in_channels = 3,
                                         .in_h = 7,
                                         .in_w = width,
                                         .out_channels = 3 * multiplier,
                                         .kernel_h = k,
                                         .kernel_w = k + 1,
                                         .stride_h = stride,
                                         .stride_w = 4 - stride,
                                         .pad_h = pad,
                                         .pad_w = (pad + 1) % 4,
                                         .dilation_h = dilation,
                                         .dilation_w = 3 - dilation};
              if (g.out_h() < 1 || g.out_w() < 1) continue;
              INFO(g.to_string());
              const auto random = [&](int64_t n) {
                std::vector<T> v(static_cast<std::size_t>(n));
                for (T& e : v) e = uniform(gen);
                return v;
              };
              const std::vector<T> x = random(g.input_numel()),
                                   w = random(g.out_channels * g.kernel_h * g.kernel_w),
                                   bias = random(g.out_channels), gy = random(g.output_numel());
              std::vector<T> y_ref(gy.size()), gx_ref(x.size()), gw_ref(w.size());
              sk::depthwise_conv2d_forward_reference(g, x.data(), w.data(), bias.data(), y_ref.data());
              sk::depthwise_conv2d_backward_input_reference(g, gy.data(), w.data(), gx_ref.data());
              sk::depthwise_conv2d_backward_weight_reference(g, x.data(), gy.data(), gw_ref.data());
              for (sk::Isa isa : {sk::Isa::avx2, sk::Isa::avx512}) {
                if (!sk::isa_supported(isa)) continue;
                INFO("ISA " << sk::isa_name(isa));
                sk::set_isa(isa);
                std::vector<T> y(gy.size(), T(7)), gx(x.size(), T(7)), gw(w.size(), T(7));
                sk::depthwise_conv2d_forward(g, x.data(), w.data(), bias.data(), y.data());
                sk::depthwise_conv2d_backward_input(g, gy.data(), w.data(), gx.data());
                sk::depthwise_conv2d_backward_weight(g, x.data(), gy.data(), gw.data());
                REQUIRE(relative_error(y_ref, y) <= tolerance);
                REQUIRE(relative_error(gx_ref, gx) <= tolerance);
                REQUIRE(relative_error(gw_ref, gw) <= tolerance);
                ++compared;
              }
            }
  if (sk::isa_supported(sk::Isa::avx2)) CHECK(compared > 200);
}

}  // namespace

TEST_CASE("depthwise row kernels match the references on every ISA", "[conv][depthwise][isa]") {
  check_kernels_against_references<float>(2e-6);
  check_kernels_against_references<double>(1e-14);
}

TEST_CASE("the depthwise kernels refuse a geometry they cannot run", "[conv][depthwise][errors]") {
  const sk::Conv2dGeometry g{
      .in_channels = 2, .in_h = 4, .in_w = 4, .out_channels = 3, .kernel_h = 3, .kernel_w = 3};
  std::vector<float> x(32), w(27), y(12);
  REQUIRE_THROWS_WITH(
      sk::depthwise_conv2d_forward(g, x.data(), w.data(), static_cast<const float*>(nullptr), y.data()),
      Catch::Contains("out_channels 3 is not a multiple of in_channels 2"));
  sk::Conv2dGeometry too_small = g;
  too_small.out_channels = 2;
  too_small.kernel_w = 5;  // wider than the input, no padding: no output column
  REQUIRE_THROWS_WITH(sk::depthwise_conv2d_backward_weight(too_small, x.data(), y.data(), w.data()),
                      Catch::Contains("invalid geometry"));
}

namespace {

// A depthwise weight [out_channels, 1, kh, kw] as the dense weight [out_channels, in_channels, kh, kw] of the
// same convolution: each output channel's filter on its own input channel, zeros elsewhere.
Tensor<double> dense_weight(const Tensor<double>& w, int64_t in_channels) {
  const int64_t out = w.size(0), m = out / in_channels, taps = w.size(2) * w.size(3);
  Tensor<double> dense = Tensor<double>::zeros({out, in_channels, w.size(2), w.size(3)});
  const Tensor<double> wc = w.contiguous();
  for (int64_t co = 0; co < out; ++co)
    std::copy_n(wc.data() + co * taps, taps, dense.data() + (co * in_channels + co / m) * taps);
  return dense;
}

// The depthwise part of a dense weight [out_channels, in_channels, kh, kw] (its inverse of dense_weight).
Tensor<double> depthwise_part(const Tensor<double>& dense) {
  const int64_t out = dense.size(0), in_channels = dense.size(1), m = out / in_channels;
  const int64_t taps = dense.size(2) * dense.size(3);
  Tensor<double> w = Tensor<double>::empty({out, 1, dense.size(2), dense.size(3)});
  const Tensor<double> dc = dense.contiguous();
  for (int64_t co = 0; co < out; ++co)
    std::copy_n(dc.data() + (co * in_channels + co / m) * taps, taps, w.data() + co * taps);
  return w;
}

double max_abs_difference(const Tensor<double>& a, const Tensor<double>& b) {
  REQUIRE(a.shape() == b.shape());
  const std::vector<double> av = values(a), bv = values(b);
  double worst = 0;
  for (std::size_t i = 0; i < av.size(); ++i) worst = test::nan_max(worst, std::abs(av[i] - bv[i]));
  return worst;
}

}  // namespace

TEST_CASE("depthwise convolutions equal dense ones with block-diagonal weights", "[conv][depthwise]") {
  // The dense path is held to PyTorch elsewhere; here it checks the depthwise path's values (not only their
  // consistency with its gradients) on geometries that differ along rows and columns, and transposed
  // convolutions with a channel multiplier (weight [m * groups, 1, kh, kw]).
  using V = Variable<double>;
  struct Case {
    int64_t batch, in_channels, multiplier, h, w, kh, kw;
    IntPair stride, padding, dilation, output_padding;
  };
  const Case cases[] = {
      {2, 3, 1, 7, 9, 3, 2, IntPair(2, 1), IntPair(1, 0), IntPair(1, 2), IntPair(1, 0)},
      {1, 2, 3, 6, 5, 2, 3, IntPair(1, 3), IntPair(0, 2), IntPair(2, 1), IntPair(0, 2)},
      {3, 4, 2, 5, 8, 3, 3, IntPair(2, 2), IntPair(1, 1), IntPair(1, 1), IntPair(1, 1)},
  };
  uint64_t seed = 300;
  for (const Case& c : cases) {
    const int64_t C = c.in_channels, out = C * c.multiplier;
    INFO(C << " channels, multiplier " << c.multiplier << ", kernel " << c.kh << "x" << c.kw << ", stride "
           << c.stride.to_string() << ", padding " << c.padding.to_string() << ", dilation "
           << c.dilation.to_string());
    V w = leaf({out, 1, c.kh, c.kw}, ++seed), b = leaf({out}, ++seed);
    V dense_w(dense_weight(w.value(), C), true), dense_b(b.value().clone(), true);
    // conv2d: [batch, C, h, w] -> [batch, out, ...]
    V x = leaf({c.batch, C, c.h, c.w}, ++seed), dense_x(x.value().clone(), true);
    const Conv2dOptions options{
        .stride = c.stride, .padding = c.padding, .dilation = c.dilation, .groups = C};
    Conv2dOptions dense_options = options;
    dense_options.groups = 1;
    V y = conv2d(x, w, b, options), dense_y = conv2d(dense_x, dense_w, dense_b, dense_options);
    REQUIRE(max_abs_difference(y.value(), dense_y.value()) < 1e-12);
    const Tensor<double> gy = leaf(y.shape(), ++seed).value();
    y.backward(gy);
    dense_y.backward(gy);
    CHECK(max_abs_difference(x.grad(), dense_x.grad()) < 1e-12);
    CHECK(max_abs_difference(w.grad(), depthwise_part(dense_w.grad())) < 1e-12);
    CHECK(max_abs_difference(b.grad(), dense_b.grad()) < 1e-12);
    // conv_transpose2d with the same weight: [batch, out, ...] -> [batch, C, ...], one output per group. The
    // dense transposed weight is [out, C, kh, kw], the same block-diagonal tensor.
    V wt = leaf({out, 1, c.kh, c.kw}, ++seed), bt = leaf({C}, ++seed);
    V dense_wt(dense_weight(wt.value(), C), true), dense_bt(bt.value().clone(), true);
    V xt = leaf({c.batch, out, c.h, c.w}, ++seed), dense_xt(xt.value().clone(), true);
    const ConvTranspose2dOptions t_options{.stride = c.stride,
                                           .padding = c.padding,
                                           .output_padding = c.output_padding,
                                           .dilation = c.dilation,
                                           .groups = C};
    ConvTranspose2dOptions dense_t_options = t_options;
    dense_t_options.groups = 1;
    V yt = conv_transpose2d(xt, wt, bt, t_options),
      dense_yt = conv_transpose2d(dense_xt, dense_wt, dense_bt, dense_t_options);
    REQUIRE(max_abs_difference(yt.value(), dense_yt.value()) < 1e-12);
    const Tensor<double> gyt = leaf(yt.shape(), ++seed).value();
    yt.backward(gyt);
    dense_yt.backward(gyt);
    CHECK(max_abs_difference(xt.grad(), dense_xt.grad()) < 1e-12);
    CHECK(max_abs_difference(wt.grad(), depthwise_part(dense_wt.grad())) < 1e-12);
    CHECK(max_abs_difference(bt.grad(), dense_bt.grad()) < 1e-12);
  }
}

TEST_CASE("a depthwise convolution of an empty batch gives empty outputs and zero weight gradients",
          "[conv][depthwise]") {
  using V = Variable<double>;
  V x(Tensor<double>::zeros({0, 3, 5, 5}), true), w = leaf({6, 1, 3, 3}, 81), b = leaf({6}, 82);
  V y = conv2d(x, w, b, {.padding = 1, .groups = 3});
  REQUIRE(y.shape() == Shape{0, 6, 5, 5});
  sum(y).backward();
  CHECK(x.grad().shape() == Shape{0, 3, 5, 5});
  CHECK(values(w.grad()) == std::vector<double>(54, 0.0));
  CHECK(values(b.grad()) == std::vector<double>(6, 0.0));
  V xt(Tensor<double>::zeros({0, 6, 4, 4}), true);
  V yt = conv_transpose2d(xt, w, leaf({3}, 83), {.stride = 2, .groups = 3});
  REQUIRE(yt.shape() == Shape{0, 3, 9, 9});
}

namespace {

// gradcheck of op(x, w, bias) at leaves of shapes x and w, without a bias and with one of bias_channels.
template <class Op>
void check_gradients_with_and_without_bias(const Shape& x, const Shape& w, int64_t bias_channels,
                                           uint64_t seed, const Op& op) {
  INFO("input " << shape_str(x) << " weight " << shape_str(w));
  for (bool bias : {false, true}) {
    std::vector<Variable<double>> inputs{leaf(x, seed), leaf(w, seed + 1)};
    if (bias) inputs.push_back(leaf({bias_channels}, seed + 2));
    require_gradcheck(
        [&](const std::vector<Variable<double>>& v) {
          return op(v[0], v[1], v.size() > 2 ? v[2] : Variable<double>());
        },
        inputs);
  }
}

}  // namespace

TEST_CASE("depthwise conv2d gradients match finite differences", "[conv][depthwise][gradcheck]") {
  struct Case {
    Shape x, w;
    Conv2dOptions options;
  };
  const Case cases[] = {
      {{2, 3, 6, 7}, {3, 1, 3, 3}, {.padding = 1, .groups = 3}},
      {{2, 3, 7, 6}, {6, 1, 3, 2}, {.stride = 2, .padding = IntPair(1, 2), .groups = 3}},
      {{1, 2, 8, 8}, {2, 1, 2, 3}, {.stride = IntPair(3, 2), .dilation = 2, .groups = 2}},
      {{1, 4, 5, 5}, {8, 1, 1, 1}, {.groups = 4}},
  };
  uint64_t seed = 100;
  for (const Case& c : cases)
    check_gradients_with_and_without_bias(
        c.x, c.w, c.w[0], seed += 3,
        [&](const auto& x, const auto& w, const auto& b) { return conv2d(x, w, b, c.options); });
}

TEST_CASE("depthwise conv_transpose2d gradients match finite differences", "[conv][depthwise][gradcheck]") {
  struct Case {
    Shape x, w;
    ConvTranspose2dOptions options;
  };
  // The second case's output_padding is not below the stride (allowed below the dilation): its input is
  // padded at the bottom and right to the geometry's size. The third has three inputs per output channel.
  const Case cases[] = {
      {{2, 3, 4, 5}, {3, 1, 3, 3}, {.stride = 2, .padding = 1, .output_padding = 1, .groups = 3}},
      {{1, 2, 5, 4},
       {2, 1, 2, 3},
       {.padding = IntPair(0, 1), .output_padding = 1, .dilation = 2, .groups = 2}},
      {{1, 6, 3, 4}, {6, 1, 3, 3}, {.stride = IntPair(2, 1), .padding = 1, .groups = 2}},
  };
  uint64_t seed = 200;
  for (const Case& c : cases)
    check_gradients_with_and_without_bias(
        c.x, c.w, c.options.groups, seed += 3,
        [&](const auto& x, const auto& w, const auto& b) { return conv_transpose2d(x, w, b, c.options); });
}

namespace {

// op(relu) against relu(op(identity)): values and the three gradients bit for bit.
template <class Op>
void check_fused_relu(const Op& op, Variable<double> x, Variable<double> w, Variable<double> b) {
  using V = Variable<double>;
  const V fused = op(x, w, b, ConvActivation::relu), separate = relu(op(x, w, b, ConvActivation::none));
  REQUIRE(values(fused.value()) == values(separate.value()));
  const V upstream = leaf(fused.shape(), 74, {.requires_grad = false});
  sum(mul(fused, upstream)).backward();
  const std::vector<double> gx = values(x.grad()), gw = values(w.grad()), gb = values(b.grad());
  x.zero_grad();
  w.zero_grad();
  b.zero_grad();
  sum(mul(separate, upstream)).backward();
  CHECK(gx == values(x.grad()));
  CHECK(gw == values(w.grad()));
  CHECK(gb == values(b.grad()));
}

}  // namespace

TEST_CASE("depthwise convolutions with a fused relu equal relu after them, bit for bit",
          "[conv][depthwise][relu]") {
  using V = Variable<double>;
  check_fused_relu(
      [](const V& x, const V& w, const V& b, ConvActivation a) {
        return conv2d(x, w, b, {.stride = 2, .padding = 1, .groups = 4, .activation = a});
      },
      leaf({2, 4, 9, 9}, 71), leaf({8, 1, 3, 3}, 72), leaf({8}, 73));
  check_fused_relu(
      [](const V& x, const V& w, const V& b, ConvActivation a) {
        return conv_transpose2d(
            x, w, b, {.stride = 2, .padding = 1, .output_padding = 1, .groups = 4, .activation = a});
      },
      leaf({2, 4, 5, 5}, 75), leaf({4, 1, 3, 3}, 76), leaf({4}, 77));
}

TEST_CASE("depthwise conv2d results do not depend on the number of threads", "[conv][depthwise][threads]") {
  const test::ThreadCountGuard restore_threads;
  Generator gen(9);
  const Tensor<float> x = Tensor<float>::randn({4, 32, 20, 20}, gen),
                      w = Tensor<float>::randn({64, 1, 3, 3}, gen),
                      gy = Tensor<float>::randn({4, 64, 10, 10}, gen);
  std::vector<std::vector<float>> results;
  for (int threads : {1, 2, 3}) {
    set_num_threads(threads);
    Variable<float> xv(x.clone(), true), wv(w.clone(), true);
    Variable<float> y = conv2d(xv, wv, Variable<float>(), {.stride = 2, .padding = 1, .groups = 32});
    y.backward(gy);
    results.push_back(values(y.value()));
    results.push_back(values(xv.grad()));
    results.push_back(values(wv.grad()));
  }
  for (std::size_t i = 3; i < results.size(); ++i) CHECK(results[i] == results[i % 3]);
}
