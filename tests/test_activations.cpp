#include <catch2/catch.hpp>
#include <cmath>
#include <cstdint>
#include <functional>
#include <limits>
#include <nlohmann/json.hpp>
#include <stdexcept>
#include <string>
#include <type_traits>
#include <utility>
#include <vector>

#include "fixture.hpp"
#include "gradcheck_helpers.hpp"
#include "sumi/nn/activation.hpp"
#include "sumi/ops/elementwise.hpp"
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

// The op a fixture case's config names, with its settings.
template <class T>
Variable<T> apply_config(const nlohmann::json& config, const Variable<T>& x) {
  const std::string op = config.at("op");
  if (op == "elu") return elu(x, config.at("alpha").get<T>());
  if (op == "selu") return selu(x);
  if (op == "gelu")
    return gelu(x, config.at("approximate") == "tanh" ? GeluApproximation::tanh : GeluApproximation::none);
  if (op == "silu") return silu(x);
  if (op == "softplus") return softplus(x, config.at("beta").get<T>(), config.at("threshold").get<T>());
  if (op == "mish") return mish(x);
  if (op == "hardtanh") return hardtanh(x, config.at("min_val").get<T>(), config.at("max_val").get<T>());
  if (op == "relu6") return relu6(x);
  FAIL("unknown op " << op);
  return x;
}

template <class T>
std::vector<T> values(const Tensor<T>& t) {
  const Tensor<T> c = t.contiguous();
  return std::vector<T>(c.data(), c.data() + c.numel());
}

// y = f(x) and dL/dx for L = sum(y * g) at the single value x.
template <class T>
std::pair<T, T> value_and_gradient(const std::function<Variable<T>(const Variable<T>&)>& f, T x, T g = T(1)) {
  Variable<T> v(Tensor<T>::from_vector({x}, {1}), true);
  const Variable<T> y = f(v);
  y.backward(Tensor<T>::from_vector({g}, {1}));
  return {y.value().data()[0], v.grad().data()[0]};
}

// Both NaN, equal infinities, or equal but for a rounding of the last bits (the float products of PyTorch's
// rounded constants).
bool same(double a, double b) {
  return (std::isnan(a) && std::isnan(b)) || a == b || std::abs(a - b) <= 1e-6 * std::abs(b);
}

void require_invalid_argument(const std::function<void()>& f, const std::vector<std::string>& parts) {
  try {
    f();
    FAIL("no exception");
  } catch (const std::invalid_argument& e) {
    const std::string message = e.what();
    INFO("message: " << message);
    for (const std::string& part : parts) CHECK(message.find(part) != std::string::npos);
  }
}

}  // namespace

TEMPLATE_TEST_CASE("activations match PyTorch on random inputs, kinks, thresholds and large inputs",
                   "[activations][fixture]", float, double) {
  using T = TestType;
  const test::Fixture fx("activations");
  const std::vector<std::string> cases = fx.meta_json("cases");
  REQUIRE(cases.size() == 13);
  // The fixture holds float32 roundings of float64 results: 6e-8 of relative error in double, plus a few
  // roundings of float's own where the computation is float; float's atol covers the zero crossings of
  // silu's and mish's gradients, where their terms cancel.
  const double rtol = std::is_same_v<T, float> ? 2e-6 : 1.2e-7;
  const double atol = std::is_same_v<T, float> ? 1e-7 : 1e-15;
  for (const std::string& c : cases) {
    SECTION(c) {
      const nlohmann::json config = fx.meta_json(c + ".config");
      Variable<T> x(fx.file().tensor<T>(c + ".x"), true);
      const Tensor<T> gy = fx.input<T>(c + ".gy");
      const Variable<T> y = apply_config(config, x);
      fx.require_each_close(c + ".y", y.value(), rtol, atol);
      y.backward(gy);
      fx.require_each_close(c + ".gx", x.grad(), rtol, atol);
    }
  }
}

