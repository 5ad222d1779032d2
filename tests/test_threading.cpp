#include <omp.h>
#include <sys/syscall.h>
#include <unistd.h>

#include <algorithm>
#include <catch2/catch.hpp>
#include <cmath>
#include <cstdint>
#include <filesystem>
#include <iterator>
#include <stdexcept>
#include <thread>
#include <vector>

#include "sumi/kernels/threading.hpp"
#include "sumi/ops/batch_norm.hpp"
#include "sumi/ops/conv.hpp"
#include "sumi/ops/elementwise.hpp"
#include "sumi/ops/loss.hpp"
#include "sumi/ops/reduction.hpp"
#include "sumi/ops/shape_ops.hpp"
#include "sumi/ops/softmax.hpp"
#include "thread_count_guard.hpp"

using namespace sumi;
using VF = Variable<float>;
using TF = Tensor<float>;

namespace {

// Threads of this process: libgomp keeps a team's workers alive for as long as the thread that started the
// team lives, so the count shows how many threads the parallel regions run so far used.
std::ptrdiff_t process_threads() {
  const std::filesystem::directory_iterator tasks("/proc/self/task");
  return std::distance(std::filesystem::begin(tasks), std::filesystem::end(tasks));
}

// One forward and backward pass through every op family that has a parallel region of its own (convolution
// bias, batch norm, softmax, cross-entropy, reductions, concatenation), each large enough to go parallel.
void run_parallel_ops() {
  Generator gen(3);
  const VF x(TF::rand({64, 8, 32, 32}, gen, -1, 1), true);
  const VF w(TF::rand({16, 8, 3, 3}, gen, -0.2f, 0.2f), true), b(TF::rand({16}, gen, -1, 1), true);
  TF running_mean = TF::zeros({16}), running_var = TF::ones({16});
  const VF y = batch_norm(conv2d(x, w, b, {.padding = 1}), running_mean, running_var, VF(), VF(), true);
  const VF logits = flatten(sum(y, {3}), 1);
  std::vector<int64_t> labels(64);
  for (std::size_t i = 0; i < labels.size(); ++i) labels[i] = int64_t(i % 512);
  const VF both = concat(std::vector<VF>{logits, log_softmax(logits, 1)}, 1);
  VF loss = cross_entropy(both, labels) + mean(softmax(logits, 0));
  loss.backward();
}

// Threads the ops add to the process when run on a fresh thread whose OpenMP default is 4 threads and with
// sumi::set_num_threads(threads).
std::ptrdiff_t threads_added_by_ops(int threads) {
  std::ptrdiff_t added = -1;
  std::thread caller([&] {
    omp_set_num_threads(4);  // what OMP_NUM_THREADS=4 would give this thread
    set_num_threads(threads);
    const std::ptrdiff_t before = process_threads();
    run_parallel_ops();
    added = process_threads() - before;
  });
  caller.join();
  return added;
}

}  // namespace

TEST_CASE("set_num_threads bounds every op's parallel region, not only the convolution kernels",
          "[threads]") {
  const int saved = get_num_threads();
  // The grid search trains one configuration per std::thread with set_num_threads(1): an op that took the
  // OpenMP default instead would start a team of workers per configuration and oversubscribe the cores.
  CHECK(threads_added_by_ops(1) == 0);
  CHECK(threads_added_by_ops(3) == 2);
  set_num_threads(saved);
}

TEST_CASE("kernels called inside a user's parallel region with nesting enabled run on one thread",
          "[threads]") {
  // The weight gradients add up per-thread partial sums kept in thread_local workspaces; a nested team's
  // workers may exit (freeing those) before the caller reduces them, which gave wrong gradients.
  struct Case {
    Shape x, w;
    Conv2dOptions options;
  };
  const std::vector<Case> cases = {{{2, 40, 9, 9}, {50, 40, 3, 3}, {.padding = 1}},  // GEMM path
                                   {{40, 3, 12, 12}, {8, 3, 3, 3}, {.stride = 2}}};  // lanes path
  const int saved_levels = omp_get_max_active_levels(), saved_threads = get_num_threads();
  set_num_threads(2);
  for (const Case& c : cases) {
    Generator gen(11);
    const TF x = TF::rand(c.x, gen, -1, 1), w = TF::rand(c.w, gen, -0.3f, 0.3f);
    const auto weight_gradient = [&] {
      const VF xv(x), wv(w, true);
      sum(conv2d(xv, wv, VF(), c.options)).backward();
      return wv.grad();
    };
    const TF expected = weight_gradient();
    omp_set_max_active_levels(2);
    std::vector<float> worst(2, 0.0f);
    std::vector<int> inner_threads(2, 0);
#pragma omp parallel num_threads(2)
    {
      const int t = omp_get_thread_num();
      inner_threads[std::size_t(t)] = get_num_threads();
      for (int rep = 0; rep < 5; ++rep) {
        const TF got = weight_gradient();
        for (int64_t i = 0; i < got.numel(); ++i)
          worst[std::size_t(t)] =
              std::max(worst[std::size_t(t)], std::abs(got.data()[i] - expected.data()[i]));
      }
    }
    omp_set_max_active_levels(saved_levels);
    CHECK(inner_threads == std::vector<int>{1, 1});
    CHECK(worst[0] < 1e-3f);
    CHECK(worst[1] < 1e-3f);
  }
  set_num_threads(saved_threads);
}

TEST_CASE(
    "parallel_for runs work it does not split outside any OpenMP region, so kernels inside keep their "
    "team",
    "[threads]") {
  const test::ThreadCountGuard restore_threads;
  set_num_threads(2);
  std::vector<int> levels;
  kernels::parallel_for(3, 10,
                        [&](int64_t) { levels.push_back(omp_get_level()); });  // too little work to split
  CHECK(levels == std::vector<int>{0, 0, 0});
  // A region inside it is then a top-level one, whose workers libgomp keeps (with their thread_local kernel
  // workspaces); inside an inactive region it would be a nested one, started with new threads every time.
  std::vector<pid_t> workers;
  for (int call = 0; call < 2; ++call)
    kernels::parallel_for(1, 0, [&](int64_t) {
#pragma omp parallel num_threads(2)
      {
        if (omp_get_thread_num() == 1) workers.push_back(pid_t(syscall(SYS_gettid)));
      }
    });
  REQUIRE(workers.size() == 2);
  CHECK(workers[0] == workers[1]);
}

TEST_CASE("an exception thrown in parallel_for's threads reaches the caller", "[threads]") {
  const test::ThreadCountGuard restore_threads;
  set_num_threads(2);
  // Inside the parallel region it would end the process (std::terminate).
  std::vector<int> done(64, 0);
  REQUIRE_THROWS_WITH(kernels::parallel_for(64, int64_t(1) << 20,
                                            [&](int64_t i) {
                                              if (i == 40) throw std::runtime_error("item 40 failed");
                                              done[std::size_t(i)] = 1;
                                            }),
                      "item 40 failed");
  CHECK(std::count(done.begin(), done.end(), 1) == 63);  // the others still ran
}
