#pragma once
// How the examples stop a diverged run: a NaN or infinite loss means the weights are already ruined, so
// training stops with one message before any checkpoint or output of them is written.
#include <algorithm>
#include <cmath>
#include <stdexcept>
#include <string>

#include "sumi/tensor/tensor.hpp"

namespace sumi::examples {

// Throws "training diverged: <what> is nan (lower --lr?)" unless `value` is finite.
inline void require_finite(double value, const std::string& what) {
  if (!std::isfinite(value))
    throw std::runtime_error("training diverged: " + what + " is " + std::to_string(value) +
                             " (lower --lr?)");
}

// The same for every value of `values` (a network's output, before a loss that would refuse a NaN).
inline void require_finite(const Tensor<float>& values, const std::string& what) {
  const Tensor<float> contiguous = values.contiguous();
  const float* begin = contiguous.data();
  const float* end = begin + contiguous.numel();
  const float* bad = std::find_if(begin, end, [](float v) { return !std::isfinite(v); });
  if (bad != end) require_finite(*bad, what + " (element " + std::to_string(bad - begin) + ")");
}

}  // namespace sumi::examples
