#include <catch2/catch.hpp>

#include <cmath>
#include <limits>
#include <string>
#include <vector>
#include "max_error.hpp"

#include "fixture.hpp"
#include "gradcheck_helpers.hpp"
#include "sumi/nn/batch_norm.hpp"
#include "sumi/ops/batch_norm.hpp"
#include "sumi/ops/dropout.hpp"
#include "sumi/ops/reduction.hpp"

using namespace sumi;
using sumi::test::leaf;
using sumi::test::require_gradcheck;
using V = Variable<double>;
using TD = Tensor<double>;
using VF = Variable<float>;
using TF = Tensor<float>;

namespace {
// Training-mode batch norm with fresh running buffers (zeros / ones), so every call is the same function.
V bn_train(const V& x, const V& w, const V& b) {
  TD rm = TD::zeros({x.size(1)}), rv = TD::ones({x.size(1)});
  return batch_norm(x, rm, rv, w, b, true);
}
}  // namespace

// ---- batch_norm ------------------------------------------------------------------------------------------

TEST_CASE("batch_norm training-mode gradients match finite differences", "[batch_norm][gradcheck]") {
  for (const Shape& shape : {Shape{6, 5}, Shape{3, 4, 3, 2}, Shape{2, 3, 1, 5}}) {
    INFO("input shape " << shape_str(shape));
    const int64_t C = shape[1];
    // Scale and shift away from 0 and 1, so wrong terms do not cancel.
    auto x = [&] { return leaf(shape, 1, {-2, 3}); };
    auto w = [&](bool rg) { return leaf({C}, 2, {0.5, 2, rg}); };
    auto b = [&](bool rg) { return leaf({C}, 3, {.requires_grad = rg}); };
    auto f = [](const std::vector<V>& v) { return bn_train(v[0], v[1], v[2]); };
    require_gradcheck(f, {x(), w(true), b(true)});
    // Each gradient on its own (the op computes only the required ones).
    require_gradcheck(f, {x(), w(false), b(false)});
    require_gradcheck(f, {leaf(shape, 1, {.requires_grad = false}), w(true), b(false)});
    require_gradcheck(f, {leaf(shape, 1, {.requires_grad = false}), w(false), b(true)});
    // Affine off.
    require_gradcheck([](const std::vector<V>& v) { return bn_train(v[0], V(), V()); }, {x()});
    // Undefined running buffers are allowed in training.
    require_gradcheck(
        [](const std::vector<V>& v) {
          TD none_mean, none_var;
          return batch_norm(v[0], none_mean, none_var, v[1], v[2], true);
        },
        {x(), w(true), b(true)});
  }
}

TEST_CASE("batch_norm eval-mode gradients match finite differences", "[batch_norm][gradcheck]") {
  for (const Shape& shape : {Shape{6, 5}, Shape{3, 4, 3, 2}}) {
    INFO("input shape " << shape_str(shape));
    const int64_t C = shape[1];
    const TD rm = leaf({C}, 7, {.requires_grad = false}).value(), rv = leaf({C}, 8, {0.5, 2, false}).value();
    auto f = [rm, rv](const std::vector<V>& v) {
      TD m = rm.clone(), s = rv.clone();
      return batch_norm(v[0], m, s, v[1], v[2], false);
    };
    require_gradcheck(f, {leaf(shape, 1, {-2, 3}), leaf({C}, 2, {0.5, 2}), leaf({C}, 3)});
    require_gradcheck(
        f, {leaf(shape, 1, {-2, 3}), leaf({C}, 2, {0.5, 2, false}), leaf({C}, 3, {.requires_grad = false})});
  }
}

