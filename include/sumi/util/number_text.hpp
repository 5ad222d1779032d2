// Numbers as text and back, shared by the command line, CSV files, grid parameters and checkpoint metadata.
#pragma once

#include <charconv>
#include <concepts>
#include <optional>
#include <string>
#include <string_view>
#include <system_error>

namespace sumi::util {

// Shortest text that parses back to exactly `value` ("0.1", "1e-05", "nan", "inf", "-inf").
template <std::floating_point T>
std::string format_round_trip(T value) {
  char buffer[64];
  const auto result = std::to_chars(buffer, buffer + sizeof(buffer), value);
  return std::string(buffer, result.ptr);
}

// Why parse_number refused a text.
enum class NumberError { malformed, out_of_range };

// The types parse_number reads: integers other than bool, and floating point.
template <class T>
concept ParsableNumber = (std::integral<T> && !std::same_as<T, bool>) || std::floating_point<T>;

// Parses the whole of `text` as a T with std::from_chars (decimal; for floating point also exponents, "inf"
// and "nan"), after an optional '+' sign that people type and std::from_chars refuses ("+5"; "+-5" stays
// refused). nullopt when the text is empty, not a number, has anything left over or does not fit T; `error`,
// if given, then says which.
template <ParsableNumber T>
std::optional<T> parse_number(std::string_view text, NumberError* error = nullptr) {
  if (text.size() > 1 && text.front() == '+' && text[1] != '-') text.remove_prefix(1);
  T value{};
  const auto result = std::from_chars(text.data(), text.data() + text.size(), value);
  const bool whole = !text.empty() && result.ptr == text.data() + text.size();
  if (whole && result.ec == std::errc()) return value;
  if (error)
    *error = whole && result.ec == std::errc::result_out_of_range ? NumberError::out_of_range
                                                                  : NumberError::malformed;
  return std::nullopt;
}

}  // namespace sumi::util
