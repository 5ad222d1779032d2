// Explores the autoencoder's latent space and the fine-tuned classifier's outputs: PCA and t-SNE of the
// 10,000 test images in each space, scatter plots by class, images decoded from random latent codes and
// along a line between two test images' codes. See --help.
#include <cstdio>
#include <filesystem>
#include <iostream>
#include <optional>
#include <random>

#include "common/autoencoder_run.hpp"
#include "common/embedding_report.hpp"
#include "common/run_start.hpp"
#include "common/study_data.hpp"
#include "models/autoencoder.hpp"
#include "sumi/sumi.hpp"

namespace fs = std::filesystem;
using namespace sumi;

namespace {

struct Options {
  std::string out = "out/latent", autoencoder = "out/autoencoder/autoencoder.safetensors",
              classifier_outputs = "out/finetune/test_outputs.csv", data;
  double scale = 8, perplexity = 30;
  int64_t seed = 0;
  int threads = 0, iterations = 1000;
  bool all = false, quiet = false;
};

std::vector<std::string> class_names() {
  return {data::fashion_mnist_classes.begin(), data::fashion_mnist_classes.end()};
}

// The autoencoder in `path`, whose latent size is the row count of its encoder's last linear layer.
std::shared_ptr<models::Autoencoder<float>> load_autoencoder(const fs::path& path, Generator& gen) {
  const io::SafetensorsFile file = io::read_safetensors(path);
  const auto& last = file.record("encoder.encoder_lin.2.weight");
  if (last.shape.size() != 2)
    throw std::runtime_error("'" + path.string() + "': encoder.encoder_lin.2.weight is not a matrix");
  auto model = std::make_shared<models::Autoencoder<float>>(last.shape[0], 0.0, gen);
  nn::load_state(*model, path);  // strict: every encoder and decoder tensor must be there
  std::printf("autoencoder: %s%s\n", path.c_str(),
              examples::describe_autoencoder_checkpoint(path, model->latent).c_str());
  return model;
}

// Latent codes [N, k] of a whole dataset, with its labels.
template <class Dataset>
analysis::PointMatrix encode_all(models::Autoencoder<float>& model, const Dataset& dataset,
                                 std::vector<int64_t>& labels) {
  model.eval();
  NoGradGuard no_grad;
  data::DataLoader loader(dataset, {.batch_size = 1000});
  analysis::PointMatrix codes(dataset.size(), model.latent);
  labels.assign(std::size_t(dataset.size()), 0);
  for (const data::Batch& batch : loader) {
    const Tensor<float> z = model.encode(Variable<float>(batch.images)).value();
    for (int64_t b = 0; b < batch.size(); ++b) {
      const int64_t i = batch.indices[std::size_t(b)];
      for (int64_t c = 0; c < model.latent; ++c) codes(i, c) = z.data()[b * model.latent + c];
      labels[std::size_t(i)] = batch.labels[std::size_t(b)];
    }
  }
  return codes;
}

// Decodes the rows of `codes` into [N, 1, 28, 28] images.
Tensor<float> decode(models::Autoencoder<float>& model, const analysis::PointMatrix& codes) {
  model.eval();
  NoGradGuard no_grad;
  Tensor<float> z = Tensor<float>::empty(Shape{codes.rows(), codes.cols()});
  for (Eigen::Index i = 0; i < codes.rows(); ++i)
    for (Eigen::Index c = 0; c < codes.cols(); ++c) z.data()[i * codes.cols() + c] = float(codes(i, c));
  return model.decode(Variable<float>(z)).value();
}

void save_images(const Tensor<float>& images, int columns, const fs::path& path) {
  plot::GridOptions grid;
  grid.nrow = columns;
  grid.upscale = 3;
  grid.normalize = plot::Normalize::none;
  plot::save_image_grid(path, {images.data(), images.shape()[0], 1, 28, 28}, grid);
}

// The files explore_space writes for a space whose names start with `prefix`.
std::vector<std::string> space_files(const std::string& prefix) {
  return {prefix + "pca.svg", prefix + "tsne.svg", prefix + "embeddings.csv"};
}

// PCA and t-SNE of one space: plots, an embeddings CSV, and the summary object.
nlohmann::json explore_space(const std::string& name, const std::string& prefix,
                             const analysis::PointMatrix& points, const std::vector<std::string>& columns,
                             const std::vector<int64_t>& labels, const Options& o, const fs::path& out) {
  const std::vector<std::string> names = class_names();
  const int64_t components = std::min<int64_t>(2, points.cols());
  const analysis::Pca pca = analysis::fit_pca(points, components);
  analysis::PointMatrix scores = pca.transform(points);
  if (components < 2) scores.conservativeResize(Eigen::NoChange, 2), scores.col(1).setZero();
  examples::save_class_scatter(scores, labels, names, "PCA of the " + name, "PC 1", "PC 2",
                               out / (prefix + "pca.svg"));

  analysis::TsneOptions options = examples::tsne_options(o.iterations, o.perplexity, points.rows());
  options.seed = uint64_t(o.seed);
  options.progress = !o.quiet;
  const examples::EmbeddingRun run = examples::embed_with_metrics(points, &labels, options);
  examples::save_class_scatter(run.tsne.embedding, labels, names, "t-SNE of the " + name, "t-SNE 1",
                               "t-SNE 2", out / (prefix + "tsne.svg"));

  util::CsvTable table;
  table.header = {"index", "label"};
  for (const auto& c : columns) table.header.push_back(c);
  for (const char* c : {"pca1", "pca2", "tsne1", "tsne2"}) table.header.push_back(c);
  for (Eigen::Index i = 0; i < points.rows(); ++i) {
    std::vector<std::string> row{std::to_string(i), std::to_string(labels[std::size_t(i)])};
    for (Eigen::Index c = 0; c < points.cols(); ++c) row.push_back(util::format_round_trip(points(i, c)));
    for (const double v : {scores(i, 0), scores(i, 1), run.tsne.embedding(i, 0), run.tsne.embedding(i, 1)})
      row.push_back(util::format_round_trip(v));
    table.rows.push_back(std::move(row));
  }
  util::write_csv_atomically(out / (prefix + "embeddings.csv"), table);

  nlohmann::json summary = run.summary;
  summary["pca"] = {
      {"explained_variance_ratio", std::vector<double>(pca.explained_variance_ratio.data(),
                                                       pca.explained_variance_ratio.data() + components)},
      {"explained_variance",
       std::vector<double>(pca.explained_variance.data(), pca.explained_variance.data() + components)}};
  summary["files"] = space_files(prefix);
  std::printf(
      "%s: PCA keeps %.1f%% of the variance; t-SNE %.2f s, KL %.4f, trustworthiness %.4f, %lld-NN accuracy "
      "%.4f\n",
      name.c_str(), 100 * pca.explained_variance_ratio.sum(), summary["seconds"].get<double>(),
      run.tsne.kl_divergence, summary["trustworthiness"].get<double>(),
      (long long)summary["metric_k"].get<int64_t>(), summary["knn_accuracy"].get<double>());
  std::fflush(stdout);
  return summary;
}

int run(const Options& o) {
  util::Timer timer;
  const auto study = examples::load_study_data(o.data, uint64_t(o.seed));
  std::vector<int64_t> test_labels(std::size_t(study->test.size()));
  for (std::size_t i = 0; i < test_labels.size(); ++i) test_labels[i] = study->test.label(int64_t(i));
  // The classifier's outputs are checked before anything is trained or written, so a wrong file fails at
  // once.
  std::optional<examples::PointTable> outputs;
  if (fs::exists(o.classifier_outputs)) {
    outputs = examples::read_point_csv(o.classifier_outputs);
    const auto rows = int64_t(test_labels.size());
    if (outputs->points.rows() != rows || !outputs->has_labels())
      throw std::runtime_error("'" + o.classifier_outputs + "': expected " + std::to_string(rows) +
                               " rows with a label column (one per test image), got " +
                               std::to_string(outputs->points.rows()) +
                               (outputs->has_labels() ? "" : " without labels"));
    if (outputs->labels != test_labels)
      throw std::runtime_error("'" + o.classifier_outputs + "': its labels are not the test set's, in order");
  }
  examples::check_perplexity(o.perplexity, study->test.size());
  const examples::RunFolder run_folder = examples::start_run("latent", o.threads, o.out);
  const fs::path& out = run_folder.path;
  Generator gen(uint64_t(o.seed));  // the initial weights, replaced by the file's; the model keeps it
  const auto model =
      load_autoencoder(examples::find_or_train_reference_autoencoder(
                           o.autoencoder, *study, out, 20, uint64_t(o.seed), {{"--seed", o.seed}}, o.quiet),
                       gen);
  examples::remove_final_outputs(out, {"summary.json"});

  std::vector<int64_t> labels;
  const analysis::PointMatrix codes = encode_all(*model, study->test, labels);
  std::vector<std::string> code_columns;
  for (int64_t c = 0; c < model->latent; ++c)
    code_columns.push_back(std::string("z").append(std::to_string(c)));  // GCC 12 warns falsely on "z" + s

  nlohmann::json summary;
  summary["latent"] = explore_space("latent codes", "", codes, code_columns, labels, o, out);
  for (const char* key : {"seconds", "kl_divergence", "trustworthiness", "knn_accuracy"})
    summary[key] = summary["latent"][key];

  if (outputs) {
    summary["classifier"] = explore_space("classifier outputs", "classifier_", outputs->points,
                                          outputs->columns, outputs->labels, o, out);
    summary["classifier"]["input"] = o.classifier_outputs;
  } else {
    std::printf(
        "notice: '%s' not found, skipping the classifier-output space (run build/release/examples/finetune "
        "first)\n",
        o.classifier_outputs.c_str());
    // Those of an earlier run in this folder would pass for this one's.
    for (const std::string& stale : space_files("classifier_")) fs::remove(out / stale);
    summary["classifier"] = {
        {"skipped", "'" + o.classifier_outputs + "' not found; run build/release/examples/finetune"}};
  }

  // Sampling: z ~ N(0, scale^2) per coordinate, and a straight line between two test images' codes.
  std::mt19937_64 engine(uint64_t(o.seed));
  std::normal_distribution<double> normal(0.0, o.scale);
  analysis::PointMatrix random_codes(16, model->latent);
  for (Eigen::Index i = 0; i < random_codes.size(); ++i) random_codes.data()[i] = normal(engine);
  save_images(decode(*model, random_codes), 8, out / "random_samples.png");
  const int64_t from = 0, to = 1, steps = 10;
  analysis::PointMatrix line(steps, model->latent);
  for (int64_t s = 0; s < steps; ++s) {
    const double t = double(s) / double(steps - 1);
    line.row(s) = (1 - t) * codes.row(from) + t * codes.row(to);
  }
  save_images(decode(*model, line), int(steps), out / "interpolation.png");
  summary["sampling"] = {
      {"scale", o.scale},
      {"random_samples", 16},
      {"interpolation", {{"from_test_index", from}, {"to_test_index", to}, {"steps", steps}}}};

  if (o.all) {
    // Every FashionMNIST image (60,000 train then 10,000 test), for embedding all 70,000 points.
    std::vector<int64_t> train_labels;
    const analysis::PointMatrix train_codes = encode_all(*model, study->train_full, train_labels);
    util::CsvTable table;
    table.header = code_columns;
    table.header.push_back("label");
    const auto add_rows = [&](const analysis::PointMatrix& m, const std::vector<int64_t>& l) {
      for (Eigen::Index i = 0; i < m.rows(); ++i) {
        std::vector<std::string> row;
        for (Eigen::Index c = 0; c < m.cols(); ++c) row.push_back(util::format_round_trip(float(m(i, c))));
        row.push_back(std::to_string(l[std::size_t(i)]));
        table.rows.push_back(std::move(row));
      }
    };
    add_rows(train_codes, train_labels);
    add_rows(codes, labels);
    util::write_csv_atomically(out / "all_codes.csv", table);
    summary["all_codes"] = {{"file", "all_codes.csv"}, {"points", table.rows.size()}};
    std::printf("all %zu latent codes: %s\n", table.rows.size(), (out / "all_codes.csv").c_str());
  }
  summary["autoencoder_latent"] = model->latent;
  summary["total_seconds"] = timer.elapsed_seconds();
  summary["sumi_version"] = SUMI_VERSION;
  util::write_json_atomically(out / "summary.json", summary);
  std::printf(
      "outputs: pca.svg tsne.svg embeddings.csv%s random_samples.png interpolation.png summary.json\n",
      summary["classifier"].contains("skipped")
          ? ""
          : " classifier_pca.svg classifier_tsne.svg classifier_embeddings.csv");
  return 0;
}

}  // namespace