TEST_CASE("batch_norm training uses batch statistics and updates the running ones", "[batch_norm]") {
  // Channel 0: 1, 2, 3, 4 (mean 2.5, biased var 1.25, unbiased 5/3); channel 1: 0, 0, 0, 8 (mean 2, 12, 16).
  const V x(TD::from_vector({1, 0, 2, 0, 3, 0, 4, 8}, {4, 2}));
  TD rm = TD::zeros({2}), rv = TD::ones({2});
  const V y = batch_norm(x, rm, rv, V(), V(), true, 0.1, 0.0);
  REQUIRE(y.value().at({0, 0}) == Approx(-1.5 / std::sqrt(1.25)));
  REQUIRE(y.value().at({3, 1}) == Approx(6 / std::sqrt(12.0)));
  REQUIRE(rm.at({0}) == Approx(0.25));
  REQUIRE(rm.at({1}) == Approx(0.2));
  REQUIRE(rv.at({0}) == Approx(0.9 + 0.1 * 5.0 / 3.0));
  REQUIRE(rv.at({1}) == Approx(0.9 + 1.6));
  // A second step blends with the current running values, with the given momentum.
  batch_norm(x, rm, rv, V(), V(), true, 0.5);
  REQUIRE(rm.at({0}) == Approx(0.5 * 0.25 + 0.5 * 2.5));
  REQUIRE(rv.at({1}) == Approx(0.5 * 2.5 + 0.5 * 16));

  // Eval mode uses the running statistics, applies weight and bias, and leaves the buffers alone.
  const V w(TD::from_vector({2, -1}, {2})), b(TD::from_vector({0.5, 3}, {2}));
  const TD rm_before = rm.clone(), rv_before = rv.clone();
  const V ye = batch_norm(x, rm, rv, w, b, false, 0.1, 1e-3);
  REQUIRE(ye.value().at({2, 0}) == Approx((3 - rm.at({0})) / std::sqrt(rv.at({0}) + 1e-3) * 2 + 0.5));
  REQUIRE(ye.value().at({3, 1}) == Approx((8 - rm.at({1})) / std::sqrt(rv.at({1}) + 1e-3) * -1 + 3));
  REQUIRE(rm.at({0}) == rm_before.at({0}));
  REQUIRE(rv.at({1}) == rv_before.at({1}));
}

TEST_CASE("batch_norm 4-d normalises each channel over N, H and W", "[batch_norm]") {
  const V x = leaf({3, 4, 5, 6}, 5, {-3, 7, false});
  TD rm, rv;  // not tracked
  const TD y = batch_norm(x, rm, rv, V(), V(), true).value();
  REQUIRE_FALSE(rm.defined());
  for (int64_t c = 0; c < 4; ++c) {
    double s = 0, s2 = 0;
    for (int64_t n = 0; n < 3; ++n)
      for (int64_t i = 0; i < 5; ++i)
        for (int64_t j = 0; j < 6; ++j) {
          const double v = y.at({n, c, i, j});
          s += v;
          s2 += v * v;
        }
    REQUIRE(std::abs(s / 90) < 1e-12);
    REQUIRE(s2 / 90 == Approx(1).epsilon(1e-3));  // 1 - eps / var
  }
}

TEST_CASE("batch_norm with eps = 0 normalises a constant channel to 0, as PyTorch", "[batch_norm]") {
  TD values = TD::full({4, 2}, 3.0);
  values.at({1, 1}) = 5.0;  // channel 1 varies, channel 0 is constant
  TD rm, rv;                // not tracked
  const TD y = batch_norm(V(values), rm, rv, V(), V(), true, 0.1, 0.0).value();
  for (int64_t n = 0; n < 4; ++n) CHECK(y.at({n, 0}) == 0.0);
  CHECK(y.at({1, 1}) == Approx(std::sqrt(3.0)));
}

TEST_CASE("batch_norm's running statistics show a NaN or an infinity in the batch, as PyTorch's",
          "[batch_norm]") {
  // PyTorch 1.13, BatchNorm1d(2) on [[1, 2], [v, 3], [5, 4], [2, 1]]: running_mean [v', 0.25] with v' NaN
  // for v NaN and v for v infinite, running_var [NaN, 1.0667]. A variance clamped at 0 would leave a
  // diverged batch's running_var looking healthy.
  const float inf = std::numeric_limits<float>::infinity();
  for (const float v : {std::numeric_limits<float>::quiet_NaN(), inf, -inf}) {
    INFO("value " << v);
    TF x = TF::from_vector({1, 2, v, 3, 5, 4, 2, 1}, {4, 2});
    TF rm = TF::zeros({2}), rv = TF::ones({2});
    batch_norm(VF(x), rm, rv, VF(), VF(), true);
    if (std::isnan(v))
      CHECK(std::isnan(rm.at({0})));
    else
      CHECK(rm.at({0}) == v);
    CHECK(std::isnan(rv.at({0})));
    CHECK(rm.at({1}) == Approx(0.25));
    CHECK(rv.at({1}) == Approx(0.9 + 0.1 * 5.0 / 3.0));
  }
  TF all_inf = TF::full({2, 1, 2, 2}, inf), rm = TF::zeros({1}), rv = TF::ones({1});
  batch_norm(VF(all_inf), rm, rv, VF(), VF(), true);
  CHECK(rm.at({0}) == inf);
  CHECK(std::isnan(rv.at({0})));
}