TEST_CASE("activation gradients at their kinks and thresholds are PyTorch's", "[activations]") {
  using F = std::function<V(const V&)>;
  // elu's at 0 is the left one, alpha; selu's scale * alpha (PyTorch: 2.5 and 1.7580993408473766).
  CHECK(value_and_gradient<double>(F([](const V& x) { return elu(x, 2.5); }), 0.0).second == 2.5);
  CHECK(value_and_gradient<double>(F([](const V& x) { return elu(x, 2.5); }), -0.0).second == 2.5);
  CHECK(value_and_gradient<double>(F([](const V& x) { return selu(x); }), 0.0).second ==
        Approx(1.7580993408473766).epsilon(1e-15));
  // hardtanh's and relu6's are 0 at the bounds themselves, and g just inside them.
  for (const double b : {-1.0, 1.0})
    CHECK(value_and_gradient<double>(F([](const V& x) { return hardtanh(x); }), b, 3.0) ==
          std::pair<double, double>{b, 0.0});
  CHECK(value_and_gradient<double>(F([](const V& x) { return hardtanh(x); }), 0.999, 3.0).second == 3.0);
  CHECK(value_and_gradient<double>(F([](const V& x) { return hardtanh(x, -0.5, 2.0); }), -0.5).second == 0.0);
  CHECK(value_and_gradient<double>(F([](const V& x) { return hardtanh(x, -0.5, 2.0); }), 2.0).second == 0.0);
  CHECK(value_and_gradient<double>(F([](const V& x) { return relu6(x); }), 0.0) ==
        std::pair<double, double>{0.0, 0.0});
  CHECK(value_and_gradient<double>(F([](const V& x) { return relu6(x); }), 6.0) ==
        std::pair<double, double>{6.0, 0.0});
  CHECK(value_and_gradient<double>(F([](const V& x) { return relu6(x); }), 5.999).second == 1.0);
  // Equal bounds: that constant, no gradient anywhere.
  CHECK(value_and_gradient<double>(F([](const V& x) { return hardtanh(x, 2.0, 2.0); }), 2.0) ==
        std::pair<double, double>{2.0, 0.0});
  // softplus at beta * x == threshold is still the soft branch; just above it, x with gradient g.
  const auto [y20, g20] = value_and_gradient<double>(F([](const V& x) { return softplus(x); }), 20.0);
  CHECK(y20 == Approx(20.000000002061153).epsilon(1e-15));
  CHECK(g20 == Approx(0.9999999979388464).epsilon(1e-15));
  CHECK(g20 < 1.0);
  CHECK(value_and_gradient<double>(F([](const V& x) { return softplus(x); }), 20.001) ==
        std::pair<double, double>{20.001, 1.0});
  const auto [yb, gb] = value_and_gradient<double>(F([](const V& x) { return softplus(x, 2.0, 5.0); }), 2.5);
  CHECK(yb == Approx(2.503357674244559).epsilon(1e-15));
  CHECK(gb == Approx(0.9933071490757152).epsilon(1e-15));
  // gelu at 0 and ±1 (PyTorch's values).
  CHECK(value_and_gradient<double>(F([](const V& x) { return gelu(x); }), 0.0).second == 0.5);
  const auto [y1, g1] = value_and_gradient<double>(F([](const V& x) { return gelu(x); }), -1.0);
  CHECK(y1 == Approx(-0.15865525393145702).epsilon(1e-14));
  CHECK(g1 == Approx(-0.08331547058768635).epsilon(1e-14));
  const auto [t1, tg1] =
      value_and_gradient<double>(F([](const V& x) { return gelu(x, GeluApproximation::tanh); }), -1.0);
  CHECK(t1 == Approx(-0.15880800939172324).epsilon(1e-14));
  CHECK(tg1 == Approx(-0.08296408384578252).epsilon(1e-14));
}

