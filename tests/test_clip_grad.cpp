// Gradient clipping (optim/clip_grad.hpp) against torch.nn.utils.clip_grad_norm_ / clip_grad_value_: the
// values PyTorch 1.13 gives on small cases, and norms of random gradients against Eigen's.
#include <catch2/catch.hpp>

#include <Eigen/Core>
#include <cmath>
#include <limits>
#include <vector>

#include "sumi/optim/clip_grad.hpp"
#include "sumi/tensor/random.hpp"

using namespace sumi;
using Catch::Contains;

namespace {

template <class T>
Variable<T> with_grad(const std::vector<T>& grad, const Shape& shape) {
  Variable<T> p(Tensor<T>::zeros(shape), true);
  p.grad() = Tensor<T>::from_vector(grad, shape);
  return p;
}

template <class T>
std::vector<T> grad_of(const Variable<T>& p) {
  const Tensor<T> g = p.grad().contiguous();
  return {g.data(), g.data() + g.numel()};
}

}  // namespace

TEST_CASE("clip_grad_norm_ scales as PyTorch's on small cases", "[optim][clip]") {
  // PyTorch 1.13, gradients [3, -4] and [[12]], max_norm 6.5: norms 13 (p = 2), 19 (p = 1), 12 (p = inf);
  // each gradient times 6.5 / (norm + 1e-6), here computed in double and rounded once (PyTorch computes it
  // in float: its p = 1 result for -4 is 1 ulp away).
  for (const auto& [norm_type, norm] : {std::pair{2.0, 13.0}, std::pair{1.0, 19.0},
                                        std::pair{std::numeric_limits<double>::infinity(), 12.0}}) {
    INFO("norm_type " << norm_type);
    auto a = with_grad<float>({3, -4}, {2});
    auto b = with_grad<float>({12}, {1, 1});
    CHECK(optim::clip_grad_norm_<float>({a, b}, 6.5, norm_type) == Approx(norm).epsilon(1e-12));
    const float scale = float(6.5 / (norm + 1e-6));
    CHECK(grad_of(a) == std::vector<float>{3 * scale, -4 * scale});
    CHECK(grad_of(b) == std::vector<float>{12 * scale});
  }
  SECTION("a norm within the limit leaves the gradients as they are") {
    auto a = with_grad<float>({3, -4}, {2});
    CHECK(optim::clip_grad_norm_<float>({a}, 5.0) == 5.0);  // 5 / (5 + 1e-6) < 1, yet PyTorch scales too
    CHECK(grad_of(a) != std::vector<float>{3, -4});
    auto b = with_grad<float>({3, -4}, {2});
    CHECK(optim::clip_grad_norm_<float>({b}, 100.0) == 5.0);
    CHECK(grad_of(b) == std::vector<float>{3, -4});
  }
  SECTION("an infinite norm zeroes the finite gradients; a NaN makes every gradient NaN") {
    const float inf = std::numeric_limits<float>::infinity(), nan = std::numeric_limits<float>::quiet_NaN();
    auto a = with_grad<float>({3, inf}, {2});
    auto b = with_grad<float>({12}, {1});
    CHECK(std::isinf(optim::clip_grad_norm_<float>({a, b}, 6.5)));
    CHECK(grad_of(a)[0] == 0);
    CHECK(std::isnan(grad_of(a)[1]));
    CHECK(grad_of(b)[0] == 0);
    auto c = with_grad<float>({3, nan}, {2});
    auto d = with_grad<float>({12}, {1});
    CHECK(std::isnan(optim::clip_grad_norm_<float>({c, d}, 6.5)));
    CHECK(std::isnan(grad_of(c)[0]));
    CHECK(std::isnan(grad_of(d)[0]));
    // Asked to, it refuses instead, leaving the gradients alone (a strided one still the same view).
    auto e = with_grad<float>({3, nan}, {2});
    Variable<float> f(Tensor<float>::zeros({2, 2}), true);
    f.grad() = Tensor<float>::from_vector({1, 2, 3, 4}, {2, 2}).transpose(0, 1);
    CHECK_THROWS_WITH(optim::clip_grad_norm_<float>({e, f}, 6.5, 2.0, true),
                      Contains("clip_grad_norm_") && Contains("order 2") && Contains("is nan"));
    CHECK(grad_of(e)[0] == 3);
    CHECK_FALSE(f.grad().is_contiguous());
    CHECK(grad_of(f) == std::vector<float>{1, 3, 2, 4});
  }
}

