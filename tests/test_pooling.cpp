#include <catch2/catch.hpp>

#include <algorithm>
#include <bit>
#include <cmath>
#include <cstdint>
#include <limits>
#include <random>
#include <string>
#include <tuple>
#include <vector>

#include "fixture.hpp"
#include "gradcheck_helpers.hpp"
#include "isa_guard.hpp"
#include "sumi/kernels/pooling.hpp"
#include "sumi/kernels/threading.hpp"
#include "sumi/nn/pooling.hpp"
#include "sumi/ops/pooling.hpp"
#include "sumi/tensor/random.hpp"
#include "thread_count_guard.hpp"

using namespace sumi;
using sumi::test::leaf;
using sumi::test::require_gradcheck;

namespace {

std::vector<float> values(const Tensor<float>& t) {
  const Tensor<float> c = t.contiguous();
  return {c.data(), c.data() + c.numel()};
}

IntPair int_pair(const nlohmann::json& j) {
  return j.is_array() ? IntPair(j.at(0).get<int64_t>(), j.at(1).get<int64_t>()) : IntPair(j.get<int64_t>());
}

// Every case of pooling.safetensors in T: the output and the input gradient of sum(y * gy).
template <class T>
void check_pooling_fixture() {
  test::Fixture fx("pooling");
  const auto cases = fx.meta_json("cases").get<std::vector<std::string>>();
  REQUIRE(cases.size() == 12);
  for (const std::string& c : cases) {
    INFO("case " << c);
    const auto cfg = fx.meta_json(c + ".config");
    const IntPair kernel = int_pair(cfg.at("kernel"));
    const std::optional<IntPair> stride =
        cfg.at("stride").is_null() ? std::nullopt : std::optional<IntPair>(int_pair(cfg.at("stride")));
    const IntPair padding = int_pair(cfg.at("padding"));
    const bool ceil_mode = cfg.at("ceil_mode").get<bool>();
    Variable<T> x(fx.input<T>(c + ".x"), true);
    Variable<T> y;
    if (cfg.at("op") == "max")
      y = max_pool2d(x, kernel,
                     {.stride = stride,
                      .padding = padding,
                      .dilation = int_pair(cfg.at("dilation")),
                      .ceil_mode = ceil_mode});
    else
      y = avg_pool2d(x, kernel,
                     {.stride = stride,
                      .padding = padding,
                      .ceil_mode = ceil_mode,
                      .count_include_pad = cfg.at("count_include_pad").get<bool>()});
    fx.require_close(c + ".y", y.value(), 1e-6);
    y.backward(fx.input<T>(c + ".gy"));
    fx.require_close(c + ".gx", x.grad(), 1e-6);
  }
}

}  // namespace

TEST_CASE("max_pool2d and avg_pool2d match PyTorch's outputs and gradients", "[pooling][fixture]") {
  SECTION("float") {
    check_pooling_fixture<float>();
  }
  SECTION("double") {
    check_pooling_fixture<double>();
  }
}

TEST_CASE("pooling gradients match finite differences over a sweep of geometries", "[pooling][gradcheck]") {
  struct Geometry {
    Shape shape;
    IntPair kernel, stride, padding, dilation;
    bool ceil_mode;
  };
  const std::vector<Geometry> geometries = {
      {{2, 2, 6, 6}, 2, 2, 0, 1, false}, {{1, 3, 7, 5}, 3, 2, 1, 1, false},
      {{2, 1, 5, 6}, 3, 1, 1, 1, false}, {{1, 2, 9, 8}, {3, 2}, {2, 3}, {1, 1}, {2, 1}, true},
      {{3, 5, 5}, 2, 2, 0, 1, true},
  };
  uint64_t seed = 0;
  for (const Geometry& g : geometries) {
    INFO("shape " << shape_str(g.shape) << " kernel " << g.kernel.to_string() << " stride "
                  << g.stride.to_string() << " padding " << g.padding.to_string() << " dilation "
                  << g.dilation.to_string());
    // Distinct values a finite step cannot reorder: a window's largest element stays its largest.
    require_gradcheck(
        [&](const auto& in) {
          return max_pool2d(
              in[0], g.kernel,
              {.stride = g.stride, .padding = g.padding, .dilation = g.dilation, .ceil_mode = g.ceil_mode});
        },
        {leaf(g.shape, ++seed)});
    for (bool include_pad : {true, false})
      require_gradcheck(
          [&](const auto& in) {
            return avg_pool2d(in[0], g.kernel,
                              {.stride = g.stride,
                               .padding = g.padding,
                               .ceil_mode = g.ceil_mode,
                               .count_include_pad = include_pad});
          },
          {leaf(g.shape, ++seed)});
  }
}

