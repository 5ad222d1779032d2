#include <catch2/catch.hpp>

#include <cmath>
#include <cstdint>
#include <limits>
#include <string>
#include <type_traits>
#include <utility>
#include <vector>

#include "fixture.hpp"
#include "gradcheck_helpers.hpp"
#include "max_error.hpp"
#include "norm_checks.hpp"
#include "sumi/nn/group_norm.hpp"
#include "sumi/ops/group_norm.hpp"
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

template <class T>
void require_equal(const Tensor<T>& a, const Tensor<T>& b) {
  REQUIRE(a.shape() == b.shape());
  const Tensor<T> ac = a.contiguous(), bc = b.contiguous();
  for (int64_t i = 0; i < ac.numel(); ++i) {
    INFO("flat index " << i);
    REQUIRE(ac.data()[i] == bc.data()[i]);
  }
}

// Every case of the fixture in T. The op computes in double from the same float inputs as the reference:
// in float only the final rounding differs (each element within rtol of itself, plus a floor of
// largest_fraction of the largest, as the layer_norm tests); in double, only the rounding of the stored
// expected values to float.
template <class T>
void check_group_norm_fixture(double rtol, double largest_fraction) {
  test::Fixture fx("group_norm");
  const auto cases = fx.meta_json("cases").get<std::vector<std::string>>();
  REQUIRE(cases.size() == 8);
  for (const std::string& c : cases) {
    INFO("case " << c);
    const auto in = test::norm_inputs<T>(fx, c);
    const auto groups = in.config.at("num_groups").template get<int64_t>();
    const auto eps = in.config.at("eps").template get<T>();
    test::require_norm_case(fx, c, group_norm(in.x, groups, in.weight, in.bias, eps), in, rtol,
                            largest_fraction);
  }
}

}  // namespace

// ---- group_norm ------------------------------------------------------------------------------------------

TEST_CASE("group_norm matches PyTorch in float (group_norm fixture)", "[group_norm][fixture]") {
  check_group_norm_fixture<float>(1e-5, 1e-6);
}

TEST_CASE("group_norm matches PyTorch in double (group_norm fixture)", "[group_norm][fixture]") {
  check_group_norm_fixture<double>(1e-7, 1e-9);
}

TEST_CASE("group_norm gradients match finite differences", "[group_norm][gradcheck]") {
  // {input shape, num_groups}: several channels per group, one group, one channel per group, [N, C] and
  // [N, C, L] inputs.
  const std::vector<std::pair<Shape, int64_t>> cases = {
      {{2, 6, 3, 2}, 2}, {{2, 4, 3}, 1}, {{3, 3, 2, 2}, 3}, {{4, 6}, 3}, {{2, 4, 5}, 2}};
  for (const auto& [shape, groups] : cases) {
    INFO("input shape " << shape_str(shape) << ", num_groups " << groups);
    const Shape cs{shape[1]};
    // Weight and bias away from 1 and 0, so that wrong terms do not cancel.
    auto x = [shape = shape](bool rg) { return leaf(shape, 1, {-2, 3, rg}); };
    auto w = [cs](bool rg) { return leaf(cs, 2, {0.5, 2, rg}); };
    auto b = [cs](bool rg) { return leaf(cs, 3, {.requires_grad = rg}); };
    test::require_norm_gradchecks(
        [groups = groups](const V& in, const V& weight, const V& bias) {
          return group_norm(in, groups, weight, bias);
        },
        x, w, b);
  }
}

TEST_CASE("group_norm gradients of non-contiguous inputs and at constant groups", "[group_norm][gradcheck]") {
  // A transposed input and weight (the op reads them through contiguous copies).
  require_gradcheck(
      [](const std::vector<V>& v) {
        return group_norm(transpose(v[0], 1, 2), 2, reshape(transpose(v[1], 0, 1), {4}), v[2]);
      },
      {leaf({2, 3, 4}, 4, {-2, 3}), leaf({2, 2}, 5, {0.5, 2}), leaf({4}, 6)});
  // Groups of variance 0: smooth there when eps > 0 (a large eps keeps the finite differences accurate).
  TD constant = TD::full({2, 4, 3}, 1.5);
  for (int64_t i = 0; i < 3; ++i) constant.at({1, 2, i}) = 0.25 * double(i);  // one group that varies
  require_gradcheck([](const std::vector<V>& v) { return group_norm(v[0], 2, v[1], v[2], 0.5); },
                    {V(constant, true), leaf({4}, 7, {0.5, 2}), leaf({4}, 8)});
}

