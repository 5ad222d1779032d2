#include <catch2/catch.hpp>

#include <cmath>
#include <map>
#include <string>
#include <vector>
#include "max_error.hpp"

#include "fixture.hpp"
#include "gradcheck_helpers.hpp"
#include "isa_guard.hpp"
#include "sumi/ops/conv.hpp"
#include "sumi/ops/elementwise.hpp"
#include "sumi/ops/reduction.hpp"

using namespace sumi;
using sumi::test::leaf;
using sumi::test::require_gradcheck;
using V = Variable<double>;
using TD = Tensor<double>;
using VF = Variable<float>;

namespace {
std::string describe(const IntPair& s, const IntPair& p, const IntPair& d, bool bias) {
  return "stride " + s.to_string() + " padding " + p.to_string() + " dilation " + d.to_string() +
         (bias ? " with bias" : " without bias");
}

double dot(const TD& a, const TD& b) {
  REQUIRE(a.shape() == b.shape());
  const TD ac = a.contiguous(), bc = b.contiguous();
  double s = 0;
  for (int64_t i = 0; i < ac.numel(); ++i) s += ac.data()[i] * bc.data()[i];
  return s;
}

double max_abs_diff(const TD& a, const TD& b) {
  REQUIRE(a.shape() == b.shape());
  const TD ac = a.contiguous(), bc = b.contiguous();
  double m = 0;
  for (int64_t i = 0; i < ac.numel(); ++i) m = sumi::test::nan_max(m, std::abs(ac.data()[i] - bc.data()[i]));
  return m;
}

// Runs one case of a conv fixture file in float and compares y, gx, gw and gb.
void check_conv_case(const test::Fixture& fx, const std::string& c, bool transpose) {
  INFO("case " << c);
  const auto cfg = fx.meta_json(c + ".config");
  const bool has_bias = cfg.at("bias").get<bool>();
  VF x(fx.input<float>(c + ".x"), true), w(fx.input<float>(c + ".w"), true);
  VF b = has_bias ? VF(fx.input<float>(c + ".b"), true) : VF();
  const int64_t stride = cfg.at("stride"), pad = cfg.at("pad"), dilation = cfg.at("dilation");
  const int64_t groups = cfg.value("groups", int64_t(1));
  VF y = transpose
             ? conv_transpose2d(x, w, b,
                                {.stride = stride,
                                 .padding = pad,
                                 .output_padding = cfg.at("output_padding").get<int64_t>(),
                                 .dilation = dilation,
                                 .groups = groups})
             : conv2d(x, w, b, {.stride = stride, .padding = pad, .dilation = dilation, .groups = groups});
  fx.require_close(c + ".y", y.value());
  y.backward(fx.input<float>(c + ".gy"));
  fx.require_close(c + ".gx", x.grad());
  fx.require_close(c + ".gw", w.grad());
  if (has_bias) fx.require_close(c + ".gb", b.grad());
}

// Runs every case of a conv fixture file (the DCGAN layers or the others).
void check_conv_fixture(const std::string& file, bool transpose, bool dcgan) {
  test::Fixture fx(file);
  const auto cases = fx.meta_json("cases").get<std::vector<std::string>>();
  REQUIRE(cases.size() == (transpose ? 11u : 12u));
  int checked = 0;
  for (const std::string& c : cases) {
    if ((c.rfind("dcgan", 0) == 0) != dcgan) continue;
    check_conv_case(fx, c, transpose);
    ++checked;
  }
  REQUIRE(checked == (dcgan || !transpose ? 6 : 5));
}
}  // namespace

TEST_CASE("conv2d gradients match finite differences over a sweep of geometries", "[conv][gradcheck]") {
  std::vector<std::tuple<IntPair, IntPair, IntPair>> configs;
  for (int64_t s = 1; s <= 3; ++s)
    for (int64_t p = 0; p <= 2; ++p)
      for (int64_t d = 1; d <= 2; ++d) configs.emplace_back(s, p, d);
  // Different height and width parameters catch h/w mix-ups.
  configs.emplace_back(IntPair(1, 2), IntPair(2, 0), IntPair(2, 1));
  configs.emplace_back(IntPair(3, 1), IntPair(0, 1), IntPair(1, 2));
  int index = 0;
  for (const auto& [s, p, d] : configs) {
    for (const bool bias : {true, false}) {
      INFO(describe(s, p, d, bias));
      const Conv2dOptions opt{.stride = s, .padding = p, .dilation = d};
      // N=2, Cin=3, 7x6 input, Cout=5, 3x2 kernel (non-square).
      const uint64_t seed = uint64_t(10 * index++);
      if (bias)
        require_gradcheck([opt](const std::vector<V>& v) { return conv2d(v[0], v[1], v[2], opt); },
                          {leaf({2, 3, 7, 6}, seed + 1), leaf({5, 3, 3, 2}, seed + 2), leaf({5}, seed + 3)});
      else
        require_gradcheck([opt](const std::vector<V>& v) { return conv2d(v[0], v[1], V(), opt); },
                          {leaf({2, 3, 7, 6}, seed + 1), leaf({5, 3, 3, 2}, seed + 2)});
    }
  }
}

