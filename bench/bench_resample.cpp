// Pooling and resampling kernel benchmarks, named resample/<case>/<fwd|bwd>/<threads>: max and average
// pooling, nearest and bilinear x2 upsampling and adaptive average pooling over a DCGAN-sized float batch
// [128, 64, 32, 32] (the pools and the adaptive pool shrink it, the upsamplings double it). GB/s counts the
// input and output planes read and written once per iteration.
#include <benchmark/benchmark.h>

#include <chrono>
#include <cstdint>
#include <cstdlib>
#include <random>
#include <string>
#include <vector>

#include "sumi/kernels/cpu_features.hpp"
#include "sumi/kernels/pooling.hpp"
#include "sumi/kernels/resample.hpp"
#include "sumi/kernels/threading.hpp"

namespace {

namespace sk = sumi::kernels;

constexpr int64_t kPlanes = 128 * 64, kSize = 32;

enum class Case { max_pool_3s2p1, avg_pool_2, nearest_x2, bilinear_x2, adaptive_avg_to_7 };

const char* case_name(Case c) {
  switch (c) {
    case Case::max_pool_3s2p1:
      return "max_pool2d_k3s2p1";
    case Case::avg_pool_2:
      return "avg_pool2d_k2";
    case Case::nearest_x2:
      return "nearest_x2";
    case Case::bilinear_x2:
      return "bilinear_x2";
    case Case::adaptive_avg_to_7:
      return "adaptive_avg_pool2d_7x7";
  }
  return "";
}

const sk::Pool2dGeometry kMaxPool{.planes = kPlanes,
                                  .in_h = kSize,
                                  .in_w = kSize,
                                  .kernel_h = 3,
                                  .kernel_w = 3,
                                  .stride_h = 2,
                                  .stride_w = 2,
                                  .pad_h = 1,
                                  .pad_w = 1};
const sk::Pool2dGeometry kAvgPool{.planes = kPlanes,
                                  .in_h = kSize,
                                  .in_w = kSize,
                                  .kernel_h = 2,
                                  .kernel_w = 2,
                                  .stride_h = 2,
                                  .stride_w = 2};

sk::Resample2dGeometry resample_geometry(Case c) {
  switch (c) {
    case Case::max_pool_3s2p1:
      return {.planes = kPlanes,
              .in_h = kSize,
              .in_w = kSize,
              .out_h = kMaxPool.out_h(),
              .out_w = kMaxPool.out_w()};
    case Case::avg_pool_2:
      return {.planes = kPlanes,
              .in_h = kSize,
              .in_w = kSize,
              .out_h = kAvgPool.out_h(),
              .out_w = kAvgPool.out_w()};
    case Case::nearest_x2:
    case Case::bilinear_x2:
      return {.planes = kPlanes, .in_h = kSize, .in_w = kSize, .out_h = 2 * kSize, .out_w = 2 * kSize};
    case Case::adaptive_avg_to_7:
      return {.planes = kPlanes, .in_h = kSize, .in_w = kSize, .out_h = 7, .out_w = 7};
  }
  return {};
}

void bm_resample(benchmark::State& state, Case c, bool backward, int threads) {
  // The ISA SUMI_ISA names (the best one when unset), whatever an earlier benchmark of the binary set.
  sk::set_isa(sk::isa_from_environment(std::getenv("SUMI_ISA")));
  sumi::set_num_threads(threads);
  const sk::Resample2dGeometry g = resample_geometry(c);
  std::vector<float> x(std::size_t(g.planes * g.in_plane())), y(std::size_t(g.planes * g.out_plane()));
  std::vector<int64_t> argmax(y.size());
  std::mt19937 gen(1);
  std::normal_distribution<float> normal;
  for (float& v : x) v = normal(gen);
  for (float& v : y) v = normal(gen);
  const auto run = [&] {
    switch (c) {
      case Case::max_pool_3s2p1:
        if (backward)
          sk::max_pool2d_backward(kMaxPool, y.data(), argmax.data(), x.data());
        else
          sk::max_pool2d_forward(kMaxPool, x.data(), y.data(), argmax.data());
        break;
      case Case::avg_pool_2:
        if (backward)
          sk::avg_pool2d_backward(kAvgPool, y.data(), x.data(), true);
        else
          sk::avg_pool2d_forward(kAvgPool, x.data(), y.data(), true);
        break;
      case Case::nearest_x2:
        if (backward)
          sk::upsample_nearest2d_backward(g, {}, y.data(), x.data());
        else
          sk::upsample_nearest2d_forward(g, {}, x.data(), y.data());
        break;
      case Case::bilinear_x2:
        if (backward)
          sk::upsample_bilinear2d_backward(g, false, {}, y.data(), x.data());
        else
          sk::upsample_bilinear2d_forward(g, false, {}, x.data(), y.data());
        break;
      case Case::adaptive_avg_to_7:
        if (backward)
          sk::adaptive_avg_pool2d_backward(g, y.data(), x.data());
        else
          sk::adaptive_avg_pool2d_forward(g, x.data(), y.data());
        break;
    }
  };
  // The max pool's backward reads the argmax its forward writes.
  if (c == Case::max_pool_3s2p1) sk::max_pool2d_forward(kMaxPool, x.data(), y.data(), argmax.data());
  run();  // warm-up: faults the pages in
  const auto t0 = std::chrono::steady_clock::now();
  for (auto _ : state) {
    run();
    benchmark::ClobberMemory();
  }
  const double seconds = std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count();
  const double bytes = double(x.size() + y.size()) * sizeof(float);
  state.counters["GB/s"] = bytes * double(state.iterations()) / seconds / 1e9;
}

const bool registered = [] {
  for (Case c :
       {Case::max_pool_3s2p1, Case::avg_pool_2, Case::nearest_x2, Case::bilinear_x2, Case::adaptive_avg_to_7})
    for (bool backward : {false, true})
      for (int threads : {1, 2})
        benchmark::RegisterBenchmark(("resample/" + std::string(case_name(c)) + "/" +
                                      (backward ? "bwd" : "fwd") + "/" + std::to_string(threads))
                                         .c_str(),
                                     bm_resample, c, backward, threads);
  return true;
}();

}  // namespace
