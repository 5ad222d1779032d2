#include <catch2/catch.hpp>

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
// vector), the row kernels of every ISA against the references.
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
                                         .stride_w = stride,
                                         .pad_h = pad,
                                         .pad_w = pad,
                                         .dilation_h = dilation,
                                         .dilation_w = dilation};
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
  for (const Case& c : cases) {
    INFO("input " << shape_str(c.x) << " weight " << shape_str(c.w));
    for (bool bias : {false, true}) {
      std::vector<Variable<double>> inputs{leaf(c.x, ++seed), leaf(c.w, ++seed)};
      if (bias) inputs.push_back(leaf({c.w[0]}, ++seed));
      require_gradcheck(
          [&](const std::vector<Variable<double>>& v) {
            return conv2d(v[0], v[1], v.size() > 2 ? v[2] : Variable<double>(), c.options);
          },
          inputs);
    }
  }
}

TEST_CASE("depthwise conv_transpose2d gradients match finite differences", "[conv][depthwise][gradcheck]") {
  struct Case {
    Shape x, w;
    ConvTranspose2dOptions options;
  };
  // The second case's output_padding is not below the stride (allowed below the dilation): its input is
  // padded at the bottom and right to the geometry's size.
  const Case cases[] = {
      {{2, 3, 4, 5}, {3, 1, 3, 3}, {.stride = 2, .padding = 1, .output_padding = 1, .groups = 3}},
      {{1, 2, 5, 4},
       {2, 1, 2, 3},
       {.padding = IntPair(0, 1), .output_padding = 1, .dilation = 2, .groups = 2}},
  };
  uint64_t seed = 200;
  for (const Case& c : cases) {
    INFO("input " << shape_str(c.x) << " weight " << shape_str(c.w));
    for (bool bias : {false, true}) {
      std::vector<Variable<double>> inputs{leaf(c.x, ++seed), leaf(c.w, ++seed)};
      if (bias) inputs.push_back(leaf({c.w[0]}, ++seed));
      require_gradcheck(
          [&](const std::vector<Variable<double>>& v) {
            return conv_transpose2d(v[0], v[1], v.size() > 2 ? v[2] : Variable<double>(), c.options);
          },
          inputs);
    }
  }
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
  for (int threads : {1, 2}) {
    set_num_threads(threads);
    Variable<float> xv(x.clone(), true), wv(w.clone(), true);
    Variable<float> y = conv2d(xv, wv, Variable<float>(), {.stride = 2, .padding = 1, .groups = 32});
    y.backward(gy);
    results.push_back(values(y.value()));
    results.push_back(values(xv.grad()));
    results.push_back(values(wv.grad()));
  }
  for (std::size_t i = 0; i < 3; ++i) CHECK(results[i] == results[i + 3]);
}