TEST_CASE("conv_transpose2d gradients match finite differences over a sweep of geometries",
          "[conv][gradcheck]") {
  std::vector<std::tuple<IntPair, IntPair, IntPair, IntPair>>
      configs;  // stride, padding, output_padding, dilation
  for (int64_t s = 1; s <= 3; ++s)
    for (int64_t p = 0; p <= 2; ++p)
      for (int64_t d = 1; d <= 2; ++d)
        for (int64_t op = 0; op < std::max(s, d); ++op) configs.emplace_back(s, p, op, d);
  configs.emplace_back(IntPair(2, 1), IntPair(1, 0), IntPair(1, 0), IntPair(1, 2));
  configs.emplace_back(IntPair(1, 3), IntPair(0, 2), IntPair(1, 2), IntPair(2, 1));
  REQUIRE(configs.size() == 41);
  int index = 0;
  for (const auto& [s, p, op, d] : configs) {
    const bool bias = index % 2 == 0;
    INFO(describe(s, p, d, bias) << " output_padding " << op.to_string());
    const ConvTranspose2dOptions opt{.stride = s, .padding = p, .output_padding = op, .dilation = d};
    // N=2, Cin=5, 4x3 input, Cout=3, 2x3 kernel.
    const uint64_t seed = uint64_t(1000 + 10 * index++);
    if (bias)
      require_gradcheck([opt](const std::vector<V>& v) { return conv_transpose2d(v[0], v[1], v[2], opt); },
                        {leaf({2, 5, 4, 3}, seed + 1), leaf({5, 3, 2, 3}, seed + 2), leaf({3}, seed + 3)});
    else
      require_gradcheck([opt](const std::vector<V>& v) { return conv_transpose2d(v[0], v[1], V(), opt); },
                        {leaf({2, 5, 4, 3}, seed + 1), leaf({5, 3, 2, 3}, seed + 2)});
  }
}

TEST_CASE("conv_transpose2d output size follows PyTorch's formula", "[conv]") {
  const V x = leaf({1, 2, 5, 4}, 1, {.requires_grad = false}),
          w = leaf({2, 3, 3, 2}, 2, {.requires_grad = false});
  // (H - 1) * s - 2p + d * (k - 1) + op + 1
  REQUIRE(conv_transpose2d(x, w).shape() == Shape{1, 3, 7, 5});
  REQUIRE(conv_transpose2d(x, w, V(), {.stride = 2, .padding = 1, .output_padding = 1}).shape() ==
          Shape{1, 3, 10, 7});
  REQUIRE(conv_transpose2d(x, w, V(),
                           {.stride = {3, 1}, .padding = {0, 1}, .output_padding = {2, 0}, .dilation = 2})
              .shape() == Shape{1, 3, 19, 4});
  // output_padding >= stride is allowed when it is below the dilation.
  REQUIRE(conv_transpose2d(x, w, V(), {.stride = 1, .output_padding = 1, .dilation = 2}).shape() ==
          Shape{1, 3, 10, 7});
  REQUIRE(conv2d(x, leaf({4, 2, 3, 2}, 3, {.requires_grad = false}), V(),
                 {.stride = 2, .padding = {1, 0}, .dilation = {1, 2}})
              .shape() == Shape{1, 4, 3, 1});
}

