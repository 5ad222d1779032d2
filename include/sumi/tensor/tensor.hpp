#pragma once
// Tensor<T>: an N-d array of T with shape and strides over aligned storage shared between views.
#include <Eigen/Core>
#include <algorithm>
#include <cmath>
#include <concepts>
#include <cstring>
#include <initializer_list>
#include <iomanip>
#include <limits>
#include <memory>
#include <ostream>
#include <sstream>
#include <stdexcept>
#include <string>
#include <type_traits>

#include "sumi/tensor/allocator.hpp"
#include "sumi/tensor/random.hpp"
#include "sumi/tensor/shape.hpp"

namespace sumi {

template <std::floating_point T>
class Tensor {
 public:
  using value_type = T;
  using RowMatrix = Eigen::Matrix<T, Eigen::Dynamic, Eigen::Dynamic, Eigen::RowMajor>;
  using MatrixMap = Eigen::Map<RowMatrix>;
  using ConstMatrixMap = Eigen::Map<const RowMatrix>;
  using VectorMap = Eigen::Map<Eigen::Matrix<T, Eigen::Dynamic, 1>>;
  using ConstVectorMap = Eigen::Map<const Eigen::Matrix<T, Eigen::Dynamic, 1>>;

  // An empty tensor: no storage, rank 0, numel 0. Distinguishable with defined().
  Tensor() = default;

  // Uninitialised contents (use zeros() for zeros).
  static Tensor empty(const Shape& shape) {
    for (int64_t d : shape)
      if (d < 0) throw std::invalid_argument("Tensor: negative dimension in shape " + shape_str(shape));
    const int64_t numel = shape_numel(shape);  // first: it refuses shapes whose strides would overflow
    Tensor t;
    t.shape_ = shape;
    t.strides_ = contiguous_strides(shape);
    t.storage_ = std::make_shared<Storage<T>>(numel);
    return t;
  }
  static Tensor full(const Shape& shape, T value) {
    Tensor t = empty(shape);
    std::fill_n(t.data(), t.numel(), value);
    return t;
  }
  static Tensor zeros(const Shape& shape) { return full(shape, T(0)); }
  static Tensor ones(const Shape& shape) { return full(shape, T(1)); }
  static Tensor scalar(T value) { return full({}, value); }
  static Tensor arange(T start, T stop, T step = T(1)) {
    if (step == T(0)) throw std::invalid_argument("Tensor::arange: step must be non-zero");
    const T count = std::ceil((stop - start) / step);
    if (!(count < T(std::numeric_limits<int64_t>::max())))  // also NaN and infinite bounds
      throw std::invalid_argument("Tensor::arange: cannot count the values from " + std::to_string(start) +
                                  " to " + std::to_string(stop) + " in steps of " + std::to_string(step));
    const auto n = int64_t(std::max<T>(T(0), count));
    Tensor t = empty({n});
    for (int64_t i = 0; i < n; ++i) t.data()[i] = start + T(i) * step;
    return t;
  }
  // Uniform in [low, high). A draw that rounds up to high (a double just below it, rounded to float) is
  // taken as the largest value below high instead.
  static Tensor rand(const Shape& shape, Generator& gen = default_generator(), T low = T(0), T high = T(1)) {
    // Reversed or infinite bounds would clamp every draw to one value; PyTorch's uniform_ refuses them too.
    if (!(low <= high && std::isfinite(high - low)))
      throw std::invalid_argument("Tensor::rand: need finite bounds low <= high, got [" +
                                  std::to_string(low) + ", " + std::to_string(high) + ") for shape " +
                                  shape_str(shape));
    Tensor t = empty(shape);
    const T below_high = std::nextafter(high, low);
    for (int64_t i = 0; i < t.numel(); ++i) t.data()[i] = std::min(T(gen.uniform(low, high)), below_high);
    return t;
  }
  static Tensor randn(const Shape& shape, Generator& gen = default_generator(), T mean = T(0),
                      T stddev = T(1)) {
    if (!(std::isfinite(mean) && stddev >= T(0) && std::isfinite(stddev)))
      throw std::invalid_argument("Tensor::randn: need a finite mean and a finite stddev >= 0, got mean " +
                                  std::to_string(mean) + " and stddev " + std::to_string(stddev) +
                                  " for shape " + shape_str(shape));
    Tensor t = empty(shape);
    for (int64_t i = 0; i < t.numel(); ++i) t.data()[i] = T(gen.normal(mean, stddev));
    return t;
  }
  static Tensor from_vector(const std::vector<T>& values, const Shape& shape) {
    if (int64_t(values.size()) != shape_numel(shape))
      throw std::invalid_argument("Tensor::from_vector: " + std::to_string(values.size()) +
                                  " values do not fill shape " + shape_str(shape));
    Tensor t = empty(shape);
    std::copy(values.begin(), values.end(), t.data());
    return t;
  }
  // Copies an Eigen matrix (any storage order) into a new 2-d tensor.
  template <class Derived>
  static Tensor from_eigen(const Eigen::MatrixBase<Derived>& m) {
    Tensor t = empty({int64_t(m.rows()), int64_t(m.cols())});
    t.matrix() = m.template cast<T>();
    return t;
  }

