// The study's convolutional autoencoder on FashionMNIST: trains, plots the loss curves, shows
// reconstructions of test images and saves the model. See --help.
#include <cstdio>
#include <filesystem>
#include <numeric>

#include "common/autoencoder_training.hpp"
#include "common/resume.hpp"
#include "common/run_start.hpp"
#include "common/study_data.hpp"
#include "models/autoencoder.hpp"
#include "sumi/sumi.hpp"

namespace fs = std::filesystem;
using namespace sumi;

namespace {

struct Options {
  int latent = 5, epochs = 20, batch = 300, threads = 0;
  int64_t seed = 0, limit = 0;
  double lr = 1e-3, weight_decay = 0, dropout = 0;
  std::string data, out = "out/autoencoder";
  bool resume = false, quiet = false;
};

struct EpochRow {
  int64_t epoch;
  double train_loss, val_mse, seconds;
};

void write_loss_chart(const std::vector<EpochRow>& rows, const fs::path& path) {
  std::vector<double> epochs, train, val;
  for (const auto& r : rows) {
    epochs.push_back(double(r.epoch));
    train.push_back(r.train_loss);
    val.push_back(r.val_mse);
  }
  plot::LineChart chart;
  chart.title = "Autoencoder loss (MSE)";
  chart.x_label = "epoch";
  chart.y_label = "loss";
  chart.log_y = true;
  chart.add_series("train", epochs, train);
  chart.add_series("validation", epochs, val);
  chart.save(path);
}

void write_metrics(const std::vector<EpochRow>& rows, const fs::path& path) {
  util::CsvTable table;
  table.header = {"epoch", "train_loss", "val_mse", "epoch_seconds"};
  for (const auto& r : rows)
    table.rows.push_back({std::to_string(r.epoch), util::format_round_trip(r.train_loss),
                          util::format_round_trip(r.val_mse), util::format_round_trip(r.seconds)});
  util::write_csv_atomically(path, table);
}

std::vector<EpochRow> read_metrics(const fs::path& path) {
  return examples::read_metrics_rows(path, [](const util::CsvTable& t, std::size_t i) {
    return EpochRow{t.integer(i, "epoch"), t.number(i, "train_loss"), t.number(i, "val_mse"),
                    t.number(i, "epoch_seconds")};
  });
}

// Originals of the first test images above their reconstructions.
void write_reconstructions(models::Autoencoder<float>& model, const data::MnistDataset& test,
                           const fs::path& path) {
  const int64_t n = std::min<int64_t>(8, test.size());
  std::vector<int64_t> idx(static_cast<std::size_t>(n));
  std::iota(idx.begin(), idx.end(), int64_t{0});
  Tensor<float> images;
  std::vector<int64_t> labels;
  test.get_batch(idx, images, labels);
  model.eval();
  NoGradGuard no_grad;
  const Tensor<float> rec = model(Variable<float>(images)).value();
  plot::ComparisonOptions figure;
  figure.grid.nrow = int(n);
  figure.grid.upscale = 4;
  figure.grid.normalize = plot::Normalize::none;
  plot::save_comparison_grid({images.data(), n, 1, 28, 28}, {rec.data(), n, 1, 28, 28}, path, figure);
  model.train();
}

int run(const Options& o) {
  // The data and the model first: a missing or corrupt dataset, or a model too large for memory, leaves no
  // empty output folder behind.
  const auto study = examples::load_study_data(o.data, uint64_t(o.seed), o.limit);
  Generator init_gen(uint64_t(o.seed));
  models::Autoencoder<float> model(o.latent, o.dropout, init_gen);
  optim::Adam<float> optimizer(model.parameters(), {.lr = o.lr, .weight_decay = o.weight_decay});
  const examples::RunFolder run_folder = examples::start_run("autoencoder", o.threads, o.out);
  const fs::path& out = run_folder.path;
  const auto test_view = examples::test_subset(*study, o.limit);
  examples::print_split_sizes(*study, test_view.size());

  const fs::path checkpoint = out / "autoencoder.safetensors", metrics_path = out / "metrics.csv";
  const std::vector<examples::RunSetting> settings = {
      {"--seed", o.seed},       {"--limit", o.limit}, {"--batch", o.batch},
      {"--dropout", o.dropout}, {"--lr", o.lr},       {"--weight-decay", o.weight_decay}};
  std::vector<EpochRow> rows;
  int first_epoch = 1;
  if (o.resume && fs::exists(checkpoint)) {
    const auto loaded = nn::load_state(model, checkpoint, {.prefix = "", .strict = true});
    const int64_t saved_epoch = nn::metadata_integer(loaded.metadata, "epoch", checkpoint, 1);
    if (saved_epoch >= o.epochs)  // a resume that trains nothing is a mistake
      throw util::CliError("--epochs", checkpoint.string() + " was saved after epoch " +
                                           std::to_string(saved_epoch) + " but --epochs is " +
                                           std::to_string(o.epochs) + ": ask for more to resume");
    if (nn::metadata_integer(loaded.metadata, "latent", checkpoint, 1) != o.latent)
      throw std::runtime_error(checkpoint.string() + ": metadata 'latent' is " +
                               loaded.metadata.at("latent") + " but the weights and --latent say " +
                               std::to_string(o.latent));
    examples::check_resumed_settings(loaded.metadata, settings, checkpoint);
    examples::load_complete_optimizer_state(optimizer, loaded.extra.strip_prefix("optimizer."), checkpoint);
    first_epoch = int(saved_epoch) + 1;
    // the dropout masks' generator, so that a resumed run draws what an uninterrupted one would have
    if (const auto it = loaded.metadata.find("generator"); it != loaded.metadata.end()) {
      try {
        init_gen.set_state(generator_state_from_string(it->second));
      } catch (const std::invalid_argument& e) {
        throw std::runtime_error(checkpoint.string() + ": " + e.what());
      }
    } else if (o.dropout > 0) {
      std::printf("note: %s has no generator state; dropout masks will differ from an uninterrupted run\n",
                  checkpoint.c_str());
    }
    rows = read_metrics(metrics_path);
    if (rows.size() < std::size_t(saved_epoch))
      throw std::runtime_error(metrics_path.string() + " has " + std::to_string(rows.size()) +
                               " rows but the checkpoint was saved after epoch " +
                               std::to_string(saved_epoch));
    rows.resize(std::size_t(saved_epoch));
    std::printf("resumed from %s after epoch %d\n", checkpoint.c_str(), first_epoch - 1);
  } else if (o.resume) {
    std::printf("note: --resume: no checkpoint %s, so training starts from epoch 1\n", checkpoint.c_str());
  }
  // After the resume checks, so that a refused resume leaves the folder's model.txt as it was.
  examples::write_model_summary(out / "model.txt", model.summary(), o.quiet);
  examples::remove_final_outputs(out, {"summary.json", "reconstructions.png"});

  data::DataLoader train_loader(*study->train,
                                {.batch_size = o.batch, .shuffle = true, .seed = uint64_t(o.seed)});
  data::DataLoader val_loader(*study->validation, {.batch_size = 1000});
  data::DataLoader test_loader(test_view, {.batch_size = 1000});
  double allocations_per_step = -1;
  for (int epoch = first_epoch; epoch <= o.epochs; ++epoch) {
    train_loader.set_epoch(epoch - 1);
    util::ProgressBar bar(train_loader.size(),
                          "epoch " + std::to_string(epoch) + "/" + std::to_string(o.epochs),
                          {.quiet = o.quiet, .unit = "batch"});
    util::Timer timer;
    const examples::EpochResult r = examples::train_autoencoder_epoch(model, optimizer, train_loader, &bar);
    const double seconds = timer.elapsed_seconds();
    const double val = examples::evaluate_mse(model, val_loader);
    examples::require_finite(val, "the validation MSE after epoch " + std::to_string(epoch));
    bar.set_postfix("val_mse", val);
    bar.close();
    if (allocations_per_step < 0) allocations_per_step = r.heap_allocations_per_step;
    rows.push_back({epoch, r.mean_loss, val, seconds});
    std::printf("epoch %d: train loss %.5f, validation MSE %.5f, %.2f s\n", epoch, r.mean_loss, val, seconds);
    std::fflush(stdout);
    std::map<std::string, std::string> metadata = {
        {"epoch", std::to_string(epoch)},
        {"latent", std::to_string(o.latent)},
        {"generator", generator_state_to_string(init_gen.get_state())}};
    examples::record_settings(metadata, settings);
    // Metrics first: a resume trims rows past the checkpoint's epoch but cannot make up a missing one.
    write_metrics(rows, metrics_path);
    nn::save_state(model, checkpoint, metadata, optimizer.state_dict().with_prefix("optimizer."));
    write_loss_chart(rows, out / "loss.svg");
  }
  if (rows.empty()) throw std::runtime_error("no epoch to run: --epochs " + std::to_string(o.epochs));

  const double test_mse = examples::evaluate_mse(model, test_loader);
  write_reconstructions(model, study->test, out / "reconstructions.png");
  double train_seconds = 0;
  for (const auto& r : rows) train_seconds += r.seconds;
  nlohmann::json summary = {
      {"train_loss", rows.back().train_loss},
      {"val_mse", rows.back().val_mse},
      {"test_mse", test_mse},
      {"epochs", rows.back().epoch},
      {"seconds_per_epoch", train_seconds / double(rows.size())},
      {"max_rss_mb", util::max_rss_mb()},
      {"threads", get_num_threads()},
      {"heap_allocations_per_step", allocations_per_step},
      {"latent", o.latent},
      {"batch", o.batch},
      {"lr", o.lr},
      {"weight_decay", o.weight_decay},
      {"dropout", o.dropout},
      {"seed", o.seed},
      {"train_images", study->train->size()},
      {"sumi_version", SUMI_VERSION},
  };
  util::write_json_atomically(out / "summary.json", summary);
  std::printf(
      "test MSE %.5f; outputs: metrics.csv loss.svg reconstructions.png autoencoder.safetensors "
      "model.txt summary.json\n",
      test_mse);
  return 0;
}

}  // namespace

