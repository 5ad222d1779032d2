#pragma once
// The repulsive half of the t-SNE gradient for a 2-d embedding, exactly or by Barnes-Hut.
//
// With w_ij = 1 / (1 + |y_i - y_j|^2) (Student-t, one degree of freedom) and Z = sum_{i != j} w_ij, the KL
// gradient is 4 * (sum_j p_ij w_ij (y_i - y_j) - sum_j w_ij^2 (y_i - y_j) / Z). The attractive part only
// runs over the sparse P; the repulsive sums over all pairs are what these functions compute:
//   force_i = sum_{j != i} w_ij^2 (y_i - y_j)   and   Z.
//
// ExactRepulsion visits each unordered pair once (the triangle j > i, in blocks of four rows paired with
// their mirror blocks so static scheduling balances threads) with an AVX2+FMA inner loop chosen at run time
// through kernels::active_isa(), and a portable loop of the same shape otherwise: no tree, no approximation
// error, the choice for small sets. BarnesHutRepulsion summarises far cells of a quadtree by their centre of
// mass (Van der Maaten, 2014), N log N, walking the tree once per group of neighbouring points; it is faster
// than exact from about 1,000 points on (at 2,000, 5,000 and 10,000 points, 2 threads: 1.00 / 2.62 / 4.2 s
// against 1.43 / 3.87 / 9.8 s) and than FftRepulsion at 70,000 (34 s against 76 s, with a lower final
// KL). FftRepulsion (FIt-SNE's interpolation on a grid, convolved by FFT) scales as N plus the grid's
// G log G, which a widely spread embedding makes large; it is kept as an alternative.
#include <omp.h>

#include <algorithm>
#include <array>
#include <cmath>
#include <complex>
#include <cstdint>
#include <limits>
#include <numbers>
#include <numeric>
#include <span>
#include <stdexcept>
#include <string>
#include <vector>

#include "sumi/kernels/cpu_features.hpp"
#include "sumi/kernels/threading.hpp"
#include "sumi/util/string_printf.hpp"

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

// w = 1 / (1 + dx^2 + dy^2), the Student-t kernel: the hardware reciprocal estimate refined by one Newton
// step, relative error ~1e-7 as a division has, and several times cheaper.
__attribute__((target("avx2,fma"))) inline __m256 student_t_avx2(__m256 dx, __m256 dy) {
  const __m256 q = _mm256_fmadd_ps(dx, dx, _mm256_fmadd_ps(dy, dy, _mm256_set1_ps(1.0f)));
  const __m256 w = _mm256_rcp_ps(q);
  return _mm256_mul_ps(w, _mm256_fnmadd_ps(q, w, _mm256_set1_ps(2.0f)));
}

// Four rows i0 .. i0 + 3 against the columns j >= i0 + 4, eight columns at a time: each load of x_j, y_j
// and each load and store of the columns' accumulators serves four rows, which quarters the traffic to L2
// (where the arrays live at 10,000 points) that bounds the one-row loop. The pairs among the four rows
// themselves go through the scalar loop.
__attribute__((target("avx2,fma"))) inline void repulsion_rows4_avx2(const float* x, const float* y,
                                                                     int64_t i0, int64_t n, float* col_fx,
                                                                     float* col_fy, double* row_fx,
                                                                     double* row_fy, double* row_z) {
  constexpr int rows = 4;
  __m256 xi[rows], yi[rows], fx[rows], fy[rows], z[rows];
  for (int r = 0; r < rows; ++r) {
    xi[r] = _mm256_set1_ps(x[i0 + r]), yi[r] = _mm256_set1_ps(y[i0 + r]);
    fx[r] = fy[r] = z[r] = _mm256_setzero_ps();
  }
  int64_t j = i0 + rows;
  for (; j + 8 <= n; j += 8) {
    const __m256 xj = _mm256_loadu_ps(x + j), yj = _mm256_loadu_ps(y + j);
    __m256 cx = _mm256_loadu_ps(col_fx + j), cy = _mm256_loadu_ps(col_fy + j);
    for (int r = 0; r < rows; ++r) {
      const __m256 dx = _mm256_sub_ps(xi[r], xj), dy = _mm256_sub_ps(yi[r], yj);
      const __m256 w = student_t_avx2(dx, dy);
      const __m256 w2 = _mm256_mul_ps(w, w);
      const __m256 gx = _mm256_mul_ps(w2, dx), gy = _mm256_mul_ps(w2, dy);
      fx[r] = _mm256_add_ps(fx[r], gx);
      fy[r] = _mm256_add_ps(fy[r], gy);
      z[r] = _mm256_add_ps(z[r], w);
      cx = _mm256_sub_ps(cx, gx);
      cy = _mm256_sub_ps(cy, gy);
    }
    _mm256_storeu_ps(col_fx + j, cx);
    _mm256_storeu_ps(col_fy + j, cy);
  }
  for (int r = 0; r < rows; ++r) {
    row_fx[r] += horizontal_sum(fx[r]);
    row_fy[r] += horizontal_sum(fy[r]);
    row_z[r] += horizontal_sum(z[r]);
    if (j < n) repulsion_row_scalar(x, y, i0 + r, n, col_fx, col_fy, row_fx[r], row_fy[r], row_z[r], j);
    // Pairs within the block: row i0 + r against rows i0 + r + 1 .. i0 + 3.
    repulsion_row_scalar(x, y, i0 + r, i0 + rows, col_fx, col_fy, row_fx[r], row_fy[r], row_z[r]);
  }
}
#endif

// The attractive sum of one point over its row of P: sum_e p_e w_ie (y_i - y_j(e)), in float as the
// repulsion is (P's entries rounded to float: relative 6e-8).
inline void attraction_row_scalar(const float* x, const float* y, const int32_t* column, const float* value,
                                  int64_t begin, int64_t end, float xi, float yi, double& ax, double& ay) {
  float sx = 0, sy = 0;
  for (int64_t e = begin; e < end; ++e) {
    const float dx = xi - x[column[e]], dy = yi - y[column[e]];
    const float pw = value[e] / (1.0f + dx * dx + dy * dy);
    sx += pw * dx;
    sy += pw * dy;
  }
  ax += sx;
  ay += sy;
}

