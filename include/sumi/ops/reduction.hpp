#pragma once
// Reductions with autograd: sum and mean over all elements or over chosen dimensions; max and min of all
// elements, along a dimension (with positions) or over dimensions (amax, amin); argmax and argmin (no
// gradient).
//
// Results do not depend on the number of threads: the all-element sum adds fixed-size chunks, each in a
// fixed order, then adds the chunk sums in chunk order; dimension reductions split the work by output
// element, so every output is accumulated in the same order as on one thread.
#include <algorithm>
#include <cmath>
#include <cstdint>
#include <string>
#include <type_traits>
#include <utility>
#include <vector>

#include "sumi/autograd/variable.hpp"
#include "sumi/kernels/elementwise.hpp"
#include "sumi/kernels/threading.hpp"
#include "sumi/ops/along_dim.hpp"
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

// The dimensions `dims` names in a tensor of `shape`, as flags; an empty list means all (as in PyTorch).
// Negative dims count from the end; a repeated dimension is an error. A 0-d tensor accepts 0 and -1, as in
// PyTorch, which name no dimension to reduce.
inline std::vector<bool> reduced_dims(const std::vector<int64_t>& dims, const Shape& shape, const char* op) {
  const auto rank = int64_t(shape.size());
  if (rank == 0) {
    bool seen = false;
    for (int64_t d : dims) {
      normalize_dim(d, shape, op);
      if (std::exchange(seen, true))
        throw std::invalid_argument(std::string(op) + ": dimension " + std::to_string(d) +
                                    " appears more than once in the list of dimensions");
    }
    return {};
  }
  std::vector<bool> reduce(std::size_t(rank), dims.empty());
  for (int64_t d : dims) {
    const auto nd = std::size_t(normalize_existing_dim(d, shape, op));
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
  const std::vector<bool> reduce = reduced_dims(dims, x.shape(), op);
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

namespace detail {

// Position along a line (n elements `stride` apart) of its largest (Largest) or smallest element: the first
// of equal ones, or the first NaN where there is one, as PyTorch's max/min/argmax/argmin with a dimension.
template <bool Largest, class T>
int64_t extreme_position(const T* line, int64_t n, int64_t stride) {
  int64_t best = 0;
  for (int64_t k = 1; k < n && !std::isnan(line[best * stride]); ++k) {
    const T v = line[k * stride], b = line[best * stride];
    if ((Largest ? v > b : v < b) || std::isnan(v)) best = k;
  }
  return best;
}

// The geometry of a reduction along `dim` of `shape`, refusing an empty dimension (no element to pick).
inline AlongDim nonempty_line(const Shape& shape, int64_t dim, const char* op) {
  const AlongDim geo(shape, dim, op);
  if (geo.n == 0)
    throw std::invalid_argument(std::string(op) + ": dimension " + std::to_string(dim) + " of shape " +
                                shape_str(shape) + " is empty, so it has no element to pick");
  return geo;
}

// extreme_position of every line of contiguous `x` along `geo`, in row-major order of the other dimensions.
template <bool Largest, class T>
std::vector<int64_t> extreme_positions(const Tensor<T>& x, const AlongDim& geo) {
  std::vector<int64_t> positions(std::size_t(geo.lines()));
  const T* p = x.data();
  geo.for_each_line([&](int64_t l, int64_t offset) {
    positions[std::size_t(l)] = extreme_position<Largest>(p + offset, geo.n, geo.inner);
  });
  return positions;
}

template <bool Largest, class T>
std::vector<int64_t> arg_extreme(const Tensor<T>& x, int64_t dim, const char* op) {
  if (!x.defined()) throw std::invalid_argument(std::string(op) + ": the tensor is undefined");
  return extreme_positions<Largest>(x.contiguous(), nonempty_line(x.shape(), dim, op));
}

// The shape left by reducing `dim` of `shape`: size 1 with keepdim, removed otherwise.
inline Shape reduced_shape(Shape shape, int64_t dim, bool keepdim) {
  if (shape.empty()) return shape;
  const auto d = std::size_t(normalize_dim(dim, shape, "reduced_shape"));
  if (keepdim)
    shape[d] = 1;
  else
    shape.erase(shape.begin() + std::ptrdiff_t(d));
  return shape;
}

}  // namespace detail

// The position of the largest element along `dim` for every combination of the other indices, in row-major
// order of those (torch.argmax(x, dim), flattened): the first of equal largest elements, or the first NaN
// where there is one, as PyTorch. A class prediction: argmax(logits, 1)[i] is sample i's class.
template <class T>
std::vector<int64_t> argmax(const Tensor<T>& x, int64_t dim) {
  return detail::arg_extreme<true>(x, dim, "argmax");
}
template <class T>
std::vector<int64_t> argmax(const Variable<T>& x, int64_t dim) {
  x.require_defined("argmax");
  return argmax(x.value(), dim);
}

// The position of the smallest element along `dim`, as argmax (torch.argmin(x, dim), flattened).
template <class T>
std::vector<int64_t> argmin(const Tensor<T>& x, int64_t dim) {
  return detail::arg_extreme<false>(x, dim, "argmin");
}
template <class T>
std::vector<int64_t> argmin(const Variable<T>& x, int64_t dim) {
  x.require_defined("argmin");
  return argmin(x.value(), dim);
}

// The result of max or min along a dimension, as torch.max(x, dim)'s (values, indices): `indices` holds
// each value's position along the dimension, flattened in row-major order of `values`.
template <class T>
struct ValuesAndIndices {
  Variable<T> values;
  std::vector<int64_t> indices;
};

namespace detail {

// max (Largest) or min along `dim`: the first of equal extremes, or the first NaN, as PyTorch; the gradient
// goes to that one position of each line.
template <bool Largest, class T>
ValuesAndIndices<T> extreme_along(const Variable<T>& x, int64_t dim, bool keepdim, const char* op) {
  x.require_defined(op);
  const AlongDim geo = nonempty_line(x.shape(), dim, op);
  const Tensor<T> xc = x.value().contiguous();
  std::vector<int64_t> indices = extreme_positions<Largest>(xc, geo);
  Tensor<T> values = Tensor<T>::empty(reduced_shape(x.shape(), dim, keepdim));
  for (int64_t l = 0; l < geo.lines(); ++l)
    values.data()[l] = xc.data()[geo.line_offset(l) + indices[std::size_t(l)] * geo.inner];
  Variable<T> out =
      Variable<T>::from_op(values, op, {x}, [geo, indices, shape = x.shape()](const Tensor<T>& g) {
        const Tensor<T> gc = g.contiguous();
        Tensor<T> gx = Tensor<T>::zeros(shape);
        for (int64_t l = 0; l < geo.lines(); ++l)
          gx.data()[geo.line_offset(l) + indices[std::size_t(l)] * geo.inner] = gc.data()[l];
        return std::vector<Tensor<T>>{gx};
      });
  return {std::move(out), std::move(indices)};
}

// The largest (Largest) or smallest of all elements, as torch.max(x) / torch.min(x): NaN where there is
// one. The gradient is shared evenly by the elements equal to the result (by the NaNs when it is NaN), as
// PyTorch.
template <bool Largest, class T>
Variable<T> extreme_all(const Variable<T>& x, const char* op) {
  x.require_defined(op);
  if (x.numel() == 0)
    throw std::invalid_argument(std::string(op) + ": the input of shape " + shape_str(x.shape()) +
                                " is empty, so it has no element to pick");
  const Tensor<T> xc = x.value().contiguous();
  const T value = xc.data()[extreme_position<Largest>(xc.data(), xc.numel(), 1)];
  return Variable<T>::from_op(Tensor<T>::scalar(value), op, {x}, [xc, value](const Tensor<T>& g) {
    const auto picked = [value](T v) { return std::isnan(value) ? std::isnan(v) : v == value; };
    const int64_t count = std::count_if(xc.data(), xc.data() + xc.numel(), picked);
    const T share = g.item() / T(count);
    Tensor<T> gx = Tensor<T>::empty(xc.shape());
    kernels::map(xc.numel(), xc.data(), gx.data(), [&](T v) { return picked(v) ? share : T(0); });
    return std::vector<Tensor<T>>{gx};
  });
}

// amax (Largest) or amin over the dimensions flagged in `reduce`: the kept dimensions are moved first and
// the reduced ones last, so each output is the extreme of one contiguous row. NaN where a row has one. The
// gradient of a row is shared evenly by the elements equal to its result, computed as PyTorch's
// (g / count) * (x == result), so a NaN result gives NaN gradients along its row, as there.
template <bool Largest, class T>
Variable<T> extreme_over(const Variable<T>& x, const std::vector<int64_t>& dims, bool keepdim,
                         const char* op) {
  x.require_defined(op);
  const std::vector<bool> reduce = reduced_dims(dims, x.shape(), op);
  std::vector<int64_t> order;
  Shape out_shape, keep_shape = x.shape();
  int64_t row = 1;
  for (std::size_t d = 0; d < reduce.size(); ++d)
    if (!reduce[d]) {
      order.push_back(int64_t(d));
      out_shape.push_back(x.shape()[d]);
    }
  for (std::size_t d = 0; d < reduce.size(); ++d)
    if (reduce[d]) {
      order.push_back(int64_t(d));
      row *= x.shape()[d];
      keep_shape[d] = 1;
    }
  if (row == 0)
    throw std::invalid_argument(std::string(op) + ": the reduced dimensions of shape " +
                                shape_str(x.shape()) + " are empty, so they have no element to pick");
  const Tensor<T> rows = x.value().permute(order).contiguous();
  const int64_t count_rows = shape_numel(out_shape);
  Tensor<T> values = Tensor<T>::empty(keepdim ? keep_shape : out_shape);
  const AlongDim geo(Shape{count_rows, row}, 1, op);
  geo.for_each_line([&](int64_t l, int64_t offset) {
    const T* r = rows.data() + offset;
    values.data()[l] = r[extreme_position<Largest>(r, row, 1)];
  });
  const std::vector<int64_t> inverse = inverse_permutation(order);
  return Variable<T>::from_op(values, op, {x}, [rows, values, geo, inverse](const Tensor<T>& g) {
    const Tensor<T> gc = g.contiguous();
    Tensor<T> grows = Tensor<T>::empty(rows.shape());
    geo.for_each_line([&](int64_t l, int64_t offset) {
      const T* r = rows.data() + offset;
      T* gr = grows.data() + offset;
      const T value = values.data()[l];
      const int64_t count = std::count(r, r + geo.n, value);
      const T share = gc.data()[l] / T(count);
      for (int64_t k = 0; k < geo.n; ++k) gr[k] = r[k] == value ? share : share * T(0);
    });
    return std::vector<Tensor<T>>{grows.permute(inverse).contiguous()};
  });
}

}  // namespace detail

// The largest element, as a scalar of shape [] (torch.max(x)): NaN where there is one. The gradient is
// shared evenly by the elements equal to it.
template <class T>
Variable<T> max(const Variable<T>& x) {
  return detail::extreme_all<true>(x, "max");
}
// The smallest element, as max.
template <class T>
Variable<T> min(const Variable<T>& x) {
  return detail::extreme_all<false>(x, "min");
}

// The largest element along `dim` and its position (torch.max(x, dim, keepdim)): the first of equal
// largest elements, or the first NaN. The gradient goes to that position.
//   auto [values, indices] = max(logits, 1);
template <class T>
ValuesAndIndices<T> max(const Variable<T>& x, int64_t dim, bool keepdim = false) {
  return detail::extreme_along<true>(x, dim, keepdim, "max");
}
// The smallest element along `dim` and its position, as max.
template <class T>
ValuesAndIndices<T> min(const Variable<T>& x, int64_t dim, bool keepdim = false) {
  return detail::extreme_along<false>(x, dim, keepdim, "min");
}

// The largest element over `dims` (torch.amax; an empty list means every dimension, keepdim as sum's):
// NaN where the reduced elements hold one. The gradient is shared evenly by the elements equal to the result.
template <class T>
Variable<T> amax(const Variable<T>& x, const std::vector<int64_t>& dims, bool keepdim = false) {
  return detail::extreme_over<true>(x, dims, keepdim, "amax");
}
// The smallest element over `dims` (torch.amin), as amax.
template <class T>
Variable<T> amin(const Variable<T>& x, const std::vector<int64_t>& dims, bool keepdim = false) {
  return detail::extreme_over<false>(x, dims, keepdim, "amin");
}

}  // namespace sumi
