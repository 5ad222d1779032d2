#include <catch2/catch.hpp>

#include <algorithm>
#include <cmath>
#include <limits>
#include <string>
#include <utility>
#include <vector>

#include "fixture.hpp"
#include "gradcheck_helpers.hpp"
#include "max_error.hpp"
#include "norm_checks.hpp"
#include "sumi/nn/layer_norm.hpp"
#include "sumi/ops/layer_norm.hpp"
#include "sumi/ops/reduction.hpp"
#include "sumi/ops/shape_ops.hpp"

using namespace sumi;
using sumi::test::leaf;
using sumi::test::require_gradcheck;
using V = Variable<double>;
using TD = Tensor<double>;
using VF = Variable<float>;
using TF = Tensor<float>;

namespace {

// The op computes in double from the same float inputs as the reference, so only the final rounding to
// float differs: each element within kRtol of itself, plus a floor of kLargestFraction of the largest (the
// small gradients of a row are held to their own size next to the large ones of a constant row).
constexpr double kRtol = 1e-5, kLargestFraction = 1e-6;

}  // namespace

// ---- layer_norm ------------------------------------------------------------------------------------------

TEST_CASE("layer_norm matches PyTorch (layer_norm fixture)", "[layer_norm][fixture]") {
  test::Fixture fx("layer_norm");
  const auto cases = fx.meta_json("cases").get<std::vector<std::string>>();
  REQUIRE(cases.size() == 7);
  for (const std::string& c : cases) {
    INFO("case " << c);
    const auto in = test::norm_inputs<float>(fx, c);
    const Shape normalized = in.config.at("normalized_shape").get<Shape>();
    const float eps = in.config.at("eps").get<float>();
    const VF y = layer_norm(in.x, normalized, in.weight, in.bias, eps);
    fx.require_close(c + ".y", y.value());
    test::require_norm_case(fx, c, y, in, kRtol, kLargestFraction);
  }
}

TEST_CASE("layer_norm gradients match finite differences", "[layer_norm][gradcheck]") {
  // {input shape, normalized_shape}; [3, 2, 150] has 300 values per row, more than one block of the weight
  // and bias gradient sums.
  const std::vector<std::pair<Shape, Shape>> cases = {{{4, 5}, {5}},          {{2, 3, 4}, {3, 4}},
                                                      {{2, 3, 2, 3}, {2, 3}}, {{7}, {7}},
                                                      {{3, 1, 6}, {1, 6}},    {{3, 2, 150}, {2, 150}}};
  for (const auto& [shape, normalized] : cases) {
    INFO("input shape " << shape_str(shape) << ", normalized_shape " << shape_str(normalized));
    // Weight and bias away from 1 and 0, so that wrong terms do not cancel.
    auto x = [shape = shape](bool rg) { return leaf(shape, 1, {-2, 3, rg}); };
    auto w = [normalized = normalized](bool rg) { return leaf(normalized, 2, {0.5, 2, rg}); };
    auto b = [normalized = normalized](bool rg) { return leaf(normalized, 3, {.requires_grad = rg}); };
    test::require_norm_gradchecks(
        [normalized = normalized](const V& in, const V& weight, const V& bias) {
          return layer_norm(in, normalized, weight, bias);
        },
        x, w, b);
  }
}

TEST_CASE("layer_norm gradients of non-contiguous inputs and at constant rows", "[layer_norm][gradcheck]") {
  // A transposed input (the op reads it through a contiguous copy) and a transposed weight.
  require_gradcheck(
      [](const std::vector<V>& v) {
        return layer_norm(transpose(v[0], 1, 2), {4, 5}, transpose(v[1], 0, 1), v[2]);
      },
      {leaf({3, 5, 4}, 4, {-2, 3}), leaf({5, 4}, 5, {0.5, 2}), leaf({4, 5}, 6)});
  require_gradcheck(
      [](const std::vector<V>& v) {
        return layer_norm(transpose(v[0], 1, 2), {2, 3}, v[1], v[2], 0.01);
      },
      {leaf({2, 3, 2}, 7, {-2, 3}), leaf({2, 3}, 8, {0.5, 2}), leaf({2, 3}, 9)});
  // Rows of variance 0: smooth there when eps > 0 (a large eps keeps the finite differences accurate).
  TD constant = TD::full({3, 4}, 1.5);
  for (int64_t j = 0; j < 4; ++j) constant.at({1, j}) = 0.25 * double(j);  // one row that varies
  require_gradcheck([](const std::vector<V>& v) { return layer_norm(v[0], {4}, v[1], v[2], 0.5); },
                    {V(constant, true), leaf({4}, 10, {0.5, 2}), leaf({4}, 11)});
}