  bool defined() const { return storage_ != nullptr; }
  const Shape& shape() const { return shape_; }
  const Shape& strides() const { return strides_; }
  int64_t dim() const { return int64_t(shape_.size()); }
  int64_t size(int64_t d) const {
    return shape_[std::size_t(normalize_existing_dim(d, shape_, "Tensor::size"))];
  }
  int64_t numel() const { return defined() ? shape_numel(shape_) : 0; }
  int64_t offset() const { return offset_; }
  // Row-major and dense, as PyTorch counts it: a size-1 dimension's stride does not matter (nothing steps
  // along it), and an empty tensor is contiguous.
  bool is_contiguous() const {
    if (numel() == 0) return true;
    int64_t expected = 1;
    for (std::size_t d = shape_.size(); d-- > 0;) {
      if (shape_[d] == 1) continue;
      if (strides_[d] != expected) return false;
      expected *= shape_[d];
    }
    return true;
  }
  // True when both tensors view the same storage.
  bool shares_storage_with(const Tensor& other) const { return storage_ == other.storage_; }
  // True when no other tensor (view or copy) shares this one's storage, so writing to it changes nothing
  // anyone else can see.
  bool is_sole_reference() const { return storage_.use_count() == 1; }

  // Pointer to the first element. For a non-contiguous view, index it with strides().
  T* data() { return storage_ ? storage_->data() + offset_ : nullptr; }
  const T* data() const { return storage_ ? storage_->data() + offset_ : nullptr; }

  T& at(std::initializer_list<int64_t> index) { return data()[flat_offset(index)]; }
  T at(std::initializer_list<int64_t> index) const { return data()[flat_offset(index)]; }
  // The value of a one-element tensor.
  T item() const {
    require_defined("item");
    if (numel() != 1)
      throw std::invalid_argument("Tensor::item: tensor of shape " + shape_str(shape_) + " has " +
                                  std::to_string(numel()) + " elements, not 1");
    return data()[0];
  }

  // A view with a new shape over the same elements; requires contiguity. One dimension may be -1.
  Tensor view(Shape shape) const {
    if (!is_contiguous())
      throw std::invalid_argument("Tensor::view: tensor of shape " + shape_str(shape_) +
                                  " is not contiguous; use reshape()");
    Tensor t = *this;
    t.shape_ = infer_shape(std::move(shape), numel(), shape_, "Tensor::view");
    t.strides_ = contiguous_strides(t.shape_);
    return t;
  }
  // view() when possible, otherwise a contiguous copy.
  Tensor reshape(Shape shape) const {
    return is_contiguous() ? view(std::move(shape)) : contiguous().view(shape);
  }

