// t-SNE: input affinities, the gradient (exact against finite differences, Barnes-Hut and AVX2 against the
// exact scalar loop), an end-to-end run on separated clusters, and the embedding metrics against
// scikit-learn (tests/fixtures/make_sklearn_fixtures.py).
#include <catch2/catch.hpp>
#include <cmath>
#include <random>
#include <string>

#include "sumi/analysis/embedding_metrics.hpp"
#include "sumi/analysis/tsne.hpp"
#include "sumi/util/csv.hpp"

using namespace sumi::analysis;

namespace {

PointMatrix gaussian_points(int64_t n, int64_t d, uint64_t seed, double scale = 1.0) {
  std::mt19937_64 engine(seed);
  std::normal_distribution<double> normal(0.0, scale);
  PointMatrix x(n, d);
  for (int64_t i = 0; i < n; ++i)
    for (int64_t c = 0; c < d; ++c) x(i, c) = normal(engine);
  return x;
}

// `clusters` groups of `per` points around centres 20 apart in `d` dimensions.
PointMatrix clustered_points(int64_t clusters, int64_t per, int64_t d, uint64_t seed,
                             std::vector<int64_t>& labels) {
  PointMatrix x = gaussian_points(clusters * per, d, seed);
  labels.clear();
  for (int64_t i = 0; i < x.rows(); ++i) {
    const int64_t c = i % clusters;
    x(i, c % d) += 20.0 * double(c + 1);
    labels.push_back(c);
  }
  return x;
}

// KL(P || Q) in double straight from the definition.
double reference_kl(const JointProbabilities& p, const std::vector<double>& x, const std::vector<double>& y) {
  const int64_t n = p.points;
  double z = 0;
  for (int64_t i = 0; i < n; ++i)
    for (int64_t j = 0; j < n; ++j)
      if (i != j) z += 1.0 / (1.0 + std::pow(x[i] - x[j], 2) + std::pow(y[i] - y[j], 2));
  double kl = 0;
  for (int64_t i = 0; i < n; ++i)
    for (int64_t e = p.row_start[i]; e < p.row_start[i + 1]; ++e) {
      const int64_t j = p.column[e];
      const double q = 1.0 / (1.0 + std::pow(x[i] - x[j], 2) + std::pow(y[i] - y[j], 2)) / z;
      kl += p.value[e] * std::log(p.value[e] / q);
    }
  return kl;
}

struct Embedding2d {
  std::vector<float> x, y;
};

Embedding2d random_embedding(int64_t n, uint64_t seed, double scale) {
  std::mt19937_64 engine(seed);
  std::normal_distribution<float> normal(0.0f, float(scale));
  Embedding2d e;
  for (int64_t i = 0; i < n; ++i) e.x.push_back(normal(engine)), e.y.push_back(normal(engine));
  return e;
}

double max_abs_difference(const std::vector<double>& a, const std::vector<double>& b) {
  double m = 0;
  for (std::size_t i = 0; i < a.size(); ++i) m = std::max(m, std::abs(a[i] - b[i]));
  return m;
}

double max_abs(const std::vector<double>& a) {
  double m = 0;
  for (double v : a) m = std::max(m, std::abs(v));
  return m;
}

}  // namespace

TEST_CASE("exact nearest neighbours agree with a sort of all distances", "[tsne]") {
  const PointMatrix x = gaussian_points(300, 3, 1);
  const Neighbors nn = exact_knn(x, 7);
  for (int64_t i = 0; i < x.rows(); i += 37) {
    std::vector<std::pair<double, int64_t>> all;
    for (int64_t j = 0; j < x.rows(); ++j)
      if (j != i) all.push_back({(x.row(i) - x.row(j)).squaredNorm(), j});
    std::sort(all.begin(), all.end());
    for (int m = 0; m < 7; ++m) {
      CHECK(nn.indices_of(i)[m] == all[std::size_t(m)].second);
      CHECK(nn.sq_distances_of(i)[m] == Approx(all[std::size_t(m)].first));
    }
  }
  CHECK_THROWS_WITH(exact_knn(x, 300), Catch::Contains("k < points"));
}