TEST_CASE("layer_norm normalises each row of the trailing dimensions", "[layer_norm]") {
  // Row [1, 2, 3, 4]: mean 2.5, biased variance 1.25; row [0, 0, 0, 8]: mean 2, variance 12.
  const V x(TD::from_vector({1, 2, 3, 4, 0, 0, 0, 8}, {2, 4}));
  const V w(TD::from_vector({2, -1, 0.5, 1}, {4})), b(TD::from_vector({0.5, 3, 0, -1}, {4}));
  const double eps = 1e-3;
  const TD y = layer_norm(x, {4}, w, b, eps).value();
  REQUIRE(y.at({0, 0}) == Approx(-1.5 / std::sqrt(1.25 + eps) * 2 + 0.5));
  REQUIRE(y.at({0, 1}) == Approx(-0.5 / std::sqrt(1.25 + eps) * -1 + 3));
  REQUIRE(y.at({1, 2}) == Approx(-2 / std::sqrt(12 + eps) * 0.5));
  REQUIRE(y.at({1, 3}) == Approx(6 / std::sqrt(12 + eps) - 1));

  // Over [C, H, W] of a 4-d input, without affine: mean 0 and variance var / (var + eps) per sample.
  const TD y4 = layer_norm(leaf({3, 4, 5, 6}, 5, {-3, 7, false}), {4, 5, 6}).value();
  for (int64_t n = 0; n < 3; ++n) {
    double s = 0, s2 = 0;
    for (int64_t i = 0; i < 120; ++i) {
      const double v = y4.data()[n * 120 + i];
      s += v;
      s2 += v * v;
    }
    REQUIRE(std::abs(s / 120) < 1e-12);
    REQUIRE(s2 / 120 == Approx(1).epsilon(1e-5));  // the values' variance is about 8, so eps costs 1e-6
  }
}

TEST_CASE("layer_norm of constant rows gives the bias and PyTorch's gradients", "[layer_norm]") {
  // The values torch 1.13 gives for x = 3 everywhere, w = [1, 2, 3, 4], b = [0.1, 0.2, 0.3, 0.4] and
  // upstream gradient [[0, 1, 2, 3], [4, 5, 6, 7]].
  const TD g = TD::from_vector({0, 1, 2, 3, 4, 5, 6, 7}, {2, 4});
  V x(TD::full({2, 4}, 3.0), true), w(TD::from_vector({1, 2, 3, 4}, {4}), true),
      b(TD::from_vector({0.1, 0.2, 0.3, 0.4}, {4}), true);
  const V y = layer_norm(x, {4}, w, b);
  for (int64_t r = 0; r < 2; ++r)
    for (int64_t j = 0; j < 4; ++j) REQUIRE(y.value().at({r, j}) == b.value().at({j}));
  y.backward(g);
  const std::vector<double> gx = {-1581.1388, -948.6833,  316.2278, 2213.5944,
                                  -3478.5054, -1581.1388, 948.6833, 4110.9610};
  for (int64_t i = 0; i < 8; ++i) REQUIRE(x.grad().data()[i] == Approx(gx[std::size_t(i)]).epsilon(1e-6));
  for (int64_t j = 0; j < 4; ++j) {
    REQUIRE(w.grad().at({j}) == 0.0);
    REQUIRE(b.grad().at({j}) == 4.0 + 2.0 * double(j));
  }

  // eps = 0 divides by a zero deviation: NaN outputs, input and weight gradients, as torch; the bias
  // gradient is still the sum of the upstream gradient.
  x.zero_grad();
  w.zero_grad();
  b.zero_grad();
  const V y0 = layer_norm(x, {4}, w, b, 0.0);
  y0.backward(g);
  for (int64_t i = 0; i < 8; ++i) {
    REQUIRE(std::isnan(y0.value().data()[i]));
    REQUIRE(std::isnan(x.grad().data()[i]));
  }
  for (int64_t j = 0; j < 4; ++j) {
    REQUIRE(std::isnan(w.grad().at({j})));
    REQUIRE(b.grad().at({j}) == 4.0 + 2.0 * double(j));
  }
}

