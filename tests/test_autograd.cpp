#include <algorithm>
#include <catch2/catch.hpp>
#include <cmath>
#include <functional>
#include <limits>
#include <string>
#include <utility>
#include <vector>

#include "fixture.hpp"
#include "gradcheck_helpers.hpp"
#include "isa_guard.hpp"
#include "sumi/autograd/gradient_zip.hpp"
#include "sumi/ops/dropout.hpp"
#include "sumi/ops/elementwise.hpp"
#include "sumi/ops/linalg.hpp"
#include "sumi/ops/loss.hpp"
#include "sumi/ops/reduction.hpp"
#include "sumi/ops/shape_ops.hpp"
#include "sumi/ops/softmax.hpp"
#include "thread_count_guard.hpp"

using namespace sumi;
using sumi::test::leaf;
using sumi::test::require_gradcheck;
using V = Variable<double>;
using TD = Tensor<double>;

TEST_CASE("binary ops broadcast and their gradients match finite differences", "[autograd][gradcheck]") {
  const std::vector<std::pair<Shape, Shape>> shape_pairs = {
      {{3, 4}, {3, 4}}, {{3, 4}, {}}, {{3, 4}, {4}}, {{3, 4}, {3, 1}}, {{2, 3, 4, 5}, {1, 3, 1, 1}}};
  for (const auto& [sa, sb] : shape_pairs) {
    SECTION("shapes " + shape_str(sa) + " and " + shape_str(sb)) {
      require_gradcheck([](const std::vector<V>& v) { return add(v[0], v[1]); }, {leaf(sa, 1), leaf(sb, 2)});
      require_gradcheck([](const std::vector<V>& v) { return sub(v[0], v[1]); }, {leaf(sa, 3), leaf(sb, 4)});
      require_gradcheck([](const std::vector<V>& v) { return mul(v[0], v[1]); }, {leaf(sa, 5), leaf(sb, 6)});
      require_gradcheck([](const std::vector<V>& v) { return div(v[0], v[1]); },
                        {leaf(sa, 7), leaf(sb, 8, {0.5, 2})});
    }
  }
}

TEST_CASE("unary ops match finite differences", "[autograd][gradcheck]") {
  auto x = [] { return leaf({4, 5}, 11); };
  require_gradcheck([](const std::vector<V>& v) { return neg(v[0]); }, {x()});
  require_gradcheck([](const std::vector<V>& v) { return relu(v[0]); }, {x()});
  require_gradcheck([](const std::vector<V>& v) { return leaky_relu(v[0], 0.2); }, {x()});
  require_gradcheck([](const std::vector<V>& v) { return sigmoid(v[0]); }, {x()});
  require_gradcheck([](const std::vector<V>& v) { return tanh(v[0]); }, {x()});
  require_gradcheck([](const std::vector<V>& v) { return exp(v[0]); }, {x()});
  require_gradcheck([](const std::vector<V>& v) { return log(v[0]); }, {leaf({4, 5}, 12, {0.1, 3})});
  require_gradcheck([](const std::vector<V>& v) { return v[0] * 3.0 + 1.0 - v[0] / 2.0; }, {x()});
  require_gradcheck([](const std::vector<V>& v) { return sqrt(v[0]); }, {leaf({4, 5}, 14, {0.1, 3})});
  require_gradcheck([](const std::vector<V>& v) { return abs(v[0]); }, {x()});
  require_gradcheck([](const std::vector<V>& v) { return clamp(v[0], -0.5, 0.5); }, {x()});
  require_gradcheck([](const std::vector<V>& v) { return clamp_min(v[0], 0.25); }, {x()});
  require_gradcheck([](const std::vector<V>& v) { return clamp_max(v[0], -0.25); }, {x()});
  require_gradcheck([](const std::vector<V>& v) { return 2.0 / v[0] - 1.0; }, {leaf({4, 5}, 15, {0.2, 2})});
}

