#pragma once
// Convolutions whose kernel covers the whole unpadded input (1x1 output): matrix products.
//
// With in_h == kernel_h, in_w == kernel_w, no padding and no dilation (the DCGAN's first and last layers:
// a 4x4 kernel over a 4x4 input), tap k = (ci, kh, kw) of image n is simply x[n][k], so the conv is a
// fully connected layer over K = Cin*Kh*Kw features and gathering taps would only transpose data:
//   forward      y[n][co]  = x[n] . w[co] (+ bias)
//   input grad   gx[n][k]  = sum_co gy[n][co] w[co][k]
//   weight grad  gw[co][k] = sum_n gy[n][co] x[n][k]
// The forward is a dot kernel along K, or for short K (the autoencoder's linear layers) the micro-kernel with
// rows = images and vectors along co. The input grad is the micro-kernel with rows = images, vectors along k;
// the weight grad with rows = channels, vectors along k, or, with fewer features than channels, rows = k and
// vectors along co. Linear layers are such convolutions too (kernels/linear.hpp). Threads split images (dot
// forward) or column tiles and row panels: outputs are disjoint, nothing is reduced across threads.
#include <algorithm>
#include <cstdint>

#include "sumi/kernels/conv_gemm.hpp"

namespace sumi::kernels::gemm {

inline bool is_dense(const Conv2dGeometry& g) {
  return g.in_h == g.kernel_h && g.in_w == g.kernel_w && g.pad_h == 0 && g.pad_w == 0 && g.dilation_h == 1 &&
         g.dilation_w == 1;
}

// Below this many multiply-adds a product with fewer full column tiles than two runs on one thread: splitting
// its rows would cost more in fork and join than it saves.
inline constexpr double kRowSplitMacs = 1 << 18;

// C[m][k] = sum over j < red of A(m, j) * Bj[k] for m < M, k < K (row stride K), with B row j at
// b + boff[j]: `uk` (direct B) over full column tiles. The last K % nr columns (all of them for K < nr: a
// latent of 10) go through `uk_packed` (packed B) on a zero-padded copy of those columns, since a scalar loop
// over them was a chain of dependent additions as long as the reduction. Threads split the (column tile, row
// panel) pairs, column tiles first, so that a product with few columns (a 64-wide output is one tile of 64
// lanes) still splits by rows; every output is computed by one thread in the same order whatever the thread
// count.
template <class KS>
void dense_rows_times_rows(const TileShape tile, MicroKernel uk, MicroKernel uk_packed, int64_t M, int64_t K,
                           int64_t red, const float* a, int64_t lda, const float* b, const int64_t* boff,
                           float* c) {
  const int64_t mr = tile.mr, nr = int64_t(tile.nv) * KS::kVec, full = K / nr, tail = K - full * nr;
  const int64_t panels = ceil_div(M, mr), items = (full + (tail > 0 ? 1 : 0)) * panels;
  const bool split = full >= 2 || double(M) * double(K) * double(red) >= kRowSplitMacs;
  const int nt = threads_for(split ? items : 1);
#pragma omp parallel num_threads(nt) if (nt > 1)
  {
    int64_t i0, i1;
    split_range(items, omp_get_num_threads(), omp_get_thread_num(), i0, i1);
    float* tb = nullptr;  // this thread's zero-padded copy of the tail columns, made at its first tail panel
    float* tc = nullptr;  // mr rows of nr results
    for (int64_t item = i0; item < i1; ++item) {
      const int64_t jt = item / panels, m = item % panels * mr;
      const int rows = int(std::min(mr, M - m));
      const float* am = a + (lda ? m * lda : m * red);
      if (jt < full) {
        uk(red, am, lda, b + jt * nr, boff, c + m * K + jt * nr, K, rows, false, nullptr);
        continue;
      }
      if (!tb) {
        tb = thread_workspace(WorkspaceSlot::packed_panel).get<float>((red + mr) * nr);
        tc = tb + red * nr;
        for (int64_t j = 0; j < red; ++j) {
          std::copy_n(b + boff[j] + full * nr, tail, tb + j * nr);
          std::fill(tb + j * nr + tail, tb + (j + 1) * nr, 0.0f);
        }
      }
      uk_packed(red, am, lda, tb, nullptr, tc, nr, rows, false, nullptr);
      for (int r = 0; r < rows; ++r) std::copy_n(tc + r * nr, tail, c + (m + r) * K + full * nr);
    }
  }
}

// The forward for short reductions (the autoencoder's linear layers, 5..288 features), where the dot
// kernel's horizontal sums cost as much as its products: rows = images (A = x), vectors along the output
// channels, B row k = column k of w (w transposed once per call, a few thousand floats).
template <class KS>
void conv2d_forward_dense_rows(const Conv2dGeometry& g, const float* x, const float* w, const float* bias,
                               float* y) {
  const int64_t N = g.batch, C = g.out_channels, K = g.in_channels * g.kernel_h * g.kernel_w;
  const TileShape tile = choose_tile<KS>(N, C);
  int64_t* boff = thread_workspace(WorkspaceSlot::tables).get<int64_t>(K);
  float* wt = thread_workspace(WorkspaceSlot::packed_weights).get<float>(K * C);
  for (int64_t k = 0; k < K; ++k) boff[k] = k * C;
  for (int64_t co = 0; co < C; ++co)
    for (int64_t k = 0; k < K; ++k) wt[k * C + co] = w[co * K + k];
  dense_rows_times_rows<KS>(tile, micro_kernel_for<KS>(tile, AMode::rows, true),
                            micro_kernel_for<KS>(tile, AMode::rows, false), N, C, K, x, K, wt, boff, y);
  if (bias)
    for (int64_t n = 0; n < N; ++n)
#pragma omp simd
      for (int64_t co = 0; co < C; ++co) y[n * C + co] += bias[co];
}

// Reductions shorter than this go through conv2d_forward_dense_rows, unless the outputs are fewer than a
// vector (the latent codes).
inline constexpr int64_t kDenseForwardMinDotLength = 512;

template <class KS>
void conv2d_forward_dense(const Conv2dGeometry& g, const float* x, const float* w, const float* bias,
                          float* y) {
  const int64_t N = g.batch, C = g.out_channels, K = g.in_channels * g.kernel_h * g.kernel_w;
  if (K < kDenseForwardMinDotLength && C >= KS::kVec) return conv2d_forward_dense_rows<KS>(g, x, w, bias, y);
  constexpr int64_t R = KS::kDotRows, J = KS::kDotCols;
  const int64_t kb = 2048;  // reduction block: a tile's rows stay in L1, a block of w in L2
  const int nt = threads_for(ceil_div(N, R));
#pragma omp parallel num_threads(nt) if (nt > 1)
  {
    int64_t b0, b1;
    split_range(ceil_div(N, R), omp_get_num_threads(), omp_get_thread_num(), b0, b1);
    for (int64_t k0 = 0; k0 < K; k0 += kb) {
      const int64_t len = std::min(kb, K - k0);
      for (int64_t b = b0; b < b1; ++b)
        for (int64_t co = 0; co < C; co += J)
          KS::kDot({.len = len}, x + b * R * K + k0, K, nullptr, w + co * K + k0, K, nullptr,
                   y + b * R * C + co, C, int(std::min(R, N - b * R)), int(std::min(J, C - co)), k0 > 0);
    }
    if (bias)
      for (int64_t n = b0 * R; n < std::min(N, b1 * R); ++n)
        for (int64_t co = 0; co < C; ++co) y[n * C + co] += bias[co];
  }
}

template <class KS>
void conv2d_backward_input_dense(const Conv2dGeometry& g, const float* gy, const float* w, float* gx) {
  const int64_t N = g.batch, C = g.out_channels, K = g.in_channels * g.kernel_h * g.kernel_w;
  // rows = images (A = gy, row-major [N][C]), reduction over channels, B row co = w[co]
  const TileShape tile = choose_tile<KS>(N, K);
  int64_t* boff = thread_workspace(WorkspaceSlot::tables).get<int64_t>(C);
  for (int64_t co = 0; co < C; ++co) boff[co] = co * K;
  dense_rows_times_rows<KS>(tile, micro_kernel_for<KS>(tile, AMode::rows, true),
                            micro_kernel_for<KS>(tile, AMode::rows, false), N, K, C, gy, C, w, boff, gx);
}

// gbias[co] = sum over n of gy[n][co] (gbias may be null), image by image: C independent sums, each still
// in image order.
inline void dense_bias_gradient(int64_t N, int64_t C, const float* gy, float* gbias) {
  if (!gbias) return;
  std::fill_n(gbias, C, 0.0f);
  for (int64_t n = 0; n < N; ++n)
    for (int64_t co = 0; co < C; ++co) gbias[co] += gy[n * C + co];
}

// The weight gradient with fewer features than channels (the decoder's Linear(k, 64) and Linear(64, 288)):
// rows = features (A = x^T, the smaller operand to pack), vectors along the channels (B row n = gy[n]),
// then gw^T transposed into place.
template <class KS>
void conv2d_backward_weight_dense_transposed(const Conv2dGeometry& g, const float* x, const float* gy,
                                             float* gw) {
  const int64_t N = g.batch, C = g.out_channels, K = g.in_channels * g.kernel_h * g.kernel_w;
  const TileShape tile = choose_tile<KS>(K, C);
  const int64_t mr = tile.mr, panels = ceil_div(K, mr);
  int64_t* boff = thread_workspace(WorkspaceSlot::tables).get<int64_t>(N);
  for (int64_t n = 0; n < N; ++n) boff[n] = n * C;
  float* ap = thread_workspace(WorkspaceSlot::packed_weights).get<float>(panels * mr * N + K * C);
  float* gwt = ap + panels * mr * N;  // [K][C]
  pack_a_panels(K, N, int(mr), 0, panels, ap, [&](int64_t k, int64_t n) { return x[n * K + k]; });
  dense_rows_times_rows<KS>(tile, micro_kernel_for<KS>(tile, AMode::packed, true),
                            micro_kernel_for<KS>(tile, AMode::packed, false), K, C, N, ap, 0, gy, boff, gwt);
  for (int64_t co = 0; co < C; ++co)
    for (int64_t k = 0; k < K; ++k) gw[co * K + k] = gwt[k * C + co];
}

template <class KS>
void conv2d_backward_weight_dense(const Conv2dGeometry& g, const float* x, const float* gy, float* gw,
                                  float* gbias) {
  const int64_t N = g.batch, C = g.out_channels, K = g.in_channels * g.kernel_h * g.kernel_w;
  if (K < C) {
    conv2d_backward_weight_dense_transposed<KS>(g, x, gy, gw);
    dense_bias_gradient(N, C, gy, gbias);
    return;
  }
  // rows = channels (A = gy^T packed as [panel][N][mr]), reduction over images, B row n = x[n]
  const TileShape tile = choose_tile<KS>(C, K);
  const int64_t mr = tile.mr, panels = ceil_div(C, mr);
  int64_t* boff = thread_workspace(WorkspaceSlot::tables).get<int64_t>(N);
  for (int64_t n = 0; n < N; ++n) boff[n] = n * K;
  float* ap = thread_workspace(WorkspaceSlot::packed_weights).get<float>(panels * mr * N);
  pack_a_panels(C, N, int(mr), 0, panels, ap, [&](int64_t co, int64_t n) { return gy[n * C + co]; });
  // Panel p of A starts at ap + p * N * mr: the micro-kernel's packed A for rows [p*mr, p*mr + mr).
  dense_rows_times_rows<KS>(tile, micro_kernel_for<KS>(tile, AMode::packed, true),
                            micro_kernel_for<KS>(tile, AMode::packed, false), C, K, N, ap, 0, x, boff, gw);
  dense_bias_gradient(N, C, gy, gbias);
}

}  // namespace sumi::kernels::gemm
