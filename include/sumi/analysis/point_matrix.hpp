#pragma once
// Points as the rows of a dense matrix: the common currency of the analysis layer (PCA, t-SNE, embedding
// metrics). Row-major so one point's coordinates are contiguous, as they are in a CSV row.
#include <Eigen/Dense>
#include <cmath>
#include <cstdint>
#include <stdexcept>
#include <string>

namespace sumi::analysis {

using PointMatrix = Eigen::Matrix<double, Eigen::Dynamic, Eigen::Dynamic, Eigen::RowMajor>;

namespace detail {
// Throws std::invalid_argument naming `what` when the matrix holds a NaN or infinite coordinate.
inline void check_finite(const PointMatrix& x, const char* what) {
  for (Eigen::Index i = 0; i < x.rows(); ++i)
    for (Eigen::Index j = 0; j < x.cols(); ++j)
      if (!std::isfinite(x(i, j)))
        throw std::invalid_argument(std::string(what) + ": point " + std::to_string(i) + ", coordinate " +
                                    std::to_string(j) + " is not finite");
}
}  // namespace detail

}  // namespace sumi::analysis