TEST_CASE("sqrt, abs and clamp give PyTorch's values and gradients at their edges", "[autograd]") {
  const double nan = std::nan(""), inf = std::numeric_limits<double>::infinity();
  const auto values = [](const TD& t) { return std::vector<double>(t.data(), t.data() + t.numel()); };
  // torch.abs(x).backward(ones) at [0, -0, nan, -2, 3]: [0, 0, 0, -1, 1].
  V a(TD::from_vector({0.0, -0.0, nan, -2.0, 3.0}, {5}), true);
  sum(abs(a)).backward();
  CHECK(values(a.grad()) == std::vector<double>{0, 0, 0, -1, 1});
  // With gradient [inf, -1, nan, 1, 1]: [nan, -0, nan, -1, 1] (inf * 0 is NaN; the zero keeps g's sign).
  V a2(TD::from_vector({0.0, 0.0, nan, -2.0, 3.0}, {5}), true);
  abs(a2).backward(TD::from_vector({inf, -1.0, nan, 1.0, 1.0}, {5}));
  CHECK(std::isnan(a2.grad().data()[0]));
  CHECK((a2.grad().data()[1] == 0 && std::signbit(a2.grad().data()[1])));
  CHECK(std::isnan(a2.grad().data()[2]));
  // torch.sqrt(x).backward(g) at x [0, 4, 0], g [1, 1, 0]: [inf, 0.25, nan].
  V r(TD::from_vector({0.0, 4.0, 0.0}, {3}), true);
  sqrt(r).backward(TD::from_vector({1.0, 1.0, 0.0}, {3}));
  CHECK(r.grad().data()[0] == inf);
  CHECK(r.grad().data()[1] == 0.25);
  CHECK(std::isnan(r.grad().data()[2]));
  // torch.clamp(x, 0, 1) at [-1, 0, 0.5, 1, 2, nan]: [0, 0, 0.5, 1, 1, nan], gradient [0, 1, 1, 1, 0, 0].
  V c(TD::from_vector({-1.0, 0.0, 0.5, 1.0, 2.0, nan}, {6}), true);
  V y = clamp(c, 0.0, 1.0);
  const std::vector<double> yv = values(y.value());
  CHECK(std::vector<double>(yv.begin(), yv.end() - 1) == std::vector<double>{0, 0, 0.5, 1, 1});
  CHECK(std::isnan(yv.back()));
  sum(y).backward();
  CHECK(values(c.grad()) == std::vector<double>{0, 1, 1, 1, 0, 0});
  // torch.clamp(x, 1, 0): every element is the upper bound, with no gradient.
  V d(TD::from_vector({-1.0, 0.5, 2.0}, {3}), true);
  V z = clamp(d, 1.0, 0.0);
  CHECK(values(z.value()) == std::vector<double>{0, 0, 0});
  sum(z).backward();
  CHECK(values(d.grad()) == std::vector<double>{0, 0, 0});
  CHECK_THROWS_WITH(clamp(d, nan, 1.0),
                    Catch::Matchers::Contains("clamp") && Catch::Matchers::Contains("[3]"));
}

TEST_CASE("pow's gradient matches PyTorch's at 0, where it is 0 for exponent 0", "[autograd]") {
  for (const double p : {0.0, 1.0, 2.0, 3.0}) {
    V x(TD::from_vector({0.0, 1.5}, {2}), true);
    sum(pow_scalar(x, p)).backward();
    INFO("exponent " << p);
    REQUIRE(x.grad().data()[0] == (p == 1.0 ? 1.0 : 0.0));
    REQUIRE(x.grad().data()[1] == Approx(p * std::pow(1.5, p - 1)));
  }
  require_gradcheck([](const std::vector<V>& v) { return pow_scalar(v[0], 2.5); },
                    {leaf({4, 5}, 13, {0.1, 3})});
}

TEST_CASE("dividing by a scalar divides, as PyTorch does", "[autograd]") {
  // Multiplying by 1 / s instead is off by an ulp for 0.3 / 0.1 and overflows for a tiny s.
  V x(TD::from_vector({7.0, 0.3, 1e-300}, {3}), true);
  const V by_tenth = x / 0.1, by_tiny = x / 1e-310;
  REQUIRE(by_tenth.value().at({0}) == 7.0 / 0.1);
  REQUIRE(by_tenth.value().at({1}) == 0.3 / 0.1);
  REQUIRE(by_tiny.value().at({2}) == 1e-300 / 1e-310);
  REQUIRE(std::isfinite(by_tiny.value().at({2})));
  sum(x / 3.0).backward();
  REQUIRE(x.grad().at({0}) == 1.0 / 3.0);
  const Variable<float> f(Tensor<float>::from_vector({1e-30f}, {1}));
  REQUIRE((f / 1e-39f).value().at({0}) == 1e-30f / 1e-39f);
  // A scalar over a variable divides too: 0.3 / x at x = 0.1 is 0.3 / 0.1, where 0.3 * (1 / 0.1) is an ulp
  // off; its gradient is -0.3 / x^2.
  V tenth(TD::from_vector({0.1, 4.0}, {2}), true);
  const V over = 0.3 / tenth;
  REQUIRE(over.value().at({0}) == 0.3 / 0.1);
  REQUIRE(over.value().at({1}) == 0.3 / 4.0);
  sum(over).backward();
  REQUIRE(tenth.grad().at({1}) == Approx(-0.3 / 16));
}

