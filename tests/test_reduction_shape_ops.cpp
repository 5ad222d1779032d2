#include <catch2/catch.hpp>
#include <cmath>

#include "gradcheck_helpers.hpp"
#include "sumi/kernels/threading.hpp"
#include "sumi/ops/elementwise.hpp"
#include "sumi/ops/reduction.hpp"
#include "sumi/ops/shape_ops.hpp"
#include "sumi/ops/softmax.hpp"
#include "thread_count_guard.hpp"

using namespace sumi;
using sumi::test::leaf;
using sumi::test::require_gradcheck;
using V = Variable<double>;
using TD = Tensor<double>;

namespace {
// 0, 1, 2, ... in the given shape.
TD iota(const Shape& shape) {
  return TD::arange(0, double(shape_numel(shape))).reshape(shape);
}

// Straightforward reference: sums every element into the output element its kept indices name.
TD naive_sum(const TD& x, const std::vector<int64_t>& dims, bool keepdim, bool average) {
  const int64_t rank = x.dim();
  std::vector<bool> reduce(std::size_t(rank), dims.empty());
  for (int64_t d : dims) reduce[std::size_t(d < 0 ? d + rank : d)] = true;
  Shape keep, squeezed;
  int64_t count = 1;
  for (int64_t d = 0; d < rank; ++d) {
    const auto ud = std::size_t(d);
    keep.push_back(reduce[ud] ? 1 : x.shape()[ud]);
    if (reduce[ud])
      count *= x.shape()[ud];
    else
      squeezed.push_back(x.shape()[ud]);
  }
  TD out = TD::zeros(keep);
  const TD xc = x.contiguous();
  const Shape ks = contiguous_strides(keep), xs = contiguous_strides(x.shape());
  for (int64_t i = 0; i < xc.numel(); ++i) {
    int64_t o = 0;
    for (int64_t d = 0; d < rank; ++d) {
      const auto ud = std::size_t(d);
      const int64_t idx = (i / xs[ud]) % x.shape()[ud];
      if (!reduce[ud]) o += idx * ks[ud];
    }
    out.data()[o] += xc.data()[i];
  }
  if (average)
    for (int64_t i = 0; i < out.numel(); ++i) out.data()[i] /= double(count);
  return keepdim ? out : out.reshape(squeezed);
}

void require_tensor_near(const TD& actual, const TD& expected, double tol = 1e-10) {
  REQUIRE(actual.shape() == expected.shape());
  const TD a = actual.contiguous(), e = expected.contiguous();
  for (int64_t i = 0; i < a.numel(); ++i) {
    INFO("flat index " << i);
    if (std::isnan(e.data()[i])) {  // the mean of no elements
      REQUIRE(std::isnan(a.data()[i]));
      continue;
    }
    REQUIRE(a.data()[i] == Approx(e.data()[i]).margin(tol).epsilon(tol));
  }
}
}  // namespace

// ---- sum / mean
// ---------------------------------------------------------------------------------------------

TEST_CASE("sum and mean over dimensions of arange data match hand-computed values", "[reduction]") {
  const V x(iota({2, 3, 4}));  // x[i, j, k] = 12 i + 4 j + k
  REQUIRE(sum(x).shape() == Shape{});
  REQUIRE(sum(x).item() == 276);
  REQUIRE(mean(x).item() == Approx(11.5));

  const V s0 = sum(x, {0});  // 24 j + 2 k... = 2 (4 j + k) + 12
  REQUIRE(s0.shape() == Shape{3, 4});
  for (int64_t j = 0; j < 3; ++j)
    for (int64_t k = 0; k < 4; ++k) REQUIRE(s0.value().at({j, k}) == 2 * (4 * j + k) + 12);

  const V s02 = sum(x, {0, 2});  // 60 + 32 j
  REQUIRE(s02.shape() == Shape{3});
  REQUIRE(s02.value().at({0}) == 60);
  REQUIRE(s02.value().at({1}) == 92);
  REQUIRE(s02.value().at({2}) == 124);

  const V s_last = sum(x, {-1}, true);  // 48 i + 16 j + 6
  REQUIRE(s_last.shape() == Shape{2, 3, 1});
  for (int64_t i = 0; i < 2; ++i)
    for (int64_t j = 0; j < 3; ++j) REQUIRE(s_last.value().at({i, j, 0}) == 48 * i + 16 * j + 6);

  const V m1 = mean(x, {1});  // 12 i + 4 + k
  REQUIRE(m1.shape() == Shape{2, 4});
  for (int64_t i = 0; i < 2; ++i)
    for (int64_t k = 0; k < 4; ++k) REQUIRE(m1.value().at({i, k}) == Approx(12 * i + 4 + k));

  const V m_neg = mean(x, {-3, -1}, true);  // 4 j + 7.5
  REQUIRE(m_neg.shape() == Shape{1, 3, 1});
  for (int64_t j = 0; j < 3; ++j) REQUIRE(m_neg.value().at({0, j, 0}) == Approx(4 * j + 7.5));

  // An empty list reduces every dimension, as in PyTorch.
  REQUIRE(sum(x, {}).shape() == Shape{});
  REQUIRE(sum(x, {}).item() == 276);
  REQUIRE(sum(x, {}, true).shape() == Shape{1, 1, 1});
  REQUIRE(mean(x, {0, 1, 2}).item() == Approx(11.5));
}

TEST_CASE("sum and mean over dimensions agree with a naive reference", "[reduction]") {
  const std::vector<std::pair<Shape, std::vector<int64_t>>> cases = {
      {{5, 7}, {0}},          {{5, 7}, {1}},          {{5, 7}, {0, 1}},        {{2, 3, 4, 5}, {1}},
      {{2, 3, 4, 5}, {0, 2}}, {{2, 3, 4, 5}, {1, 3}}, {{2, 3, 4, 5}, {-1, 0}}, {{2, 1, 4, 1}, {1, 2}},
      {{3, 1, 5}, {0}},       {{4, 0, 3}, {1}},       {{4, 0, 3}, {0}},        {{7}, {0}},
      {{300, 257}, {0}},      {{257, 300}, {1}},      {{40, 50, 33}, {1}},     {{40, 50, 33}, {0, 2}},
  };
  for (const auto& [shape, dims] : cases) {
    Generator gen(shape_numel(shape) + int64_t(dims.size()));
    const V x(TD::rand(shape, gen, -1, 1));
    for (bool keepdim : {false, true}) {
      INFO("shape " << shape_str(shape) << " dims " << shape_str(dims) << " keepdim " << keepdim);
      require_tensor_near(sum(x, dims, keepdim).value(), naive_sum(x.value(), dims, keepdim, false), 1e-9);
      require_tensor_near(mean(x, dims, keepdim).value(), naive_sum(x.value(), dims, keepdim, true), 1e-9);
    }
  }
}