TEST_CASE("group_norm normalises each group of each sample", "[group_norm]") {
  // Sample 0: group 0 = channels {0, 1} = [1, 2 | 3, 4], mean 2.5, variance 1.25; group 1 = [0, 0 | 0, 8],
  // mean 2, variance 12.
  const V x(TD::from_vector({1, 2, 3, 4, 0, 0, 0, 8}, {1, 4, 2}));
  const V w(TD::from_vector({2, -1, 0.5, 1}, {4})), b(TD::from_vector({0.5, 3, 0, -1}, {4}));
  const double eps = 1e-3;
  const TD y = group_norm(x, 2, w, b, eps).value();
  REQUIRE(y.at({0, 0, 0}) == Approx(-1.5 / std::sqrt(1.25 + eps) * 2 + 0.5));
  REQUIRE(y.at({0, 0, 1}) == Approx(-0.5 / std::sqrt(1.25 + eps) * 2 + 0.5));
  REQUIRE(y.at({0, 1, 0}) == Approx(0.5 / std::sqrt(1.25 + eps) * -1 + 3));
  REQUIRE(y.at({0, 2, 1}) == Approx(-2 / std::sqrt(12 + eps) * 0.5));
  REQUIRE(y.at({0, 3, 1}) == Approx(6 / std::sqrt(12 + eps) - 1));

  // One group is layer_norm over [C, *]; C groups normalise each channel on its own.
  const V x4 = leaf({3, 4, 5, 6}, 9, {-3, 7, false});
  require_equal(group_norm(x4, 1).value(), layer_norm(x4, {4, 5, 6}).value());
  const TD inst = group_norm(x4, 4).value();
  for (int64_t n = 0; n < 3; ++n)
    for (int64_t c = 0; c < 4; ++c) {
      double s = 0, s2 = 0;
      for (int64_t i = 0; i < 30; ++i) {
        const double v = inst.data()[(n * 4 + c) * 30 + i];
        s += v;
        s2 += v * v;
      }
      REQUIRE(std::abs(s / 30) < 1e-12);
      REQUIRE(s2 / 30 == Approx(1).epsilon(1e-4));
    }
}

TEST_CASE("group_norm of a constant group gives the bias; eps = 0 gives NaN as PyTorch", "[group_norm]") {
  V x(TD::full({1, 4, 3}, 2.0), true), w(TD::from_vector({1, 2, 3, 4}, {4}), true),
      b(TD::from_vector({0.1, 0.2, 0.3, 0.4}, {4}), true);
  const V y = group_norm(x, 2, w, b);
  for (int64_t c = 0; c < 4; ++c)
    for (int64_t i = 0; i < 3; ++i) REQUIRE(y.value().at({0, c, i}) == b.value().at({c}));
  sum(y).backward();
  for (int64_t c = 0; c < 4; ++c) {
    REQUIRE(w.grad().at({c}) == 0.0);
    REQUIRE(b.grad().at({c}) == 3.0);
  }
  const V y0 = group_norm(V(x.value()), 2, w, b, 0.0);
  for (int64_t i = 0; i < 12; ++i) REQUIRE(std::isnan(y0.value().data()[i]));
}

TEST_CASE("group_norm in float stays accurate for a mean far from zero, in the parallel loops",
          "[group_norm]") {
  // Values 1e4 + [-0.1, 0.1]; 8 x 32 x 16 x 16 values, enough for the parallel loops.
  Generator gen(3);
  TF xf = TF::rand({8, 32, 16, 16}, gen, -0.1f, 0.1f);
  for (int64_t i = 0; i < xf.numel(); ++i) xf.data()[i] += 1e4f;
  const TF wf = TF::rand({32}, gen, 0.5f, 2), bf = TF::rand({32}, gen, -1, 1);
  const TF gyf = TF::rand(xf.shape(), gen, -1, 1);

  const auto diff = test::float_vs_double(
      [](const auto& x, const auto& w, const auto& b) { return group_norm(x, 4, w, b); }, xf, wf, bf, gyf);
  // Only the final rounding to float differs: outputs of order 1, gradient sums over 2048 values per group.
  REQUIRE(diff.y < 1e-6);
  REQUIRE(diff.gx < 2e-5);
  REQUIRE(diff.gw < 2e-5);
  REQUIRE(diff.gb < 2e-5);
  // The double results themselves: each group has mean 0 before the affine step.
  const TD xhat = group_norm(V(xf.to<double>()), 4).value();
  for (int64_t r = 0; r < 32; ++r) {
    double s = 0;
    for (int64_t i = 0; i < 2048; ++i) s += xhat.data()[r * 2048 + i];
    REQUIRE(std::abs(s / 2048) < 1e-10);
  }
}