int main(int argc, char** argv) {
  Options o;
  util::ArgParser cli("Trains the study's convolutional autoencoder on FashionMNIST.");
  cli.bind("--latent", o.latent, "latent space size k").min(1);
  cli.bind("--epochs", o.epochs, "training epochs").min(1);
  cli.bind("--batch", o.batch, "batch size").min(1);
  cli.bind("--lr", o.lr, "Adam learning rate").check([](double v) { return v > 0; }, "must be > 0");
  cli.bind("--weight-decay", o.weight_decay, "Adam weight decay (L2, added to the gradient)").min(0);
  cli.bind("--dropout", o.dropout, "dropout after each hidden linear layer")
      .min(0)
      .check([](double p) { return p < 1; }, "must be < 1");
  cli.bind("--seed", o.seed, "seed of the split, initialisation and shuffling");
  examples::bind_threads_flag(cli, o.threads);
  cli.bind("--data", o.data,
           "FashionMNIST folder; when empty, $SUMI_DATA or else /usr/share/datasets/fashion-mnist");
  cli.bind("--out", o.out, "output folder");
  cli.bind("--resume", o.resume, "continue from the output folder's checkpoint");
  examples::bind_limit_flag(cli, o.limit);
  cli.bind("--quiet", o.quiet, "no progress bars or model summary");
  return util::run_main(cli, argc, argv, [&] { return run(o); });
}
