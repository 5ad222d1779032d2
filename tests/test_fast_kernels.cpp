// The vectorized element-wise, activation and linear kernels against plain double-precision references,
// on every ISA the CPU supports.
#include <catch2/catch.hpp>

#include <cmath>
#include <limits>
#include <vector>
#include "max_error.hpp"

#include "isa_guard.hpp"
#include "sumi/sumi.hpp"
#include "thread_count_guard.hpp"

namespace sk = sumi::kernels;
using sk::Isa;

namespace {

std::vector<Isa> supported_isas() {
  std::vector<Isa> isas;
  for (Isa isa : {Isa::scalar, Isa::avx2, Isa::avx512})
    if (sk::isa_supported(isa))
      isas.push_back(isa);
    else
      WARN("skipped: this CPU does not support " << sk::isa_name(isa));
  return isas;
}

double logistic(double x) {
  return 1.0 / (1.0 + std::exp(-x));
}

// Inputs spanning the clamp range, both signs, tiny values and a length that leaves a vector tail.
std::vector<float> activation_inputs() {
  std::vector<float> x;
  for (int i = 0; i < 4001; ++i) x.push_back(float(-100.0 + 200.0 * i / 4000.0));
  for (float v : {0.0f, -0.0f, 1e-30f, -1e-30f, 1e-7f, -1e-7f, 87.0f, -87.0f, 88.0f, -88.0f}) x.push_back(v);
  return x;
}

}  // namespace

TEST_CASE("exp_approx is within 2 ulp of exp over its range", "[kernels][fast_math]") {
  float worst = 0;
  for (int i = 0; i <= 100000; ++i) {
    const float x = float(-87.0 + 175.0 * i / 100000.0);
    const double exact = std::exp(double(x));
    const float ulp = std::nextafter(float(exact), std::numeric_limits<float>::infinity()) - float(exact);
    worst = std::max(worst, float(std::abs(sk::exp_approx(x) - exact) / ulp));
  }
  CHECK(worst <= 2.0f);
  CHECK(sk::exp_approx(0.0f) == 1.0f);
  CHECK(std::isfinite(sk::exp_approx(1000.0f)));
  // Below the normal range the result is 0, as the logistic function's is in PyTorch there.
  CHECK(sk::exp_approx(-87.2f) > 0.0f);
  CHECK(sk::exp_approx(-88.0f) == 0.0f);
  CHECK(sk::exp_approx(-1000.0f) == 0.0f);
  CHECK(sk::exp_approx(-std::numeric_limits<float>::infinity()) == 0.0f);
  CHECK(std::isnan(sk::exp_approx(std::numeric_limits<float>::quiet_NaN())));
}

TEST_CASE("sigmoid kernel matches the logistic function on every ISA", "[kernels][fast_math]") {
  const sumi::test::IsaGuard restore_isa;
  const std::vector<float> x = activation_inputs();
  for (Isa isa : supported_isas()) {
    INFO("isa " << sk::isa_name(isa));
    sk::set_isa(isa);
    std::vector<float> y(x.size());
    sk::sigmoid(int64_t(x.size()), x.data(), y.data());
    double worst = 0;
    for (size_t i = 0; i < x.size(); ++i) {
      // Relative error, except below e^-87.3 where exp_approx is 0: there the error is absolute (< 2e-38).
      const double exact = logistic(double(x[i]));
      worst = std::max(worst, std::abs(y[i] - exact) / std::max(exact, 5e-32));
    }
    CHECK(worst < 4e-7);
    // In place, inf and NaN.
    std::vector<float> special = {std::numeric_limits<float>::infinity(),
                                  -std::numeric_limits<float>::infinity(),
                                  std::numeric_limits<float>::quiet_NaN()};
    special.resize(35, 0.5f);  // long enough for the vector loop
    std::swap(special[0], special[20]);
    special[3] = special[34] = -100.0f;  // one in the vector loop, one in the scalar tail
    special[4] = -87.0f;
    sk::sigmoid(int64_t(special.size()), special.data(), special.data());
    CHECK(special[20] == 1.0f);
    CHECK(special[1] == 0.0f);
    CHECK(special[3] == 0.0f);
    CHECK(special[34] == 0.0f);
    CHECK(special[4] == Approx(logistic(-87.0)).epsilon(1e-6));
    CHECK(std::isnan(special[2]));
    CHECK(special[0] == Approx(logistic(0.5)).epsilon(1e-6));
  }
}

