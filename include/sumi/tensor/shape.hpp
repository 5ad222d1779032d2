#pragma once
// Shapes and strides of row-major tensors.
#include <algorithm>
#include <cstdint>
#include <stdexcept>
#include <string>
#include <vector>

namespace sumi {

using Shape = std::vector<int64_t>;

inline std::string shape_str(const Shape& shape) {
  std::string s = "[";
  for (size_t i = 0; i < shape.size(); ++i) s += (i ? ", " : "") + std::to_string(shape[i]);
  return s + "]";
}

// The number of elements. Throws std::length_error when the product of the non-zero sizes (which bounds
// every stride, even of an empty tensor) does not fit in int64_t.
inline int64_t shape_numel(const Shape& shape) {
  int64_t product = 1;
  bool empty = false;
  for (int64_t d : shape) {
    if (d == 0) {
      empty = true;
    } else if (__builtin_mul_overflow(product, d, &product)) {
      throw std::length_error("shape " + shape_str(shape) + " has more elements than int64_t can count");
    }
  }
  return empty ? 0 : product;
}

// `shape` with its -1 (at most one) replaced by the size that makes it hold `numel` elements; an error naming
// `op` and both shapes when no such size exists.
inline Shape infer_shape(Shape shape, int64_t numel, const Shape& from, const char* op) {
  auto fail = [&](const std::string& why) {
    return std::invalid_argument(std::string(op) + ": cannot reshape tensor of shape " + shape_str(from) +
                                 " (" + std::to_string(numel) + " elements) to " + shape_str(shape) + ": " +
                                 why);
  };
  int64_t known = 1;
  std::size_t infer_at = shape.size();
  for (std::size_t i = 0; i < shape.size(); ++i) {
    if (shape[i] == -1) {
      if (infer_at != shape.size()) throw fail("more than one -1");
      infer_at = i;
    } else if (shape[i] < 0) {
      throw fail("negative size " + std::to_string(shape[i]));
    } else if (__builtin_mul_overflow(known, shape[i], &known)) {
      throw fail("the element counts differ");
    }
  }
  if (infer_at != shape.size()) {
    if (known == 0) throw fail("the size of -1 is ambiguous with zero-size dimensions");
    if (numel % known != 0) throw fail("the element count is not a multiple of " + std::to_string(known));
    shape[infer_at] = numel / known;
  } else if (known != numel) {
    throw fail("the element counts differ");
  }
  return shape;
}

inline Shape contiguous_strides(const Shape& shape) {
  Shape strides(shape.size());
  int64_t stride = 1;
  for (size_t i = shape.size(); i-- > 0;) {
    strides[i] = stride;
    if (i > 0)
      stride *= shape[i];  // no product past the outermost size: it is not a stride, and may overflow
  }
  return strides;
}

namespace detail {
inline int64_t normalize_dim_of_rank(int64_t dim, int64_t rank, const Shape& shape, const char* op) {
  if (dim < -rank || dim >= rank)
    throw std::out_of_range(std::string(op) + ": dimension " + std::to_string(dim) +
                            " out of range for shape " + shape_str(shape));
  return dim < 0 ? dim + rank : dim;
}
}  // namespace detail

// Maps a possibly negative dimension index (-1 is the last) of `shape` into [0, rank), naming the whole shape
// when `dim` is out of range. A 0-d shape accepts 0 and -1 (giving 0), as in PyTorch; a caller that then
// indexes the shape handles that case first.
inline int64_t normalize_dim(int64_t dim, const Shape& shape, const char* op) {
  return detail::normalize_dim_of_rank(dim, std::max<int64_t>(int64_t(shape.size()), 1), shape, op);
}

// normalize_dim for an op that needs a dimension to index: a 0-d shape has none.
inline int64_t normalize_existing_dim(int64_t dim, const Shape& shape, const char* op) {
  return detail::normalize_dim_of_rank(dim, int64_t(shape.size()), shape, op);
}

// The permutation that undoes `order` (a permutation of [0, n)): permuting by order, then by its inverse,
// restores the original dimensions.
inline std::vector<int64_t> inverse_permutation(const std::vector<int64_t>& order) {
  std::vector<int64_t> inverse(order.size());
  for (std::size_t i = 0; i < order.size(); ++i) inverse[std::size_t(order[i])] = int64_t(i);
  return inverse;
}

// The elements [start, start + length) of one dimension, as torch.narrow takes them: a negative start counts
// from the end of the dimension.
struct NarrowRange {
  int64_t dim = 0, start = 0;
};
inline NarrowRange narrow_range(const Shape& shape, int64_t dim, int64_t start, int64_t length,
                                const char* op) {
  if (shape.empty())
    throw std::invalid_argument(std::string(op) + ": a 0-d tensor has no dimension to narrow");
  NarrowRange r;
  r.dim = normalize_dim(dim, shape, op);
  const int64_t size = shape[std::size_t(r.dim)];
  r.start = start < 0 && start >= -size ? start + size : start;
  if (r.start < 0 || length < 0 || r.start > size - length)
    throw std::out_of_range(std::string(op) + ": " + std::to_string(length) + " elements from " +
                            std::to_string(start) + " of dimension " + std::to_string(dim) +
                            " are out of bounds for shape " + shape_str(shape));
  return r;
}

// NumPy broadcasting: dimensions are aligned from the right; each pair must be equal or one of them 1.
inline Shape broadcast_shapes(const Shape& a, const Shape& b, const char* op) {
  const size_t rank = std::max(a.size(), b.size());
  Shape out(rank);
  for (size_t i = 0; i < rank; ++i) {
    const int64_t da = i < rank - a.size() ? 1 : a[i - (rank - a.size())];
    const int64_t db = i < rank - b.size() ? 1 : b[i - (rank - b.size())];
    if (da != db && da != 1 && db != 1)
      throw std::invalid_argument(std::string(op) + ": shapes " + shape_str(a) + " and " + shape_str(b) +
                                  " cannot be broadcast together");
    out[i] = da == 1 ? db : da;
  }
  return out;
}

}  // namespace sumi
