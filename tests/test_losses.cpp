#include <catch2/catch.hpp>
#include <cmath>
#include <limits>
#include <tuple>

#include "fixture.hpp"
#include "gradcheck_helpers.hpp"
#include "sumi/ops/elementwise.hpp"
#include "sumi/ops/loss.hpp"
#include "sumi/ops/reduction.hpp"
#include "sumi/ops/softmax.hpp"

using namespace sumi;
using sumi::test::leaf;
using sumi::test::require_gradcheck;
using V = Variable<double>;
using TD = Tensor<double>;
using VF = Variable<float>;
using TF = Tensor<float>;

namespace {
// Loss value and input gradient against the fixture `<prefix>.loss` and `<prefix>.grad`.
void require_matches_fixture(const test::Fixture& fx, const std::string& prefix, VF& input, const VF& loss) {
  REQUIRE(loss.shape() == Shape{});
  fx.require_close(prefix + ".loss", loss.value(), 1e-4);
  fx.require_each_close(prefix + ".loss", loss.value(), 1e-4, 1e-7);
  input.zero_grad();
  loss.backward();
  REQUIRE(input.grad().defined());
  fx.require_close(prefix + ".grad", input.grad(), 1e-4);
  fx.require_each_close(prefix + ".grad", input.grad(), 1e-4, 1e-7);
}

// A loss under `reduction` against the fixture: as require_matches_fixture when reduced; for none, the terms
// (of shape `terms_shape`) and the gradient of their sum weighted by the stored `<name>.upstream`.
void require_reduced_matches_fixture(const test::Fixture& fx, const std::string& name, VF& input,
                                     const VF& loss, Reduction reduction, const Shape& terms_shape) {
  if (reduction != Reduction::none) {
    require_matches_fixture(fx, name, input, loss);
    return;
  }
  REQUIRE(loss.shape() == terms_shape);
  fx.require_each_close(name + ".loss", loss.value(), 1e-4, 1e-7);
  sum(mul(loss, VF(fx.file().tensor<float>(name + ".upstream").reshape(terms_shape)))).backward();
  fx.require_each_close(name + ".grad", input.grad(), 1e-4, 1e-7);
}

Reduction reduction_named(const std::string& name) {
  return name == "mean" ? Reduction::mean : name == "sum" ? Reduction::sum : Reduction::none;
}

std::vector<int64_t> to_labels(const TD& t) {
  std::vector<int64_t> labels;
  for (int64_t i = 0; i < t.numel(); ++i) labels.push_back(int64_t(t.data()[i]));
  return labels;
}
}  // namespace

// ---- PyTorch golden values
// ---------------------------------------------------------------------------------------

TEST_CASE("mse_loss matches PyTorch", "[loss][fixture]") {
  test::Fixture fx("losses");
  VF input(fx.input<float>("mse.input"), true);
  const VF target(fx.input<float>("mse.target"));
  require_matches_fixture(fx, "mse", input, mse_loss(input, target));
}

TEST_CASE("bce_loss matches PyTorch, including the clamped 0/1 inputs", "[loss][fixture]") {
  test::Fixture fx("losses");
  // Read as stored: the 0/1 overrides make the inputs differ from their fill recipe.
  VF input(fx.file().tensor<float>("bce.input"), true);
  const VF target(fx.file().tensor<float>("bce.target"));
  REQUIRE(input.value().at({0, 0}) == 0.0f);
  REQUIRE(input.value().at({0, 3}) == 1.0f);
  REQUIRE(input.value().at({0, 6}) > 0.0f);  // the denormal survived
  const VF loss = bce_loss(input, target);
  REQUIRE(std::isfinite(loss.item()));
  require_matches_fixture(fx, "bce", input, loss);
  // The override entries explicitly: x=0,t=0.25 -> -0.25e12/28; x=1,t=0.75 -> 0.25e12/28; the denormal with
  // t=1
  // -> -1e12/28; x=0/1 with t equal to x -> 0.
  const TF g = input.grad();
  REQUIRE(g.at({0, 0}) == 0.0f);
  REQUIRE(g.at({0, 3}) == 0.0f);
  REQUIRE(double(g.at({0, 1})) == Approx(-1e12 / 28).epsilon(1e-6));
  REQUIRE(double(g.at({0, 2})) == Approx(-0.25e12 / 28).epsilon(1e-6));
  REQUIRE(double(g.at({0, 4})) == Approx(1e12 / 28).epsilon(1e-6));
  REQUIRE(double(g.at({0, 5})) == Approx(0.25e12 / 28).epsilon(1e-6));
  REQUIRE(double(g.at({0, 6})) == Approx(-1e12 / 28).epsilon(1e-6));
  REQUIRE(double(g.at({1, 0})) == Approx(16777216.0 / 28).epsilon(1e-5));  // 1 / (1 - x) / 28, x = 1 - 2^-24
}