TEST_CASE("activation gradients match finite differences away from their kinks", "[activations][gradcheck]") {
  using Fn = std::function<V(const std::vector<V>&)>;
  auto x = [](uint64_t seed, double low = -4, double high = 4) { return leaf({6, 7}, seed, {low, high}); };
  require_gradcheck(Fn([](const std::vector<V>& v) { return elu(v[0]); }), {x(31)});
  require_gradcheck(Fn([](const std::vector<V>& v) { return elu(v[0], 2.5); }), {x(32)});
  require_gradcheck(Fn([](const std::vector<V>& v) { return elu(v[0], -0.5); }), {x(33)});
  require_gradcheck(Fn([](const std::vector<V>& v) { return selu(v[0]); }), {x(34)});
  require_gradcheck(Fn([](const std::vector<V>& v) { return gelu(v[0]); }), {x(35)});
  require_gradcheck(Fn([](const std::vector<V>& v) { return gelu(v[0], GeluApproximation::tanh); }), {x(36)});
  require_gradcheck(Fn([](const std::vector<V>& v) { return silu(v[0]); }), {x(37, -8, 8)});
  require_gradcheck(Fn([](const std::vector<V>& v) { return softplus(v[0]); }), {x(38, -8, 8)});
  require_gradcheck(Fn([](const std::vector<V>& v) { return softplus(v[0], 2.0, 5.0); }), {x(39)});
  require_gradcheck(Fn([](const std::vector<V>& v) { return softplus(v[0], -0.5, 3.0); }), {x(40, -9, 4)});
  require_gradcheck(Fn([](const std::vector<V>& v) { return mish(v[0]); }), {x(41, -8, 8)});
  require_gradcheck(Fn([](const std::vector<V>& v) { return hardtanh(v[0]); }), {x(42, -2, 2)});
  require_gradcheck(Fn([](const std::vector<V>& v) { return hardtanh(v[0], -0.5, 2.0); }), {x(43, -2, 3)});
  require_gradcheck(Fn([](const std::vector<V>& v) { return relu6(v[0]); }), {x(44, -2, 8)});
}

TEMPLATE_TEST_CASE("activations at NaN and infinities give PyTorch's values and gradients", "[activations]",
                   float, double) {
  using T = TestType;
  using F = std::function<Variable<T>(const Variable<T>&)>;
  const T nan = std::numeric_limits<T>::quiet_NaN(), inf = std::numeric_limits<T>::infinity();
  const T selu_scale = T(1.0507009873554804934193349852946), selu_min = T(-1.7580993408473766);
  struct Case {
    std::string name;
    F f;
    // value and gradient (for g = 2) at NaN, +inf and -inf, as PyTorch's element-wise formula gives them
    std::vector<T> expected;
  };
  const std::vector<Case> cases = {
      {"elu", [](const Variable<T>& x) { return elu(x, T(1.5)); }, {nan, 2, inf, 2, -1.5, 0}},
      {"selu",
       [](const Variable<T>& x) { return selu(x); },
       {nan, 2 * selu_scale, inf, 2 * selu_scale, selu_min, 0}},
      {"gelu", [](const Variable<T>& x) { return gelu(x); }, {nan, nan, inf, nan, nan, nan}},
      {"gelu tanh",
       [](const Variable<T>& x) { return gelu(x, GeluApproximation::tanh); },
       {nan, nan, inf, nan, nan, nan}},
      {"silu", [](const Variable<T>& x) { return silu(x); }, {nan, nan, inf, nan, nan, nan}},
      {"softplus", [](const Variable<T>& x) { return softplus(x); }, {nan, nan, inf, 2, 0, 0}},
      {"mish", [](const Variable<T>& x) { return mish(x); }, {nan, nan, inf, nan, nan, nan}},
      {"hardtanh", [](const Variable<T>& x) { return hardtanh(x); }, {nan, 2, 1, 0, -1, 0}},
      {"relu6", [](const Variable<T>& x) { return relu6(x); }, {nan, 2, 6, 0, 0, 0}},
  };
  for (const Case& c : cases) {
    const T inputs[] = {nan, inf, -inf};
    for (int k = 0; k < 3; ++k) {
      const auto [y, g] = value_and_gradient<T>(c.f, inputs[k], T(2));
      INFO(c.name << " at " << inputs[k] << ": value " << y << ", gradient " << g);
      CHECK(same(y, c.expected[2 * k]));
      CHECK(same(g, c.expected[2 * k + 1]));
    }
  }
}

