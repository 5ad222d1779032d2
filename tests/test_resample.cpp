#include <catch2/catch.hpp>

#include <cmath>
#include <limits>
#include <string>
#include <type_traits>
#include <utility>
#include <vector>

#include "fixture.hpp"
#include "gradcheck_helpers.hpp"
#include "sumi/kernels/threading.hpp"
#include "sumi/nn/pooling.hpp"
#include "sumi/nn/upsample.hpp"
#include "sumi/ops/interpolate.hpp"
#include "sumi/ops/pooling.hpp"
#include "sumi/tensor/random.hpp"
#include "thread_count_guard.hpp"

using namespace sumi;
using sumi::test::leaf;
using sumi::test::require_gradcheck;

namespace {

template <class T>
std::vector<T> values(const Tensor<T>& t) {
  const Tensor<T> c = t.contiguous();
  return {c.data(), c.data() + c.numel()};
}

IntPair int_pair(const nlohmann::json& j) {
  return IntPair(j.at(0).get<int64_t>(), j.at(1).get<int64_t>());
}

// Every case of resample.safetensors in T: the output and the input gradient of sum(y * gy).
template <class T>
void check_resample_fixture() {
  test::Fixture fx("resample");
  const auto cases = fx.meta_json("cases").get<std::vector<std::string>>();
  REQUIRE(cases.size() == 18);
  for (const std::string& c : cases) {
    INFO("case " << c);
    const auto cfg = fx.meta_json(c + ".config");
    const std::string op = cfg.at("op").get<std::string>();
    Variable<T> x(fx.input<T>(c + ".x"), true);
    Variable<T> y;
    if (op == "adaptive_avg") {
      y = adaptive_avg_pool2d(x, int_pair(cfg.at("output_size")));
    } else {
      InterpolateOptions options{.mode =
                                     op == "bilinear" ? InterpolateMode::bilinear : InterpolateMode::nearest};
      if (cfg.contains("size")) options.size = int_pair(cfg.at("size"));
      if (cfg.contains("scale_factor")) {
        const auto& s = cfg.at("scale_factor");
        options.scale_factor = s.is_array() ? ScalePair(s.at(0).get<double>(), s.at(1).get<double>())
                                            : ScalePair(s.get<double>());
      }
      if (cfg.contains("align_corners")) options.align_corners = cfg.at("align_corners").get<bool>();
      y = interpolate(x, options);
    }
    // Each element to its own size, as a wrong source index or weight moves single elements; the fixture
    // stores float32, so double is held to its rounding too.
    const double rtol = std::is_same_v<T, float> ? 1e-5 : 1e-6, atol = rtol / 10;
    fx.require_each_close(c + ".y", y.value(), rtol, atol);
    y.backward(fx.input<T>(c + ".gy"));
    fx.require_each_close(c + ".gx", x.grad(), rtol, atol);
  }
}

}  // namespace

TEST_CASE("interpolate and adaptive_avg_pool2d match PyTorch's outputs and gradients",
          "[resample][fixture]") {
  SECTION("float") {
    check_resample_fixture<float>();
  }
  SECTION("double") {
    check_resample_fixture<double>();
  }
}

TEST_CASE("resampling gradients match finite differences", "[resample][gradcheck]") {
  struct Case {
    Shape shape;
    InterpolateOptions options;
  };
  const std::vector<Case> cases = {
      {{2, 2, 3, 4}, {.scale_factor = 2.0}},
      {{1, 2, 5, 7}, {.size = IntPair(8, 3)}},
      {{1, 2, 5, 7}, {.scale_factor = 1.5}},
      {{2, 1, 4, 5}, {.size = IntPair(7, 9), .mode = InterpolateMode::bilinear}},
      {{1, 2, 4, 5}, {.size = IntPair(7, 9), .mode = InterpolateMode::bilinear, .align_corners = true}},
      {{1, 2, 9, 9}, {.size = IntPair(4, 5), .mode = InterpolateMode::bilinear, .align_corners = false}},
      {{1, 1, 5, 7}, {.scale_factor = ScalePair(1.5, 0.7), .mode = InterpolateMode::bilinear}},
  };
  uint64_t seed = 0;
  for (const Case& c : cases) {
    INFO("shape " << shape_str(c.shape) << " mode " << interpolate_mode_name(c.options.mode));
    require_gradcheck([&](const auto& in) { return interpolate(in[0], c.options); }, {leaf(c.shape, ++seed)});
  }
  // (A pair, not a structured binding: clang 14 does not let a lambda capture one.)
  for (const auto& shape_and_size : std::vector<std::pair<Shape, IntPair>>{
           {{2, 3, 7, 7}, 3}, {{2, 2, 5, 6}, 1}, {{1, 2, 5, 5}, 7}, {{3, 10, 7}, IntPair(4, 3)}}) {
    const IntPair size = shape_and_size.second;
    INFO("adaptive_avg_pool2d of shape " << shape_str(shape_and_size.first) << " to " << size.to_string());
    require_gradcheck([&](const auto& in) { return adaptive_avg_pool2d(in[0], size); },
                      {leaf(shape_and_size.first, ++seed)});
  }
}

