// Embeds the points of any CSV in 2-d with t-SNE (scikit-learn's defaults) and scores the embedding.
// See --help.
#include <cstdio>
#include <filesystem>
#include <iostream>

#include "common/embedding_report.hpp"
#include "common/run_start.hpp"
#include "sumi/sumi.hpp"

namespace fs = std::filesystem;
using namespace sumi;

namespace {

struct Options {
  std::string input, out, gradient = "automatic", init = "pca";
  double perplexity = 30, theta = 0.5;
  int64_t seed = 0;
  int threads = 0, iterations = 1000;
  bool quiet = false;
};

int run(const Options& o) {
  if (o.input.empty()) throw util::CliError("--input", "--input is required (a CSV of points, one per row)");
  if (o.out.empty()) throw util::CliError("--out", "--out is required (the embedding CSV to write)");
  const fs::path out = o.out;
  if (!out.has_filename() || out.filename() == "." || out.filename() == "..")
    throw util::CliError("--out", "--out '" + o.out + "' names a folder; give the path of the CSV to write");
  fs::path json_path = out, svg_path = out;
  json_path.replace_extension(".json");
  svg_path.replace_extension(".svg");
  if (out == json_path || out == svg_path)
    throw util::CliError("--out", "--out '" + o.out + "' would be overwritten by the summary (.json) or " +
                                      "the scatter (.svg) written next to it: give a .csv path");
  std::error_code error;
  if (fs::equivalent(out, o.input, error))
    throw util::CliError("--out", "--out '" + o.out + "' is the --input file; give another path");
  if (fs::is_directory(out, error))
    throw util::CliError("--out", "--out '" + o.out + "' is a folder; give the path of the CSV to write");
  if (o.threads > 0) set_num_threads(o.threads);
  // The folder is made before the work, so that a path that cannot be written fails now, not after it.
  std::error_code made;
  if (out.has_parent_path()) fs::create_directories(out.parent_path(), made);
  if (made) throw std::runtime_error("--out '" + o.out + "': cannot create its folder: " + made.message());
  util::require_writable_location(out);  // the .json and .svg go to the same folder
  std::printf("sumi %s tsne: writing to %s (threads: %d)\n", SUMI_VERSION,
              fs::absolute(out).parent_path().c_str(), get_num_threads());

  const examples::PointTable table = examples::read_point_csv(o.input);
  std::printf("%s: %lld points, %lld coordinates%s\n", o.input.c_str(), (long long)table.points.rows(),
              (long long)table.points.cols(), table.has_labels() ? ", labelled" : "");
  analysis::TsneOptions options = examples::tsne_options(o.iterations, o.perplexity, table.points.rows());
  options.theta = o.theta;
  options.seed = uint64_t(o.seed);
  options.init = o.init == "random" ? analysis::TsneInit::random : analysis::TsneInit::pca;
  options.progress = !o.quiet;
  options.gradient = analysis::parse_tsne_gradient(o.gradient);
  const examples::EmbeddingRun run =
      examples::embed_with_metrics(table.points, table.has_labels() ? &table.labels : nullptr, options);

  util::CsvTable csv;
  csv.header = {"x", "y"};
  if (table.has_labels()) csv.header.push_back("label");
  for (Eigen::Index i = 0; i < run.tsne.embedding.rows(); ++i) {
    std::vector<std::string> row{util::format_round_trip(run.tsne.embedding(i, 0)),
                                 util::format_round_trip(run.tsne.embedding(i, 1))};
    if (table.has_labels()) row.push_back(table.label_text[std::size_t(i)]);
    csv.rows.push_back(std::move(row));
  }
  util::write_csv_atomically(out, csv);
  nlohmann::json summary = run.summary;
  summary["input"] = o.input;
  summary["sumi_version"] = SUMI_VERSION;
  util::write_json_atomically(json_path, summary);
  std::printf("t-SNE (%s gradient): %.2f s, KL %.4f", run.tsne.gradient.c_str(),
              summary["seconds"].get<double>(), run.tsne.kl_divergence);
  // Without labels every point is one class: one colour, so the scatter is still drawn.
  const std::vector<int64_t> classes =
      table.has_labels() ? table.labels : std::vector<int64_t>(std::size_t(table.points.rows()), 0);
  examples::save_class_scatter(run.tsne.embedding, classes,
                               table.has_labels() ? table.class_names : std::vector<std::string>{"points"},
                               "t-SNE of " + fs::path(o.input).filename().string(), "t-SNE 1", "t-SNE 2",
                               svg_path);
  if (summary.contains("metric_k"))
    std::printf(", trustworthiness %.4f, %lld-NN accuracy %.4f", summary["trustworthiness"].get<double>(),
                (long long)summary["metric_k"].get<int64_t>(), summary["knn_accuracy"].get<double>());
  std::printf("\noutputs: %s %s %s\n", out.c_str(), json_path.c_str(), svg_path.c_str());
  return 0;
}

}  // namespace

int main(int argc, char** argv) {
  Options o;
  util::ArgParser cli(
      "Embeds the points of a CSV (one row per point, optional header; a column named 'label' is carried "
      "through, not embedded) in 2-d with t-SNE. Writes --out (x,y[,label]), the same path with .json "
      "(seconds, "
      "kl_divergence, and with labels trustworthiness and knn_accuracy at k = 10, or below half the points "
      "when there are fewer than 21: "
      "metric_k) and .svg (the scatter, "
      "coloured by label).");
  cli.bind("--input", o.input, "CSV of points to embed");
  cli.bind("--out", o.out, "embedding CSV to write (its .json and .svg go next to it)");
  cli.bind("--perplexity", o.perplexity,
           "t-SNE perplexity (effective neighbours; below the number of points minus one)")
      .min(1);
  cli.bind("--init", o.init, "initial positions: pca (deterministic, scikit-learn's default) or random")
      .check([](const std::string& v) { return v == "pca" || v == "random"; }, "must be pca or random");
  cli.bind("--seed", o.seed, "seed of the random initialisation (--init random)");
  examples::bind_threads_flag(cli, o.threads);
  cli.bind("--iterations", o.iterations, "optimisation iterations (the first 250 with early exaggeration)")
      .min(1);
  cli.bind("--gradient", o.gradient,
           "repulsion: automatic (exact up to 1,000 points, barnes_hut above), exact, barnes_hut or fft")
      .check(
          [](const std::string& v) {
            return v == "automatic" || v == "exact" || v == "barnes_hut" || v == "fft";
          },
          "must be automatic, exact, barnes_hut or fft");
  cli.bind("--theta", o.theta,
           "Barnes-Hut opening angle (scikit-learn's angle): larger is faster and coarser, 0 gives exact "
           "forces")
      .check([](double t) { return t >= 0; }, "must be >= 0");
  cli.bind("--quiet", o.quiet, "no progress bar");
  return util::run_main(cli, argc, argv, [&] { return run(o); });
}
