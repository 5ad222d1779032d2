#pragma once
// IntPair: the (height, width) settings of the 2-d ops (kernel size, stride, padding, dilation).
#include <cstddef>
#include <cstdint>
#include <stdexcept>
#include <string>
#include <vector>

namespace sumi {

// The largest stride, padding or dilation the 2-d ops take (and pooling's kernel size; a convolution's comes
// from its weight): far beyond any real layer, and small enough that no window or output-size product of
// theirs overflows int64.
inline constexpr int64_t kMaxIntPairValue = int64_t(1) << 24;

// A (height, width) pair of convolution or pooling parameters; a single integer sets both.
struct IntPair {
  int64_t h = 0, w = 0;
  constexpr IntPair() = default;
  constexpr IntPair(int64_t both) : h(both), w(both) {}  // implicit: `.stride = 2`
  constexpr IntPair(int64_t height, int64_t width) : h(height), w(width) {}
  friend constexpr bool operator==(const IntPair&, const IntPair&) = default;
  std::string to_string() const {
    std::string s = "(";  // appended piecewise: GCC 12 warns falsely (-Wrestrict) on "(" + std::string
    s += std::to_string(h);
    s += ", ";
    s += std::to_string(w);
    s += ")";
    return s;
  }
};

namespace detail {

// Refuses the input of a 2-d pooling or resampling op (its sizes in `shape`, spatial ones last) with an
// empty dimension from `first` on, or a spatial size above 2^48, past which window and output-size products
// could overflow int64. `input` names the op and the shape in the errors.
inline void require_2d_input_sizes(const std::string& input, const std::vector<int64_t>& shape,
                                   std::size_t first) {
  for (std::size_t i = first; i < shape.size(); ++i)
    if (shape[i] < 1) throw std::invalid_argument(input + " has an empty channel or spatial dimension");
  const std::size_t r = shape.size();
  if (r >= 2 && (shape[r - 2] > kMaxIntPairValue * kMaxIntPairValue ||
                 shape[r - 1] > kMaxIntPairValue * kMaxIntPairValue))
    throw std::invalid_argument(input + " has a spatial size above 2^48");
}

}  // namespace detail

}  // namespace sumi