TEST_CASE("gradcheck perturbs a transposed view's elements in logical order", "[autograd][gradcheck]") {
  // x * w with w stored transposed: element i of the view is not element i of its memory.
  const V w(leaf({3, 4}, 14).value().transpose(0, 1), true);
  REQUIRE_FALSE(w.value().is_contiguous());
  const V x = leaf({4, 3}, 15);
  require_gradcheck([](const std::vector<V>& v) { return v[0] * v[1]; }, {x, w});
  // The caller's variables keep their values and get no gradient.
  REQUIRE_FALSE(w.grad().defined());
  REQUIRE_FALSE(w.value().is_contiguous());
}

TEST_CASE("gradcheck fails a NaN gradient, analytic or numeric", "[autograd][gradcheck]") {
  // y = 2x with a backward that returns NaN, and y = x whose value turns NaN when perturbed.
  const auto nan_backward = [](const std::vector<V>& v) {
    return V::from_op(map(v[0].value(), [](double x) { return 2 * x; }), "nan_backward", {v[0]},
                      [](const Tensor<double>& g) {
                        return std::vector<Tensor<double>>{
                            map(g, [](double) { return std::numeric_limits<double>::quiet_NaN(); })};
                      });
  };
  const GradcheckResult analytic = gradcheck<double>(nan_backward, {leaf({3}, 16)});
  REQUIRE_FALSE(analytic.ok);
  REQUIRE(std::isnan(analytic.max_abs_error));
  REQUIRE_THAT(analytic.message, Catch::Contains("analytic") && Catch::Contains("nan"));
  const V at_one(Tensor<double>::from_vector({1.0}, {1}), true);
  const GradcheckResult numeric =
      gradcheck<double>([](const std::vector<V>& v) { return sqrt(1.0 - v[0] * v[0]); }, {at_one});
  REQUIRE_FALSE(numeric.ok);
}

TEST_CASE("matmul and linear match finite differences", "[autograd][gradcheck]") {
  require_gradcheck([](const std::vector<V>& v) { return matmul(v[0], v[1]); },
                    {leaf({3, 4}, 1), leaf({4, 5}, 2)});
  require_gradcheck([](const std::vector<V>& v) { return linear(v[0], v[1], v[2]); },
                    {leaf({3, 4}, 3), leaf({5, 4}, 4), leaf({5}, 5)});
  require_gradcheck([](const std::vector<V>& v) { return linear(v[0], v[1]); },
                    {leaf({3, 4}, 6), leaf({2, 4}, 7)});
}

TEST_CASE("matmul and linear on vectors and broadcast batches match PyTorch", "[autograd][fixture]") {
  test::Fixture fx("linalg");
  using VF = Variable<float>;
  for (const std::string name :
       {"mm_vv", "mm_mv", "mm_vm", "mm_vb", "mm_bv", "mm_bm", "mm_mb", "mm_bb", "linear_3d", "linear_1d"}) {
    INFO(name);
    const bool is_linear = name.starts_with("linear");
    VF a(fx.input<float>(name + ".a"), true), b(fx.input<float>(name + ".b"), true);
    VF bias = is_linear ? VF(fx.input<float>(name + ".bias"), true) : VF();
    const VF out = is_linear ? linear(a, b, bias) : matmul(a, b);
    REQUIRE(out.shape() == fx.shape(name + ".out"));
    fx.require_close(name + ".out", out.value(), 1e-5);
    sum(mul(out, VF(fx.file().tensor<float>(name + ".upstream").reshape(out.shape())))).backward();
    fx.require_close(name + ".grad_a", a.grad(), 1e-5);
    fx.require_close(name + ".grad_b", b.grad(), 1e-5);
    REQUIRE(a.grad().shape() == a.shape());
    REQUIRE(b.grad().shape() == b.shape());
    if (is_linear) fx.require_close(name + ".grad_bias", bias.grad(), 1e-5);
  }
}

