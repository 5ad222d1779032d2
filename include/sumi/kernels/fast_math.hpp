#pragma once
// Vectorized float math for activations: e^x and the logistic function over arrays, in AVX-512, AVX2+FMA
// and portable versions chosen by the ISA in force (cpu_features.hpp). std::exp is a library call per
// element unless the whole program is built with -ffast-math, which sumi does not ask of its users.
//
// e^x is Cephes' expf: x = n ln2 + r with |r| <= ln2 / 2, e^r by a degree-7 polynomial, 2^n built in the
// exponent bits; within 2 ulp of std::exp over [-87.3, 88.3]. Above that range the input is clamped to it,
// so e^x never overflows to inf; below it the result is 0 (std::exp's is subnormal there, under 1.2e-38, and
// 0 from -104), so that the logistic function reaches 0 at large negative inputs as PyTorch's does. NaN stays
// NaN (the clamps and the comparison are written so that a NaN input passes through them), so a diverging
// model still shows NaN at its loss.
#include <algorithm>
#include <cmath>
#include <cstdint>
#include <cstring>

#include "sumi/kernels/cpu_features.hpp"
#include "sumi/kernels/threading.hpp"

#if SUMI_X86_KERNELS
#include <immintrin.h>
#endif

namespace sumi::kernels {

namespace exp_constants {
inline constexpr float kMin = -87.3f, kMax = 88.3f, kLog2e = 1.44269504088896341f;
inline constexpr float kLn2Hi = 0.693359375f, kLn2Lo = -2.12194440e-4f;  // ln 2 split for an exact n ln2
inline constexpr float kP[6] = {1.9875691500e-4f, 1.3981999507e-3f, 8.3334519073e-3f,
                                4.1665795894e-2f, 1.6666665459e-1f, 5.0000001201e-1f};
}  // namespace exp_constants

inline float exp_approx(float x) {
  using namespace exp_constants;
  if (std::isnan(x)) return x;  // before the float-to-int conversion below, for which NaN is undefined
  if (x < kMin) return 0.0f;
  x = x > kMax ? kMax : x;
  const float n = std::nearbyint(x * kLog2e);
  const float r = (x - n * kLn2Hi) - n * kLn2Lo;
  float p = kP[0];
  for (int i = 1; i < 6; ++i) p = p * r + kP[i];
  p = p * r * r + r + 1.0f;
  const int32_t bits = (int32_t(n) + 127) << 23;
  float scale;
  std::memcpy(&scale, &bits, sizeof scale);
  return p * scale;
}

// The logistic function 1 / (1 + e^-x), computed from e^-|x| so that nothing overflows.
inline float sigmoid_approx(float x) {
  const float e = exp_approx(-std::fabs(x));
  const float s = 1.0f / (1.0f + e);
  return x >= 0.0f ? s : e * s;
}

#if SUMI_X86_KERNELS
namespace avx2 {
[[gnu::target("avx2,fma")]] inline __m256 exp_approx(__m256 x) {
  using namespace exp_constants;
  const __m256 underflow = _mm256_cmp_ps(x, _mm256_set1_ps(kMin), _CMP_LT_OQ);  // false for NaN
  // max/min return their second operand when either is NaN: x second keeps NaN.
  x = _mm256_min_ps(_mm256_set1_ps(kMax), _mm256_max_ps(_mm256_set1_ps(kMin), x));
  const __m256 n = _mm256_round_ps(_mm256_mul_ps(x, _mm256_set1_ps(kLog2e)),
                                   _MM_FROUND_TO_NEAREST_INT | _MM_FROUND_NO_EXC);
  __m256 r = _mm256_fnmadd_ps(n, _mm256_set1_ps(kLn2Hi), x);
  r = _mm256_fnmadd_ps(n, _mm256_set1_ps(kLn2Lo), r);
  __m256 p = _mm256_set1_ps(kP[0]);
  for (int i = 1; i < 6; ++i) p = _mm256_fmadd_ps(p, r, _mm256_set1_ps(kP[i]));
  p = _mm256_fmadd_ps(_mm256_mul_ps(p, r), r, _mm256_add_ps(r, _mm256_set1_ps(1.0f)));
  const __m256i bits = _mm256_slli_epi32(_mm256_add_epi32(_mm256_cvtps_epi32(n), _mm256_set1_epi32(127)), 23);
  return _mm256_andnot_ps(underflow, _mm256_mul_ps(p, _mm256_castsi256_ps(bits)));
}

[[gnu::target("avx2,fma")]] inline void sigmoid(int64_t begin, int64_t end, const float* x, float* y) {
  const __m256 one = _mm256_set1_ps(1.0f), sign = _mm256_set1_ps(-0.0f);
  int64_t i = begin;
  for (; i + 8 <= end; i += 8) {
    const __m256 v = _mm256_loadu_ps(x + i);
    const __m256 e = exp_approx(_mm256_or_ps(v, sign));  // e^-|x|
    const __m256 s = _mm256_div_ps(one, _mm256_add_ps(one, e));
    const __m256 negative = _mm256_cmp_ps(v, _mm256_setzero_ps(), _CMP_LT_OQ);
    _mm256_storeu_ps(y + i, _mm256_blendv_ps(s, _mm256_mul_ps(e, s), negative));
  }
  for (; i < end; ++i) y[i] = sigmoid_approx(x[i]);
}
}  // namespace avx2

namespace avx512 {
// The unmasked forms of max/min/roundscale/cvtps/slli pass an undefined source vector in GCC 12's headers,
// which -Wmaybe-uninitialized reports in the caller; the all-lanes masked forms compute the same thing.
[[gnu::target("avx512f,avx512bw,avx512vl,avx512dq")]] inline __m512 exp_approx(__m512 x) {
  using namespace exp_constants;
  constexpr __mmask16 all = 0xFFFF;
  const __mmask16 in_range = _mm512_cmp_ps_mask(x, _mm512_set1_ps(kMin), _CMP_NLT_UQ);  // true for NaN
  x = _mm512_mask_max_ps(x, all, _mm512_set1_ps(kMin), x);  // x second: NaN passes through
  x = _mm512_mask_min_ps(x, all, _mm512_set1_ps(kMax), x);
  const __m512 scaled = _mm512_mul_ps(x, _mm512_set1_ps(kLog2e));
  const __m512 n =
      _mm512_mask_roundscale_ps(scaled, all, scaled, _MM_FROUND_TO_NEAREST_INT | _MM_FROUND_NO_EXC);
  __m512 r = _mm512_fnmadd_ps(n, _mm512_set1_ps(kLn2Hi), x);
  r = _mm512_fnmadd_ps(n, _mm512_set1_ps(kLn2Lo), r);
  __m512 p = _mm512_set1_ps(kP[0]);
  for (int i = 1; i < 6; ++i) p = _mm512_fmadd_ps(p, r, _mm512_set1_ps(kP[i]));
  p = _mm512_fmadd_ps(_mm512_mul_ps(p, r), r, _mm512_add_ps(r, _mm512_set1_ps(1.0f)));
  const __m512i zero = _mm512_setzero_si512();
  const __m512i biased = _mm512_add_epi32(_mm512_mask_cvtps_epi32(zero, all, n), _mm512_set1_epi32(127));
  return _mm512_maskz_mul_ps(in_range, p, _mm512_castsi512_ps(_mm512_mask_slli_epi32(zero, all, biased, 23)));
}

[[gnu::target("avx512f,avx512bw,avx512vl,avx512dq")]] inline void sigmoid(int64_t begin, int64_t end,
                                                                          const float* x, float* y) {
  const __m512 one = _mm512_set1_ps(1.0f), sign = _mm512_set1_ps(-0.0f);
  int64_t i = begin;
  for (; i + 16 <= end; i += 16) {
    const __m512 v = _mm512_loadu_ps(x + i);
    const __m512 e = exp_approx(_mm512_or_ps(v, sign));  // e^-|x|
    const __m512 s = _mm512_div_ps(one, _mm512_add_ps(one, e));
    const __mmask16 negative = _mm512_cmp_ps_mask(v, _mm512_setzero_ps(), _CMP_LT_OQ);
    _mm512_storeu_ps(y + i, _mm512_mask_mul_ps(s, negative, e, s));
  }
  for (; i < end; ++i) y[i] = sigmoid_approx(x[i]);
}
}  // namespace avx512
#endif

// y[i] = 1 / (1 + e^-x[i]) for i < n (y may alias x), with the ISA in force, split across threads.
inline void sigmoid(int64_t n, const float* x, float* y) {
  const Isa isa = active_isa();
  const int threads = n >= (int64_t(1) << 15) ? get_num_threads() : 1;
#pragma omp parallel num_threads(threads) if (threads > 1)
  {
    const int64_t t = omp_get_thread_num(), nt = omp_get_num_threads();
    const int64_t chunk = (n + nt * 64 - 1) / (nt * 64) * 64;
    const int64_t begin = std::min(n, t * chunk), end = std::min(n, begin + chunk);
#if SUMI_X86_KERNELS
    if (isa == Isa::avx512)
      avx512::sigmoid(begin, end, x, y);
    else if (isa == Isa::avx2)
      avx2::sigmoid(begin, end, x, y);
    else
#endif
      for (int64_t i = begin; i < end; ++i) y[i] = sigmoid_approx(x[i]);
  }
}

}  // namespace sumi::kernels