TEST_CASE("clip_grad_norm_'s total norm equals the norm of all gradient elements together", "[optim][clip]") {
  Generator gen(7);
  std::vector<Variable<double>> params;
  std::vector<double> all;
  for (const Shape& shape : {Shape{3, 4}, Shape{5}, Shape{2, 1, 3}}) {
    Variable<double> p(Tensor<double>::zeros(shape), true);
    p.grad() = Tensor<double>::randn(shape, gen);
    const auto g = grad_of(p);
    all.insert(all.end(), g.begin(), g.end());
    params.push_back(p);
  }
  params.push_back(Variable<double>(Tensor<double>::zeros({4}), true));  // no gradient: skipped
  const Eigen::Map<const Eigen::ArrayXd> flat(all.data(), Eigen::Index(all.size()));
  for (const double p : {1.0, 2.0, 3.0, 0.5}) {
    INFO("p " << p);
    const double expected = std::pow(flat.abs().pow(p).sum(), 1 / p);
    std::vector<Variable<double>> copies;
    for (const auto& v : params) copies.push_back(v.grad().defined() ? with_grad(grad_of(v), v.shape()) : v);
    CHECK(optim::clip_grad_norm_(copies, 0.25, p) == Approx(expected).epsilon(1e-13));
    // After clipping the norm is max_norm, up to the 1e-6 PyTorch adds to the divisor.
    std::vector<double> clipped;
    for (const auto& v : copies)
      if (v.grad().defined()) {
        const auto g = grad_of(v);
        clipped.insert(clipped.end(), g.begin(), g.end());
      }
    CHECK(
        std::pow(
            Eigen::Map<const Eigen::ArrayXd>(clipped.data(), Eigen::Index(clipped.size())).abs().pow(p).sum(),
            1 / p) == Approx(0.25).epsilon(1e-6));
  }
  CHECK(optim::clip_grad_norm_(params, 1e9, std::numeric_limits<double>::infinity()) ==
        flat.abs().maxCoeff());
  CHECK(optim::clip_grad_norm_(std::vector<Variable<double>>{}, 1.0) == 0);
}

TEST_CASE("clip_grad_norm_ counts a repeated parameter once, reads strided gradients and does not overflow",
          "[optim][clip]") {
  auto a = with_grad<double>({3, -4}, {2});
  CHECK(optim::clip_grad_norm_<double>({a, a, a}, 2.5) == 5);
  CHECK(grad_of(a) == std::vector<double>{3 * (2.5 / (5 + 1e-6)), -4 * (2.5 / (5 + 1e-6))});  // scaled once
  // A transposed (non-contiguous) gradient: the same norm as its contiguous copy, and the scaling written
  // through the view into the tensor it views, as PyTorch's in-place mul_.
  const Tensor<double> base = Tensor<double>::from_vector({1, 2, 3, 4, 5, 6}, {2, 3});
  Variable<double> t(Tensor<double>::zeros({3, 2}), true);
  t.grad() = base.transpose(0, 1);
  REQUIRE_FALSE(t.grad().is_contiguous());
  CHECK(optim::clip_grad_norm_<double>({t}, std::sqrt(91.0) / 2) == Approx(std::sqrt(91.0)));
  CHECK(t.grad().at({0, 1}) == Approx(2.0));  // was 4
  CHECK(t.grad().at({2, 0}) == Approx(1.5));  // was 3
  CHECK(base.at({1, 0}) == Approx(2.0));
  optim::clip_grad_value_<double>({t}, 1.0);
  CHECK(base.at({1, 2}) == 1.0);  // was 3
  CHECK_FALSE(t.grad().is_contiguous());
  // Gradients whose squares overflow a double still have a finite 2-norm.
  auto big = with_grad<double>({3e200, -4e200}, {2});
  CHECK(optim::clip_grad_norm_<double>({big}, 1.0) == Approx(5e200));
  CHECK(grad_of(big)[1] == Approx(-0.8));
}