TEST_CASE("interpolate's source positions follow PyTorch's formulas", "[resample]") {
  // One row 0..3 resampled to 8 columns: nearest copies column floor(o / 2); bilinear without align_corners
  // reads (o + 0.5) / 2 - 0.5, clamped to 0 at the left and to the last column at the right.
  Variable<double> x(Tensor<double>::from_vector({0, 1, 2, 3}, {1, 1, 1, 4}));
  CHECK(values(interpolate(x, {.size = {1, 8}}).value()) == std::vector<double>{0, 0, 1, 1, 2, 2, 3, 3});
  CHECK(values(interpolate(x, {.size = {1, 8}, .mode = InterpolateMode::bilinear}).value()) ==
        std::vector<double>{0, 0.25, 0.75, 1.25, 1.75, 2.25, 2.75, 3});
  // align_corners: src = o * 3 / 6.
  CHECK(
      values(interpolate(x, {.size = IntPair(1, 7), .mode = InterpolateMode::bilinear, .align_corners = true})
                 .value()) == std::vector<double>{0, 0.5, 1, 1.5, 2, 2.5, 3});
  // A scale factor that the output size rounds: 4 * 1.7 gives 6 columns, read at floor(o / 1.7), not at
  // floor(o * 4 / 6).
  CHECK(values(interpolate(x, {.scale_factor = {1, 1.7}}).value()) == std::vector<double>{0, 0, 1, 1, 2, 2});
  CHECK(values(interpolate(x, {.size = IntPair(1, 6)}).value()) == std::vector<double>{0, 0, 1, 2, 2, 3});
  // A scale just above 1 keeps the size, and PyTorch then copies: floor(3 / 1.1) would be 2.
  CHECK(values(interpolate(x, {.scale_factor = ScalePair(1, 1.1)}).value()) ==
        std::vector<double>{0, 1, 2, 3});
  // bilinear too copies an axis whose size the scale keeps: (o + 0.5) / 1.1 - 0.5 would read between columns.
  CHECK(values(
            interpolate(x, {.scale_factor = ScalePair(1, 1.1), .mode = InterpolateMode::bilinear}).value()) ==
        std::vector<double>{0, 1, 2, 3});
  // Downsampling 4 -> 2 by a scale of 0.6 reads floor(o / 0.6) = 0, 1 where the sizes give 0, 2.
  CHECK(values(interpolate(x, {.scale_factor = ScalePair(1, 0.6)}).value()) == std::vector<double>{0, 1});
  CHECK(values(interpolate(x, {.size = IntPair(1, 2)}).value()) == std::vector<double>{0, 2});
}

TEST_CASE("adaptive_avg_pool2d averages PyTorch's overlapping windows", "[resample]") {
  // 5 columns to 3: windows [0, 2), [1, 4), [3, 5).
  Variable<double> x(Tensor<double>::from_vector({1, 2, 3, 4, 5}, {1, 1, 1, 5}), true);
  Variable<double> y = adaptive_avg_pool2d(x, IntPair(1, 3));
  CHECK(values(y.value()) == std::vector<double>{1.5, 3, 4.5});
  y.backward(Tensor<double>::from_vector({6, 3, 6}, {1, 1, 1, 3}));
  CHECK(values(x.grad()) == std::vector<double>{3, 4, 1, 4, 3});
}

