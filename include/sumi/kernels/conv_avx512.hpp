#pragma once
// AVX-512 micro-kernels for the implicit-GEMM convolutions of conv_gemm.hpp: the AVX2 kernels
// (conv_avx2.hpp) with 16-float zmm vectors.
//
// With 32 zmm registers a tile holds 24 accumulators (6x4, 8x3, 4x6, 12x2) plus its B vectors and a
// broadcast; 24 independent FMA chains cover the FMA latency with room to spare. As on AVX2, tiles are
// ranked by loads per FMA (every broadcast and every B vector is a load). Compiled with a function-level
// target attribute, so a generic x86-64 build carries these kernels and conv.hpp calls them only on CPUs
// with AVX-512 F/BW/VL/DQ.
#include "sumi/kernels/conv_algorithms.hpp"
#include "sumi/kernels/conv_avx2.hpp"
#include "sumi/kernels/cpu_features.hpp"

#if SUMI_X86_KERNELS
#include <immintrin.h>

#define SUMI_TARGET_AVX512 __attribute__((target("avx512f,avx512bw,avx512vl,avx512dq,fma")))

namespace sumi::kernels::avx512 {

template <int MR, int NV, gemm::AMode AM, bool DIRECT_B>
SUMI_TARGET_AVX512 void micro_kernel(int64_t kc, const float* a, int64_t lda, const float* b,
                                     const int64_t* boff, float* c, int64_t ldc, int rows, bool accumulate,
                                     const float* bias) {
  constexpr int NR = NV * 16;
  __m512 acc[MR][NV];
#pragma GCC unroll 16
  for (int r = 0; r < MR; ++r) {
    const __m512 init = bias && r < rows ? _mm512_set1_ps(bias[r]) : _mm512_setzero_ps();
#pragma GCC unroll 16
    for (int v = 0; v < NV; ++v)
      acc[r][v] = accumulate && r < rows ? _mm512_loadu_ps(c + r * ldc + v * 16) : init;
  }
  // Row offsets into a row-major A; rows past `rows` (a partial tile) reread the last valid row, so the
  // kernel never reads outside A (their results are discarded).
  int64_t a_row[MR];
  for (int r = 0; r < MR; ++r) a_row[r] = int64_t(r < rows ? r : rows - 1) * lda;
  for (int64_t k = 0; k < kc; ++k) {
    __m512 bv[NV];
    if constexpr (DIRECT_B) {
      const float* bk = b + boff[k];
#pragma GCC unroll 16
      for (int v = 0; v < NV; ++v) bv[v] = _mm512_loadu_ps(bk + v * 16);
    } else {
      const float* bk = b + k * NR;
#pragma GCC unroll 16
      for (int v = 0; v < NV; ++v) bv[v] = _mm512_load_ps(bk + v * 16);
    }
#pragma GCC unroll 16
    for (int r = 0; r < MR; ++r) {
      const __m512 av = _mm512_set1_ps(AM == gemm::AMode::packed ? a[k * MR + r] : a[a_row[r] + k]);
#pragma GCC unroll 16
      for (int v = 0; v < NV; ++v) acc[r][v] = _mm512_fmadd_ps(av, bv[v], acc[r][v]);
    }
  }
  if (rows >= MR) {
#pragma GCC unroll 16
    for (int r = 0; r < MR; ++r)
#pragma GCC unroll 16
      for (int v = 0; v < NV; ++v) _mm512_storeu_ps(c + r * ldc + v * 16, acc[r][v]);
  } else {
#pragma GCC unroll 16
    for (int r = 0; r < MR; ++r)
      if (r < rows)
#pragma GCC unroll 16
        for (int v = 0; v < NV; ++v) _mm512_storeu_ps(c + r * ldc + v * 16, acc[r][v]);
  }
}

// Sum of the 16 lanes of each of 4 vectors, as 4 floats (not _mm512_reduce_add_ps: GCC 12 warns inside it).
// 16 lanes -> 8: the upper 256 bits added to the lower. (The zero-masking extracts: GCC 12 warns about
// the undefined pass-through of the unmasked ones and of the 512 -> 256 casts.)
SUMI_TARGET_AVX512 inline __m256 fold(__m512 v) {
  return _mm256_add_ps(_mm512_maskz_extractf32x8_ps(0xFF, v, 0), _mm512_maskz_extractf32x8_ps(0xFF, v, 1));
}

SUMI_TARGET_AVX512 inline __m128 hsum4(__m512 a, __m512 b, __m512 c, __m512 d) {
  const __m256 ab = _mm256_hadd_ps(fold(a), fold(b)), cd = _mm256_hadd_ps(fold(c), fold(d));
  const __m256 abcd = _mm256_hadd_ps(ab, cd);
  return _mm_add_ps(_mm256_castps256_ps128(abcd), _mm256_extractf128_ps(abcd, 1));
}

// The DotKernel (conv_gemm.hpp) for MR x NR tiles: dot products vectorized along t (see the AVX2 version).
// Rows / columns past rows / cols repeat the last valid one and are not stored.
template <int MR, int NR>
SUMI_TARGET_AVX512 void dot_kernel(const gemm::DotRuns& runs, const float* a, int64_t lda,
                                   const int64_t* aoff, const float* b, int64_t ldb, const int64_t* boff,
                                   float* c, int64_t ldc, int rows, int cols, bool accumulate) {
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
  __m512 acc[MR][NR];
#pragma GCC unroll 16
  for (int r = 0; r < MR; ++r)
#pragma GCC unroll 16
    for (int j = 0; j < NR; ++j) acc[r][j] = _mm512_setzero_ps();
  const int64_t len = runs.len;
  const __mmask16 mask = __mmask16((1u << (len & 15)) - 1u);  // the tail: lanes past len read nothing
  for (int64_t s = 0; s < runs.count; ++s) {
    int64_t t = 0;
    for (; t + 16 <= len; t += 16) {
      __m512 av[MR];
#pragma GCC unroll 16
      for (int r = 0; r < MR; ++r) av[r] = _mm512_loadu_ps(ar[r] + t);
#pragma GCC unroll 16
      for (int j = 0; j < NR; ++j) {
        const __m512 bv = _mm512_loadu_ps(br[j] + t);
#pragma GCC unroll 16
        for (int r = 0; r < MR; ++r) acc[r][j] = _mm512_fmadd_ps(av[r], bv, acc[r][j]);
      }
    }
    if (t < len) {
      __m512 av[MR];
#pragma GCC unroll 16
      for (int r = 0; r < MR; ++r) av[r] = _mm512_maskz_loadu_ps(mask, ar[r] + t);
#pragma GCC unroll 16
      for (int j = 0; j < NR; ++j) {
        const __m512 bv = _mm512_maskz_loadu_ps(mask, br[j] + t);
#pragma GCC unroll 16
        for (int r = 0; r < MR; ++r) acc[r][j] = _mm512_fmadd_ps(av[r], bv, acc[r][j]);
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

// The kernel set conv_gemm.hpp's drivers are instantiated with.
struct Kernels {
  static constexpr const char* kName = "avx512";
  static constexpr int kVec = 16;
  // Ranked by loads per FMA, as measured for the AVX2 shapes: 10-11 loads per 24 FMAs for 6x4, 8x3, 4x6;
  // 14 for 12x2; 8 per 16 for 4x4; 10 per 16 for 2x8; 9 per 8 for 1x8.
  static constexpr gemm::TileShape kShapes[] = {{6, 4, 1.0}, {8, 3, 1.0}, {4, 6, 1.0}, {12, 2, 0.9},
                                                {4, 4, 0.9}, {2, 8, 0.8}, {1, 8, 0.45}};
  static constexpr int kDotRows = 4, kDotCols = 4;
  static constexpr gemm::DotKernel kDot = &dot_kernel<kDotRows, kDotCols>;

  // Images to lanes and back: the AVX2 8x8 transposes, per group of 8 of the 16 lanes.
  static void interleave(const float* src, int64_t img_stride, int64_t count, int64_t n, const int64_t* pixel,
                         float* dst) {
    avx2::interleave_lanes(src, img_stride, count, n, pixel, dst, kVec);
  }
  static void deinterleave(const float* src, int64_t count, int64_t n, float* dst, int64_t img_stride,
                           const int64_t* pixel, float add = 0.0f, bool relu = false) {
    avx2::deinterleave_lanes(src, count, n, dst, img_stride, pixel, kVec, add, relu);
  }

  template <int MR, int NV, gemm::AMode AM, bool DIRECT_B>
  static constexpr gemm::MicroKernel kMicroKernel = &micro_kernel<MR, NV, AM, DIRECT_B>;

  SUMI_TARGET_AVX512 static void winograd_input(const float* const* p, int64_t row_stride, float* v,
                                                int64_t v_stride) {
    gemm::winograd::input_tiles(p, row_stride, v, v_stride);
  }
  SUMI_TARGET_AVX512 static void winograd_gradient(const float* const* p, int64_t row_stride, float* z,
                                                   int64_t z_stride) {
    gemm::winograd::gradient_tiles(p, row_stride, z, z_stride);
  }
  SUMI_TARGET_AVX512 static void winograd_store(const float* m, int64_t m_stride, float* const* dst,
                                                int lanes, int64_t row_step, int64_t col_step, int col_phase,
                                                float bias) {
    gemm::winograd::store_tiles(m, m_stride, dst, lanes, row_step, col_step, col_phase, bias);
  }
};

}  // namespace sumi::kernels::avx512

#endif  // SUMI_X86_KERNELS
