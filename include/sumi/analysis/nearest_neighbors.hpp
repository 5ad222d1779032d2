#pragma once
// Exact k-nearest-neighbour search, for t-SNE's input affinities and the embedding metrics.
//
// Low-dimensional points (t-SNE's usual inputs: latent codes, classifier outputs) go through a k-d tree,
// which visits a small fraction of the points: about 0.4 s for 10,000 10-d points and about 4 s for
// 70,000 5-d points on one core, where brute force took 1 s and 27 s. In many dimensions a tree degrades,
// so there it is brute force written as blocked GEMMs with a per-point candidate buffer pruned by a distance
// bound, N^2 * (D + a compare) operations. Both are exact (no tuning, no recall loss).
#include <omp.h>

#include <algorithm>
#include <cstdint>
#include <limits>
#include <numeric>
#include <stdexcept>
#include <string>
#include <utility>
#include <vector>

#include "sumi/analysis/point_matrix.hpp"
#include "sumi/kernels/threading.hpp"

namespace sumi::analysis {

// The k nearest other points of every point, nearest first; a point is never its own neighbour, duplicates
// of it are. Equal distances are ordered by index up to kd_tree_max_dims dimensions (the k-d tree); above,
// the search ranks by distances from dot products, whose rounding may order (or, at the k-th place, choose
// among) equally distant points either way.
struct Neighbors {
  int64_t points = 0, k = 0;
  std::vector<int64_t> index;       // [points * k]
  std::vector<double> sq_distance;  // [points * k], squared Euclidean distances

  const int64_t* indices_of(int64_t i) const { return index.data() + i * k; }
  const double* sq_distances_of(int64_t i) const { return sq_distance.data() + i * k; }
};

namespace detail {

// Throws std::invalid_argument naming `what` unless `neighbors` is a well-formed result for its points:
// 1 <= k < points, k indices per point, each another point's.
inline void check_neighbors(const Neighbors& neighbors, const char* what) {
  const int64_t n = neighbors.points, k = neighbors.k;
  const auto fail = [&](const std::string& why) {
    return std::invalid_argument(std::string(what) + ": neighbours of " + std::to_string(n) +
                                 " points, k = " + std::to_string(k) + ": " + why);
  };
  if (k < 1 || k >= n) throw fail("need 1 <= k < points");
  if (int64_t(neighbors.index.size()) != n * k)
    throw fail(std::to_string(neighbors.index.size()) + " indices, not points x k");
  for (int64_t i = 0; i < n; ++i)
    for (int64_t m = 0; m < k; ++m) {
      const int64_t j = neighbors.indices_of(i)[m];
      if (j < 0 || j >= n || j == i)
        throw fail("point " + std::to_string(i) + " lists " + std::to_string(j) + ", not another point");
    }
}

// Exact k nearest neighbours by a k-d tree, for low-dimensional points (where it visits a small fraction of
// the points; in many dimensions it degrades to a slower brute force). Splits at the median of the widest
// coordinate; leaves of up to 16 points stored contiguously. A subtree is skipped only when the splitting
// plane is strictly farther than the current k-th distance, so ties resolve by index exactly as in a sort.
class KdTree {
 public:
  explicit KdTree(const PointMatrix& points) : dims_(points.cols()), order_(std::size_t(points.rows())) {
    std::iota(order_.begin(), order_.end(), int64_t{0});
    source_ = &points;
    nodes_.reserve(std::size_t(2 * points.rows() / leaf_size + 2));
    build(0, points.rows());
    coords_.resize(std::size_t(points.rows() * dims_));
    for (int64_t s = 0; s < points.rows(); ++s)
      for (int64_t c = 0; c < dims_; ++c)
        coords_[std::size_t(s * dims_ + c)] = points(order_[std::size_t(s)], c);
  }

  void knn(int64_t k, Neighbors& result) const {
    const int64_t n = int64_t(order_.size());
#pragma omp parallel num_threads(get_num_threads())
    {
      std::vector<std::pair<double, int64_t>> heap;
      heap.reserve(std::size_t(k + 1));
#pragma omp for schedule(dynamic, 256)
      for (int64_t s = 0; s < n; ++s) {  // queries in tree order: neighbouring queries share paths
        const double* q = coords_.data() + s * dims_;
        const int64_t self = order_[std::size_t(s)];
        heap.clear();
        search(0, q, self, k, heap);
        std::sort_heap(heap.begin(), heap.end());
        for (int64_t m = 0; m < k; ++m) {
          result.index[std::size_t(self * k + m)] = heap[std::size_t(m)].second;
          result.sq_distance[std::size_t(self * k + m)] = heap[std::size_t(m)].first;
        }
      }
    }
  }

