#pragma once
// t-SNE with the embedding-quality metrics and class scatter plots, shared by the tsne and latent examples:
// reading a CSV of points (optional header, optional `label` column), running t-SNE, scoring it and
// plotting it.
#include <algorithm>
#include <cstdio>
#include <filesystem>
#include <map>
#include <nlohmann/json.hpp>
#include <optional>
#include <stdexcept>
#include <string>
#include <vector>

#include "sumi/analysis/embedding_metrics.hpp"
#include "sumi/analysis/pca.hpp"
#include "sumi/analysis/tsne.hpp"
#include "sumi/plot/scatter_chart.hpp"
#include "sumi/util/cli.hpp"
#include "sumi/util/csv.hpp"
#include "sumi/util/dense_ranks.hpp"
#include "sumi/util/number_text.hpp"
#include "sumi/util/printable.hpp"
#include "sumi/util/timer.hpp"

namespace sumi::examples {

// The neighbourhood size of the reported trustworthiness and k-NN accuracy (smaller for fewer than 21
// points: see embed_with_metrics).
inline constexpr int64_t kEmbeddingMetricK = 10;

struct PointTable {
  analysis::PointMatrix points;          // the numeric columns other than `label`
  std::vector<std::string> columns;      // their names
  std::vector<std::string> label_text;   // the `label` column as written, if any
  std::vector<int64_t> labels;           // class indices of label_text
  std::vector<std::string> class_names;  // class index -> name (empty when the labels are integers)
  bool has_labels() const { return !label_text.empty(); }
};

// Class indices for label texts: the integers themselves when every label is an integer >= 0, else the
// position of the text among the sorted distinct labels (then class_names lists them).
inline void assign_classes(PointTable& table) {
  bool integers = true;
  for (const auto& text : table.label_text) {
    const auto v = util::parse_number<double>(text);
    if (!v || *v < 0 || *v != std::floor(*v) || *v > 1e6) integers = false;
  }
  table.labels.clear();
  if (integers) {
    for (const auto& text : table.label_text)
      table.labels.push_back(int64_t(*util::parse_number<double>(text)));
    return;
  }
  util::DenseRanks<std::string> classes = util::dense_ranks(table.label_text);
  table.labels = std::move(classes.ranks);
  table.class_names = std::move(classes.distinct);
}

// Reads one point per row. The header is optional: a first row whose cells are all numbers is data, and
// the columns are then called c0, c1, ... A column named `label` is carried as the class, not a coordinate.
inline PointTable read_point_csv(const std::filesystem::path& path) {
  util::CsvTable table = util::read_csv(path);
  bool header_is_data = !table.header.empty();
  for (const auto& cell : table.header)
    if (!util::parse_number<double>(cell)) header_is_data = false;
  if (header_is_data) {
    table.rows.insert(table.rows.begin(), table.header);
    for (std::size_t c = 0; c < table.header.size(); ++c) table.header[c] = "c" + std::to_string(c);
  }
  PointTable result;
  std::vector<std::size_t> coordinate_columns;
  std::optional<std::size_t> label_column;
  for (std::size_t c = 0; c < table.header.size(); ++c) {
    if (std::count(table.header.begin(), table.header.end(), table.header[c]) > 1)
      throw std::runtime_error("'" + path.string() + "' has two columns named '" +
                               util::printable(table.header[c]) + "'");
    if (table.header[c] == "label")
      label_column = c;
    else
      coordinate_columns.push_back(c), result.columns.push_back(table.header[c]);
  }
  if (table.rows.empty()) throw std::runtime_error("'" + path.string() + "' has no rows of points");
  if (coordinate_columns.empty())
    throw std::runtime_error("'" + path.string() + "' has no coordinate columns");
  result.points.resize(Eigen::Index(table.rows.size()), Eigen::Index(coordinate_columns.size()));
  for (std::size_t r = 0; r < table.rows.size(); ++r) {
    for (std::size_t c = 0; c < coordinate_columns.size(); ++c) {
      const std::string& cell = table.rows[r][coordinate_columns[c]];
      const auto value = util::parse_number<double>(cell);
      if (!value || !std::isfinite(*value))
        throw std::runtime_error("'" + path.string() + "', row " + std::to_string(r + 1) + ", column '" +
                                 util::printable(result.columns[c]) + "': '" + util::printable(cell) +
                                 "' is not a finite number");
      result.points(Eigen::Index(r), Eigen::Index(c)) = *value;
    }
    if (label_column) result.label_text.push_back(table.rows[r][*label_column]);
  }
  // Coordinates PCA and t-SNE would refuse only later: too large to square and sum, or all too small to.
  try {
    analysis::detail::check_coordinates(result.points, "the points");
  } catch (const std::invalid_argument& e) {
    throw std::runtime_error("'" + path.string() + "': " + e.what() +
                             " (points and coordinates counted from 0)");
  }
  if (label_column) assign_classes(result);
  return result;
}

// Refuses a --perplexity that `points` points cannot have, naming the flag.
inline void check_perplexity(double perplexity, Eigen::Index points) {
  if (perplexity >= double(points - 1))
    throw util::CliError("--perplexity", "--perplexity " + util::format_round_trip(perplexity) +
                                             " must be below the number of points minus one (" +
                                             std::to_string(points - 1) + ")");
}

// The t-SNE options both examples share: scikit-learn's schedule for `iterations` (the first 250, or all when
// fewer, with early exaggeration) and `perplexity`, which must be below the number of points minus one.
// A run that ends inside the exaggeration is said to be unfinished.
inline analysis::TsneOptions tsne_options(int iterations, double perplexity, Eigen::Index points) {
  check_perplexity(perplexity, points);
  analysis::TsneOptions options;
  options.iterations = iterations;
  options.perplexity = perplexity;
  options.exaggeration_iterations = std::min(250, iterations);
  if (iterations <= options.exaggeration_iterations)
    std::printf(
        "note: --iterations %d ends within the first 250, which exaggerate the affinities: the map is "
        "not finished (scikit-learn runs 1000)\n",
        iterations);
  return options;
}

struct EmbeddingRun {
  analysis::TsneResult tsne;
  nlohmann::json summary;  // seconds, kl_divergence, (trustworthiness, knn_accuracy), ...
};

// t-SNE of `points`, timed, with trustworthiness and k-NN accuracy (summary key metric_k) when labels are
// given.
inline EmbeddingRun embed_with_metrics(const analysis::PointMatrix& points,
                                       const std::vector<int64_t>* labels,
                                       const analysis::TsneOptions& options) {
  EmbeddingRun run;
  util::Timer timer;
  run.tsne = analysis::tsne(points, options);
  const double seconds = timer.elapsed_seconds();
  run.summary = {
      {"seconds", seconds},
      {"kl_divergence", run.tsne.kl_divergence},
      {"kl_method", run.tsne.kl_method},
      {"gradient", run.tsne.gradient},
      {"points", points.rows()},
      {"dimensions", points.cols()},
      {"perplexity", options.perplexity},
      {"theta", options.theta},
      {"iterations", options.iterations},
      {"learning_rate", run.tsne.learning_rate},
      {"affinity_seconds", run.tsne.affinity_seconds},
      {"optimisation_seconds", run.tsne.optimisation_seconds},
      {"init", run.tsne.init == analysis::TsneInit::random ? "random" : "pca"},
      {"seed", options.seed},
      {"threads", get_num_threads()},
  };
  // Trustworthiness needs k below half the points: fewer than 21 points are measured with a smaller k,
  // fewer than 3 not at all.
  const int64_t metric_k = std::min(kEmbeddingMetricK, (int64_t(points.rows()) - 1) / 2);
  if (labels && metric_k >= 1) {
    timer.reset();
    const analysis::Neighbors neighbors = analysis::exact_knn(run.tsne.embedding, metric_k);
    run.summary["knn_accuracy"] = analysis::knn_accuracy(neighbors, *labels);
    run.summary["trustworthiness"] = analysis::trustworthiness(points, neighbors);
    run.summary["metric_k"] = metric_k;
    run.summary["metric_seconds"] = timer.elapsed_seconds();
  }
  return run;
}

// A scatter plot of 2-d points coloured by class.
inline void save_class_scatter(const analysis::PointMatrix& xy, const std::vector<int64_t>& labels,
                               const std::vector<std::string>& class_names, const std::string& title,
                               const std::string& x_label, const std::string& y_label,
                               const std::filesystem::path& path) {
  plot::ScatterChart chart;
  chart.title = title;
  chart.x_label = x_label;
  chart.y_label = y_label;
  chart.class_names = class_names;
  chart.point_radius = xy.rows() > 20000 ? 0.8 : 1.5;
  std::vector<double> x(std::size_t(xy.rows())), y(std::size_t(xy.rows()));
  for (Eigen::Index i = 0; i < xy.rows(); ++i) x[std::size_t(i)] = xy(i, 0), y[std::size_t(i)] = xy(i, 1);
  chart.add_points(x, y, labels);
  chart.save(path);
}

}  // namespace sumi::examples