TEST_CASE("layer_norm in float stays accurate for a mean far from zero", "[layer_norm]") {
  // Values 1e4 + [-0.1, 0.1]: a one-pass float variance would be dominated by rounding. 4800 values per row
  // (19 column blocks) and enough values for the parallel loops.
  Generator gen(3);
  TF xf = TF::rand({8, 3, 40, 40}, gen, -0.1f, 0.1f);
  for (int64_t i = 0; i < xf.numel(); ++i) xf.data()[i] += 1e4f;
  const Shape normalized = {3, 40, 40};
  const TF wf = TF::rand(normalized, gen, 0.5f, 2), bf = TF::rand(normalized, gen, -1, 1);
  const TF gyf = TF::rand(xf.shape(), gen, -1, 1);

  const auto diff = test::float_vs_double(
      [&](const auto& x, const auto& w, const auto& b) { return layer_norm(x, normalized, w, b); }, xf, wf,
      bf, gyf);
  REQUIRE(diff.y < 1e-5);
  REQUIRE(diff.gx < 1e-4);
  REQUIRE(diff.gw < 1e-4);
  REQUIRE(diff.gb < 1e-4);
  // The double results themselves: each row has mean 0 before the affine step.
  const TD xhat = layer_norm(V(xf.to<double>()), normalized).value();
  for (int64_t n = 0; n < 8; ++n) {
    double s = 0;
    for (int64_t i = 0; i < 4800; ++i) s += xhat.data()[n * 4800 + i];
    REQUIRE(std::abs(s / 4800) < 1e-10);
  }
}

TEST_CASE("layer_norm of an empty batch is empty with zero weight and bias gradients", "[layer_norm]") {
  // As torch: an empty output and gradients of zeros for weight and bias.
  V x(TD::zeros({0, 3}), true), w(TD::ones({3}), true), b(TD::zeros({3}), true);
  const V y = layer_norm(x, {3}, w, b);
  REQUIRE(y.shape() == Shape{0, 3});
  sum(y).backward();
  REQUIRE(x.grad().shape() == Shape{0, 3});
  REQUIRE(w.grad().shape() == Shape{3});
  for (int64_t j = 0; j < 3; ++j) {
    REQUIRE(w.grad().at({j}) == 0.0);
    REQUIRE(b.grad().at({j}) == 0.0);
  }
  // Rows of no values: an empty output too.
  V xe(TD::zeros({2, 0}), true), we(TD::ones({0}), true);
  const V ye = layer_norm(xe, {0}, we, V());
  REQUIRE(ye.shape() == Shape{2, 0});
  sum(ye).backward();
  REQUIRE(we.grad().shape() == Shape{0});
}

TEST_CASE("layer_norm errors name the op and the shapes", "[layer_norm][errors]") {
  using Catch::Contains;
  const V x(TD::zeros({2, 4})), w3(TD::ones({3})), w4(TD::ones({4})), b41(TD::zeros({4, 1}));
  REQUIRE_THROWS_AS(layer_norm(x, {3}), std::invalid_argument);
  REQUIRE_THROWS_WITH(layer_norm(x, {3}), Contains("layer_norm: normalized_shape [3] does not match") &&
                                              Contains("input of shape [2, 4]") && Contains("[*, 3]"));
  REQUIRE_THROWS_WITH(layer_norm(V(TD::zeros({4})), {2, 4}),
                      Contains("layer_norm") && Contains("[2, 4]") && Contains("input of shape [4]"));
  REQUIRE_THROWS_WITH(layer_norm(x, {}), Contains("layer_norm") && Contains("at least one dimension") &&
                                             Contains("[]") && Contains("[2, 4]"));
  REQUIRE_THROWS_WITH(layer_norm(x, {4}, w3, V()), Contains("layer_norm: weight of shape [3]") &&
                                                       Contains("normalized_shape [4]") &&
                                                       Contains("[2, 4]"));
  REQUIRE_THROWS_WITH(layer_norm(x, {4}, w4, b41),
                      Contains("layer_norm: bias of shape [4, 1]") && Contains("normalized_shape [4]"));
  REQUIRE_THROWS_WITH(layer_norm(x, {4}, -1.0),
                      Contains("layer_norm: eps -1 must be >= 0") && Contains("[2, 4]"));
  REQUIRE_THROWS_WITH(layer_norm(x, {4}, w4, V(), std::numeric_limits<double>::quiet_NaN()),
                      Contains("layer_norm: eps nan must be >= 0"));
  REQUIRE_THROWS_WITH(layer_norm(V(), {4}), Contains("layer_norm") && Contains("undefined"));
  REQUIRE_NOTHROW(layer_norm(x, {4}, w4, V(), 0.0));

  using nn::LayerNorm;
  REQUIRE_THROWS_WITH(LayerNorm<float>(Shape{}), Contains("LayerNorm") && Contains("at least one dimension"));
  REQUIRE_THROWS_WITH(LayerNorm<float>(Shape{3, -1}), Contains("LayerNorm") && Contains("[3, -1]"));
  REQUIRE_THROWS_WITH(LayerNorm<float>(4, -0.5), Contains("LayerNorm: eps -0.5 must be >= 0"));
  LayerNorm<float> ln({3, 4});
  REQUIRE_THROWS_WITH(ln(VF(TF::zeros({2, 4, 3}))),
                      Contains("normalized_shape [3, 4]") && Contains("input of shape [2, 4, 3]"));
}