TEST_CASE("conv_transpose2d is the adjoint of conv2d", "[conv]") {
  // <conv2d(a, w), b> == <a, conv_transpose2d(b, w)> for the same weight and parameters: an independent check
  // of the transposed convolution's forward pass, including bottom/right rows only output_padding reaches.
  struct Case {
    Shape a;  // conv2d input
    Shape w;  // [Cout, Cin, kh, kw]
    IntPair s, p, d;
  };
  const std::vector<Case> cases = {{{2, 3, 7, 8}, {4, 3, 3, 3}, 2, 1, 1},
                                   {{1, 5, 9, 6}, {3, 5, 2, 3}, {3, 2}, {0, 2}, {1, 2}},
                                   {{2, 2, 8, 8}, {6, 2, 4, 4}, 2, 1, 1},
                                   {{1, 3, 10, 9}, {2, 3, 3, 3}, 3, 2, 2}};
  for (const Case& c : cases) {
    const V a = leaf(c.a, 1, {.requires_grad = false}), w = leaf(c.w, 2, {.requires_grad = false});
    const V ya = conv2d(a, w, V(), {.stride = c.s, .padding = c.p, .dilation = c.d});
    const V b = leaf(ya.shape(), 3, {.requires_grad = false});
    // output_padding recovers the rows the conv2d stride dropped.
    const IntPair op{(c.a[2] + 2 * c.p.h - c.d.h * (c.w[2] - 1) - 1) % c.s.h,
                     (c.a[3] + 2 * c.p.w - c.d.w * (c.w[3] - 1) - 1) % c.s.w};
    const V xb =
        conv_transpose2d(b, w, V(), {.stride = c.s, .padding = c.p, .output_padding = op, .dilation = c.d});
    REQUIRE(xb.shape() == c.a);
    const double lhs = dot(ya.value(), b.value()), rhs = dot(a.value(), xb.value());
    REQUIRE(std::abs(lhs - rhs) <= 1e-10 * (1 + std::abs(lhs)));
    REQUIRE(std::abs(lhs) > 1e-3);
  }
}

TEST_CASE("conv ops add the bias per output channel", "[conv]") {
  const V x = leaf({2, 3, 5, 5}, 1, {.requires_grad = false}),
          w = leaf({4, 3, 3, 3}, 2, {.requires_grad = false}), b = leaf({4}, 3, {.requires_grad = false});
  const V wt = leaf({3, 4, 3, 3}, 4, {.requires_grad = false});
  const TD y0 = conv2d(x, w).value(), y1 = conv2d(x, w, b).value();
  const TD t0 = conv_transpose2d(x, wt).value(), t1 = conv_transpose2d(x, wt, b).value();
  for (int64_t n = 0; n < 2; ++n)
    for (int64_t c = 0; c < 4; ++c) {
      REQUIRE(y1.at({n, c, 1, 2}) - y0.at({n, c, 1, 2}) == Approx(b.value().at({c})));
      REQUIRE(t1.at({n, c, 4, 0}) - t0.at({n, c, 4, 0}) == Approx(b.value().at({c})));
    }
}

// A fused relu is relu after the op, bit for bit, in the output and in all three gradients: on every ISA,
// for geometries that take the lanes kernels (which apply bias and relu as they write), their col2im input
// gradient and the per-image GEMM (which apply them in a pass afterwards).
namespace {
struct FusedReluCase {
  const char* name;
  bool transpose;
  Shape x, w;
  IntPair stride, padding, output_padding;
};
const std::vector<FusedReluCase> kFusedReluCases = {
    {"lanes conv 1->8 28x28 s2", false, {20, 1, 28, 28}, {8, 1, 3, 3}, 2, 1, 0},
    {"lanes convT 16->8 7x7 s2", true, {19, 16, 7, 7}, {16, 8, 3, 3}, 2, 1, 1},
    {"col2im convT 32->16 3x3 s2", true, {17, 32, 3, 3}, {32, 16, 3, 3}, 2, 0, 0},
    {"gemm conv 40->24 9x9", false, {3, 40, 9, 9}, {24, 40, 3, 3}, 1, 1, 0},
    {"gemm convT 40->24 5x5 s2", true, {3, 40, 5, 5}, {40, 24, 3, 3}, 2, 1, 1},
};

// y, x.grad, w.grad and b.grad of the case's op on (x, w, b), with the relu fused or applied after it.
std::vector<Tensor<float>> run_relu_case(const FusedReluCase& c, const Tensor<float>& xv,
                                         const Tensor<float>& wv, const Tensor<float>& bv, bool fused) {
  VF x(xv, true), w(wv, true), b(bv, true);
  const ConvActivation a = fused ? ConvActivation::relu : ConvActivation::none;
  VF y = c.transpose ? conv_transpose2d(x, w, b,
                                        {.stride = c.stride,
                                         .padding = c.padding,
                                         .output_padding = c.output_padding,
                                         .activation = a})
                     : conv2d(x, w, b, {.stride = c.stride, .padding = c.padding, .activation = a});
  if (!fused) y = relu(y);
  Generator g_gen(8);
  y.backward(Tensor<float>::rand(y.shape(), g_gen, -1, 1));
  return {y.value(), x.grad(), w.grad(), b.grad()};
}
}  // namespace

