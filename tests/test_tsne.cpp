// t-SNE: nearest neighbours (k-d tree and brute force against a sort), input affinities, the gradient (exact
// against finite differences; AVX2, Barnes-Hut and FFT interpolation against the exact scalar loop; the
// batched FFT against Eigen's), an end-to-end run on separated clusters, and the embedding metrics against
// scikit-learn (tests/fixtures/make_sklearn_fixtures.py).
#include <catch2/catch.hpp>

#include <cmath>
#include <complex>
#include <functional>
#include <limits>
#include <random>
#include <string>
#include <unsupported/Eigen/FFT>
#include "max_error.hpp"

#include "sumi/analysis/embedding_metrics.hpp"
#include "sumi/analysis/tsne.hpp"
#include "sumi/util/csv.hpp"

using namespace sumi::analysis;

namespace {

// The squared distances from point i to every other point, with their indices, nearest first.
std::vector<std::pair<double, int64_t>> sorted_distances(const PointMatrix& x, int64_t i) {
  std::vector<std::pair<double, int64_t>> all;
  for (int64_t j = 0; j < x.rows(); ++j)
    if (j != i) all.push_back({(x.row(i) - x.row(j)).squaredNorm(), j});
  std::sort(all.begin(), all.end());
  return all;
}

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
  for (std::size_t i = 0; i < a.size(); ++i) m = sumi::test::nan_max(m, std::abs(a[i] - b[i]));
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
    const std::vector<std::pair<double, int64_t>> all = sorted_distances(x, i);
    for (int m = 0; m < 7; ++m) {
      CHECK(nn.indices_of(i)[m] == all[std::size_t(m)].second);
      CHECK(nn.sq_distances_of(i)[m] == Approx(all[std::size_t(m)].first));
    }
  }
  CHECK_THROWS_WITH(exact_knn(x, 300), Catch::Contains("k < points"));
}

TEST_CASE("nearest neighbours are exact with ties, duplicates and many dimensions", "[tsne]") {
  // Integer coordinates: many equal distances; rows 0-9 repeat rows 10-19. 3-d goes through the k-d tree,
  // 20-d through the blocked brute force.
  for (const int64_t d : {3, 20}) {
    std::mt19937_64 engine{uint64_t(d)};
    std::uniform_int_distribution<int> coordinate(0, 3);
    PointMatrix x(500, d);
    for (int64_t i = 0; i < x.rows(); ++i)
      for (int64_t c = 0; c < d; ++c) x(i, c) = i < 10 ? 0.0 : coordinate(engine);
    x.topRows(10) = x.middleRows(10, 10);
    const int64_t k = 12;
    const Neighbors nn = exact_knn(x, k);
    for (int64_t i = 0; i < x.rows(); ++i) {
      const std::vector<std::pair<double, int64_t>> all = sorted_distances(x, i);
      // The search works on centred coordinates, where equal distances can differ in the last bit, so among
      // exact ties any member may come first: check the distances, and that each neighbour is at its
      // distance.
      std::vector<int64_t> seen;
      for (int64_t m = 0; m < k; ++m) {
        const int64_t j = nn.indices_of(i)[m];
        REQUIRE(j != i);
        REQUIRE(nn.sq_distances_of(i)[m] == Approx(all[std::size_t(m)].first).margin(1e-9));
        REQUIRE((x.row(i) - x.row(j)).squaredNorm() == Approx(all[std::size_t(m)].first).margin(1e-9));
        seen.push_back(j);
      }
      std::sort(seen.begin(), seen.end());
      REQUIRE(std::adjacent_find(seen.begin(), seen.end()) == seen.end());  // no neighbour twice
    }
    CHECK(x.row(nn.indices_of(0)[0]) == x.row(0));  // a duplicate is a neighbour, at distance 0
    CHECK(nn.sq_distances_of(0)[0] == 0.0);
  }
}

