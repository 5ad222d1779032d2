#pragma once
// run_grid_search: trains every configuration of a ParameterGrid through a user function and records one
// results row per configuration and epoch budget (see grid_results.hpp).
//
// Epoch budgets share one run: with a constant learning rate the first 10 epochs of a 20-epoch run are a
// 10-epoch run, so each configuration is trained once for the largest budget and the function reports the
// losses after each budget's epoch (reports of other epochs are ignored, so it need not validate them); the
// rows for the smaller budgets are taken on the way. The function must make epoch e's result independent of
// the total (no schedule over the whole run) for this to hold.
//
// Resumable: rows already in the results file are kept and their runs skipped; each new row is appended and
// flushed as soon as it is known, so an interrupted search continues where it stopped (a row the interruption
// cut short is dropped and its run done again). Shardable: with Shard{i, n} only runs i, i+n, ... are done,
// so n processes (each with its own file) split the grid, and merge_grid_results joins their files.
// Concurrent: `jobs` runs go at once on their own threads; the function must then be safe to call
// concurrently (its own model, optimiser, generator and data loader).
//
//   auto summary = tune::run_grid_search(grid, {.epochs = {10, 20}, .results_csv = "grid.csv"},
//                                        [&](tune::Trial& trial) {
//                                          for (int e = 1; e <= trial.max_epochs(); ++e) {
//                                            const double train_loss = train_one_epoch();
//                                            if (trial.is_budget(e)) trial.report(e, train_loss, validate());
//                                          }
//                                        });
#include <algorithm>
#include <atomic>
#include <chrono>
#include <exception>
#include <filesystem>
#include <functional>
#include <mutex>
#include <stdexcept>
#include <string>
#include <string_view>
#include <thread>
#include <vector>

#include "sumi/tune/grid_results.hpp"
#include "sumi/tune/parameter_grid.hpp"
#include "sumi/util/atomic_file.hpp"
#include "sumi/util/csv.hpp"

namespace sumi::tune {

class Trial;

struct GridSearchOptions {
  std::vector<int64_t> epochs = {1};  // epoch budgets, all recorded from one run of max(epochs) epochs
  std::filesystem::path results_csv;  // rows are appended here; existing rows are skipped (resume)
  Shard shard{};
  int jobs = 1;  // runs in flight at once
  // Called after each new row is written, one call at a time.
  std::function<void(const GridResult&)> on_result{};
  // Called when a run throws (e.g. the loss diverged); its missing rows are recorded with NaN losses.
  std::function<void(const Configuration&, const std::string&)> on_error{};
  // Called once before training with the number of runs to do (after skipping recorded ones).
  std::function<void(std::size_t runs_to_do)> on_start{};
  // Called when a run finishes (after its rows), one call at a time, with the run count done so far.
  std::function<void(std::size_t done, std::size_t total)> on_run_done{};
};

struct GridSearchSummary {
  std::size_t runs_total = 0;    // runs (configurations) in this shard
  std::size_t runs_done = 0;     // runs trained by this call
  std::size_t runs_skipped = 0;  // runs whose rows were all in the results file already
  std::size_t runs_failed = 0;
  std::size_t rows_written = 0;
  bool torn_row_dropped = false;  // the results file ended in a row cut short by an interruption
  double wall_seconds = 0;
  std::vector<GridResult> results;  // every row of this shard's runs (earlier and new), in grid order
};

// One run as the user function sees it.
class Trial {
 public:
  // `budgets`: the epoch budgets, ascending.
  Trial(Configuration config, std::vector<int64_t> budgets, std::size_t index)
      : config_(std::move(config)),
        budgets_(std::move(budgets)),
        index_(index),
        start_(std::chrono::steady_clock::now()) {}

  const Configuration& config() const { return config_; }
  // Epochs to train: the largest budget.
  int64_t max_epochs() const { return budgets_.back(); }
  // Whether `epoch` is a budget, i.e. becomes a row: the function may skip validating the other epochs.
  bool is_budget(int64_t epoch) const { return std::binary_search(budgets_.begin(), budgets_.end(), epoch); }
  // The configuration's position in grid order.
  std::size_t index() const { return index_; }

  // The losses after `epoch` (1-based). Epochs that are budgets become rows, timed from the run's start.
  void report(int64_t epoch, double train_loss, double val_loss) {
    const double seconds = std::chrono::duration<double>(std::chrono::steady_clock::now() - start_).count();
    reports_.push_back({config_, epoch, train_loss, val_loss, seconds});
  }

  const std::vector<GridResult>& reports() const { return reports_; }