TEST_CASE("bce_loss of a saturated sigmoid is the clamped log in float as in double", "[loss]") {
  // sigmoid(-100) is 0 in float (PyTorch's too), so the loss is the log's clamp, 100, as in double.
  const std::vector<double> logits = {-100, -1000, 100};
  VF xf(TF::from_vector({-100.0f, -1000.0f, 100.0f}, {3}));
  const V xd(TD::from_vector(logits, {3}));
  REQUIRE(sigmoid(xf).value().data()[0] == 0.0f);
  const float loss_f = bce_loss(sigmoid(xf), VF(TF::from_vector({1, 1, 0}, {3}))).item();
  const double loss_d = bce_loss(sigmoid(xd), V(TD::from_vector({1, 1, 0}, {3}))).item();
  REQUIRE(loss_d == Approx(100.0));
  REQUIRE(double(loss_f) == Approx(loss_d).epsilon(1e-6));
}

TEST_CASE("bce_with_logits matches PyTorch", "[loss][fixture]") {
  test::Fixture fx("losses");
  VF input(fx.input<float>("bce_logits.input"), true);
  const VF target(fx.file().tensor<float>("bce_logits.target"));
  require_matches_fixture(fx, "bce_logits", input, bce_with_logits(input, target));
}

TEST_CASE("cross_entropy matches PyTorch", "[loss][fixture]") {
  test::Fixture fx("losses");
  VF input(fx.input<float>("ce.input"), true);
  const std::vector<int64_t> labels = to_labels(fx.file().tensor<double>("ce.target"));
  REQUIRE(labels.size() == 7);
  for (std::size_t i = 0; i < labels.size(); ++i) REQUIRE(labels[i] == int64_t((3 * i + 2) % 10));
  require_matches_fixture(fx, "ce", input, cross_entropy(input, labels));
}

namespace {
// One case of cross_entropy ("ce_") or nll_loss ("nll_") with the options in its config, against PyTorch's
// loss and input gradient (of sum(loss * upstream) for reduction "none").
void check_class_loss_case(const test::Fixture& fx, const std::string& name) {
  const nlohmann::json config = fx.meta_json(name + ".config");
  INFO(name << " " << config.dump());
  VF input(fx.input<float>(name + ".input"), true);
  CrossEntropyOptions<float> options;
  if (config["weight"].get<bool>()) options.weight = fx.file().tensor<float>(name + ".weight");
  if (!config["ignore_index"].is_null()) options.ignore_index = config["ignore_index"].get<int64_t>();
  options.label_smoothing = config["label_smoothing"].get<double>();
  options.reduction = reduction_named(config["reduction"].get<std::string>());
  const std::vector<int64_t> labels = to_labels(fx.file().tensor<double>(name + ".target"));
  const VF loss = name.starts_with("ce_") ? cross_entropy(input, labels, options)
                                          : nll_loss(input, labels,
                                                     {.weight = options.weight,
                                                      .ignore_index = options.ignore_index,
                                                      .reduction = options.reduction});
  // Under none, per-sample terms in the labels' shape ([] for one unbatched sample).
  const Shape& s = input.shape();
  Shape label_shape;
  if (s.size() >= 2) {
    label_shape.push_back(s[0]);
    label_shape.insert(label_shape.end(), s.begin() + 2, s.end());
  }
  require_reduced_matches_fixture(fx, name, input, loss, options.reduction, label_shape);
}
}  // namespace

TEST_CASE("cross_entropy with weights, an ignored label, label smoothing and each reduction matches PyTorch",
          "[loss][fixture]") {
  test::Fixture fx("losses");
  for (const std::string name : {"ce_weight", "ce_ignore", "ce_smooth", "ce_all", "ce_sum", "ce_none",
                                 "ce_spatial", "ce_spatial_none", "ce_unbatched"})
    check_class_loss_case(fx, name);
}

TEST_CASE("cross_entropy's mean over no weight is NaN, and an ignored sample gets no gradient", "[loss]") {
  // PyTorch: cross_entropy([-0.5, 2], 1, weight=[0.2, 0], label_smoothing=0.3) is NaN (its unsmoothed part is
  // 0 / 0); the smoothing term alone is not 0, so dividing the whole by the zero weight would give inf.
  V x(TD::from_vector({-0.5, 2.0}, {2}), true);
  const V smoothed =
      cross_entropy(x, {1}, {.weight = TD::from_vector({0.2, 0.0}, {2}), .label_smoothing = 0.3});
  CHECK(std::isnan(smoothed.item()));
  CHECK(std::isnan(cross_entropy(x, {1}, {.ignore_index = 1}).item()));  // every label ignored
  // An ignored sample takes no part: a NaN among its logits leaves the loss and the others' gradients as
  // they are, and its own gradient 0 (PyTorch's is NaN there, from log_softmax's backward of every row).
  V rows(TD::from_vector({std::nan(""), 1, 0.5, 2}, {2, 2}), true);
  const V loss = cross_entropy(rows, {0, 1}, {.ignore_index = 0});
  CHECK(loss.item() == Approx(std::log1p(std::exp(-1.5))));
  loss.backward();
  CHECK(rows.grad().at({0, 0}) == 0);
  CHECK(rows.grad().at({0, 1}) == 0);
  CHECK(rows.grad().at({1, 1}) == Approx(-1 / (1 + std::exp(1.5))));
}

