// Depthwise convolution kernel benchmarks, named depthwise/<layer>/<op>/<isa>/<threads>: a MobileNet-style
// 3x3 depthwise layer on a float batch [32, 128, 56, 56], stride 1 and 2, padding 1. fwd is the forward (no
// bias), bwd_in the input gradient, bwd_w the weight gradient. GFLOPS counts 2 * N * Cout * Hout * Wout * Kh
// * Kw per iteration over wall-clock time. The scalar path is the single-threaded reference; ISAs the CPU
// lacks are registered and skipped.
#include <benchmark/benchmark.h>

#include <chrono>
#include <cstdint>
#include <random>
#include <string>
#include <vector>

#include "sumi/kernels/cpu_features.hpp"
#include "sumi/kernels/depthwise_conv.hpp"
#include "sumi/kernels/threading.hpp"

namespace {

namespace sk = sumi::kernels;

struct DepthwiseLayer {
  const char* name;
  int64_t stride;
};

const DepthwiseLayer kDepthwiseLayers[] = {{"dw3x3s1.c128.56", 1}, {"dw3x3s2.c128.56", 2}};

sk::Conv2dGeometry depthwise_geometry(const DepthwiseLayer& l) {
  return {.batch = 32,
          .in_channels = 128,
          .in_h = 56,
          .in_w = 56,
          .out_channels = 128,
          .kernel_h = 3,
          .kernel_w = 3,
          .stride_h = l.stride,
          .stride_w = l.stride,
          .pad_h = 1,
          .pad_w = 1};
}

enum class DepthwiseOp { fwd, bwd_in, bwd_w };

const char* depthwise_op_name(DepthwiseOp op) {
  return op == DepthwiseOp::fwd ? "fwd" : op == DepthwiseOp::bwd_in ? "bwd_in" : "bwd_w";
}

void bm_depthwise(benchmark::State& state, DepthwiseLayer layer, DepthwiseOp op, sk::Isa isa, int threads) {
  if (!sk::isa_supported(isa)) {
    state.SkipWithError((std::string(sk::isa_name(isa)) + " not supported by this CPU").c_str());
    return;
  }
  sk::set_isa(isa);
  sumi::set_num_threads(threads);
  const sk::Conv2dGeometry g = depthwise_geometry(layer);
  std::mt19937 gen(3);
  std::uniform_real_distribution<float> uniform(-1.0f, 1.0f);
  const auto random = [&](int64_t n) {
    std::vector<float> v(static_cast<std::size_t>(n));
    for (float& e : v) e = uniform(gen);
    return v;
  };
  std::vector<float> x = random(g.input_numel()), w = random(g.out_channels * g.kernel_h * g.kernel_w),
                     y = random(g.output_numel());
  const auto run = [&] {
    switch (op) {
      case DepthwiseOp::fwd:
        sk::depthwise_conv2d_forward(g, x.data(), w.data(), static_cast<const float*>(nullptr), y.data());
        break;
      case DepthwiseOp::bwd_in:
        sk::depthwise_conv2d_backward_input(g, y.data(), w.data(), x.data());
        break;
      case DepthwiseOp::bwd_w:
        sk::depthwise_conv2d_backward_weight(g, x.data(), y.data(), w.data());
        break;
    }
  };
  if (isa != sk::Isa::scalar) run();  // warm-up: faults the pages in
  const auto t0 = std::chrono::steady_clock::now();
  for (auto _ : state) {
    run();
    benchmark::ClobberMemory();
  }
  const double seconds = std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count();
  const double flops = 2.0 * double(g.output_numel()) * double(g.kernel_h * g.kernel_w);
  state.counters["GFLOPS"] = flops * double(state.iterations()) / seconds / 1e9;
}

const bool registered = [] {
  for (const DepthwiseLayer& layer : kDepthwiseLayers)
    for (DepthwiseOp op : {DepthwiseOp::fwd, DepthwiseOp::bwd_in, DepthwiseOp::bwd_w})
      for (sk::Isa isa : {sk::Isa::scalar, sk::Isa::avx2, sk::Isa::avx512})
        for (int threads : {1, 2}) {
          if (isa == sk::Isa::scalar && threads > 1) continue;  // the reference is single-threaded
          benchmark::RegisterBenchmark((std::string("depthwise/") + layer.name + "/" + depthwise_op_name(op) +
                                        "/" + sk::isa_name(isa) + "/" + std::to_string(threads))
                                           .c_str(),
                                       bm_depthwise, layer, op, isa, threads);
        }
  return true;
}();

}  // namespace
