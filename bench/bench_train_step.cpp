// One training step of the study's autoencoder (forward, MSE loss, backward, Adam) on a fixed batch of random
// images, on one thread as each of the grid search's two jobs runs: the unit the grid's wall time is made of.
// Arguments: latent size, dropout in percent, batch size.
#include <benchmark/benchmark.h>

#include "models/autoencoder.hpp"
#include "sumi/sumi.hpp"

namespace {

void autoencoder_train_step(benchmark::State& state) {
  const int64_t latent = state.range(0), batch = state.range(2);
  const double dropout = double(state.range(1)) / 100.0;
  const int threads = sumi::get_num_threads();
  sumi::set_num_threads(1);
  sumi::Generator gen(0);
  sumi::models::Autoencoder<float> model(latent, dropout, gen);
  sumi::optim::Adam<float> optimizer(model.parameters(), {.lr = 1e-3, .weight_decay = 1e-5});
  const sumi::Variable<float> x(sumi::Tensor<float>::rand({batch, 1, 28, 28}, gen, 0.0, 1.0));
  for (auto _ : state) {
    sumi::Variable<float> loss = sumi::mse_loss(model(x), x);
    optimizer.zero_grad();
    loss.backward();
    optimizer.step();
    benchmark::DoNotOptimize(loss.item());
  }
  state.counters["images_per_s"] =
      benchmark::Counter(double(batch) * double(state.iterations()), benchmark::Counter::kIsRate);
  sumi::set_num_threads(threads);
}

BENCHMARK(autoencoder_train_step)
    ->ArgNames({"latent", "dropout_pct", "batch"})
    ->Args({10, 25, 300})
    ->Args({5, 0, 600})
    ->Unit(benchmark::kMillisecond)
    ->MinTime(2.0);

}  // namespace