TEST_CASE("nll_loss with weights, an ignored label and each reduction matches PyTorch", "[loss][fixture]") {
  test::Fixture fx("losses");
  for (const std::string name : {"nll_weight_ignore", "nll_sum", "nll_none", "nll_unbatched"})
    check_class_loss_case(fx, name);
  // cross_entropy is nll_loss of log_softmax, values and gradients.
  const V logits = leaf({4, 3, 2}, 13, {-3, 3});
  const std::vector<int64_t> labels = {0, 2, 1, 1, 2, 0, 0, 0};
  const NllLossOptions<double> options{.weight = TD::from_vector({0.5, 2, 1}, {3}), .ignore_index = 1};
  const V direct = cross_entropy(logits, labels, {.weight = options.weight, .ignore_index = 1});
  const V composed = nll_loss(log_softmax(logits, 1), labels, options);
  REQUIRE(direct.item() == Approx(composed.item()).epsilon(1e-12));
  require_gradcheck([&](const std::vector<V>& v) { return nll_loss(v[0], labels, options); }, {logits});
  REQUIRE_THROWS_WITH(nll_loss(logits, {0, 3, 1, 1, 2, 0, 0, 0}), Catch::Contains("nll_loss") &&
                                                                      Catch::Contains("label 3") &&
                                                                      Catch::Contains("3 classes"));
}

namespace {
// One element-wise loss case with the settings in its config, against PyTorch's loss and input gradient
// (of sum(loss * upstream) for reduction "none").
void check_elementwise_loss_case(const test::Fixture& fx, const std::string& name) {
  const nlohmann::json config = fx.meta_json(name + ".config");
  INFO(name << " " << config.dump());
  VF input(fx.input<float>(name + ".input"), true);
  const VF target(fx.file().tensor<float>(name + ".target"));
  REQUIRE(input.value().data()[0] == target.value().data()[0]);  // the zero difference
  const Reduction reduction = reduction_named(config["reduction"].get<std::string>());
  const VF loss = [&] {
    if (name.starts_with("mse")) return mse_loss(input, target, reduction);
    if (name.starts_with("l1")) return l1_loss(input, target, reduction);
    if (name.starts_with("smooth_l1"))
      return smooth_l1_loss(input, target, reduction, config["beta"].get<double>());
    if (name.starts_with("huber")) return huber_loss(input, target, reduction, config["delta"].get<double>());
    // Per-element weights, stored as <name>.weight and <name>.pos_weight where the config has their shape.
    const auto stored = [&](const char* setting) {
      return config.contains(setting) ? fx.file().tensor<float>(name + "." + setting) : TF();
    };
    if (name.starts_with("bce_logits"))
      return bce_with_logits(
          input, target,
          {.weight = stored("weight"), .pos_weight = stored("pos_weight"), .reduction = reduction});
    return bce_loss(input, target, {.weight = stored("weight"), .reduction = reduction});
  }();
  require_reduced_matches_fixture(fx, name, input, loss, reduction, input.shape());
}
}  // namespace

TEST_CASE(
    "element-wise losses (mse, l1, smooth_l1, huber, bce, bce_with_logits) with each reduction, and the bce "
    "losses' weights and pos_weight, match PyTorch",
    "[loss][fixture]") {
  test::Fixture fx("losses");
  for (const std::string name :
       {"mse_sum", "mse_none", "l1", "l1_none", "smooth_l1", "smooth_l1_sum", "smooth_l1_none", "huber",
        "huber_sum", "huber_none", "bce_none", "bce_sum", "bce_logits_none", "bce_weight", "bce_weight_none",
        "bce_logits_weight", "bce_logits_pos_weight", "bce_logits_both_none", "bce_logits_pos_weight_sum"})
    check_elementwise_loss_case(fx, name);
}