TEST_CASE("conv ops with a fused relu equal relu after the op, on every ISA", "[conv][relu]") {
  namespace sk = sumi::kernels;
  using TF = Tensor<float>;
  const auto& cases = kFusedReluCases;
  const sumi::test::IsaGuard restore_isa;
  std::map<std::string, std::vector<TF>> reference;
  for (sk::Isa isa : {sk::Isa::scalar, sk::Isa::avx2, sk::Isa::avx512}) {
    if (!sk::isa_supported(isa)) {
      WARN("skipped: this CPU does not support " << sk::isa_name(isa));
      continue;
    }
    sk::set_isa(isa);
    for (const FusedReluCase& c : cases) {
      INFO(sk::isa_name(isa) << ": " << c.name);
      Generator gen(7);
      const TF xv = TF::rand(c.x, gen, -1, 1), wv = TF::rand(c.w, gen, -0.5, 0.5);
      const TF bv = TF::rand({c.transpose ? c.w[1] : c.w[0]}, gen, -0.5, 0.5);
      const std::vector<TF> fused = run_relu_case(c, xv, wv, bv, true),
                            separate = run_relu_case(c, xv, wv, bv, false);
      int64_t zeros = 0;
      for (int64_t i = 0; i < fused[0].numel(); ++i) zeros += fused[0].data()[i] == 0.0f;
      REQUIRE(zeros > fused[0].numel() / 10);  // the relu cuts something
      REQUIRE(zeros < fused[0].numel() * 9 / 10);
      for (std::size_t k = 0; k < fused.size(); ++k) {
        INFO("tensor " << k << " (y, gx, gw, gb)");
        REQUIRE(fused[k].shape() == separate[k].shape());
        int64_t differ = 0;
        for (int64_t i = 0; i < fused[k].numel(); ++i) differ += fused[k].data()[i] != separate[k].data()[i];
        REQUIRE(differ == 0);
      }
      // and the vectorized paths' bias and relu are the reference kernels' (scalar runs first)
      auto& expected = reference[c.name];
      if (isa == sk::Isa::scalar) expected = fused;
      for (std::size_t k = 0; k < fused.size(); ++k) {
        INFO("tensor " << k << " (y, gx, gw, gb) against the scalar reference");
        double worst = 0;
        for (int64_t i = 0; i < fused[k].numel(); ++i)
          worst = sumi::test::nan_max(worst, double(std::abs(fused[k].data()[i] - expected[k].data()[i])) /
                                                 (1.0 + std::abs(double(expected[k].data()[i]))));
        REQUIRE(worst < 1e-4);
      }
    }
  }
}