TEST_CASE("sum of a non-contiguous input uses its logical element order", "[reduction]") {
  const TD t = iota({3, 4}).transpose(0, 1);  // [4, 3], t[a, b] = 4 b + a
  const V x(t);
  const V s = sum(x, {1});  // sum over b of 4 b + a = 12 + 3 a
  for (int64_t a = 0; a < 4; ++a) REQUIRE(s.value().at({a}) == 12 + 3 * a);
  REQUIRE(sum(x).item() == 66);
}

TEST_CASE("large sums are accurate in float and identical for any thread count", "[reduction]") {
  const int64_t n = (int64_t(1) << 21) + 12345;  // many chunks, not a multiple of the chunk size
  Generator gen(77);
  const Tensor<float> tf = Tensor<float>::rand({n}, gen, 0.0f, 1.0f);
  double reference = 0;
  for (int64_t i = 0; i < n; ++i) reference += double(tf.data()[i]);
  const Variable<float> xf(tf);
  // A float accumulator would be off by ~1e-4 relative here; the chunked double accumulation is not.
  REQUIRE(double(sum(xf).item()) == Approx(reference).epsilon(1e-6));
  REQUIRE(double(mean(xf).item()) == Approx(reference / double(n)).epsilon(1e-6));

  const Variable<float> m(Tensor<float>::rand({512, 4099}, gen, -1.0f, 1.0f));
  const sumi::test::ThreadCountGuard restore_threads;
  std::vector<float> totals;
  std::vector<Tensor<float>> by_rows, by_cols;
  for (int threads : {1, 2, 3, 8}) {
    sumi::set_num_threads(threads);
    totals.push_back(sum(xf).item());
    by_rows.push_back(sum(m, {0}).value());
    by_cols.push_back(sum(m, {1}).value());
  }
  for (std::size_t k = 1; k < totals.size(); ++k) {
    REQUIRE(totals[k] == totals[0]);  // bitwise
    REQUIRE(std::equal(by_rows[k].data(), by_rows[k].data() + 4099, by_rows[0].data()));
    REQUIRE(std::equal(by_cols[k].data(), by_cols[k].data() + 512, by_cols[0].data()));
  }
  // And the big dimension reductions are right.
  const Tensor<float> cols = by_cols[0];
  double row7 = 0;
  for (int64_t j = 0; j < 4099; ++j) row7 += double(m.value().at({7, j}));
  REQUIRE(double(cols.at({7})) == Approx(row7).margin(1e-4));
}

TEST_CASE("float sums over a long kept-inner dimension and broadcast gradients are accumulated in double",
          "[reduction]") {
  // 60,000 rows of 0.1f added row after row into float would be off by 6e-4 relative (0.100058).
  const Tensor<float> rows = Tensor<float>::full({60000, 2}, 0.1f);
  const double exact = 60000.0 * double(0.1f);
  const Tensor<float> column_sums = sum(Variable<float>(rows), {0}).value();
  const Tensor<float> column_means = mean(Variable<float>(rows), {0}).value();
  for (int64_t c = 0; c < 2; ++c) {
    REQUIRE(double(column_sums.at({c})) == Approx(exact).epsilon(1e-7));
    REQUIRE(double(column_means.at({c})) == Approx(exact / 60000.0).epsilon(1e-7));
  }
  // The gradient of a broadcast operand sums the broadcast copies the same way.
  const Tensor<float> reduced = sum_to_shape(rows, {1, 2});
  REQUIRE(double(reduced.at({0, 1})) == Approx(exact).epsilon(1e-7));
}

TEST_CASE("sum and mean gradients match finite differences", "[reduction][gradcheck]") {
  require_gradcheck([](const std::vector<V>& v) { return sum(v[0]); }, {leaf({3, 4}, 1)});
  require_gradcheck([](const std::vector<V>& v) { return mean(v[0]); }, {leaf({3, 4}, 2)});
  require_gradcheck([](const std::vector<V>& v) { return sum(v[0]); }, {leaf({}, 3)});
  const std::vector<std::vector<int64_t>> dim_lists = {{0}, {1}, {2}, {-1}, {0, 2}, {-3, -2}, {0, 1, 2}, {}};
  for (const auto& dims : dim_lists) {
    for (bool keepdim : {false, true}) {
      INFO("dims " << shape_str(dims) << " keepdim " << keepdim);
      require_gradcheck([&](const std::vector<V>& v) { return sum(v[0], dims, keepdim); },
                        {leaf({2, 3, 4}, 4)});
      require_gradcheck([&](const std::vector<V>& v) { return mean(v[0], dims, keepdim); },
                        {leaf({2, 3, 4}, 5)});
    }
  }
}

TEST_CASE("mean's gradient is 1/count per element", "[reduction]") {
  V x(TD::zeros({2, 5}), true);
  mean(x, {1}).backward(TD::from_vector({1, 2}, {2}));
  REQUIRE(x.grad().at({0, 3}) == Approx(0.2));
  REQUIRE(x.grad().at({1, 0}) == Approx(0.4));
  x.zero_grad();
  mean(x).backward();
  REQUIRE(x.grad().at({1, 4}) == Approx(0.1));
}

TEST_CASE("reduction dimension errors", "[reduction][errors]") {
  const V x(TD::zeros({2, 3}));
  REQUIRE_THROWS_WITH(sum(x, {2}), Catch::Contains("sum: dimension 2 out of range for shape [2, 3]"));
  REQUIRE_THROWS_WITH(mean(x, {-3}), Catch::Contains("mean: dimension -3 out of range for shape [2, 3]"));
  REQUIRE_THROWS_WITH(amax(x, {0, 2}), Catch::Contains("amax: dimension 2 out of range for shape [2, 3]"));
  REQUIRE_THROWS_WITH(sum(x, {1, -1}), Catch::Contains("sum") && Catch::Contains("more than once"));
  // A 0-d tensor takes dimensions 0 and -1, as in PyTorch (torch.sum(torch.tensor(2.), 0) is 2).
  const V scalar(TD::scalar(2.0), true);
  CHECK(sum(scalar, {0}).item() == 2.0);
  CHECK(mean(scalar, {-1}, true).shape() == Shape{});
  CHECK(amax(scalar, {0}).item() == 2.0);
  sum(scalar, {-1}).backward();
  CHECK(scalar.grad().item() == 1.0);
  REQUIRE_THROWS_WITH(sum(scalar, {1}), Catch::Contains("sum") && Catch::Contains("[]"));
  REQUIRE_THROWS_WITH(sum(scalar, {0, -1}), Catch::Contains("more than once"));
}