TEST_CASE("l1, smooth_l1 and huber at their kinks, on NaN and on no elements", "[loss]") {
  // PyTorch 1.13: at d = 0, 1, -2, 0.5, NaN (target 0), sum reduction, gradients as below; at |d| = beta or
  // delta both pieces agree. smooth_l1 with beta 0 is l1 (gradient 0 at d = 0, where PyTorch's
  // smooth_l1_loss gives -1).
  const double nan = std::numeric_limits<double>::quiet_NaN();
  const TD zeros = TD::zeros({5});
  const auto gradient_of = [&](auto loss_fn) {
    V x(TD::from_vector({0, 1, -2, 0.5, nan}, {5}), true);
    const V loss = loss_fn(x, V(zeros));
    CHECK(std::isnan(loss.item()));
    loss.backward();
    return std::vector<double>(x.grad().data(), x.grad().data() + 5);
  };
  const auto same = [](const std::vector<double>& got, const std::vector<double>& want) {
    REQUIRE(got.size() == want.size());
    for (std::size_t i = 0; i < got.size(); ++i) {
      INFO("index " << i);
      if (std::isnan(want[i]))
        CHECK(std::isnan(got[i]));
      else
        CHECK(got[i] == want[i]);
    }
  };
  same(gradient_of([](const V& x, const V& t) { return l1_loss(x, t, Reduction::sum); }), {0, 1, -1, 1, 0});
  same(gradient_of([](const V& x, const V& t) { return smooth_l1_loss(x, t, Reduction::sum); }),
       {0, 1, -1, 0.5, nan});
  same(gradient_of([](const V& x, const V& t) { return smooth_l1_loss(x, t, Reduction::sum, 0.0); }),
       {0, 1, -1, 1, 0});
  // A float beta that rounds to 0 is l1 too, not a division by 0 at d = 0.
  VF xf(TF::from_vector({0, 1, -1}, {3}), true);
  smooth_l1_loss(xf, VF(TF::zeros({3})), Reduction::sum, 1e-50).backward();
  CHECK(xf.grad().at({0}) == 0);
  CHECK(xf.grad().at({1}) == 1);
  same(gradient_of([](const V& x, const V& t) { return huber_loss(x, t, Reduction::sum, 0.5); }),
       {0, 0.5, -0.5, 0.5, nan});
  // Values on both sides of the kink, by hand: smooth_l1 (beta 2) of d = 1 and 3; huber (delta 2) of the
  // same.
  const V d(TD::from_vector({1, 3}, {2})), none(TD::zeros({2}));
  CHECK(smooth_l1_loss(d, none, Reduction::none, 2.0).value().at({0}) == 0.25);
  CHECK(smooth_l1_loss(d, none, Reduction::none, 2.0).value().at({1}) == 2.0);
  CHECK(huber_loss(d, none, Reduction::none, 2.0).value().at({0}) == 0.5);
  CHECK(huber_loss(d, none, Reduction::none, 2.0).value().at({1}) == 4.0);
  // No elements: the mean is NaN, the sum 0 and none an empty tensor, as PyTorch's.
  const V empty(TD::zeros({0, 3}));
  CHECK(std::isnan(l1_loss(empty, empty).item()));
  CHECK(huber_loss(empty, empty, Reduction::sum).item() == 0);
  CHECK(mse_loss(empty, empty, Reduction::none).shape() == Shape{0, 3});
}

// ---- hand-computed values
// ----------------------------------------------------------------------------------------

