#pragma once
// The repulsive half of the t-SNE gradient for a 2-d embedding, exactly or by Barnes-Hut.
//
// With w_ij = 1 / (1 + |y_i - y_j|^2) (Student-t, one degree of freedom) and Z = sum_{i != j} w_ij, the KL
// gradient is 4 * (sum_j p_ij w_ij (y_i - y_j) - sum_j w_ij^2 (y_i - y_j) / Z). The attractive part only
// runs over the sparse P; the repulsive sums over all pairs are what these functions compute:
//   force_i = sum_{j != i} w_ij^2 (y_i - y_j)   and   Z.
//
// ExactRepulsion visits each unordered pair once (the triangle j > i, rows paired i / N-1-i so static
// scheduling balances threads) with an AVX2+FMA inner loop chosen at run time through
// kernels::active_isa(), and a portable loop of the same shape otherwise. Exact is the faster choice up to
// roughly 20,000 points: no tree to build, perfectly regular memory access, no approximation error.
// BarnesHutRepulsion summarises far cells of a quadtree by their centre of mass (Van der Maaten, 2014) and
// scales as N log N, for the full 70,000-point sets.
#include <omp.h>

#include <algorithm>
#include <array>
#include <cmath>
#include <cstdint>
#include <limits>
#include <numeric>
#include <span>
#include <stdexcept>
#include <string>
#include <vector>

#include "sumi/kernels/cpu_features.hpp"
#include "sumi/kernels/threading.hpp"

#if SUMI_X86_KERNELS
#include <immintrin.h>
#endif

