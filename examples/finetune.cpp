// The study's fine-tuning: the autoencoder's encoder with its three convolutions frozen and a new
// Linear(64, 10) head, trained as a FashionMNIST classifier with cross entropy. See --help.
#include <cmath>
#include <cstdio>
#include <filesystem>

#include "common/autoencoder_run.hpp"
#include "common/classifier_training.hpp"
#include "common/resume.hpp"
#include "common/run_start.hpp"
#include "common/study_data.hpp"
#include "models/classifier.hpp"
#include "sumi/sumi.hpp"

namespace fs = std::filesystem;
using namespace sumi;

namespace {

struct Options {
  // The autoencoder example's output, so the study's steps chain without flags (as examples/latent's).
  std::string encoder = "out/autoencoder/autoencoder.safetensors", data, out = "out/finetune";
  int epochs = 50, batch = 300, threads = 0, encoder_epochs = 20;
  int64_t seed = 0, limit = 0;
  double lr = 1e-3;
  bool cache = true, quiet = false;
};

struct EpochRow {
  int epoch;
  double train_loss, train_accuracy, val_loss, val_accuracy, seconds;
};

std::vector<std::string> class_names() {
  return {data::fashion_mnist_classes.begin(), data::fashion_mnist_classes.end()};
}

void write_metrics(const std::vector<EpochRow>& rows, const fs::path& out) {
  util::CsvTable table;
  table.header = {"epoch", "train_loss", "train_accuracy", "val_loss", "val_accuracy", "seconds"};
  std::vector<double> epochs, train_loss, val_loss, train_acc, val_acc;
  for (const auto& r : rows) {
    table.rows.push_back({std::to_string(r.epoch), util::format_round_trip(r.train_loss),
                          util::format_round_trip(r.train_accuracy), util::format_round_trip(r.val_loss),
                          util::format_round_trip(r.val_accuracy), util::format_round_trip(r.seconds)});
    epochs.push_back(r.epoch);
    train_loss.push_back(r.train_loss);
    val_loss.push_back(r.val_loss);
    train_acc.push_back(100 * r.train_accuracy);
    val_acc.push_back(100 * r.val_accuracy);
  }
  util::write_csv_atomically(out / "metrics.csv", table);
  plot::LineChart loss;
  loss.title = "Fine-tuning loss (cross entropy)";
  loss.x_label = "epoch";
  loss.y_label = "loss";
  loss.log_y = true;
  loss.add_series("train", epochs, train_loss).add_series("validation", epochs, val_loss);
  loss.save(out / "loss.svg");
  plot::LineChart accuracy;
  accuracy.title = "Fine-tuning accuracy";
  accuracy.x_label = "epoch";
  accuracy.y_label = "accuracy (%)";
  accuracy.add_series("train", epochs, train_acc).add_series("validation", epochs, val_acc);
  accuracy.save(out / "accuracy.svg");
}

// confusion.svg, per_class_accuracy.csv and test_outputs.csv (logits and label of every test image).
void write_test_outputs(const examples::ClassifierEvaluation& test, const fs::path& out) {
  const auto names = class_names();
  const std::size_t k = names.size();
  std::vector<std::vector<int64_t>> confusion(k, std::vector<int64_t>(k, 0));
  for (std::size_t i = 0; i < test.labels.size(); ++i)
    ++confusion[std::size_t(test.labels[i])][std::size_t(test.predictions[i])];
  plot::save_confusion_matrix_svg(out / "confusion.svg", confusion, names,
                                  {.title = "Fine-tuned classifier, test images"});

  util::CsvTable per_class;
  per_class.header = {"class", "name", "correct", "count", "accuracy"};
  for (std::size_t c = 0; c < k; ++c) {
    int64_t count = 0;
    for (const int64_t v : confusion[c]) count += v;
    // A class without test images has no accuracy (not 0, which would read as "always wrong").
    const double accuracy = count ? double(confusion[c][c]) / double(count) : std::nan("");
    per_class.rows.push_back({std::to_string(c), names[c], std::to_string(confusion[c][c]),
                              std::to_string(count), util::format_round_trip(accuracy)});
  }
  util::write_csv_atomically(out / "per_class_accuracy.csv", per_class);

  util::CsvTable outputs;
  const int64_t n = test.logits.size(0), classes = test.logits.size(1);
  for (int64_t c = 0; c < classes; ++c) outputs.header.push_back("out" + std::to_string(c));
  outputs.header.push_back("label");
  for (int64_t i = 0; i < n; ++i) {
    std::vector<std::string> row;
    for (int64_t c = 0; c < classes; ++c)
      row.push_back(util::format_round_trip(test.logits.data()[i * classes + c]));
    row.push_back(std::to_string(test.labels[std::size_t(i)]));
    outputs.rows.push_back(std::move(row));
  }
  util::write_csv_atomically(out / "test_outputs.csv", outputs);
}

int run(const Options& o) {
  const auto study = examples::load_study_data(o.data, uint64_t(o.seed), o.limit);
  const examples::RunFolder run_folder = examples::start_run("finetune", o.threads, o.out);
  const fs::path& out = run_folder.path;
  const auto test_view = examples::test_subset(*study, o.limit);
  examples::print_split_sizes(*study, test_view.size());

  // Another --limit or --encoder-epochs makes another encoder too.
  const fs::path encoder_path = examples::find_or_train_reference_autoencoder(
      o.encoder, *study, out, o.encoder_epochs, uint64_t(o.seed),
      {{"--seed", o.seed}, {"--limit", o.limit}, {"--encoder-epochs", o.encoder_epochs}}, o.quiet);
  Generator head_gen(uint64_t(o.seed));
  auto model = models::Classifier<float>::from_autoencoder_file(encoder_path, 10, head_gen);
  model->set_prefix_frozen(true);
  // Every parameter is handed to Adam; the frozen ones never get a gradient, so it keeps no state for them.
  optim::Adam<float> optimizer(model->parameters(), {.lr = o.lr});
  const nn::ParameterCount counts = model->count_parameters();
  std::printf("encoder: %s%s\n", encoder_path.c_str(),
              examples::describe_autoencoder_checkpoint(encoder_path, model->encoder()->latent).c_str());
  examples::write_model_summary(out / "model.txt", model->summary(), o.quiet);
  std::printf("trainable parameters: %lld, frozen: %lld\n", (long long)counts.trainable,
              (long long)counts.frozen);

  // The frozen convolutions run once per image here instead of once per image per epoch (--cache=false to
  // run them at every step; the results are the same, tests/test_finetune.cpp checks it).
  util::Timer cache_timer;
  std::optional<data::TensorDataset> train_features, val_features, test_features;
  if (o.cache) {
    train_features.emplace(examples::compute_prefix_features(*model, *study->train));
    val_features.emplace(examples::compute_prefix_features(*model, *study->validation));
    test_features.emplace(examples::compute_prefix_features(*model, test_view));
  }
  const double cache_seconds = o.cache ? cache_timer.elapsed_seconds() : 0.0;
  if (o.cache) std::printf("cached the frozen prefix's output in %.2f s\n", cache_seconds);

  // Once nothing can refuse the run: the earlier run's files that this one writes only at its end would pass
  // for its own until then.
  examples::remove_final_outputs(out, {"summary.json", "classifier.safetensors", "test_outputs.csv",
                                       "per_class_accuracy.csv", "confusion.svg"});
  const data::DataLoaderOptions train_options{
      .batch_size = o.batch, .shuffle = true, .seed = uint64_t(o.seed)};
  const data::DataLoaderOptions eval_options{.batch_size = 1000};
  std::vector<EpochRow> rows;
  // One loop for both inputs: `train` and `val` are loaders over cached features or over images.
  auto train_and_test = [&](auto& train, auto& val, auto& test) {
    for (int epoch = 1; epoch <= o.epochs; ++epoch) {
      train.set_epoch(epoch - 1);
      util::ProgressBar bar(train.size(), "epoch " + std::to_string(epoch) + "/" + std::to_string(o.epochs),
                            {.quiet = o.quiet, .unit = "batch"});
      util::Timer timer;
      const examples::ClassifierEpoch r = examples::train_classifier_epoch(*model, optimizer, train, &bar);
      const double seconds = timer.elapsed_seconds();
      const examples::ClassifierEvaluation v = examples::evaluate_classifier(*model, val);
      examples::require_finite(v.loss, "the validation loss after epoch " + std::to_string(epoch));
      bar.set_postfix("val_acc", v.accuracy);
      bar.close();
      rows.push_back({epoch, r.loss, r.accuracy, v.loss, v.accuracy, seconds});
      std::printf(
          "epoch %d: train loss %.4f, accuracy %.2f%%; validation loss %.4f, accuracy %.2f%%; %.3f s\n",
          epoch, r.loss, 100 * r.accuracy, v.loss, 100 * v.accuracy, seconds);
      std::fflush(stdout);
      write_metrics(rows, out);
    }
    return examples::evaluate_classifier(*model, test, true);
  };
  examples::ClassifierEvaluation test;
  if (o.cache) {
    data::DataLoader train(*train_features, train_options), val(*val_features, eval_options),
        test_loader(*test_features, eval_options);
    test = train_and_test(train, val, test_loader);
  } else {
    data::DataLoader train(*study->train, train_options), val(*study->validation, eval_options),
        test_loader(test_view, eval_options);
    test = train_and_test(train, val, test_loader);
  }

  write_test_outputs(test, out);
  nn::save_state(*model, out / "classifier.safetensors",
                 {{"epoch", std::to_string(o.epochs)}, {"encoder", encoder_path.string()}});
  double train_seconds = 0;
  for (const auto& r : rows) train_seconds += r.seconds;
  const nlohmann::json summary = {
      {"test_accuracy", test.accuracy},
      {"test_loss", test.loss},
      {"val_accuracy", rows.back().val_accuracy},
      {"val_loss", rows.back().val_loss},
      {"train_accuracy", rows.back().train_accuracy},
      {"train_loss", rows.back().train_loss},
      {"epochs", o.epochs},
      {"seconds_per_epoch", train_seconds / double(rows.size())},
      {"feature_cache", o.cache},
      {"feature_cache_seconds", cache_seconds},
      {"trainable_parameters", counts.trainable},
      {"frozen_parameters", counts.frozen},
      {"optimizer_states", optimizer.num_states()},
      {"encoder", encoder_path.string()},
      {"batch", o.batch},
      {"lr", o.lr},
      {"seed", o.seed},
      {"threads", get_num_threads()},
      {"train_images", study->train->size()},
      {"test_images", test_view.size()},
      {"max_rss_mb", util::max_rss_mb()},
      {"sumi_version", SUMI_VERSION},
  };
  util::write_json_atomically(out / "summary.json", summary);
  std::printf(
      "test accuracy %.2f%%, %.3f s per epoch; outputs: metrics.csv loss.svg accuracy.svg confusion.svg "
      "per_class_accuracy.csv test_outputs.csv classifier.safetensors model.txt summary.json\n",
      100 * test.accuracy, train_seconds / double(rows.size()));
  return 0;
}

}  // namespace

