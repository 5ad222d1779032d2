#pragma once
// Principal component analysis: the linear baseline view of a latent space, and t-SNE's initialisation.
//
//   const auto pca = sumi::analysis::fit_pca(points, 2);
//   PointMatrix xy = pca.transform(points);          // [N, 2] scores
//   double kept = pca.explained_variance_ratio.sum();
//
// The covariance (D x D, in double) is diagonalised with Eigen's SelfAdjointEigenSolver, which suits the
// small dimensions of latent codes and classifier outputs. Results follow scikit-learn's PCA conventions:
// variances with N - 1 in the denominator, components sorted by explained variance (descending), and each
// component's sign fixed so that its largest-magnitude loading is positive, so the output is deterministic.
#include <Eigen/Eigenvalues>
#include <algorithm>
#include <cmath>
#include <numeric>
#include <stdexcept>
#include <string>
#include <vector>

#include "sumi/analysis/point_matrix.hpp"

namespace sumi::analysis {

struct Pca {
  Eigen::RowVectorXd mean;             // [D], subtracted before projecting
  PointMatrix components;              // [k, D], unit rows, by decreasing explained variance
  Eigen::VectorXd explained_variance;  // [k], variance of the data along each component (N - 1 denominator)
  Eigen::VectorXd explained_variance_ratio;  // [k], that variance over the total variance of the data

  int64_t input_dimensions() const { return components.cols(); }
  int64_t output_dimensions() const { return components.rows(); }

  // [N, D] points -> [N, k] scores.
  PointMatrix transform(const PointMatrix& x) const {
    if (x.cols() != input_dimensions())
      throw std::invalid_argument("Pca::transform: points have " + std::to_string(x.cols()) +
                                  " coordinates, the PCA was fitted on " +
                                  std::to_string(input_dimensions()));
    return (x.rowwise() - mean) * components.transpose();
  }

  // [N, k] scores -> [N, D] points (exact for points in the span of the components).
  PointMatrix inverse_transform(const PointMatrix& scores) const {
    if (scores.cols() != output_dimensions())
      throw std::invalid_argument("Pca::inverse_transform: scores have " + std::to_string(scores.cols()) +
                                  " coordinates, the PCA has " + std::to_string(output_dimensions()) +
                                  " components");
    return (scores * components).rowwise() + mean;
  }
};

// Fits `components` principal components (1 <= components <= D) to the rows of `x` (at least 2 rows).
inline Pca fit_pca(const PointMatrix& x, int64_t components) {
  const int64_t n = x.rows(), d = x.cols();
  if (n < 2) throw std::invalid_argument("fit_pca: need at least 2 points, got " + std::to_string(n));
  // As scikit-learn: beyond min(points, dimensions) the components have no variance and arbitrary directions.
  if (components < 1 || components > std::min(d, n))
    throw std::invalid_argument("fit_pca: asked for " + std::to_string(components) + " components of " +
                                std::to_string(n) + " " + std::to_string(d) +
                                "-dimensional points (at most the smaller of the two)");
  detail::check_coordinates(x, "fit_pca");
  Pca pca;
  pca.mean = x.colwise().mean();
  const PointMatrix centred = x.rowwise() - pca.mean;
  const Eigen::MatrixXd covariance = (centred.transpose() * centred) / double(n - 1);
  const Eigen::SelfAdjointEigenSolver<Eigen::MatrixXd> solver(covariance);
  if (solver.info() != Eigen::Success) throw std::runtime_error("fit_pca: eigen decomposition failed");

  // Eigen sorts eigenvalues ascending; order explicitly (stable, so equal variances keep Eigen's order).
  std::vector<Eigen::Index> order(static_cast<std::size_t>(d));
  std::iota(order.begin(), order.end(), Eigen::Index{0});
  std::stable_sort(order.begin(), order.end(), [&](Eigen::Index a, Eigen::Index b) {
    return solver.eigenvalues()[a] > solver.eigenvalues()[b];
  });
  const double total = std::max(solver.eigenvalues().cwiseMax(0.0).sum(), 0.0);
  pca.components.resize(components, d);
  pca.explained_variance.resize(components);
  pca.explained_variance_ratio.resize(components);
  for (int64_t c = 0; c < components; ++c) {
    const Eigen::Index source = order[std::size_t(c)];
    Eigen::RowVectorXd axis = solver.eigenvectors().col(source).transpose();
    Eigen::Index largest = 0;
    axis.cwiseAbs().maxCoeff(&largest);
    if (axis[largest] < 0) axis = -axis;
    pca.components.row(c) = axis;
    pca.explained_variance[c] = std::max(solver.eigenvalues()[source], 0.0);
    pca.explained_variance_ratio[c] = total > 0 ? pca.explained_variance[c] / total : 0.0;
  }
  return pca;
}

}  // namespace sumi::analysis
