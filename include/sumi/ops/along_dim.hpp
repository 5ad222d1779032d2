#pragma once
// The geometry of an op that works along one dimension (softmax, argmax, max/min with a dimension, the
// class dimension of cross_entropy): a contiguous tensor seen as [outer, n, inner], the dimension in the
// middle, so that every line along the dimension is n elements `inner` apart.
#include <cstdint>

#include "sumi/kernels/threading.hpp"
#include "sumi/tensor/shape.hpp"

namespace sumi::detail {

struct AlongDim {
  int64_t outer = 1, n = 1, inner = 1;

  // A 0-d shape accepts dimensions 0 and -1 and is one line of one element, as in PyTorch; an out-of-range
  // dimension is refused naming the shape.
  AlongDim(const Shape& shape, int64_t dim, const char* op) {
    const auto d = std::size_t(normalize_dim(dim, shape, op));
    if (shape.empty()) return;
    for (std::size_t i = 0; i < d; ++i) outer *= shape[i];
    n = shape[d];
    for (std::size_t i = d + 1; i < shape.size(); ++i) inner *= shape[i];
  }

  int64_t lines() const { return outer * inner; }
  // The offset of line l's first element; lines are numbered in row-major order of the other dimensions.
  int64_t line_offset(int64_t l) const { return (l / inner) * n * inner + l % inner; }

  // Calls f(l, offset) for every line l: its elements are offset + k * inner, k < n. Lines are independent,
  // so they run in parallel when the tensor is large.
  template <class F>
  void for_each_line(F f) const {
    kernels::parallel_for(lines(), lines() * n, [&](int64_t l) { f(l, line_offset(l)); });
  }
};

}  // namespace sumi::detail