 private:
  Configuration config_;
  std::vector<int64_t> budgets_;
  std::size_t index_;
  std::chrono::steady_clock::time_point start_;
  std::vector<GridResult> reports_;
};

using TrialFunction = std::function<void(Trial&)>;

inline GridSearchSummary run_grid_search(const ParameterGrid& grid, const GridSearchOptions& options,
                                         const TrialFunction& train) {
  const auto started = std::chrono::steady_clock::now();
  if (options.epochs.empty()) throw std::invalid_argument("grid search: no epoch budget given");
  for (std::size_t i = 0; i < options.epochs.size(); ++i) {
    if (options.epochs[i] < 1)
      throw std::invalid_argument("grid search: epoch budget " + std::to_string(options.epochs[i]) +
                                  " is not positive");
    for (std::size_t j = 0; j < i; ++j)
      if (options.epochs[j] == options.epochs[i])
        throw std::invalid_argument("grid search: epoch budget " + std::to_string(options.epochs[i]) +
                                    " given twice");
  }
  if (options.jobs < 1) throw std::invalid_argument("grid search: jobs must be at least 1");
  if (options.shard.count < 1 || options.shard.index < 0 || options.shard.index >= options.shard.count)
    throw std::invalid_argument("grid search: invalid shard " + options.shard.to_string());
  if (options.results_csv.empty()) throw std::invalid_argument("grid search: no results file given");
  std::vector<int64_t> budgets = options.epochs;
  std::sort(budgets.begin(), budgets.end());

  GridSearchSummary summary;
  // The rows of earlier runs are read once, by the writer that appends the new ones: they are checked
  // against this grid before the writer drops a row torn by an interruption (whose run is then done again).
  std::vector<GridResult> existing;
  util::CsvWriter writer(options.results_csv, results_header(grid), util::CsvWriter::Mode::append,
                         [&](const util::CsvTable& table) {
                           existing = grid_results_from_table(table, options.results_csv, grid);
                         });
  summary.torn_row_dropped = writer.torn_row_dropped();
  const auto recorded = [&](const Configuration& config, int64_t epochs) {
    return std::any_of(existing.begin(), existing.end(),
                       [&](const GridResult& r) { return r.epochs == epochs && r.config == config; });
  };

  std::vector<std::size_t> pending;  // grid indices of the runs to do
  for (std::size_t i = 0; i < grid.size(); ++i) {
    if (!options.shard.contains(i)) continue;
    ++summary.runs_total;
    const Configuration config = grid.at(i);
    const bool complete =
        std::all_of(budgets.begin(), budgets.end(), [&](int64_t e) { return recorded(config, e); });
    if (complete)
      ++summary.runs_skipped;
    else
      pending.push_back(i);
  }

  if (options.on_start) options.on_start(pending.size());
  std::mutex mutex;  // guards the writer, new_rows, counters and the callbacks
  std::vector<GridResult> new_rows;
  std::atomic<std::size_t> next{0};
  std::exception_ptr fatal;  // an error outside the user function (writing the file, a callback)

  const auto worker = [&] {
    while (true) {
      const std::size_t k = next.fetch_add(1);
      if (k >= pending.size()) return;
      {
        std::lock_guard lock(mutex);
        if (fatal) return;
      }
      Trial trial(grid.at(pending[k]), budgets, pending[k]);
      std::string error;
      try {
        train(trial);
      } catch (const std::exception& e) {
        error = e.what();
      } catch (...) {
        error = "unknown exception";
      }
      std::lock_guard lock(mutex);
      try {
        if (error.empty() && std::any_of(budgets.begin(), budgets.end(), [&](int64_t e) {
              return std::none_of(trial.reports().begin(), trial.reports().end(),
                                  [&](const GridResult& r) { return r.epochs == e; });
            }))
          error = "the training function did not report every epoch budget";
        if (!error.empty()) {
          ++summary.runs_failed;
          if (options.on_error) options.on_error(trial.config(), error);
        }
        for (const int64_t e : budgets) {
          if (recorded(trial.config(), e)) continue;
          GridResult row{trial.config(), e};
          for (const GridResult& r : trial.reports())
            if (r.epochs == e) row = r;
          writer.write_row(result_fields(row));
          new_rows.push_back(row);
          ++summary.rows_written;
          if (options.on_result) options.on_result(row);
        }
        ++summary.runs_done;
        if (options.on_run_done) options.on_run_done(summary.runs_done, pending.size());
      } catch (...) {
        if (!fatal) fatal = std::current_exception();
        return;
      }
    }
  };
  const int threads = std::min<int>(options.jobs, int(std::max<std::size_t>(pending.size(), 1)));
  if (threads <= 1) {
    worker();
  } else {
    std::vector<std::thread> pool;
    for (int t = 0; t < threads; ++t) pool.emplace_back(worker);
    for (auto& t : pool) t.join();
  }
  if (fatal) std::rethrow_exception(fatal);

  for (const GridResult& r : existing)
    if (const auto i = grid.index_of(r.config);
        i && options.shard.contains(*i) &&
        std::find(budgets.begin(), budgets.end(), r.epochs) != budgets.end())
      summary.results.push_back(r);
  summary.results.insert(summary.results.end(), new_rows.begin(), new_rows.end());
  std::stable_sort(summary.results.begin(), summary.results.end(),
                   [&](const GridResult& a, const GridResult& b) {
                     const std::size_t ia = *grid.index_of(a.config), ib = *grid.index_of(b.config);
                     return ia != ib ? ia < ib : a.epochs < b.epochs;
                   });
  summary.wall_seconds = std::chrono::duration<double>(std::chrono::steady_clock::now() - started).count();
  return summary;
}

}  // namespace sumi::tune