#if SUMI_X86_KERNELS
// Eight entries at a time: the scalar loop is bound by a division per entry and the rows' ~100 entries by
// the latency of one accumulator. The coordinates come interleaved (xy: x0 y0 x1 y1 ...), so each
// neighbour is one 64-bit load; eight such loads assembled into two vectors took about a quarter less time
// here than two AVX2 gather instructions of four pairs (and those than two gathers of eight floats).
__attribute__((target("avx2,fma"))) inline void attraction_row_avx2(const float* xy, const int32_t* column,
                                                                    const float* value, int64_t begin,
                                                                    int64_t end, float xi, float yi,
                                                                    double& ax, double& ay) {
  const __m256 vxi = _mm256_set1_ps(xi), vyi = _mm256_set1_ps(yi);
  const double* pairs = reinterpret_cast<const double*>(xy);
  __m256 sx = _mm256_setzero_ps(), sy = sx;
  int64_t e = begin;
  for (; e + 8 <= end; e += 8) {
    const int32_t* j = column + e;
    const auto pair = [pairs](int32_t a, int32_t b) {
      return _mm_loadh_pd(_mm_load_sd(pairs + a), pairs + b);
    };
    const __m256 lo = _mm256_castpd_ps(_mm256_set_m128d(pair(j[2], j[3]), pair(j[0], j[1])));
    const __m256 hi = _mm256_castpd_ps(_mm256_set_m128d(pair(j[6], j[7]), pair(j[4], j[5])));
    // Neighbours in the order 0 1 4 5 2 3 6 7; the values are put in the same order.
    const __m256 dx = _mm256_sub_ps(vxi, _mm256_shuffle_ps(lo, hi, _MM_SHUFFLE(2, 0, 2, 0)));
    const __m256 dy = _mm256_sub_ps(vyi, _mm256_shuffle_ps(lo, hi, _MM_SHUFFLE(3, 1, 3, 1)));
    const __m256 p = _mm256_castpd_ps(
        _mm256_permute4x64_pd(_mm256_castps_pd(_mm256_loadu_ps(value + e)), _MM_SHUFFLE(3, 1, 2, 0)));
    const __m256 w = student_t_avx2(dx, dy);
    const __m256 pw = _mm256_mul_ps(p, w);
    sx = _mm256_fmadd_ps(pw, dx, sx);
    sy = _mm256_fmadd_ps(pw, dy, sy);
  }
  ax += horizontal_sum(sx);
  ay += horizontal_sum(sy);
  for (; e < end; ++e) {
    const std::size_t j = std::size_t(column[e]);
    const float dx = xi - xy[2 * j], dy = yi - xy[2 * j + 1];
    const float pw = value[e] / (1.0f + dx * dx + dy * dy);
    ax += pw * dx;
    ay += pw * dy;
  }
}
#endif

// Rows r < rows (points px[r], py[r]) against n bodies (bx, by, with count c): adds
// sum_b c_b w^2 (p - b) to fx[r], fy[r] and sum_b c_b w to z[r].
inline void body_sums_scalar(const float* px, const float* py, int rows, const float* bx, const float* by,
                             const float* c, int64_t n, double* fx, double* fy, double* z) {
  for (int r = 0; r < rows; ++r) {
    float sx = 0, sy = 0, sz = 0;
    for (int64_t b = 0; b < n; ++b) {
      const float dx = px[r] - bx[b], dy = py[r] - by[b];
      const float w = 1.0f / (1.0f + dx * dx + dy * dy), cw = c[b] * w, cw2 = cw * w;
      sz += cw;
      sx += cw2 * dx;
      sy += cw2 * dy;
    }
    fx[r] += sx, fy[r] += sy, z[r] += sz;
  }
}

