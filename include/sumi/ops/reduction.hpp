#pragma once
// Reductions with autograd: sum and mean over all elements or over chosen dimensions; argmax (no gradient).
//
// Results do not depend on the number of threads: the all-element sum adds fixed-size chunks, each in a
// fixed order, then adds the chunk sums in chunk order; dimension reductions split the work by output
// element, so every output is accumulated in the same order as on one thread.
#include <algorithm>
#include <cmath>
#include <cstdint>
#include <string>
#include <type_traits>
#include <vector>

#include "sumi/autograd/variable.hpp"
#include "sumi/kernels/elementwise.hpp"
#include "sumi/kernels/threading.hpp"
#include "sumi/tensor/arithmetic.hpp"

namespace sumi {

namespace detail {

// Elements per chunk of the all-element sum. Fixed, so that the chunking (hence the rounding) is the same
// for any thread count.
inline constexpr int64_t kReduceChunk = int64_t(1) << 14;

// Sum of f(i) over [begin, end) in one fixed order, whatever the ISA: eight interleaved partial sums (which
// the compiler turns into vector lanes) added pairwise, then the remainder.
template <class Acc, class F>
Acc range_sum(int64_t begin, int64_t end, const F& f) {
  constexpr int64_t kLanes = 8;
  Acc lane[kLanes] = {};
  int64_t i = begin;
  for (; i + kLanes <= end; i += kLanes)
    for (int64_t j = 0; j < kLanes; ++j) lane[j] += Acc(f(i + j));
  Acc acc = ((lane[0] + lane[1]) + (lane[2] + lane[3])) + ((lane[4] + lane[5]) + (lane[6] + lane[7]));
  for (; i < end; ++i) acc += Acc(f(i));
  return acc;
}

// Sum of f(i) for i in [0, n): chunks of kReduceChunk summed (in parallel when large), then the chunk sums
// added in order. Deterministic: the same result for any number of threads.
template <class Acc, class F>
Acc chunked_sum(int64_t n, const F& f) {
  if (n <= kReduceChunk) return range_sum<Acc>(0, n, f);
  const int64_t chunks = (n + kReduceChunk - 1) / kReduceChunk;
  std::vector<Acc> partial(std::size_t(chunks), Acc(0));
#pragma omp parallel for schedule(static) \
    num_threads(sumi::get_num_threads()) if (n >= kernels::kParallelThreshold)
  for (int64_t c = 0; c < chunks; ++c)
    partial[std::size_t(c)] = range_sum<Acc>(c * kReduceChunk, std::min(n, (c + 1) * kReduceChunk), f);
  Acc total = Acc(0);
  for (const Acc& p : partial) total += p;
  return total;
}

// Sum of all elements of t (any strides), accumulated in acc_t<T>.
template <class T>
acc_t<T> sum_all(const Tensor<T>& t) {
  const Tensor<T> c = t.contiguous();
  const T* p = c.data();
  return chunked_sum<acc_t<T>>(c.numel(), [p](int64_t i) { return p[i]; });
}

// Which dimensions of a rank-`rank` tensor `dims` names, as flags; an empty list means all (as in PyTorch).
// Negative dims count from the end; a repeated dimension is an error.
inline std::vector<bool> reduced_dims(const std::vector<int64_t>& dims, int64_t rank, const char* op) {
  std::vector<bool> reduce(std::size_t(rank), dims.empty());
  for (int64_t d : dims) {
    const auto nd = std::size_t(normalize_dim(d, rank, op));
    if (reduce[nd])
      throw std::invalid_argument(std::string(op) + ": dimension " + std::to_string(d) +
                                  " appears more than once in the list of dimensions");
    reduce[nd] = true;
  }
  return reduce;
}

// Sums contiguous `in` (of `shape`) over the dimensions flagged in `reduce` into `out`, a zero-filled
// contiguous buffer of the kept dimensions in order, in acc_t<T> (rows added one after another into a float
// would lose digits: 60,000 rows of 0.1 are off by 6e-4). Size-1 dimensions are dropped and neighbouring
// dimensions with the same flag merged, so the innermost loop runs over one contiguous run: either a dot
// reduction (innermost reduced) or a vector add into the output (innermost kept).
template <class T>
class DimSum {
 public:
  using Acc = acc_t<T>;
  DimSum(const T* in, const Shape& shape, const std::vector<bool>& reduce, Acc* out) : in_(in), out_(out) {
    for (std::size_t d = 0; d < shape.size(); ++d) {
      if (shape[d] == 1) continue;
      if (!size_.empty() && reduce_.back() == reduce[d])
        size_.back() *= shape[d];
      else {
        size_.push_back(shape[d]);
        reduce_.push_back(reduce[d]);
      }
    }
    const std::size_t m = size_.size();
    in_stride_.assign(m, 1);
    out_stride_.assign(m, 0);
    int64_t si = 1, so = 1;
    for (std::size_t d = m; d-- > 0;) {
      in_stride_[d] = si;
      si *= size_[d];
      if (!reduce_[d]) {
        out_stride_[d] = so;
        so *= size_[d];
      }
    }
  }