// ---- reshape / flatten / unflatten
// ----------------------------------------------------------------------------

TEST_CASE("argmax finds the first largest element along a dimension, NaN first, as PyTorch", "[reduction]") {
  const double nan = std::nan("");
  // torch.argmax(x, 1) of [[1, nan, 3, nan], [2, 5, 5, 1]]: [1, 1].
  const Tensor<double> rows = Tensor<double>::from_vector({1, nan, 3, nan, 2, 5, 5, 1}, {2, 4});
  CHECK(argmax(rows, 1) == std::vector<int64_t>{1, 1});
  CHECK(argmax(rows, -1) == std::vector<int64_t>{1, 1});
  // Along dimension 0 of [2, 4]: the larger of each column, the first NaN.
  CHECK(argmax(rows, 0) == std::vector<int64_t>{1, 0, 1, 0});
  // A middle dimension of [2, 3, 2], in row-major order of the other two; a transposed view by its
  // logical elements.
  const Tensor<double> cube = Tensor<double>::from_vector({0, 9, 4, 1, 4, 2, 7, 3, 8, 3, 6, 5}, {2, 3, 2});
  CHECK(argmax(cube, 1) == std::vector<int64_t>{1, 0, 1, 2});
  CHECK(argmax(rows.transpose(0, 1), 1) == std::vector<int64_t>{1, 0, 1, 0});
  CHECK(argmax(Variable<double>(rows), 1) == std::vector<int64_t>{1, 1});
  CHECK(argmax(Tensor<double>::scalar(3.0), 0) == std::vector<int64_t>{0});
  CHECK_THROWS_WITH(argmax(Tensor<double>::zeros({2, 0}), 1), Catch::Matchers::Contains("[2, 0]"));
  CHECK_THROWS_WITH(argmax(rows, 2),
                    Catch::Matchers::Contains("argmax") && Catch::Matchers::Contains("[2, 4]"));
  CHECK_THROWS_WITH(argmax(Tensor<double>(), 0), Catch::Matchers::Contains("undefined"));
  CHECK_THROWS_WITH(argmax(Tensor<double>::scalar(3.0), 1), Catch::Matchers::Contains("[]"));
}

TEST_CASE("argmin finds the first smallest element along a dimension, NaN first, as PyTorch", "[reduction]") {
  const double nan = std::nan("");
  // torch.argmin(x, 1) of [[nan, 1], [0, 0]]: [0, 0]; of [[3, 1, 1]]: [1].
  CHECK(argmin(Tensor<double>::from_vector({nan, 1, 0, 0}, {2, 2}), 1) == std::vector<int64_t>{0, 0});
  CHECK(argmin(Variable<double>(Tensor<double>::from_vector({3, 1, 1}, {1, 3})), 1) ==
        std::vector<int64_t>{1});
  CHECK_THROWS_WITH(argmin(Tensor<double>::zeros({2, 0}), -1),
                    Catch::Matchers::Contains("argmin") && Catch::Matchers::Contains("[2, 0]"));
}

namespace {
const double kNan = std::nan("");
// [[1, 3, 3, 2], [nan, 5, nan, 1], [2, 2, 2, 2]]: ties, NaNs and a constant row.
V tie_rows() {
  return V(TD::from_vector({1, 3, 3, 2, kNan, 5, kNan, 1, 2, 2, 2, 2}, {3, 4}), true);
}
void require_same_with_nan(const TD& actual, const std::vector<double>& expected, const Shape& shape) {
  REQUIRE(actual.shape() == shape);
  const TD a = actual.contiguous();
  for (std::size_t i = 0; i < expected.size(); ++i) {
    INFO("flat index " << i);
    if (std::isnan(expected[i]))
      REQUIRE(std::isnan(a.data()[i]));
    else
      REQUIRE(a.data()[i] == expected[i]);
  }
}
}  // namespace

TEST_CASE("max and min along a dimension give PyTorch's values, positions and gradients", "[reduction]") {
  const V x = tie_rows();
  // torch.max(x, 1): values [3, nan, 2], indices [1, 0, 0]; the gradient of sum(values * [1, 2, 3]) goes to
  // those positions.
  auto [values, indices] = max(x, 1);
  require_same_with_nan(values.value(), {3, kNan, 2}, {3});
  CHECK(indices == std::vector<int64_t>{1, 0, 0});
  sum(mul(values, V(TD::from_vector({1, 2, 3}, {3})))).backward();
  require_same_with_nan(x.grad(), {0, 1, 0, 0, 2, 0, 0, 0, 3, 0, 0, 0}, {3, 4});

  // torch.min(x, 0, keepdim=True): values [[nan, 2, nan, 1]], indices [[1, 2, 1, 1]].
  auto [low, low_at] = min(x, 0, true);
  require_same_with_nan(low.value(), {kNan, 2, kNan, 1}, {1, 4});
  CHECK(low_at == std::vector<int64_t>{1, 2, 1, 1});

  // A middle dimension of a permuted (strided) input: the logical elements count.
  const V cube(TD::from_vector({0, 9, 4, 1, 4, 2, 7, 3, 8, 3, 6, 5}, {2, 3, 2}).permute({0, 2, 1}), true);
  auto [cube_max, cube_at] = max(cube, 2);  // cube is [2, 2, 3]: rows (0 4 4) (9 1 2) (7 8 6) (3 3 5)
  require_same_with_nan(cube_max.value(), {4, 9, 8, 5}, {2, 2});
  CHECK(cube_at == std::vector<int64_t>{1, 0, 1, 2});
  sum(cube_max).backward();
  require_same_with_nan(cube.grad(), {0, 1, 0, 1, 0, 0, 0, 1, 0, 0, 0, 1}, {2, 2, 3});

  // A 0-d input is its own max along dimension 0 or -1.
  auto [scalar_max, scalar_at] = max(V(TD::scalar(2.0)), -1);
  CHECK(scalar_max.shape() == Shape{});
  CHECK(scalar_max.item() == 2.0);
  CHECK(scalar_at == std::vector<int64_t>{0});
  // Empty other dimensions give empty results; an empty reduced dimension has nothing to pick.
  CHECK(max(V(TD::zeros({0, 3})), 1).values.shape() == Shape{0});
  CHECK_THROWS_WITH(max(V(TD::zeros({2, 0})), 1),
                    Catch::Matchers::Contains("max") && Catch::Matchers::Contains("[2, 0]"));
  CHECK_THROWS_WITH(min(x, 2), Catch::Matchers::Contains("min") && Catch::Matchers::Contains("[3, 4]"));
}

