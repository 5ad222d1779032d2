#pragma once
// Mean and biased variance of runs of values, in double whatever the element type, without the cancellation
// of E[x^2] - E[x]^2: the statistics of the normalisation ops (layer_norm, group_norm, batch_norm).
#include <cmath>
#include <cstdint>
#include <limits>

namespace sumi::kernels {

struct Moments {
  double mean;
  double var;  // biased: the mean square deviation
};

// The moments of n values from the sums of their deviations from `shift`, an estimate of their mean. The
// deviations' own mean corrects the shift; the variance is clamped at 0 against rounding, but a NaN stays
// NaN, and an infinite shift (an infinity among the values) is the mean, with a NaN variance, as PyTorch's:
// a diverged batch must not leave running statistics that look healthy.
inline Moments moments_from_shifted_sums(double shift, double sum_d, double sum_d2, double n) {
  if (std::isinf(shift)) return {shift, std::numeric_limits<double>::quiet_NaN()};
  const double dm = sum_d / n;
  const double var = sum_d2 / n - dm * dm;
  return {shift + dm, var < 0.0 ? 0.0 : var};
}

// The moments of x[0..n), n > 0. Two passes: a first mean, then the sums of the deviations from it, so a
// run far from zero keeps its precision.
template <class T>
Moments moments(const T* x, int64_t n) {
  double s = 0;
#pragma omp simd reduction(+ : s)
  for (int64_t i = 0; i < n; ++i) s += double(x[i]);
  const double mean0 = s / double(n);
  double d1 = 0, d2 = 0;
#pragma omp simd reduction(+ : d1, d2)
  for (int64_t i = 0; i < n; ++i) {
    const double d = double(x[i]) - mean0;
    d1 += d;
    d2 += d * d;
  }
  return moments_from_shifted_sums(mean0, d1, d2, double(n));
}

}  // namespace sumi::kernels