 private:
  static constexpr int64_t leaf_size = 16;
  struct Node {
    int64_t begin = 0, end = 0;  // points [begin, end) in tree order
    int64_t dim = -1;            // split coordinate; -1 for a leaf
    double split = 0;            // left child: coordinate <= split
    int64_t left = -1, right = -1;
  };

  int64_t build(int64_t begin, int64_t end) {
    const int64_t id = int64_t(nodes_.size());
    Node leaf;
    leaf.begin = begin, leaf.end = end;
    nodes_.push_back(leaf);
    if (end - begin <= leaf_size) return id;
    int64_t dim = 0;
    double widest = -1;
    for (int64_t c = 0; c < dims_; ++c) {
      double lo = std::numeric_limits<double>::infinity(), hi = -lo;
      for (int64_t m = begin; m < end; ++m) {
        const double v = (*source_)(order_[std::size_t(m)], c);
        lo = std::min(lo, v), hi = std::max(hi, v);
      }
      if (hi - lo > widest) widest = hi - lo, dim = c;
    }
    if (!(widest > 0)) return id;  // all points coincide: a (large) leaf
    const int64_t mid = (begin + end) / 2;
    const auto less = [&](int64_t a, int64_t b) { return (*source_)(a, dim) < (*source_)(b, dim); };
    std::nth_element(order_.begin() + begin, order_.begin() + mid, order_.begin() + end, less);
    const double split = (*source_)(order_[std::size_t(mid)], dim);
    const int64_t left = build(begin, mid), right = build(mid, end);
    Node& node = nodes_[std::size_t(id)];
    node.dim = dim, node.split = split, node.left = left, node.right = right;
    return id;
  }

  void search(int64_t id, const double* q, int64_t self, int64_t k,
              std::vector<std::pair<double, int64_t>>& heap) const {
    const Node& node = nodes_[std::size_t(id)];
    if (node.dim < 0) {
      for (int64_t m = node.begin; m < node.end; ++m) {
        const int64_t j = order_[std::size_t(m)];
        if (j == self) continue;
        const double* p = coords_.data() + m * dims_;
        double d = 0;
        for (int64_t c = 0; c < dims_; ++c) d += (q[c] - p[c]) * (q[c] - p[c]);
        const std::pair<double, int64_t> candidate{d, j};
        if (int64_t(heap.size()) < k) {
          heap.push_back(candidate);
          std::push_heap(heap.begin(), heap.end());
        } else if (candidate < heap.front()) {
          std::pop_heap(heap.begin(), heap.end());
          heap.back() = candidate;
          std::push_heap(heap.begin(), heap.end());
        }
      }
      return;
    }
    // The median point went right, so points equal to the split can be on either side: both are searched
    // whenever the plane is within the bound.
    const double diff = q[node.dim] - node.split;
    const int64_t near = diff < 0 ? node.left : node.right, far = diff < 0 ? node.right : node.left;
    search(near, q, self, k, heap);
    if (int64_t(heap.size()) < k || diff * diff <= heap.front().first) search(far, q, self, k, heap);
  }