TEST_CASE("batched matmul and linear on more dimensions match finite differences", "[autograd][gradcheck]") {
  const std::vector<std::pair<Shape, Shape>> shape_pairs = {
      {{4}, {4}}, {{3, 4}, {4}}, {{4}, {2, 4, 3}}, {{2, 3, 4}, {4, 2}}, {{2, 1, 3, 4}, {5, 4, 2}}};
  for (const auto& [sa, sb] : shape_pairs) {
    INFO(shape_str(sa) << " @ " << shape_str(sb));
    require_gradcheck([](const std::vector<V>& v) { return matmul(v[0], v[1]); }, {leaf(sa, 8), leaf(sb, 9)});
  }
  require_gradcheck([](const std::vector<V>& v) { return linear(v[0], v[1], v[2]); },
                    {leaf({2, 3, 4}, 10), leaf({5, 4}, 11), leaf({5}, 12)});
  // A strided input of more dimensions: its logical elements count.
  require_gradcheck([](const std::vector<V>& v) { return linear(transpose(v[0], 0, 1), v[1]); },
                    {leaf({3, 2, 4}, 13), leaf({5, 4}, 14)});
}

TEST_CASE("a broadcast matmul operand's float gradient is summed over the batch in double", "[autograd]") {
  // 20,000 products read the one [2, 3] matrix: summed in float, its gradient would be off by about 1e-5
  // relative; in double (then rounded to float) by about an ulp, as sum_to_shape sums broadcast gradients.
  Generator gen(31);
  const TD a64 = TD::rand({2, 3}, gen, 0.5, 1.5), b64 = TD::rand({20000, 3, 2}, gen, 0.5, 1.5);
  Variable<float> a(a64.to<float>(), true);
  sum(matmul(a, Variable<float>(b64.to<float>()))).backward();
  V a_exact(a64, true);
  // The float inputs in double: the same products, summed exactly enough.
  sum(matmul(a_exact, V(b64.to<float>().to<double>()))).backward();
  for (int64_t i = 0; i < 6; ++i) {
    INFO(i);
    CHECK(a.grad().data()[i] == Approx(a_exact.grad().data()[i]).epsilon(2e-7));
  }
}

TEST_CASE(
    "float matmul runs on the vectorized kernels; batches split across threads or within products give "
    "the same bits as one thread, and double's products on every ISA",
    "[autograd][linalg]") {
  namespace sk = sumi::kernels;
  using VF = Variable<float>;
  const sumi::test::ThreadCountGuard restore_threads;
  const sumi::test::IsaGuard restore_isa;
  // Many small products (split across threads, each on one), a broadcast operand (its gradient summed over
  // the batch), two large products (each split across threads by its kernel: by columns, then by rows of a
  // 64-wide output), and a broadcast operand whose per-product gradients (20 of [512, 512]) are summed a
  // chunk at a time.
  const std::vector<std::pair<Shape, Shape>> shape_pairs = {{{12, 24, 40}, {12, 40, 32}},
                                                            {{12, 24, 40}, {1, 40, 32}},
                                                            {{2, 64, 384}, {2, 384, 512}},
                                                            {{2, 512, 256}, {2, 256, 64}},
                                                            {{1, 512, 512}, {20, 512, 1}}};
  for (sk::Isa isa : {sk::Isa::scalar, sk::Isa::avx2, sk::Isa::avx512}) {
    if (!sk::isa_supported(isa)) continue;
    sk::set_isa(isa);
    for (const auto& [sa, sb] : shape_pairs) {
      INFO(sk::isa_name(isa) << ": " << shape_str(sa) << " @ " << shape_str(sb));
      // Rounded to float first, so that double computes the float operands' exact products.
      const TD a64 = leaf(sa, 51).value().to<float>().to<double>(),
               b64 = leaf(sb, 52).value().to<float>().to<double>();
      Shape batch = broadcast_shapes({sa[0]}, {sb[0]}, "test"), shape_a = batch, shape_b = batch;
      shape_a.insert(shape_a.end(), sa.end() - 2, sa.end());
      shape_b.insert(shape_b.end(), sb.end() - 2, sb.end());
      Shape out_shape = batch;
      out_shape.insert(out_shape.end(), {sa[1], sb[2]});
      const TD up64 = leaf(out_shape, 53).value().to<float>().to<double>();
      // The reference: double products of operands expanded to the whole batch (nothing left to broadcast),
      // their gradients summed back by sum_to_shape.
      V ad(expand_to(a64, shape_a), true), bd(expand_to(b64, shape_b), true);
      const V out64 = matmul(ad, bd);
      sum(mul(out64, V(up64))).backward();
      const std::vector<TD> expected = {out64.value(), sum_to_shape(ad.grad(), sa),
                                        sum_to_shape(bd.grad(), sb)};
      std::vector<Tensor<float>> first;
      for (int threads : {1, 2, 3}) {
        INFO(threads << " threads");
        set_num_threads(threads);
        VF a(a64.to<float>(), true), b(b64.to<float>(), true);
        const VF out = matmul(a, b);
        sum(mul(out, VF(up64.to<float>()))).backward();
        const std::vector<Tensor<float>> results = {out.value(), a.grad(), b.grad()};
        if (first.empty()) {
          first = results;
          for (std::size_t r = 0; r < results.size(); ++r) {
            INFO("result " << r);
            REQUIRE(results[r].shape() == expected[r].shape());
            // Float sums of up to 512 products of values below 1, against double's.
            double worst = 0;
            for (int64_t i = 0; i < results[r].numel(); ++i)
              worst = std::max(worst, std::abs(double(results[r].data()[i]) - expected[r].data()[i]) /
                                          (1 + std::abs(expected[r].data()[i])));
            REQUIRE(worst < 1e-5);
          }
        }
        // Eigen's GEMM (the scalar ISA's path) picks its blocking by thread count, so only the vectorized
        // kernels promise the same bits on any number of threads.
        if (isa != sk::Isa::scalar)
          for (std::size_t r = 0; r < results.size(); ++r)
            REQUIRE(std::equal(results[r].data(), results[r].data() + results[r].numel(), first[r].data()));
      }
    }
    // A float product runs on the kernels of the ISA in force (the conv kernels' dense path), not Eigen's
    // SSE2 GEMM. A double conv first records the scalar kernels, so that the check sees the product's own.
    const double one = 1;
    double y = 0;
    sk::conv2d_forward(sk::detail::linear_geometry(1, 1, 1), &one, &one, static_cast<const double*>(nullptr),
                       &y);
    REQUIRE((sk::last_conv_isa() == sk::Isa::scalar && y == 1));
    matmul(VF(Tensor<float>::ones({3, 5})), VF(Tensor<float>::ones({5, 4})));
    REQUIRE(sk::last_conv_isa() == isa);
  }
}

