#pragma once
// One whole training run of the study's autoencoder from its hyperparameters, as the autoencoder example
// does it (same initialisation, optimiser, shuffling and seeds), reporting after every epoch. Shared by the
// grid search (which records several epoch budgets from one run) and the fine-tuning example (which trains
// the reference encoder when none is given).
#include <cmath>
#include <cstdint>
#include <cstdio>
#include <filesystem>
#include <map>
#include <memory>
#include <string>
#include <vector>

#include "common/autoencoder_training.hpp"
#include "common/resume.hpp"
#include "models/autoencoder.hpp"
#include "sumi/data/data_loader.hpp"
#include "sumi/io/safetensors.hpp"
#include "sumi/nn/serialize.hpp"
#include "sumi/optim/adam.hpp"
#include "sumi/util/progress_bar.hpp"
#include "sumi/util/timer.hpp"

namespace sumi::examples {

struct AutoencoderSettings {
  int latent = 5;
  double weight_decay = 0;
  double dropout = 0;
  int batch = 300;
  double lr = 1e-3;
  uint64_t seed = 0;  // initialisation, dropout masks and shuffling
};

struct AutoencoderEpoch {
  int epoch = 0;
  double train_loss = 0, val_mse = 0;  // val_mse is NaN for an epoch that was not validated
  double seconds = 0;                  // training time of this epoch (validation excluded)
};

// A trained model with the generator its dropout draws from (which must live as long as the model).
struct AutoencoderRun {
  std::unique_ptr<Generator> generator;
  std::shared_ptr<models::Autoencoder<float>> model;
};

// Trains a new autoencoder for `epochs` epochs and calls on_epoch(const AutoencoderEpoch&) after each.
// Epoch e's result depends only on the settings and e, not on `epochs`: the learning rate is constant and
// epoch e's batch order comes from (seed, e), so a 10-epoch run is the first 10 epochs of a 20-epoch run.
// `progress` (may be null) names the progress bar options; no bar is shown when it is null. Only the epochs
// for which validate(epoch) is true are validated (by default every epoch); validation does not change the
// training.
template <class TrainSet, class ValSet, class OnEpoch, class Validate = bool (*)(int)>
AutoencoderRun train_autoencoder_run(
    const AutoencoderSettings& s, const TrainSet& train, const ValSet& validation, int epochs,
    OnEpoch&& on_epoch, const util::ProgressBarOptions* progress = nullptr,
    Validate&& validate = [](int) { return true; }) {
  AutoencoderRun run;
  run.generator = std::make_unique<Generator>(s.seed);
  run.model = std::make_shared<models::Autoencoder<float>>(s.latent, s.dropout, *run.generator);
  optim::Adam<float> optimizer(run.model->parameters(), {.lr = s.lr, .weight_decay = s.weight_decay});
  data::DataLoader train_loader(train, {.batch_size = s.batch, .shuffle = true, .seed = s.seed});
  data::DataLoader val_loader(validation, {.batch_size = 1000});
  for (int epoch = 1; epoch <= epochs; ++epoch) {
    train_loader.set_epoch(epoch - 1);
    std::unique_ptr<util::ProgressBar> bar;
    if (progress)
      bar = std::make_unique<util::ProgressBar>(
          train_loader.size(), "epoch " + std::to_string(epoch) + "/" + std::to_string(epochs), *progress);
    util::Timer timer;
    const EpochResult r = train_autoencoder_epoch(*run.model, optimizer, train_loader, bar.get());
    const double seconds = timer.elapsed_seconds();
    const double val = validate(epoch) ? evaluate_mse(*run.model, val_loader) : std::nan("");
    if (validate(epoch)) require_finite(val, "the validation MSE after epoch " + std::to_string(epoch));
    if (bar) {
      if (!std::isnan(val)) bar->set_postfix("val_mse", val);
      bar->close();
    }
    on_epoch(AutoencoderEpoch{epoch, r.mean_loss, val, seconds});
  }
  return run;
}

// " (latent 5, saved after epoch 20)" for a loaded autoencoder checkpoint, the epoch from its metadata: the
// autoencoder example saves after every epoch, so an interrupted run leaves a partly trained model at its
// output path, which the examples reading that path by default make visible this way.
inline std::string describe_autoencoder_checkpoint(const std::filesystem::path& path, int64_t latent) {
  std::string text = " (latent " + std::to_string(latent);
  const auto metadata = io::read_safetensors(path).metadata;
  if (const auto it = metadata.find("epoch"); it != metadata.end())
    text += ", saved after epoch " + it->second;
  return text + ")";
}

// The autoencoder checkpoint an example builds on: `given` when that file exists; else the reference
// autoencoder (AutoencoderSettings' defaults, `epochs` epochs, seed `seed`) trained earlier into `folder`
// when its metadata records the same `settings`; else one trained now and saved there with them. A missing
// `given` is said, not refused, so that the study's examples work before examples/autoencoder has run. The
// settings name what makes another model: another --seed draws another split, whose validation images the
// encoder must not have seen.
template <class Study>
std::filesystem::path find_or_train_reference_autoencoder(const std::string& given, const Study& study,
                                                          const std::filesystem::path& folder, int epochs,
                                                          uint64_t seed,
                                                          const std::vector<RunSetting>& settings,
                                                          bool quiet) {
  if (!given.empty() && std::filesystem::exists(given)) return given;
  const std::filesystem::path trained = folder / "autoencoder.safetensors";
  const std::string not_found = given.empty() ? "" : "autoencoder '" + given + "' not found: ";
  if (std::filesystem::exists(trained)) {
    const auto metadata = io::read_safetensors(trained).metadata;
    const RunSetting* differs = first_differing_setting(metadata, settings, true);
    if (!differs) {
      std::printf("%susing the one trained earlier: %s\n", not_found.c_str(), trained.c_str());
      return trained;
    }
    const auto recorded = metadata.find(differs->key());
    std::printf("the autoencoder in %s was trained with %s %s, not %s: training a new one\n", trained.c_str(),
                differs->flag.c_str(), recorded == metadata.end() ? "unknown" : recorded->second.c_str(),
                differs->value.c_str());
  }
  const AutoencoderSettings reference{.seed = seed};
  std::printf("%straining one into %s first (the reference autoencoder: %d epochs, latent %d, batch %d)\n",
              not_found.c_str(), trained.c_str(), epochs, reference.latent, reference.batch);
  std::fflush(stdout);
  const util::ProgressBarOptions bar{.quiet = quiet, .unit = "batch"};
  auto run = train_autoencoder_run(
      reference, *study.train, *study.validation, epochs,
      [&](const AutoencoderEpoch& e) {
        std::printf("autoencoder epoch %d: train loss %.5f, validation MSE %.5f, %.2f s\n", e.epoch,
                    e.train_loss, e.val_mse, e.seconds);
        std::fflush(stdout);
      },
      &bar);
  std::map<std::string, std::string> metadata = {{"epoch", std::to_string(epochs)},
                                                 {"latent", std::to_string(reference.latent)}};
  record_settings(metadata, settings);
  nn::save_state(*run.model, trained, metadata);
  return trained;
}

}  // namespace sumi::examples