TEST_CASE("max and min of all elements share the gradient among equal elements, as PyTorch", "[reduction]") {
  // torch.max of [[1, 3, 3, 2], [0, 5, 5, 1]] is 5; the gradient of 3 * max is 1.5 at each 5.
  const V x(TD::from_vector({1, 3, 3, 2, 0, 5, 5, 1}, {2, 4}), true);
  const V top = max(x);
  CHECK(top.shape() == Shape{});
  CHECK(top.item() == 5);
  (top * 3.0).backward();
  require_same_with_nan(x.grad(), {0, 0, 0, 0, 0, 1.5, 1.5, 0}, {2, 4});
  CHECK(min(x).item() == 0);
  // With NaNs the result is NaN and the NaNs share the gradient (torch.max(tie_rows()), 3 * max).
  const V y = tie_rows();
  const V top_nan = max(y);
  CHECK(std::isnan(top_nan.item()));
  (top_nan * 3.0).backward();
  require_same_with_nan(y.grad(), {0, 0, 0, 0, 1.5, 0, 1.5, 0, 0, 0, 0, 0}, {3, 4});
  CHECK_THROWS_WITH(max(V(TD::zeros({0}))),
                    Catch::Matchers::Contains("max") && Catch::Matchers::Contains("[0]"));
}

TEST_CASE("amax and amin over dimensions give PyTorch's values and gradients", "[reduction]") {
  // torch.amax(x, 1) of tie_rows(): [3, nan, 2]; the gradient of sum(amax * [1, 2, 3]) is shared by equal
  // elements, and is NaN along the row whose result is NaN ((g / 0) * 0 in PyTorch's formula).
  const V x = tie_rows();
  const V a = amax(x, {1});
  require_same_with_nan(a.value(), {3, kNan, 2}, {3});
  sum(mul(a, V(TD::from_vector({1, 2, 3}, {3})))).backward();
  require_same_with_nan(x.grad(), {0, 0.5, 0.5, 0, kNan, kNan, kNan, kNan, 0.75, 0.75, 0.75, 0.75}, {3, 4});

  // torch.amax(y, 0) of [[1, 3, 3, 2], [0, 5, 5, 1]]: [1, 5, 5, 2], gradient of the sum to each winner;
  // torch.amax(y, ()) (every dimension): 5, shared by the two 5s; keepdim keeps [1, 1].
  const TD y_values = TD::from_vector({1, 3, 3, 2, 0, 5, 5, 1}, {2, 4});
  const V y(y_values, true);
  const V columns = amax(y, {0});
  require_same_with_nan(columns.value(), {1, 5, 5, 2}, {4});
  sum(columns).backward();
  require_same_with_nan(y.grad(), {1, 0, 0, 1, 0, 1, 1, 0}, {2, 4});
  const V z(y_values, true);
  const V all = amax(z, {}, true);
  require_same_with_nan(all.value(), {5}, {1, 1});
  sum(all).backward();
  require_same_with_nan(z.grad(), {0, 0, 0, 0, 0, 0.5, 0.5, 0}, {2, 4});
  require_same_with_nan(amin(V(y_values), {-1}, true).value(), {1, 0}, {2, 1});
  CHECK_THROWS_WITH(amax(V(TD::zeros({2, 0})), {0, 1}),
                    Catch::Matchers::Contains("amax") && Catch::Matchers::Contains("[2, 0]"));
  CHECK_THROWS_WITH(amin(x, {0, -2}),
                    Catch::Matchers::Contains("amin") && Catch::Matchers::Contains("more than once"));
}

TEST_CASE("amax and amin over any dimensions agree with a naive reference", "[reduction]") {
  // Distinct values in a shuffled order, so every row has one extreme.
  const Shape shape{3, 4, 5};
  const TD x = TD::from_vector(
      [] {
        std::vector<double> v(60);
        for (std::size_t i = 0; i < v.size(); ++i) v[i] = double((i * 37) % 61);
        return v;
      }(),
      shape);
  for (const std::vector<int64_t>& dims :
       std::vector<std::vector<int64_t>>{{0}, {1}, {2}, {0, 2}, {-1, 0}, {1, 2}, {}}) {
    for (bool keepdim : {false, true}) {
      INFO("dims of size " << dims.size() << ", keepdim " << keepdim);
      std::vector<bool> reduce(3, dims.empty());
      for (int64_t d : dims) reduce[std::size_t(d < 0 ? d + 3 : d)] = true;
      const TD counted = naive_sum(x, dims, true, false);  // for the kept shape
      TD expected_max = TD::full(counted.shape(), -1), expected_min = TD::full(counted.shape(), 1e9);
      const Shape ks = contiguous_strides(counted.shape());
      for (int64_t i = 0; i < 3; ++i)
        for (int64_t j = 0; j < 4; ++j)
          for (int64_t k = 0; k < 5; ++k) {
            const int64_t o =
                (reduce[0] ? 0 : i * ks[0]) + (reduce[1] ? 0 : j * ks[1]) + (reduce[2] ? 0 : k * ks[2]);
            const double v = x.at({i, j, k});
            expected_max.data()[o] = std::max(expected_max.data()[o], v);
            expected_min.data()[o] = std::min(expected_min.data()[o], v);
          }
      const V hi = amax(V(x), dims, keepdim), lo = amin(V(x), dims, keepdim);
      const Shape out_shape = keepdim ? counted.shape() : naive_sum(x, dims, false, false).shape();
      require_tensor_near(hi.value(), expected_max.reshape(out_shape), 0);
      require_tensor_near(lo.value(), expected_min.reshape(out_shape), 0);
    }
  }
}

TEST_CASE("max, min, amax and amin gradients match finite differences", "[reduction][gradcheck]") {
  // Random inputs have no ties, so each reduction is differentiable there.
  require_gradcheck([](const std::vector<V>& in) { return max(in[0]); }, {leaf({3, 4}, 71)});
  require_gradcheck([](const std::vector<V>& in) { return min(in[0]); }, {leaf({3, 4}, 72)});
  require_gradcheck([](const std::vector<V>& in) { return max(in[0], 1).values; }, {leaf({3, 4, 2}, 73)});
  require_gradcheck([](const std::vector<V>& in) { return min(in[0], -3, true).values; },
                    {leaf({3, 4, 2}, 74)});
  require_gradcheck([](const std::vector<V>& in) { return amax(in[0], {0, 2}); }, {leaf({3, 4, 2}, 75)});
  require_gradcheck([](const std::vector<V>& in) { return amin(in[0], {1}, true); }, {leaf({3, 4, 2}, 76)});
}