TEST_CASE("batched matmul: an empty batch gives zero gradients; float operands broadcast both ways",
          "[autograd]") {
  V empty(TD::zeros({0, 2, 3}), true), b = leaf({1, 3, 4}, 41);
  const V product = matmul(empty, b);
  REQUIRE(product.shape() == Shape{0, 2, 4});
  sum(product).backward();
  REQUIRE(empty.grad().shape() == Shape{0, 2, 3});
  REQUIRE(b.grad().shape() == Shape{1, 3, 4});
  for (int64_t i = 0; i < 12; ++i) REQUIRE(b.grad().data()[i] == 0);

  // Each operand repeated along a different batch dimension, in float, against the same numbers in double
  // through copies expanded to the whole batch (no broadcasting left to the product) and sum_to_shape.
  const TD a64 = leaf({3, 1, 2, 3}, 42).value(), b64 = leaf({1, 4, 3, 2}, 43).value(),
           up64 = leaf({3, 4, 2, 2}, 44).value();
  Variable<float> af(a64.to<float>(), true), bf(b64.to<float>(), true);
  sum(mul(matmul(af, bf), Variable<float>(up64.to<float>()))).backward();
  V ad(expand_to(a64.to<float>().to<double>(), {3, 4, 2, 3}), true),
      bd(expand_to(b64.to<float>().to<double>(), {3, 4, 3, 2}), true);
  sum(mul(matmul(ad, bd), V(up64.to<float>().to<double>()))).backward();
  for (const auto& [f, d] : {std::pair{af.grad(), sum_to_shape(ad.grad(), a64.shape())},
                             std::pair{bf.grad(), sum_to_shape(bd.grad(), b64.shape())}})
    for (int64_t i = 0; i < f.numel(); ++i) {
      INFO(shape_str(f.shape()) << " element " << i);
      CHECK(f.data()[i] == Approx(d.data()[i]).epsilon(1e-5));
    }
}

TEST_CASE("gradients accumulate across backward calls until zero_grad", "[autograd]") {
  V x(TD::from_vector({1, 2, 3}, {3}), true);
  V y = x * x;
  y.backward(TD::ones({3}));
  REQUIRE(x.grad().at({2}) == Approx(6));
  V z = x * 2.0;
  z.backward(TD::ones({3}));
  REQUIRE(x.grad().at({2}) == Approx(8));
  x.zero_grad();
  REQUIRE_FALSE(x.grad().defined());
}