namespace sumi::analysis {

namespace detail {

// Row i against columns j in (i, n): adds the row's force and sum of w to the outputs, and subtracts the
// pair forces from the columns' accumulators (each pair pushes both points apart equally).
inline void repulsion_row_scalar(const float* x, const float* y, int64_t i, int64_t n, float* col_fx,
                                 float* col_fy, double& row_fx, double& row_fy, double& row_z,
                                 int64_t first_column = -1) {
  const float xi = x[i], yi = y[i];
  float fx = 0, fy = 0, z = 0;
  for (int64_t j = first_column < 0 ? i + 1 : first_column; j < n; ++j) {
    const float dx = xi - x[j], dy = yi - y[j];
    const float w = 1.0f / (1.0f + dx * dx + dy * dy);
    const float w2 = w * w;
    z += w;
    fx += w2 * dx;
    fy += w2 * dy;
    col_fx[j] -= w2 * dx;
    col_fy[j] -= w2 * dy;
  }
  row_fx += fx;
  row_fy += fy;
  row_z += z;
}

#if SUMI_X86_KERNELS
__attribute__((target("avx2,fma"))) inline double horizontal_sum(__m256 v) {
  alignas(32) float lanes[8];
  _mm256_store_ps(lanes, v);
  double s = 0;
  for (float lane : lanes) s += double(lane);
  return s;
}

// As repulsion_row_scalar, sixteen columns at a time in two independent halves (so the accumulators' add
// latency overlaps). 1 / (1 + d^2) uses the hardware reciprocal estimate refined by one Newton step
// (relative error ~1e-7, as a division), which is several times cheaper than dividing.
__attribute__((target("avx2,fma"))) inline __m256 repulsion_lanes_avx2(__m256 xi, __m256 yi, const float* x,
                                                                       const float* y, float* col_fx,
                                                                       float* col_fy, __m256& fx,
                                                                       __m256& fy) {
  const __m256 one = _mm256_set1_ps(1.0f), two = _mm256_set1_ps(2.0f);
  const __m256 dx = _mm256_sub_ps(xi, _mm256_loadu_ps(x));
  const __m256 dy = _mm256_sub_ps(yi, _mm256_loadu_ps(y));
  const __m256 q = _mm256_fmadd_ps(dx, dx, _mm256_fmadd_ps(dy, dy, one));
  __m256 w = _mm256_rcp_ps(q);
  w = _mm256_mul_ps(w, _mm256_fnmadd_ps(q, w, two));
  const __m256 w2 = _mm256_mul_ps(w, w);
  const __m256 gx = _mm256_mul_ps(w2, dx), gy = _mm256_mul_ps(w2, dy);
  fx = _mm256_add_ps(fx, gx);
  fy = _mm256_add_ps(fy, gy);
  _mm256_storeu_ps(col_fx, _mm256_sub_ps(_mm256_loadu_ps(col_fx), gx));
  _mm256_storeu_ps(col_fy, _mm256_sub_ps(_mm256_loadu_ps(col_fy), gy));
  return w;
}

__attribute__((target("avx2,fma"))) inline void repulsion_row_avx2(const float* x, const float* y, int64_t i,
                                                                   int64_t n, float* col_fx, float* col_fy,
                                                                   double& row_fx, double& row_fy,
                                                                   double& row_z) {
  const __m256 xi = _mm256_set1_ps(x[i]), yi = _mm256_set1_ps(y[i]);
  __m256 fx0 = _mm256_setzero_ps(), fy0 = fx0, z0 = fx0, fx1 = fx0, fy1 = fx0, z1 = fx0;
  int64_t j = i + 1;
  for (; j + 16 <= n; j += 16) {
    z0 = _mm256_add_ps(z0, repulsion_lanes_avx2(xi, yi, x + j, y + j, col_fx + j, col_fy + j, fx0, fy0));
    z1 = _mm256_add_ps(
        z1, repulsion_lanes_avx2(xi, yi, x + j + 8, y + j + 8, col_fx + j + 8, col_fy + j + 8, fx1, fy1));
  }
  for (; j + 8 <= n; j += 8)
    z0 = _mm256_add_ps(z0, repulsion_lanes_avx2(xi, yi, x + j, y + j, col_fx + j, col_fy + j, fx0, fy0));
  row_fx += horizontal_sum(_mm256_add_ps(fx0, fx1));
  row_fy += horizontal_sum(_mm256_add_ps(fy0, fy1));
  row_z += horizontal_sum(_mm256_add_ps(z0, z1));
  if (j < n) repulsion_row_scalar(x, y, i, n, col_fx, col_fy, row_fx, row_fy, row_z, j);
}
#endif

}  // namespace detail

// Exact repulsive forces and Z in O(N^2). Holds per-thread scratch between calls, so reuse one instance
// across iterations. Deterministic for a given thread count.
class ExactRepulsion {
 public:
  // Positions x, y [n]; writes force_x, force_y [n]; returns Z.
  double operator()(std::span<const float> x, std::span<const float> y, std::span<double> force_x,
                    std::span<double> force_y, kernels::Isa isa = kernels::active_isa()) {
    const int64_t n = int64_t(x.size());
    if (y.size() != x.size() || force_x.size() != x.size() || force_y.size() != x.size())
      throw std::invalid_argument("ExactRepulsion: coordinate and force arrays differ in length");
    // Below a few thousand points a parallel region costs more than it saves (and more still on a busy
    // machine).
    const int threads = n < 2048 ? 1 : get_num_threads();
    columns_.assign(std::size_t(threads) * 2 * std::size_t(n), 0.0f);
    row_z_.assign(std::size_t(n), 0.0);
    std::fill(force_x.begin(), force_x.end(), 0.0);
    std::fill(force_y.begin(), force_y.end(), 0.0);
    const bool avx2 = SUMI_X86_KERNELS && isa != kernels::Isa::scalar;
    const int64_t pairs = (n + 1) / 2;
#pragma omp parallel num_threads(threads)
    {
      const int t = omp_get_thread_num();
      float* col_fx = columns_.data() + std::size_t(t) * 2 * std::size_t(n);
      float* col_fy = col_fx + n;
#pragma omp for schedule(static)
      for (int64_t r = 0; r < pairs; ++r) {
        const int64_t rows[2] = {r, n - 1 - r};
        for (int k = 0; k < (rows[1] == r ? 1 : 2); ++k) {
          const int64_t i = rows[k];
          double fx = 0, fy = 0, z = 0;
#if SUMI_X86_KERNELS
          if (avx2)
            detail::repulsion_row_avx2(x.data(), y.data(), i, n, col_fx, col_fy, fx, fy, z);
          else
#endif
            detail::repulsion_row_scalar(x.data(), y.data(), i, n, col_fx, col_fy, fx, fy, z);
          force_x[std::size_t(i)] = fx;
          force_y[std::size_t(i)] = fy;
          row_z_[std::size_t(i)] = z;
        }
      }
      // Each point's column contributions, summed over threads in a fixed order.
#pragma omp for schedule(static)
      for (int64_t i = 0; i < n; ++i) {
        double fx = 0, fy = 0;
        for (int s = 0; s < threads; ++s) {
          fx += columns_[std::size_t(s) * 2 * std::size_t(n) + std::size_t(i)];
          fy += columns_[std::size_t(s) * 2 * std::size_t(n) + std::size_t(n + i)];
        }
        force_x[std::size_t(i)] += fx;
        force_y[std::size_t(i)] += fy;
      }
    }
    (void)avx2;
    double z = 0;
    for (const double v : row_z_) z += v;
    return 2.0 * z;  // each unordered pair counted once above
  }

