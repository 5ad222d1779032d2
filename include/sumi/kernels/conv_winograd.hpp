#pragma once
// Winograd F(4x4, 2x2) for 4x4 stride-2 convolutions (the DCGAN's 64..512-channel layers).
//
// Split into its four stride phases (PhaseSplit, conv_gemm.hpp), a 4x4 stride-2 convolution is a stride-1
// correlation with 2x2 kernels over 4*Cin phase planes. Its input gradient (a transposed convolution's
// forward) splits the same way, into one stride-1 2x2 correlation per phase of the input. Winograd's minimal
// filtering F(4x4, 2x2) computes a 4x4 output tile of a 2x2 correlation from a 5x5 input tile with 25
// products instead of 64:
//
//   Y = A^T [(G g G^T) . (B^T d B)] A
//
// Summed over channels, the 25 element-wise products become 25 independent GEMMs (Cout x C times C x
// tiles), which run on the same micro-kernels as the direct convolutions: 2.56x fewer multiply-adds, plus
// the transforms, which cost O(C + Cout) per tile against the GEMMs' O(C * Cout). The weight gradient is the
// same algorithm transposed: 25 GEMMs Cout x C reduced over tiles, of the transformed output gradient
// (A gy A^T) and input (B^T d B), then G^T (.) G per kernel.
//
// Interpolation points 0, 1, -1, 2 and infinity; B^T's rows are scaled to integers and G's rows divided
// accordingly. On random data the error is about 1e-5 of the output's magnitude (the direct GEMM's is about
// 1e-6); the tests hold both to the double-precision reference at 1e-4.
#include <algorithm>
#include <cstdint>
#include <stdexcept>
#include <string>
#include <utility>

#include <omp.h>

#include "sumi/kernels/conv_gemm.hpp"
#include "sumi/kernels/cpu_features.hpp"

#if SUMI_X86_KERNELS
#include <immintrin.h>
#endif