// ---- nn::LayerNorm ---------------------------------------------------------------------------------------

TEST_CASE("LayerNorm has torch's parameters, state dict and repr", "[layer_norm][nn]") {
  nn::LayerNorm<float> ln({3, 4});
  REQUIRE(ln.normalized_shape == Shape{3, 4});
  test::require_norm_parameters(ln, true, {3, 4});
  // As torch 1.13 prints them.
  REQUIRE(nn::LayerNorm<float>(8).repr() == "LayerNorm((8,), eps=1e-05, elementwise_affine=True)");
  REQUIRE(ln.repr() == "LayerNorm((3, 4), eps=1e-05, elementwise_affine=True)");
  REQUIRE(nn::LayerNorm<double>({3, 4}, 1e-3, false).repr() ==
          "LayerNorm((3, 4), eps=0.001, elementwise_affine=False)");
  REQUIRE(nn::LayerNorm<float>({2, 3}, 0.1).repr() == "LayerNorm((2, 3), eps=0.1, elementwise_affine=True)");

  nn::LayerNorm<float> plain(5, 1e-5, false);
  test::require_norm_parameters(plain, false, {5});

  // A state with torch's keys loads.
  nn::StateDict<float> state;
  state.insert("weight", TF::full({3, 4}, 2.0f));
  state.insert("bias", TF::full({3, 4}, -1.0f));
  ln.load_state_dict(state);
  REQUIRE(ln.weight.value().at({2, 3}) == 2.0f);
  REQUIRE(ln.bias.value().at({0, 1}) == -1.0f);
}

TEST_CASE("LayerNorm forward is layer_norm with its parameters and trains them", "[layer_norm][nn]") {
  nn::LayerNorm<double> ln({2, 3}, 1e-2);
  ln.weight.value() = leaf({2, 3}, 12, {0.5, 2, false}).value();
  ln.bias.value() = leaf({2, 3}, 13).value();
  const V x = leaf({4, 2, 3}, 14, {-2, 3});
  const V y = ln(x);
  const V expected = layer_norm(x, {2, 3}, ln.weight, ln.bias, 1e-2);
  REQUIRE(y.shape() == Shape{4, 2, 3});
  for (int64_t i = 0; i < y.numel(); ++i) REQUIRE(y.value().data()[i] == expected.value().data()[i]);
  // A default eps differs from this one's: the module passes its own.
  const V other = layer_norm(x, {2, 3}, ln.weight, ln.bias);
  REQUIRE(std::abs(other.value().data()[0] - y.value().data()[0]) > 1e-6);

  sum(y).backward();
  REQUIRE(ln.weight.grad().shape() == Shape{2, 3});
  REQUIRE(ln.bias.grad().shape() == Shape{2, 3});
  for (int64_t j = 0; j < 6; ++j) REQUIRE(ln.bias.grad().data()[j] == Approx(4.0));

  // One size normalises the last dimension, as a one-element shape.
  nn::LayerNorm<double> last(3), last_shape(Shape{3});
  const TD a = last(x).value(), c = last_shape(x).value();
  REQUIRE(last.normalized_shape == Shape{3});
  for (int64_t i = 0; i < a.numel(); ++i) REQUIRE(a.data()[i] == c.data()[i]);
  const TD row = layer_norm(V(x.value()), {3}).value();
  for (int64_t i = 0; i < a.numel(); ++i) REQUIRE(a.data()[i] == row.data()[i]);
}
