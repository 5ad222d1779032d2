#pragma once
// Element-wise loops over contiguous buffers, parallel when large enough to pay for the threads.
//
// The library is built for generic x86-64, where the compiler may only vectorize with SSE2. Each loop is
// therefore instantiated three times: in an AVX-512 and an AVX2+FMA function (target attributes; the
// element functor is inlined into them and vectorized there) and in a portable one, and the ISA in force
// (cpu_features.hpp) picks one at run time, as for the conv kernels.
#include <omp.h>

#include <algorithm>
#include <cstdint>

#include "sumi/kernels/cpu_features.hpp"
#include "sumi/kernels/threading.hpp"

namespace sumi::kernels {

namespace detail {

// GCC vectorizes these loops only when asked (`omp simd`). Clang's loop vectorizer takes them unasked, and
// asked it warns (-Wpass-failed) wherever it cannot comply, as for an element functor calling a libm
// function that has no vector form.
#if defined(__clang__)
#define SUMI_ELEMENTWISE_SIMD
#else
#define SUMI_ELEMENTWISE_SIMD _Pragma("omp simd")
#endif

// f(), compiled for the ISA: in the AVX-512 and AVX2 + FMA copies `flatten` inlines f and what it calls, so
// that its loops are vectorised with that ISA; otherwise f runs as the portable build compiled it.
#if SUMI_X86_KERNELS
template <class F>
[[gnu::target("avx2,fma"), gnu::flatten]] decltype(auto) call_compiled_for_avx2(const F& f) {
  return f();
}

template <class F>
[[gnu::target("avx512f,avx512bw,avx512vl,avx512dq"), gnu::flatten]] decltype(auto) call_compiled_for_avx512(
    const F& f) {
  return f();
}
#endif

template <class F>
decltype(auto) call_compiled_for(Isa isa, const F& f) {
#if SUMI_X86_KERNELS
  if (isa == Isa::avx512) return call_compiled_for_avx512(f);
  if (isa == Isa::avx2) return call_compiled_for_avx2(f);
#endif
  (void)isa;
  return f();
}

template <class Body>
void simd_range(Isa isa, int64_t begin, int64_t end, const Body& body) {
  call_compiled_for(isa, [&] {
    SUMI_ELEMENTWISE_SIMD
    for (int64_t i = begin; i < end; ++i) body(i);
  });
}

#undef SUMI_ELEMENTWISE_SIMD

}  // namespace detail

// body(i) for i < n: independent iterations, vectorized with the ISA in force and split across threads.
template <class Body>
void for_each_index(int64_t n, const Body& body) {
  const Isa isa = active_isa();
  if (n < kParallelThreshold) return detail::simd_range(isa, 0, n, body);
#pragma omp parallel num_threads(get_num_threads())
  {
    // Chunks are multiples of 64 elements so that threads never share a cache line of the output.
    const int64_t threads = omp_get_num_threads(), t = omp_get_thread_num();
    const int64_t chunk = (n + threads * 64 - 1) / (threads * 64) * 64;
    const int64_t begin = std::min(n, t * chunk), end = std::min(n, begin + chunk);
    detail::simd_range(isa, begin, end, body);
  }
}

// out[i] = f(a[i]). out may alias a.
template <class T, class U, class F>
void map(int64_t n, const T* a, U* out, F f) {
  for_each_index(n, [=](int64_t i) { out[i] = f(a[i]); });
}

// out[i] = f(a[i], b[i]). out may alias a or b.
template <class T, class F>
void zip(int64_t n, const T* a, const T* b, T* out, F f) {
  for_each_index(n, [=](int64_t i) { out[i] = f(a[i], b[i]); });
}

// out[i] = f(a[i], b[i], c[i]). out may alias any input.
template <class T, class F>
void zip3(int64_t n, const T* a, const T* b, const T* c, T* out, F f) {
  for_each_index(n, [=](int64_t i) { out[i] = f(a[i], b[i], c[i]); });
}

// dst[i] += src[i]
template <class T>
void add_inplace(int64_t n, T* dst, const T* src) {
  zip(n, dst, src, dst, [](T a, T b) { return a + b; });
}

}  // namespace sumi::kernels