  int64_t dims_;
  std::vector<int64_t> order_;  // tree order -> point index
  std::vector<double> coords_;  // [N * dims] in tree order
  std::vector<Node> nodes_;
  const PointMatrix* source_ = nullptr;
};

}  // namespace detail

// Points with up to this many coordinates are searched with a k-d tree, others by blocked brute force.
inline constexpr int64_t kd_tree_max_dims = 16;

// Exact k nearest neighbours of every row of `x` among the other rows (1 <= k < rows). Runs on
// get_num_threads() threads; the result does not depend on the thread count.
inline Neighbors exact_knn(const PointMatrix& x, int64_t k) {
  const int64_t n = x.rows();
  if (k < 1 || k >= n)
    throw std::invalid_argument("exact_knn: need 1 <= k < points, got k = " + std::to_string(k) + " for " +
                                std::to_string(n) + " points");
  detail::check_coordinates(x, "exact_knn");
  // Centring first keeps the |a|^2 + |b|^2 - 2ab expansion accurate for data far from the origin.
  const PointMatrix centred = x.rowwise() - x.colwise().mean();
  const Eigen::VectorXd norms = centred.rowwise().squaredNorm();
  Neighbors result;
  result.points = n;
  result.k = k;
  result.index.resize(std::size_t(n * k));
  result.sq_distance.resize(std::size_t(n * k));

  if (x.cols() <= kd_tree_max_dims) {
    detail::KdTree(centred).knn(k, result);
    return result;
  }
  // A bound on the rounding error of |a|^2 + |b|^2 - 2ab relative to |a|^2 + |b|^2: each of the three sums
  // of `cols` products errs by at most cols * eps of its terms' magnitude.
  const double expansion_error = 4.0 * double(x.cols() + 2) * std::numeric_limits<double>::epsilon();
  // Blocks small enough that a block of dot products (row_block x col_block doubles) stays in L2.
  constexpr int64_t row_block = 64, col_block = 1024;
  // Each row keeps the candidates at or below its current k-th smallest distance in a buffer; when the
  // buffer fills, a selection cuts it back to the k best and tightens the bound. Amortised O(1) per kept
  // candidate, and most candidates fail one comparison against the bound.
  const std::size_t capacity = std::size_t(std::max<int64_t>(4 * k, 256));
  const int64_t row_blocks = (n + row_block - 1) / row_block;
  using Candidate = std::pair<double, int64_t>;  // ordered by distance, ties to the lower index
  const auto keep_best = [k](std::vector<Candidate>& candidates) {
    std::nth_element(candidates.begin(), candidates.begin() + (k - 1), candidates.end());
    candidates.resize(std::size_t(k));
    return std::max_element(candidates.begin(), candidates.end())->first;
  };
#pragma omp parallel num_threads(get_num_threads())
  {
    Eigen::Matrix<double, Eigen::Dynamic, Eigen::Dynamic, Eigen::RowMajor> dots;
    std::vector<std::vector<Candidate>> kept(row_block);
    std::vector<double> bound(row_block), distance(col_block);
#pragma omp for schedule(dynamic, 1)
    for (int64_t rb = 0; rb < row_blocks; ++rb) {
      const int64_t r0 = rb * row_block, rows = std::min(row_block, n - r0);
      for (auto& candidates : kept) candidates.clear(), candidates.reserve(capacity);
      std::fill(bound.begin(), bound.end(), std::numeric_limits<double>::infinity());
      for (int64_t c0 = 0; c0 < n; c0 += col_block) {
        const int64_t cols = std::min(col_block, n - c0);
        dots.noalias() = centred.middleRows(r0, rows) * centred.middleRows(c0, cols).transpose();
        const double* column_norms = norms.data() + c0;
        for (int64_t r = 0; r < rows; ++r) {
          auto& candidates = kept[std::size_t(r)];
          const int64_t self = r0 + r;
          const double nr = norms[self];
          const double* dot = dots.data() + r * cols;
          for (int64_t c = 0; c < cols; ++c) distance[std::size_t(c)] = nr + column_norms[c] - 2.0 * dot[c];
          double worst = bound[std::size_t(r)];
          for (int64_t c = 0; c < cols; ++c) {
            // The expansion only screens: it errs by up to `rounding` (far more than the distance itself
            // for two tight clusters far apart), so a point within that of the bound is measured exactly
            // and kept by its exact distance.
            const double rounding = expansion_error * (nr + column_norms[c]);
            if (distance[std::size_t(c)] > worst + rounding || c0 + c == self) continue;
            const double exact = (centred.row(self) - centred.row(c0 + c)).squaredNorm();
            if (exact > worst) continue;
            candidates.emplace_back(exact, c0 + c);
            if (candidates.size() == capacity) worst = keep_best(candidates);
          }
          bound[std::size_t(r)] = worst;
        }
      }
      for (int64_t r = 0; r < rows; ++r) {
        auto& candidates = kept[std::size_t(r)];
        const int64_t self = r0 + r;
        keep_best(candidates);
        std::sort(candidates.begin(), candidates.end());
        for (int64_t m = 0; m < k; ++m) {
          result.index[std::size_t(self * k + m)] = candidates[std::size_t(m)].second;
          result.sq_distance[std::size_t(self * k + m)] = candidates[std::size_t(m)].first;
        }
      }
    }
  }
  return result;
}

}  // namespace sumi::analysis