// PyTorch's relu lets NaN through (a diverged network's loss must be NaN, not finite); the fused one does
// the same on every ISA, in the output and in the gradients.
TEST_CASE("a fused relu lets NaN through as the relu op does, on every ISA", "[conv][relu]") {
  namespace sk = sumi::kernels;
  using TF = Tensor<float>;
  VF x(TF::from_vector({std::nanf(""), -1.0f, 2.0f}, {3}), true);
  const VF r = relu(x);
  CHECK(std::isnan(r.value().at({0})));
  CHECK(r.value().at({1}) == 0.0f);
  CHECK(r.value().at({2}) == 2.0f);
  sum(r).backward();  // PyTorch's mask is "y <= 0 gives 0": the gradient passes at NaN
  CHECK(x.grad().at({0}) == 1.0f);
  CHECK(x.grad().at({1}) == 0.0f);
  CHECK(x.grad().at({2}) == 1.0f);
  const sumi::test::IsaGuard restore_isa;
  for (sk::Isa isa : {sk::Isa::scalar, sk::Isa::avx2, sk::Isa::avx512}) {
    if (!sk::isa_supported(isa)) continue;
    sk::set_isa(isa);
    for (const FusedReluCase& c : kFusedReluCases) {
      INFO(sk::isa_name(isa) << ": " << c.name);
      Generator gen(7);
      TF xv = TF::rand(c.x, gen, -1, 1);
      const TF wv = TF::rand(c.w, gen, -0.5, 0.5),
               bv = TF::rand({c.transpose ? c.w[1] : c.w[0]}, gen, -0.5, 0.5);
      xv.data()[xv.numel() / 2] = std::nanf("");  // one poisoned input value
      const std::vector<TF> fused = run_relu_case(c, xv, wv, bv, true),
                            separate = run_relu_case(c, xv, wv, bv, false);
      int64_t nan_outputs = 0;
      for (int64_t i = 0; i < fused[0].numel(); ++i) nan_outputs += std::isnan(fused[0].data()[i]);
      CHECK(nan_outputs > 0);
      for (std::size_t k = 0; k < fused.size(); ++k) {
        INFO("tensor " << k << " (y, gx, gw, gb)");
        int64_t differ = 0;
        for (int64_t i = 0; i < fused[k].numel(); ++i) {
          const float f = fused[k].data()[i], s = separate[k].data()[i];
          differ += std::isnan(f) != std::isnan(s) || (!std::isnan(f) && f != s);
        }
        CHECK(differ == 0);
      }
    }
  }
}

TEST_CASE("conv ops with a fused relu match finite differences", "[conv][relu][gradcheck]") {
  for (const bool transpose : {false, true}) {
    INFO((transpose ? "conv_transpose2d" : "conv2d"));
    require_gradcheck(
        [transpose](const std::vector<V>& v) {
          return transpose ? conv_transpose2d(v[0], v[1], v[2],
                                              {.stride = 2,
                                               .padding = 1,
                                               .output_padding = 1,
                                               .activation = ConvActivation::relu})
                           : conv2d(v[0], v[1], v[2],
                                    {.stride = 2, .padding = 1, .activation = ConvActivation::relu});
        },
        {leaf({2, 3, 5, 5}, 21), transpose ? leaf({3, 4, 3, 3}, 22) : leaf({4, 3, 3, 3}, 22), leaf({4}, 23)});
  }
}

TEST_CASE("conv ops compute only the gradients that are required", "[conv]") {
  for (const bool transpose : {false, true}) {
    INFO((transpose ? "conv_transpose2d" : "conv2d"));
    auto run = [transpose](const V& x, const V& w, const V& b) {
      const V y = transpose ? conv_transpose2d(x, w, b, {.stride = 2}) : conv2d(x, w, b, {.stride = 2});
      y.backward(TD::ones(y.shape()));
    };
    const Shape ws = transpose ? Shape{3, 4, 3, 3} : Shape{4, 3, 3, 3};
    {
      V x = leaf({2, 3, 6, 6}, 1), w = leaf(ws, 2, {.requires_grad = false}),
        b = leaf({4}, 3, {.requires_grad = false});
      run(x, w, b);
      REQUIRE(x.grad().defined());
      REQUIRE_FALSE(w.grad().defined());
      REQUIRE_FALSE(b.grad().defined());
    }
    {
      V x = leaf({2, 3, 6, 6}, 1, {.requires_grad = false}), w = leaf(ws, 2),
        b = leaf({4}, 3, {.requires_grad = false});
      run(x, w, b);
      REQUIRE_FALSE(x.grad().defined());
      REQUIRE(w.grad().defined());
      REQUIRE_FALSE(b.grad().defined());
    }
    {
      V x = leaf({2, 3, 6, 6}, 1, {.requires_grad = false}), w = leaf(ws, 2, {.requires_grad = false}),
        b = leaf({4}, 3);
      run(x, w, b);
      REQUIRE_FALSE(x.grad().defined());
      REQUIRE_FALSE(w.grad().defined());
      REQUIRE(b.grad().defined());
      // d(sum y)/d(bias[c]) = number of output positions per channel over the batch.
      const V y = transpose ? conv_transpose2d(x, w, b, {.stride = 2}) : conv2d(x, w, b, {.stride = 2});
      REQUIRE(b.grad().at({1}) == Approx(double(y.size(0) * y.size(2) * y.size(3))));
    }
  }
}