#if SUMI_X86_KERNELS
// body_sums_scalar for n a multiple of 8: four rows share each load of eight bodies. Rows past `rows`
// repeat the last point and are dropped.
__attribute__((target("avx2,fma"))) inline void body_sums_avx2(const float* px, const float* py, int rows,
                                                               const float* bx, const float* by,
                                                               const float* c, int64_t n, double* fx,
                                                               double* fy, double* z) {
  constexpr int block = 4;
  __m256 xi[block], yi[block], sx[block], sy[block], sz[block];
  for (int r = 0; r < block; ++r) {
    xi[r] = _mm256_set1_ps(px[std::min(r, rows - 1)]), yi[r] = _mm256_set1_ps(py[std::min(r, rows - 1)]);
    sx[r] = sy[r] = sz[r] = _mm256_setzero_ps();
  }
  for (int64_t b = 0; b < n; b += 8) {
    const __m256 xb = _mm256_loadu_ps(bx + b), yb = _mm256_loadu_ps(by + b), cb = _mm256_loadu_ps(c + b);
    for (int r = 0; r < block; ++r) {
      const __m256 dx = _mm256_sub_ps(xi[r], xb), dy = _mm256_sub_ps(yi[r], yb);
      const __m256 w = student_t_avx2(dx, dy);
      const __m256 cw = _mm256_mul_ps(cb, w), cw2 = _mm256_mul_ps(cw, w);
      sz[r] = _mm256_add_ps(sz[r], cw);
      sx[r] = _mm256_fmadd_ps(cw2, dx, sx[r]);
      sy[r] = _mm256_fmadd_ps(cw2, dy, sy[r]);
    }
  }
  for (int r = 0; r < rows; ++r) {
    fx[r] += horizontal_sum(sx[r]);
    fy[r] += horizontal_sum(sy[r]);
    z[r] += horizontal_sum(sz[r]);
  }
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
    // Blocks of four rows, block b paired with block blocks - 1 - b so static scheduling balances the
    // triangle's rows of unequal length.
    constexpr int64_t block_rows = 4;
    const int64_t blocks = (n + block_rows - 1) / block_rows, pairs = (blocks + 1) / 2;
#pragma omp parallel num_threads(threads)
    {
      const int t = omp_get_thread_num();
      float* col_fx = columns_.data() + std::size_t(t) * 2 * std::size_t(n);
      float* col_fy = col_fx + n;
#pragma omp for schedule(static)
      for (int64_t pair = 0; pair < pairs; ++pair) {
        const int64_t block[2] = {pair, blocks - 1 - pair};
        for (int k = 0; k < (block[1] == pair ? 1 : 2); ++k) {
          const int64_t i0 = block[k] * block_rows, rows = std::min(block_rows, n - i0);
          double fx[block_rows] = {}, fy[block_rows] = {}, z[block_rows] = {};
#if SUMI_X86_KERNELS
          if (avx2 && rows == block_rows)
            detail::repulsion_rows4_avx2(x.data(), y.data(), i0, n, col_fx, col_fy, fx, fy, z);
          else
#endif
            for (int64_t r = 0; r < rows; ++r)
              detail::repulsion_row_scalar(x.data(), y.data(), i0 + r, n, col_fx, col_fy, fx[r], fy[r], z[r]);
          for (int64_t r = 0; r < rows; ++r) {
            force_x[std::size_t(i0 + r)] = fx[r];
            force_y[std::size_t(i0 + r)] = fy[r];
            row_z_[std::size_t(i0 + r)] = z[r];
          }
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
//
// The tree is walked once per group of up to group_size neighbouring points (a cell), not once per point
// (Barnes, 1990): a cell is accepted for the whole group when its side is below theta times its distance
// to the group's bounding box, which is no farther than any of the group's points, so every point gets an
// approximation at least as accurate as its own walk would give. The group's interaction list (bodies and
// single points) is then summed for four points at a time, eight list entries a vector, without branches:
// at 10,000 points this is many times faster than a walk per point. The group's own points are in its
// list; a point paired with itself adds nothing to the force and exactly 1 to its sum of w, which is taken
// off.
class BarnesHutRepulsion {
 public:
  explicit BarnesHutRepulsion(double theta = 0.5) : theta_(theta) {
    if (!(theta >= 0)) throw std::invalid_argument("BarnesHutRepulsion: theta must be >= 0");
  }

  double operator()(std::span<const float> x, std::span<const float> y, std::span<double> force_x,
                    std::span<double> force_y, kernels::Isa isa = kernels::active_isa()) {
    const int64_t n = int64_t(x.size());
    if (y.size() != x.size() || force_x.size() != x.size() || force_y.size() != x.size())
      throw std::invalid_argument("BarnesHutRepulsion: coordinate and force arrays differ in length");
    build(x, y);
    groups_.clear();
    collect_groups(0);
    group_z_.assign(groups_.size(), 0.0);
    const int threads = n < 2048 ? 1 : get_num_threads();
    lists_.resize(std::size_t(threads));
#pragma omp parallel num_threads(threads)
    {
      InteractionList& list = lists_[std::size_t(omp_get_thread_num())];
#pragma omp for schedule(dynamic, 4)
      for (std::size_t g = 0; g < groups_.size(); ++g) {
        const Node& group = nodes_[std::size_t(groups_[g])];
        interactions(group, list);
        group_z_[g] = sum_group(group, list, force_x, force_y, isa);
      }
    }
    double z = 0;
    for (const double v : group_z_) z += v;
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
  // Bodies acting on one group: positions and point counts (0 for the padding up to a multiple of 8).
  struct InteractionList {
    std::vector<float> x, y, count;
    std::vector<int32_t> stack;
    void push(float bx, float by, float c) { x.push_back(bx), y.push_back(by), count.push_back(c); }
  };
  static constexpr int32_t leaf_size = 4;
  static constexpr int32_t group_size = 128;
  static constexpr int max_depth = 40;  // bounds the recursion when many points coincide

  // The groups: the largest cells of at most group_size points (or leaves at the depth limit).
  void collect_groups(int32_t id) {
    const Node& node = nodes_[std::size_t(id)];
    if (node.end - node.begin <= group_size || node.leaf()) {
      groups_.push_back(id);
      return;
    }
    for (const int32_t c : node.child)
      if (c >= 0) collect_groups(c);
  }

  // The bodies acting on the group's points, padded with empty bodies to a multiple of 8.
  void interactions(const Node& group, InteractionList& list) const {
    float x0 = std::numeric_limits<float>::infinity(), y0 = x0, x1 = -x0, y1 = -x0;
    for (int32_t m = group.begin; m < group.end; ++m) {
      x0 = std::min(x0, sx_[std::size_t(m)]), x1 = std::max(x1, sx_[std::size_t(m)]);
      y0 = std::min(y0, sy_[std::size_t(m)]), y1 = std::max(y1, sy_[std::size_t(m)]);
    }
    const float theta2 = float(theta_ * theta_);
    list.x.clear(), list.y.clear(), list.count.clear(), list.stack.clear();
    list.stack.push_back(0);
    while (!list.stack.empty()) {
      const Node& node = nodes_[std::size_t(list.stack.back())];
      list.stack.pop_back();
      // Distance from the group's box to the cell's centre of mass (0 inside the box). A cell holding the
      // group (possible above theta = 1/sqrt(2)) is always opened, so each point meets itself singly.
      const float dx = std::max({x0 - node.cx, node.cx - x1, 0.0f}),
                  dy = std::max({y0 - node.cy, node.cy - y1, 0.0f});
      const bool holds_group = node.begin <= group.begin && group.end <= node.end;
      if (!holds_group && node.width * node.width < theta2 * (dx * dx + dy * dy)) {
        list.push(node.cx, node.cy, float(node.end - node.begin));
      } else if (node.leaf()) {
        for (int32_t m = node.begin; m < node.end; ++m)
          list.push(sx_[std::size_t(m)], sy_[std::size_t(m)], 1.0f);
      } else {
        for (const int32_t c : node.child)
          if (c >= 0) list.stack.push_back(c);
      }
    }
    while (list.x.size() % 8 != 0) list.push(0.0f, 0.0f, 0.0f);
  }

  // Sums the list for each of the group's points into force_x/y (point order); returns the group's sum of w.
  double sum_group(const Node& group, const InteractionList& list, std::span<double> force_x,
                   std::span<double> force_y, kernels::Isa isa) const {
    double z = 0;
    for (int32_t s = group.begin; s < group.end; s += 4) {
      const int rows = int(std::min<int32_t>(4, group.end - s));
      double fx[4] = {}, fy[4] = {}, row_z[4] = {};
#if SUMI_X86_KERNELS
      if (isa != kernels::Isa::scalar)
        detail::body_sums_avx2(sx_.data() + s, sy_.data() + s, rows, list.x.data(), list.y.data(),
                               list.count.data(), int64_t(list.x.size()), fx, fy, row_z);
      else
#endif
        detail::body_sums_scalar(sx_.data() + s, sy_.data() + s, rows, list.x.data(), list.y.data(),
                                 list.count.data(), int64_t(list.x.size()), fx, fy, row_z);
      for (int r = 0; r < rows; ++r) {
        const std::size_t i = std::size_t(order_[std::size_t(s + r)]);
        force_x[i] = fx[r];
        force_y[i] = fy[r];
        z += row_z[r] - 1.0;  // the point with itself: w = 1
      }
    }
    (void)isa;
    return z;
  }

  void build(std::span<const float> x, std::span<const float> y) {
    const int64_t n = int64_t(x.size());
    points_.resize(std::size_t(n));
    float lo_x = std::numeric_limits<float>::infinity(), lo_y = lo_x, hi_x = -lo_x, hi_y = -lo_x;
    for (int64_t i = 0; i < n; ++i) {
      const float px = x[std::size_t(i)], py = y[std::size_t(i)];
      points_[std::size_t(i)] = {px, py, int32_t(i)};
      lo_x = std::min(lo_x, px), hi_x = std::max(hi_x, px);
      lo_y = std::min(lo_y, py), hi_y = std::max(hi_y, py);
    }
    const float side = std::max({hi_x - lo_x, hi_y - lo_y, 1e-20f}) * (1 + 1e-5f);
    // The top two levels serially, then the (up to 16) cells below them as independent subtrees in
    // parallel, spliced in afterwards: the build is a tenth of the work at 10,000 points and would otherwise
    // leave the other threads idle.
    const int threads = n < 2048 ? 1 : get_num_threads();
    nodes_.clear();
    nodes_.reserve(std::size_t(2 * n / leaf_size + 16));
    subtrees_.clear();
    build_node(nodes_, 0, int32_t(n), lo_x, lo_y, side, 0, threads > 1 ? 2 : -1);
    const std::size_t top_nodes = nodes_.size();
#pragma omp parallel for schedule(dynamic, 1) num_threads(threads)
    for (std::size_t t = 0; t < subtrees_.size(); ++t) {
      Subtree& sub = subtrees_[t];
      sub.nodes.clear();
      build_node(sub.nodes, sub.begin, sub.end, sub.x0, sub.y0, sub.side, sub.depth, -1);
    }
    for (Subtree& sub : subtrees_) {
      // The subtree's root takes the placeholder's slot; its other nodes go to the end.
      const int32_t offset = int32_t(nodes_.size()) - 1;
      const auto place = [&](int32_t k) { return k == 0 ? sub.placeholder : offset + k; };
      for (std::size_t k = 0; k < sub.nodes.size(); ++k) {
        Node node = sub.nodes[k];
        for (int32_t& c : node.child)
          if (c >= 0) c = place(c);
        if (k == 0)
          nodes_[std::size_t(sub.placeholder)] = node;
        else
          nodes_.push_back(node);
      }
    }
    // Centres of mass of the top nodes from their children's (children follow their parent).
    for (std::size_t k = subtrees_.empty() ? 0 : top_nodes; k-- > 0;) {
      Node& node = nodes_[k];
      if (node.leaf() || is_placeholder(int32_t(k))) continue;
      double cx = 0, cy = 0;
      for (const int32_t c : node.child) {
        if (c < 0) continue;
        const Node& child = nodes_[std::size_t(c)];
        cx += double(child.end - child.begin) * child.cx, cy += double(child.end - child.begin) * child.cy;
      }
      node.cx = float(cx / double(node.end - node.begin)),
      node.cy = float(cy / double(node.end - node.begin));
    }
    order_.resize(std::size_t(n));
    sx_.resize(std::size_t(n));
    sy_.resize(std::size_t(n));
    for (std::size_t s = 0; s < std::size_t(n); ++s)
      sx_[s] = points_[s].x, sy_[s] = points_[s].y, order_[s] = points_[s].index;
  }

  bool is_placeholder(int32_t id) const {
    return std::any_of(subtrees_.begin(), subtrees_.end(),
                       [id](const Subtree& s) { return s.placeholder == id; });
  }

  // Sorts points_[begin, end) into the cell's quadrants (the points move with their coordinates, so the
  // partitions read contiguous memory) and appends the cell's nodes to `nodes`, returning the cell's index
  // there. Centres of mass come from the children's, not from another pass over the points. A cell at
  // split_depth that has children is left as a placeholder node and queued in subtrees_.
  int32_t build_node(std::vector<Node>& nodes, int32_t begin, int32_t end, float x0, float y0, float side,
                     int depth, int split_depth) {
    const int32_t id = int32_t(nodes.size());
    nodes.emplace_back();
    Node node;
    node.width = side;
    node.begin = begin;
    node.end = end;
    const bool split = end - begin > leaf_size && depth < max_depth;
    if (split && depth == split_depth) {
      nodes[std::size_t(id)] = node;
      subtrees_.push_back({id, begin, end, x0, y0, side, depth, {}});
      return id;
    }
    double cx = 0, cy = 0;
    if (split) {
      const float half = side / 2, mx = x0 + half, my = y0 + half;
      auto* first = points_.data() + begin;
      auto* last = points_.data() + end;
      auto* split_x = std::partition(first, last, [mx](const TreePoint& p) { return p.x < mx; });
      auto* split_lo = std::partition(first, split_x, [my](const TreePoint& p) { return p.y < my; });
      auto* split_hi = std::partition(split_x, last, [my](const TreePoint& p) { return p.y < my; });
      const int32_t bounds[5] = {begin, int32_t(split_lo - points_.data()), int32_t(split_x - points_.data()),
                                 int32_t(split_hi - points_.data()), end};
      const float corner_x[4] = {x0, x0, mx, mx}, corner_y[4] = {y0, my, y0, my};
      for (int q = 0; q < 4; ++q) {
        if (bounds[q + 1] == bounds[q]) continue;
        const int32_t c = build_node(nodes, bounds[q], bounds[q + 1], corner_x[q], corner_y[q], half,
                                     depth + 1, split_depth);
        node.child[std::size_t(q)] = c;
        const double count = double(bounds[q + 1] - bounds[q]);
        cx += count * nodes[std::size_t(c)].cx, cy += count * nodes[std::size_t(c)].cy;
      }
    } else {
      for (int32_t m = begin; m < end; ++m) cx += points_[std::size_t(m)].x, cy += points_[std::size_t(m)].y;
    }
    node.cx = float(cx / double(end - begin));
    node.cy = float(cy / double(end - begin));
    nodes[std::size_t(id)] = node;
    return id;
  }

  struct TreePoint {
    float x, y;
    int32_t index;
  };
  // A cell below the serially built top of the tree, built on its own.
  struct Subtree {
    int32_t placeholder, begin, end;
    float x0, y0, side;
    int depth;
    std::vector<Node> nodes;
  };

  double theta_;
  std::vector<Node> nodes_;
  std::vector<TreePoint> points_;  // in tree order once built
  std::vector<Subtree> subtrees_;
  std::vector<int32_t> order_;  // tree order -> point index
  std::vector<float> sx_, sy_;  // coordinates in tree order
  std::vector<int32_t> groups_;
  std::vector<double> group_z_;
  std::vector<InteractionList> lists_;  // per thread, kept between calls
};

namespace detail {

// Many complex DFTs of one length at once, for the 2-d transforms of FftRepulsion. The data of a batch is
// [length][batch] (split real and imaginary arrays): element k of all the transforms is contiguous, so each
// butterfly of the self-sorting (Stockham) algorithm is a plain loop over contiguous doubles that the
// compiler vectorises, with one twiddle factor per loop. Radices 4, 2 and 3, so lengths 2^a 3^b. This is
// several times faster than transforming one sequence at a time with a scalar FFT (Eigen's kissfft), which
// dominated the repulsion's cost.
class BatchedFft {
 public:
  // Prepares the twiddle factors for transforms of `length` (a product of 2s and 3s).
  void plan(int64_t length) {
    if (length == length_) return;
    length_ = length;
    radices_.clear();
    int64_t rest = length;
    while (rest % 4 == 0) radices_.push_back(4), rest /= 4;
    while (rest % 2 == 0) radices_.push_back(2), rest /= 2;
    while (rest % 3 == 0) radices_.push_back(3), rest /= 3;
    if (rest != 1) throw std::invalid_argument("BatchedFft: length must be 2^a 3^b");
    twiddles_.clear();
    int64_t n = length;
    for (const int r : radices_) {
      const int64_t m = n / r;
      for (int64_t q = 0; q < m; ++q)
        for (int j = 1; j < r; ++j) {
          const double angle = -2.0 * std::numbers::pi * double(j * q) / double(n);
          twiddles_.push_back(std::cos(angle));
          twiddles_.push_back(std::sin(angle));
        }
      n = m;
    }
  }

  int64_t length() const { return length_; }

  // Transforms the `batch` sequences in re/im ([length * batch]) in place, using scratch arrays of the same
  // size; forward is sum_k x_k e^{-2 pi i jk / n}, the inverse has +i and is unscaled.
  void run(double* re, double* im, double* scratch_re, double* scratch_im, int64_t batch, bool inverse,
           kernels::Isa isa = kernels::active_isa()) const {
#if SUMI_X86_KERNELS
    if (isa != kernels::Isa::scalar) return run_avx2(re, im, scratch_re, scratch_im, batch, inverse);
#endif
    (void)isa;
    run_stages(re, im, scratch_re, scratch_im, batch, inverse);
  }

 private:
#if SUMI_X86_KERNELS
  __attribute__((target("avx2,fma"))) void run_avx2(double* re, double* im, double* scratch_re,
                                                    double* scratch_im, int64_t batch, bool inverse) const {
    run_stages(re, im, scratch_re, scratch_im, batch, inverse);
  }
#endif

  // Stockham decimation in frequency: a stage of radix r over sub-sequences of length n = r m and stride s
  // reads x[s (q + k m)] and writes y[s (r q + j)] = (sum_k x_k w_r^{jk}) w_n^{jq}.
  [[gnu::always_inline]] inline void run_stages(double* re, double* im, double* scratch_re,
                                                double* scratch_im, int64_t batch, bool inverse) const {
    const double sign = inverse ? -1.0 : 1.0;  // flips the imaginary parts of the roots of unity
    double *src_re = re, *src_im = im, *dst_re = scratch_re, *dst_im = scratch_im;
    int64_t n = length_, stride = batch;  // stride: doubles per element of the current sub-sequences
    const double* tw = twiddles_.data();
    for (const int r : radices_) {
      const int64_t m = n / r, run = stride;
      for (int64_t q = 0; q < m; ++q, tw += 2 * (r - 1)) {
        const double* xr[4];
        const double* xi[4];
        double* yr[4];
        double* yi[4];
        for (int k = 0; k < r; ++k) {
          xr[k] = src_re + (q + k * m) * stride, xi[k] = src_im + (q + k * m) * stride;
          yr[k] = dst_re + (r * q + k) * stride, yi[k] = dst_im + (r * q + k) * stride;
        }
        if (r == 4) {
          const double c1 = tw[0], s1 = sign * tw[1], c2 = tw[2], s2 = sign * tw[3], c3 = tw[4],
                       s3 = sign * tw[5];
          for (int64_t e = 0; e < run; ++e) {
            const double t0r = xr[0][e] + xr[2][e], t0i = xi[0][e] + xi[2][e];
            const double t1r = xr[0][e] - xr[2][e], t1i = xi[0][e] - xi[2][e];
            const double t2r = xr[1][e] + xr[3][e], t2i = xi[1][e] + xi[3][e];
            // (x1 - x3) times -i (forward) or +i (inverse)
            const double t3r = sign * (xi[1][e] - xi[3][e]), t3i = -sign * (xr[1][e] - xr[3][e]);
            const double u1r = t1r + t3r, u1i = t1i + t3i, u2r = t0r - t2r, u2i = t0i - t2i;
            const double u3r = t1r - t3r, u3i = t1i - t3i;
            yr[0][e] = t0r + t2r, yi[0][e] = t0i + t2i;
            yr[1][e] = u1r * c1 - u1i * s1, yi[1][e] = u1r * s1 + u1i * c1;
            yr[2][e] = u2r * c2 - u2i * s2, yi[2][e] = u2r * s2 + u2i * c2;
            yr[3][e] = u3r * c3 - u3i * s3, yi[3][e] = u3r * s3 + u3i * c3;
          }
        } else if (r == 2) {
          const double c1 = tw[0], s1 = sign * tw[1];
          for (int64_t e = 0; e < run; ++e) {
            const double dr = xr[0][e] - xr[1][e], di = xi[0][e] - xi[1][e];
            yr[0][e] = xr[0][e] + xr[1][e], yi[0][e] = xi[0][e] + xi[1][e];
            yr[1][e] = dr * c1 - di * s1, yi[1][e] = dr * s1 + di * c1;
          }
        } else {
          const double c1 = tw[0], s1 = sign * tw[1], c2 = tw[2], s2 = sign * tw[3];
          const double h = -sign * 0.8660254037844386;  // imaginary part of w_3 = e^{-2 pi i / 3}
          for (int64_t e = 0; e < run; ++e) {
            const double sr = xr[1][e] + xr[2][e], si = xi[1][e] + xi[2][e];
            const double dr = xr[1][e] - xr[2][e], di = xi[1][e] - xi[2][e];
            const double mr = xr[0][e] - 0.5 * sr, mi = xi[0][e] - 0.5 * si;
            // x0 - s / 2 +- i h d
            const double v1r = mr - h * di, v1i = mi + h * dr, v2r = mr + h * di, v2i = mi - h * dr;
            yr[0][e] = xr[0][e] + sr, yi[0][e] = xi[0][e] + si;
            yr[1][e] = v1r * c1 - v1i * s1, yi[1][e] = v1r * s1 + v1i * c1;
            yr[2][e] = v2r * c2 - v2i * s2, yi[2][e] = v2r * s2 + v2i * c2;
          }
        }
      }
      std::swap(src_re, dst_re);
      std::swap(src_im, dst_im);
      n = m;
      stride *= r;
    }
    if (src_re != re) {
      std::copy(src_re, src_re + length_ * batch, re);
      std::copy(src_im, src_im + length_ * batch, im);
    }
  }

  int64_t length_ = 0;
  std::vector<int> radices_;
  std::vector<double> twiddles_;  // per stage, per q: (cos, sin) of w_n^{jq}, j = 1 .. r - 1
};

}  // namespace detail

// FFT-accelerated interpolation (FIt-SNE: Linderman et al., Nature Methods 2019), O(N + G log G) for a grid
// of G nodes. An equispaced square grid of nodes covers the embedding, spacing box_width / p (p = 3 nodes a
// "box", box_width 1 as in openTSNE; finer while the points span fewer than min_boxes boxes). Every point
// spreads its charges (1, y1, y2, |y|^2) onto the p x p nodes nearest to it with Lagrange weights; the node
// potentials of the squared kernel 1 / (1 + d^2)^2 are a discrete convolution, done by zero-padded 2-d
// FFTs; each point reads its potentials back with the same weights. Then
//   force_i = y_i * phi_1(i) - (phi_y1(i), phi_y2(i)),
//   sum_j w_ij = (1 + |y_i|^2) phi_1(i) - 2 y_i . phi_y(i) + phi_|y|^2(i)      (as w = w^2 (1 + d^2)),
// with the self terms (w_ii = 1) taken off Z. Unit charges convolved with the kernels w and w^2 (y_i - y_j)
// would avoid the |y|^2 terms, but w^2 d varies faster near 0 than w^2 and interpolates worse: on a sparse
// map 1,000 units wide (4,000 points) the force error rose from 1.7% to 2.6% while Z's fell from 3.4% to
// 1.3% (Z's error there comes mostly from the close pairs' interpolation, not from cancellation). Unlike
// FIt-SNE, which interpolates from the fixed nodes of the point's box, the stencil is centred on the point:
// on the same grid the kernel's interpolation error between close points falls from ~6% bias and 12% scatter
// to ~2% and 2% (the close pairs shape the local structure, and the box version cost 0.13 in final KL at
// 70,000 points against Barnes-Hut). The node spacing is fixed in embedding units because the interpolation
// error depends on it relative to the kernel's unit scale, not on the spread of the points; so the kernel's
// spectrum only depends on the grid size and is reused while that stays the same. The charges are real and
// the kernel even, so its spectrum is real and two charge terms share one complex transform (one as the real
// part, one as the imaginary part). Rows and columns are transformed in blocks of a few, in parallel; every
// value is computed by one thread in a fixed order, so the result does not depend on the thread count.
class FftRepulsion {
 public:
  explicit FftRepulsion(double box_width = 1.0, int nodes_per_box = 3, int64_t min_boxes = 50)
      : box_width_(box_width), nodes_per_box_(nodes_per_box), min_boxes_(std::max<int64_t>(2, min_boxes)) {
    if (!(box_width > 0)) throw std::invalid_argument("FftRepulsion: box_width must be > 0");
    if (nodes_per_box < 2 || nodes_per_box > max_nodes_per_box)
      throw std::invalid_argument("FftRepulsion: nodes_per_box must be in [2, 8]");
    if (min_boxes_ > max_nodes / nodes_per_box)
      throw std::invalid_argument("FftRepulsion: min_boxes " + std::to_string(min_boxes) +
                                  " needs more than " + std::to_string(max_nodes) + " nodes a side");
  }

  double operator()(std::span<const float> x, std::span<const float> y, std::span<double> force_x,
                    std::span<double> force_y) {
    const int64_t n = int64_t(x.size());
    if (y.size() != x.size() || force_x.size() != x.size() || force_y.size() != x.size())
      throw std::invalid_argument("FftRepulsion: coordinate and force arrays differ in length");
    const int threads = n < 2048 ? 1 : get_num_threads();

    // A square grid centred on the points.
    double lo_x = std::numeric_limits<double>::infinity(), lo_y = lo_x, hi_x = -lo_x, hi_y = -lo_x;
    bool finite = true;  // min and max pass NaN over
    for (int64_t i = 0; i < n; ++i) {
      const double px = x[std::size_t(i)], py = y[std::size_t(i)];
      finite = finite && std::isfinite(px) && std::isfinite(py);
      lo_x = std::min(lo_x, px), hi_x = std::max(hi_x, px);
      lo_y = std::min(lo_y, py), hi_y = std::max(hi_y, py);
    }
    if (!finite) throw std::invalid_argument("FftRepulsion: the coordinates are not all finite");
    const double centre_x = (lo_x + hi_x) / 2, centre_y = (lo_y + hi_y) / 2;
    const double span = std::max(hi_x - lo_x, hi_y - lo_y);
    // Node spacing box_width / p, or finer while the points span fewer than min_boxes boxes; p / 2 spare
    // nodes on each side keep every point's stencil inside the grid. A grid coarser than the kernel's unit
    // scale gets even the sum of the kernel wrong, so an embedding wider than max_nodes allow (a diverged
    // optimisation) is refused rather than coarsened.
    const int p = nodes_per_box_;
    const int64_t min_nodes = min_boxes_ * p;
    double spacing = box_width_ / p;
    const double wanted = std::ceil(span / spacing) + p;  // a double: it may exceed any integer
    if (wanted > double(max_nodes)) {
      throw std::runtime_error(util::string_printf(
          "FftRepulsion: the embedding spans %.6g units, which at box width %g needs %.6g grid nodes "
          "a side, more than %lld (did the optimisation diverge? a lower learning rate, a wider box "
          "or the Barnes-Hut gradient avoid it)",
          span, box_width_, wanted, static_cast<long long>(max_nodes)));
    }
    int64_t nodes = int64_t(wanted);
    if (nodes <= min_nodes) nodes = min_nodes, spacing = std::max(span, 1e-12) / double(min_nodes - p);
    const int64_t size = smooth_size(2 * nodes);  // zero-padded against wrap-around
    if (size != fft_.length() || spacing != kernel_spacing_) kernel_spectrum(size, spacing, threads);
    nodes_ = nodes;

    // Each point's stencil (the p nodes nearest to it along each axis) and Lagrange weights.
    stencil_.resize(std::size_t(2 * n));
    weight_.resize(std::size_t(2 * p * n));
    for (int64_t i = 0; i < n; ++i)
      for (int c = 0; c < 2; ++c) {
        // Position in node units: node k sits at k.
        const double t = ((c == 0 ? x[std::size_t(i)] - centre_x : y[std::size_t(i)] - centre_y) / spacing) +
                         double(nodes) / 2 - 0.5;
        const int64_t first = std::clamp<int64_t>(int64_t(std::floor(t - (p - 1) / 2.0 + 0.5)), 0, nodes - p);
        stencil_[std::size_t(2 * i + c)] = first;
        lagrange_weights(t - double(first), weight_.data() + 2 * p * i + p * c);
      }

    // Charges (1 + i y1) and (y2 + i |y|^2), coordinates relative to the centre to keep |y|^2 small.
    const std::size_t cells = std::size_t(size * size);
    for (auto* grid : {&grid_a_, &grid_b_}) grid->assign(cells, std::complex<double>(0, 0));
    for (int64_t i = 0; i < n; ++i) {
      const double px = x[std::size_t(i)] - centre_x, py = y[std::size_t(i)] - centre_y;
      const std::complex<double> qa(1.0, px), qb(py, px * px + py * py);
      for_each_stencil_node(i, size, [&](std::size_t cell, double w) {
        grid_a_[cell] += w * qa;
        grid_b_[cell] += w * qb;
      });
    }
    transform(grid_a_, nodes, true, threads);
    transform(grid_b_, nodes, true, threads);

    row_z_.resize(std::size_t(n));
#pragma omp parallel for schedule(static) num_threads(threads)
    for (int64_t i = 0; i < n; ++i) {
      std::complex<double> pa(0, 0), pb(0, 0);
      for_each_stencil_node(i, size, [&](std::size_t cell, double w) {
        pa += w * grid_a_[cell];
        pb += w * grid_b_[cell];
      });
      const double px = x[std::size_t(i)] - centre_x, py = y[std::size_t(i)] - centre_y;
      const double phi = pa.real(), phi_x = pa.imag(), phi_y = pb.real(), phi_sq = pb.imag();
      force_x[std::size_t(i)] = px * phi - phi_x;
      force_y[std::size_t(i)] = py * phi - phi_y;
      row_z_[std::size_t(i)] = (1 + px * px + py * py) * phi - 2 * (px * phi_x + py * phi_y) + phi_sq;
    }
    double z = 0;
    for (const double v : row_z_) z += v;
    return z - double(n);
  }

  double box_width() const {
    return box_width_;
  }
  int64_t nodes_per_side() const {
    return nodes_;
  }  // of the last call's grid, padding excluded

 private:
  static constexpr int max_nodes_per_box = 8;
  // Nodes a side at most: 4096 cover 1364 units at the default width (the t-SNE of the 10,000 test images'
  // outputs spans about 150, and spans grow about as the square root of the number of points), and their
  // zero-padded grids take about 2.7 GB (3.8 GB while the kernel's spectrum is computed).
  static constexpr int64_t max_nodes = 4096;
  static constexpr int64_t block = 8;  // rows or columns transformed together: L2-resident buffers

  // The smallest m >= v whose only prime factors are 2 and 3 (the batched FFT's radices).
  static int64_t smooth_size(int64_t v) {
    for (int64_t m = std::max<int64_t>(v, 1);; ++m) {
      int64_t r = m;
      while (r % 2 == 0) r /= 2;
      while (r % 3 == 0) r /= 3;
      if (r == 1) return m;
    }
  }

  // f(cell, weight) for the p x p nodes of point i's stencil in a grid of rows of `size` cells: spreading a
  // point's charges and reading its potentials back visit the same nodes with the same weights.
  template <class F>
  void for_each_stencil_node(int64_t i, int64_t size, F&& f) const {
    const int p = nodes_per_box_;
    const double* wx = weight_.data() + 2 * p * i;
    const double* wy = wx + p;
    for (int a = 0; a < p; ++a) {
      const std::size_t row = std::size_t((stencil_[std::size_t(2 * i + 1)] + a) * size);
      for (int b = 0; b < p; ++b) f(row + std::size_t(stencil_[std::size_t(2 * i)] + b), wy[a] * wx[b]);
    }
  }

  // Lagrange basis at nodes 0 .. p - 1, evaluated at t (within half a node of the stencil's middle).
  void lagrange_weights(double t, double* w) const {
    const int p = nodes_per_box_;
    for (int k = 0; k < p; ++k) {
      double v = 1;
      for (int m = 0; m < p; ++m)
        if (m != k) v *= (t - m) / double(k - m);
      w[k] = v;
    }
  }

  // 2-d DFT of `grid` [size x size] in place: rows first (only the first `rows` can be non-zero), then the
  // columns; with `convolve`, each column's spectrum is multiplied by the kernel's and transformed back,
  // then the first `rows` rows (unscaled inverse; the kernel's spectrum carries the 1 / size^2). Only the
  // top-left rows x rows block of the result is meaningful then.
  void transform(std::vector<std::complex<double>>& grid, int64_t rows, bool convolve, int threads) {
    const int64_t size = fft_.length();
    std::complex<double>* g = grid.data();
    const std::size_t per_thread = std::size_t(4 * size * block);
    if (fft_buffers_.size() < per_thread * std::size_t(threads))
      fft_buffers_.resize(per_thread * std::size_t(threads));
#pragma omp parallel num_threads(threads)
    {
      double *re = fft_buffers_.data() + per_thread * std::size_t(omp_get_thread_num()),
             *im = re + size * block, *scratch_re = im + size * block,
             *scratch_im = scratch_re + size * block;
      // Rows: element k of row r0 + b goes to [k][b].
      const auto rows_pass = [&](bool inverse, int64_t keep) {
#pragma omp for schedule(static)
        for (int64_t r0 = 0; r0 < rows; r0 += block) {
          const int64_t count = std::min(block, rows - r0);
          for (int64_t b = 0; b < count; ++b)
            for (int64_t k = 0; k < size; ++k) {
              re[k * block + b] = g[(r0 + b) * size + k].real();
              im[k * block + b] = g[(r0 + b) * size + k].imag();
            }
          fft_.run(re, im, scratch_re, scratch_im, block, inverse);
          for (int64_t b = 0; b < count; ++b)
            for (int64_t k = 0; k < keep; ++k)
              g[(r0 + b) * size + k] = {re[k * block + b], im[k * block + b]};
        }
      };
      rows_pass(false, size);
#pragma omp for schedule(static)
      for (int64_t c0 = 0; c0 < size; c0 += block) {
        const int64_t count = std::min(block, size - c0);
        for (int64_t k = 0; k < size; ++k)
          for (int64_t c = 0; c < count; ++c) {
            re[k * block + c] = g[k * size + c0 + c].real();
            im[k * block + c] = g[k * size + c0 + c].imag();
          }
        fft_.run(re, im, scratch_re, scratch_im, block, false);
        const int64_t keep = convolve ? rows : size;
        if (convolve) {
          for (int64_t k = 0; k < size; ++k)
            for (int64_t c = 0; c < block; ++c) {
              const double h = kernel_hat_[std::size_t(k * size + std::min(c0 + c, size - 1))];
              re[k * block + c] *= h;
              im[k * block + c] *= h;
            }
          fft_.run(re, im, scratch_re, scratch_im, block, true);
        }
        for (int64_t k = 0; k < keep; ++k)
          for (int64_t c = 0; c < count; ++c) g[k * size + c0 + c] = {re[k * block + c], im[k * block + c]};
      }
      if (convolve) rows_pass(true, rows);
    }
  }

  // The squared kernel between nodes, embedded circulantly in the padded grid, and its DFT (real, as the
  // kernel is even) scaled by 1 / size^2 for the unscaled inverse.
  void kernel_spectrum(int64_t size, double spacing, int threads) {
    fft_.plan(size);
    kernel_spacing_ = spacing;
    std::vector<std::complex<double>> kernel(std::size_t(size * size));
    for (int64_t r = 0; r < size; ++r)
      for (int64_t c = 0; c < size; ++c) {
        const double dr = double(std::min(r, size - r)) * spacing,
                     dc = double(std::min(c, size - c)) * spacing;
        const double w = 1.0 / (1.0 + dr * dr + dc * dc);
        kernel[std::size_t(r * size + c)] = w * w;
      }
    transform(kernel, size, false, threads);
    kernel_hat_.resize(kernel.size());
    const double scale = 1.0 / double(size * size);
    for (std::size_t e = 0; e < kernel.size(); ++e) kernel_hat_[e] = kernel[e].real() * scale;
  }

  double box_width_;
  int nodes_per_box_;
  int64_t min_boxes_;
  int64_t nodes_ = 0;
  double kernel_spacing_ = 0;  // the node spacing the kernel's spectrum was computed for
  detail::BatchedFft fft_;
  std::vector<int64_t> stencil_;  // [2N] first node of each point's stencil along x and y
  std::vector<double> weight_;    // [6N] Lagrange weights along x (3) then y (3)
  std::vector<std::complex<double>> grid_a_, grid_b_;
  std::vector<double> kernel_hat_;
  std::vector<double> row_z_;
  std::vector<double> fft_buffers_;  // per thread: 4 x size x block doubles for transform()
};

}  // namespace sumi::analysis
