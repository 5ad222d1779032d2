#pragma once
// What a convolution does to its output besides the multiply-adds: a per-channel bias and a ReLU. Kernels
// that write their output through a transpose (conv_lanes.hpp) apply both as they write; the others finish
// with this pass over the output.
#include <cstdint>

#include "sumi/kernels/threading.hpp"

namespace sumi::kernels {

// One output value's epilogue: v + bias, then relu(.) = (. < 0 ? 0 : .) when `relu`, as the relu op (NaN
// and -0 pass through). The vectorized kernels compute the same with add and max instructions.
template <class T>
inline T conv_epilogue_value(T v, T bias, bool relu) {
  const T u = v + bias;
  return relu ? (u < T(0) ? T(0) : u) : u;
}

// y[n, c, :, :] = f(y[n, c, :, :] + bias[c]) over contiguous [N, C, HW] data, with f = relu when `relu` and
// the identity otherwise; bias may be null. relu(v) is v < 0 ? 0 : v, as the relu op (NaN passes through).
template <class T>
void conv_output_epilogue(T* y, int64_t N, int64_t C, int64_t HW, const T* bias, bool relu) {
  if (!bias && !relu) return;
  const int64_t planes = N * C;
#pragma omp parallel for schedule(static) \
    num_threads(get_num_threads()) if (planes * HW >= (int64_t(1) << 16))
  for (int64_t p = 0; p < planes; ++p) {
    const T b = bias ? bias[p % C] : T(0);
    T* row = y + p * HW;
    for (int64_t i = 0; i < HW; ++i) row[i] = conv_epilogue_value(row[i], b, relu);
  }
}

}  // namespace sumi::kernels