TEST_CASE("conv ops accept non-contiguous inputs", "[conv]") {
  const V xt = leaf({2, 3, 7, 6}, 1, {.requires_grad = false});  // viewed as [2, 3, 6, 7] through a transpose
  const V x_view(xt.value().transpose(2, 3), true), x_copy(xt.value().transpose(2, 3).contiguous(), true);
  REQUIRE_FALSE(x_view.value().is_contiguous());
  const V w = leaf({5, 3, 3, 3}, 2);
  const V wt_base = leaf({3, 5, 3, 3}, 3, {.requires_grad = false});
  const V w_view(wt_base.value().transpose(2, 3), true),
      w_copy(wt_base.value().transpose(2, 3).contiguous(), true);

  const V y_view = conv2d(x_view, w, V(), {.stride = 2, .padding = 1});
  const V y_copy = conv2d(x_copy, w, V(), {.stride = 2, .padding = 1});
  REQUIRE(max_abs_diff(y_view.value(), y_copy.value()) == 0);
  const TD gy_base =
      leaf({2, 5, 4, 3}, 4, {.requires_grad = false}).value();  // non-contiguous upstream gradient too
  REQUIRE_FALSE(gy_base.transpose(2, 3).is_contiguous());
  y_view.backward(gy_base.transpose(2, 3));
  y_copy.backward(gy_base.transpose(2, 3).contiguous());
  REQUIRE(max_abs_diff(x_view.grad(), x_copy.grad()) == 0);

  const V x2 = leaf({2, 3, 4, 5}, 5, {.requires_grad = false});
  const V t_view = conv_transpose2d(x2, w_view, V(), {.stride = 2});
  const V t_copy = conv_transpose2d(x2, w_copy, V(), {.stride = 2});
  REQUIRE(max_abs_diff(t_view.value(), t_copy.value()) == 0);
}

TEST_CASE("conv ops handle an empty batch", "[conv]") {
  V x(TD::zeros({0, 3, 6, 6}), true);
  V w = leaf({4, 3, 3, 3}, 1), b = leaf({4}, 2);
  const V y = conv2d(x, w, b, {.stride = 2, .padding = 1});
  REQUIRE(y.shape() == Shape{0, 4, 3, 3});
  y.backward(TD::zeros(y.shape()));
  REQUIRE(w.grad().shape() == w.shape());
  REQUIRE(w.grad().at({1, 2, 0, 1}) == 0.0);
  REQUIRE(b.grad().at({3}) == 0.0);

  V wt = leaf({3, 4, 3, 3}, 3);
  const V t = conv_transpose2d(x, wt, b, {.stride = 2, .padding = 1, .output_padding = 1});
  REQUIRE(t.shape() == Shape{0, 4, 12, 12});
  t.backward(TD::zeros(t.shape()));
  REQUIRE(wt.grad().at({0, 0, 0, 0}) == 0.0);
}

TEST_CASE("conv2d matches PyTorch on every conv2d fixture case", "[conv][fixture]") {
  check_conv_fixture("conv2d", false, false);
}

TEST_CASE("conv2d matches PyTorch on the DCGAN discriminator layers", "[conv][fixture]") {
  check_conv_fixture("conv2d", false, true);
}

TEST_CASE("conv_transpose2d matches PyTorch on every conv_transpose2d fixture case", "[conv][fixture]") {
  check_conv_fixture("conv_transpose2d", true, false);
}

TEST_CASE("conv_transpose2d matches PyTorch on the DCGAN generator layers", "[conv][fixture]") {
  check_conv_fixture("conv_transpose2d", true, true);
}

TEST_CASE("grouped and depthwise convolutions match PyTorch", "[conv][fixture]") {
  test::Fixture fx("conv_groups");
  const auto conv_cases = fx.meta_json("conv_cases").get<std::vector<std::string>>();
  const auto transpose_cases = fx.meta_json("transpose_cases").get<std::vector<std::string>>();
  REQUIRE(conv_cases.size() == 3);
  REQUIRE(transpose_cases.size() == 2);
  for (const std::string& c : conv_cases) check_conv_case(fx, c, false);
  for (const std::string& c : transpose_cases) check_conv_case(fx, c, true);
}