  void run() {
    const std::size_t m = size_.size();
    const int64_t n = shape_numel(size_);
    if (n == 0) return;
    if (m == 0) {  // a single element
      out_[0] += Acc(in_[0]);
      return;
    }
    if (std::all_of(reduce_.begin(), reduce_.end(), [](bool r) { return r; })) {
      const T* p = in_;
      out_[0] = chunked_sum<Acc>(n, [p](int64_t i) { return p[i]; });
      return;
    }
    // Split the first kept dimension into blocks; each block owns its outputs, so threads never share one.
    split_ = std::size_t(std::find(reduce_.begin(), reduce_.end(), false) - reduce_.begin());
    const int64_t extent = size_[split_];
    const int64_t blocks = n >= kernels::kParallelThreshold ? std::min<int64_t>(extent, 64) : 1;
#pragma omp parallel for schedule(static) num_threads(sumi::get_num_threads()) if (blocks > 1)
    for (int64_t b = 0; b < blocks; ++b) walk(0, 0, 0, extent * b / blocks, extent * (b + 1) / blocks);
  }

 private:
  void walk(std::size_t d, int64_t in_off, int64_t out_off, int64_t lo, int64_t hi) const {
    const int64_t begin = d == split_ ? lo : 0, end = d == split_ ? hi : size_[d];
    if (d + 1 == size_.size()) {
      const T* p = in_ + in_off;
      if (reduce_[d]) {
        out_[out_off] += range_sum<Acc>(begin, end, [p](int64_t i) { return p[i]; });
      } else {
        Acc* o = out_ + out_off;
#pragma omp simd
        for (int64_t i = begin; i < end; ++i) o[i] += Acc(p[i]);
      }
      return;
    }
    for (int64_t i = begin; i < end; ++i)
      walk(d + 1, in_off + i * in_stride_[d], out_off + i * out_stride_[d], lo, hi);
  }