TEST_CASE("t-SNE input affinities reach the target perplexity and are a symmetric distribution", "[tsne]") {
  const PointMatrix x = gaussian_points(400, 5, 2);
  for (const double perplexity : {5.0, 30.0}) {
    const auto conditional = conditional_probabilities(exact_knn(x, int64_t(3 * perplexity + 1)), perplexity);
    const int64_t k = conditional.neighbors.k;
    for (int64_t i = 0; i < x.rows(); ++i) {
      double sum = 0, entropy = 0;
      for (int64_t m = 0; m < k; ++m) {
        const double p = conditional.p[std::size_t(i * k + m)];
        sum += p;
        if (p > 0) entropy -= p * std::log(p);
      }
      REQUIRE(sum == Approx(1.0).epsilon(1e-12));
      REQUIRE(std::exp(entropy) == Approx(perplexity).epsilon(1e-4));
    }
    const JointProbabilities p = joint_probabilities(conditional);
    double total = 0;
    for (double v : p.value) total += v;
    CHECK(total == Approx(1.0).epsilon(1e-12));
    // Symmetric: p_ij == p_ji for a sample of entries.
    for (int64_t i = 0; i < x.rows(); i += 41)
      for (int64_t e = p.row_start[std::size_t(i)]; e < p.row_start[std::size_t(i + 1)]; ++e) {
        const int64_t j = p.column[std::size_t(e)];
        const auto first = p.column.begin() + p.row_start[std::size_t(j)],
                   last = p.column.begin() + p.row_start[std::size_t(j + 1)];
        const auto it = std::lower_bound(first, last, i);
        REQUIRE((it != last && *it == i));
        CHECK(p.value[std::size_t(it - p.column.begin())] == Approx(p.value[std::size_t(e)]).epsilon(1e-12));
      }
  }
}

TEST_CASE("the exact t-SNE gradient is the derivative of the KL divergence", "[tsne]") {
  const int64_t n = 40;
  const auto p = joint_probabilities(conditional_probabilities(exact_knn(gaussian_points(n, 4, 3), 20), 6.0));
  const Embedding2d e = random_embedding(n, 4, 2.0);
  std::vector<double> gx(n), gy(n);
  TsneObjective objective(TsneGradient::exact, 0.5);
  objective.gradient(p, 1.0, e.x, e.y, gx, gy);
  std::vector<double> x(e.x.begin(), e.x.end()), y(e.y.begin(), e.y.end());
  const double h = 1e-5;
  for (int64_t i = 0; i < n; i += 7) {
    for (auto* coord : {&x, &y}) {
      const double saved = (*coord)[std::size_t(i)];
      (*coord)[std::size_t(i)] = saved + h;
      const double up = reference_kl(p, x, y);
      (*coord)[std::size_t(i)] = saved - h;
      const double down = reference_kl(p, x, y);
      (*coord)[std::size_t(i)] = saved;
      const double numeric = (up - down) / (2 * h);
      const double analytic = coord == &x ? gx[std::size_t(i)] : gy[std::size_t(i)];
      CHECK(analytic == Approx(numeric).margin(1e-6).epsilon(1e-4));
    }
  }
  // And the divergence itself.
  CHECK(tsne_kl_divergence(p, e.x, e.y, objective.normalisation(e.x, e.y)) ==
        Approx(reference_kl(p, x, y)).epsilon(1e-5));
}

TEST_CASE("vectorised, scalar and Barnes-Hut repulsion agree", "[tsne]") {
  const int64_t n = 1003;  // not a multiple of the vector width
  const Embedding2d e = random_embedding(n, 5, 10.0);
  std::vector<double> sx(n), sy(n), vx(n), vy(n), bx(n), by(n), tx(n), ty(n);
  ExactRepulsion exact;
  const double z_scalar = exact(e.x, e.y, sx, sy, sumi::kernels::Isa::scalar);
  const double z_vector = exact(e.x, e.y, vx, vy);  // the active ISA (AVX2 where the CPU has it)
  CHECK(z_vector == Approx(z_scalar).epsilon(1e-5));
  CHECK(max_abs_difference(sx, vx) < 1e-5 * max_abs(sx));
  CHECK(max_abs_difference(sy, vy) < 1e-5 * max_abs(sy));
  if (sumi::kernels::isa_supported(sumi::kernels::Isa::avx2)) {
    exact(e.x, e.y, vx, vy, sumi::kernels::Isa::avx2);
    CHECK(max_abs_difference(sx, vx) < 1e-5 * max_abs(sx));
  }
  // Barnes-Hut with theta 0 opens every cell: exact up to rounding.
  BarnesHutRepulsion tree_exact(0.0);
  CHECK(tree_exact(e.x, e.y, tx, ty) == Approx(z_scalar).epsilon(1e-5));
  CHECK(max_abs_difference(sx, tx) < 1e-4 * max_abs(sx));
  // theta 0.5: a few percent at most.
  BarnesHutRepulsion tree(0.5);
  CHECK(tree(e.x, e.y, bx, by) == Approx(z_scalar).epsilon(0.01));
  double error = 0, norm = 0;
  for (int64_t i = 0; i < n; ++i) {
    error += std::pow(bx[i] - sx[i], 2) + std::pow(by[i] - sy[i], 2);
    norm += sx[i] * sx[i] + sy[i] * sy[i];
  }
  CHECK(std::sqrt(error / norm) < 0.03);
}

