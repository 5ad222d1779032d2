#pragma once
// The results of a grid search as a table: one row per configuration and epoch budget with the final
// training and validation loss and the seconds it took. Rows are stored as CSV (the parameters' columns,
// then epochs, train_loss, val_loss, seconds), read back for resuming and merging shards, ranked by
// validation loss, printed as a Markdown table and the best one exported as JSON.
#include <algorithm>
#include <cmath>
#include <filesystem>
#include <limits>
#include <nlohmann/json.hpp>
#include <optional>
#include <set>
#include <stdexcept>
#include <string>
#include <string_view>
#include <vector>

#include "sumi/tune/parameter_grid.hpp"
#include "sumi/util/csv.hpp"

namespace sumi::tune {

struct GridResult {
  Configuration config;
  int64_t epochs = 0;
  double train_loss = std::numeric_limits<double>::quiet_NaN();
  double val_loss = std::numeric_limits<double>::quiet_NaN();
  double seconds = 0;  // training time up to `epochs` (evaluations included)
};

// The result columns after the parameters'. Axis names must differ from these.
inline const std::vector<std::string>& result_columns() {
  static const std::vector<std::string> columns = {"epochs", "train_loss", "val_loss", "seconds"};
  return columns;
}

inline std::vector<std::string> results_header(const ParameterGrid& grid) {
  std::vector<std::string> header;
  for (const Axis& axis : grid.axes()) {
    const auto& reserved = result_columns();
    if (std::find(reserved.begin(), reserved.end(), axis.name) != reserved.end())
      throw std::invalid_argument("grid axis '" + axis.name + "' has the name of a result column");
    header.push_back(axis.name);
  }
  header.insert(header.end(), result_columns().begin(), result_columns().end());
  return header;
}

inline std::vector<util::CsvField> result_fields(const GridResult& r) {
  std::vector<util::CsvField> fields;
  for (const auto& [name, value] : r.config.items()) fields.emplace_back(format_parameter(value));
  fields.emplace_back(r.epochs);
  fields.emplace_back(r.train_loss);
  fields.emplace_back(r.val_loss);
  fields.emplace_back(r.seconds);
  return fields;
}

// Same configuration and epoch budget.
inline bool same_trial(const GridResult& a, const GridResult& b) {
  return a.epochs == b.epochs && a.config == b.config;
}

// Same training and validation losses (NaN equal to NaN: two records of one failed run).
inline bool same_losses(const GridResult& a, const GridResult& b) {
  const auto same = [](double x, double y) { return x == y || (std::isnan(x) && std::isnan(y)); };
  return same(a.train_loss, b.train_loss) && same(a.val_loss, b.val_loss);
}

// The rows of a results table read from `path` for `grid` (same columns); errors name the file, row and
// column. A configuration and budget recorded twice must have the same losses both times, and is returned
// once (different losses are two runs, and which one counts is not for a reader to guess).
inline std::vector<GridResult> grid_results_from_table(const util::CsvTable& table,
                                                       const std::filesystem::path& path,
                                                       const ParameterGrid& grid) {
  const std::vector<std::string> expected = results_header(grid);
  if (table.header != expected) {
    throw std::runtime_error("results file '" + path.string() + "' has columns '" +
                             util::header_text(table.header) + "' but this grid needs '" +
                             util::header_text(expected) +
                             "' (same axes, in the same order); use another output folder or remove it");
  }
  std::vector<GridResult> rows;
  std::vector<std::size_t> row_numbers;  // each kept row's number in the file, for errors
  for (std::size_t i = 0; i < table.size(); ++i) {
    GridResult r;
    std::vector<Configuration::Item> items;
    for (const Axis& axis : grid.axes()) {
      const std::string& cell = table.text(i, axis.name);
      auto value = parse_parameter(cell, axis.type);
      if (!value)
        throw std::runtime_error("results file '" + path.string() + "', row " + std::to_string(i + 1) +
                                 ", column '" + axis.name + "': '" + util::printable(cell) + "' is not " +
                                 (axis.type == ParameterType::integer ? "an integer" : "a number"));
      items.emplace_back(axis.name, std::move(*value));
    }
    r.config = Configuration(std::move(items));
    double epochs = 0;
    try {
      epochs = table.number(i, "epochs");
      r.train_loss = table.number(i, "train_loss");
      r.val_loss = table.number(i, "val_loss");
      r.seconds = table.number(i, "seconds");
    } catch (const std::exception& e) {
      throw std::runtime_error("results file '" + path.string() + "': " + e.what());
    }
    // Checked as a double first: converting 1e30 or NaN to an integer is undefined.
    if (!(epochs >= 1 && epochs <= 1e15 && epochs == std::floor(epochs)) ||
        !(r.seconds >= 0 && std::isfinite(r.seconds)))
      throw std::runtime_error(
          "results file '" + path.string() + "', row " + std::to_string(i + 1) +
          ": epochs must be a whole number >= 1 and seconds a finite number >= 0, found " +
          util::printable(table.text(i, "epochs")) + " and " + util::printable(table.text(i, "seconds")));
    r.epochs = int64_t(epochs);
    // A row recorded twice with the same losses is kept once; with different losses it is two runs.
    bool repeated = false;
    for (std::size_t j = 0; j < rows.size() && !repeated; ++j) {
      if (!same_trial(rows[j], r)) continue;
      if (!same_losses(rows[j], r))
        throw std::runtime_error("results file '" + path.string() + "', rows " +
                                 std::to_string(row_numbers[j]) + " and " + std::to_string(i + 1) + ": " +
                                 r.config.to_string() + " epochs=" + std::to_string(r.epochs) +
                                 " is recorded twice with different losses (remove one)");
      repeated = true;
    }
    if (repeated) continue;
    rows.push_back(std::move(r));
    row_numbers.push_back(i + 1);
  }
  return rows;
}

// Reads a results file written for `grid`; one whose last row was cut short is refused (resuming its search
// drops that row).
inline std::vector<GridResult> read_grid_results(const std::filesystem::path& path,
                                                 const ParameterGrid& grid) {
  return grid_results_from_table(util::read_csv_log(path), path, grid);
}

// Writes the rows as a results file, atomically.
inline void write_grid_results(const std::filesystem::path& path, const ParameterGrid& grid,
                               const std::vector<GridResult>& rows) {
  std::string text = util::format_csv_row(std::span<const std::string>(results_header(grid)));
  for (const GridResult& r : rows) {
    const auto fields = result_fields(r);
    text += util::format_csv_row(std::span<const util::CsvField>(fields));
  }
  util::write_file_atomically(path, text);
}

// The rows of several results files (shards of one grid) as one list, each configuration and budget once.
// A row found in several files must have the same losses in each (a file merged twice, or a shard that
// overlaps the full grid's file); different losses mean different runs, and which to keep is not for the
// merge to guess, so that throws naming both files. Rows are put in grid order, then by epochs; rows for
// points outside `grid` come last in file order.
inline std::vector<GridResult> merge_grid_results(const std::vector<std::filesystem::path>& paths,
                                                  const ParameterGrid& grid) {
  std::vector<GridResult> merged;
  std::vector<std::size_t> source;  // the file each merged row came from
  for (std::size_t f = 0; f < paths.size(); ++f)
    for (GridResult& r : read_grid_results(paths[f], grid)) {
      const auto seen =
          std::find_if(merged.begin(), merged.end(), [&](const GridResult& m) { return same_trial(m, r); });
      if (seen == merged.end()) {
        merged.push_back(std::move(r));
        source.push_back(f);
      } else if (!same_losses(*seen, r)) {
        throw std::runtime_error("merging grid results: " + r.config.to_string() +
                                 " epochs=" + std::to_string(r.epochs) + " has different losses in '" +
                                 paths[source[std::size_t(seen - merged.begin())]].string() + "' and '" +
                                 paths[f].string() + "' (different runs; merge files of one search)");
      }
    }
  std::stable_sort(merged.begin(), merged.end(), [&](const GridResult& a, const GridResult& b) {
    const auto ia = grid.index_of(a.config), ib = grid.index_of(b.config);
    if (!ia || !ib) return bool(ia) && !ib;  // points outside the grid after those in it, in file order
    return *ia != *ib ? *ia < *ib : a.epochs < b.epochs;
  });
  return merged;
}

// Whether the row's run ended with a validation loss: a failed or diverged one has NaN or an infinity.
inline bool has_validation_loss(const GridResult& r) {
  return std::isfinite(r.val_loss);
}

// The rows sorted by validation loss, lowest first; rows without one (failed or diverged runs) last. Ties
// keep their order.
inline std::vector<GridResult> rank_by_validation_loss(std::vector<GridResult> rows) {
  std::stable_sort(rows.begin(), rows.end(), [](const GridResult& a, const GridResult& b) {
    if (!has_validation_loss(a)) return false;
    if (!has_validation_loss(b)) return true;
    return a.val_loss < b.val_loss;
  });
  return rows;
}

// The best of ranked rows, the first, unless no run has a validation loss (a failed or diverged run is
// never best).
inline std::optional<GridResult> best_result(const std::vector<GridResult>& ranked) {
  if (ranked.empty() || !has_validation_loss(ranked.front())) return std::nullopt;
  return ranked.front();
}

// `text` as one Markdown table cell: a '|' would end the cell and a line break the row.
inline std::string markdown_cell_text(std::string_view text) {
  std::string out;
  for (std::size_t i = 0; i < text.size(); ++i) {
    if (text[i] == '|') {
      out += "\\|";
    } else if (text[i] == '\r' || text[i] == '\n') {
      out += "<br>";
      if (text[i] == '\r' && i + 1 < text.size() && text[i + 1] == '\n') ++i;
    } else {
      out += text[i];
    }
  }
  return out;
}

// A Markdown table of ranked rows: rank, the parameters, epochs, losses and seconds. `limit` > 0 keeps the
// first `limit` rows.
inline std::string grid_results_markdown(const std::vector<GridResult>& ranked, std::size_t limit = 0) {
  if (ranked.empty()) return "(no results)\n";
  std::string out = "|";
  // Cells are appended one by one: GCC 12 warns (-Wrestrict, falsely) on "literal" + std::string&& here.
  const auto cell = [&out](const std::string& text) {
    out += ' ';
    out += text;
    out += " |";
  };
  cell("rank");
  for (const auto& [name, value] : ranked.front().config.items()) cell(markdown_cell_text(name));
  out += " epochs | train loss | validation loss | seconds |\n|---:|";
  for (std::size_t i = 0; i < ranked.front().config.size(); ++i) out += "---:|";
  out += "---:|---:|---:|---:|\n";
  const auto fixed = [](double v, int digits) {
    if (!(std::abs(v) < 1e15)) return util::format_round_trip(v);  // nan, inf, and too long for fixed
    char buffer[64];
    std::snprintf(buffer, sizeof buffer, "%.*f", digits, v);
    return std::string(buffer);
  };
  const std::size_t n = limit > 0 ? std::min(limit, ranked.size()) : ranked.size();
  for (std::size_t i = 0; i < n; ++i) {
    const GridResult& r = ranked[i];
    out += '|';
    cell(std::to_string(i + 1));
    for (const auto& item : r.config.items()) cell(markdown_cell_text(format_parameter(item.second)));
    cell(std::to_string(r.epochs));
    cell(fixed(r.train_loss, 5));
    cell(fixed(r.val_loss, 5));
    cell(fixed(r.seconds, 1));
    out += '\n';
  }
  return out;
}

inline nlohmann::json parameter_json(const ParameterValue& value) {
  if (const auto* i = std::get_if<int64_t>(&value)) return *i;
  if (const auto* d = std::get_if<double>(&value)) return *d;
  return std::get<std::string>(value);
}

// {"parameters": {...}, "epochs", "train_loss", "val_loss", "seconds"}; NaN losses become null.
inline nlohmann::json grid_result_json(const GridResult& r) {
  nlohmann::json parameters = nlohmann::json::object();
  for (const auto& [name, value] : r.config.items()) parameters[name] = parameter_json(value);
  const auto number = [](double v) { return std::isfinite(v) ? nlohmann::json(v) : nlohmann::json(nullptr); };
  return {{"parameters", parameters},
          {"epochs", r.epochs},
          {"train_loss", number(r.train_loss)},
          {"val_loss", number(r.val_loss)},
          {"seconds", r.seconds}};
}

// The rows that belong to `grid` with one of the `epochs` budgets, in their order. A results file may also
// hold other grids' rows (a folder reused with other axis values); those are kept in the file but must
// not be ranked as this grid's.
inline std::vector<GridResult> rows_in_grid(const std::vector<GridResult>& rows, const ParameterGrid& grid,
                                            const std::vector<int64_t>& epochs) {
  std::vector<GridResult> in_grid;
  for (const GridResult& r : rows)
    if (grid.index_of(r.config) && std::find(epochs.begin(), epochs.end(), r.epochs) != epochs.end())
      in_grid.push_back(r);
  return in_grid;
}

// The grid's configurations and budgets that `rows` lacks, as "latent=5 ... epochs=10".
inline std::vector<std::string> missing_trials(const ParameterGrid& grid, const std::vector<int64_t>& epochs,
                                               const std::vector<GridResult>& rows) {
  std::set<std::pair<std::size_t, int64_t>> present;
  for (const GridResult& r : rows)
    if (const auto i = grid.index_of(r.config)) present.emplace(*i, r.epochs);
  std::vector<std::string> missing;
  for (std::size_t i = 0; i < grid.size(); ++i)
    for (const int64_t e : epochs)
      if (!present.count({i, e})) missing.push_back(grid.at(i).to_string() + " epochs=" + std::to_string(e));
  return missing;
}

}  // namespace sumi::tune