  // Rows [begin, end) of the first dimension, as a view (a batch of a dataset).
  Tensor slice(int64_t begin, int64_t end) const {
    if (dim() == 0 || begin < 0 || end > shape_[0] || begin > end)
      throw std::out_of_range("Tensor::slice: range [" + std::to_string(begin) + ", " + std::to_string(end) +
                              ") out of bounds for shape " + shape_str(shape_));
    Tensor t = *this;
    t.shape_[0] = end - begin;
    t.offset_ += begin * strides_[0];
    return t;
  }
  // Element i of the first dimension, dropping that dimension.
  Tensor select(int64_t i) const {
    if (dim() == 0 || i < 0 || i >= shape_[0])
      throw std::out_of_range("Tensor::select: index " + std::to_string(i) + " out of bounds for shape " +
                              shape_str(shape_));
    Tensor t = slice(i, i + 1);
    t.shape_.erase(t.shape_.begin());
    t.strides_.erase(t.strides_.begin());
    return t;
  }
  // A strided view with two dimensions swapped.
  // A 0-d tensor accepts dimensions 0 and -1 and is its own transpose, as in PyTorch.
  Tensor transpose(int64_t d0, int64_t d1) const {
    d0 = normalize_dim(d0, shape_, "Tensor::transpose");
    d1 = normalize_dim(d1, shape_, "Tensor::transpose");
    if (dim() == 0) return *this;
    Tensor t = *this;
    std::swap(t.shape_[std::size_t(d0)], t.shape_[std::size_t(d1)]);
    std::swap(t.strides_[std::size_t(d0)], t.strides_[std::size_t(d1)]);
    return t;
  }

  // A strided view with the dimensions reordered: dimension i of the view is dimension dims[i] of this
  // tensor (negative values count from the end). dims must name every dimension once.
  Tensor permute(const std::vector<int64_t>& dims) const {
    const std::vector<int64_t> order = permutation(dims, "Tensor::permute");
    Tensor t = *this;
    for (std::size_t i = 0; i < order.size(); ++i) {
      t.shape_[i] = shape_[std::size_t(order[i])];
      t.strides_[i] = strides_[std::size_t(order[i])];
    }
    return t;
  }
  // dims normalised to [0, rank), checked to name every dimension of this tensor once.
  std::vector<int64_t> permutation(const std::vector<int64_t>& dims, const char* op) const {
    std::vector<int64_t> order(dims.size());
    std::vector<bool> seen(shape_.size(), false);
    bool ok = dims.size() == shape_.size();
    for (std::size_t i = 0; ok && i < dims.size(); ++i) {
      order[i] = normalize_dim(dims[i], shape_, op);
      ok = !seen[std::size_t(order[i])];
      seen[std::size_t(order[i])] = true;
    }
    if (!ok) {
      std::string list;
      for (std::size_t i = 0; i < dims.size(); ++i) list += (i ? ", " : "") + std::to_string(dims[i]);
      throw std::invalid_argument(std::string(op) + ": dimensions (" + list + ") do not name each of the " +
                                  std::to_string(dim()) + " dimensions of shape " + shape_str(shape_) +
                                  " once");
    }
    return order;
  }
  // Elements [start, start + length) of dimension `dim`, as a view (torch.narrow).
  // A negative start counts from the end of the dimension.
  Tensor narrow(int64_t dim, int64_t start, int64_t length) const {
    const NarrowRange r = narrow_range(shape_, dim, start, length, "Tensor::narrow");
    Tensor t = *this;
    t.shape_[std::size_t(r.dim)] = length;
    t.offset_ += r.start * strides_[std::size_t(r.dim)];
    return t;
  }