TEST_CASE("batch_norm in float stays accurate for a mean far from zero", "[batch_norm]") {
  // Values 1e4 + [-0.1, 0.1]: a one-pass float variance would be dominated by rounding.
  Generator gen(3);
  TF xf = TF::rand({8, 3, 4, 4}, gen, -0.1f, 0.1f);
  for (int64_t i = 0; i < xf.numel(); ++i) xf.data()[i] += 1e4f;
  const TD xd = xf.to<double>();
  const TF wf = TF::from_vector({1.5f, 0.5f, -1}, {3}), bf = TF::from_vector({0.1f, 0, 2}, {3});
  const TF gyf = TF::rand(xf.shape(), gen, -1, 1);

  TF rmf = TF::zeros({3}), rvf = TF::ones({3});
  VF x(xf, true), w(wf, true), b(bf, true);
  const VF y = batch_norm(x, rmf, rvf, w, b, true);
  y.backward(gyf);

  TD rmd = TD::zeros({3}), rvd = TD::ones({3});
  V xr(xd, true), wr(wf.to<double>(), true), br(bf.to<double>(), true);
  const V yr = batch_norm(xr, rmd, rvd, wr, br, true);
  yr.backward(gyf.to<double>());

  auto max_err = [](const TF& a, const TD& e) {
    double m = 0;
    for (int64_t i = 0; i < a.numel(); ++i)
      m = sumi::test::nan_max(m, std::abs(double(a.data()[i]) - e.data()[i]));
    return m;
  };
  REQUIRE(max_err(y.value(), yr.value()) < 1e-5);
  REQUIRE(max_err(x.grad(), xr.grad()) < 1e-4);
  REQUIRE(max_err(w.grad(), wr.grad()) < 1e-4);
  REQUIRE(max_err(rvf, rvd) < 1e-6);
  REQUIRE(max_err(rmf, rmd) < 1e-2);  // 0.1 * 1e4 in float: ulp 6e-5
}

TEST_CASE("batch_norm matches PyTorch (batchnorm fixture)", "[batch_norm][fixture]") {
  test::Fixture fx("batchnorm");
  for (const std::string p : {"bn1d", "bn2d"}) {
    INFO("prefix " << p);
    const auto cfg = fx.meta_json(p + ".config");
    const float momentum = cfg.at("momentum").get<float>(), eps = cfg.at("eps").get<float>();
    const int64_t C = cfg.at("C");
    TF rm = TF::full({C}, cfg.at("running_mean_init").get<float>());
    TF rv = TF::full({C}, cfg.at("running_var_init").get<float>());
    VF x(fx.input<float>(p + ".x"), true), w(fx.input<float>(p + ".weight"), true),
        b(fx.input<float>(p + ".bias"), true);
    REQUIRE(x.size(1) == C);
    const VF y = batch_norm(x, rm, rv, w, b, true, momentum, eps);
    fx.require_close(p + ".y_train", y.value());
    fx.require_close(p + ".rm1", rm);
    fx.require_close(p + ".rv1", rv);
    y.backward(fx.input<float>(p + ".gy"));
    fx.require_close(p + ".gx", x.grad());
    fx.require_close(p + ".gw", w.grad());
    fx.require_close(p + ".gb", b.grad());

    const VF x2(fx.input<float>(p + ".x2"));
    {
      NoGradGuard no_grad;
      batch_norm(x2, rm, rv, w, b, true, momentum, eps);
    }
    fx.require_close(p + ".rm2", rm);
    fx.require_close(p + ".rv2", rv);
    fx.require_close(p + ".y_eval", batch_norm(x2, rm, rv, w, b, false, momentum, eps).value());
  }
}

