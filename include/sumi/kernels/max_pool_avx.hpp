#pragma once
// AVX2 and AVX-512 kernels for one output row of a float max pool, over the output columns whose windows lie
// wholly inside the input: one vector lane per output column, the window's taps visited in the reference's
// order (row by row, left to right) with the reference's rule (a larger value or a NaN replaces the best),
// so values and argmax indices are bit-identical to max_pool2d_forward_reference. Branch-free: on random data
// the scalar loop's compare mispredicts about every other tap. Compiled with function-level target
// attributes; pooling.hpp calls them only on CPUs that have the ISA.
#include <algorithm>
#include <cstdint>

#include "sumi/kernels/cpu_features.hpp"

#if SUMI_X86_KERNELS
#include <immintrin.h>

namespace sumi::kernels {

// One output row's interior columns: output column j < count reads window start column first_column +
// j * stride and taps tap_offsets[t] (row * in_w + column within the window) from there; it writes y[j] and
// argmax[j] (the winning element's index in the plane).
struct MaxPoolRow {
  const float* plane;
  const int32_t* tap_offsets;
  int64_t taps;
  int64_t first_column;
  int64_t stride;
  int64_t count;
  float* y;
  int64_t* argmax;
};

namespace avx512 {

// Lanes [0, n) of x[i * stride], i < 16; other lanes 0. Stride 2 (the common pool) deinterleaves two loads;
// the masks keep every read inside the elements the lanes need.
[[gnu::target("avx512f,avx512bw,avx512vl,avx512dq")]] inline __m512 load_strided(const float* x,
                                                                                 int64_t stride, int n) {
  const __mmask16 lanes = __mmask16((1u << n) - 1);
  if (stride == 1) return _mm512_maskz_loadu_ps(lanes, x);
  if (stride == 2) {
    const uint32_t span = (n == 16 ? 0xFFFFFFFFu : (1u << (2 * n)) - 1) >> 1;  // elements 0 .. 2n - 2
    const __m512 low = _mm512_maskz_loadu_ps(__mmask16(span), x);
    const __m512 high = _mm512_maskz_loadu_ps(__mmask16(span >> 16), x + 16);
    const __m512i even = _mm512_setr_epi32(0, 2, 4, 6, 8, 10, 12, 14, 16, 18, 20, 22, 24, 26, 28, 30);
    return _mm512_permutex2var_ps(low, even, high);
  }
  const __m512i index =
      _mm512_mullo_epi32(_mm512_setr_epi32(0, 1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 11, 12, 13, 14, 15),
                         _mm512_set1_epi32(int32_t(stride)));
  return _mm512_mask_i32gather_ps(_mm512_setzero_ps(), lanes, index, x, 4);
}

[[gnu::target("avx512f,avx512bw,avx512vl,avx512dq")]] inline void max_pool_row(const MaxPoolRow& r) {
  const __m512i lane = _mm512_setr_epi32(0, 1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 11, 12, 13, 14, 15);
  for (int64_t j = 0; j < r.count; j += 16) {
    const int n = int(std::min<int64_t>(16, r.count - j));
    const int64_t column = r.first_column + j * r.stride;
    __m512 best = _mm512_set1_ps(-__builtin_inff());
    __m512i best_tap = _mm512_set1_epi32(r.tap_offsets[0]);
    for (int64_t t = 0; t < r.taps; ++t) {
      const __m512 v = load_strided(r.plane + r.tap_offsets[t] + column, r.stride, n);
      const __mmask16 wins = _mm512_cmp_ps_mask(v, best, _CMP_GT_OQ) | _mm512_cmp_ps_mask(v, v, _CMP_UNORD_Q);
      best = _mm512_mask_mov_ps(best, wins, v);
      best_tap = _mm512_mask_mov_epi32(best_tap, wins, _mm512_set1_epi32(r.tap_offsets[t]));
    }
    const __mmask16 lanes = __mmask16((1u << n) - 1);
    _mm512_mask_storeu_ps(r.y + j, lanes, best);
    // Index = tap offset + the lane's window start column.
    const __m512i at = _mm512_add_epi32(
        best_tap, _mm512_add_epi32(_mm512_set1_epi32(int32_t(column)),
                                   _mm512_mullo_epi32(lane, _mm512_set1_epi32(int32_t(r.stride)))));
    // The maskz forms: GCC 12 warns that the plain ones' undefined upper halves may be used uninitialized.
    for (int half = 0; half < 2; ++half)
      _mm512_mask_storeu_epi64(
          r.argmax + j + 8 * half, __mmask8(lanes >> (8 * half)),
          _mm512_maskz_cvtepi32_epi64(0xFF, half ? _mm512_maskz_extracti64x4_epi64(0xF, at, 1)
                                                 : _mm512_maskz_extracti64x4_epi64(0xF, at, 0)));
  }
}

}  // namespace avx512

namespace avx2 {

[[gnu::target("avx2,fma")]] inline void max_pool_row(const MaxPoolRow& r) {
  const __m256i lane = _mm256_setr_epi32(0, 1, 2, 3, 4, 5, 6, 7);
  const __m256i lane_offset = _mm256_mullo_epi32(lane, _mm256_set1_epi32(int32_t(r.stride)));
  for (int64_t j = 0; j < r.count; j += 8) {
    const int n = int(std::min<int64_t>(8, r.count - j));
    const __m256i lanes = _mm256_cmpgt_epi32(_mm256_set1_epi32(n), lane);
    const int64_t column = r.first_column + j * r.stride;
    __m256 best = _mm256_set1_ps(-__builtin_inff());
    __m256i best_tap = _mm256_set1_epi32(r.tap_offsets[0]);
    for (int64_t t = 0; t < r.taps; ++t) {
      const float* x = r.plane + r.tap_offsets[t] + column;
      const __m256 v = r.stride == 1 ? _mm256_maskload_ps(x, lanes)
                                     : _mm256_mask_i32gather_ps(_mm256_setzero_ps(), x, lane_offset,
                                                                _mm256_castsi256_ps(lanes), 4);
      const __m256 wins = _mm256_or_ps(_mm256_cmp_ps(v, best, _CMP_GT_OQ), _mm256_cmp_ps(v, v, _CMP_UNORD_Q));
      best = _mm256_blendv_ps(best, v, wins);
      best_tap = _mm256_castps_si256(_mm256_blendv_ps(
          _mm256_castsi256_ps(best_tap), _mm256_castsi256_ps(_mm256_set1_epi32(r.tap_offsets[t])), wins));
    }
    _mm256_maskstore_ps(r.y + j, lanes, best);
    const __m256i at =
        _mm256_add_epi32(best_tap, _mm256_add_epi32(_mm256_set1_epi32(int32_t(column)), lane_offset));
    alignas(32) int32_t index[8];
    _mm256_store_si256(reinterpret_cast<__m256i*>(index), at);
    for (int i = 0; i < n; ++i) r.argmax[j + i] = index[i];
  }
}

}  // namespace avx2

}  // namespace sumi::kernels

#endif