TEST_CASE("grouped convolution gradients match finite differences", "[conv][gradcheck]") {
  require_gradcheck(
      [](const std::vector<V>& v) {
        return conv2d(v[0], v[1], v[2], {.stride = 2, .padding = 1, .groups = 2});
      },
      {leaf({2, 4, 5, 5}, 61), leaf({6, 2, 3, 3}, 62), leaf({6}, 63)});
  require_gradcheck(
      [](const std::vector<V>& v) {
        return conv_transpose2d(v[0], v[1], v[2], {.stride = 2, .output_padding = 1, .groups = 3});
      },
      {leaf({1, 3, 3, 3}, 64), leaf({3, 2, 3, 3}, 65), leaf({6}, 66)});
  // Groups of a fused relu, as relu after the grouped op.
  V x = leaf({2, 4, 5, 5}, 67), w = leaf({4, 2, 3, 3}, 68);
  const V fused = conv2d(x, w, V(), {.padding = 1, .groups = 2, .activation = ConvActivation::relu});
  const V separate = relu(conv2d(x, w, V(), {.padding = 1, .groups = 2}));
  REQUIRE(max_abs_diff(fused.value(), separate.value()) == 0);
  const V upstream = leaf(fused.shape(), 69, {.requires_grad = false});
  sum(mul(fused, upstream)).backward();
  const TD fused_gx = x.grad(), fused_gw = w.grad();
  x.zero_grad();
  w.zero_grad();
  sum(mul(separate, upstream)).backward();
  REQUIRE(max_abs_diff(fused_gx, x.grad()) == 0);
  REQUIRE(max_abs_diff(fused_gw, w.grad()) == 0);
}