TEST_CASE("loss values and gradients on small hand-computed cases", "[loss]") {
  SECTION("mse_loss") {
    V x(TD::from_vector({1, 2, 3}, {3}), true);
    const V loss = mse_loss(x, V(TD::from_vector({1, 0, 0}, {3})));
    REQUIRE(loss.item() == Approx(13.0 / 3));
    loss.backward();
    REQUIRE(x.grad().at({0}) == 0);
    REQUIRE(x.grad().at({1}) == Approx(4.0 / 3));
    REQUIRE(x.grad().at({2}) == Approx(2));
  }
  SECTION("bce_loss") {
    V x(TD::from_vector({0.5, 0.9}, {2}), true);
    const V loss = bce_loss(x, V(TD::from_vector({1, 0}, {2})));
    REQUIRE(loss.item() == Approx(-(std::log(0.5) + std::log(0.1)) / 2));
    loss.backward();
    REQUIRE(x.grad().at({0}) == Approx(-1.0));  // (0.5 - 1) / 0.25 / 2
    REQUIRE(x.grad().at({1}) == Approx(5.0));   // 0.9 / 0.09 / 2
    // log clamped at -100: a certain wrong answer costs 100, not infinity.
    REQUIRE(bce_loss(V(TD::from_vector({0.0}, {1})), V(TD::from_vector({1.0}, {1}))).item() == Approx(100));
  }
  SECTION("bce_with_logits is stable and agrees with bce_loss of sigmoid") {
    VF z(TF::from_vector({100, -100}, {2}), true);
    const VF loss = bce_with_logits(z, VF(TF::from_vector({1, 1}, {2})));
    REQUIRE(loss.item() == Approx(50));
    loss.backward();
    REQUIRE(std::abs(z.grad().at({0})) < 1e-12f);
    REQUIRE(z.grad().at({1}) == Approx(-0.5));
    const V logits = leaf({3, 4}, 7, {-3, 3, false}), target = leaf({3, 4}, 8, {0, 1, false});
    REQUIRE(bce_with_logits(logits, target).item() == Approx(bce_loss(sigmoid(logits), target).item()));
    // Infinite logits give the limits: certain and right costs 0, certain and wrong costs inf (torch's form
    // gives NaN for two of these four, multiplying 0 by inf).
    const double inf = std::numeric_limits<double>::infinity();
    for (const auto& [z, t, expected] : {std::tuple{inf, 0.0, inf}, std::tuple{inf, 1.0, 0.0},
                                         std::tuple{-inf, 0.0, 0.0}, std::tuple{-inf, 1.0, inf}})
      REQUIRE(bce_with_logits(V(TD::from_vector({z}, {1})), V(TD::from_vector({t}, {1}))).item() == expected);
  }
  SECTION("cross_entropy") {
    const V uniform(TD::zeros({4, 10}));
    REQUIRE(cross_entropy(uniform, {0, 3, 9, 5}).item() == Approx(std::log(10.0)));
    V x(TD::from_vector({0, std::log(3.0), 1000, 1000}, {2, 2}), true);
    const V loss = cross_entropy(x, {1, 0});  // -(log(3/4) + log(1/2)) / 2
    REQUIRE(loss.item() == Approx(-(std::log(0.75) + std::log(0.5)) / 2));
    loss.backward();
    REQUIRE(x.grad().at({0, 0}) == Approx(0.125));   // (1/4 - 0) / 2
    REQUIRE(x.grad().at({0, 1}) == Approx(-0.125));  // (3/4 - 1) / 2
    REQUIRE(x.grad().at({1, 0}) == Approx(-0.25));   // (1/2 - 1) / 2
    // Large logits in float keep their digits: log(1 + e^-1) and 1 + log(1 + e^-1).
    const VF big(TF::from_vector({1000, 1001, 1000, 1001}, {2, 2}));
    REQUIRE(cross_entropy(big, {1, 0}).item() == Approx((2 * std::log1p(std::exp(-1.0)) + 1) / 2));
    REQUIRE(cross_entropy(big, {1, 1}).item() == Approx(std::log1p(std::exp(-1.0))));
    // The same as the mean of -log_softmax at the labels.
    const V logits = leaf({5, 6}, 9, {-4, 4, false});
    const std::vector<int64_t> labels = {5, 0, 2, 2, 3};
    const TD ls = log_softmax(logits, 1).value();
    double expected = 0;
    for (int64_t i = 0; i < 5; ++i) expected -= ls.at({i, labels[std::size_t(i)]}) / 5;
    REQUIRE(cross_entropy(logits, labels).item() == Approx(expected));
    // A +inf logit makes its row NaN for every label, as torch's cross_entropy and log_softmax.
    const double inf = std::numeric_limits<double>::infinity();
    for (const int64_t label : {0, 1}) {
      V with_inf(TD::from_vector({inf, 0}, {1, 2}), true);
      const V nan_loss = cross_entropy(with_inf, {label});
      REQUIRE(std::isnan(nan_loss.item()));
      nan_loss.backward();
      REQUIRE(std::isnan(with_inf.grad().at({0, 0})));
    }
  }
}

// ---- gradients
// -------------------------------------------------------------------------------------------------