TEST_CASE("max_pool2d passes NaN on and sends the gradient to the first of equal elements, the last NaN",
          "[pooling]") {
  const float nan = std::numeric_limits<float>::quiet_NaN(), inf = std::numeric_limits<float>::infinity();
  // One 2x4 image, two 2x2 windows: {1, nan; 3, 2} and {5, 5; 5, -1}.
  Variable<float> x(Tensor<float>::from_vector({1, nan, 5, 5, 3, 2, 5, -1}, {1, 1, 2, 4}), true);
  Variable<float> y = max_pool2d(x, 2);
  REQUIRE(y.shape() == Shape{1, 1, 1, 2});
  CHECK(std::isnan(y.value().data()[0]));
  CHECK(y.value().data()[1] == 5.0f);
  y.backward(Tensor<float>::from_vector({10, 20}, {1, 1, 1, 2}));
  CHECK(values(x.grad()) == std::vector<float>{0, 10, 20, 0, 0, 0, 0, 0});

  // Two NaNs in one window: PyTorch's gradient goes to the last ([[1, nan], [nan, 0]]: index 2).
  Variable<float> two_nans(Tensor<float>::from_vector({1, nan, nan, 0}, {1, 1, 2, 2}), true);
  max_pool2d(two_nans, 2).backward(Tensor<float>::ones({1, 1, 1, 1}));
  CHECK(values(two_nans.grad()) == std::vector<float>{0, 0, 1, 0});

  Variable<float> all_minus_inf(Tensor<float>::full({1, 1, 2, 2}, -inf), true);
  Variable<float> z = max_pool2d(all_minus_inf, 2);
  CHECK(z.value().data()[0] == -inf);
  z.backward(Tensor<float>::ones({1, 1, 1, 1}));
  CHECK(values(all_minus_inf.grad()) == std::vector<float>{1, 0, 0, 0});
}

TEST_CASE("a max-pool window that holds no element gives -infinity and no gradient", "[pooling]") {
  // Dilation 2 with padding 1 puts both taps of the window (rows -1 and 1) outside a one-row input; PyTorch's
  // index there points outside the plane. Several planes: each one's write must stay inside it.
  Variable<float> x(Tensor<float>::ones({3, 1, 4}), true);
  Variable<float> y =
      max_pool2d(x, IntPair(2, 1), {.stride = 1, .padding = IntPair(1, 0), .dilation = IntPair(2, 1)});
  REQUIRE(y.shape() == Shape{3, 1, 4});
  for (float v : values(y.value())) CHECK(v == -std::numeric_limits<float>::infinity());
  y.backward(Tensor<float>::ones({3, 1, 4}));
  CHECK(values(x.grad()) == std::vector<float>(12, 0.0f));
  // The kernel marks such a window with index -1, which its backward skips.
  const kernels::Pool2dGeometry g{.in_h = 1, .in_w = 1, .kernel_h = 2, .pad_h = 1, .dilation_h = 2};
  const float input = 1;
  float output = 0, gradient = 5;
  int64_t at = 0;
  kernels::max_pool2d_forward(g, &input, &output, &at);
  CHECK(at == -1);
  kernels::max_pool2d_backward(g, &output, &at, &gradient);
  CHECK(gradient == 0);
}