TEST_CASE("adaptive_avg_pool2d divides as PyTorch: by height then width, a global pool by the area",
          "[resample]") {
  // 5 / 3 / 3 and 5 / 9 differ in float; PyTorch 1.13 gives the first for 3 x 3 windows and the second (a
  // mean) for a global pool, forward and backward alike.
  const float by_height_then_width = 0.555555522441864f, by_area = 0.5555555820465088f;
  REQUIRE(by_height_then_width != by_area);
  Tensor<float> x = Tensor<float>::zeros({1, 1, 3, 6});
  x.data()[0] = 5;
  Variable<float> windows(x.clone(), true);
  Variable<float> y = adaptive_avg_pool2d(windows, IntPair(1, 2));
  CHECK(values(y.value()) == std::vector<float>{by_height_then_width, 0});
  y.backward(Tensor<float>::full({1, 1, 1, 2}, 5));
  CHECK(values(windows.grad()) == std::vector<float>(18, by_height_then_width));
  Variable<float> global(x.clone(), true);
  y = adaptive_avg_pool2d(global, 1);
  y.backward(Tensor<float>::full({1, 1, 1, 1}, 5));
  const float global_mean = 5.0f / 18.0f;
  CHECK(values(y.value()) == std::vector<float>{global_mean});
  CHECK(values(global.grad()) == std::vector<float>(18, global_mean));
}

TEST_CASE("resampling results do not depend on the number of threads", "[resample][threads]") {
  Generator gen(11);
  const Tensor<float> x = Tensor<float>::randn({4, 16, 24, 24}, gen);
  const Tensor<float> gy_up = Tensor<float>::randn({4, 16, 48, 48}, gen);
  const Tensor<float> gy_pool = Tensor<float>::randn({4, 16, 5, 5}, gen);
  const test::ThreadCountGuard restore_threads;
  std::vector<std::vector<float>> results;
  for (int threads : {1, 2}) {
    set_num_threads(threads);
    Variable<float> xn(x.clone(), true), xb(x.clone(), true), xa(x.clone(), true);
    Variable<float> yn = interpolate(xn, {.scale_factor = 2.0});
    Variable<float> yb = interpolate(xb, {.scale_factor = 2.0, .mode = InterpolateMode::bilinear});
    Variable<float> ya = adaptive_avg_pool2d(xa, 5);
    yn.backward(gy_up);
    yb.backward(gy_up);
    ya.backward(gy_pool);
    for (const Tensor<float>& t : {yn.value(), xn.grad(), yb.value(), xb.grad(), ya.value(), xa.grad()})
      results.push_back(values(t));
  }
  for (std::size_t i = 0; i < 6; ++i) CHECK(results[i] == results[i + 6]);
}