TEST_CASE("element-wise loops give the same result on every ISA and thread count", "[kernels][elementwise]") {
  const sumi::test::IsaGuard restore_isa;
  const sumi::test::ThreadCountGuard restore_threads;
  const int64_t n = 3 * sk::kParallelThreshold + 17;  // parallel, with a tail
  std::vector<float> a(n), b(n), c(n);
  for (int64_t i = 0; i < n; ++i) {
    a[i] = float(std::sin(0.1 * double(i)));
    b[i] = float(std::cos(0.37 * double(i)));
    c[i] = float(i % 7) - 3.0f;
  }
  const auto relu_grad = [](float g, float x, float) { return x > 0.0f ? g : 0.0f; };
  for (Isa isa : supported_isas()) {
    for (int t : {1, 2}) {
      INFO("isa " << sk::isa_name(isa) << ", " << t << " threads");
      sk::set_isa(isa);
      sumi::set_num_threads(t);
      std::vector<float> mapped(n), zipped(n), zipped3(n);
      sk::map(n, a.data(), mapped.data(), [](float v) { return v > 0.0f ? v : 0.0f; });
      sk::zip(n, a.data(), b.data(), zipped.data(), [](float u, float v) { return u * v + 1.0f; });
      sk::zip3(n, b.data(), a.data(), c.data(), zipped3.data(), relu_grad);
      int64_t wrong = 0;
      for (int64_t i = 0; i < n; ++i) {
        wrong += mapped[i] != (a[i] > 0.0f ? a[i] : 0.0f);
        wrong += std::abs(zipped[i] - (double(a[i]) * b[i] + 1.0)) > 1e-6;
        wrong += zipped3[i] != (a[i] > 0.0f ? b[i] : 0.0f);
      }
      CHECK(wrong == 0);
    }
  }
}

TEST_CASE("linear kernels match a double-precision reference on every ISA", "[kernels][linear]") {
  const sumi::test::IsaGuard restore_isa;
  struct Dims {
    int64_t n, in, out;
  };
  for (Dims d : {Dims{1, 1, 1}, Dims{7, 13, 5}, Dims{300, 288, 64}, Dims{300, 5, 64}, Dims{33, 64, 10}}) {
    std::vector<float> x(d.n * d.in), w(d.out * d.in), bias(d.out), gy(d.n * d.out);
    for (size_t i = 0; i < x.size(); ++i) x[i] = float(std::sin(0.3 * double(i)));
    for (size_t i = 0; i < w.size(); ++i) w[i] = float(std::cos(0.7 * double(i))) / float(d.in);
    for (size_t i = 0; i < bias.size(); ++i) bias[i] = 0.1f * float(i % 5);
    for (size_t i = 0; i < gy.size(); ++i) gy[i] = float(std::sin(1.1 * double(i) + 0.5));
    // References in double.
    std::vector<double> y_ref(d.n * d.out), gx_ref(d.n * d.in, 0.0), gw_ref(d.out * d.in, 0.0),
        gb_ref(d.out, 0.0);
    for (int64_t r = 0; r < d.n; ++r)
      for (int64_t o = 0; o < d.out; ++o) {
        double s = bias[o];
        for (int64_t k = 0; k < d.in; ++k) s += double(x[r * d.in + k]) * w[o * d.in + k];
        y_ref[r * d.out + o] = s;
        const double g = gy[r * d.out + o];
        gb_ref[o] += g;
        for (int64_t k = 0; k < d.in; ++k) {
          gx_ref[r * d.in + k] += g * w[o * d.in + k];
          gw_ref[o * d.in + k] += g * x[r * d.in + k];
        }
      }
    for (Isa isa : supported_isas()) {
      INFO("isa " << sk::isa_name(isa) << ", n " << d.n << " in " << d.in << " out " << d.out);
      sk::set_isa(isa);
      std::vector<float> y(d.n * d.out), gx(d.n * d.in), gw(d.out * d.in), gb(d.out);
      sk::linear_forward(d.n, d.in, d.out, x.data(), w.data(), bias.data(), y.data());
      sk::linear_backward_input(d.n, d.in, d.out, gy.data(), w.data(), gx.data());
      sk::linear_backward_weight(d.n, d.in, d.out, x.data(), gy.data(), gw.data(), gb.data());
      const auto max_error = [](const std::vector<float>& got, const std::vector<double>& want) {
        double e = 0;
        for (size_t i = 0; i < got.size(); ++i)
          e = sumi::test::nan_max(e, std::abs(got[i] - want[i]) / (1.0 + std::abs(want[i])));
        return e;
      };
      CHECK(max_error(y, y_ref) < 1e-5);
      CHECK(max_error(gx, gx_ref) < 1e-5);
      CHECK(max_error(gw, gw_ref) < 1e-4);
      CHECK(max_error(gb, gb_ref) < 1e-4);
    }
  }
}