TEST_CASE("the vectorized max pool gives the scalar reference's values and indices on every ISA",
          "[pooling][isa]") {
  // Few distinct values, NaNs and -infinities, so that windows hold ties, NaNs and all--infinity runs; widths
  // on both sides of a vector's 8 and 16 lanes; every stride (2 deinterleaves, 3 gathers), padding on the
  // edge columns, dilation and ceil_mode's partial last windows; each setting different along the rows and
  // the columns, so that one used for the other shows.
  const test::IsaGuard restore_isa;
  std::mt19937 gen(11);
  std::uniform_int_distribution<int> pick(0, 9);
  int compared = 0;
  for (int64_t k = 1; k <= 4; ++k)
    for (int64_t stride = 1; stride <= 3; ++stride)
      for (int64_t pad = 0; pad <= k / 2; ++pad)
        for (int64_t dilation = 1; dilation <= 2; ++dilation)
          for (int64_t width : {1, 7, 17, 33, 40})
            for (bool ceil_mode : {false, true}) {
              const kernels::Pool2dGeometry g{.planes = 3,
                                              .in_h = 6,
                                              .in_w = width,
                                              .kernel_h = k,
                                              .kernel_w = 5 - k,
                                              .stride_h = stride,
                                              .stride_w = 4 - stride,
                                              .pad_h = pad,
                                              .pad_w = pad == 0 ? (5 - k) / 2 : 0,
                                              .dilation_h = dilation,
                                              .dilation_w = 3 - dilation,
                                              .ceil_mode = ceil_mode};
              if (g.out_h() <= 0 || g.out_w() <= 0) continue;
              INFO("kernel " << g.kernel_h << "x" << g.kernel_w << " stride " << g.stride_h << ","
                             << g.stride_w << " padding " << g.pad_h << "," << g.pad_w << " dilation "
                             << g.dilation_h << "," << g.dilation_w << " width " << width << " ceil_mode "
                             << ceil_mode);
              std::vector<float> x(std::size_t(g.planes * g.in_h * g.in_w));
              for (float& v : x) {
                const int r = pick(gen);
                v = r == 0   ? std::numeric_limits<float>::quiet_NaN()
                    : r == 1 ? -std::numeric_limits<float>::infinity()
                             : float(r % 4);
              }
              const std::size_t n = std::size_t(g.planes * g.out_h() * g.out_w());
              std::vector<float> y_reference(n), y(n);
              std::vector<int64_t> at_reference(n), at(n);
              kernels::max_pool2d_forward_reference(g, x.data(), y_reference.data(), at_reference.data());
              for (kernels::Isa isa : {kernels::Isa::avx2, kernels::Isa::avx512}) {
                if (!kernels::isa_supported(isa)) continue;
                INFO("ISA " << kernels::isa_name(isa));
                kernels::set_isa(isa);
                std::fill(y.begin(), y.end(), 7.0f);
                std::fill(at.begin(), at.end(), int64_t(-7));
                kernels::max_pool2d_forward(g, x.data(), y.data(), at.data());
                REQUIRE(at == at_reference);
                for (std::size_t i = 0; i < n; ++i)
                  REQUIRE(std::bit_cast<uint32_t>(y[i]) == std::bit_cast<uint32_t>(y_reference[i]));
                ++compared;
              }
            }
  if (kernels::isa_supported(kernels::Isa::avx2)) CHECK(compared > 300);
}

TEST_CASE("a max-pool kernel larger than the input, which padding allows, costs what the input does",
          "[pooling][isa]") {
  const test::IsaGuard restore_isa;
  const auto each_isa = [](auto&& body) {
    for (kernels::Isa isa : {kernels::Isa::scalar, kernels::Isa::avx2, kernels::Isa::avx512}) {
      if (!kernels::isa_supported(isa)) continue;
      INFO("ISA " << kernels::isa_name(isa));
      kernels::set_isa(isa);
      body();
    }
  };
  // Windows taller than the input (the rows inside it fewer than the kernel's) next to vector columns.
  for (const auto& [kh, in_h, dilation] : {std::tuple{4, 1, 1}, {5, 2, 1}, {7, 3, 1}, {9, 4, 1}, {5, 5, 2}}) {
    const kernels::Pool2dGeometry g{.planes = 2,
                                    .in_h = in_h,
                                    .in_w = 37,
                                    .kernel_h = kh,
                                    .kernel_w = 3,
                                    .pad_h = kh / 2,
                                    .pad_w = 1,
                                    .dilation_h = dilation};
    INFO("kernel height " << kh << " input height " << in_h << " dilation " << dilation);
    std::vector<float> x(std::size_t(g.planes * g.in_h * g.in_w));
    for (std::size_t i = 0; i < x.size(); ++i) x[i] = float((i * 7919) % 23);
    const std::size_t n = std::size_t(g.planes * g.out_h() * g.out_w());
    std::vector<float> y_reference(n), y(n);
    std::vector<int64_t> at_reference(n), at(n);
    kernels::max_pool2d_forward_reference(g, x.data(), y_reference.data(), at_reference.data());
    each_isa([&] {
      kernels::max_pool2d_forward(g, x.data(), y.data(), at.data());
      CHECK(y == y_reference);
      CHECK(at == at_reference);
    });
  }
  // A kernel of 2^20 + 1 with half of it as padding on a 2x2 input: every window holds the whole input. Taps
  // sized by the kernel's area (2^40) would not fit in memory.
  const int64_t k = (int64_t(1) << 20) + 1;
  Variable<float> x(Tensor<float>::from_vector({1, 4, 3, 2}, {1, 1, 2, 2}), true);
  each_isa([&] {
    Variable<float> y = max_pool2d(x, k, {.stride = 1, .padding = k / 2});
    REQUIRE(y.shape() == Shape{1, 1, 2, 2});
    CHECK(values(y.value()) == std::vector<float>(4, 4.0f));
    x.zero_grad();
    y.backward(Tensor<float>::ones({1, 1, 2, 2}));
    CHECK(values(x.grad()) == std::vector<float>{0, 4, 0, 0});
  });
}