TEST_CASE("a variable used twice gets the sum of both paths", "[autograd]") {
  V x(TD::from_vector({2}, {1}), true);
  V y = mul(x, x) + x;  // dy/dx = 2x + 1
  y.backward();
  REQUIRE(x.grad().item() == Approx(5));
}

TEST_CASE("an element-wise gradient overwrites its input gradient only when nothing else holds it",
          "[autograd]") {
  const auto values = [](const TD& t) { return std::vector<double>(t.data(), t.data() + t.numel()); };
  const TD other = TD::from_vector({1, -1, 2}, {3});
  const auto times = [](double g, double o) { return g * o; };
  TD sole = TD::from_vector({3, 4, 5}, {3});
  const double* buffer = sole.data();
  const TD reused = zip_gradient(std::move(sole), other, times);
  CHECK(reused.data() == buffer);
  CHECK(values(reused) == std::vector<double>{3, -4, 10});

  const TD shared = TD::from_vector({3, 4, 5}, {3});
  const TD fresh = zip_gradient(shared, other, times);
  CHECK(fresh.data() != shared.data());
  CHECK(values(fresh) == std::vector<double>{3, -4, 10});
  CHECK(values(shared) == std::vector<double>{3, 4, 5});

  // add hands the same gradient tensor to both inputs: the first relu's backward to run must not mask it
  // in place, since the other one reads it too.
  V x(TD::from_vector({-1, 2, -3}, {3}), true), z(TD::from_vector({4, -5, 6}, {3}), true);
  V s = relu(x) + relu(z);
  s.backward(TD::ones({3}));
  CHECK(values(x.grad()) == std::vector<double>{0, 1, 0});
  CHECK(values(z.grad()) == std::vector<double>{1, 0, 1});
}

TEST_CASE("backward frees the graph and a second pass is an error", "[autograd]") {
  V x(TD::from_vector({2}, {1}), true);
  V y = exp(x) * 2.0;
  y.backward();
  REQUIRE_THROWS_WITH(y.backward(), Catch::Contains("already freed"));
}

TEST_CASE("a long graph that is never back-propagated is freed without exhausting the stack", "[autograd]") {
  // A running sum kept as a variable (an epoch's losses summed for logging without detach): 200,000 ops,
  // which freed one pair of stack frames per op before and crashed.
  Variable<float> w(Tensor<float>::ones({1}), true);
  std::weak_ptr<Node<float>> first_node;
  {
    Variable<float> total(Tensor<float>::zeros({1}));
    for (int i = 0; i < 200000; ++i) {
      total = total + w * 0.5f;
      if (i == 0) first_node = total.grad_fn();
    }
    REQUIRE(total.value().item() == 100000.0f);
    REQUIRE_FALSE(first_node.expired());
  }
  REQUIRE(first_node.expired());  // the whole chain is gone, down to its first op
  {                               // An op that takes one variable twice holds it through two handles.
    Variable<float> h = w * 1.0f;
    first_node = h.grad_fn();
    for (int i = 0; i < 200000; ++i) h = h * h;
  }
  REQUIRE(first_node.expired());
  // A graph still referred to from outside is left alone: its nodes stay until their last handle goes.
  V x(TD::from_vector({1, 2}, {2}), true);
  V kept = exp(x);
  V y = kept * 3.0;
  y = V();
  kept.backward(TD::ones({2}));
  REQUIRE(x.grad().data()[1] == Approx(std::exp(2.0)));
}

TEST_CASE("detach and NoGradGuard stop recording", "[autograd]") {
  V x(TD::from_vector({2}, {1}), true);
  REQUIRE_FALSE(x.detach().requires_grad());
  {
    NoGradGuard guard;
    V y = x * 2.0;
    REQUIRE_FALSE(y.requires_grad());
    REQUIRE(y.is_leaf());
  }
  V y = x * 2.0;
  REQUIRE(y.requires_grad());
  REQUIRE_FALSE(y.is_leaf());
}