TEMPLATE_TEST_CASE("activations of large inputs neither overflow nor lose their value", "[activations]",
                   float, double) {
  using T = TestType;
  using F = std::function<Variable<T>(const Variable<T>&)>;
  const std::vector<std::pair<std::string, F>> ops = {
      {"elu", [](const Variable<T>& x) { return elu(x); }},
      {"selu", [](const Variable<T>& x) { return selu(x); }},
      {"gelu", [](const Variable<T>& x) { return gelu(x); }},
      {"gelu tanh", [](const Variable<T>& x) { return gelu(x, GeluApproximation::tanh); }},
      {"silu", [](const Variable<T>& x) { return silu(x); }},
      {"softplus", [](const Variable<T>& x) { return softplus(x); }},
      {"softplus above float's exp range", [](const Variable<T>& x) { return softplus(x, T(1), T(1e6)); }},
      {"mish", [](const Variable<T>& x) { return mish(x); }},
  };
  // Each tends to x (scale * x for selu) with gradient 1 for large positive x, and to a constant (0 or
  // -alpha) with gradient 0 for large negative x.
  for (const auto& [name, f] : ops) {
    const T scale = name == "selu" ? T(1.0507009873554804934193349852946) : T(1);
    for (const T x : {T(100), T(1000), T(1e20), std::numeric_limits<T>::max()}) {
      const auto [y, g] = value_and_gradient<T>(f, x);
      INFO(name << " at " << x << ": value " << y << ", gradient " << g);
      CHECK(y == scale * x);
      CHECK(g == scale);
    }
    for (const T x : {T(-100), T(-1000), T(-1e20), std::numeric_limits<T>::lowest()}) {
      const auto [y, g] = value_and_gradient<T>(f, x);
      INFO(name << " at " << x << ": value " << y << ", gradient " << g);
      CHECK(std::isfinite(y));
      CHECK(std::abs(y - (name == "elu"    ? T(-1)
                          : name == "selu" ? T(-1.7580993408473766)
                                           : T(0))) <= T(1e-30));
      CHECK(std::abs(g) <= T(1e-30));
    }
  }
  // Not flushed to 0 in double: PyTorch's float64 values at -100.
  if constexpr (std::is_same_v<T, double>) {
    CHECK(value_and_gradient<T>(ops[4].second, -100.0).first ==
          Approx(-3.720075976020836e-42).epsilon(1e-12));
    CHECK(value_and_gradient<T>(ops[4].second, -100.0).second ==
          Approx(-3.682875216260627e-42).epsilon(1e-12));
    CHECK(value_and_gradient<T>(ops[5].second, -100.0).first == Approx(3.720075976020836e-44).epsilon(1e-12));
    CHECK(value_and_gradient<T>(ops[7].second, -100.0).first ==
          Approx(-3.7200759760208363e-42).epsilon(1e-12));
  }
}