TEST_CASE("transpose, permute and narrow pick the elements PyTorch does", "[shape]") {
  std::vector<double> ramp(24);
  for (std::size_t i = 0; i < ramp.size(); ++i) ramp[i] = double(i);
  const Variable<double> x(Tensor<double>::from_vector(ramp, {2, 3, 4}));
  // x[a][b][c] = 12a + 4b + c
  const Variable<double> t = transpose(x, 0, -1);
  REQUIRE(t.shape() == Shape{4, 3, 2});
  CHECK(t.value().at({3, 1, 1}) == 12 + 4 + 3);
  const Variable<double> p = permute(x, {2, 0, -2});
  REQUIRE(p.shape() == Shape{4, 2, 3});
  CHECK(p.value().at({3, 1, 2}) == 12 + 8 + 3);
  const Variable<double> n = narrow(x, 2, 1, 2);
  REQUIRE(n.shape() == Shape{2, 3, 2});
  CHECK(n.value().at({1, 2, 0}) == 12 + 8 + 1);
  CHECK(n.value().at({1, 2, 1}) == 12 + 8 + 2);
  // The views share x's storage, as PyTorch's.
  CHECK(t.value().shares_storage_with(x.value()));
  CHECK(n.value().shares_storage_with(x.value()));

  using Catch::Matchers::Contains;
  CHECK_THROWS_WITH(permute(x, {0, 1, 1}),
                    Contains("permute") && Contains("(0, 1, 1)") && Contains("[2, 3, 4]"));
  CHECK_THROWS_WITH(permute(x, {0, 1}), Contains("permute") && Contains("[2, 3, 4]"));
  CHECK_THROWS_WITH(transpose(x, 0, 3),
                    Contains("transpose") && Contains("dimension 3") && Contains("[2, 3, 4]"));
  CHECK_THROWS_WITH(narrow(x, 2, 3, 2),
                    Contains("narrow") && Contains("2 elements from 3") && Contains("[2, 3, 4]"));
  CHECK_THROWS_WITH(narrow(x, 0, -3, 1), Contains("narrow") && Contains("from -3"));
  // A negative start counts from the end, as torch.narrow.
  CHECK(narrow(x, 2, -2, 2).value().at({1, 2, 0}) == 12 + 8 + 2);
  // A 0-d tensor is its own transpose over dimensions 0 and -1; it has nothing to narrow.
  const Variable<double> scalar(Tensor<double>::scalar(2.0));
  CHECK(transpose(scalar, 0, -1).value().item() == 2.0);
  CHECK_THROWS_WITH(transpose(scalar, 0, 1), Contains("dimension 1") && Contains("[]"));
  CHECK_THROWS_WITH(narrow(scalar, 0, 0, 1), Contains("0-d"));
}

TEST_CASE("a view shares its base's version counter, so a write through either refuses stale graphs",
          "[shape][autograd]") {
  using Catch::Matchers::Contains;
  Variable<double> w(Tensor<double>::from_vector({1, 2, 3, 4, 5, 6}, {2, 3}), true);
  Variable<double> z(Tensor<double>::ones({2, 3}), true);
  for (const std::string view : {"transpose", "narrow", "reshape"}) {
    INFO(view);
    Variable<double> y = mul(w, z);  // saves w's value for z's gradient
    Variable<double> v = view == "transpose" ? transpose(w, 0, 1)
                         : view == "narrow"  ? narrow(w, 1, 0, 2)
                                             : reshape(w, {6});
    v.value().fill_(0);  // written through the view, as an initialiser writes
    v.mark_modified();
    CHECK_THROWS_WITH(sum(y).backward(), Contains("'mul'"));
    w.value().copy_(Tensor<double>::from_vector({1, 2, 3, 4, 5, 6}, {2, 3}));
  }
  // The other way round: a graph through a view refuses once the base is written.
  Variable<double> y = mul(permute(w, {1, 0}), Variable<double>(Tensor<double>::ones({3, 2})));
  w.value().fill_(1);
  w.mark_modified();
  CHECK_THROWS(sum(y).backward());
  // A view made after earlier writes starts from the base's count: older graphs still back-propagate.
  Variable<double> base(Tensor<double>::ones({2, 3}), true);
  base.mark_modified();
  base.mark_modified();
  Variable<double> before_view = mul(base, z);
  const Variable<double> late_view = narrow(base, 0, 0, 1);
  CHECK(late_view.version() == base.version());
  CHECK_NOTHROW(sum(before_view).backward());
  // Every input counts, so the graph that made a view refuses once the view is written through (stricter
  // than PyTorch, which checks only the tensors a backward saved).
  Variable<double> written = transpose(base, 0, 1);
  written.value().fill_(2);
  written.mark_modified();
  CHECK_THROWS_WITH(sum(mul(written, written)).backward(), Contains("'transpose'"));
  // A copy is no view: a reshape of a strided value copies and keeps a counter of its own.
  Variable<double> copy = reshape(transpose(w, 0, 1), {6});
  CHECK_FALSE(copy.value().shares_storage_with(w.value()));
  const uint64_t before = w.version();
  copy.mark_modified();
  CHECK(w.version() == before);
}

TEST_CASE("transpose, permute and narrow gradients match finite differences", "[shape][gradcheck]") {
  // Each result goes through an element-wise product, so the strided view is also an op's input.
  const auto weighted = [](const Variable<double>& y, uint64_t seed) {
    return mul(y, leaf(y.shape(), seed, {.requires_grad = false}));
  };
  require_gradcheck([&](const auto& in) { return weighted(transpose(in[0], 0, 2), 31); },
                    {leaf({2, 3, 4}, 32)});
  require_gradcheck(
      [&](const auto& in) {
        return weighted(permute(in[0], {1, 2, 0}), 33);
      },
      {leaf({2, 3, 4}, 34)});
  require_gradcheck([&](const auto& in) { return weighted(narrow(in[0], 1, 1, 2), 35); },
                    {leaf({2, 4, 3}, 36)});
  // A narrowed gradient is zero outside the range.
  Variable<double> x(Tensor<double>::ones({2, 4}), true);
  sum(narrow(x, 1, 1, 2)).backward();
  const Tensor<double>& g = x.grad();
  CHECK(std::vector<double>(g.data(), g.data() + 8) == std::vector<double>{0, 1, 1, 0, 0, 1, 1, 0});
}