TEST_CASE("loss gradients match finite differences", "[loss][gradcheck]") {
  const V target = leaf({3, 4}, 2, {-1, 1, false});
  require_gradcheck([&](const std::vector<V>& v) { return mse_loss(v[0], target); }, {leaf({3, 4}, 1)});
  const V prob_target = leaf({3, 4}, 4, {0, 1, false});
  require_gradcheck([&](const std::vector<V>& v) { return bce_loss(v[0], prob_target); },
                    {leaf({3, 4}, 3, {0.1, 0.9})});
  require_gradcheck([&](const std::vector<V>& v) { return bce_with_logits(v[0], prob_target); },
                    {leaf({3, 4}, 5, {-4, 4})});
  // Away from the kinks (the inputs are at least 0.1 from every |d| = 0, beta or delta).
  const V zero_target(TD::zeros({2, 3}));
  const V away = V(TD::from_vector({-2.5, -0.7, -0.2, 0.3, 0.8, 2.2}, {2, 3}), true);
  for (Reduction reduction : {Reduction::mean, Reduction::sum, Reduction::none}) {
    const auto total = [&](const V& loss) {
      return reduction == Reduction::none ? sum(mul(loss, leaf(loss.shape(), 13, {.requires_grad = false})))
                                          : loss;
    };
    require_gradcheck([&](const std::vector<V>& v) { return total(mse_loss(v[0], target, reduction)); },
                      {leaf({3, 4}, 1)});
    require_gradcheck([&](const std::vector<V>& v) { return total(l1_loss(v[0], zero_target, reduction)); },
                      {away});
    require_gradcheck(
        [&](const std::vector<V>& v) { return total(smooth_l1_loss(v[0], zero_target, reduction, 0.5)); },
        {away});
    require_gradcheck(
        [&](const std::vector<V>& v) { return total(huber_loss(v[0], zero_target, reduction, 1.5)); },
        {away});
    require_gradcheck([&](const std::vector<V>& v) { return total(bce_loss(v[0], prob_target, reduction)); },
                      {leaf({3, 4}, 3, {0.1, 0.9})});
    require_gradcheck(
        [&](const std::vector<V>& v) { return total(bce_with_logits(v[0], prob_target, reduction)); },
        {leaf({3, 4}, 5, {-4, 4})});
    // Weights broadcast along rows and columns, and pos_weight per column.
    const TD row_weight = leaf({3, 1}, 14, {0.5, 2, false}).value();
    const TD column_weight = leaf({4}, 15, {0.5, 2, false}).value();
    require_gradcheck(
        [&](const std::vector<V>& v) {
          return total(bce_loss(v[0], prob_target, {.weight = row_weight, .reduction = reduction}));
        },
        {leaf({3, 4}, 3, {0.1, 0.9})});
    require_gradcheck(
        [&](const std::vector<V>& v) {
          return total(
              bce_with_logits(v[0], prob_target,
                              {.weight = row_weight, .pos_weight = column_weight, .reduction = reduction}));
        },
        {leaf({3, 4}, 5, {-4, 4})});
  }
  const std::vector<int64_t> labels = {2, 0, 4, 4, 1};
  require_gradcheck([&](const std::vector<V>& v) { return cross_entropy(v[0], labels); },
                    {leaf({5, 5}, 6, {-3, 3})});
  // Scaled upstream gradient, through a composition.
  require_gradcheck(
      [&](const std::vector<V>& v) { return mse_loss(v[0], target) * 3.0 + cross_entropy(v[1], labels); },
      {leaf({3, 4}, 7), leaf({5, 5}, 8)});
  // Every option at once, for each reduction, on [N, C] and on [N, C, d] logits (labels in [N, d] order).
  const TD weight = leaf({5}, 9, {0.5, 2, false}).value();
  for (Reduction reduction : {Reduction::mean, Reduction::sum, Reduction::none}) {
    const CrossEntropyOptions<double> options{
        .weight = weight, .ignore_index = -1, .label_smoothing = 0.2, .reduction = reduction};
    const auto total = [&](const V& loss) {
      return reduction == Reduction::none ? sum(mul(loss, leaf(loss.shape(), 10, {.requires_grad = false})))
                                          : loss;
    };
    require_gradcheck(
        [&](const std::vector<V>& v) {
          return total(cross_entropy(v[0], {2, -1, 4, 4, 1}, options));
        },
        {leaf({5, 5}, 11, {-3, 3})});
    require_gradcheck(
        [&](const std::vector<V>& v) {
          return total(cross_entropy(v[0], {2, 0, -1, 3, 1, 1}, options));
        },
        {leaf({2, 5, 3}, 12, {-3, 3})});
  }
}

TEST_CASE("the target of a loss gets no gradient", "[loss]") {
  V x = leaf({2, 3}, 11, {0.2, 0.8});
  V t = leaf({2, 3}, 12, {0, 1});  // requires_grad, yet treated as a constant
  for (const auto& loss_fn : std::vector<std::function<V(const V&, const V&)>>{
           [](const V&a, const V&b) { return mse_loss(a, b); },
           [](const V&a, const V&b) { return bce_loss(a, b); },
           [](const V&a, const V&b) { return bce_with_logits(a, b); },
           [](const V&a, const V&b) { return l1_loss(a, b, Reduction::none); },
           [](const V&a, const V&b) { return smooth_l1_loss(a, b, Reduction::sum); },
           [](const V&a, const V&b) { return huber_loss(a, b); }}) {
    x.zero_grad();
    t.zero_grad();
    sum(loss_fn(x, t)).backward();
    REQUIRE(x.grad().defined());
    REQUIRE_FALSE(t.grad().defined());
  }
}

// ---- errors
// ----------------------------------------------------------------------------------------------------

