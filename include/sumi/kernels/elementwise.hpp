#pragma once
// Element-wise loops over contiguous buffers, parallel when large enough to pay for the threads.
#include <cstdint>

namespace sumi::kernels {

// Below this many elements a loop runs on one thread: the fork/join would cost more than it saves.
inline constexpr int64_t kParallelThreshold = 1 << 15;

// out[i] = f(a[i]). out may alias a.
template <class T, class U, class F>
void map(int64_t n, const T* a, U* out, F f) {
#pragma omp parallel for simd if (n >= kParallelThreshold)
  for (int64_t i = 0; i < n; ++i) out[i] = f(a[i]);
}

// out[i] = f(a[i], b[i]). out may alias a or b.
template <class T, class F>
void zip(int64_t n, const T* a, const T* b, T* out, F f) {
#pragma omp parallel for simd if (n >= kParallelThreshold)
  for (int64_t i = 0; i < n; ++i) out[i] = f(a[i], b[i]);
}

// out[i] = f(a[i], b[i], c[i]). out may alias any input.
template <class T, class F>
void zip3(int64_t n, const T* a, const T* b, const T* c, T* out, F f) {
#pragma omp parallel for simd if (n >= kParallelThreshold)
  for (int64_t i = 0; i < n; ++i) out[i] = f(a[i], b[i], c[i]);
}

// dst[i] += src[i]
template <class T>
void add_inplace(int64_t n, T* dst, const T* src) {
  zip(n, dst, src, dst, [](T a, T b) { return a + b; });
}

}  // namespace sumi::kernels
