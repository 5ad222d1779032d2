#pragma once
// Exact k-nearest-neighbour search by brute force, for t-SNE's input affinities and the embedding metrics.
//
// Why brute force: it is exact (no tuning, no recall loss) and, written as blocked GEMMs with a bounded
// max-heap per point, costs N^2 * (D + a compare) operations: about a second for 10,000 points and tens of
// seconds for 70,000 points on 2 cores, small next to the t-SNE optimisation itself.
#include <omp.h>

#include <algorithm>
#include <cstdint>
#include <limits>
#include <stdexcept>
#include <utility>
#include <vector>

#include "sumi/analysis/point_matrix.hpp"
#include "sumi/kernels/threading.hpp"

namespace sumi::analysis {

// The k nearest other points of every point, nearest first (ties by index); a point is never its own
// neighbour, duplicates of it are.
struct Neighbors {
  int64_t points = 0, k = 0;
  std::vector<int64_t> index;       // [points * k]
  std::vector<double> sq_distance;  // [points * k], squared Euclidean distances

  const int64_t* indices_of(int64_t i) const { return index.data() + i * k; }
  const double* sq_distances_of(int64_t i) const { return sq_distance.data() + i * k; }
};

// Exact k nearest neighbours of every row of `x` among the other rows (1 <= k < rows). Runs on
// get_num_threads() threads; the result does not depend on the thread count.
inline Neighbors exact_knn(const PointMatrix& x, int64_t k) {
  const int64_t n = x.rows();
  if (k < 1 || k >= n)
    throw std::invalid_argument("exact_knn: need 1 <= k < points, got k = " + std::to_string(k) + " for " +
                                std::to_string(n) + " points");
  // Centring first keeps the |a|^2 + |b|^2 - 2ab expansion accurate for data far from the origin.
  const PointMatrix centred = x.rowwise() - x.colwise().mean();
  const Eigen::VectorXd norms = centred.rowwise().squaredNorm();
  Neighbors result;
  result.points = n;
  result.k = k;
  result.index.resize(std::size_t(n * k));
  result.sq_distance.resize(std::size_t(n * k));

  constexpr int64_t row_block = 128, col_block = 2048;
  const int64_t row_blocks = (n + row_block - 1) / row_block;
#pragma omp parallel num_threads(get_num_threads())
  {
    Eigen::Matrix<double, Eigen::Dynamic, Eigen::Dynamic, Eigen::RowMajor> dots;
    std::vector<std::vector<std::pair<double, int64_t>>> heaps(row_block);
#pragma omp for schedule(dynamic, 1)
    for (int64_t rb = 0; rb < row_blocks; ++rb) {
      const int64_t r0 = rb * row_block, rows = std::min(row_block, n - r0);
      for (auto& heap : heaps) heap.clear();
      for (int64_t c0 = 0; c0 < n; c0 += col_block) {
        const int64_t cols = std::min(col_block, n - c0);
        dots.noalias() = centred.middleRows(r0, rows) * centred.middleRows(c0, cols).transpose();
        for (int64_t r = 0; r < rows; ++r) {
          auto& heap = heaps[std::size_t(r)];
          const int64_t self = r0 + r;
          const double nr = norms[self];
          const double* dot = dots.data() + r * cols;
          // (distance, index) pairs ordered lexicographically: ties go to the lower index, as a stable sort
          // would.
          double worst =
              heap.size() == std::size_t(k) ? heap.front().first : std::numeric_limits<double>::infinity();
          for (int64_t c = 0; c < cols; ++c) {
            const double d = std::max(0.0, nr + norms[c0 + c] - 2.0 * dot[c]);
            if (d > worst || c0 + c == self) continue;
            const std::pair<double, int64_t> candidate{d, c0 + c};
            if (heap.size() < std::size_t(k)) {
              heap.push_back(candidate);
              std::push_heap(heap.begin(), heap.end());
              if (heap.size() == std::size_t(k)) worst = heap.front().first;
            } else if (candidate < heap.front()) {
              std::pop_heap(heap.begin(), heap.end());
              heap.back() = candidate;
              std::push_heap(heap.begin(), heap.end());
              worst = heap.front().first;
            }
          }
        }
      }
      for (int64_t r = 0; r < rows; ++r) {
        auto& heap = heaps[std::size_t(r)];
        const int64_t self = r0 + r;
        // Exact distances from the coordinates, then the final order.
        for (auto& [d, j] : heap) d = (centred.row(self) - centred.row(j)).squaredNorm();
        std::sort(heap.begin(), heap.end());
        for (int64_t m = 0; m < k; ++m) {
          result.index[std::size_t(self * k + m)] = heap[std::size_t(m)].second;
          result.sq_distance[std::size_t(self * k + m)] = heap[std::size_t(m)].first;
        }
      }
    }
  }
  return result;
}

}  // namespace sumi::analysis