namespace sumi::kernels::gemm {

namespace winograd {
constexpr int kOut = 4;      // output tile side
constexpr int kIn = 5;       // input tile side
constexpr int kPoints = 25;  // products per tile (kIn x kIn)
constexpr int kLanes = 8;    // tiles transformed together
constexpr int kInputSlack = 8;

// v = B^T d B for kLanes tiles: element (r, s) of lane l's 5x5 input tile is p[l][r * row_stride + s];
// product xi = 5 * i + j of lane l goes to v[xi * v_stride + l]. ISA versions may read up to kInputSlack
// floats past a tile's last element (the source buffers have that much slack).
// B^T = [2 -1 -2 1 0; 0 2 1 -1 0; 0 -2 3 -1 0; 0 -1 0 1 0; 0 2 -1 -2 1]
[[gnu::always_inline]] inline void input_tiles(const float* const* p, int64_t row_stride, float* v,
                                               int64_t v_stride) {
  float t[kIn][kIn][kLanes];  // B^T d: t[i][s]
  for (int s = 0; s < kIn; ++s) {
    float d[kIn][kLanes];
    for (int r = 0; r < kIn; ++r)
      for (int l = 0; l < kLanes; ++l) d[r][l] = p[l][r * row_stride + s];
    for (int l = 0; l < kLanes; ++l) {
      const float d0 = d[0][l], d1 = d[1][l], d2 = d[2][l], d3 = d[3][l], d4 = d[4][l];
      t[0][s][l] = 2 * (d0 - d2) - d1 + d3;
      t[1][s][l] = 2 * d1 + d2 - d3;
      t[2][s][l] = 3 * d2 - 2 * d1 - d3;
      t[3][s][l] = d3 - d1;
      t[4][s][l] = 2 * (d1 - d3) - d2 + d4;
    }
  }
  for (int i = 0; i < kIn; ++i) {
    float* o = v + int64_t(i * kIn) * v_stride;
    for (int l = 0; l < kLanes; ++l) {
      const float d0 = t[i][0][l], d1 = t[i][1][l], d2 = t[i][2][l], d3 = t[i][3][l], d4 = t[i][4][l];
      o[l] = 2 * (d0 - d2) - d1 + d3;
      o[v_stride + l] = 2 * d1 + d2 - d3;
      o[2 * v_stride + l] = 3 * d2 - 2 * d1 - d3;
      o[3 * v_stride + l] = d3 - d1;
      o[4 * v_stride + l] = 2 * (d1 - d3) - d2 + d4;
    }
  }
}

// Y = A^T M A for kLanes tiles, stored: product xi of lane l is m[xi * m_stride + l]; output (a, b) of lane
// l < lanes, plus bias, goes to dst[l][a * row_step + b * col_step].
// With col_step 2 the tile's columns interleave with those of another column phase (an input gradient's
// phases), col_phase 0 or 1, and ISA versions may store whole 8-column rows: phase 0 may write anything to
// phase 1's columns of its rows (phase 1 is stored later), phase 1 keeps phase 0's.
// A^T = [1 1 1 1 0; 0 1 -1 2 0; 0 1 1 4 0; 0 1 -1 8 1]
[[gnu::always_inline]] inline void store_tiles(const float* m, int64_t m_stride, float* const* dst, int lanes,
                                               int64_t row_step, int64_t col_step,
                                               [[maybe_unused]] int col_phase, float bias) {
  float t[kOut][kIn][kLanes];  // A^T M: t[p][j]
  for (int j = 0; j < kIn; ++j)
    for (int l = 0; l < kLanes; ++l) {
      const float m0 = m[int64_t(j) * m_stride + l], m1 = m[int64_t(5 + j) * m_stride + l],
                  m2 = m[int64_t(10 + j) * m_stride + l], m3 = m[int64_t(15 + j) * m_stride + l],
                  m4 = m[int64_t(20 + j) * m_stride + l];
      t[0][j][l] = m0 + m1 + m2 + m3;
      t[1][j][l] = m1 - m2 + 2 * m3;
      t[2][j][l] = m1 + m2 + 4 * m3;
      t[3][j][l] = m1 - m2 + 8 * m3 + m4;
    }
  for (int l = 0; l < lanes; ++l)
    for (int p = 0; p < kOut; ++p) {
      const float m0 = t[p][0][l], m1 = t[p][1][l], m2 = t[p][2][l], m3 = t[p][3][l], m4 = t[p][4][l];
      float* o = dst[l] + p * row_step;
      o[0] = m0 + m1 + m2 + m3 + bias;
      o[col_step] = m1 - m2 + 2 * m3 + bias;
      o[2 * col_step] = m1 + m2 + 4 * m3 + bias;
      o[3 * col_step] = m1 - m2 + 8 * m3 + m4 + bias;
    }
}

// z = A gy A^T for kLanes 4x4 tiles of an output gradient: element (r, s) of lane l's tile is
// p[l][r * row_stride + s]; product xi of lane l goes to z[xi * z_stride + l]. The weight gradient's
// transform: as Y = A^T (U . V) A, the gradient of U is (A gy A^T) . V.
// A = [1 0 0 0; 1 1 1 1; 1 -1 1 -1; 1 2 4 8; 0 0 0 1]
[[gnu::always_inline]] inline void gradient_tiles(const float* const* p, int64_t row_stride, float* z,
                                                  int64_t z_stride) {
  float t[kIn][kOut][kLanes];  // A gy: t[i][s]
  for (int s = 0; s < kOut; ++s)
    for (int l = 0; l < kLanes; ++l) {
      const float d0 = p[l][s], d1 = p[l][row_stride + s], d2 = p[l][2 * row_stride + s],
                  d3 = p[l][3 * row_stride + s];
      t[0][s][l] = d0, t[1][s][l] = d0 + d1 + d2 + d3, t[2][s][l] = d0 - d1 + d2 - d3;
      t[3][s][l] = d0 + 2 * d1 + 4 * d2 + 8 * d3, t[4][s][l] = d3;
    }
  for (int i = 0; i < kIn; ++i) {
    float* o = z + int64_t(5 * i) * z_stride;
    for (int l = 0; l < kLanes; ++l) {
      const float d0 = t[i][0][l], d1 = t[i][1][l], d2 = t[i][2][l], d3 = t[i][3][l];
      o[l] = d0, o[z_stride + l] = d0 + d1 + d2 + d3, o[2 * z_stride + l] = d0 - d1 + d2 - d3;
      o[3 * z_stride + l] = d0 + 2 * d1 + 4 * d2 + 8 * d3, o[4 * z_stride + l] = d3;
    }
  }
}

// g = G^T u G for kLanes 5x5 gradients of U (product xi of lane l at u[xi * u_stride + l]): the 2x2
// kernels' gradients, tap k of lane l in g[k][l] (taps row-major).
[[gnu::always_inline]] inline void weight_gradient_tiles(const float* u, int64_t u_stride,
                                                         float (&g)[4][kLanes]) {
  constexpr float kSixth = 1.0f / 6.0f, kThird = 1.0f / 3.0f;
  float h[kIn][2][kLanes];  // u G
  for (int i = 0; i < kIn; ++i) {
    const float* r = u + 5 * i * u_stride;
    for (int l = 0; l < kLanes; ++l) {
      const float u0 = r[l], u1 = r[u_stride + l], u2 = r[2 * u_stride + l], u3 = r[3 * u_stride + l],
                  u4 = r[4 * u_stride + l];
      h[i][0][l] = 0.5f * (u0 + u1) + kSixth * (u2 + u3);
      h[i][1][l] = 0.5f * u1 - kSixth * u2 + kThird * u3 + u4;
    }
  }
  for (int b = 0; b < 2; ++b)
    for (int l = 0; l < kLanes; ++l) {
      g[b][l] = 0.5f * (h[0][b][l] + h[1][b][l]) + kSixth * (h[2][b][l] + h[3][b][l]);
      g[2 + b][l] = 0.5f * h[1][b][l] - kSixth * h[2][b][l] + kThird * h[3][b][l] + h[4][b][l];
    }
}

// u = G g G^T for L 2x2 kernels at once: tap k of kernel l is g[k][l] (taps row-major); product xi of kernel
// l goes to u[xi][l]. Laid out by kernel so that the loops vectorize across kernels.
// G = [1/2 0; 1/2 1/2; 1/6 -1/6; 1/6 1/3; 0 1]
template <int L>
void weight_tiles(const float (&g)[4][L], float (&u)[kPoints][L]) {
  constexpr float kSixth = 1.0f / 6.0f;
  float t[kIn][2][L];  // G g
  for (int b = 0; b < 2; ++b)
    for (int l = 0; l < L; ++l) {
      const float top = g[b][l], bottom = g[2 + b][l];
      t[0][b][l] = 0.5f * top, t[1][b][l] = 0.5f * (top + bottom), t[2][b][l] = kSixth * (top - bottom);
      t[3][b][l] = kSixth * (top + 2 * bottom), t[4][b][l] = bottom;
    }
  for (int i = 0; i < kIn; ++i)
    for (int l = 0; l < L; ++l) {
      const float left = t[i][0][l], right = t[i][1][l];
      u[5 * i][l] = 0.5f * left, u[5 * i + 1][l] = 0.5f * (left + right);
      u[5 * i + 2][l] = kSixth * (left - right), u[5 * i + 3][l] = kSixth * (left + 2 * right);
      u[5 * i + 4][l] = right;
    }
}
}  // namespace winograd

// The ISA's transforms when it has its own (compiled for its vector width), else the portable ones.
template <class KS>
void winograd_input_tiles(const float* const* p, int64_t row_stride, float* v, int64_t v_stride) {
  if constexpr (requires { &KS::winograd_input; })
    KS::winograd_input(p, row_stride, v, v_stride);
  else
    winograd::input_tiles(p, row_stride, v, v_stride);
}
template <class KS>
void winograd_gradient_tiles(const float* const* p, int64_t row_stride, float* z, int64_t z_stride) {
  if constexpr (requires { &KS::winograd_gradient; })
    KS::winograd_gradient(p, row_stride, z, z_stride);
  else
    winograd::gradient_tiles(p, row_stride, z, z_stride);
}
template <class KS>
void winograd_store_tiles(const float* m, int64_t m_stride, float* const* dst, int lanes, int64_t row_step,
                          int64_t col_step, int col_phase, float bias) {
  if constexpr (requires { &KS::winograd_store; })
    KS::winograd_store(m, m_stride, dst, lanes, row_step, col_step, col_phase, bias);
  else
    winograd::store_tiles(m, m_stride, dst, lanes, row_step, col_step, col_phase, bias);
}

// 4x4 kernel, stride 2, no dilation: the geometry whose phases are 2x2 correlations.
inline bool winograd_geometry(const Conv2dGeometry& g) {
  return g.kernel_h == 4 && g.kernel_w == 4 && g.stride_h == 2 && g.stride_w == 2 && g.dilation_h == 1 &&
         g.dilation_w == 1;
}

// The 25 GEMMs get too thin below these channel counts. Output sides must be whole tiles: multiples of 4
// (forward), of 8 for the input (input gradient: phases of in/2).
constexpr int64_t kWinogradMinReduce = 64, kWinogradMinRows = 32;

// Transformed weights are 25/4 times the size of the kernel; the forward transforms all of them at once, the
// input gradient one phase at a time when all four would exceed this (16 MB).
constexpr int64_t kWinogradMaxWeightFloats = int64_t(4) << 20;

// Transformed weights over that limit go in blocks of channels, for which each thread keeps the products of
// all its images: at most this many for the whole batch (16 MB).
inline bool winograd_forward_applies(const Conv2dGeometry& g) {
  const bool fits =
      25 * 4 * g.in_channels * g.out_channels <= kWinogradMaxWeightFloats ||
      25 * g.out_channels * g.batch * (g.out_h() / 4) * (g.out_w() / 4) <= kWinogradMaxWeightFloats;
  return winograd_geometry(g) && g.out_h() % 4 == 0 && g.out_w() % 4 == 0 &&
         4 * g.in_channels >= kWinogradMinReduce && g.out_channels >= kWinogradMinRows && fits;
}

inline bool winograd_backward_input_applies(const Conv2dGeometry& g) {
  return winograd_geometry(g) && g.in_h % 8 == 0 && g.in_w % 8 == 0 && g.out_channels >= kWinogradMinReduce &&
         g.in_channels >= kWinogradMinRows;
}

// The weight gradient reduces over tiles: below this many per call, transforming the kernels' gradients back
// costs more than the products save.
constexpr int64_t kWinogradMinTiles = 8;

inline bool winograd_backward_weight_applies(const Conv2dGeometry& g) {
  return winograd_geometry(g) && g.out_h() % 4 == 0 && g.out_w() % 4 == 0 &&
         4 * g.in_channels >= kWinogradMinReduce && g.out_channels >= kWinogradMinRows &&
         g.batch * (g.out_h() / 4) * (g.out_w() / 4) >= kWinogradMinTiles;
}

// Floats between consecutive products' planes of `floats` each. Every transform touches all 25 planes at
// once; planes a multiple of 4 KB apart fall in the same cache sets, where 25 streams evict each other (a
// 12-way L1, a 16-way L2). An odd number of cache lines apart, the 25 fall in different sets.
inline int64_t product_stride(int64_t floats) {
  return (ceil_div(floats, 16) | 1) * 16;
}

// Blocking of one Winograd problem: M output channels, C reduced channels.
struct WinogradPlan {
  TileShape tile;
  int64_t M = 0, C = 0, mr = 0, nr = 0, m_pad = 0, npanels = 0, kc = 0;
  int64_t u_stride = 0;      // floats between the transformed weights' products
  int64_t target_tiles = 0;  // tiles per chunk (per thread), a multiple of nr
};

template <class KS>
WinogradPlan make_winograd_plan(int64_t M, int64_t C, int64_t tiles) {
  WinogradPlan p;
  p.M = M, p.C = C;
  p.tile = choose_tile<KS>(M, tiles);
  p.mr = p.tile.mr, p.nr = int64_t(p.tile.nv) * KS::kVec;
  p.m_pad = round_up(M, p.mr), p.npanels = p.m_pad / p.mr;
  p.u_stride = product_stride(p.m_pad * C);
  const int64_t kc_max = l1_panel_depth(p.nr);
  p.kc = ceil_div(C, ceil_div(C, kc_max));
  // Transformed tiles in flight take 25 * (C + M) floats each; ~2 MB of them per thread, and at least two
  // column tiles so that each block of transformed weights is reused.
  const int64_t fit = (2 << 20) / (int64_t(winograd::kPoints) * 4 * (C + p.m_pad));
  p.target_tiles = round_up(std::clamp<int64_t>(fit, 2 * p.nr, 8 * p.nr), p.nr);
  return p;
}

// Copies n floats, a multiple of 16, to 64-byte aligned dst with streaming stores where the CPU has them:
// the transformed weights are tens of MB, written once and read later, and a streaming store skips reading
// each line before overwriting it (three times faster for 25 interleaved streams on the project machine).
// fence_streaming_copies() orders them before the stores that follow (the barrier other threads wait on).
inline void copy_streaming(const float* src, int64_t n, float* dst) {
#if SUMI_X86_KERNELS
  for (int64_t i = 0; i < n; i += 4) _mm_stream_ps(dst + i, _mm_loadu_ps(src + i));
#else
  std::copy_n(src, n, dst);
#endif
}
inline void fence_streaming_copies() {
#if SUMI_X86_KERNELS
  _mm_sfence();
#endif
}

// Transformed weights: u[xi * u_stride + (panel * C + c) * mr + r] = (G g G^T)[xi] of kernel g = get(m, c) (4
// floats, row-major), m = panel * mr + r; rows past M are zero. Panels [p0, p1). MR = mr, a constant so that
// the stores stay inline. A group of channels of a panel is transformed together, with their kernels in the
// order they are stored (channel-major, row-minor): the transform vectorizes across the group's kernels and
// each product's floats for the group are whole cache lines (16 channels for odd MR, else 8).
template <int MR, class Get>
void pack_winograd_panels(const WinogradPlan& p, int64_t p0, int64_t p1, float* u, Get& get) {
  constexpr int kChannels = MR % 2 ? 16 : 8, L = kChannels * MR;
  static_assert(L % 16 == 0);
  const int64_t xi_stride = p.u_stride;
  for (int64_t panel = p0; panel < p1; ++panel) {
    const int rows = int(std::min<int64_t>(MR, p.M - panel * MR));
    for (int64_t c0 = 0; c0 < p.C; c0 += kChannels) {
      const int channels = int(std::min<int64_t>(kChannels, p.C - c0));
      float g[4][L] = {}, t[winograd::kPoints][L];
      for (int c = 0; c < channels; ++c)
        for (int r = 0; r < rows; ++r) {
          float k[4];
          get(panel * MR + r, c0 + c, k);
          for (int i = 0; i < 4; ++i) g[i][c * MR + r] = k[i];
        }
      winograd::weight_tiles<L>(g, t);
      float* d = u + (panel * p.C + c0) * MR;
      if (channels == kChannels && reinterpret_cast<uintptr_t>(d) % 64 == 0)
        for (int xi = 0; xi < winograd::kPoints; ++xi) copy_streaming(t[xi], L, d + xi * xi_stride);
      else
        for (int xi = 0; xi < winograd::kPoints; ++xi) std::copy_n(t[xi], channels * MR, d + xi * xi_stride);
    }
  }
  fence_streaming_copies();
}

// The register tiles' row counts (conv_avx2.hpp, conv_avx512.hpp), each with its own weight packing.
using WinogradTileRows = std::integer_sequence<int, 1, 2, 3, 4, 5, 6, 8, 12>;

template <class Get, int... MR>
void pack_winograd_weights(const WinogradPlan& p, int64_t p0, int64_t p1, float* u, Get& get,
                           std::integer_sequence<int, MR...>) {
  const bool packed = ((p.mr == MR && (pack_winograd_panels<MR>(p, p0, p1, u, get), true)) || ...);
  if (!packed)
    throw std::logic_error("Winograd: no weight packing for register tiles of " + std::to_string(p.mr) +
                           " rows");
}

template <class Get>
void pack_winograd_weights(const WinogradPlan& p, int64_t p0, int64_t p1, float* u, Get&& get) {
  pack_winograd_weights(p, p0, p1, u, get, WinogradTileRows{});
}

// Inside a parallel region: the team packs one pass's transformed weights (row panels split between the
// threads) into the shared buffer once every thread is done with the previous pass's.
template <class Pack>
void pack_as_team(int64_t npanels, bool after_a_pass, Pack&& pack) {
  if (after_a_pass) {
#pragma omp barrier
  }
  int64_t p0, p1;
  split_range(npanels, omp_get_num_threads(), omp_get_thread_num(), p0, p1);
  pack(p0, p1);
#pragma omp barrier
}

// Where one correlation reads and writes. Output tile (ti, tj) of image n covers pixels 4ti..4ti+3 x
// 4tj..4tj+3, stored through `out`; its input tile is rows row0 + 4ti + 0..4, columns col0 + 4tj + 0..4 of
// plane c at src + n * img_stride + c * ch_stride.
struct WinogradSource {
  const float* src = nullptr;
  int64_t img_stride = 0, ch_stride = 0, row_stride = 0, row0 = 0, col0 = 0;
  int64_t tiles_h = 0, tiles_w = 0;
};

// A thread's buffers for chunks of `chunk` images.
struct WinogradBuffers {
  int64_t chunk = 0;           // images per chunk, at least one
  float* src = nullptr;        // the chunk's source planes
  float* v = nullptr;          // transformed input [xi][column tile][C][nr]
  float* m = nullptr;          // products [xi][m_pad][column tiles * nr]
  int64_t* src_off = nullptr;  // per tile: offset of its input tile in the source
  int64_t* out_off = nullptr;  // per tile: offset of its first output pixel
};

// One chunk: images n_first .. n_first + count - 1 of `s` (n_first indexes the output; the source holds the
// chunk's images from 0) through the 25 GEMMs with transformed weights u, into `out`. With `accumulate` the
// products add to those already in buf.m (an earlier block of channels); only with `store` are they
// transformed and stored.
template <class KS>
void winograd_chunk(const WinogradPlan& p, MicroKernel uk, const float* u, const WinogradSource& s,
                    int64_t n_first, int64_t count, const StoreMap& out, const WinogradBuffers& buf,
                    bool accumulate = false, bool store = true) {
  using winograd::kLanes;
  using winograd::kPoints;
  const int64_t per_img = s.tiles_h * s.tiles_w, tiles = count * per_img;
  const int64_t ntg = ceil_div(tiles, p.nr), ldm = ntg * p.nr, C = p.C;
  for (int64_t t = 0; t < tiles; ++t) {
    const int64_t n = t / per_img, ti = t % per_img / s.tiles_w, tj = t % s.tiles_w;
    buf.src_off[t] = n * s.img_stride + (s.row0 + 4 * ti) * s.row_stride + s.col0 + 4 * tj;
    buf.out_off[t] = (n_first + n) * out.img_stride + (4 * ti * out.row_mul + out.row_add) * out.row_stride +
                     4 * tj * out.col_mul + out.col_add;
  }
  // Input transform. Lanes past the last tile repeat it; their columns are never stored.
  const int64_t v_xi = product_stride(ntg * C * p.nr), m_xi = product_stride(p.m_pad * ldm);
  // Column tile by column tile, so that each of the 25 products' rows of V is written sequentially.
  for (int64_t jr = 0; jr < ntg; ++jr)
    for (int64_t c = 0; c < C; ++c)
      for (int64_t lane = 0; lane < p.nr; lane += kLanes) {
        const float* ptr[kLanes];
        for (int l = 0; l < kLanes; ++l)
          ptr[l] = s.src + c * s.ch_stride + buf.src_off[std::min(jr * p.nr + lane + l, tiles - 1)];
        winograd_input_tiles<KS>(ptr, s.row_stride, buf.v + (jr * C + c) * p.nr + lane, v_xi);
      }
  // The 25 GEMMs: products[xi] = U[xi] (m_pad x C) * V[xi] (C x ldm).
  for (int xi = 0; xi < kPoints; ++xi) {
    const float* uxi = u + xi * p.u_stride;
    const float* vxi = buf.v + xi * v_xi;
    float* mxi = buf.m + xi * m_xi;
    for (int64_t pc = 0; pc < C; pc += p.kc) {
      const int64_t kc = std::min(p.kc, C - pc);
      for (int64_t jr = 0; jr < ntg; ++jr)
        for (int64_t ir = 0; ir < p.m_pad; ir += p.mr)
          uk(kc, uxi + (ir / p.mr) * C * p.mr + pc * p.mr, 0, vxi + (jr * C + pc) * p.nr, nullptr,
             mxi + ir * ldm + jr * p.nr, ldm, int(std::min(p.mr, p.M - ir)), accumulate || pc > 0, nullptr);
    }
  }
  if (!store) return;
  // Output transform.
  for (int64_t m = 0; m < p.M; ++m) {
    const float bias = out.bias ? out.bias[m] : 0.0f;
    float* dst = out.out + m * out.ch_stride;
    for (int64_t t0 = 0; t0 < tiles; t0 += kLanes) {
      const int lanes = int(std::min<int64_t>(kLanes, tiles - t0));
      float* ptr[kLanes];
      for (int l = 0; l < lanes; ++l) ptr[l] = dst + buf.out_off[t0 + l];
      winograd_store_tiles<KS>(buf.m + m * ldm + t0, m_xi, ptr, lanes, out.row_mul * out.row_stride,
                               out.col_mul, int(out.col_add), bias);
    }
  }
}

// A thread's chunk size and buffers: transformed tiles, products, tile offsets and `src_floats_per_image`
// floats per image of zeroed source planes (whose padding stays zero: images only write their pixels), with
// kInputSlack floats past the end.
inline WinogradBuffers winograd_thread_buffers(const WinogradPlan& p, int64_t per_img_tiles, int64_t images,
                                               int64_t src_floats_per_image) {
  WinogradBuffers b;
  b.chunk = std::clamp<int64_t>(p.target_tiles / std::max<int64_t>(per_img_tiles, 1), 1,
                                std::max<int64_t>(images, 1));
  const int64_t tiles = b.chunk * per_img_tiles, ldm = round_up(tiles, p.nr);
  b.v =
      thread_workspace(WorkspaceSlot::packed_panel).get<float>(winograd::kPoints * product_stride(p.C * ldm));
  b.m = thread_workspace(WorkspaceSlot::accumulators)
            .get<float>(winograd::kPoints * product_stride(p.m_pad * ldm));
  b.src_off = thread_workspace(WorkspaceSlot::partial_sums).get<int64_t>(2 * tiles);
  b.out_off = b.src_off + tiles;
  const int64_t src_floats = b.chunk * src_floats_per_image + winograd::kInputSlack;
  b.src = thread_workspace(WorkspaceSlot::source).get<float>(src_floats);
  std::fill(b.src, b.src + src_floats, 0.0f);
  return b;
}

// Forward: the four phase planes of each input channel are the 4*Cin channels of one 2x2 correlation.
// Transformed weights over kWinogradMaxWeightFloats (D4: 52 MB) go in blocks of input channels, transformed
// by all threads together, one block at a time; each thread then keeps all its images in one chunk, whose
// products add up over the blocks before the output transform.
template <class KS>
void conv2d_forward_winograd(const Conv2dGeometry& g, const float* x, const float* w, const float* bias,
                             float* y) {
  const int64_t ho = g.out_h(), wo = g.out_w(), cin = g.in_channels, cout = g.out_channels;
  const PhaseSplit ps = phase_split_for(g);
  const int64_t channel_floats = ps.planes_per_channel() * ps.plane_size();
  WinogradSource s;
  s.ch_stride = ps.plane_size(), s.row_stride = ps.ws;
  s.tiles_h = ho / 4, s.tiles_w = wo / 4;
  const int64_t per_img = s.tiles_h * s.tiles_w, tiles = g.batch * per_img;
  // Channels per block from the size cap, then the blocks they make: ceil(cin / block_cin) can be fewer
  // than the cap asked for (cin 256 in 17 blocks is 16 blocks of 16), and no block may be empty.
  const int64_t block_cin =
      ceil_div(cin, ceil_div(winograd::kPoints * 4 * cin * cout, kWinogradMaxWeightFloats));
  const int64_t blocks = ceil_div(cin, block_cin), last_cin = cin - (blocks - 1) * block_cin;
  const auto plan_for = [&](int64_t channels) {
    WinogradPlan p = make_winograd_plan<KS>(cout, 4 * channels, tiles);
    if (blocks > 1) p.target_tiles = round_up(tiles, p.nr);  // one chunk per thread
    return p;
  };
  const WinogradPlan plan = plan_for(block_cin), last_plan = plan_for(last_cin);
  s.img_stride = block_cin * channel_floats;
  const MicroKernel uk = micro_kernel_for<KS>(plan.tile, AMode::packed, false);
  float* u = thread_workspace(WorkspaceSlot::packed_weights).get<float>(winograd::kPoints * plan.u_stride);
  // Row panels [p0, p1) of block b's transformed weights; channel c = (ci, ph, pw) holds kernel taps
  // (2a + ph, 2b + pw).
  const auto pack = [&](int64_t b, int64_t p0, int64_t p1) {
    const WinogradPlan& pb = b == blocks - 1 ? last_plan : plan;
    pack_winograd_weights(pb, p0, p1, u, [&](int64_t m, int64_t c, float k[4]) {
      const float* wc = w + (m * cin + b * block_cin + c / 4) * 16 + (c / 2 % 2) * 4 + c % 2;
      k[0] = wc[0], k[1] = wc[2], k[2] = wc[8], k[3] = wc[10];
    });
  };
  const bool pack_first = blocks == 1 && winograd::kPoints * plan.u_stride <= kSerialFloats;
  if (pack_first) pack(0, 0, plan.npanels);
  const StoreMap sm{y, cout * ho * wo, ho * wo, wo, 1, 0, 1, 0, bias};
  const int nt = threads_for(g.batch);

#pragma omp parallel num_threads(nt) if (nt > 1)
  {
    const int t = omp_get_thread_num(), tn = omp_get_num_threads();
    int64_t n0, n1;
    split_range(g.batch, tn, t, n0, n1);
    const WinogradBuffers buf = winograd_thread_buffers(plan, per_img, n1 - n0, s.img_stride);
    WinogradSource sp = s;
    sp.src = buf.src;
    for (int64_t b = 0; b < blocks; ++b) {
      if (!pack_first) pack_as_team(plan.npanels, b > 0, [&](int64_t p0, int64_t p1) { pack(b, p0, p1); });
      const int64_t ci0 = b * block_cin, channels = b == blocks - 1 ? last_cin : block_cin;
      for (int64_t c0 = n0; c0 < n1; c0 += buf.chunk) {
        const int64_t cn = std::min(buf.chunk, n1 - c0);
        for (int64_t n = 0; n < cn; ++n)
          copy_phase_split(ps, x + ((c0 + n) * cin + ci0) * g.in_h * g.in_w, channels, g.in_h, g.in_w,
                           buf.src + n * s.img_stride);
        winograd_chunk<KS>(b == blocks - 1 ? last_plan : plan, uk, u, sp, c0, cn, sm, buf, b > 0,
                           b == blocks - 1);
      }
    }
  }
}

// Input gradient: phase (rh, rw) of gx is a 2x2 correlation of the zero-padded output grad (C = Cout
// channels) with the kernel taps of that phase, ordered by their offset into the output grad.
template <class KS>
void conv2d_backward_input_winograd(const Conv2dGeometry& g, const float* gy, const float* w, float* gx) {
  const int64_t ho = g.out_h(), wo = g.out_w(), cin = g.in_channels, cout = g.out_channels;
  int64_t* table = thread_workspace(WorkspaceSlot::tables)
                       .get<int64_t>(DimPhases::table_size(2, 4) + DimPhases::table_size(2, 4));
  const DimPhases dh = make_dim_phases(g.in_h, ho, 4, 2, g.pad_h, 1, table);
  const DimPhases dw = make_dim_phases(g.in_w, wo, 4, 2, g.pad_w, 1, table + DimPhases::table_size(2, 4));
  // Per phase r of a dimension: its two taps by increasing offset, and the first padded row it reads.
  int64_t tap_h[2][2], tap_w[2][2], row0[2], col0[2];
  const auto order = [](const DimPhases& d, int64_t r, int64_t taps[2], int64_t& first) {
    const bool swap = d.off[r * 4 + 1] < d.off[r * 4];
    taps[0] = d.tap[r * 4 + (swap ? 1 : 0)], taps[1] = d.tap[r * 4 + (swap ? 0 : 1)];
    first = std::min(d.off[r * 4], d.off[r * 4 + 1]) + d.pad_lo;
  };
  for (int64_t r = 0; r < 2; ++r) order(dh, r, tap_h[r], row0[r]), order(dw, r, tap_w[r], col0[r]);
  const int64_t hp = dh.padded, wp = dw.padded, img_floats = cout * hp * wp;
  WinogradSource s;
  s.img_stride = img_floats, s.ch_stride = hp * wp, s.row_stride = wp;
  s.tiles_h = g.in_h / 8, s.tiles_w = g.in_w / 8;
  const int64_t per_img = s.tiles_h * s.tiles_w;
  const WinogradPlan plan = make_winograd_plan<KS>(cin, cout, g.batch * per_img);
  const MicroKernel uk = micro_kernel_for<KS>(plan.tile, AMode::packed, false);
  const int64_t u_phase = winograd::kPoints * plan.u_stride;
  const int64_t phases_per_pass = 4 * u_phase <= kWinogradMaxWeightFloats ? 4 : 1;
  float* u = thread_workspace(WorkspaceSlot::packed_weights).get<float>(phases_per_pass * u_phase);
  // Transformed weights of phases [ph0, ph0 + phases_per_pass), row panels [p0, p1).
  const auto pack = [&](int64_t ph0, int64_t p0, int64_t p1) {
    for (int64_t ph = ph0; ph < ph0 + phases_per_pass; ++ph) {
      const int64_t rh = ph / 2, rw = ph % 2;
      pack_winograd_weights(plan, p0, p1, u + (ph - ph0) * u_phase, [&](int64_t ci, int64_t co, float k[4]) {
        const float* wc = w + (co * cin + ci) * 16;
        for (int a = 0; a < 2; ++a)
          for (int b = 0; b < 2; ++b) k[2 * a + b] = wc[tap_h[rh][a] * 4 + tap_w[rw][b]];
      });
    }
  };
  const bool pack_first = phases_per_pass == 4 && 4 * u_phase <= kSerialFloats;
  if (pack_first) pack(0, 0, plan.npanels);
  const int nt = threads_for(g.batch);

#pragma omp parallel num_threads(nt) if (nt > 1)
  {
    const int t = omp_get_thread_num(), tn = omp_get_num_threads();
    int64_t n0, n1;
    split_range(g.batch, tn, t, n0, n1);
    const WinogradBuffers buf = winograd_thread_buffers(plan, per_img, n1 - n0, img_floats);
    for (int64_t ph0 = 0; ph0 < 4; ph0 += phases_per_pass) {
      if (!pack_first)
        pack_as_team(plan.npanels, ph0 > 0, [&](int64_t p0, int64_t p1) { pack(ph0, p0, p1); });
      for (int64_t c0 = n0; c0 < n1; c0 += buf.chunk) {
        const int64_t cn = std::min(buf.chunk, n1 - c0);
        for (int64_t n = 0; n < cn; ++n)
          copy_into_padded(gy + (c0 + n) * cout * ho * wo, cout, ho, wo, hp, wp, dh.pad_lo, dw.pad_lo,
                           buf.src + n * img_floats);
        for (int64_t ph = ph0; ph < ph0 + phases_per_pass; ++ph) {
          const int64_t rh = ph / 2, rw = ph % 2;
          WinogradSource sp = s;
          sp.src = buf.src, sp.row0 = row0[rh], sp.col0 = col0[rw];
          const StoreMap sm{gx, cin * g.in_h * g.in_w, g.in_h * g.in_w, g.in_w, 2, rh, 2, rw, nullptr};
          winograd_chunk<KS>(plan, uk, u + (ph - ph0) * u_phase, sp, c0, cn, sm, buf);
        }
      }
    }
  }
}

// Weight gradient. With the forward's phase planes (C = 4*Cin channels) and V = B^T d B of their 5x5 input
// tiles, the gradient of the transformed weights is dU[xi] = sum over tiles of Z[xi] V[xi]^T, where
// Z = A gy A^T of the output gradient's 4x4 tiles: 25 GEMMs Cout x C reduced over tiles, then each kernel's
// gradient is G^T dU G. The channels are split into blocks, each owned by one thread, which reduces it over
// every tile: no per-thread copies of the gradient to add up, and a block's dU stays bounded. When Z of the
// whole batch fits kWinogradMaxWeightFloats, the team transforms it once and every block reads it; otherwise
// each block goes through the batch in chunks, transforming each chunk's Z itself.
constexpr int64_t kWinogradGradientFloats = int64_t(1) << 20;  // a block's dU: 4 MB
constexpr int64_t kWinogradChunkFloats = int64_t(1) << 19;     // a chunk's transformed output gradient

// Floats between the planes of the transformed output gradient Z of `images` images, and in all of Z.
inline int64_t winograd_gradient_stride(const Conv2dGeometry& g, int64_t images) {
  const int64_t tiles = images * (g.out_h() / 4) * (g.out_w() / 4);
  return product_stride(g.out_channels * round_up(tiles, winograd::kLanes));
}
inline int64_t winograd_gradient_floats(const Conv2dGeometry& g, int64_t images) {
  return winograd::kPoints * winograd_gradient_stride(g, images);
}

// Images per chunk of the weight gradient: the whole batch when its Z is shared by the team, else as many
// as kWinogradChunkFloats holds.
inline int64_t winograd_gradient_chunk(const Conv2dGeometry& g) {
  if (winograd_gradient_floats(g, g.batch) <= kWinogradMaxWeightFloats) return g.batch;
  const int64_t per_img = (g.out_h() / 4) * (g.out_w() / 4);
  return std::clamp<int64_t>(kWinogradChunkFloats / (winograd::kPoints * g.out_channels * per_img), 1,
                             g.batch);
}

template <class KS>
void conv2d_backward_weight_winograd(const Conv2dGeometry& g, const float* x, const float* gy, float* gw,
                                     float* gbias) {
  using winograd::kLanes;
  using winograd::kPoints;
  const int64_t ho = g.out_h(), wo = g.out_w(), cin = g.in_channels, cout = g.out_channels, C = 4 * cin;
  const int64_t x_img = cin * g.in_h * g.in_w, gy_img = cout * ho * wo;
  const int64_t tiles_w = wo / 4, per_img = ho / 4 * tiles_w;
  const PhaseSplit ps = phase_split_for(g);
  // Blocks of channels: as many per thread, each dU within its budget and at least 32 channels wide.
  const int max_threads = get_num_threads();
  const int64_t needed = ceil_div(kPoints * cout * C, kWinogradGradientFloats);
  const int64_t blocks = std::clamp<int64_t>(round_up(needed, max_threads), 1, std::max<int64_t>(1, C / 32));
  const int64_t cb = round_up(ceil_div(C, blocks), 8), nblocks = ceil_div(C, cb);
  const TileShape tile = choose_tile<KS>(cout, cb);
  const int64_t mr = tile.mr, nr = int64_t(tile.nv) * KS::kVec;
  const int64_t ldu = round_up(cb, nr), groups = ldu / nr, du_xi = product_stride(cout * ldu);
  const int64_t kc_max = l1_panel_depth(nr);
  const int64_t chunk = winograd_gradient_chunk(g);
  const bool shared_z = chunk == g.batch;
  const int64_t kmax = chunk * per_img, ldk = round_up(kmax, kLanes),
                z_xi = winograd_gradient_stride(g, chunk);
  const int64_t block_img = cb / 4 * ps.planes_per_channel() * ps.plane_size();
  const MicroKernel uk = micro_kernel_for<KS>(tile, AMode::rows, false);
  if (gbias)
    for (int64_t co = 0; co < cout; ++co) {
      float s = 0;
      for (int64_t n = 0; n < g.batch; ++n)
        for (int64_t q = 0; q < ho * wo; ++q) s += gy[n * gy_img + co * ho * wo + q];
      gbias[co] = s;
    }
  float* z_batch =
      shared_z ? thread_workspace(WorkspaceSlot::packed_weights).get<float>(kPoints * z_xi) : nullptr;
  const int nt = threads_for(nblocks);

#pragma omp parallel num_threads(nt) if (nt > 1)
  {
    const int t = omp_get_thread_num(), tn = omp_get_num_threads();
    float* z =
        shared_z ? z_batch : thread_workspace(WorkspaceSlot::packed_weights).get<float>(kPoints * z_xi);
    float* v = thread_workspace(WorkspaceSlot::packed_panel).get<float>(kPoints * product_stride(ldu * kmax));
    float* du = thread_workspace(WorkspaceSlot::partial_sums).get<float>(kPoints * du_xi);
    int64_t* off = thread_workspace(WorkspaceSlot::tables).get<int64_t>(2 * kmax);
    const int64_t src_floats = block_img + winograd::kInputSlack;
    float* src = thread_workspace(WorkspaceSlot::source).get<float>(src_floats);
    std::fill(src, src + src_floats, 0.0f);  // the padding, for every image
    // Tile offsets of the chunk from image n0, k tiles: its input tiles in their image's src, then its
    // output-gradient tiles in gy.
    const auto tile_offsets = [&](int64_t n0, int64_t k) {
      for (int64_t tt = 0; tt < k; ++tt) {
        const int64_t n = tt / per_img, ti = tt % per_img / tiles_w, tj = tt % tiles_w;
        off[tt] = 4 * ti * ps.ws + 4 * tj;
        off[kmax + tt] = (n0 + n) * gy_img + 4 * ti * wo + 4 * tj;
      }
    };
    // Z[xi][co][tile] (row-major A) of output channels [co0, co1), 8 tiles of one channel per transform.
    // Lanes past the chunk repeat its last tile; the GEMMs never read them.
    const auto transform_gradient = [&](int64_t k, int64_t co0, int64_t co1) {
      for (int64_t tt = 0; tt < k; tt += kLanes) {
        const float* ptr[kLanes];
        for (int l = 0; l < kLanes; ++l) ptr[l] = gy + off[kmax + std::min(tt + l, k - 1)] + co0 * ho * wo;
        for (int64_t co = co0; co < co1; ++co) {
          winograd_gradient_tiles<KS>(ptr, wo, z + co * ldk + tt, z_xi);
          for (int l = 0; l < kLanes; ++l) ptr[l] += ho * wo;
        }
      }
    };
    if (shared_z) {
      int64_t co0, co1;
      split_range(cout, tn, t, co0, co1);
      tile_offsets(0, kmax);
      transform_gradient(kmax, co0, co1);
#pragma omp barrier
    }
    int64_t b0, b1;
    split_range(nblocks, tn, t, b0, b1);
    for (int64_t blk = b0; blk < b1; ++blk) {
      const int64_t c0 = blk * cb, cn = std::min(cb, C - c0);
      for (int64_t n0 = 0; n0 < g.batch; n0 += chunk) {
        const int64_t images = std::min(chunk, g.batch - n0), k = images * per_img;
        if (!shared_z) {
          tile_offsets(n0, k);
          transform_gradient(k, 0, cout);
        }
        // V[xi][group][tile][nr], 8 channels of one tile per transform, image by image from its phase planes,
        // group by group so that each product's rows are written in order. Lanes past the block repeat its
        // last channel; their columns of dU are never read.
        const int64_t v_xi = product_stride(groups * k * nr);
        for (int64_t n = 0; n < images; ++n) {
          copy_phase_split(ps, x + (n0 + n) * x_img + c0 / 4 * g.in_h * g.in_w, cn / 4, g.in_h, g.in_w, src);
          for (int64_t jg = 0; jg < groups; ++jg)
            for (int64_t tt = n * per_img; tt < (n + 1) * per_img; ++tt)
              for (int64_t c = jg * nr; c < (jg + 1) * nr; c += kLanes) {
                const float* ptr[kLanes];
                for (int l = 0; l < kLanes; ++l)
                  ptr[l] = src + std::min(c + l, cn - 1) * ps.plane_size() + off[tt];
                winograd_input_tiles<KS>(ptr, ps.ws, v + (jg * k + tt) * nr + c % nr, v_xi);
              }
        }
        for (int xi = 0; xi < kPoints; ++xi)
          for (int64_t pk = 0; pk < k; pk += kc_max) {
            const int64_t kc = std::min(kc_max, k - pk);
            for (int64_t jg = 0; jg < groups; ++jg)
              for (int64_t ir = 0; ir < cout; ir += mr)
                uk(kc, z + xi * z_xi + ir * ldk + pk, ldk, v + xi * v_xi + (jg * k + pk) * nr, nullptr,
                   du + xi * du_xi + ir * ldu + jg * nr, ldu, int(std::min(mr, cout - ir)), n0 > 0 || pk > 0,
                   nullptr);
          }
      }
      // gw[co][ci][2a + ph][2b + pw] from channel c = (ci, ph, pw)'s G^T dU G, 8 channels at a time (the
      // lanes past the block read columns of dU that are not stored).
      for (int64_t co = 0; co < cout; ++co)
        for (int64_t c = 0; c < cn; c += kLanes) {
          float k[4][kLanes];
          winograd::weight_gradient_tiles(du + co * ldu + c, du_xi, k);
          for (int l = 0; l < kLanes && c + l < cn; ++l) {
            const int64_t cc = c0 + c + l, ph = cc / 2 % 2, pw = cc % 2;
            float* wc = gw + (co * cin + cc / 4) * 16 + ph * 4 + pw;
            wc[0] = k[0][l], wc[2] = k[1][l], wc[8] = k[2][l], wc[10] = k[3][l];
          }
        }
    }
  }
}

}  // namespace sumi::kernels::gemm