TEST_CASE("clip_grad_value_ clamps each gradient element", "[optim][clip]") {
  // PyTorch 1.13: [3, -40] and [12] clipped at 5 -> [3, -5] and [5]; NaN stays NaN.
  auto a = with_grad<float>({3, -40, std::numeric_limits<float>::quiet_NaN()}, {3});
  auto b = with_grad<float>({12}, {1});
  optim::clip_grad_value_<float>({a, b}, 5);
  CHECK(grad_of(a)[0] == 3);
  CHECK(grad_of(a)[1] == -5);
  CHECK(std::isnan(grad_of(a)[2]));
  CHECK(grad_of(b)[0] == 5);
}

TEST_CASE("clipping takes a vector, a braced list without its type or one parameter, alike",
          "[optim][clip]") {
  const auto fresh = [] {
    return std::vector<Variable<double>>{with_grad<double>({3, -4}, {2}), with_grad<double>({12}, {1})};
  };
  // The 1-norm (19), so that a norm_type not passed on would show.
  auto reference = fresh();
  const double norm = optim::clip_grad_norm_(reference, 6.5, 1.0);
  CHECK(norm == 19);
  auto braced = fresh();
  CHECK(optim::clip_grad_norm_({braced[0], braced[1]}, 6.5, 1.0) == norm);
  CHECK(grad_of(braced[0]) == grad_of(reference[0]));
  CHECK(grad_of(braced[1]) == grad_of(reference[1]));
  auto single = fresh();
  CHECK(optim::clip_grad_norm_(single[0], 2.5, 1.0) == 7);
  auto alone = fresh();
  optim::clip_grad_norm_(std::vector{alone[0]}, 2.5, 1.0);
  CHECK(grad_of(single[0]) == grad_of(alone[0]));
  CHECK(grad_of(single[0])[0] < 3);
  CHECK(grad_of(single[1]) == std::vector<double>{12});
  auto poisoned = with_grad<double>({3, std::numeric_limits<double>::quiet_NaN()}, {2});
  CHECK_THROWS_WITH(optim::clip_grad_norm_(poisoned, 1.0, 2.0, true), Contains("cannot be clipped"));
  CHECK_THROWS_WITH(optim::clip_grad_norm_({poisoned}, 1.0, 2.0, true), Contains("cannot be clipped"));

  auto values = fresh();
  optim::clip_grad_value_({values[0], values[1]}, 3.5);
  CHECK(grad_of(values[0]) == std::vector<double>{3, -3.5});
  CHECK(grad_of(values[1]) == std::vector<double>{3.5});
  auto one = fresh();
  optim::clip_grad_value_(one[0], 3.5);
  CHECK(grad_of(one[0]) == std::vector<double>{3, -3.5});
  CHECK(grad_of(one[1]) == std::vector<double>{12});
}

TEST_CASE("gradient clipping refuses limits that would flip or poison the gradients",
          "[optim][clip][errors]") {
  auto a = with_grad<float>({3, -4}, {2});
  const double nan = std::numeric_limits<double>::quiet_NaN();
  for (const double max_norm : {-1.0, nan})
    CHECK_THROWS_WITH(optim::clip_grad_norm_<float>({a}, max_norm),
                      Contains("max_norm must be non-negative"));
  for (const double norm_type : {0.0, -2.0, nan})
    CHECK_THROWS_WITH(optim::clip_grad_norm_<float>({a}, 1.0, norm_type),
                      Contains("norm_type must be positive"));
  for (const double clip_value : {-0.5, nan})
    CHECK_THROWS_WITH(optim::clip_grad_value_<float>({a}, clip_value),
                      Contains("clip_value must be non-negative"));
  CHECK(grad_of(a) == std::vector<float>{3, -4});
}
