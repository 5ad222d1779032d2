// Batched matmul benchmarks, named matmul/<case>/<fwd|fwd_bwd>/<threads>: float products through autograd
// (sumi::matmul), forward alone and forward plus the backward of both operands. Cases: many small products
// (64 of 64x64, an attention's heads), a few mid-sized ones (8 of 256x256), two large ones (2 of 512x512),
// and many small products against one broadcast right operand ([64, 64, 64] @ [1, 64, 64]), whose gradient
// sums over the batch. GFLOP/s counts 2 n k m multiply-adds per product, three products with the backward.
#include <benchmark/benchmark.h>

#include <chrono>
#include <cstdint>
#include <string>

#include "sumi/kernels/threading.hpp"
#include "sumi/ops/elementwise.hpp"
#include "sumi/ops/linalg.hpp"
#include "sumi/ops/reduction.hpp"
#include "sumi/tensor/random.hpp"

namespace {

struct MatmulCase {
  const char* name;
  sumi::Shape a, b;
};

const MatmulCase kCases[] = {
    {"64x64x64_batch64", {64, 64, 64}, {64, 64, 64}},
    {"256x256x256_batch8", {8, 256, 256}, {8, 256, 256}},
    {"512x512x512_batch2", {2, 512, 512}, {2, 512, 512}},
    {"64x64x64_batch64_broadcast", {64, 64, 64}, {1, 64, 64}},
};

void bm_matmul(benchmark::State& state, const MatmulCase& c, bool backward, int threads) {
  sumi::set_num_threads(threads);
  sumi::Generator gen(7);
  using V = sumi::Variable<float>;
  V a(sumi::Tensor<float>::randn(c.a, gen), backward), b(sumi::Tensor<float>::randn(c.b, gen), backward);
  const V upstream(sumi::Tensor<float>::randn({c.a[0], c.a[1], c.b[2]}, gen));
  const auto run = [&] {
    const V product = sumi::matmul(a, b);
    if (backward) {
      a.zero_grad();
      b.zero_grad();
      sumi::sum(sumi::mul(product, upstream)).backward();
    }
  };
  run();  // warm-up
  const auto t0 = std::chrono::steady_clock::now();
  for (auto _ : state) {
    run();
    benchmark::ClobberMemory();
  }
  const double seconds = std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count();
  const double flops = 2.0 * double(c.a[0] * c.a[1] * c.a[2] * c.b[2]) * (backward ? 3 : 1);
  state.counters["GFLOP/s"] = flops * double(state.iterations()) / seconds / 1e9;
}

const bool registered = [] {
  for (const MatmulCase& c : kCases)
    for (bool backward : {false, true})
      for (int threads : {1, 2})
        benchmark::RegisterBenchmark(("matmul/" + std::string(c.name) + "/" + (backward ? "fwd_bwd" : "fwd") +
                                      "/" + std::to_string(threads))
                                         .c_str(),
                                     bm_matmul, c, backward, threads);
  return true;
}();

}  // namespace