TEST_CASE("loss shape mismatches name the op and both shapes", "[loss][errors]") {
  const V a(TD::full({2, 3}, 0.5)), b(TD::full({3, 2}, 0.5));
  for (const char* op :
       {"mse_loss", "bce_loss", "bce_with_logits", "l1_loss", "smooth_l1_loss", "huber_loss"}) {
    INFO(op);
    auto call = [&] {
      const std::string name = op;
      if (name == "mse_loss") return mse_loss(a, b);
      if (name == "bce_loss") return bce_loss(a, b);
      if (name == "l1_loss") return l1_loss(a, b);
      if (name == "smooth_l1_loss") return smooth_l1_loss(a, b);
      if (name == "huber_loss") return huber_loss(a, b);
      return bce_with_logits(a, b);
    };
    REQUIRE_THROWS_AS(call(), std::invalid_argument);
    REQUIRE_THROWS_WITH(call(),
                        Catch::Contains(op) && Catch::Contains("[2, 3]") && Catch::Contains("[3, 2]"));
  }
  // Same element count, different shape, is still an error.
  REQUIRE_THROWS_WITH(mse_loss(V(TD::zeros({6})), V(TD::zeros({2, 3}))),
                      Catch::Contains("mse_loss") && Catch::Contains("[6]") && Catch::Contains("[2, 3]"));
  // PyTorch refuses these settings too.
  const double nan = std::numeric_limits<double>::quiet_NaN();
  for (const double beta : {-0.5, nan})
    REQUIRE_THROWS_WITH(smooth_l1_loss(a, a, Reduction::mean, beta),
                        Catch::Contains("smooth_l1_loss") && Catch::Contains("beta must be non-negative") &&
                            Catch::Contains("[2, 3]"));
  for (const double delta : {0.0, -1.0, nan})
    REQUIRE_THROWS_WITH(huber_loss(a, a, Reduction::mean, delta),
                        Catch::Contains("huber_loss") && Catch::Contains("delta must be positive"));
}

TEST_CASE("cross_entropy rejects bad labels and shapes", "[loss][errors]") {
  const V logits(TD::zeros({3, 10}));
  REQUIRE_THROWS_WITH(cross_entropy(logits, {0, 10, 1}),
                      Catch::Contains("cross_entropy") && Catch::Contains("label 10") &&
                          Catch::Contains("index 1") && Catch::Contains("10 classes"));
  REQUIRE_THROWS_WITH(cross_entropy(logits, {0, 1, -1}), Catch::Contains("label -1") &&
                                                             Catch::Contains("index 2") &&
                                                             Catch::Contains("10 classes"));
  REQUIRE_THROWS_WITH(cross_entropy(logits, {0, 1}), Catch::Contains("cross_entropy") &&
                                                         Catch::Contains("2 labels") &&
                                                         Catch::Contains("[3, 10]"));
  REQUIRE_THROWS_WITH(cross_entropy(V(TD::zeros({3, 10, 2})), {0, 1, 2}), Catch::Contains("cross_entropy") &&
                                                                              Catch::Contains("[3, 10, 2]") &&
                                                                              Catch::Contains("needs 6"));
  REQUIRE_THROWS_WITH(cross_entropy(V(TD::scalar(1.0)), {0}), Catch::Contains("[]"));
  REQUIRE_THROWS_WITH(cross_entropy(V(TD::zeros({3, 0})), {0, 0, 0}, {.ignore_index = 0}),
                      Catch::Contains("[3, 0]") && Catch::Contains("no classes"));
  // The ignored label may be anything; any other label must still name a class.
  REQUIRE_NOTHROW(cross_entropy(logits, {0, -100, 1}, {.ignore_index = -100}));
  REQUIRE_THROWS_WITH(cross_entropy(logits, {0, -1, 1}, {.ignore_index = -100}),
                      Catch::Contains("label -1") && Catch::Contains("ignore_index -100"));
  REQUIRE_THROWS_WITH(cross_entropy(logits, {0, 1, 2}, {.weight = TD::ones({9})}),
                      Catch::Contains("[3, 10]") && Catch::Contains("weight needs shape [10], not [9]"));
  TD bad_weight = TD::ones({10});
  bad_weight.data()[4] = std::numeric_limits<double>::infinity();
  REQUIRE_THROWS_WITH(cross_entropy(logits, {0, 1, 2}, {.weight = bad_weight}),
                      Catch::Contains("weight of class 4") && Catch::Contains("not finite"));
  for (double smoothing : {-0.1, 1.5, std::nan("")})
    REQUIRE_THROWS_WITH(cross_entropy(logits, {0, 1, 2}, {.label_smoothing = smoothing}),
                        Catch::Contains("label_smoothing") && Catch::Contains("[0, 1]"));
}

TEST_CASE("bce weights and pos_weight must broadcast to the input's shape", "[loss][errors]") {
  const V x(TD::zeros({2, 3})), t(TD::zeros({2, 3}));
  REQUIRE_THROWS_WITH(bce_loss(x, t, {.weight = TD::ones({2})}),
                      Catch::Contains("bce_loss") && Catch::Contains("[2, 3]") && Catch::Contains("[2]"));
  // A weight that broadcasting would grow the loss by is refused too, as no shape [2, 3] term has it.
  REQUIRE_THROWS_WITH(bce_with_logits(x, t, {.weight = TD::ones({4, 1, 1})}),
                      Catch::Contains("bce_with_logits: weight of shape [4, 1, 1] does not broadcast to the "
                                      "input's shape [2, 3]"));
  REQUIRE_THROWS_WITH(bce_with_logits(x, t, {.pos_weight = TD::ones({3, 2})}),
                      Catch::Contains("pos_weight") && Catch::Contains("[3, 2]"));
}

