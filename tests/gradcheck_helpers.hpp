#pragma once
// What the gradient tests share: random double leaves and a finite-difference check that fails the test with
// the check's own message.
#include <catch2/catch.hpp>

#include <cstdint>
#include <functional>
#include <utility>
#include <vector>

#include "sumi/autograd/gradcheck.hpp"
#include "sumi/autograd/variable.hpp"
#include "sumi/tensor/random.hpp"

namespace sumi::test {

struct LeafOptions {
  double low = -1, high = 1;
  bool requires_grad = true;
};

// A double variable of `shape`, uniform in [low, high) from a generator seeded with `seed`.
inline Variable<double> leaf(const Shape& shape, uint64_t seed, LeafOptions options = {}) {
  Generator gen(seed);
  return Variable<double>(Tensor<double>::rand(shape, gen, options.low, options.high), options.requires_grad);
}

// gradcheck (in double) of f at `inputs`, as a REQUIRE.
inline void require_gradcheck(const std::function<Variable<double>(const std::vector<Variable<double>>&)>& f,
                              std::vector<Variable<double>> inputs) {
  const GradcheckResult r = gradcheck<double>(f, std::move(inputs));
  INFO(r.message);
  REQUIRE(r.ok);
}

}  // namespace sumi::test