  const T* in_;
  Acc* out_;
  Shape size_, in_stride_, out_stride_;
  std::vector<bool> reduce_;
  std::size_t split_ = 0;
};

// x summed over the flagged dimensions, with those dimensions kept as size 1.
template <class T>
Tensor<T> sum_keepdim(const Tensor<T>& x, const std::vector<bool>& reduce) {
  Shape keep = x.shape();
  for (std::size_t d = 0; d < keep.size(); ++d)
    if (reduce[d]) keep[d] = 1;
  const Tensor<T> c = x.contiguous();
  return accumulated_sums<T>(keep,
                             [&](acc_t<T>* sums) { DimSum<T>(c.data(), c.shape(), reduce, sums).run(); });
}

// Shared body of sum and mean over dimensions (mean divides the sums by the number of elements summed).
template <class T>
Variable<T> sum_or_mean_dims(const Variable<T>& x, const std::vector<int64_t>& dims, bool keepdim,
                             const char* op, bool average) {
  x.require_defined(op);
  const std::vector<bool> reduce = reduced_dims(dims, x.dim(), op);
  Tensor<T> out = sum_keepdim(x.value(), reduce);
  int64_t count = 1;
  Shape squeezed;
  for (std::size_t d = 0; d < reduce.size(); ++d) {
    if (reduce[d])
      count *= x.shape()[d];
    else
      squeezed.push_back(x.shape()[d]);
  }
  const T divisor = average ? T(count) : T(1);  // divided, not multiplied by 1/count, as PyTorch does
  if (average) kernels::map(out.numel(), out.data(), out.data(), [divisor](T v) { return v / divisor; });
  const Shape keep_shape = out.shape();
  if (!keepdim) out = out.view(squeezed);
  return Variable<T>::from_op(out, op, {x}, [in_shape = x.shape(), keep_shape, divisor](const Tensor<T>& g) {
    Tensor<T> gx = expand_to(g.reshape(keep_shape), in_shape);
    if (divisor != T(1))
      kernels::map(gx.numel(), gx.data(), gx.data(), [divisor](T v) { return v / divisor; });
    return std::vector<Tensor<T>>{gx};
  });
}

}  // namespace detail

// Sum of all elements, as a scalar of shape [].
template <class T>
Variable<T> sum(const Variable<T>& x) {
  x.require_defined("sum");
  Tensor<T> out = Tensor<T>::scalar(T(detail::sum_all(x.value())));
  return Variable<T>::from_op(out, "sum", {x}, [shape = x.shape()](const Tensor<T>& g) {
    return std::vector<Tensor<T>>{Tensor<T>::full(shape, g.item())};
  });
}

// Sum over `dims` (negative values count from the end; an empty list means every dimension). With keepdim
// the reduced dimensions stay as size 1, otherwise they are removed.
template <class T>
Variable<T> sum(const Variable<T>& x, std::vector<int64_t> dims, bool keepdim = false) {
  return detail::sum_or_mean_dims(x, dims, keepdim, "sum", false);
}

// Mean of all elements, as a scalar of shape [] (NaN for an empty tensor, as in PyTorch).
template <class T>
Variable<T> mean(const Variable<T>& x) {
  x.require_defined("mean");
  const int64_t n = x.numel();
  Tensor<T> out = Tensor<T>::scalar(T(detail::sum_all(x.value()) / detail::acc_t<T>(n)));
  return Variable<T>::from_op(out, "mean", {x}, [shape = x.shape(), n](const Tensor<T>& g) {
    return std::vector<Tensor<T>>{Tensor<T>::full(shape, g.item() / T(n))};
  });
}

// Mean over `dims`, with the same dimension rules as sum.
template <class T>
Variable<T> mean(const Variable<T>& x, std::vector<int64_t> dims, bool keepdim = false) {
  return detail::sum_or_mean_dims(x, dims, keepdim, "mean", true);
}

// The position of the largest element along `dim` for every combination of the other indices, in row-major
// order of those (torch.argmax(x, dim), flattened): the first of equal largest elements, or the first NaN
// where there is one, as PyTorch. A class prediction: argmax(logits, 1)[i] is sample i's class.
template <class T>
std::vector<int64_t> argmax(const Tensor<T>& x, int64_t dim) {
  if (!x.defined()) throw std::invalid_argument("argmax: the tensor is undefined");
  const Shape& shape = x.shape();
  const auto d = std::size_t(normalize_dim(dim, shape, "argmax"));
  if (shape.empty()) return {0};  // a scalar's only element
  if (shape[d] == 0)
    throw std::invalid_argument("argmax: dimension " + std::to_string(dim) + " of shape " + shape_str(shape) +
                                " is empty");
  int64_t outer = 1, inner = 1;
  for (std::size_t i = 0; i < d; ++i) outer *= shape[i];
  for (std::size_t i = d + 1; i < shape.size(); ++i) inner *= shape[i];
  const int64_t n = shape[d];
  const Tensor<T> c = x.contiguous();
  std::vector<int64_t> result(std::size_t(outer * inner));
  for (int64_t o = 0; o < outer; ++o)
    for (int64_t i = 0; i < inner; ++i) {
      const T* line = c.data() + o * n * inner + i;
      int64_t best = 0;
      for (int64_t k = 1; k < n && !std::isnan(line[best * inner]); ++k)
        if (line[k * inner] > line[best * inner] || std::isnan(line[k * inner])) best = k;
      result[std::size_t(o * inner + i)] = best;
    }
  return result;
}
template <class T>
std::vector<int64_t> argmax(const Variable<T>& x, int64_t dim) {
  x.require_defined("argmax");
  return argmax(x.value(), dim);
}

}  // namespace sumi
