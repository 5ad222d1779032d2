#pragma once
// Points as the rows of a dense matrix: the common currency of the analysis layer (PCA, t-SNE, embedding
// metrics). Row-major so one point's coordinates are contiguous, as they are in a CSV row.
#include <Eigen/Dense>
#include <algorithm>
#include <cmath>
#include <cstdint>
#include <limits>
#include <stdexcept>
#include <string>

#include "sumi/util/string_printf.hpp"

namespace sumi::analysis {

using PointMatrix = Eigen::Matrix<double, Eigen::Dynamic, Eigen::Dynamic, Eigen::RowMajor>;

namespace detail {
// Throws std::invalid_argument naming `what` when a coordinate is NaN, infinite, or so large that sums of
// squared differences over the rows or columns would overflow a double (a silent all-zero or NaN result), or
// when every coordinate is so small that all squared differences underflow to zero (the points would all
// look identical).
inline void check_coordinates(const PointMatrix& x, const char* what) {
  const double terms = double(std::max<Eigen::Index>({x.rows(), x.cols(), 1}));
  const double limit = std::sqrt(std::numeric_limits<double>::max() / (4 * terms));
  const auto where = [what](Eigen::Index i, Eigen::Index j) {
    return std::string(what) + ": point " + std::to_string(i) + ", coordinate " + std::to_string(j);
  };
  for (Eigen::Index i = 0; i < x.rows(); ++i)
    for (Eigen::Index j = 0; j < x.cols(); ++j) {
      const double v = x(i, j);
      if (!std::isfinite(v)) throw std::invalid_argument(where(i, j) + " is not finite");
      if (std::abs(v) > limit)
        throw std::invalid_argument(
            where(i, j) +
            util::string_printf(" is %g; beyond +-%g squared distances overflow: scale the input", v, limit));
    }
  const double smallest = std::sqrt(std::numeric_limits<double>::min());  // its square is the least normal
  const double largest = x.size() > 0 ? x.cwiseAbs().maxCoeff() : 0.0;
  if (largest > 0 && largest < smallest)
    throw std::invalid_argument(what +
                                util::string_printf(": every coordinate is within +-%g, below %g, so squared "
                                                    "distances underflow to 0: scale the input",
                                                    largest, smallest));
}
}  // namespace detail

}  // namespace sumi::analysis