TEST_CASE("activation layers compute their ops and print PyTorch's repr", "[activations][nn]") {
  VF x(TF::from_vector({-7.0f, -1.0f, -0.25f, 0.0f, 0.5f, 1.0f, 2.5f, 6.0f, 30.0f}, {3, 3}), true);
  const auto same_values = [](const VF& a, const VF& b) { return values(a.value()) == values(b.value()); };
  using GA = GeluApproximation;

  CHECK(same_values(nn::ELU<float>()(x), elu(x)));
  CHECK(same_values(nn::ELU<float>(0.5)(x), elu(x, 0.5f)));
  CHECK(!same_values(nn::ELU<float>(0.5)(x), elu(x)));
  CHECK(same_values(nn::SELU<float>()(x), selu(x)));
  CHECK(same_values(nn::GELU<float>()(x), gelu(x)));
  CHECK(same_values(nn::GELU<float>(GA::tanh)(x), gelu(x, GA::tanh)));
  CHECK(same_values(nn::GELU<float>("tanh")(x), gelu(x, GA::tanh)));
  CHECK(!same_values(nn::GELU<float>(GA::tanh)(x), gelu(x)));
  CHECK(same_values(nn::SiLU<float>()(x), silu(x)));
  CHECK(same_values(nn::Softplus<float>()(x), softplus(x)));
  CHECK(same_values(nn::Softplus<float>(2.0, 5)(x), softplus(x, 2.0f, 5.0f)));
  CHECK(!same_values(nn::Softplus<float>(2.0, 5)(x), softplus(x, 2.0f)));
  CHECK(same_values(nn::Mish<float>()(x), mish(x)));
  CHECK(same_values(nn::Hardtanh<float>()(x), hardtanh(x)));
  CHECK(same_values(nn::Hardtanh<float>(-0.5, 2)(x), hardtanh(x, -0.5f, 2.0f)));
  CHECK(same_values(nn::ReLU6<float>()(x), relu6(x)));
  CHECK(same_values(nn::Softmax<float>(1)(x), softmax(x, 1)));
  CHECK(same_values(nn::Softmax<float>(0)(x), softmax(x, 0)));
  CHECK(same_values(nn::LogSoftmax<float>(-1)(x), log_softmax(x, -1)));
  CHECK(!same_values(nn::LogSoftmax<float>(0)(x), log_softmax(x, 1)));
  const VF same = nn::Identity<float>()(x);
  CHECK(same.value().data() == x.value().data());
  CHECK(same_values(nn::Identity<float>()(x), x));
  // Gradients flow through a layer as through its op.
  VF z(TF::from_vector({-1.0f, 0.0f, 6.0f, 3.0f}, {4}), true);
  sum(nn::ReLU6<float>()(z)).backward();
  CHECK(values(z.grad()) == std::vector<float>{0, 0, 0, 1});

  // repr() as torch 1.13's repr(torch.nn.X(...)).
  CHECK(nn::ELU<float>().repr() == "ELU(alpha=1.0)");
  CHECK(nn::ELU<float>(2).repr() == "ELU(alpha=2)");
  CHECK(nn::ELU<double>(0.5).repr() == "ELU(alpha=0.5)");
  CHECK(nn::SELU<float>().repr() == "SELU()");
  CHECK(nn::GELU<float>().repr() == "GELU(approximate='none')");
  CHECK(nn::GELU<float>(GA::tanh).repr() == "GELU(approximate='tanh')");
  CHECK(nn::GELU<float>("tanh").repr() == "GELU(approximate='tanh')");
  CHECK(nn::SiLU<float>().repr() == "SiLU()");
  CHECK(nn::Softplus<float>().repr() == "Softplus(beta=1, threshold=20)");
  CHECK(nn::Softplus<float>(2.0, 10).repr() == "Softplus(beta=2.0, threshold=10)");
  CHECK(nn::Softplus<float>(0.5, 1e-5).repr() == "Softplus(beta=0.5, threshold=1e-05)");
  CHECK(nn::Mish<float>().repr() == "Mish()");
  CHECK(nn::Hardtanh<float>().repr() == "Hardtanh(min_val=-1.0, max_val=1.0)");
  CHECK(nn::Hardtanh<float>(-2, 2).repr() == "Hardtanh(min_val=-2, max_val=2)");
  CHECK(nn::Hardtanh<float>(0.0, 6.5).repr() == "Hardtanh(min_val=0.0, max_val=6.5)");
  CHECK(nn::ReLU6<float>().repr() == "ReLU6()");
  CHECK(nn::Softmax<float>(1).repr() == "Softmax(dim=1)");
  CHECK(nn::Softmax<float>(-1).repr() == "Softmax(dim=-1)");
  CHECK(nn::LogSoftmax<float>(0).repr() == "LogSoftmax(dim=0)");
  CHECK(nn::Identity<float>().repr() == "Identity()");
}