TEST_CASE("squeeze and unsqueeze give PyTorch's shapes as views", "[shape]") {
  using Catch::Matchers::Contains;
  const Variable<double> x(TD::arange(0, 6).reshape({2, 1, 3, 1}));
  // torch: squeeze() [2, 3]; squeeze(1) [2, 3, 1]; squeeze(0) unchanged; squeeze(-1) [2, 1, 3];
  // unsqueeze(4) [2, 1, 3, 1, 1]; unsqueeze(-5) [1, 2, 1, 3, 1].
  CHECK(squeeze(x).shape() == Shape{2, 3});
  CHECK(squeeze(x, 1).shape() == Shape{2, 3, 1});
  CHECK(squeeze(x, 0).shape() == Shape{2, 1, 3, 1});
  CHECK(squeeze(x, -1).shape() == Shape{2, 1, 3});
  CHECK(unsqueeze(x, 4).shape() == Shape{2, 1, 3, 1, 1});
  CHECK(unsqueeze(x, -5).shape() == Shape{1, 2, 1, 3, 1});
  CHECK(squeeze(x).value().at({1, 2}) == 5);
  CHECK(squeeze(x).value().shares_storage_with(x.value()));
  // A strided input stays a view: torch's t().unsqueeze(1) of a [2, 3] tensor has strides (1, 6, 3).
  const TD t = TD::arange(0, 6).reshape({2, 3}).transpose(0, 1);
  const TD u = t.unsqueeze(1);
  CHECK(u.shape() == Shape{3, 1, 2});
  CHECK(u.strides() == Shape{1, 6, 3});
  CHECK(u.at({2, 0, 1}) == 5);
  CHECK(u.squeeze().strides() == t.strides());
  // Unsqueezing a contiguous tensor gives it PyTorch's strides, the row-major ones, at any position.
  for (int64_t d = -3; d <= 2; ++d) {
    const TD u = TD::zeros({2, 3}).unsqueeze(d);
    CHECK(u.strides() == contiguous_strides(u.shape()));
  }
  // A 0-d tensor: unsqueeze(0) and unsqueeze(-1) give [1]; squeeze(0) and squeeze(-1) leave it as it is.
  const Variable<double> scalar(TD::scalar(2.0));
  CHECK(unsqueeze(scalar, -1).shape() == Shape{1});
  CHECK(squeeze(scalar, 0).shape() == Shape{});
  CHECK_THROWS_WITH(unsqueeze(x, 5), Contains("unsqueeze") && Contains("dimension 5") &&
                                         Contains("[-5, 4]") && Contains("[2, 1, 3, 1]"));
  CHECK_THROWS_WITH(unsqueeze(x, -6), Contains("unsqueeze") && Contains("dimension -6"));
  CHECK_THROWS_WITH(squeeze(scalar, 1), Contains("squeeze") && Contains("[]"));
  CHECK_THROWS_WITH(squeeze(x, 4), Contains("squeeze") && Contains("[2, 1, 3, 1]"));
}

TEST_CASE("squeeze and unsqueeze gradients and version counters", "[shape][gradcheck]") {
  const auto weighted = [](const Variable<double>& y, uint64_t seed) {
    return mul(y, leaf(y.shape(), seed, {.requires_grad = false}));
  };
  require_gradcheck([&](const auto& in) { return weighted(unsqueeze(transpose(in[0], 0, 1), 1), 41); },
                    {leaf({2, 3}, 42)});
  require_gradcheck([&](const auto& in) { return weighted(squeeze(in[0]), 43); }, {leaf({3, 1, 2, 1}, 44)});
  require_gradcheck([&](const auto& in) { return weighted(squeeze(in[0], 1), 45); }, {leaf({3, 1, 2}, 46)});
  // Writing through an unsqueezed view refuses a graph that saved the base, as the other views do.
  Variable<double> w(TD::ones({2, 3}), true);
  Variable<double> y = mul(w, Variable<double>(TD::ones({2, 3}), true));
  Variable<double> v = unsqueeze(w, 0);
  v.value().fill_(0);
  v.mark_modified();
  CHECK_THROWS_WITH(sum(y).backward(), Catch::Matchers::Contains("'mul'"));
}

TEST_CASE("reshape infers -1, views a contiguous input and copies a strided one", "[shape]") {
  const V x(iota({2, 3, 4}));
  const V r = reshape(x, {4, -1});
  REQUIRE(r.shape() == Shape{4, 6});
  REQUIRE(r.value().shares_storage_with(x.value()));
  REQUIRE(r.value().at({3, 5}) == 23);
  REQUIRE(r.value().at({1, 2}) == 8);
  REQUIRE(reshape(x, {-1}).shape() == Shape{24});
  REQUIRE(reshape(V(TD::scalar(5)), {1, 1}).shape() == Shape{1, 1});

  const V t(iota({3, 4}).transpose(0, 1));  // [4, 3], t[a, b] = 4 b + a
  const V rt = reshape(t, {12});
  REQUIRE_FALSE(rt.value().shares_storage_with(t.value()));
  for (int64_t i = 0; i < 12; ++i) REQUIRE(rt.value().at({i}) == 4 * (i % 3) + i / 3);
}

TEST_CASE("reshape errors name the op and both shapes", "[shape][errors]") {
  const V x(TD::zeros({2, 3}));
  REQUIRE_THROWS_WITH(reshape(x, {4, 2}),
                      Catch::Contains("reshape") && Catch::Contains("[2, 3]") && Catch::Contains("[4, 2]"));
  REQUIRE_THROWS_WITH(reshape(x, {4, -1}), Catch::Contains("reshape") && Catch::Contains("[4, -1]"));
  REQUIRE_THROWS_WITH(reshape(x, {-1, -1}), Catch::Contains("more than one -1"));
  REQUIRE_THROWS_WITH(reshape(x, {-2, -3}), Catch::Contains("negative"));
  REQUIRE_THROWS_AS(reshape(x, {0, -1}), std::invalid_argument);
}

TEST_CASE("flatten follows torch.flatten", "[shape]") {
  const V x(iota({2, 3, 4, 5}));
  REQUIRE(flatten(x).shape() == Shape{2, 60});
  REQUIRE(flatten(x, 0).shape() == Shape{120});
  REQUIRE(flatten(x, 1, 2).shape() == Shape{2, 12, 5});
  REQUIRE(flatten(x, -2, -1).shape() == Shape{2, 3, 20});
  REQUIRE(flatten(x, 0, 1).shape() == Shape{6, 4, 5});
  REQUIRE(flatten(x, 2, 2).shape() == Shape{2, 3, 4, 5});
  REQUIRE(flatten(V(TD::scalar(3)), 0).shape() == Shape{1});
  const V f = flatten(x, 1, 2);
  REQUIRE(f.value().shares_storage_with(x.value()));
  REQUIRE(f.value().at({1, 7, 3}) == 60 + 7 * 5 + 3);
  REQUIRE_THROWS_WITH(flatten(x, 2, 1), Catch::Contains("flatten") && Catch::Contains("[2, 3, 4, 5]"));
  REQUIRE_THROWS_WITH(flatten(x, 4),
                      Catch::Contains("flatten: dimension 4 out of range for shape [2, 3, 4, 5]"));
  REQUIRE_THROWS_WITH(flatten(V(TD::scalar(3)), 0, 1),
                      Catch::Contains("flatten: dimension 1 out of range for shape []"));
}