  // A view with a new dimension of size 1 at position `dim` (torch.unsqueeze): dim is in [-rank - 1, rank],
  // a negative value counting from the end of the result's dimensions.
  Tensor unsqueeze(int64_t dim) const {
    const int64_t rank = this->dim();
    if (dim < -rank - 1 || dim > rank)
      throw std::out_of_range("Tensor::unsqueeze: dimension " + std::to_string(dim) + " out of range [" +
                              std::to_string(-rank - 1) + ", " + std::to_string(rank) + "] for shape " +
                              shape_str(shape_));
    const auto d = std::size_t(dim < 0 ? dim + rank + 1 : dim);
    Tensor t = *this;
    // Any stride serves a size-1 dimension; this is PyTorch's, the row-major stride when the tensor is
    // contiguous.
    const int64_t stride = d < shape_.size() ? shape_[d] * strides_[d] : 1;
    t.shape_.insert(t.shape_.begin() + std::ptrdiff_t(d), 1);
    t.strides_.insert(t.strides_.begin() + std::ptrdiff_t(d), stride);
    return t;
  }
  // A view without the size-1 dimensions (torch.squeeze).
  Tensor squeeze() const {
    Tensor t = *this;
    t.shape_.clear();
    t.strides_.clear();
    for (std::size_t d = 0; d < shape_.size(); ++d)
      if (shape_[d] != 1) {
        t.shape_.push_back(shape_[d]);
        t.strides_.push_back(strides_[d]);
      }
    return t;
  }
  // A view without dimension `dim` if its size is 1, otherwise this tensor (torch.squeeze(x, dim)). A 0-d
  // tensor accepts dimensions 0 and -1.
  Tensor squeeze(int64_t dim) const {
    const auto d = std::size_t(normalize_dim(dim, shape_, "Tensor::squeeze"));
    if (shape_.empty() || shape_[d] != 1) return *this;
    Tensor t = *this;
    t.shape_.erase(t.shape_.begin() + std::ptrdiff_t(d));
    t.strides_.erase(t.strides_.begin() + std::ptrdiff_t(d));
    return t;
  }

  // This tensor if contiguous, otherwise a contiguous copy.
  Tensor contiguous() const { return is_contiguous() ? *this : clone(); }
  // A contiguous deep copy (of an undefined tensor: an undefined tensor).
  Tensor clone() const {
    if (!defined()) return {};
    Tensor t = empty(shape_);
    if (is_contiguous()) {
      std::copy_n(data(), numel(), t.data());
    } else {
      int64_t i = 0;
      for_each_offset([&](int64_t off) { t.data()[i++] = data()[off]; });
    }
    return t;
  }
  template <std::floating_point U>
  Tensor<U> to() const {
    if (!defined()) return {};
    Tensor<U> t = Tensor<U>::empty(shape_);
    const Tensor c = contiguous();
    std::transform(c.data(), c.data() + numel(), t.data(), [](T v) { return U(v); });
    return t;
  }

  Tensor& fill_(T value) {
    require_defined("fill_");
    if (is_contiguous())
      std::fill_n(data(), numel(), value);
    else
      for_each_offset([&](int64_t off) { data()[off] = value; });
    return *this;
  }
  Tensor& zero_() { return fill_(T(0)); }
  // Copies src's elements into this tensor's elements (shapes must match; they may overlap).
  Tensor& copy_(const Tensor& src) {
    require_defined("copy_");
    src.require_defined("copy_");
    if (src.shape_ != shape_)
      throw std::invalid_argument("Tensor::copy_: source shape " + shape_str(src.shape_) +
                                  " differs from destination shape " + shape_str(shape_));
    if (src.storage_ == storage_ && src.offset_ == offset_ && src.strides_ == strides_) return *this;
    // A source sharing this storage is copied first, or the loop would read elements it already overwrote.
    const Tensor s = src.storage_ == storage_ ? src.clone() : src.contiguous();
    if (is_contiguous()) {
      std::copy_n(s.data(), numel(), data());
    } else {
      int64_t i = 0;
      for_each_offset([&](int64_t off) { data()[off] = s.data()[i++]; });
    }
    return *this;
  }

