#pragma once
// AVX2 + FMA micro-kernels for the implicit-GEMM convolutions of conv_gemm.hpp.
//
// A register tile holds MR x NV accumulators of 8 floats. With 16 ymm registers, 12 accumulators (6x2,
// 4x3, 3x4, 2x6) leave room for either the NV vectors of B or the MR broadcasts of A, plus one, and 12
// independent FMA chains cover the FMA latency (4 cycles x 2 pipes needs at least 8). Each step over k
// loads NV vectors of B and broadcasts MR values of A. Compiled with a function-level target attribute, so a
// generic x86-64 build carries these kernels and conv.hpp calls them only on CPUs with AVX2 and FMA.
#include "sumi/kernels/conv_algorithms.hpp"
#include "sumi/kernels/cpu_features.hpp"

#if SUMI_X86_KERNELS
#include <immintrin.h>

#define SUMI_TARGET_AVX2 __attribute__((target("avx2,fma")))

namespace sumi::kernels::avx2 {

template <int MR, int NV, gemm::AMode AM, bool DIRECT_B>
SUMI_TARGET_AVX2 void micro_kernel(int64_t kc, const float* a, int64_t lda, const float* b,
                                   const int64_t* boff, float* c, int64_t ldc, int rows, bool accumulate,
                                   const float* bias) {
  constexpr int NR = NV * 8;
  __m256 acc[MR][NV];
#pragma GCC unroll 16
  for (int r = 0; r < MR; ++r) {
    const __m256 init = bias && r < rows ? _mm256_set1_ps(bias[r]) : _mm256_setzero_ps();
#pragma GCC unroll 16
    for (int v = 0; v < NV; ++v)
      acc[r][v] = accumulate && r < rows ? _mm256_loadu_ps(c + r * ldc + v * 8) : init;
  }
  // Row offsets into a row-major A; rows past `rows` (a partial tile) reread the last valid row, so the
  // kernel never reads outside A (their results are discarded).
  int64_t a_row[MR];
  for (int r = 0; r < MR; ++r) a_row[r] = int64_t(r < rows ? r : rows - 1) * lda;
  // Keep whichever operand needs fewer registers next to the MR x NV accumulators: NV B vectors with one
  // broadcast at a time (4x3, 6x2), or MR broadcasts with one B vector at a time (3x4, 2x6). Holding both
  // would need more than 16 registers, and the spilled accumulator's store-to-load round trip every step
  // would halve the kernel's speed.
  constexpr bool kBInRegisters = NV + 1 + MR * NV <= 16 || MR + 1 + MR * NV > 16;
  for (int64_t k = 0; k < kc; ++k) {
    const float* bk = DIRECT_B ? b + boff[k] : b + k * NR;
    const float* ak = AM == gemm::AMode::packed ? a + k * MR : a + k;
    if constexpr (kBInRegisters) {
      __m256 bv[NV];
#pragma GCC unroll 16
      for (int v = 0; v < NV; ++v)
        bv[v] = DIRECT_B ? _mm256_loadu_ps(bk + v * 8) : _mm256_load_ps(bk + v * 8);
#pragma GCC unroll 16
      for (int r = 0; r < MR; ++r) {
        const __m256 av = _mm256_broadcast_ss(AM == gemm::AMode::packed ? ak + r : ak + a_row[r]);
#pragma GCC unroll 16
        for (int v = 0; v < NV; ++v) acc[r][v] = _mm256_fmadd_ps(av, bv[v], acc[r][v]);
      }
    } else {
      __m256 av[MR];
#pragma GCC unroll 16
      for (int r = 0; r < MR; ++r)
        av[r] = _mm256_broadcast_ss(AM == gemm::AMode::packed ? ak + r : ak + a_row[r]);
#pragma GCC unroll 16
      for (int v = 0; v < NV; ++v) {
        const __m256 bv = DIRECT_B ? _mm256_loadu_ps(bk + v * 8) : _mm256_load_ps(bk + v * 8);
#pragma GCC unroll 16
        for (int r = 0; r < MR; ++r) acc[r][v] = _mm256_fmadd_ps(av[r], bv, acc[r][v]);
      }
    }
  }
  if (rows >= MR) {
#pragma GCC unroll 16
    for (int r = 0; r < MR; ++r)
#pragma GCC unroll 16
      for (int v = 0; v < NV; ++v) _mm256_storeu_ps(c + r * ldc + v * 8, acc[r][v]);
  } else {
#pragma GCC unroll 16
    for (int r = 0; r < MR; ++r)
      if (r < rows)
#pragma GCC unroll 16
        for (int v = 0; v < NV; ++v) _mm256_storeu_ps(c + r * ldc + v * 8, acc[r][v]);
  }
}

// Sum of the 8 lanes of each of 4 vectors, as 4 floats.
SUMI_TARGET_AVX2 inline __m128 hsum4(__m256 a, __m256 b, __m256 c, __m256 d) {
  const __m256 ab = _mm256_hadd_ps(a, b), cd = _mm256_hadd_ps(c, d);  // a01 a23 b01 b23 | a45 a67 b45 b67 ...
  const __m256 abcd = _mm256_hadd_ps(ab, cd);                         // a0123 b0123 c0123 d0123 | a4567 ...
  return _mm_add_ps(_mm256_castps256_ps128(abcd), _mm256_extractf128_ps(abcd, 1));
}

// The DotKernel (conv_gemm.hpp) for MR x NR tiles: dot products vectorized along t, for weight gradients with
// few channels, where neither operand is worth transposing. Rows / columns past rows / cols repeat the last
// valid one and are not stored.
template <int MR, int NR>
SUMI_TARGET_AVX2 void dot_kernel(const gemm::DotRuns& runs, const float* a, int64_t lda, const int64_t* aoff,
                                 const float* b, int64_t ldb, const int64_t* boff, float* c, int64_t ldc,
                                 int rows, int cols, bool accumulate) {
  static_assert(NR % 4 == 0, "columns are reduced in groups of 4");
  const float* ar[MR];
  const float* br[NR];
#pragma GCC unroll 16
  for (int r = 0; r < MR; ++r) {
    const int rr = r < rows ? r : rows - 1;
    ar[r] = a + (aoff ? aoff[rr] : rr * lda);
  }
#pragma GCC unroll 16
  for (int j = 0; j < NR; ++j) {
    const int jj = j < cols ? j : cols - 1;
    br[j] = b + (boff ? boff[jj] : jj * ldb);
  }
  __m256 acc[MR][NR];
#pragma GCC unroll 16
  for (int r = 0; r < MR; ++r)
#pragma GCC unroll 16
    for (int j = 0; j < NR; ++j) acc[r][j] = _mm256_setzero_ps();
  // A vectors stay in registers, each B vector is loaded once and used MR times: MR*NR + MR + 1 registers.
  const int64_t len = runs.len;
  // the tail: lanes past len read nothing and add zero
  alignas(32) static constexpr int32_t ramp[16] = {-1, -1, -1, -1, -1, -1, -1, -1, 0, 0, 0, 0, 0, 0, 0, 0};
  const __m256i mask = _mm256_loadu_si256(reinterpret_cast<const __m256i*>(ramp + 8 - (len & 7)));
  for (int64_t s = 0; s < runs.count; ++s) {
    int64_t t = 0;
    for (; t + 8 <= len; t += 8) {
      __m256 av[MR];
#pragma GCC unroll 16
      for (int r = 0; r < MR; ++r) av[r] = _mm256_loadu_ps(ar[r] + t);
#pragma GCC unroll 16
      for (int j = 0; j < NR; ++j) {
        const __m256 bv = _mm256_loadu_ps(br[j] + t);
#pragma GCC unroll 16
        for (int r = 0; r < MR; ++r) acc[r][j] = _mm256_fmadd_ps(av[r], bv, acc[r][j]);
      }
    }
    if (t < len) {
      __m256 av[MR];
#pragma GCC unroll 16
      for (int r = 0; r < MR; ++r) av[r] = _mm256_maskload_ps(ar[r] + t, mask);
#pragma GCC unroll 16
      for (int j = 0; j < NR; ++j) {
        const __m256 bv = _mm256_maskload_ps(br[j] + t, mask);
#pragma GCC unroll 16
        for (int r = 0; r < MR; ++r) acc[r][j] = _mm256_fmadd_ps(av[r], bv, acc[r][j]);
      }
    }
#pragma GCC unroll 16
    for (int r = 0; r < MR; ++r) ar[r] += runs.a_step;
#pragma GCC unroll 16
    for (int j = 0; j < NR; ++j) br[j] += runs.b_step;
  }
#pragma GCC unroll 16
  for (int r = 0; r < MR; ++r) {
    if (r >= rows) break;
    alignas(16) float sums[NR];
#pragma GCC unroll 16
    for (int j = 0; j + 4 <= NR; j += 4)
      _mm_store_ps(sums + j, hsum4(acc[r][j], acc[r][j + 1], acc[r][j + 2], acc[r][j + 3]));
    for (int j = 0; j < cols; ++j) c[r * ldc + j] = accumulate ? c[r * ldc + j] + sums[j] : sums[j];
  }
}

// Transposes 8 rows of 8 floats in place: r[i][j] -> r[j][i].
SUMI_TARGET_AVX2 inline void transpose8x8(__m256 r[8]) {
  const __m256 t0 = _mm256_unpacklo_ps(r[0], r[1]), t1 = _mm256_unpackhi_ps(r[0], r[1]);
  const __m256 t2 = _mm256_unpacklo_ps(r[2], r[3]), t3 = _mm256_unpackhi_ps(r[2], r[3]);
  const __m256 t4 = _mm256_unpacklo_ps(r[4], r[5]), t5 = _mm256_unpackhi_ps(r[4], r[5]);
  const __m256 t6 = _mm256_unpacklo_ps(r[6], r[7]), t7 = _mm256_unpackhi_ps(r[6], r[7]);
  const __m256 u0 = _mm256_shuffle_ps(t0, t2, 0x44), u1 = _mm256_shuffle_ps(t0, t2, 0xEE);
  const __m256 u2 = _mm256_shuffle_ps(t1, t3, 0x44), u3 = _mm256_shuffle_ps(t1, t3, 0xEE);
  const __m256 u4 = _mm256_shuffle_ps(t4, t6, 0x44), u5 = _mm256_shuffle_ps(t4, t6, 0xEE);
  const __m256 u6 = _mm256_shuffle_ps(t5, t7, 0x44), u7 = _mm256_shuffle_ps(t5, t7, 0xEE);
  r[0] = _mm256_permute2f128_ps(u0, u4, 0x20), r[1] = _mm256_permute2f128_ps(u1, u5, 0x20);
  r[2] = _mm256_permute2f128_ps(u2, u6, 0x20), r[3] = _mm256_permute2f128_ps(u3, u7, 0x20);
  r[4] = _mm256_permute2f128_ps(u0, u4, 0x31), r[5] = _mm256_permute2f128_ps(u1, u5, 0x31);
  r[6] = _mm256_permute2f128_ps(u2, u6, 0x31), r[7] = _mm256_permute2f128_ps(u3, u7, 0x31);
}

// Images into vector lanes (conv_lanes.hpp): dst[pixel[v] * lanes + l] = src[l * img_stride + v] for v < n,
// l < count, and zero for lanes count .. lanes-1; pixel null means pixel[v] = v. lanes is a multiple of 8.
// Blocks of 8 images x 8 pixels go through an 8x8 register transpose; the table lets the same pass place
// each pixel straight into padded or stride-phase-split planes.
SUMI_TARGET_AVX2 inline void interleave_lanes(const float* src, int64_t img_stride, int64_t count, int64_t n,
                                              const int64_t* pixel, float* dst, int64_t lanes) {
  int64_t v = 0;
  for (; v + 8 <= n; v += 8) {
    // The images' rows are up to 16 concurrent streams, more than the hardware prefetcher follows: each is
    // fetched 4 lines ahead, once per line (a whole step of the autoencoder took about 5% less).
    if ((v & 15) == 0)
      for (int64_t l = 0; l < count; ++l)
        _mm_prefetch(reinterpret_cast<const char*>(src + l * img_stride + v + 64), _MM_HINT_T0);
    float* d[8];
    for (int i = 0; i < 8; ++i) d[i] = dst + (pixel ? pixel[v + i] : v + i) * lanes;
    for (int64_t l0 = 0; l0 < lanes; l0 += 8) {
      __m256 r[8];
      for (int i = 0; i < 8; ++i)
        r[i] = l0 + i < count ? _mm256_loadu_ps(src + (l0 + i) * img_stride + v) : _mm256_setzero_ps();
      transpose8x8(r);
      for (int i = 0; i < 8; ++i) _mm256_storeu_ps(d[i] + l0, r[i]);
    }
  }
  for (; v < n; ++v) {
    float* d = dst + (pixel ? pixel[v] : v) * lanes;
    for (int64_t l = 0; l < count; ++l) d[l] = src[l * img_stride + v];
    for (int64_t l = count; l < lanes; ++l) d[l] = 0.0f;
  }
}

// Lanes back to images: dst[l * img_stride + v] = f(src[pixel[v] * lanes + l]) for v < n, l < count, with
// f(v) = v + add, then relu (NaN and -0 pass, as in the relu op) when relu (the output's bias and activation
// in the same pass); pixel null means pixel[v] = v. The table lets the pass gather each pixel straight from a
// micro-kernel's result block (a widened grid, or the stride phases of an input gradient).
SUMI_TARGET_AVX2 inline void deinterleave_lanes(const float* src, int64_t count, int64_t n, float* dst,
                                                int64_t img_stride, const int64_t* pixel, int64_t lanes,
                                                float add, bool relu) {
  const __m256 addv = _mm256_set1_ps(add), zero = _mm256_setzero_ps();
  const bool map = add != 0.0f || relu;
  int64_t v = 0;
  for (; v + 8 <= n; v += 8) {
    if ((v & 15) == 0)  // the output rows too, for writing (see interleave_lanes)
      for (int64_t l = 0; l < count; ++l) __builtin_prefetch(dst + l * img_stride + v + 64, 1, 3);
    const float* s[8];
    for (int i = 0; i < 8; ++i) s[i] = src + (pixel ? pixel[v + i] : v + i) * lanes;
    for (int64_t l0 = 0; l0 < count; l0 += 8) {
      __m256 r[8];
      for (int i = 0; i < 8; ++i) r[i] = _mm256_loadu_ps(s[i] + l0);
      transpose8x8(r);
      if (map)
        for (int i = 0; i < 8; ++i) {
          r[i] = _mm256_add_ps(r[i], addv);
          // max returns its second operand when either is NaN or both are zeros: NaN and -0 pass, as in
          // the relu op
          if (relu) r[i] = _mm256_max_ps(zero, r[i]);
        }
      for (int i = 0; i < 8 && l0 + i < count; ++i) _mm256_storeu_ps(dst + (l0 + i) * img_stride + v, r[i]);
    }
  }
  for (; v < n; ++v) {
    const float* s = src + (pixel ? pixel[v] : v) * lanes;
    for (int64_t l = 0; l < count; ++l) {
      float x = s[l];
      if (map) x = conv_epilogue_value(x, add, relu);
      dst[l * img_stride + v] = x;
    }
  }
}

// o = B^T d over 5 elements, B^T = [2 -1 -2 1 0; 0 2 1 -1 0; 0 -2 3 -1 0; 0 -1 0 1 0; 0 2 -1 -2 1].
SUMI_TARGET_AVX2 inline void winograd_b_transpose(const __m256* d, __m256* o) {
  const __m256 two = _mm256_set1_ps(2.0f), three = _mm256_set1_ps(3.0f);
  o[0] = _mm256_fmadd_ps(two, _mm256_sub_ps(d[0], d[2]), _mm256_sub_ps(d[3], d[1]));
  o[1] = _mm256_fmadd_ps(two, d[1], _mm256_sub_ps(d[2], d[3]));
  o[2] = _mm256_fmsub_ps(three, d[2], _mm256_fmadd_ps(two, d[1], d[3]));
  o[3] = _mm256_sub_ps(d[3], d[1]);
  o[4] = _mm256_fmadd_ps(two, _mm256_sub_ps(d[1], d[3]), _mm256_sub_ps(d[4], d[2]));
}

// Winograd input transform (conv_winograd.hpp) for 8 tiles: each tile's rows are loaded whole (8 floats, 5
// used) and transposed, so that the arithmetic runs with one tile per lane.
SUMI_TARGET_AVX2 inline void winograd_input_tiles(const float* const* p, int64_t row_stride, float* v,
                                                  int64_t v_stride) {
  __m256 t[5][5];  // t[s][i] = (B^T d)[i][s]
  {
    __m256 d[5][5];  // d[s][r]
    for (int r = 0; r < 5; ++r) {
      __m256 rows[8];
      for (int l = 0; l < 8; ++l) rows[l] = _mm256_loadu_ps(p[l] + r * row_stride);
      transpose8x8(rows);
      for (int s = 0; s < 5; ++s) d[s][r] = rows[s];
    }
    for (int s = 0; s < 5; ++s) winograd_b_transpose(d[s], t[s]);
  }
  for (int i = 0; i < 5; ++i) {
    const __m256 row[5] = {t[0][i], t[1][i], t[2][i], t[3][i], t[4][i]};
    __m256 o[5];
    winograd_b_transpose(row, o);
    for (int j = 0; j < 5; ++j) _mm256_storeu_ps(v + (5 * i + j) * v_stride, o[j]);
  }
}

// z = A d over 4 elements into 5, A = [1 0 0 0; 1 1 1 1; 1 -1 1 -1; 1 2 4 8; 0 0 0 1].
SUMI_TARGET_AVX2 inline void winograd_a_gradient(const __m256* d, __m256* z) {
  const __m256 sum02 = _mm256_add_ps(d[0], d[2]), sum13 = _mm256_add_ps(d[1], d[3]);
  z[0] = d[0];
  z[1] = _mm256_add_ps(sum02, sum13);
  z[2] = _mm256_sub_ps(sum02, sum13);
  z[3] = _mm256_fmadd_ps(
      _mm256_set1_ps(8.0f), d[3],
      _mm256_fmadd_ps(_mm256_set1_ps(4.0f), d[2], _mm256_fmadd_ps(_mm256_set1_ps(2.0f), d[1], d[0])));
  z[4] = d[3];
}

// Winograd output-gradient transform (conv_winograd.hpp) for 8 tiles: each tile's 4-float rows are loaded
// and transposed 4x4 in both halves, so that the arithmetic runs with one tile per lane.
SUMI_TARGET_AVX2 inline void winograd_gradient_tiles(const float* const* p, int64_t row_stride, float* z,
                                                     int64_t z_stride) {
  __m256 t[4][5];  // t[s][i] = (A gy)[i][s]
  {
    __m256 d[4][4];  // d[s][r]
    for (int r = 0; r < 4; ++r) {
      __m256 x[4];  // x[l] = row r of tiles l (low half) and l + 4 (high half)
      for (int l = 0; l < 4; ++l)
        x[l] = _mm256_insertf128_ps(_mm256_castps128_ps256(_mm_loadu_ps(p[l] + r * row_stride)),
                                    _mm_loadu_ps(p[l + 4] + r * row_stride), 1);
      const __m256 lo01 = _mm256_unpacklo_ps(x[0], x[1]), lo23 = _mm256_unpacklo_ps(x[2], x[3]);
      const __m256 hi01 = _mm256_unpackhi_ps(x[0], x[1]), hi23 = _mm256_unpackhi_ps(x[2], x[3]);
      d[0][r] = _mm256_shuffle_ps(lo01, lo23, 0x44);
      d[1][r] = _mm256_shuffle_ps(lo01, lo23, 0xEE);
      d[2][r] = _mm256_shuffle_ps(hi01, hi23, 0x44);
      d[3][r] = _mm256_shuffle_ps(hi01, hi23, 0xEE);
    }
    for (int s = 0; s < 4; ++s) winograd_a_gradient(d[s], t[s]);
  }
  for (int i = 0; i < 5; ++i) {
    const __m256 row[4] = {t[0][i], t[1][i], t[2][i], t[3][i]};
    __m256 o[5];
    winograd_a_gradient(row, o);
    for (int j = 0; j < 5; ++j) _mm256_storeu_ps(z + (5 * i + j) * z_stride, o[j]);
  }
}

// Winograd output transform (conv_winograd.hpp) for 8 tiles and its store: computed with one tile per lane,
// then transposed so that each tile's rows are stored as 4-float vectors when they are contiguous, and as
// whole 8-column rows when they interleave with another column phase (col_step 2): phase 0 stores its values
// in both phases' columns, phase 1 blends its own into them.
SUMI_TARGET_AVX2 inline void winograd_store_tiles(const float* m, int64_t m_stride, float* const* dst,
                                                  int lanes, int64_t row_step, int64_t col_step,
                                                  int col_phase, float bias) {
  const __m256 two = _mm256_set1_ps(2.0f), four = _mm256_set1_ps(4.0f), eight = _mm256_set1_ps(8.0f);
  __m256 t[4][5];  // A^T M: t[p][j]
  for (int j = 0; j < 5; ++j) {
    __m256 mx[5];
    for (int x = 0; x < 5; ++x) mx[x] = _mm256_loadu_ps(m + (5 * x + j) * m_stride);
    const __m256 sum12 = _mm256_add_ps(mx[1], mx[2]), dif12 = _mm256_sub_ps(mx[1], mx[2]);
    t[0][j] = _mm256_add_ps(_mm256_add_ps(mx[0], mx[3]), sum12);
    t[1][j] = _mm256_fmadd_ps(two, mx[3], dif12);
    t[2][j] = _mm256_fmadd_ps(four, mx[3], sum12);
    t[3][j] = _mm256_add_ps(_mm256_fmadd_ps(eight, mx[3], dif12), mx[4]);
  }
  const __m256 b = _mm256_set1_ps(bias);
  __m256 y[16];  // y[4p + q], then transposed: y[l] = lane l's outputs 0..7, y[8 + l] its outputs 8..15
  for (int p = 0; p < 4; ++p) {
    const __m256* r = t[p];
    const __m256 sum12 = _mm256_add_ps(r[1], r[2]), dif12 = _mm256_sub_ps(r[1], r[2]);
    y[4 * p] = _mm256_add_ps(_mm256_add_ps(r[0], r[3]), _mm256_add_ps(sum12, b));
    y[4 * p + 1] = _mm256_fmadd_ps(two, r[3], _mm256_add_ps(dif12, b));
    y[4 * p + 2] = _mm256_fmadd_ps(four, r[3], _mm256_add_ps(sum12, b));
    y[4 * p + 3] = _mm256_add_ps(_mm256_fmadd_ps(eight, r[3], dif12), _mm256_add_ps(r[4], b));
  }
  transpose8x8(y);
  transpose8x8(y + 8);
  if (col_step == 1) {
    for (int l = 0; l < lanes; ++l) {
      float* o = dst[l];
      _mm_storeu_ps(o, _mm256_castps256_ps128(y[l]));
      _mm_storeu_ps(o + row_step, _mm256_extractf128_ps(y[l], 1));
      _mm_storeu_ps(o + 2 * row_step, _mm256_castps256_ps128(y[8 + l]));
      _mm_storeu_ps(o + 3 * row_step, _mm256_extractf128_ps(y[8 + l], 1));
    }
  } else if (col_step == 2) {
    // Row a's 4 outputs, each twice: columns 2q and 2q + 1 of the tile's 8.
    const __m256i low = _mm256_setr_epi32(0, 0, 1, 1, 2, 2, 3, 3),
                  high = _mm256_setr_epi32(4, 4, 5, 5, 6, 6, 7, 7);
    for (int l = 0; l < lanes; ++l) {
      float* o = dst[l] - col_phase;
      const __m256 rows[4] = {_mm256_permutevar8x32_ps(y[l], low), _mm256_permutevar8x32_ps(y[l], high),
                              _mm256_permutevar8x32_ps(y[8 + l], low),
                              _mm256_permutevar8x32_ps(y[8 + l], high)};
      for (int a = 0; a < 4; ++a) {
        float* row = o + a * row_step;
        _mm256_storeu_ps(row, col_phase ? _mm256_blend_ps(_mm256_loadu_ps(row), rows[a], 0xAA) : rows[a]);
      }
    }
  } else {
    for (int l = 0; l < lanes; ++l) {
      alignas(32) float v[16];
      _mm256_store_ps(v, y[l]);
      _mm256_store_ps(v + 8, y[8 + l]);
      for (int a = 0; a < 4; ++a)
        for (int q = 0; q < 4; ++q) dst[l][a * row_step + q * col_step] = v[4 * a + q];
    }
  }
}

// The kernel set conv_gemm.hpp's drivers are instantiated with.
struct Kernels {
  static constexpr const char* kName = "avx2";
  static constexpr int kVec = 8;
  // Measured on Zen 5 (L1-resident operands, relative to 4x3 at ~95% of the FMA peak): 3x4 0.95, 6x2 0.9,
  // 5x2 0.85, 2x6 0.65, 1x8 0.5. Every broadcast and every B vector is a load, and loads, not FMAs, limit
  // the wide shapes (7 loads per 12 FMAs for 4x3 / 3x4, 8 for 6x2 / 2x6, 9 per 8 for 1x8).
  static constexpr gemm::TileShape kShapes[] = {{4, 3, 1.0}, {3, 4, 0.95}, {5, 2, 0.85},
                                                {6, 2, 0.9}, {2, 6, 0.65}, {1, 8, 0.5}};