TEST_CASE("unflatten splits one dimension", "[shape]") {
  const V x(iota({2, 12}));
  const V u = unflatten(x, 1, {3, 4});
  REQUIRE(u.shape() == Shape{2, 3, 4});
  REQUIRE(u.value().shares_storage_with(x.value()));
  REQUIRE(u.value().at({1, 2, 3}) == 12 + 11);
  REQUIRE(unflatten(x, -1, {-1, 6}).shape() == Shape{2, 2, 6});
  REQUIRE(unflatten(x, 0, {2, 1}).shape() == Shape{2, 1, 12});
  REQUIRE(unflatten(x, 1, {12}).shape() == Shape{2, 12});
  REQUIRE_THROWS_WITH(unflatten(x, 1, {5, -1}), Catch::Contains("unflatten") && Catch::Contains("[5, -1]") &&
                                                    Catch::Contains("[2, 12]"));
  REQUIRE_THROWS_WITH(unflatten(x, 1, {3, 5}), Catch::Contains("unflatten") && Catch::Contains("[3, 5]"));
  REQUIRE_THROWS_WITH(unflatten(x, 1, {}), Catch::Contains("unflatten"));
  REQUIRE_THROWS_WITH(unflatten(x, 2, {1}),
                      Catch::Contains("unflatten: dimension 2 out of range for shape [2, 12]"));
  REQUIRE_THROWS_WITH(unflatten(V(TD::scalar(3)), 0, {1}),
                      Catch::Contains("unflatten: dimension 0 out of range for shape []"));
}

TEST_CASE("reshape, flatten and unflatten gradients match finite differences", "[shape][gradcheck]") {
  require_gradcheck([](const std::vector<V>& v) { return reshape(v[0], {4, -1}); }, {leaf({2, 3, 4}, 21)});
  require_gradcheck([](const std::vector<V>& v) { return reshape(v[0], {24}); }, {leaf({2, 3, 4}, 22)});
  require_gradcheck([](const std::vector<V>& v) { return flatten(v[0]); }, {leaf({2, 3, 4}, 23)});
  require_gradcheck([](const std::vector<V>& v) { return flatten(v[0], 0, 1); }, {leaf({2, 3, 4}, 24)});
  require_gradcheck([](const std::vector<V>& v) { return flatten(v[0], -2); }, {leaf({2, 3, 4}, 25)});
  require_gradcheck([](const std::vector<V>& v) { return flatten(v[0], 0); }, {leaf({2, 3, 4}, 26)});
  require_gradcheck([](const std::vector<V>& v) { return unflatten(v[0], 1, {3, 4}); }, {leaf({2, 12}, 27)});
  require_gradcheck(
      [](const std::vector<V>& v) {
        return unflatten(v[0], -1, {2, -1});
      },
      {leaf({2, 12}, 28)});
  require_gradcheck([](const std::vector<V>& v) { return unflatten(v[0], 0, {1, 2}); }, {leaf({2, 12}, 29)});
  // Through a chain that uses the view twice.
  require_gradcheck(
      [](const std::vector<V>& v) {
        const V f = flatten(v[0]);
        return mul(f, f) + reshape(v[0], {2, 12});
      },
      {leaf({2, 3, 4}, 30)});
}

// ---- concat
// --------------------------------------------------------------------------------------------------

TEST_CASE("concat joins along any dimension", "[shape][concat]") {
  const V a(iota({2, 3})), b(TD::full({1, 3}, -1)), c(TD::full({2, 3}, 100));
  const V r0 = concat<double>({a, b, c}, 0);
  REQUIRE(r0.shape() == Shape{5, 3});
  REQUIRE(r0.value().at({1, 2}) == 5);
  REQUIRE(r0.value().at({2, 0}) == -1);
  REQUIRE(r0.value().at({4, 1}) == 100);

  const V d(TD::full({2, 1}, -1)), e(TD::full({2, 2}, 7));
  const V r1 = concat<double>({a, d, e}, 1);
  REQUIRE(r1.shape() == Shape{2, 6});
  const std::vector<double> row1 = {3, 4, 5, -1, 7, 7};
  for (int64_t j = 0; j < 6; ++j) REQUIRE(r1.value().at({1, j}) == row1[std::size_t(j)]);
  REQUIRE(concat<double>({a, d, e}, -1).value().at({0, 3}) == -1);

  // The middle dimension of 3-d inputs.
  const V p(iota({2, 2, 2})), q(TD::full({2, 1, 2}, -5));
  const V r = concat<double>({p, q}, 1);
  REQUIRE(r.shape() == Shape{2, 3, 2});
  REQUIRE(r.value().at({1, 1, 1}) == 7);
  REQUIRE(r.value().at({1, 2, 0}) == -5);
  REQUIRE(r.value().at({0, 2, 1}) == -5);

  REQUIRE(concat<double>({a}, 0).value().at({1, 1}) == 4);
}

TEST_CASE("concat of more inputs than one graph node takes", "[shape][concat]") {
  std::vector<V> parts;
  for (int i = 0; i < 19; ++i) parts.push_back(V(TD::full({1, 2}, double(i)), i % 3 != 1));
  V r = concat(parts, 0);
  REQUIRE(r.shape() == Shape{19, 2});
  for (int64_t i = 0; i < 19; ++i) REQUIRE(r.value().at({i, 1}) == double(i));
  TD g = iota({19, 2});
  r.backward(g);
  for (int64_t i = 0; i < 19; ++i) {
    if (i % 3 == 1) {
      REQUIRE_FALSE(parts[std::size_t(i)].grad().defined());
    } else {
      REQUIRE(parts[std::size_t(i)].grad().at({0, 0}) == 2 * i);
      REQUIRE(parts[std::size_t(i)].grad().at({0, 1}) == 2 * i + 1);
    }
  }
}

TEST_CASE("concat gradients match finite differences", "[shape][concat][gradcheck]") {
  require_gradcheck([](const std::vector<V>& v) { return concat(v, 0); },
                    {leaf({2, 3}, 41), leaf({1, 3}, 42), leaf({4, 3}, 43)});
  require_gradcheck([](const std::vector<V>& v) { return concat(v, 1); },
                    {leaf({2, 3}, 44), leaf({2, 1}, 45), leaf({2, 4}, 46)});
  require_gradcheck([](const std::vector<V>& v) { return concat(v, -2); },
                    {leaf({2, 3, 2}, 47), leaf({2, 1, 2}, 48), leaf({2, 2, 2}, 49)});
  // The same input twice gets the sum of both slices' gradients.
  require_gradcheck(
      [](const std::vector<V>& v) {
        return concat<double>({v[0], v[1], v[0]}, 1);
      },
      {leaf({2, 3}, 52), leaf({2, 2}, 53)});
  // An input that needs no gradient gets none; the others still do.
  V a = leaf({2, 2}, 50), b(TD::ones({1, 2}), false), c = leaf({3, 2}, 51);
  concat<double>({a, b, c}, 0).backward(iota({6, 2}));
  REQUIRE_FALSE(b.grad().defined());
  REQUIRE(a.grad().at({1, 1}) == 3);
  REQUIRE(c.grad().at({0, 0}) == 6);
  REQUIRE(c.grad().at({2, 1}) == 11);
}