TEST_CASE("interpolate and adaptive_avg_pool2d refuse bad settings and inputs, naming them",
          "[resample][errors]") {
  using Catch::Matchers::Contains;
  Variable<float> x(Tensor<float>::zeros({2, 3, 4, 4}));
  CHECK_THROWS_WITH(interpolate(Variable<float>(Tensor<float>::zeros({3, 4, 4})), {.scale_factor = 2.0}),
                    Contains("interpolate") && Contains("[3, 4, 4]") && Contains("4-d"));
  CHECK_THROWS_WITH(interpolate(x, {}),
                    Contains("exactly one of size and scale_factor") && Contains("neither"));
  CHECK_THROWS_WITH(interpolate(x, {.size = 8, .scale_factor = 2.0}), Contains("both"));
  CHECK_THROWS_WITH(interpolate(x, {.size = IntPair(8, 0)}),
                    Contains("[2, 3, 4, 4]") && Contains("size (8, 0)"));
  CHECK_THROWS_WITH(interpolate(x, {.scale_factor = ScalePair(2, -1)}),
                    Contains("[2, 3, 4, 4]") && Contains("scale_factor (2, -1)") && Contains("positive"));
  CHECK_THROWS_WITH(interpolate(x, {.scale_factor = std::numeric_limits<double>::quiet_NaN()}),
                    Contains("scale_factor (nan, nan)"));
  CHECK_THROWS_WITH(interpolate(x, {.scale_factor = 0.1}),
                    Contains("scale_factor (0.1, 0.1)") && Contains("empty output (0, 0)"));
  CHECK_THROWS_WITH(interpolate(x, {.scale_factor = 2.0, .align_corners = false}),
                    Contains("align_corners") && Contains("nearest"));
  CHECK_THROWS_WITH(interpolate(Variable<float>(Tensor<float>::zeros({2, 3, 0, 4})), {.size = 2}),
                    Contains("[2, 3, 0, 4]") && Contains("empty"));
  CHECK_THROWS_WITH(adaptive_avg_pool2d(x, IntPair(0, 2)), Contains("adaptive_avg_pool2d") &&
                                                               Contains("[2, 3, 4, 4]") &&
                                                               Contains("output size (0, 2)"));
  CHECK_THROWS_WITH(adaptive_avg_pool2d(Variable<float>(Tensor<float>::zeros({4, 4})), 2),
                    Contains("adaptive_avg_pool2d") && Contains("[4, 4]") && Contains("4-d"));
  // Sizes whose window or output arithmetic would overflow, checked on the shape alone (no such tensor fits
  // in memory).
  constexpr int64_t k40 = int64_t(1) << 40, k49 = int64_t(1) << 49;
  CHECK_THROWS_WITH(detail::adaptive_pool_geometry({1, 1, k40, 1}, IntPair(int64_t(1) << 23, 1)),
                    Contains("[1, 1, 1099511627776, 1]") && Contains("above 2^62"));
  CHECK(detail::adaptive_pool_geometry({1, 1, k40, 1}, IntPair(int64_t(1) << 21, 1)).out_h == int64_t(1)
                                                                                                  << 21);
  CHECK_THROWS_WITH(detail::interpolate_geometry({1, 1, k49, 1}, {.size = 2}),
                    Contains("spatial size above 2^48"));
  CHECK_THROWS_WITH(detail::interpolate_geometry({1, 1, 4, 4}, {.size = IntPair(k49, 1)}),
                    Contains("size (562949953421312, 1) must be in [1, 2^48]"));
  CHECK_THROWS_WITH(detail::interpolate_geometry({1, 1, k40, 1}, {.scale_factor = 512.0}),
                    Contains("scale_factor (512, 512) gives an output size above 2^48"));
  CHECK(detail::interpolate_geometry({1, 1, k40, 1}, {.scale_factor = 256.0}).out_h == int64_t(1) << 48);
  // An empty batch gives an empty batch, as PyTorch.
  CHECK(interpolate(Variable<float>(Tensor<float>::zeros({0, 3, 4, 4})), {.scale_factor = 2.0}).shape() ==
        Shape{0, 3, 8, 8});
  CHECK(adaptive_avg_pool2d(Variable<float>(Tensor<float>::zeros({0, 3, 4, 4})), 2).shape() ==
        Shape{0, 3, 2, 2});
}

TEST_CASE("Upsample and AdaptiveAvgPool2d print as PyTorch and apply their op", "[resample][nn]") {
  CHECK(nn::Upsample<float>({.scale_factor = 2.0}).repr() == "Upsample(scale_factor=2.0, mode=nearest)");
  CHECK(nn::Upsample<float>({.scale_factor = {2.0, 1.5}}).repr() ==
        "Upsample(scale_factor=(2.0, 1.5), mode=nearest)");
  CHECK(nn::Upsample<float>({.size = 8}).repr() == "Upsample(size=8, mode=nearest)");
  nn::Upsample<float> up({.size = IntPair(8, 3), .mode = InterpolateMode::bilinear, .align_corners = true});
  CHECK(up.repr() == "Upsample(size=(8, 3), mode=bilinear)");
  nn::AdaptiveAvgPool2d<float> pool(IntPair(3, 2));
  CHECK(pool.repr() == "AdaptiveAvgPool2d(output_size=(3, 2))");
  CHECK(nn::AdaptiveAvgPool2d<float>(1).repr() == "AdaptiveAvgPool2d(output_size=1)");
  CHECK(up.parameters().empty());
  CHECK(pool.parameters().empty());
  Generator gen(5);
  const Variable<float> x(Tensor<float>::randn({2, 3, 5, 7}, gen));
  CHECK(
      values(up.forward(x).value()) ==
      values(interpolate(x, {.size = IntPair(8, 3), .mode = InterpolateMode::bilinear, .align_corners = true})
                 .value()));
  CHECK(values(pool.forward(x).value()) == values(adaptive_avg_pool2d(x, IntPair(3, 2)).value()));
}