TEST_CASE("batch_norm errors name the op and the shapes", "[batch_norm][errors]") {
  using Catch::Contains;
  const V x(TD::zeros({4, 3})), x4(TD::zeros({2, 3, 2, 2}));
  TD rm = TD::zeros({3}), rv = TD::ones({3}), bad = TD::zeros({4}), none;
  const V w(TD::ones({3})), w_bad(TD::ones({4}));
  REQUIRE_THROWS_AS(batch_norm(x, rm, rv, w_bad, V(), true), std::invalid_argument);
  REQUIRE_THROWS_WITH(batch_norm(x, rm, rv, w_bad, V(), true),
                      Contains("batch_norm") && Contains("weight") && Contains("[4]") && Contains("[4, 3]"));
  REQUIRE_THROWS_WITH(batch_norm(x4, rm, rv, w, w_bad, true), Contains("batch_norm") && Contains("bias") &&
                                                                  Contains("[4]") &&
                                                                  Contains("[2, 3, 2, 2]"));
  REQUIRE_THROWS_WITH(
      batch_norm(x4, bad, rv, w, V(), false),
      Contains("batch_norm") && Contains("running_mean") && Contains("[4]") && Contains("[2, 3, 2, 2]"));
  REQUIRE_THROWS_WITH(batch_norm(x, rm, bad, V(), V(), true), Contains("running_var") && Contains("[4, 3]"));
  REQUIRE_THROWS_WITH(batch_norm(V(TD::zeros({3})), rm, rv, V(), V(), true),
                      Contains("batch_norm") && Contains("[3]"));
  REQUIRE_THROWS_WITH(batch_norm(x, none, none, V(), V(), false), Contains("batch_norm") && Contains("eval"));
  REQUIRE_THROWS_WITH(batch_norm(x, rm, none, V(), V(), true),
                      Contains("batch_norm") && Contains("running_var"));
  REQUIRE_THROWS_WITH(batch_norm(V(TD::zeros({1, 3, 1, 1})), rm, rv, V(), V(), true),
                      Contains("batch_norm") && Contains("more than 1 value") && Contains("[1, 3, 1, 1]"));
  REQUIRE_NOTHROW(batch_norm(V(TD::zeros({1, 3, 1, 1})), rm, rv, V(), V(), false));
  using nn::BatchNorm2d;
  REQUIRE_THROWS_WITH(BatchNorm2d<float>(-1), Contains("BatchNorm2d: num_features must be positive, got -1"));
}

TEST_CASE("batch_norm of an empty batch is empty and leaves the running statistics", "[batch_norm]") {
  // As torch: an empty output, the running statistics unchanged, zero gradients for weight and bias.
  TD rm = TD::full({3}, 0.5), rv = TD::full({3}, 2.0);
  V x(TD::zeros({0, 3, 2, 2}), true), w(TD::ones({3}), true), b(TD::zeros({3}), true);
  for (const bool training : {true, false}) {
    const V y = batch_norm(x, rm, rv, w, b, training);
    REQUIRE(y.shape() == Shape{0, 3, 2, 2});
    sum(y).backward();
    for (int64_t c = 0; c < 3; ++c) {
      REQUIRE(rm.at({c}) == 0.5);
      REQUIRE(rv.at({c}) == 2.0);
      REQUIRE(w.grad().at({c}) == 0.0);
      REQUIRE(b.grad().at({c}) == 0.0);
    }
    REQUIRE(x.grad().shape() == Shape{0, 3, 2, 2});
  }
}

// ---- dropout ---------------------------------------------------------------------------------------------

TEST_CASE("dropout keeps 1 - p of the values, scaled by 1 / (1 - p)", "[dropout]") {
  for (const float p : {0.2f, 0.5f, 0.8f}) {
    INFO("p = " << p);
    Generator gen(17);
    const VF x(TF::full({200, 1000}, 2.0f));
    const TF y = dropout(x, p, true, gen).value();
    int64_t kept = 0;
    for (int64_t i = 0; i < y.numel(); ++i) {
      const float v = y.data()[i];
      if (v != 0) {
        ++kept;
        if (v != Approx(2.0f / (1 - p))) FAIL("kept value " << v << " at " << i);
      }
    }
    // 200000 draws: the standard deviation of the kept fraction is below 0.0012.
    REQUIRE(double(kept) / double(y.numel()) == Approx(1 - p).margin(0.006));
  }
}