  // Zero-copy Eigen views of a contiguous 2-d (matrix) or any contiguous (vector) tensor.
  MatrixMap matrix() {
    require_matrix();
    return MatrixMap(data(), shape_[0], shape_[1]);
  }
  ConstMatrixMap matrix() const {
    require_matrix();
    return ConstMatrixMap(data(), shape_[0], shape_[1]);
  }
  VectorMap vector() {
    require_contiguous("vector");
    return VectorMap(data(), numel());
  }
  ConstVectorMap vector() const {
    require_contiguous("vector");
    return ConstVectorMap(data(), numel());
  }

  // Calls f(offset) for every element in row-major order.
  template <class F>
  void for_each_offset(F&& f) const {
    const int64_t n = numel();
    if (n == 0) return;
    Shape index(shape_.size(), 0);
    int64_t off = 0;
    for (int64_t count = 0; count < n; ++count) {
      f(off);
      for (int64_t d = dim() - 1; d >= 0; --d) {
        const auto ud = std::size_t(d);
        if (++index[ud] < shape_[ud]) {
          off += strides_[ud];
          break;
        }
        off -= strides_[ud] * (shape_[ud] - 1);
        index[ud] = 0;
      }
    }
  }

 private:
  int64_t flat_offset(std::initializer_list<int64_t> index) const {
    require_defined("at");
    if (int64_t(index.size()) != dim())
      throw std::out_of_range("Tensor::at: " + std::to_string(index.size()) +
                              " indices for a tensor of rank " + std::to_string(dim()));
    int64_t off = 0, d = 0;
    for (int64_t i : index) {
      const auto ud = std::size_t(d);
      if (i < 0 || i >= shape_[ud])
        throw std::out_of_range("Tensor::at: index " + std::to_string(i) + " out of range for dimension " +
                                std::to_string(d) + " of shape " + shape_str(shape_));
      off += i * strides_[ud];
      ++d;
    }
    return off;
  }
  void require_defined(const char* what) const {
    if (!defined()) throw std::invalid_argument(std::string("Tensor::") + what + ": the tensor is undefined");
  }
  void require_contiguous(const char* what) const {
    if (!is_contiguous())
      throw std::invalid_argument(std::string("Tensor::") + what + ": tensor of shape " + shape_str(shape_) +
                                  " is not contiguous");
  }
  void require_matrix() const {
    if (dim() != 2)
      throw std::invalid_argument("Tensor::matrix: tensor of shape " + shape_str(shape_) + " is not 2-d");
    require_contiguous("matrix");
  }

  std::shared_ptr<Storage<T>> storage_;
  int64_t offset_ = 0;
  Shape shape_;
  Shape strides_;
};

// Prints like PyTorch: nested brackets, at most `edge` items per dimension at each end.
template <class T>
std::ostream& operator<<(std::ostream& os, const Tensor<T>& t) {
  if (!t.defined()) return os << "tensor(undefined)";
  const Tensor<T> c = t.contiguous();
  constexpr int64_t edge = 3;
  std::ostringstream out;
  out << std::setprecision(4);
  auto print = [&](auto& self, int64_t d, int64_t base) -> void {
    if (d == c.dim()) {
      out << c.data()[base];
      return;
    }
    const int64_t n = c.shape()[std::size_t(d)], stride = c.strides()[std::size_t(d)];
    out << "[";
    for (int64_t i = 0; i < n; ++i) {
      if (n > 2 * edge && i == edge) {
        out << "...";
        i = n - edge - 1;
        out << (d + 1 == c.dim() ? ", " : ",\n");
        continue;
      }
      self(self, d + 1, base + i * stride);
      if (i + 1 < n) out << (d + 1 == c.dim() ? ", " : ",\n");
    }
    out << "]";
  };
  print(print, 0, 0);
  return os << "tensor(" << out.str() << ", shape=" << shape_str(t.shape()) << ")";
}

}  // namespace sumi
