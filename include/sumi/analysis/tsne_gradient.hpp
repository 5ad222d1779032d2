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
// through kernels::active_isa(), and a portable loop of the same shape otherwise. Exact is the faster
// choice up to roughly 20,000 points: no grid or tree to build, regular memory access, no approximation
// error. FftRepulsion (FIt-SNE's interpolation on a grid, convolved by FFT) scales as N plus the grid's
// G log G and is the choice for the full 70,000-point sets; BarnesHutRepulsion summarises far cells of a
// quadtree by their centre of mass (Van der Maaten, 2014), N log N, and is kept as an alternative.
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

// Four rows i0 .. i0 + 3 against the columns j >= i0 + 4, eight columns at a time: each load of x_j, y_j
// and each load and store of the columns' accumulators serves four rows, which quarters the traffic to L2
// (where the arrays live at 10,000 points) that bounds the one-row loop. The pairs among the four rows
// themselves go through the scalar loop.
__attribute__((target("avx2,fma"))) inline void repulsion_rows4_avx2(const float* x, const float* y,
                                                                     int64_t i0, int64_t n, float* col_fx,
                                                                     float* col_fy, double* row_fx,
                                                                     double* row_fy, double* row_z) {
  constexpr int rows = 4;
  const __m256 one = _mm256_set1_ps(1.0f), two = _mm256_set1_ps(2.0f);
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
      const __m256 q = _mm256_fmadd_ps(dx, dx, _mm256_fmadd_ps(dy, dy, one));
      __m256 w = _mm256_rcp_ps(q);
      // The hardware reciprocal estimate refined by one Newton step: relative error ~1e-7, as a division,
      // and several times cheaper.
      w = _mm256_mul_ps(w, _mm256_fnmadd_ps(q, w, two));
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
// Eight entries at a time, the neighbours' coordinates gathered: the scalar loop is bound by a division per
// entry and the rows' ~100 entries by the latency of one accumulator.
__attribute__((target("avx2,fma"))) inline void attraction_row_avx2(const float* x, const float* y,
                                                                    const int32_t* column, const float* value,
                                                                    int64_t begin, int64_t end, float xi,
                                                                    float yi, double& ax, double& ay) {
  const __m256 one = _mm256_set1_ps(1.0f), two = _mm256_set1_ps(2.0f);
  const __m256 vxi = _mm256_set1_ps(xi), vyi = _mm256_set1_ps(yi);
  __m256 sx = _mm256_setzero_ps(), sy = sx;
  int64_t e = begin;
  for (; e + 8 <= end; e += 8) {
    const __m256i j = _mm256_loadu_si256(reinterpret_cast<const __m256i*>(column + e));
    const __m256 dx = _mm256_sub_ps(vxi, _mm256_i32gather_ps(x, j, 4));
    const __m256 dy = _mm256_sub_ps(vyi, _mm256_i32gather_ps(y, j, 4));
    const __m256 q = _mm256_fmadd_ps(dx, dx, _mm256_fmadd_ps(dy, dy, one));
    __m256 w = _mm256_rcp_ps(q);
    w = _mm256_mul_ps(w, _mm256_fnmadd_ps(q, w, two));  // Newton step: as accurate as a division
    const __m256 pw = _mm256_mul_ps(_mm256_loadu_ps(value + e), w);
    sx = _mm256_fmadd_ps(pw, dx, sx);
    sy = _mm256_fmadd_ps(pw, dy, sy);
  }
  ax += horizontal_sum(sx);
  ay += horizontal_sum(sy);
  if (e < end) attraction_row_scalar(x, y, column, value, e, end, xi, yi, ax, ay);
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
// with the self terms (w_ii = 1) taken off Z. Unlike FIt-SNE, which interpolates from the fixed nodes of the
// point's box, the stencil is centred on the point: on the same grid the kernel's interpolation error
// between close points falls from ~6% bias and 12% scatter to ~2% and 2% (the close pairs shape the local
// structure, and the box version cost 0.13 in final KL at 70,000 points against Barnes-Hut).
// The node spacing is fixed in embedding units because the interpolation error depends on it relative to
// the kernel's unit scale, not on the spread of the points; so the kernel's spectrum only depends on the
// grid size and is reused while that stays the same. The charges are real and the kernel even, so its
// spectrum is real and two charge terms share one complex transform (one as the real part, one as the
// imaginary part). Rows and columns are transformed in blocks of a few, in parallel; every value is
// computed by one thread in a fixed order, so the result does not depend on the thread count.
class FftRepulsion {
 public:
  explicit FftRepulsion(double box_width = 1.0, int nodes_per_box = 3, int64_t min_boxes = 50)
      : box_width_(box_width), nodes_per_box_(nodes_per_box), min_boxes_(std::max<int64_t>(2, min_boxes)) {
    if (!(box_width > 0)) throw std::invalid_argument("FftRepulsion: box_width must be > 0");
    if (nodes_per_box < 2 || nodes_per_box > max_nodes_per_box)
      throw std::invalid_argument("FftRepulsion: nodes_per_box must be in [2, 8]");
  }

  double operator()(std::span<const float> x, std::span<const float> y, std::span<double> force_x,
                    std::span<double> force_y) {
    const int64_t n = int64_t(x.size());
    if (y.size() != x.size() || force_x.size() != x.size() || force_y.size() != x.size())
      throw std::invalid_argument("FftRepulsion: coordinate and force arrays differ in length");
    const int threads = n < 2048 ? 1 : get_num_threads();

    // A square grid centred on the points.
    double lo_x = std::numeric_limits<double>::infinity(), lo_y = lo_x, hi_x = -lo_x, hi_y = -lo_x;
    for (int64_t i = 0; i < n; ++i) {
      lo_x = std::min(lo_x, double(x[std::size_t(i)])), hi_x = std::max(hi_x, double(x[std::size_t(i)]));
      lo_y = std::min(lo_y, double(y[std::size_t(i)])), hi_y = std::max(hi_y, double(y[std::size_t(i)]));
    }
    const double centre_x = (lo_x + hi_x) / 2, centre_y = (lo_y + hi_y) / 2;
    const double span = std::max(hi_x - lo_x, hi_y - lo_y);
    // Node spacing box_width / p, or finer while the points span fewer than min_boxes boxes; p / 2 spare
    // nodes on each side keep every point's stencil inside the grid.
    const int p = nodes_per_box_;
    const int64_t min_nodes = min_boxes_ * p;
    double spacing = box_width_ / p;
    int64_t nodes = int64_t(std::ceil(span / spacing)) + p;
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