TEST_CASE("brute-force neighbours are exact for tight clusters far apart", "[tsne]") {
  // Two clusters at -1e4 and +1e4 per coordinate, spread 1e-3: |a|^2 + |b|^2 - 2ab errs by more than the
  // distances within a cluster.
  std::mt19937_64 engine(9);
  std::normal_distribution<double> spread(0.0, 1e-3);
  PointMatrix x(300, 20);
  for (int64_t i = 0; i < x.rows(); ++i)
    for (int64_t c = 0; c < x.cols(); ++c) x(i, c) = (i % 2 ? 1e4 : -1e4) + spread(engine);
  const int64_t k = 5;
  const Neighbors nn = exact_knn(x, k);
  for (int64_t i = 0; i < x.rows(); ++i) {
    const std::vector<std::pair<double, int64_t>> all = sorted_distances(x, i);
    for (int64_t m = 0; m < k; ++m) {
      INFO("point " << i << ", neighbour " << m);
      REQUIRE(nn.sq_distances_of(i)[m] == Approx(all[std::size_t(m)].first).epsilon(1e-6));
    }
  }
}

TEST_CASE("t-SNE input affinities stay a distribution where the target perplexity cannot be reached",
          "[tsne]") {
  // A 15 x 15 integer grid: every point has 2 to 4 nearest neighbours at distance 1, so no row can be as
  // narrow as perplexity 1.5; the search ends at the narrowest rows, uniform over those ties.
  PointMatrix grid(225, 2);
  for (int64_t i = 0; i < 225; ++i) grid.row(i) << double(i % 15), double(i / 15);
  const auto conditional = conditional_probabilities(exact_knn(grid, 6), 1.5);
  for (int64_t i = 0; i < grid.rows(); ++i) {
    double sum = 0;
    for (int64_t m = 0; m < 6; ++m) sum += conditional.p[std::size_t(i * 6 + m)];
    INFO("point " << i);
    REQUIRE(sum == Approx(1.0).epsilon(1e-12));
    REQUIRE(conditional.p[std::size_t(i * 6)] >= 0.25);  // a nearest neighbour, one of at most 4 ties
  }
  TsneOptions options;
  options.perplexity = 1.5;
  options.iterations = 300;
  CHECK(tsne(grid, options).kl_divergence >= 0);
  // And k neighbours cannot reach a perplexity above k.
  CHECK_THROWS_WITH(conditional_probabilities(exact_knn(grid, 5), 30.0),
                    Catch::Contains("perplexity 30") && Catch::Contains("5 neighbours"));
}

TEST_CASE("t-SNE input affinities reach the target perplexity and are a symmetric distribution", "[tsne]") {
  // Also far beyond beta = 2^+-100 of the starting point: squared distances near 1e-60 and 1e+60.
  for (const double scale : {1.0, 1e-30, 1e30}) {
    const PointMatrix x = gaussian_points(400, 5, 2) * scale;
    for (const double perplexity : {5.0, 30.0}) {
      const auto conditional =
          conditional_probabilities(exact_knn(x, int64_t(3 * perplexity + 1)), perplexity);
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
          CHECK(p.value[std::size_t(it - p.column.begin())] ==
                Approx(p.value[std::size_t(e)]).epsilon(1e-12));
        }
    }
  }
}