TEST_CASE("group_norm of an empty batch is empty with zero weight and bias gradients", "[group_norm]") {
  V x(TD::zeros({0, 4, 3}), true), w(TD::ones({4}), true), b(TD::zeros({4}), true);
  const V y = group_norm(x, 2, w, b);
  REQUIRE(y.shape() == Shape{0, 4, 3});
  sum(y).backward();
  REQUIRE(x.grad().shape() == Shape{0, 4, 3});
  for (int64_t c = 0; c < 4; ++c) {
    REQUIRE(w.grad().at({c}) == 0.0);
    REQUIRE(b.grad().at({c}) == 0.0);
  }
}

TEST_CASE("group_norm errors name the op, the values and the shapes", "[group_norm][errors]") {
  using Catch::Contains;
  const V x(TD::zeros({2, 6, 3})), w4(TD::ones({4})), b61(TD::zeros({6, 1}));
  REQUIRE_THROWS_AS(group_norm(x, 4), std::invalid_argument);
  REQUIRE_THROWS_WITH(group_norm(x, 4), Contains("group_norm: num_groups 4 does not divide the 6 channels") &&
                                            Contains("[2, 6, 3]"));
  REQUIRE_THROWS_WITH(group_norm(x, 0),
                      Contains("group_norm: num_groups must be positive, got 0") && Contains("[2, 6, 3]"));
  REQUIRE_THROWS_WITH(group_norm(x, -2), Contains("got -2"));
  REQUIRE_THROWS_WITH(group_norm(V(TD::zeros({6})), 2),
                      Contains("group_norm") && Contains("[N, C, *]") && Contains("shape [6]"));
  REQUIRE_THROWS_WITH(group_norm(x, 2, w4, V()), Contains("group_norm: weight of shape [4]") &&
                                                     Contains("6 channels") && Contains("[2, 6, 3]"));
  REQUIRE_THROWS_WITH(group_norm(x, 2, V(), b61), Contains("group_norm: bias of shape [6, 1]"));
  REQUIRE_THROWS_WITH(group_norm(x, 2, -1.0),
                      Contains("group_norm: eps -1 must be >= 0") && Contains("[2, 6, 3]"));
  REQUIRE_THROWS_WITH(group_norm(x, 2, std::numeric_limits<double>::quiet_NaN()),
                      Contains("group_norm: eps nan must be >= 0"));
  REQUIRE_THROWS_WITH(group_norm(V(), 2), Contains("group_norm") && Contains("undefined"));
  REQUIRE_NOTHROW(group_norm(x, 3, 0.0));
}

// ---- nn::GroupNorm and nn::InstanceNorm2d ----------------------------------------------------------------

TEST_CASE("GroupNorm has torch's parameters, state dict and repr", "[group_norm][nn]") {
  nn::GroupNorm<float> gn(2, 6);
  test::require_norm_parameters(gn, true, {6});
  // As torch 1.13 prints them.
  REQUIRE(gn.repr() == "GroupNorm(2, 6, eps=1e-05, affine=True)");
  REQUIRE(nn::GroupNorm<double>(3, 12, 1e-3, false).repr() == "GroupNorm(3, 12, eps=0.001, affine=False)");

  nn::GroupNorm<float> plain(2, 6, 1e-5, false);
  test::require_norm_parameters(plain, false, {6});

  // A state with torch's keys loads; a module's own state round-trips into another.
  nn::StateDict<float> state;
  state.insert("weight", TF::from_vector({1, 2, 3, 4, 5, 6}, {6}));
  state.insert("bias", TF::full({6}, -1.0f));
  gn.load_state_dict(state);
  REQUIRE(gn.weight.value().at({2}) == 3.0f);
  REQUIRE(gn.bias.value().at({5}) == -1.0f);
  nn::GroupNorm<float> copy(2, 6);
  copy.load_state_dict(gn.state_dict());
  require_equal(copy.weight.value(), gn.weight.value());
  require_equal(copy.bias.value(), gn.bias.value());
  Generator gen(5);
  const VF x(TF::rand({2, 6, 3}, gen, -1, 1));
  require_equal(copy(x).value(), gn(x).value());
}