  template <int MR, int NV, gemm::AMode AM, bool DIRECT_B>
  static constexpr gemm::MicroKernel kMicroKernel = &micro_kernel<MR, NV, AM, DIRECT_B>;

  static constexpr int kDotRows = 3, kDotCols = 4;
  static constexpr gemm::DotKernel kDot = &dot_kernel<kDotRows, kDotCols>;

  static void interleave(const float* src, int64_t img_stride, int64_t count, int64_t n, const int64_t* pixel,
                         float* dst) {
    interleave_lanes(src, img_stride, count, n, pixel, dst, kVec);
  }
  static void deinterleave(const float* src, int64_t count, int64_t n, float* dst, int64_t img_stride,
                           const int64_t* pixel, float add = 0.0f, bool relu = false) {
    deinterleave_lanes(src, count, n, dst, img_stride, pixel, kVec, add, relu);
  }

  SUMI_TARGET_AVX2 static void winograd_input(const float* const* p, int64_t row_stride, float* v,
                                              int64_t v_stride) {
    winograd_input_tiles(p, row_stride, v, v_stride);
  }
  SUMI_TARGET_AVX2 static void winograd_gradient(const float* const* p, int64_t row_stride, float* z,
                                                 int64_t z_stride) {
    winograd_gradient_tiles(p, row_stride, z, z_stride);
  }
  SUMI_TARGET_AVX2 static void winograd_store(const float* m, int64_t m_stride, float* const* dst, int lanes,
                                              int64_t row_step, int64_t col_step, int col_phase, float bias) {
    winograd_store_tiles(m, m_stride, dst, lanes, row_step, col_step, col_phase, bias);
  }
};

}  // namespace sumi::kernels::avx2

#endif  // SUMI_X86_KERNELS
