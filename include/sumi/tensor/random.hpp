#pragma once
// A seedable random generator that gives the same numbers on every platform and thread count.
// std::mt19937 is portable but std::*_distribution is not, so the distributions are written out here.
#include <array>
#include <bit>
#include <cmath>
#include <cstdint>
#include <cstdio>
#include <numbers>
#include <sstream>
#include <stdexcept>
#include <string>

namespace sumi {

// xoshiro256** seeded through splitmix64.
class Generator {
 public:
  explicit Generator(uint64_t seed = 0x5eed) { manual_seed(seed); }

  void manual_seed(uint64_t seed) {
    for (auto& word : state_) {
      seed += 0x9e3779b97f4a7c15ull;
      uint64_t z = seed;
      z = (z ^ (z >> 30)) * 0xbf58476d1ce4e5b9ull;
      z = (z ^ (z >> 27)) * 0x94d049bb133111ebull;
      word = z ^ (z >> 31);
    }
    has_spare_normal_ = false;
  }

  uint64_t next_u64() {
    const uint64_t result = rotl(state_[1] * 5, 7) * 9;
    const uint64_t t = state_[1] << 17;
    state_[2] ^= state_[0];
    state_[3] ^= state_[1];
    state_[1] ^= state_[2];
    state_[0] ^= state_[3];
    state_[2] ^= t;
    state_[3] = rotl(state_[3], 45);
    return result;
  }

  // Uniform in [0, 1) with 53 random bits.
  double uniform() { return double(next_u64() >> 11) * 0x1.0p-53; }
  double uniform(double low, double high) { return low + (high - low) * uniform(); }

  // Uniform integer in [0, n).
  uint64_t below(uint64_t n) {
    if (n == 0) throw std::invalid_argument("Generator::below: the range [0, 0) is empty");
    // Rejection sampling removes the modulo bias.
    const uint64_t limit = UINT64_MAX - UINT64_MAX % n;
    uint64_t r;
    do r = next_u64();
    while (r >= limit);
    return r % n;
  }

  // Standard normal by the Box-Muller transform.
  double normal() {
    if (has_spare_normal_) {
      has_spare_normal_ = false;
      return spare_normal_;
    }
    double u1;
    do u1 = uniform();
    while (u1 <= 0.0);
    const double u2 = uniform();
    const double radius = std::sqrt(-2.0 * std::log(u1));
    spare_normal_ = radius * std::sin(2.0 * std::numbers::pi * u2);
    has_spare_normal_ = true;
    return radius * std::cos(2.0 * std::numbers::pi * u2);
  }
  double normal(double mean, double stddev) { return mean + stddev * normal(); }

  // Everything the next numbers depend on, to save with a checkpoint and restore (as torch.Generator's
  // get_state / set_state): a resumed run then draws what an uninterrupted one would have.
  struct State {
    std::array<uint64_t, 4> words{};
    bool has_spare_normal = false;
    double spare_normal = 0.0;
    friend bool operator==(const State&, const State&) = default;
  };
  State get_state() const {
    return {{state_[0], state_[1], state_[2], state_[3]}, has_spare_normal_, spare_normal_};
  }
  // Throws std::invalid_argument for the all-zero state, which xoshiro256** never leaves (every draw 0).
  void set_state(const State& s) {
    if (s.words[0] == 0 && s.words[1] == 0 && s.words[2] == 0 && s.words[3] == 0)
      throw std::invalid_argument(
          "generator state: all four state words are zero, a state xoshiro256** never leaves");
    for (std::size_t i = 0; i < 4; ++i) state_[i] = s.words[i];
    has_spare_normal_ = s.has_spare_normal;
    spare_normal_ = s.spare_normal;
  }

 private:
  static uint64_t rotl(uint64_t x, int k) { return (x << k) | (x >> (64 - k)); }
  uint64_t state_[4] = {};
  bool has_spare_normal_ = false;
  double spare_normal_ = 0.0;
};

// The generator used when none is passed explicitly.
inline Generator& default_generator() {
  static Generator generator;
  return generator;
}

inline void manual_seed(uint64_t seed) {
  default_generator().manual_seed(seed);
}

// A generator state as text, for checkpoint metadata: six 16-digit hex words (the four state words, the
// spare-normal flag and the spare normal's bits), separated by spaces.
inline std::string generator_state_to_string(const Generator::State& s) {
  char text[6 * 17];
  std::snprintf(
      text, sizeof text, "%016llx %016llx %016llx %016llx %016llx %016llx", (unsigned long long)s.words[0],
      (unsigned long long)s.words[1], (unsigned long long)s.words[2], (unsigned long long)s.words[3],
      (unsigned long long)s.has_spare_normal, (unsigned long long)std::bit_cast<uint64_t>(s.spare_normal));
  return text;
}

// The inverse of generator_state_to_string; throws std::invalid_argument naming the text when it is not one.
inline Generator::State generator_state_from_string(const std::string& text) {
  std::istringstream in(text);
  uint64_t w[6];
  for (uint64_t& word : w) {
    std::string token;
    if (!(in >> token) || token.size() != 16 ||
        token.find_first_not_of("0123456789abcdef") != std::string::npos)
      throw std::invalid_argument("generator state: expected six 16-digit hex words, got '" + text + "'");
    word = std::stoull(token, nullptr, 16);
  }
  std::string rest;
  if (in >> rest || w[4] > 1)
    throw std::invalid_argument("generator state: expected six 16-digit hex words, got '" + text + "'");
  if (w[0] == 0 && w[1] == 0 && w[2] == 0 && w[3] == 0)
    throw std::invalid_argument("generator state: '" + text +
                                "' has four zero state words, a state "
                                "xoshiro256** never leaves");
  return {{w[0], w[1], w[2], w[3]}, w[4] == 1, std::bit_cast<double>(w[5])};
}

}  // namespace sumi