 private:
  std::vector<float> columns_;
  std::vector<double> row_z_;
};

// Barnes-Hut repulsive forces and Z in O(N log N): a quadtree over the points; a cell whose side is below
// theta times its distance to the point acts as one body of its point count at its centre of mass. Leaves
// hold up to a few points, summed exactly. theta = 0 gives the exact forces.
class BarnesHutRepulsion {
 public:
  explicit BarnesHutRepulsion(double theta = 0.5) : theta_(theta) {
    if (!(theta >= 0)) throw std::invalid_argument("BarnesHutRepulsion: theta must be >= 0");
  }

  double operator()(std::span<const float> x, std::span<const float> y, std::span<double> force_x,
                    std::span<double> force_y) {
    const int64_t n = int64_t(x.size());
    if (y.size() != x.size() || force_x.size() != x.size() || force_y.size() != x.size())
      throw std::invalid_argument("BarnesHutRepulsion: coordinate and force arrays differ in length");
    build(x, y);
    row_z_.assign(std::size_t(n), 0.0);
    const float theta2 = float(theta_ * theta_);
    // Points in tree order, so neighbouring iterations walk the same cells.
#pragma omp parallel num_threads(n < 2048 ? 1 : get_num_threads())
    {
      std::vector<int32_t> stack;
      stack.reserve(256);
#pragma omp for schedule(dynamic, 256)
      for (int64_t s = 0; s < n; ++s) {
        const float px = sx_[std::size_t(s)], py = sy_[std::size_t(s)];
        double fx = 0, fy = 0, z = 0;
        stack.clear();
        stack.push_back(0);
        while (!stack.empty()) {
          const Node& node = nodes_[std::size_t(stack.back())];
          stack.pop_back();
          if (node.leaf()) {
            for (int32_t m = node.begin; m < node.end; ++m) {
              if (m == s) continue;
              const float dx = px - sx_[std::size_t(m)], dy = py - sy_[std::size_t(m)];
              const float w = 1.0f / (1.0f + dx * dx + dy * dy);
              z += w;
              fx += double(w * w * dx);
              fy += double(w * w * dy);
            }
            continue;
          }
          const float dx = px - node.cx, dy = py - node.cy, d2 = dx * dx + dy * dy;
          if (node.width * node.width < theta2 * d2) {
            const float w = 1.0f / (1.0f + d2);
            const float count = float(node.end - node.begin);
            z += double(count * w);
            fx += double(count * w * w * dx);
            fy += double(count * w * w * dy);
            continue;
          }
          for (const int32_t c : node.child)
            if (c >= 0) stack.push_back(c);
        }
        const std::size_t i = std::size_t(order_[std::size_t(s)]);
        force_x[i] = fx;
        force_y[i] = fy;
        row_z_[i] = z;
      }
    }
    double z = 0;
    for (const double v : row_z_) z += v;
    return z;
  }