TEST_CASE("activations refuse bad settings, naming the op and the value", "[activations][errors]") {
  const double nan = std::nan(""), inf = std::numeric_limits<double>::infinity();
  const V x(TD::from_vector({-1.0, 0.5, 2.0}, {3}), true);
  require_invalid_argument([&] { hardtanh(x, 2.0, 1.0); }, {"hardtanh", "min_val 2", "max_val 1"});
  require_invalid_argument([&] { hardtanh(x, nan, 1.0); }, {"hardtanh", "nan"});
  require_invalid_argument([&] { hardtanh(x, -1.0, nan); }, {"hardtanh", "nan"});
  require_invalid_argument([&] { softplus(x, 0.0); }, {"softplus", "beta", "0"});
  require_invalid_argument([&] { softplus(x, nan); }, {"softplus", "beta", "nan"});
  require_invalid_argument([&] { softplus(x, -inf); }, {"softplus", "beta", "-inf"});
  require_invalid_argument([&] { softplus(x, 1.0, nan); }, {"softplus", "threshold", "NaN"});
  require_invalid_argument([&] { elu(x, nan); }, {"elu", "alpha", "nan"});
  require_invalid_argument([&] { elu(x, inf); }, {"elu", "alpha", "inf"});
  require_invalid_argument([&] { gelu(x, static_cast<GeluApproximation>(7)); }, {"gelu", "approximate", "7"});
  // float's range: a beta that rounds to 0 in float is refused, not divided by.
  const VF xf(TF::from_vector({1.0f}, {1}));
  require_invalid_argument([&] { softplus(xf, 1e-50); }, {"softplus", "beta", "0"});
  // Settings PyTorch takes: infinite thresholds and bounds, equal bounds, negative alpha and beta.
  CHECK(values(softplus(x, 1.0, inf).value())[2] == Approx(std::log1p(std::exp(2.0))));
  CHECK(values(softplus(x, 1.0, -inf).value()) == values(x.value()));
  CHECK(values(hardtanh(x, -inf, inf).value()) == values(x.value()));
  CHECK(values(hardtanh(x, 1.0, 1.0).value()) == std::vector<double>{1, 1, 1});
  CHECK(values(elu(x, -0.5).value())[0] == Approx(-0.5 * std::expm1(-1.0)));
  CHECK(values(softplus(x, -0.5, 3.0).value())[0] == Approx(std::log1p(std::exp(0.5)) / -0.5));

  // The layers check when they are made. nn.Hardtanh needs min_val < max_val (the op also takes equal ones).
  require_invalid_argument([] { (void)nn::Hardtanh<float>(1.0, 1.0); }, {"Hardtanh", "1.0"});
  require_invalid_argument([] { (void)nn::Hardtanh<float>(2, 1); }, {"Hardtanh", "min_val 2", "max_val 1"});
  require_invalid_argument([&] { (void)nn::Hardtanh<float>(nan, 1.0); }, {"Hardtanh", "nan"});
  require_invalid_argument([] { (void)nn::Softplus<float>(0); }, {"Softplus", "beta", "0"});
  require_invalid_argument([&] { (void)nn::Softplus<double>(1, nan); }, {"Softplus", "threshold"});
  require_invalid_argument([] { (void)nn::Softplus<float>(1e300); }, {"Softplus", "beta", "1e+300"});
  require_invalid_argument([&] { (void)nn::ELU<float>(inf); }, {"ELU", "alpha", "inf"});
  require_invalid_argument([] { (void)nn::GELU<float>("exact"); }, {"GELU", "'none' or 'tanh'", "'exact'"});
  require_invalid_argument([] { (void)nn::GELU<float>(static_cast<GeluApproximation>(5)); }, {"GELU", "5"});
}