TEST_CASE("the exact t-SNE gradient is the derivative of the KL divergence", "[tsne]") {
  const int64_t n = 40;
  const auto p = joint_probabilities(conditional_probabilities(exact_knn(gaussian_points(n, 4, 3), 20), 6.0));
  const Embedding2d e = random_embedding(n, 4, 2.0);
  std::vector<double> gx(n), gy(n);
  TsneObjective objective(TsneGradient::exact, 0.5);
  std::vector<double> x(e.x.begin(), e.x.end()), y(e.y.begin(), e.y.end());
  const double h = 1e-5;
  // The vectorised attraction and repulsion where the CPU has them, and the portable loops.
  const auto active = sumi::kernels::active_isa();
  for (const auto isa : {active, sumi::kernels::Isa::scalar}) {
    sumi::kernels::set_isa(isa);
    objective.gradient(p, 1.0, e.x, e.y, gx, gy);
    sumi::kernels::set_isa(active);
    INFO(sumi::kernels::isa_name(isa));
    for (int64_t i = 0; i < n; i += 7)
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
  // Sizes around the four-row blocks and eight-wide columns of the AVX2 loop.
  for (const int64_t m : {2, 4, 5, 11, 12, 37}) {
    const Embedding2d small = random_embedding(m, uint64_t(m), 3.0);
    std::vector<double> ax(m), ay(m), bx(m), by(m);
    ExactRepulsion exact;
    const double z_scalar = exact(small.x, small.y, ax, ay, sumi::kernels::Isa::scalar);
    CHECK(exact(small.x, small.y, bx, by) == Approx(z_scalar).epsilon(1e-6));
    CHECK(max_abs_difference(ax, bx) < 1e-6 * max_abs(ax));
    CHECK(max_abs_difference(ay, by) < 1e-6 * max_abs(ay));
  }
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
  // The vectorised group sums against the portable ones, on the same tree.
  std::vector<double> qx(n), qy(n);
  CHECK(tree(e.x, e.y, qx, qy, sumi::kernels::Isa::scalar) == Approx(tree(e.x, e.y, bx, by)).epsilon(1e-5));
  CHECK(max_abs_difference(qx, bx) < 1e-5 * max_abs(bx));
  CHECK(max_abs_difference(qy, by) < 1e-5 * max_abs(by));
}

TEST_CASE("Barnes-Hut: each point meets itself once at any opening angle, on any thread count", "[tsne]") {
  // 3,000 Gaussian points (several threads, groups of whole cells) and a wide opening angle, where a
  // cell that holds a group could pass the test unless it is always opened.
  const int64_t n = 3000;
  const Embedding2d e = random_embedding(n, 7, 30.0);
  std::vector<double> sx(n), sy(n), bx(n), by(n);
  const double z_exact = ExactRepulsion()(e.x, e.y, sx, sy);
  const int saved = sumi::get_num_threads();
  for (const double theta : {0.0, 0.5, 1.0}) {
    std::vector<double> z;
    std::vector<std::vector<double>> forces;
    for (const int threads : {1, 2}) {
      sumi::set_num_threads(threads);
      z.push_back(BarnesHutRepulsion(theta)(e.x, e.y, bx, by));
      forces.push_back(bx);
    }
    INFO("theta " << theta);
    CHECK(z[0] == z[1]);
    CHECK(forces[0] == forces[1]);
    // A point counted against itself as part of a body would move Z by up to n = 16% of it.
    const double z_tolerance = theta == 0 ? 1e-5 : theta * 0.04,
                 force_tolerance = theta == 0 ? 1e-4 : theta * 0.2;
    CHECK(z[0] == Approx(z_exact).epsilon(z_tolerance));
    CHECK(max_abs_difference(sx, bx) < force_tolerance * max_abs(sx));
  }
  sumi::set_num_threads(saved);
  // Two tight clusters far apart, each one group: at any theta the far cluster acts as one body and each
  // point's own cluster is summed exactly, so Z is right to the far field's tiny error. Were the root (which
  // holds both groups) accepted as a body, each point would lose its self term against it and Z would turn
  // negative.
  const Embedding2d a = random_embedding(100, 8, 1.0), b = random_embedding(100, 9, 1.0);
  Embedding2d two;
  for (std::size_t i = 0; i < 100; ++i) {
    two.x.push_back(a.x[i]), two.y.push_back(a.y[i]);
    two.x.push_back(b.x[i] + 100.0f), two.y.push_back(b.y[i] + 100.0f);
  }
  std::vector<double> ex(200), ey(200), tx(200), ty(200);
  const double z_two = ExactRepulsion()(two.x, two.y, ex, ey);
  CHECK(BarnesHutRepulsion(1e6)(two.x, two.y, tx, ty) == Approx(z_two).epsilon(1e-4));
  CHECK(max_abs_difference(ex, tx) < 1e-4 * max_abs(ex));
}

TEST_CASE("the batched FFT matches Eigen's FFT forwards and backwards", "[tsne]") {
  for (const int64_t length : {2, 3, 12, 54, 96, 144}) {  // (Eigen's kissfft fails on length 1)
    const int64_t batch = 3;
    std::mt19937_64 engine{uint64_t(length)};
    std::normal_distribution<double> normal;
    std::vector<double> re(std::size_t(length * batch)), im(re.size()), scratch_re(re.size()),
        scratch_im(re.size());
    for (std::size_t e = 0; e < re.size(); ++e) re[e] = normal(engine), im[e] = normal(engine);
    sumi::analysis::detail::BatchedFft fft;
    fft.plan(length);
    for (const bool inverse : {false, true}) {
      for (const auto isa : {sumi::kernels::Isa::scalar, sumi::kernels::active_isa()}) {
        std::vector<double> out_re = re, out_im = im;
        fft.run(out_re.data(), out_im.data(), scratch_re.data(), scratch_im.data(), batch, inverse, isa);
        Eigen::FFT<double> reference;
        reference.SetFlag(Eigen::FFT<double>::Unscaled);
        for (int64_t b = 0; b < batch; ++b) {
          std::vector<std::complex<double>> in(static_cast<std::size_t>(length)), expected(in.size());
          for (int64_t k = 0; k < length; ++k)
            in[std::size_t(k)] = {re[std::size_t(k * batch + b)], im[std::size_t(k * batch + b)]};
          if (inverse)
            reference.inv(expected, in);
          else
            reference.fwd(expected, in);
          for (int64_t k = 0; k < length; ++k) {
            REQUIRE(out_re[std::size_t(k * batch + b)] ==
                    Approx(expected[std::size_t(k)].real()).margin(1e-11));
            REQUIRE(out_im[std::size_t(k * batch + b)] ==
                    Approx(expected[std::size_t(k)].imag()).margin(1e-11));
          }
        }
      }
    }
  }
  sumi::analysis::detail::BatchedFft fft;
  CHECK_THROWS_WITH(fft.plan(10), Catch::Contains("2^a 3^b"));
}

TEST_CASE("FFT-interpolated repulsion agrees with the exact one and converges with the box size", "[tsne]") {
  // Spreads like the embeddings' (tens of units, so the grid is larger than its 50-box minimum) and a tiny
  // one (the start of an optimisation, the minimum grid over a small square).
  for (const double scale : {10.0, 0.01}) {
    const int64_t n = 3001;
    const Embedding2d e = random_embedding(n, 8, scale);
    std::vector<double> sx(n), sy(n), fx(n), fy(n);
    ExactRepulsion exact;
    const double z_exact = exact(e.x, e.y, sx, sy, sumi::kernels::Isa::scalar);
    const auto relative_error = [&] {
      double error = 0, norm = 0;
      for (int64_t i = 0; i < n; ++i) {
        error += std::pow(fx[i] - sx[i], 2) + std::pow(fy[i] - sy[i], 2);
        norm += sx[i] * sx[i] + sy[i] * sy[i];
      }
      return std::sqrt(error / norm);
    };
    // The default box (side 1, as openTSNE's): errors of a few percent, like Barnes-Hut at theta 0.5.
    FftRepulsion fft;
    const double z_default = fft(e.x, e.y, fx, fy);
    const double error_default = relative_error();
    CHECK(z_default == Approx(z_exact).epsilon(0.01));
    CHECK(error_default < 0.05);
    // A quarter of the side: 3-point interpolation error falls as side^3.
    FftRepulsion fine(0.25, 3, 200);
    const double z_fine = fine(e.x, e.y, fx, fy);
    const double error_fine = relative_error();
    CHECK(z_fine == Approx(z_exact).epsilon(1e-3));
    CHECK(error_fine < 1e-3);
    if (scale > 1) CHECK(error_fine < error_default / 8);  // (at the tiny scale both are near rounding)
  }
  CHECK_THROWS_WITH(FftRepulsion(0.0), Catch::Contains("box_width"));
  CHECK_THROWS_WITH(FftRepulsion(1.0, 3, 2000), Catch::Contains("min_boxes 2000"));
}

TEST_CASE("FFT repulsion refuses an embedding too wide for its grid and non-finite coordinates", "[tsne]") {
  // 20,000 units wide, as a diverged optimisation leaves it: the default box would need 60,000 nodes a side
  // (grids of hundreds of GB).
  const int64_t n = 2001;
  Embedding2d e = random_embedding(n, 4, 3000.0);
  std::vector<double> fx(n), fy(n);
  FftRepulsion fft;
  CHECK_THROWS_WITH(fft(e.x, e.y, fx, fy), Catch::Contains("the embedding spans") && Catch::Contains("4096"));
  // The embedding's typical width (tens of units) passes: see the test above.
  Embedding2d small = random_embedding(n, 4, 10.0);
  for (const float bad : {std::numeric_limits<float>::infinity(), std::numeric_limits<float>::quiet_NaN()}) {
    small.x[7] = bad;
    CHECK_THROWS_WITH(fft(small.x, small.y, fx, fy), Catch::Contains("not all finite"));
  }
  small.x[7] = 0;
  CHECK(std::isfinite(fft(small.x, small.y, fx, fy)));
}

TEST_CASE("t-SNE keeps well-separated clusters apart and the KL falls", "[tsne]") {
  std::vector<int64_t> labels;
  const PointMatrix x = clustered_points(4, 60, 8, 6, labels);
  TsneOptions options;
  options.perplexity = 15;
  options.iterations = 300;
  options.exaggeration_iterations = 100;
  options.kl_every = 25;
  for (const TsneGradient method : {TsneGradient::exact, TsneGradient::barnes_hut, TsneGradient::fft}) {
    options.gradient = method;
    const TsneResult result = tsne(x, options);
    REQUIRE(result.embedding.rows() == x.rows());
    CHECK(result.gradient == tsne_gradient_name(method));
    CHECK(knn_accuracy(result.embedding, labels, 10) == 1.0);
    REQUIRE(result.kl_history.size() == 12);
    CHECK(result.kl_history.back().second < 0.8 * result.kl_history.front().second);
    CHECK(result.kl_divergence < result.kl_history[5].second);  // after the exaggeration phase
    CHECK(result.learning_rate == 50.0);                        // auto: max(240 / 12 / 4, 50)
    // The final KL of a small map uses the exact Z whatever the repulsion method (P from 3 * 15 + 1
    // neighbours, as tsne() builds it).
    CHECK(result.kl_method == "exact");
    const auto p = joint_probabilities(conditional_probabilities(exact_knn(x, 46), options.perplexity));
    std::vector<float> ex(std::size_t(x.rows())), ey(ex.size());
    for (Eigen::Index i = 0; i < x.rows(); ++i)
      ex[std::size_t(i)] = float(result.embedding(i, 0)), ey[std::size_t(i)] = float(result.embedding(i, 1));
    CHECK(result.kl_divergence ==
          Approx(tsne_kl_divergence(p, ex, ey, TsneObjective(TsneGradient::exact, 0.5).normalisation(ex, ey)))
              .epsilon(1e-9));
  }
  TsneOptions approximate = options;
  approximate.gradient = TsneGradient::barnes_hut;
  approximate.exact_kl_max_points = 100;
  CHECK(tsne(x, approximate).kl_method == "barnes_hut");
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
  CHECK(a.init == TsneInit::random);
  // PCA initialisation ignores the seed; 1-d points have no 2-d PCA and start at random.
  options.init = TsneInit::pca;
  const TsneResult pca = tsne(x, options);
  CHECK(pca.init == TsneInit::pca);
  options.seed = 11;
  CHECK(tsne(x, options).embedding == pca.embedding);
  CHECK(tsne(PointMatrix(x.leftCols(1)), options).init == TsneInit::random);
  options.init = TsneInit::random;
  CHECK_THROWS_WITH(tsne(gaussian_points(20, 2, 1), TsneOptions{}), Catch::Contains("perplexity"));
  // Settings that would give an infinite learning rate or a diverging optimiser are refused by name.
  for (const auto& [option, set] : std::vector<std::pair<std::string, std::function<void(TsneOptions&)>>>{
           {"early_exaggeration", [](TsneOptions& o) { o.early_exaggeration = 0; }},
           {"learning_rate",
            [](TsneOptions& o) { o.learning_rate = std::numeric_limits<double>::infinity(); }},
           {"momentum", [](TsneOptions& o) { o.momentum = std::nan(""); }},
           {"final_momentum", [](TsneOptions& o) { o.final_momentum = 1; }},
           {"fft_box_width", [](TsneOptions& o) { o.fft_box_width = 0; }},
           {"theta", [](TsneOptions& o) { o.theta = -1; }}}) {
    TsneOptions bad = options;
    set(bad);
    CHECK_THROWS_WITH(tsne(x, bad), Catch::Contains("t-SNE: " + option));
  }
  for (const TsneGradient g :
       {TsneGradient::automatic, TsneGradient::exact, TsneGradient::barnes_hut, TsneGradient::fft})
    CHECK(parse_tsne_gradient(tsne_gradient_name(g)) == g);
  CHECK_THROWS_WITH(parse_tsne_gradient("fast"), Catch::Contains("unknown gradient method"));
  // Coordinates whose squared distances overflow would give NaN affinities and an all-zero map.
  PointMatrix huge = x;
  huge(3, 1) = 1e154;
  CHECK_THROWS_WITH(tsne(huge, options),
                    Catch::Contains("point 3, coordinate 1 is 1e+154") && Catch::Contains("scale the input"));
  huge(3, 1) = std::numeric_limits<double>::quiet_NaN();
  CHECK_THROWS_WITH(tsne(huge, options), Catch::Contains("point 3, coordinate 1 is not finite"));
  CHECK_THROWS_WITH(exact_knn(huge, 3), Catch::Contains("exact_knn: point 3"));
  // Large but safe: a copy scaled by a power of two has the same neighbours and a finite map.
  const PointMatrix scaled = x * std::ldexp(1.0, 330);
  const TsneResult far = tsne(scaled, options);
  CHECK(far.embedding.allFinite());
  CHECK(exact_knn(scaled, 5).index == exact_knn(x, 5).index);
  // Tiny coordinates: below sqrt(DBL_MIN) every squared distance underflows and the points look identical;
  // above it a copy scaled down has the same neighbours and a finite map.
  const PointMatrix tiny = x * std::ldexp(1.0, -480);
  CHECK(tsne(tiny, options).embedding.allFinite());
  CHECK(exact_knn(tiny, 5).index == exact_knn(x, 5).index);
  CHECK_THROWS_WITH(tsne(x * std::ldexp(1.0, -700), options),
                    Catch::Contains("squared distances underflow") && Catch::Contains("scale the input"));
  options.exact_max_points = 100;
  CHECK(resolve_tsne_gradient(options, 100) == TsneGradient::exact);
  CHECK(resolve_tsne_gradient(options, 101) == TsneGradient::barnes_hut);
}

TEST_CASE("trustworthiness matches scikit-learn on a fixture", "[tsne][metrics]") {
  const auto table = sumi::util::read_csv(std::string(SUMI_FIXTURE_DIR) + "/sklearn_trustworthiness.csv");
  const auto expected =
      sumi::util::read_csv(std::string(SUMI_FIXTURE_DIR) + "/sklearn_trustworthiness_value.csv");
  PointMatrix x(Eigen::Index(table.size()), 6), e(Eigen::Index(table.size()), 2);
  for (std::size_t r = 0; r < table.size(); ++r) {
    for (int c = 0; c < 6; ++c)
      x(Eigen::Index(r), c) = table.number(r, std::string("x").append(std::to_string(c)));
    for (int c = 0; c < 2; ++c)
      e(Eigen::Index(r), c) = table.number(r, std::string("e").append(std::to_string(c)));
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
  // Sparse labels (a year, an id) vote as their ranks, ties to the smaller, and cost no more than 0 and 1.
  const int64_t big = int64_t(1) << 50;
  CHECK(knn_accuracy(e, {2019, 2019, big, 2019, big, big, big}, 2) == Approx(6.0 / 7.0));

  // Neighbour lists built by hand are checked before they are indexed.
  Neighbors hand = exact_knn(e, 2);
  hand.index[5] = 7;  // point 2's second neighbour: no such point
  CHECK_THROWS_WITH(knn_accuracy(hand, labels), Catch::Contains("point 2 lists 7"));
  hand.index[5] = 2;  // itself
  CHECK_THROWS_WITH(knn_accuracy(hand, labels), Catch::Contains("point 2 lists 2"));
  CHECK_THROWS_WITH(knn_accuracy(Neighbors{}, {}), Catch::Contains("1 <= k < points"));
  Neighbors short_list = exact_knn(e, 2);
  short_list.index.pop_back();
  CHECK_THROWS_WITH(knn_accuracy(short_list, labels), Catch::Contains("13 indices"));
  // Input coordinates that are not finite would make every distance NaN.
  PointMatrix input = e;
  input(3, 0) = std::numeric_limits<double>::quiet_NaN();
  CHECK_THROWS_WITH(trustworthiness(input, exact_knn(e, 2)),
                    Catch::Contains("trustworthiness input: point 3, coordinate 0 is not finite"));
  // scikit-learn's bound, k < n / 2: with 11 points k = 5 is allowed and k = 6 is not.
  PointMatrix eleven(11, 2);
  for (int i = 0; i < 11; ++i) eleven(i, 0) = i, eleven(i, 1) = (i * 7) % 5;
  CHECK(trustworthiness(eleven, exact_knn(eleven, 5)) == Approx(1.0));
  CHECK_THROWS_WITH(trustworthiness(eleven, exact_knn(eleven, 6)),
                    Catch::Contains("k = 6 must be below half"));
}