TEST_CASE("an op's output or a detached value changed in place refuses to back-propagate",
          "[autograd][errors]") {
  const V x(TD::from_vector({1, 2, 3}, {3}), true);
  // exp's backward reads its output: with the output changed it would give the gradient of neither value.
  V y = exp(x);
  y.value().fill_(1);
  y.mark_modified();
  const V total = sum(y);  // recorded after the change, so its own check passes
  REQUIRE_THROWS_WITH(total.backward(), Catch::Contains("output of 'exp' (shape [3]) was modified in place"));
  REQUIRE_FALSE(x.grad().defined());
  // Also through a view sharing the output's counter, and at the root of backward.
  V z = exp(x);
  V flat = reshape(z, {3});
  flat.mark_modified();
  REQUIRE_THROWS_WITH(sum(flat).backward(), Catch::Contains("output of 'reshape'"));
  REQUIRE_THROWS_WITH(z.backward(TD::ones({3})), Catch::Contains("output of 'exp'"));
  // A detached handle shares the counter, as in PyTorch: an optimiser step on the parameter between forward
  // and backward refuses the graph that used the old value through the detached handle, and the reverse.
  V w(TD::from_vector({1, 1, 1}, {3}), true);
  V p(TD::from_vector({1, 2, 3}, {3}), true);
  const V through_detached = sum(w * p.detach());
  p.mark_modified();
  REQUIRE_THROWS_WITH(through_detached.backward(), Catch::Contains("input 1 of 'mul'"));
  V detached = p.detach();
  const V through_original = sum(w * p);
  detached.mark_modified();
  REQUIRE_THROWS_WITH(through_original.backward(), Catch::Contains("input 1 of 'mul'"));
  REQUIRE_FALSE(w.grad().defined());
  // Unchanged, both back-propagate.
  sum(w * p.detach()).backward();
  REQUIRE(w.grad().data()[2] == 3.0);
  sum(exp(x)).backward();
  REQUIRE(x.grad().data()[0] == Approx(std::exp(1.0)));
}

TEST_CASE("shape errors name the op and both shapes", "[autograd][errors]") {
  V a(TD::zeros({2, 3})), b(TD::zeros({4, 5}));
  REQUIRE_THROWS_WITH(add(a, b),
                      Catch::Contains("add") && Catch::Contains("[2, 3]") && Catch::Contains("[4, 5]"));
  REQUIRE_THROWS_WITH(matmul(a, b),
                      Catch::Contains("matmul") && Catch::Contains("[2, 3]") && Catch::Contains("[4, 5]"));
  REQUIRE_THROWS_WITH(linear(a, b),
                      Catch::Contains("linear") && Catch::Contains("[2, 3]") && Catch::Contains("[4, 5]"));
  // torch.matmul's rules: the inner sizes must agree, the batch dimensions broadcast, no 0-d operand.
  REQUIRE_THROWS_WITH(matmul(V(TD::zeros({2, 3, 4})), V(TD::zeros({3}))),
                      Catch::Contains("matmul") && Catch::Contains("[2, 3, 4]") && Catch::Contains("[3]") &&
                          Catch::Contains("4 against 3"));
  REQUIRE_THROWS_WITH(
      matmul(V(TD::zeros({2, 3, 4})), V(TD::zeros({3, 4, 5}))),
      Catch::Contains("batch dimensions") && Catch::Contains("[2, 3, 4]") && Catch::Contains("[3, 4, 5]"));
  REQUIRE_THROWS_WITH(matmul(V(TD::scalar(1)), V(TD::zeros({3}))), Catch::Contains("[]"));
  REQUIRE_THROWS_WITH(linear(V(TD::zeros({2, 5, 3})), b), Catch::Contains("linear") &&
                                                              Catch::Contains("[2, 5, 3]") &&
                                                              Catch::Contains("in_features 5"));
  REQUIRE_THROWS_WITH(linear(V(TD::scalar(1)), b), Catch::Contains("linear") && Catch::Contains("[]"));
  // Empty operands whose product would have more elements than int64_t counts.
  const V tall(TD::zeros({int64_t(1) << 32, 0})), wide(TD::zeros({0, int64_t(1) << 32}));
  REQUIRE_THROWS_WITH(matmul(tall, wide), Catch::Contains("matmul: the result of shapes [4294967296, 0] and "
                                                          "[0, 4294967296], [4294967296, 4294967296]"));
  REQUIRE_THROWS_WITH(linear(tall, tall), Catch::Contains("linear: the result of shapes [4294967296, 0]"));
}