TEST_CASE("pooling results do not depend on the number of threads", "[pooling][threads]") {
  Generator gen(7);
  const Tensor<float> x = Tensor<float>::randn({8, 16, 34, 34}, gen);
  const Tensor<float> gy = Tensor<float>::randn({8, 16, 17, 17}, gen);
  const test::ThreadCountGuard restore_threads;
  std::vector<std::vector<float>> results;
  for (int threads : {1, 2}) {
    set_num_threads(threads);
    Variable<float> xm(x.clone(), true), xa(x.clone(), true);
    Variable<float> ym = max_pool2d(xm, 3, {.stride = 2, .padding = 1});
    Variable<float> ya = avg_pool2d(xa, 3, {.stride = 2, .padding = 1, .count_include_pad = false});
    ym.backward(gy);
    ya.backward(gy);
    results.push_back(values(ym.value()));
    results.push_back(values(xm.grad()));
    results.push_back(values(ya.value()));
    results.push_back(values(xa.grad()));
  }
  for (std::size_t i = 0; i < 4; ++i) CHECK(results[i] == results[i + 4]);
}

TEST_CASE("pooling refuses bad settings and inputs, naming them", "[pooling][errors]") {
  Variable<float> x(Tensor<float>::zeros({2, 3, 8, 8}));
  using Catch::Matchers::Contains;
  CHECK_THROWS_WITH(max_pool2d(x, 3, {.stride = 1, .padding = 2}), Contains("[2, 3, 8, 8]") &&
                                                                       Contains("padding (2, 2)") &&
                                                                       Contains("half the kernel size"));
  CHECK_THROWS_WITH(avg_pool2d(x, 0), Contains("kernel size (0, 0)"));
  CHECK_THROWS_WITH(max_pool2d(x, 2, {.stride = IntPair(1, 0)}), Contains("stride (1, 0)"));
  CHECK_THROWS_WITH(max_pool2d(x, 2, {.stride = 2, .dilation = 0}), Contains("dilation (0, 0)"));
  CHECK_THROWS_WITH(max_pool2d(x, 9), Contains("[2, 3, 8, 8]") && Contains("empty output") &&
                                          Contains("stride (9, 9)") && !Contains("dilation"));
  CHECK_THROWS_WITH(avg_pool2d(Variable<float>(Tensor<float>::zeros({8, 8})), 2),
                    Contains("avg_pool2d") && Contains("[8, 8]") && Contains("4-d"));
  CHECK_THROWS_WITH(max_pool2d(Variable<float>(Tensor<float>::zeros({2, 0, 8, 8})), 2),
                    Contains("[2, 0, 8, 8]") && Contains("empty"));
  // An empty batch gives an empty batch, as PyTorch.
  CHECK(max_pool2d(Variable<float>(Tensor<float>::zeros({0, 3, 8, 8})), 2).shape() == Shape{0, 3, 4, 4});
}

TEST_CASE("MaxPool2d and AvgPool2d default the stride to the kernel size and print as PyTorch",
          "[pooling][nn]") {
  nn::MaxPool2d<float> max_pool(2);
  nn::AvgPool2d<float> avg_pool(IntPair(3, 2), {.stride = IntPair(2, 1), .padding = 1});
  CHECK(max_pool.repr() == "MaxPool2d(kernel_size=2, stride=2, padding=0, dilation=1, ceil_mode=False)");
  CHECK(avg_pool.repr() == "AvgPool2d(kernel_size=(3, 2), stride=(2, 1), padding=1)");
  CHECK(max_pool.parameters().empty());
  Generator gen(3);
  const Variable<float> x(Tensor<float>::randn({2, 3, 8, 6}, gen));
  CHECK(values(max_pool.forward(x).value()) == values(max_pool2d(x, 2, {.stride = 2}).value()));
  CHECK(values(avg_pool.forward(x).value()) ==
        values(avg_pool2d(x, IntPair(3, 2), {.stride = IntPair(2, 1), .padding = 1}).value()));
}