TEST_CASE("conv shape errors name the op and the shapes", "[conv][errors]") {
  const V x(TD::zeros({2, 3, 8, 8})), w_bad(TD::zeros({4, 5, 3, 3})), w(TD::zeros({4, 3, 3, 3}));
  using Catch::Contains;
  REQUIRE_THROWS_AS(conv2d(x, w_bad), std::invalid_argument);
  REQUIRE_THROWS_WITH(conv2d(x, w_bad),
                      Contains("conv2d") && Contains("[2, 3, 8, 8]") && Contains("[4, 5, 3, 3]"));
  REQUIRE_THROWS_AS(conv2d(V(TD::zeros({3, 8, 8})), w), std::invalid_argument);
  REQUIRE_THROWS_WITH(conv2d(V(TD::zeros({3, 8, 8})), w), Contains("conv2d") && Contains("[3, 8, 8]"));
  REQUIRE_THROWS_WITH(conv2d(x, V(TD::zeros({4, 3, 3}))),
                      Contains("conv2d") && Contains("weight") && Contains("[4, 3, 3]"));
  REQUIRE_THROWS_AS(conv2d(x, w, V(TD::zeros({5}))), std::invalid_argument);
  REQUIRE_THROWS_WITH(conv2d(x, w, V(TD::zeros({5}))),
                      Contains("conv2d") && Contains("bias") && Contains("[5]") && Contains("[4, 3, 3, 3]"));
  REQUIRE_THROWS_WITH(conv2d(V(TD::zeros({1, 3, 2, 2})), w),
                      Contains("conv2d") && Contains("[1, 3, 2, 2]") && Contains("[4, 3, 3, 3]"));
  REQUIRE_THROWS_WITH(conv2d(x, w, V(), {.stride = 0}), Contains("conv2d") && Contains("stride (0, 0)"));
  REQUIRE_THROWS_WITH(conv2d(x, w, V(), {.padding = {0, -1}}),
                      Contains("conv2d") && Contains("padding (0, -1)"));
  REQUIRE_THROWS_WITH(conv2d(x, w, V(), {.dilation = 0}), Contains("conv2d") && Contains("dilation (0, 0)"));
  // Groups: positive, dividing the channels; an error inside one group names the whole operands too.
  REQUIRE_THROWS_WITH(conv2d(x, w, V(), {.groups = 0}), Contains("conv2d") && Contains("groups 0"));
  REQUIRE_THROWS_WITH(
      conv2d(V(TD::zeros({2, 4, 8, 8})), V(TD::zeros({3, 2, 3, 3})), V(), {.groups = 2}),
      Contains("conv2d") && Contains("[3, 2, 3, 3]") && Contains("not a multiple of groups 2"));
  REQUIRE_THROWS_WITH(conv2d(x, V(TD::zeros({4, 1, 3, 3})), V(), {.groups = 2}),
                      Contains("the input has 3 channels but the weight expects 2 (2 groups)"));
  REQUIRE_THROWS_WITH(conv2d(V(TD::zeros({1, 4, 2, 2})), V(TD::zeros({4, 2, 3, 3})), V(), {.groups = 2}),
                      Contains("smaller than the dilated kernel") && Contains("group 0 of 2") &&
                          Contains("[1, 4, 2, 2]") && Contains("[4, 2, 3, 3]"));
  REQUIRE_THROWS_WITH(
      conv_transpose2d(V(TD::zeros({1, 3, 4, 4})), V(TD::zeros({3, 2, 3, 3})), V(), {.groups = 2}),
      Contains("conv_transpose2d") && Contains("not a multiple of groups 2"));
  REQUIRE_THROWS_WITH(
      conv_transpose2d(V(TD::zeros({1, 4, 4, 4})), V(TD::zeros({4, 2, 3, 3})), V(TD::zeros({2})),
                       {.groups = 2}),
      Contains("conv_transpose2d") && Contains("bias of shape [2]") && Contains("4 output channels"));
  // Sizes whose output-size arithmetic would overflow int64.
  const int64_t huge = int64_t(1) << 62;
  REQUIRE_THROWS_WITH(conv2d(x, w, V(), {.padding = huge}), Contains("conv2d") && Contains("padding"));
  REQUIRE_THROWS_WITH(conv2d(x, w, V(), {.dilation = {1, huge}}),
                      Contains("dilation (1, " + std::to_string(huge)));
  REQUIRE_THROWS_WITH(conv_transpose2d(x, V(TD::zeros({3, 4, 3, 3})), V(), {.stride = huge}),
                      Contains("conv_transpose2d") && Contains("stride"));
  // An empty batch allocates nothing, so its spatial sizes are bounded separately.
  REQUIRE_THROWS_WITH(conv_transpose2d(V(TD::zeros({0, 3, int64_t(1) << 40, 1})), V(TD::zeros({3, 4, 3, 3})),
                                       V(), {.stride = 2}),
                      Contains("conv_transpose2d") && Contains("spatial size"));

  const V wt(TD::zeros({3, 4, 3, 3})), wt_bad(TD::zeros({5, 4, 3, 3}));
  REQUIRE_THROWS_AS(conv_transpose2d(x, wt_bad), std::invalid_argument);
  REQUIRE_THROWS_WITH(conv_transpose2d(x, wt_bad),
                      Contains("conv_transpose2d") && Contains("[2, 3, 8, 8]") && Contains("[5, 4, 3, 3]"));
  REQUIRE_THROWS_WITH(conv_transpose2d(V(TD::zeros({2, 3, 8})), wt),
                      Contains("conv_transpose2d") && Contains("[2, 3, 8]"));
  REQUIRE_THROWS_WITH(conv_transpose2d(x, wt, V(TD::zeros({3}))), Contains("conv_transpose2d") &&
                                                                      Contains("bias") && Contains("[3]") &&
                                                                      Contains("[3, 4, 3, 3]"));
  // output_padding must be smaller than the stride or the dilation.
  REQUIRE_THROWS_AS(conv_transpose2d(x, wt, V(), {.stride = 2, .output_padding = 2}), std::invalid_argument);
  REQUIRE_THROWS_WITH(conv_transpose2d(x, wt, V(), {.stride = 2, .output_padding = 2}),
                      Contains("conv_transpose2d") && Contains("output_padding (2, 2)") &&
                          Contains("stride (2, 2)") && Contains("[2, 3, 8, 8]") && Contains("[3, 4, 3, 3]"));
  REQUIRE_THROWS_WITH(conv_transpose2d(x, wt, V(), {.output_padding = {0, 1}}),
                      Contains("output_padding (0, 1)"));
  REQUIRE_THROWS_WITH(conv_transpose2d(x, wt, V(), {.stride = 2, .output_padding = -1}),
                      Contains("output_padding"));
  REQUIRE_NOTHROW(conv_transpose2d(x, wt, V(), {.stride = 1, .output_padding = 1, .dilation = 2}));
  REQUIRE_NOTHROW(conv_transpose2d(x, wt, V(), {.stride = 3, .output_padding = 2}));
  // A padding that leaves no output.
  REQUIRE_THROWS_WITH(conv_transpose2d(V(TD::zeros({1, 3, 1, 1})), wt, V(), {.padding = 2}),
                      Contains("conv_transpose2d") && Contains("[1, 3, 1, 1]") && Contains("output size"));
}