  double theta() const {
    return theta_;
  }

 private:
  struct Node {
    float cx = 0, cy = 0, width = 0;  // centre of mass, side of the square cell
    int32_t begin = 0, end = 0;       // the cell's points: [begin, end) in tree order
    std::array<int32_t, 4> child{-1, -1, -1, -1};
    bool leaf() const { return child[0] < 0 && child[1] < 0 && child[2] < 0 && child[3] < 0; }
  };
  static constexpr int32_t leaf_size = 4;
  static constexpr int max_depth = 40;  // bounds the recursion when many points coincide

  void build(std::span<const float> x, std::span<const float> y) {
    const int64_t n = int64_t(x.size());
    order_.resize(std::size_t(n));
    std::iota(order_.begin(), order_.end(), int32_t{0});
    float lo_x = std::numeric_limits<float>::infinity(), lo_y = lo_x, hi_x = -lo_x, hi_y = -lo_x;
    for (int64_t i = 0; i < n; ++i) {
      lo_x = std::min(lo_x, x[std::size_t(i)]), hi_x = std::max(hi_x, x[std::size_t(i)]);
      lo_y = std::min(lo_y, y[std::size_t(i)]), hi_y = std::max(hi_y, y[std::size_t(i)]);
    }
    const float side = std::max({hi_x - lo_x, hi_y - lo_y, 1e-20f}) * (1 + 1e-5f);
    nodes_.clear();
    nodes_.reserve(std::size_t(2 * n / leaf_size + 16));
    x_ = x.data();
    y_ = y.data();
    build_node(0, int32_t(n), lo_x, lo_y, side, 0);
    sx_.resize(std::size_t(n));
    sy_.resize(std::size_t(n));
    for (int64_t s = 0; s < n; ++s) {
      sx_[std::size_t(s)] = x[std::size_t(order_[std::size_t(s)])];
      sy_[std::size_t(s)] = y[std::size_t(order_[std::size_t(s)])];
    }
  }

  int32_t build_node(int32_t begin, int32_t end, float x0, float y0, float side, int depth) {
    const int32_t id = int32_t(nodes_.size());
    nodes_.emplace_back();
    double cx = 0, cy = 0;
    for (int32_t m = begin; m < end; ++m) cx += x_[order_[std::size_t(m)]], cy += y_[order_[std::size_t(m)]];
    Node node;
    node.cx = float(cx / double(end - begin));
    node.cy = float(cy / double(end - begin));
    node.width = side;
    node.begin = begin;
    node.end = end;
    if (end - begin > leaf_size && depth < max_depth) {
      const float half = side / 2, mx = x0 + half, my = y0 + half;
      auto* first = order_.data() + begin;
      auto* last = order_.data() + end;
      auto* split_x = std::partition(first, last, [&](int32_t i) { return x_[i] < mx; });
      auto* split_lo = std::partition(first, split_x, [&](int32_t i) { return y_[i] < my; });
      auto* split_hi = std::partition(split_x, last, [&](int32_t i) { return y_[i] < my; });
      const int32_t bounds[5] = {begin, int32_t(split_lo - order_.data()), int32_t(split_x - order_.data()),
                                 int32_t(split_hi - order_.data()), end};
      const float corner_x[4] = {x0, x0, mx, mx}, corner_y[4] = {y0, my, y0, my};
      for (int q = 0; q < 4; ++q)
        if (bounds[q + 1] > bounds[q])
          node.child[std::size_t(q)] =
              build_node(bounds[q], bounds[q + 1], corner_x[q], corner_y[q], half, depth + 1);
    }
    nodes_[std::size_t(id)] = node;
    return id;
  }

  double theta_;
  std::vector<Node> nodes_;
  std::vector<int32_t> order_;  // tree order -> point index
  std::vector<float> sx_, sy_;  // coordinates in tree order
  std::vector<double> row_z_;
  const float* x_ = nullptr;
  const float* y_ = nullptr;
};

}  // namespace sumi::analysis