TEST_CASE("bce_with_logits' pos_weight scales the positive part only", "[loss]") {
  // -(p * t * log(sigmoid(z)) + (1 - t) * log(1 - sigmoid(z))) per element, with its gradient.
  const std::vector<double> z = {-2, 0.5, 3, -0.25}, t = {1, 0, 0.3, 0.8}, p = {3, 3, 0.5, 0.5};
  V logits(TD::from_vector(z, {2, 2}), true);
  const V loss =
      bce_with_logits(logits, V(TD::from_vector(t, {2, 2})),
                      {.pos_weight = TD::from_vector({3, 0.5}, {2, 1}), .reduction = Reduction::sum});
  double expected = 0;
  for (std::size_t i = 0; i < z.size(); ++i) {
    const double s = 1 / (1 + std::exp(-z[i]));
    expected -= p[i] * t[i] * std::log(s) + (1 - t[i]) * std::log(1 - s);
  }
  REQUIRE(loss.item() == Approx(expected).epsilon(1e-12));
  loss.backward();
  for (std::size_t i = 0; i < z.size(); ++i) {
    const double s = 1 / (1 + std::exp(-z[i]));
    REQUIRE(logits.grad().data()[i] == Approx((p[i] * t[i] + 1 - t[i]) * s - p[i] * t[i]).epsilon(1e-12));
  }
  // Infinite logits still give the limits with a pos_weight; a weight multiplies the term.
  const double inf = std::numeric_limits<double>::infinity();
  const auto single = [](double zi, double ti, const BceWithLogitsOptions<double>& options) {
    return bce_with_logits(V(TD::from_vector({zi}, {1})), V(TD::from_vector({ti}, {1})), options).item();
  };
  REQUIRE(single(-inf, 1, {.pos_weight = TD::full({1}, 2.0)}) == inf);
  REQUIRE(single(inf, 1, {.pos_weight = TD::full({1}, 2.0)}) == 0);
  REQUIRE(single(-inf, 0, {.pos_weight = TD::full({1}, 2.0)}) == 0);
  REQUIRE(single(2, 1, {.weight = TD::full({1}, 3.0)}) == Approx(3 * std::log1p(std::exp(-2.0))));
  // Their gradients, c * sigmoid(z) - p * t: 0 where certain and right, -p * t where certain and wrong.
  V infinite(TD::from_vector({inf, -inf, inf, -inf}, {4}), true);
  bce_with_logits(infinite, V(TD::from_vector({1, 1, 0, 0.5}, {4})),
                  {.pos_weight = TD::full({1}, 2.0), .reduction = Reduction::sum})
      .backward();
  CHECK(infinite.grad().data()[0] == 0);
  CHECK(infinite.grad().data()[1] == -2);
  CHECK(infinite.grad().data()[2] == 1);
  CHECK(infinite.grad().data()[3] == -1);
}

TEST_CASE("bce_with_logits with a pos_weight of ones is the unweighted loss, bit for bit", "[loss]") {
  const TF logits = leaf({64}, 61, {-6, 6, false}).value().to<float>();
  TF target = leaf({64}, 62, {0, 1, false}).value().to<float>();
  for (int64_t i = 0; i < 64; i += 3) target.data()[i] = float(i % 2);  // some exact 0 and 1 targets
  for (Reduction reduction : {Reduction::sum, Reduction::none}) {
    VF plain(logits, true), weighted(logits, true);
    const VF plain_loss = bce_with_logits(plain, VF(target), reduction);
    const VF weighted_loss =
        bce_with_logits(weighted, VF(target), {.pos_weight = TF::ones({64}), .reduction = reduction});
    const TF up = TF::full(plain_loss.shape(), 0.75f);
    REQUIRE(std::equal(plain_loss.value().data(), plain_loss.value().data() + plain_loss.numel(),
                       weighted_loss.value().data()));
    sum(mul(plain_loss, VF(up))).backward();
    sum(mul(weighted_loss, VF(up))).backward();
    REQUIRE(std::equal(plain.grad().data(), plain.grad().data() + 64, weighted.grad().data()));
  }
}

TEST_CASE("bce_loss rejects inputs outside [0, 1]", "[loss][errors]") {
  const V t(TD::zeros({3}));
  REQUIRE_THROWS_WITH(bce_loss(V(TD::from_vector({0.5, 1.5, 0.2}, {3})), t),
                      Catch::Contains("bce_loss") && Catch::Contains("1.5") && Catch::Contains("index 1"));
  REQUIRE_THROWS_WITH(bce_loss(V(TD::from_vector({0.5, 0.5, -0.1}, {3})), t), Catch::Contains("bce_loss"));
  REQUIRE_THROWS_WITH(bce_loss(V(TD::from_vector({0.5, NAN, 0.5}, {3})), t), Catch::Contains("bce_loss"));
}