TEST_CASE("GroupNorm forward is group_norm with its parameters and trains them", "[group_norm][nn]") {
  nn::GroupNorm<double> gn(3, 6, 1e-2);
  gn.weight.value() = leaf({6}, 12, {0.5, 2, false}).value();
  gn.bias.value() = leaf({6}, 13).value();
  const V x = leaf({4, 6, 5}, 14, {-2, 3});
  const V y = gn(x);
  require_equal(y.value(), group_norm(x, 3, gn.weight, gn.bias, 1e-2).value());
  // A default eps differs from this one's: the module passes its own.
  REQUIRE(std::abs(group_norm(x, 3, gn.weight, gn.bias).value().data()[0] - y.value().data()[0]) > 1e-6);
  sum(y).backward();
  REQUIRE(gn.weight.grad().shape() == Shape{6});
  for (int64_t c = 0; c < 6; ++c) REQUIRE(gn.bias.grad().data()[c] == Approx(20.0));
}

TEST_CASE("InstanceNorm2d is group_norm with one group per channel, without running statistics",
          "[group_norm][nn]") {
  nn::InstanceNorm2d<double> in(3);
  REQUIRE(in.repr() == "InstanceNorm2d(3, eps=1e-05, momentum=0.1, affine=False, track_running_stats=False)");
  test::require_norm_parameters(in, false, {3});  // and no running buffers: an empty state dict
  const V x = leaf({2, 3, 4, 5}, 15, {-2, 3});
  require_equal(in(x).value(), group_norm(x, 3).value());
  in.eval();  // no running statistics: eval mode normalises the same way
  require_equal(in(x).value(), group_norm(x, 3).value());
  // An unbatched [C, H, W] input is one sample.
  const V x3 = leaf({3, 4, 5}, 16, {-2, 3});
  require_equal(in(x3).value(), reshape(group_norm(reshape(x3, {1, 3, 4, 5}), 3), {3, 4, 5}).value());

  // torch's argument order (num_features, eps, momentum, affine); the momentum only shows in the repr.
  REQUIRE(nn::InstanceNorm2d<double>(3, 1e-5, 0.2).repr() ==
          "InstanceNorm2d(3, eps=1e-05, momentum=0.2, affine=False, track_running_stats=False)");
  static_assert(!std::is_constructible_v<nn::InstanceNorm2d<float>, int, double, bool>,
                "(num_features, eps, affine) is refused, not read as a momentum");
  nn::InstanceNorm2d<float> affine(4, 1e-3, 0.1, true);
  REQUIRE(affine.repr() ==
          "InstanceNorm2d(4, eps=0.001, momentum=0.1, affine=True, track_running_stats=False)");
  test::require_norm_parameters(affine, true, {4});
  affine.weight.value() = TF::from_vector({0.5f, 2, -1, 1.5f}, {4});
  affine.bias.value() = TF::from_vector({0.1f, 0.2f, 0.3f, 0.4f}, {4});
  Generator gen(6);
  const VF xf(TF::rand({2, 4, 3, 3}, gen, -1, 1));
  require_equal(affine(xf).value(), group_norm(xf, 4, affine.weight, affine.bias, 1e-3f).value());
}