int main(int argc, char** argv) {
  Options o;
  util::ArgParser cli(
      "Fine-tunes the autoencoder's encoder as a FashionMNIST classifier: the three convolutions frozen, "
      "Linear(288, 64) trained, a new Linear(64, 10) head; cross entropy, Adam.");
  cli.bind(
      "--encoder", o.encoder,
      "autoencoder.safetensors written by examples/autoencoder (empty or missing: train one into --out, or "
      "use the one trained there before with the same --seed, --limit and --encoder-epochs)");
  cli.bind("--encoder-epochs", o.encoder_epochs,
           "epochs of the autoencoder trained when no --encoder is found")
      .min(1);
  cli.bind("--epochs", o.epochs, "fine-tuning epochs").min(1);
  cli.bind("--batch", o.batch, "batch size").min(1);
  cli.bind("--lr", o.lr, "Adam learning rate").check([](double v) { return v > 0; }, "must be > 0");
  cli.bind("--seed", o.seed, "seed of the split, new head and shuffling");
  examples::bind_threads_flag(cli, o.threads);
  cli.bind("--data", o.data,
           "FashionMNIST folder; when empty, $SUMI_DATA or else /usr/share/datasets/fashion-mnist");
  cli.bind("--out", o.out, "output folder");
  examples::bind_limit_flag(cli, o.limit);
  cli.bind("--cache", o.cache,
           "compute the frozen convolutions once per image (--cache=false: at every step)");
  cli.bind("--quiet", o.quiet, "no progress bars or model summary");
  return util::run_main(cli, argc, argv, [&] { return run(o); });
}