TEST_CASE("undefined operands and gradients are refused by name", "[autograd][errors]") {
  V x(TD::ones({2, 2}), true), none;
  REQUIRE_THROWS_WITH(add(x, none), Catch::Contains("add") && Catch::Contains("undefined"));
  REQUIRE_THROWS_WITH(relu(none), Catch::Contains("relu: the tensor is undefined"));
  REQUIRE_THROWS_WITH(sigmoid(Variable<float>()), Catch::Contains("sigmoid: the tensor is undefined"));
  REQUIRE_THROWS_WITH(none.backward(), Catch::Contains("does not require a gradient"));
  REQUIRE_THROWS_WITH(none.item(), Catch::Contains("undefined"));
  // An undefined tensor has shape [] and no storage: ops that read it refuse it rather than take it for an
  // empty scalar (a sum of 0, a NaN loss, uninitialised memory from dropout, or a crash).
  Generator gen(1);
  const std::vector<std::pair<std::string, std::function<void()>>> ops = {
      {"sum", [&] { sum(none); }},
      {"mean", [&] { mean(none); }},
      {"sum", [&] { sum(none, {}); }},
      {"mean", [&] { mean(none, {0}); }},
      {"softmax", [&] { softmax(none, 0); }},
      {"log_softmax", [&] { log_softmax(none, -1); }},
      {"mse_loss", [&] { mse_loss(none, none); }},
      {"mse_loss", [&] { mse_loss(x, none); }},
      {"bce_with_logits", [&] { bce_with_logits(none, none); }},
      {"cross_entropy", [&] { cross_entropy(none, {}); }},
      {"dropout", [&] { dropout(none, 0.5, true, gen); }},
      {"reshape", [&] { reshape(none, {1}); }},
      {"flatten", [&] { flatten(none); }},
      {"unflatten", [&] { unflatten(none, 0, {1}); }},
      {"concat",
       [&] {
         concat(std::vector<V>{x, none}, 0);
       }},
  };
  for (const auto& [name, op] : ops) {
    INFO(name);
    REQUIRE_THROWS_WITH(op(), Catch::Contains(name + ": the tensor is undefined"));
  }
  const V loss = sum(x);
  REQUIRE_THROWS_WITH(loss.backward(TD()), Catch::Contains("backward") && Catch::Contains("undefined"));
  REQUIRE_FALSE(x.grad().defined());
}

TEST_CASE("in-place accumulation refuses a strided destination instead of updating the wrong elements",
          "[autograd][errors]") {
  TD base = TD::zeros({2, 3});
  TD strided = base.transpose(0, 1);
  REQUIRE_THROWS_WITH(add_inplace(strided, TD::ones({3, 2})),
                      Catch::Contains("add_inplace") && Catch::Contains("not contiguous"));
  REQUIRE_THROWS_WITH(scale_inplace(strided, 2.0), Catch::Contains("scale_inplace"));
  REQUIRE(base.at({0, 0}) == 0);
  TD dense = TD::ones({3, 2});
  add_inplace(dense, TD::ones({3, 2}));
  REQUIRE(dense.at({2, 1}) == 2);
  // A source overlapping the destination is read as it was before the update: a[i + 1] += a[i], not a
  // running prefix sum. Long enough that no single vector holds it (an AVX-512 register loads 8 doubles
  // before it stores them), and on every ISA.
  namespace sk = sumi::kernels;
  const sumi::test::IsaGuard restore_isa;
  for (sk::Isa isa : {sk::Isa::scalar, sk::Isa::avx2, sk::Isa::avx512}) {
    if (!sk::isa_supported(isa)) continue;
    sk::set_isa(isa);
    TD a = TD::arange(0, 200);
    TD tail = a.slice(1, 200);
    add_inplace(tail, a.slice(0, 199));
    for (int64_t i = 1; i < 200; ++i) REQUIRE(a.at({i}) == double(2 * i - 1));
  }
}

TEST_CASE("float linear of an empty batch or with no features gives the empty product plus bias",
          "[autograd][linear]") {
  using VF = Variable<float>;
  using TF = Tensor<float>;
  const VF w(TF::ones({3, 4}), true), b(TF::arange(1, 4), true);
  const VF no_rows = linear(VF(TF::zeros({0, 4})), w, b);
  REQUIRE(no_rows.shape() == Shape{0, 3});

  const VF x(TF::zeros({2, 0}), true), w0(TF::zeros({3, 0}), true);
  const VF y = linear(x, w0, b);  // [2, 3]: every row is the bias
  REQUIRE(y.shape() == Shape{2, 3});
  for (int64_t i = 0; i < 2; ++i)
    for (int64_t j = 0; j < 3; ++j) REQUIRE(y.value().at({i, j}) == float(j + 1));
  sum(y).backward();
  REQUIRE(b.grad().at({0}) == 2.0f);  // two rows
  REQUIRE(x.grad().shape() == Shape{2, 0});
  REQUIRE(w0.grad().shape() == Shape{3, 0});
  REQUIRE(linear(VF(TF::ones({2, 4})), VF(TF::zeros({0, 4}))).shape() == Shape{2, 0});
}
