#pragma once
// Inverted dropout with autograd, as torch.nn.functional.dropout.
#include <algorithm>
#include <bit>
#include <cmath>
#include <cstdint>
#include <sstream>
#include <stdexcept>
#include <string>
#include <type_traits>
#include <vector>

#include "sumi/autograd/gradient_zip.hpp"
#include "sumi/autograd/variable.hpp"
#include "sumi/kernels/elementwise.hpp"
#include "sumi/tensor/random.hpp"

namespace sumi {

// training: each element is kept with probability 1 - p and scaled by 1 / (1 - p), otherwise zeroed; the
// mask is drawn from `gen` (one uniform number per element, in row-major order), so seeding it reproduces
// the mask. p == 1 gives x * 0 (zeros, and NaN where x is not finite, as PyTorch). Not training, or p == 0:
// x itself. p must be in [0, 1].
template <class T>
Variable<T> dropout(const Variable<T>& x, std::type_identity_t<T> p, bool training,
                    Generator& gen = default_generator()) {
  x.require_defined("dropout");
  if (!(p >= T(0) && p <= T(1))) {
    std::ostringstream msg;
    msg << "dropout: probability p = " << p << " must be in [0, 1] (input of shape " << shape_str(x.shape())
        << ")";
    throw std::invalid_argument(msg.str());
  }
  if (!training || p == T(0)) return x;

  const int64_t n = x.numel();
  const Tensor<T> xv = x.value().contiguous();
  const T* px = xv.data();
  Tensor<T> mask = Tensor<T>::empty(x.shape());  // 0 or 1 / (1 - p): the gradient's factor as well
  Tensor<T> y = Tensor<T>::empty(x.shape());
  T *pm = mask.data(), *py = y.data();
  if (p == T(1)) {  // x * 0, as PyTorch: NaN and infinities stay NaN
    std::fill_n(pm, n, T(0));
    for (int64_t i = 0; i < n; ++i) py[i] = px[i] * T(0);
  } else {
    // gen.uniform() >= p exactly, on the uniform's 53 integer bits and without a branch: a kept or dropped
    // element is a coin flip, and the mispredicted branch cost more than drawing the number. The factor is
    // selected with integer bits: converting the comparison to T (cvtsi2ss) chained every iteration to the
    // one before through its register. The generator runs on a local copy, in registers.
    using Bits = std::conditional_t<sizeof(T) == 4, uint32_t, uint64_t>;
    const Bits scale_bits = std::bit_cast<Bits>(T(1) / (T(1) - p));
    const auto threshold = uint64_t(std::ceil(std::ldexp(double(p), 53)));
    Generator local = gen;
    for (int64_t i = 0; i < n; ++i) {
      const Bits keep = Bits((local.next_u64() >> 11) >= threshold);
      pm[i] = std::bit_cast<T>(Bits(Bits(0) - keep) & scale_bits);
      py[i] = px[i] * pm[i];
    }
    gen = local;
  }
  return Variable<T>::from_op(std::move(y), "dropout", {x}, [mask](Tensor<T> grad) {
    return std::vector<Tensor<T>>{zip_gradient(std::move(grad), mask, [](T a, T m) { return a * m; })};
  });
}

}  // namespace sumi
