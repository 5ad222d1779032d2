// PCA: a case small enough to check by hand, and scikit-learn's results on a committed fixture
// (tests/fixtures/make_sklearn_fixtures.py).
#include <catch2/catch.hpp>
#include <string>

#include "sumi/analysis/pca.hpp"
#include "sumi/util/csv.hpp"

using sumi::analysis::fit_pca;
using sumi::analysis::PointMatrix;

namespace {
PointMatrix columns_of(const sumi::util::CsvTable& table, const std::vector<std::string>& names) {
  PointMatrix m(Eigen::Index(table.size()), Eigen::Index(names.size()));
  for (std::size_t r = 0; r < table.size(); ++r)
    for (std::size_t c = 0; c < names.size(); ++c)
      m(Eigen::Index(r), Eigen::Index(c)) = table.number(r, names[c]);
  return m;
}
}  // namespace

TEST_CASE("PCA of points on a line and a perpendicular spread", "[pca]") {
  // Points (t, 2t) for t = -2..2 plus (0.5, -0.25) and its negation: the main axis is (1, 2)/sqrt(5).
  PointMatrix x(7, 2);
  x << -2, -4, -1, -2, 0, 0, 1, 2, 2, 4, 0.5, -0.25, -0.5, 0.25;
  x.rowwise() += Eigen::RowVector2d(10, -3);  // an offset the centring must remove
  const auto pca = fit_pca(x, 2);
  const double s5 = std::sqrt(5.0);
  CHECK(pca.mean(0) == Approx(10));
  CHECK(pca.mean(1) == Approx(-3));
  // First axis (1, 2)/sqrt(5): largest loading (2/sqrt5) positive. Variance along it: sum t^2 * 5 / 6 = 50/6.
  CHECK(pca.components(0, 0) == Approx(1 / s5));
  CHECK(pca.components(0, 1) == Approx(2 / s5));
  CHECK(pca.explained_variance(0) == Approx(50.0 / 6.0));
  // Second axis (2, -1)/sqrt(5): the two off-axis points at distance sqrt(0.3125): variance 0.625 / 6.
  CHECK(pca.components(1, 0) == Approx(2 / s5));
  CHECK(pca.components(1, 1) == Approx(-1 / s5));
  CHECK(pca.explained_variance(1) == Approx(0.625 / 6.0));
  CHECK(pca.explained_variance_ratio(0) == Approx(50.0 / 50.625));
  const PointMatrix scores = pca.transform(x);
  CHECK(scores(4, 0) == Approx(2 * s5));
  CHECK(scores(4, 1) == Approx(0).margin(1e-12));
  CHECK((pca.inverse_transform(scores) - x).cwiseAbs().maxCoeff() < 1e-12);
}

TEST_CASE("PCA with fewer components reconstructs the projection", "[pca]") {
  PointMatrix x(5, 3);
  x << 1, 0, 0, 0, 1, 0, 0, 0, 1, 1, 1, 1, 2, 0, 1;
  const auto pca = fit_pca(x, 1);
  REQUIRE(pca.components.rows() == 1);
  const PointMatrix back = pca.inverse_transform(pca.transform(x));
  // The residual is orthogonal to the kept component.
  CHECK(((back - x) * pca.components.transpose()).cwiseAbs().maxCoeff() < 1e-12);
  CHECK_THROWS_WITH(pca.transform(PointMatrix::Zero(2, 2)), Catch::Contains("2 coordinates"));
  CHECK_THROWS_WITH(fit_pca(x, 4), Catch::Contains("4 components"));
  // More components than points: the extra ones would have no variance and arbitrary directions.
  CHECK_THROWS_WITH(fit_pca(PointMatrix::Random(3, 10), 5),
                    Catch::Contains("5 components of 3 10-dimensional"));
  CHECK(fit_pca(PointMatrix::Random(3, 10), 3).components.rows() == 3);
  // A covariance of such coordinates would overflow to infinity.
  x(2, 0) = -1e155;
  CHECK_THROWS_WITH(fit_pca(x, 1), Catch::Contains("fit_pca: point 2, coordinate 0 is -1e+155"));
}

TEST_CASE("PCA matches scikit-learn on a fixture", "[pca]") {
  const auto points = sumi::util::read_csv(std::string(SUMI_FIXTURE_DIR) + "/sklearn_pca.csv");
  const auto expected = sumi::util::read_csv(std::string(SUMI_FIXTURE_DIR) + "/sklearn_pca_components.csv");
  const PointMatrix x = columns_of(points, {"x0", "x1", "x2", "x3"});
  const auto pca = fit_pca(x, 2);
  const PointMatrix components = columns_of(expected, {"c0", "c1", "c2", "c3"});
  CHECK((pca.components - components).cwiseAbs().maxCoeff() < 1e-10);
  for (int c = 0; c < 2; ++c) {
    CHECK(pca.explained_variance(c) ==
          Approx(expected.number(std::size_t(c), "explained_variance")).epsilon(1e-10));
    CHECK(pca.explained_variance_ratio(c) ==
          Approx(expected.number(std::size_t(c), "explained_variance_ratio")).epsilon(1e-10));
  }
  CHECK((pca.transform(x) - columns_of(points, {"s0", "s1"})).cwiseAbs().maxCoeff() < 1e-9);
}