int main(int argc, char** argv) {
  Options o;
  util::ArgParser cli(
      "Explores the autoencoder's latent space and the fine-tuned classifier's outputs on the 10,000 "
      "FashionMNIST "
      "test images: PCA and t-SNE scatter plots by class, metrics in summary.json, images decoded from "
      "random "
      "latent codes and along a line between two test images' codes.");
  cli.bind("--out", o.out, "output folder");
  cli.bind("--autoencoder", o.autoencoder,
           "autoencoder written by examples/autoencoder (missing: train the reference one into --out, or "
           "use the one trained there before with the same --seed)");
  cli.bind("--classifier-outputs", o.classifier_outputs,
           "test_outputs.csv written by examples/finetune (missing: that space is skipped)");
  cli.bind("--scale", o.scale, "standard deviation s of the random latent codes, z ~ N(0, s^2)")
      .check([](double s) { return s > 0; }, "must be > 0");
  cli.bind("--perplexity", o.perplexity, "t-SNE perplexity (below the number of test images minus one)")
      .min(1);
  cli.bind("--iterations", o.iterations, "t-SNE iterations").min(1);
  cli.bind(
      "--seed", o.seed,
      "seed of the random latent codes and of t-SNE, and of the autoencoder (and its data split) trained "
      "when none is found");
  examples::bind_threads_flag(cli, o.threads);
  cli.bind("--data", o.data,
           "FashionMNIST folder; when empty, $SUMI_DATA or else /usr/share/datasets/fashion-mnist");
  cli.bind("--all", o.all, "also write the latent codes of all 70,000 images to all_codes.csv");
  cli.bind("--quiet", o.quiet, "no progress bars");
  return util::run_main(cli, argc, argv, [&] { return run(o); });
}