TEST_CASE("dropout is the identity in eval mode and for p = 0; p = 1 gives x * 0", "[dropout]") {
  Generator gen(1);
  const V x = leaf({3, 4}, 2);
  const V ye = dropout(x, 0.5, false, gen);
  const V y0 = dropout(x, 0.0, true, gen);
  for (int64_t i = 0; i < x.numel(); ++i) {
    REQUIRE(ye.value().data()[i] == x.value().data()[i]);
    REQUIRE(y0.value().data()[i] == x.value().data()[i]);
  }
  V x1 = leaf({3, 4}, 3);
  const V y1 = dropout(x1, 1.0, true, gen);
  y1.backward(TD::ones({3, 4}));
  for (int64_t i = 0; i < x1.numel(); ++i) {
    REQUIRE(y1.value().data()[i] == 0.0);
    REQUIRE(x1.grad().data()[i] == 0.0);
  }
  // As PyTorch (input * 0): a NaN or infinite input stays visible as NaN.
  const V bad(TD::from_vector({std::nan(""), std::numeric_limits<double>::infinity(), 2.0}, {3}));
  const TD dropped = dropout(bad, 1.0, true, gen).value();
  CHECK(std::isnan(dropped.at({0})));
  CHECK(std::isnan(dropped.at({1})));
  CHECK(dropped.at({2}) == 0.0);
}

TEST_CASE("dropout masks are reproducible from the generator's seed", "[dropout]") {
  const VF x(TF::ones({64, 64}));
  auto mask = [&](uint64_t seed) {
    Generator gen(seed);
    return dropout(x, 0.5f, true, gen).value();
  };
  const TF a = mask(5), b = mask(5), c = mask(6);
  int64_t same_ab = 0, same_ac = 0;
  for (int64_t i = 0; i < x.numel(); ++i) {
    same_ab += a.data()[i] == b.data()[i];
    same_ac += a.data()[i] == c.data()[i];
  }
  REQUIRE(same_ab == x.numel());
  REQUIRE(same_ac < x.numel() * 3 / 4);  // independent masks agree on about half the elements
  // Successive calls on one generator draw new masks.
  Generator gen(5);
  const TF first = dropout(x, 0.5f, true, gen).value(), second = dropout(x, 0.5f, true, gen).value();
  int64_t same = 0;
  for (int64_t i = 0; i < x.numel(); ++i) same += first.data()[i] == second.data()[i];
  REQUIRE(same < x.numel() * 3 / 4);
}

TEST_CASE("dropout keeps element i exactly when the generator's i-th uniform number is at least p",
          "[dropout]") {
  const VF x(TF::ones({37, 53}));
  for (const float p : {0.1f, 0.25f, 0.3f, 0.5f, 0.7f}) {
    INFO("p = " << p);
    Generator gen(11), draws(11);
    const TF y = dropout(x, p, true, gen).value();
    for (int64_t i = 0; i < x.numel(); ++i) {
      const bool kept = draws.uniform() >= double(p);
      if ((y.data()[i] != 0) != kept) FAIL("element " << i << ": " << y.data()[i]);
    }
    REQUIRE(gen.next_u64() == draws.next_u64());  // one number per element, no more
  }
}

TEST_CASE("dropout backward multiplies by the same mask", "[dropout][gradcheck]") {
  V x = leaf({5, 40}, 4);
  Generator gen(9);
  const V y = dropout(x, 0.3, true, gen);
  const TD g = leaf({5, 40}, 5, {.requires_grad = false}).value();
  y.backward(g);
  int64_t dropped = 0;
  for (int64_t i = 0; i < x.numel(); ++i) {
    const bool kept = y.value().data()[i] != 0;
    dropped += !kept;
    REQUIRE(x.grad().data()[i] == Approx(kept ? g.data()[i] / 0.7 : 0.0));
  }
  REQUIRE(dropped > 20);
  REQUIRE(dropped < 100);
  require_gradcheck(
      [](const std::vector<V>& v) {
        Generator local(123);  // the same mask on every call
        return dropout(v[0], 0.4, true, local);
      },
      {leaf({4, 6, 3}, 6)});
}

TEST_CASE("dropout rejects a probability outside [0, 1]", "[dropout][errors]") {
  const V x(TD::zeros({2, 3}));
  using Catch::Contains;
  REQUIRE_THROWS_AS(dropout(x, 1.5, true), std::invalid_argument);
  REQUIRE_THROWS_WITH(dropout(x, 1.5, true), Contains("dropout") && Contains("1.5"));
  REQUIRE_THROWS_WITH(dropout(x, -0.25, true), Contains("dropout") && Contains("-0.25"));
  REQUIRE_THROWS_WITH(dropout(x, std::numeric_limits<double>::quiet_NaN(), false),
                      Contains("dropout") && Contains("nan"));
}