TEST_CASE("concat errors name the op and the mismatching shapes", "[shape][concat][errors]") {
  const V a(TD::zeros({2, 3})), b(TD::zeros({2, 4})), c(TD::zeros({2, 3, 1}));
  REQUIRE_THROWS_WITH(concat<double>({a, b}, 0),
                      Catch::Contains("concat") && Catch::Contains("[2, 3]") && Catch::Contains("[2, 4]"));
  REQUIRE_NOTHROW(concat<double>({a, b}, 1));
  REQUIRE_THROWS_WITH(concat<double>({a, a, c}, 0),
                      Catch::Contains("concat") && Catch::Contains("[2, 3]") && Catch::Contains("[2, 3, 1]"));
  REQUIRE_THROWS_WITH(concat<double>({}, 0), Catch::Contains("concat"));
  REQUIRE_THROWS_WITH(concat<double>({a, a}, 2),
                      Catch::Contains("concat: dimension 2 out of range for shape [2, 3]"));
  // Empty inputs may have huge sizes: a total past int64_t, or a result whose sizes do not multiply.
  const int64_t big = int64_t(1) << 62;
  const V huge(TD::zeros({0, big})), wide(TD::zeros({0, int64_t(1) << 42, int64_t(1) << 20}));
  REQUIRE_THROWS_WITH(
      concat<double>({huge, huge}, 1),
      Catch::Contains("concat: the sizes along dimension 1") && Catch::Contains("[0, 4611686018427387904]"));
  REQUIRE_THROWS_WITH(concat<double>({wide, wide, wide, wide}, 2),
                      Catch::Contains("concat: the result's shape [0, 4398046511104, 4194304]"));
  REQUIRE(concat<double>({huge, V(TD::zeros({0, 1}))}, 1).shape() == Shape{0, big + 1});
}

// ---- softmax / log_softmax
// -------------------------------------------------------------------------------------

TEST_CASE("softmax and log_softmax values", "[softmax]") {
  const V x(TD::from_vector({1, 2, 3, 0, 0, 0}, {2, 3}));
  const double z = std::exp(1.0) + std::exp(2.0) + std::exp(3.0);
  const V s = softmax(x, -1);
  REQUIRE(s.value().at({0, 0}) == Approx(std::exp(1.0) / z));
  REQUIRE(s.value().at({0, 2}) == Approx(std::exp(3.0) / z));
  REQUIRE(s.value().at({1, 1}) == Approx(1.0 / 3));
  const V ls = log_softmax(x, 1);
  REQUIRE(ls.value().at({0, 1}) == Approx(2 - std::log(z)));
  REQUIRE(ls.value().at({1, 2}) == Approx(-std::log(3.0)));

  // Along dim 0: columns.
  const V s0 = softmax(x, 0);
  REQUIRE(s0.value().at({0, 0}) == Approx(std::exp(1.0) / (std::exp(1.0) + 1)));
  REQUIRE(s0.value().at({1, 2}) == Approx(1 / (std::exp(3.0) + 1)));
  REQUIRE(log_softmax(x, 0).value().at({1, 1}) == Approx(-std::log(std::exp(2.0) + 1)));

  // A middle dimension of a 3-d tensor: every line along it sums to 1 and matches exp(log_softmax).
  Generator gen(5);
  const V y(TD::randn({3, 4, 5}, gen, 0, 3));
  const TD sm = softmax(y, 1).value(), lsm = log_softmax(y, -2).value();
  for (int64_t a = 0; a < 3; ++a)
    for (int64_t c = 0; c < 5; ++c) {
      double total = 0, z2 = 0;
      for (int64_t b = 0; b < 4; ++b) {
        total += sm.at({a, b, c});
        z2 += std::exp(y.value().at({a, b, c}));
        REQUIRE(std::exp(lsm.at({a, b, c})) == Approx(sm.at({a, b, c})));
      }
      REQUIRE(total == Approx(1));
      REQUIRE(lsm.at({a, 2, c}) == Approx(y.value().at({a, 2, c}) - std::log(z2)));
    }
}

TEST_CASE("softmax and log_softmax are stable for large inputs", "[softmax]") {
  const Variable<float> x(Tensor<float>::from_vector({1000, 1001, -1000, 1e30f}, {2, 2}));
  const Tensor<float> s = softmax(x, 1).value();
  REQUIRE(s.at({0, 0}) == Approx(1 / (1 + std::exp(1.0))));
  REQUIRE(s.at({1, 1}) == Approx(1));
  REQUIRE(s.at({1, 0}) == 0);
  const Tensor<float> ls = log_softmax(x, 1).value();
  REQUIRE(ls.at({0, 1}) == Approx(-std::log1p(std::exp(-1.0))));
  REQUIRE(std::isfinite(ls.at({1, 0})));
  REQUIRE(ls.at({1, 0}) == Approx(-1e30f));
}

TEST_CASE("softmax and log_softmax gradients match finite differences", "[softmax][gradcheck]") {
  for (int64_t dim : {0, -1}) {
    INFO("dim " << dim);
    require_gradcheck([dim](const std::vector<V>& v) { return softmax(v[0], dim); },
                      {leaf({3, 5}, 61, {-2, 2})});
    require_gradcheck([dim](const std::vector<V>& v) { return log_softmax(v[0], dim); },
                      {leaf({3, 5}, 62, {-2, 2})});
  }
  require_gradcheck([](const std::vector<V>& v) { return softmax(v[0], 1); }, {leaf({2, 3, 4}, 63, {-2, 2})});
  require_gradcheck([](const std::vector<V>& v) { return log_softmax(v[0], 1); },
                    {leaf({2, 3, 4}, 64, {-2, 2})});
  require_gradcheck([](const std::vector<V>& v) { return log_softmax(v[0], 0); },
                    {leaf({2, 3, 4}, 65, {-2, 2})});
}

TEST_CASE("softmax dimension errors", "[softmax][errors]") {
  const V x(TD::zeros({2, 3}));
  REQUIRE_THROWS_WITH(softmax(x, 2), Catch::Contains("softmax") && Catch::Contains("dimension 2"));
  REQUIRE_THROWS_WITH(log_softmax(x, -3), Catch::Contains("log_softmax"));
}
