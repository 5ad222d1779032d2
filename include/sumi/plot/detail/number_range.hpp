#pragma once
// Charts accept data as any range of numbers (std::vector<float>, std::span<const double>, std::array<int>,
// ...) and store it as doubles.
#include <ranges>
#include <type_traits>
#include <vector>

namespace sumi::plot::detail {

template <class Range>
concept NumberRange =
    std::ranges::input_range<Range> && std::is_arithmetic_v<std::ranges::range_value_t<Range>>;

template <NumberRange Range>
std::vector<double> to_doubles(const Range& values) {
  std::vector<double> out;
  if constexpr (std::ranges::sized_range<Range>) out.reserve(std::ranges::size(values));
  for (const auto& value : values) out.push_back(static_cast<double>(value));
  return out;
}

}  // namespace sumi::plot::detail
