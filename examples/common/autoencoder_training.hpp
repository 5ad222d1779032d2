#pragma once
// One training epoch and one evaluation pass of an autoencoder with MSE loss, shared by the autoencoder and
// grid-search examples.
#include <cmath>
#include <stdexcept>
#include <string>

#include "common/divergence.hpp"
#include "sumi/autograd/grad_mode.hpp"
#include "sumi/data/data_loader.hpp"
#include "sumi/nn/module.hpp"
#include "sumi/ops/loss.hpp"
#include "sumi/optim/optimizer.hpp"
#include "sumi/tensor/allocator.hpp"
#include "sumi/util/progress_bar.hpp"

namespace sumi::examples {

struct EpochResult {
  double mean_loss = 0;
  // Heap allocations per step after the first two steps of the epoch (the steady state), or -1 when the
  // epoch had too few steps to tell.
  double heap_allocations_per_step = -1;
};

// Mean training loss over the epoch, weighted by batch size. Throws if the loss becomes NaN or infinite.
template <class Model, class Loader>
EpochResult train_autoencoder_epoch(Model& model, optim::Optimizer<float>& optimizer, Loader& loader,
                                    util::ProgressBar* bar = nullptr) {
  model.train();
  double total = 0;
  int64_t seen = 0, step = 0;
  uint64_t allocations_at_step2 = 0;
  int64_t steady_steps = 0;
  EpochResult result;
  for (const data::Batch& batch : loader) {
    if (batch.size() != loader.options().batch_size && step > 0) steady_steps = -1;  // a short last batch
    if (step == 2) allocations_at_step2 = CachingAllocator::instance().stats().heap_allocations;
    const Variable<float> x(batch.images);
    Variable<float> loss = mse_loss(model(x), x);
    const float value = loss.item();
    require_finite(value, "the loss at step " + std::to_string(step));
    optimizer.zero_grad();
    loss.backward();
    optimizer.step();
    total += double(value) * double(batch.size());
    seen += batch.size();
    ++step;
    if (step > 2 && steady_steps >= 0) {
      steady_steps = step - 2;
      result.heap_allocations_per_step =
          double(CachingAllocator::instance().stats().heap_allocations - allocations_at_step2) /
          double(steady_steps);
    }
    if (bar) {
      bar->set_postfix("loss", value);
      bar->update();
    }
  }
  result.mean_loss = seen ? total / double(seen) : 0.0;
  return result;
}

// Mean squared reconstruction error over every pixel of the loader's images, in eval mode.
template <class Model, class Loader>
double evaluate_mse(Model& model, Loader& loader) {
  model.eval();
  NoGradGuard no_grad;
  double total = 0;
  int64_t pixels = 0;
  for (const data::Batch& batch : loader) {
    const Variable<float> x(batch.images);
    total += double(mse_loss(model(x), x).item()) * double(batch.images.numel());
    pixels += batch.images.numel();
  }
  model.train();
  return pixels ? total / double(pixels) : 0.0;
}

}  // namespace sumi::examples