TEST_CASE("t-SNE keeps well-separated clusters apart and the KL falls", "[tsne]") {
  std::vector<int64_t> labels;
  const PointMatrix x = clustered_points(4, 60, 8, 6, labels);
  TsneOptions options;
  options.perplexity = 15;
  options.iterations = 300;
  options.exaggeration_iterations = 100;
  options.kl_every = 25;
  for (const TsneGradient method : {TsneGradient::exact, TsneGradient::barnes_hut}) {
    options.gradient = method;
    const TsneResult result = tsne(x, options);
    REQUIRE(result.embedding.rows() == x.rows());
    CHECK(result.gradient == tsne_gradient_name(method));
    CHECK(knn_accuracy(result.embedding, labels, 10) == 1.0);
    REQUIRE(result.kl_history.size() == 12);
    CHECK(result.kl_history.back().second < 0.8 * result.kl_history.front().second);
    CHECK(result.kl_divergence < result.kl_history[5].second);  // after the exaggeration phase
    CHECK(result.learning_rate == 50.0);                        // auto: max(240 / 12 / 4, 50)
  }
}

TEST_CASE("t-SNE is reproducible with a fixed seed", "[tsne]") {
  const PointMatrix x = gaussian_points(150, 5, 7);
  TsneOptions options;
  options.perplexity = 10;
  options.iterations = 100;
  options.exaggeration_iterations = 50;
  options.init = TsneInit::random;
  options.seed = 11;
  const TsneResult a = tsne(x, options), b = tsne(x, options);
  CHECK(a.embedding == b.embedding);
  options.seed = 12;
  CHECK(tsne(x, options).embedding != a.embedding);
  CHECK_THROWS_WITH(tsne(gaussian_points(20, 2, 1), TsneOptions{}), Catch::Contains("perplexity"));
}

TEST_CASE("trustworthiness matches scikit-learn on a fixture", "[tsne][metrics]") {
  const auto table = sumi::util::read_csv(std::string(SUMI_FIXTURE_DIR) + "/sklearn_trustworthiness.csv");
  const auto expected =
      sumi::util::read_csv(std::string(SUMI_FIXTURE_DIR) + "/sklearn_trustworthiness_value.csv");
  PointMatrix x(Eigen::Index(table.size()), 6), e(Eigen::Index(table.size()), 2);
  for (std::size_t r = 0; r < table.size(); ++r) {
    for (int c = 0; c < 6; ++c) x(Eigen::Index(r), c) = table.number(r, "x" + std::to_string(c));
    for (int c = 0; c < 2; ++c) e(Eigen::Index(r), c) = table.number(r, "e" + std::to_string(c));
  }
  for (std::size_t row = 0; row < expected.size(); ++row) {
    const auto k = int64_t(expected.number(row, "k"));
    CHECK(trustworthiness(x, e, k) == Approx(expected.number(row, "trustworthiness")).epsilon(1e-12));
  }
  // An embedding that is the input itself is perfectly trustworthy.
  CHECK(trustworthiness(x, x, 10) == Approx(1.0));
}

TEST_CASE("k-NN accuracy votes by the nearest neighbours", "[metrics]") {
  // 1-d points: two groups, and one point of class 1 placed inside group 0.
  PointMatrix e(7, 1);
  e << 0.0, 0.1, 0.2, 0.3, 10.0, 10.1, 10.2;
  const std::vector<int64_t> labels{0, 0, 1, 0, 1, 1, 1};
  // k = 2 by hand: 0 -> {1, 2}: a 0/1 tie, so class 0 (correct); 1 -> {0, 2}: tie, 0 (correct);
  // 2 -> {1, 3}: 0 (wrong); 3 -> {2, 1}: tie, 0 (correct); 4, 5, 6 -> class 1 (correct). 6 of 7.
  CHECK(knn_accuracy(e, labels, 2) == Approx(6.0 / 7.0));
  CHECK_THROWS_WITH(knn_accuracy(e, {0, 1}, 2), Catch::Contains("2 labels for 7 points"));
}