TEST_CASE("GroupNorm and InstanceNorm2d refuse bad settings and inputs, naming them",
          "[group_norm][nn][errors]") {
  using Catch::Contains;
  REQUIRE_THROWS_WITH(nn::GroupNorm<float>(0, 6), Contains("GroupNorm: num_groups must be positive, got 0"));
  REQUIRE_THROWS_WITH(nn::GroupNorm<float>(-1, 6), Contains("got -1"));
  REQUIRE_THROWS_WITH(nn::GroupNorm<float>(4, 6),
                      Contains("GroupNorm: num_channels 6 is not a multiple of num_groups 4"));
  REQUIRE_THROWS_WITH(nn::GroupNorm<float>(2, -6), Contains("GroupNorm: num_channels must be >= 0, got -6"));
  REQUIRE_THROWS_WITH(nn::GroupNorm<float>(2, 6, -0.5), Contains("GroupNorm: eps -0.5 must be >= 0"));
  REQUIRE_THROWS_WITH(nn::GroupNorm<float>(2, 6, std::numeric_limits<double>::quiet_NaN()),
                      Contains("GroupNorm: eps nan must be >= 0"));
  REQUIRE_THROWS_WITH(nn::InstanceNorm2d<float>(0),
                      Contains("InstanceNorm2d: num_features must be positive, got 0"));
  REQUIRE_THROWS_WITH(nn::InstanceNorm2d<float>(3, -1e-3),
                      Contains("InstanceNorm2d: eps -0.001 must be >= 0"));

  nn::GroupNorm<float> gn(2, 6);
  REQUIRE_THROWS_WITH(gn(VF(TF::zeros({2, 4, 3}))), Contains("GroupNorm: input of shape [2, 4, 3]") &&
                                                        Contains("6 channels") && Contains("[N, 6, *]"));
  REQUIRE_THROWS_WITH(gn(VF(TF::zeros({6}))), Contains("GroupNorm: input of shape [6]"));
  nn::InstanceNorm2d<float> in(3);
  REQUIRE_THROWS_WITH(in(VF(TF::zeros({2, 4, 5, 5}))),
                      Contains("InstanceNorm2d: input of shape [2, 4, 5, 5]") && Contains("3 channels"));
  REQUIRE_THROWS_WITH(in(VF(TF::zeros({4, 5, 5}))),
                      Contains("InstanceNorm2d: input of shape [4, 5, 5]") && Contains("expected [3, *]"));
  REQUIRE_THROWS_WITH(in(VF(TF::zeros({2, 3}))),
                      Contains("InstanceNorm2d: expected 3D or 4D input") && Contains("[2, 3]"));
  // As torch: one position per channel is refused in both modes (no running statistics to use instead).
  REQUIRE_THROWS_WITH(in(VF(TF::zeros({2, 3, 1, 1}))),
                      Contains("more than 1 spatial element when training") && Contains("[2, 3, 1, 1]"));
  in.eval();
  REQUIRE_THROWS_WITH(in(VF(TF::zeros({2, 3, 1, 1}))),
                      Contains("more than 1 spatial element when training") && Contains("[2, 3, 1, 1]"));
  REQUIRE_THROWS_WITH(in(VF(TF::zeros({3, 1, 1}))), Contains("more than 1 spatial element"));

  // As torch, in any mode: a single value per group over the whole batch (N * C / num_groups * spatial).
  REQUIRE_THROWS_WITH(group_norm(VF(TF::zeros({1, 3, 1, 1})), 3),
                      Contains("group_norm: expected more than 1 value per group") &&
                          Contains("input of shape [1, 3, 1, 1] with 3 groups"));
  REQUIRE_THROWS_WITH(group_norm(VF(TF::zeros({1, 4})), 4), Contains("input of shape [1, 4] with 4 groups"));
  REQUIRE_NOTHROW(group_norm(VF(TF::zeros({2, 3, 1, 1})), 3));  // two samples: two values per group
  REQUIRE_NOTHROW(group_norm(VF(TF::zeros({1, 6, 1, 1})), 3));  // two channels per group
  nn::GroupNorm<float> one_per_group(3, 3);
  one_per_group.eval();
  REQUIRE_THROWS_WITH(one_per_group(VF(TF::zeros({1, 3, 1, 1}))), Contains("more than 1 value per group"));
}

TEST_CASE("GroupNorm without affine takes any channel count num_groups divides, as torch",
          "[group_norm][nn]") {
  using Catch::Contains;
  nn::GroupNorm<double> plain(2, 4, 1e-5, false);
  const V x = leaf({2, 6, 3}, 21, {-2, 3});
  require_equal(plain(x).value(), group_norm(x, 2).value());
  REQUIRE_THROWS_WITH(plain(V(TD::zeros({2, 5, 3}))),
                      Contains("num_groups 2 does not divide the 5 channels") && Contains("[2, 5, 3]"));
  // With affine, the weight and bias fix the channel count.
  nn::GroupNorm<double> affine(2, 4);
  REQUIRE_THROWS_WITH(affine(x), Contains("GroupNorm: input of shape [2, 6, 3]") && Contains("4 channels"));
}
