// The study's hyperparameter grid search (Table 1) on the reference autoencoder: every combination of latent
// size, weight decay, dropout, batch size and epochs, ranked by final validation MSE. Resumable, shardable
// (--shard i/n, then --merge), with several runs trained at once (--jobs). See --help.
#include <algorithm>
#include <cmath>
#include <cstdio>
#include <filesystem>
#include <iostream>
#include <memory>
#include <optional>
#include <system_error>

#include "common/autoencoder_run.hpp"
#include "common/run_start.hpp"
#include "common/study_data.hpp"
#include "sumi/sumi.hpp"
#include "sumi/tune/grid_results.hpp"
#include "sumi/tune/grid_search.hpp"
#include "sumi/tune/parameter_grid.hpp"
#include "sumi/util/folder_lock.hpp"

namespace fs = std::filesystem;
using namespace sumi;

namespace {

// Default --jobs: two runs at once, each on threads/2 threads. On the 2-core project machine,
// `grid_search --quick --threads 2 --jobs J --quiet` (4 runs of 2 epochs on 12,000 images) took 4.07 s with
// --jobs 2 against 4.90 s with --jobs 1 (see docs/benchmarks.md). Independent runs never wait on each other,
// whereas one small-batch run on two threads pays a barrier per parallel region.
constexpr int kDefaultJobs = 2;

// Each process appends its rows to OUT/grid.csv and then rewrites it: processes that share --out would lose
// each other's rows, so the folder is locked while one works in it.
constexpr const char* kLockHint =
    "shards that run at the same time need their own --out (then combine them with --merge)";

struct Options {
  std::vector<int> latent{5, 10}, batch{300, 600}, epochs{10, 20};
  std::vector<double> weight_decay{1e-5, 1e-4, 0}, dropout{0, 0.25, 0.5};
  std::vector<std::string> merge;
  std::string out = "out/grid_search", data, shard = "0/1";
  int threads = 0, jobs = 0;
  int64_t seed = 0, limit = 0;
  double lr = 1e-3;
  bool quick = false, quiet = false;
};

tune::ParameterGrid make_grid(const Options& o) {
  tune::ParameterGrid grid;
  grid.add_axis("latent", o.latent)
      .add_axis("weight_decay", o.weight_decay)
      .add_axis("dropout", o.dropout)
      .add_axis("batch", o.batch);
  return grid;
}

// Validation MSE of every row, best first, as points; one series per epoch budget so both are visible.
void write_chart(const std::vector<tune::GridResult>& ranked, const fs::path& path) {
  plot::LineChart chart;
  chart.title = "Grid search: validation MSE by rank";
  chart.x_label = "rank (1 = best)";
  chart.y_label = "validation MSE";
  chart.log_y = true;
  std::vector<int64_t> budgets;
  for (const auto& r : ranked)
    if (std::find(budgets.begin(), budgets.end(), r.epochs) == budgets.end()) budgets.push_back(r.epochs);
  std::sort(budgets.begin(), budgets.end());
  std::vector<double> all_x, all_y;
  for (std::size_t i = 0; i < ranked.size(); ++i)
    all_x.push_back(double(i + 1)), all_y.push_back(ranked[i].val_loss);
  chart.add_series("", all_x, all_y, {.color = "#bbbbbb", .width = 1.0});
  for (const int64_t e : budgets) {
    std::vector<double> x, y;
    for (std::size_t i = 0; i < ranked.size(); ++i)
      if (ranked[i].epochs == e) x.push_back(double(i + 1)), y.push_back(ranked[i].val_loss);
    chart.add_series(std::to_string(e) + " epochs", x, y, {.width = 0.0, .markers = true});
  }
  chart.save(path);
}

// Every row of grid.csv was trained with these settings, which are not axes: rows made with others must not
// be resumed as if they were the same, so they are kept in settings.json next to grid.csv and checked.
void check_shared_settings(const Options& o, const fs::path& out) {
  const nlohmann::json settings = {{"lr", o.lr}, {"limit", o.limit}, {"seed", o.seed}};
  const fs::path path = out / "settings.json";
  if (fs::exists(out / "grid.csv")) {
    if (!fs::exists(path))
      throw util::CliError("--out",
                           "'" + (out / "grid.csv").string() +
                               "' has no settings.json beside it, so the --lr, --limit and --seed its "
                               "rows were trained with are unknown; use another --out");
    const nlohmann::json saved = util::read_json_file(path);
    for (const auto& [key, value] : settings.items())
      if (!saved.contains(key) || saved[key] != value)
        throw util::CliError("--" + key, "--" + key + " " + value.dump() + ": the rows of " +
                                             (out / "grid.csv").string() + " were trained with " +
                                             (saved.contains(key) ? saved[key].dump() : "another value") +
                                             " (" + path.string() + "); use another --out");
  }
  util::write_json_atomically(path, settings);
}

// Rows of failed or diverged runs: recorded (so a resumed search does not retry a run that diverges every
// time) but never ranked best, and reported with a non-zero exit status.
std::size_t count_failed_rows(const std::vector<tune::GridResult>& rows) {
  return std::size_t(std::count_if(rows.begin(), rows.end(),
                                   [](const tune::GridResult& r) { return !tune::has_validation_loss(r); }));
}

std::vector<int64_t> budgets_of(const Options& o) {
  return {o.epochs.begin(), o.epochs.end()};
}

// grid.csv (every row, rewritten in grid order), and for this grid's rows only: grid.md, best.json (when
// a row has a validation loss), val_loss.svg and the printed top of the ranking. Returns this grid's rows,
// ranked.
std::vector<tune::GridResult> write_reports(const Options& o, const tune::ParameterGrid& grid,
                                            const std::vector<tune::GridResult>& rows, const fs::path& out) {
  tune::write_grid_results(out / "grid.csv", grid, rows);
  const auto ranked = tune::rank_by_validation_loss(tune::rows_in_grid(rows, grid, budgets_of(o)));
  if (ranked.size() < rows.size())
    std::printf("note: %zu rows of grid.csv are for other axis values or epoch budgets; kept, not ranked\n",
                rows.size() - ranked.size());
  util::write_file_atomically(out / "grid.md", "# Grid search, ranked by final validation MSE\n\n" +
                                                   tune::grid_results_markdown(ranked));
  if (const auto best = tune::best_result(ranked)) {
    nlohmann::json json = tune::grid_result_json(*best);
    json["metric"] = "val_loss";
    json["rank_of"] = ranked.size();
    util::write_json_atomically(out / "best.json", json);
  } else {
    fs::remove(out / "best.json");  // a stale one from another grid would name a configuration not run here
  }
  write_chart(ranked, out / "val_loss.svg");
  if (!o.quiet || !ranked.empty())
    std::printf("\nTop configurations:\n%s", tune::grid_results_markdown(ranked, 10).c_str());
  if (const std::size_t failed = count_failed_rows(ranked))
    std::fprintf(stderr,
                 "warning: %zu of %zu rows have no validation loss (failed or diverged runs; to train them "
                 "again, remove their rows from %s)\n",
                 failed, ranked.size(), (out / "grid.csv").c_str());
  return ranked;
}

// The list of files written, best.json only when a row has a validation loss.
std::string outputs_line(const std::vector<tune::GridResult>& ranked) {
  return std::string("grid.csv grid.md ") + (tune::best_result(ranked) ? "best.json " : "") +
         "val_loss.svg summary.json";
}

// The settings.json of the shards (next to each results file), which must agree: rows trained with another
// --lr, --limit or --seed are not comparable. Null, with a note, when no shard has one; a shard without one
// among shards with one is refused, since its settings cannot be checked.
nlohmann::json shared_shard_settings(const std::vector<fs::path>& results) {
  const auto settings_path = [](const fs::path& csv) { return csv.parent_path() / "settings.json"; };
  if (std::none_of(results.begin(), results.end(),
                   [&](const fs::path& csv) { return fs::exists(settings_path(csv)); })) {
    std::printf(
        "note: no settings.json beside the merged files: their --lr, --limit and --seed are not checked\n");
    return nullptr;
  }
  nlohmann::json shared;
  fs::path first;
  for (const auto& csv : results) {
    const fs::path path = settings_path(csv);
    if (!fs::exists(path))
      throw std::runtime_error("--merge: '" + csv.string() +
                               "' has no settings.json beside it while other merged files have one, so its " +
                               "--lr, --limit and --seed cannot be checked");
    const nlohmann::json settings = util::read_json_file(path);
    if (shared.is_null()) {
      shared = settings, first = path;
      continue;
    }
    for (const auto& [key, value] : settings.items())
      if (!shared.contains(key) || shared[key] != value)
        throw std::runtime_error("--merge: the shards were trained with different --" + key + ": " +
                                 (shared.contains(key) ? shared[key].dump() : "none") + " in '" +
                                 first.string() + "', " + value.dump() + " in '" + path.string() + "'");
  }
  return shared;
}

int merge_shards(const Options& o) {
  util::Timer timer;
  const tune::ParameterGrid grid = make_grid(o);
  std::vector<fs::path> paths(o.merge.begin(), o.merge.end());
  for (const auto& p : paths)
    if (!fs::exists(p)) throw std::runtime_error("--merge: results file '" + p.string() + "' does not exist");
  // The merged rows replace OUT/grid.csv: results there that are not merged would be lost.
  const fs::path out_csv = fs::path(o.out) / "grid.csv";
  std::error_code error;
  if (fs::exists(out_csv) && std::none_of(paths.begin(), paths.end(), [&](const fs::path& p) {
        return fs::equivalent(p, out_csv, error);
      }))
    throw util::CliError("--out", "--out '" + o.out +
                                      "' holds a grid.csv that is not among the --merge files; " +
                                      "add it to them or use another --out");
  // An existing --out is locked before its grid.csv may be read as a shard; a new one is created only once
  // the shards are read and found mergeable, so a refused merge leaves no folder behind.
  std::optional<util::FolderLock> lock;
  if (fs::is_directory(o.out)) lock.emplace(o.out, kLockHint);
  const nlohmann::json settings = shared_shard_settings(paths);
  const auto rows = tune::merge_grid_results(paths, grid);
  // Rows of none of this grid's points: the shards ran with other axis flags (reports of nothing would
  // follow).
  if (!rows.empty() && tune::rows_in_grid(rows, grid, budgets_of(o)).empty())
    throw std::runtime_error(
        "none of the " + std::to_string(rows.size()) +
        " rows of the --merge files is a point of this grid (the first: " + rows.front().config.to_string() +
        " epochs=" + std::to_string(rows.front().epochs) +
        "); merge with the axis flags the shards ran with");
  const examples::RunFolder run =
      examples::start_run("grid_search --merge", 0, o.out, kLockHint, std::move(lock));
  const fs::path& out = run.path;
  if (!settings.is_null())
    util::write_json_atomically(out / "settings.json", settings);
  else
    fs::remove(out / "settings.json");  // one left from another search would vouch for these rows
  std::printf("merged %zu rows from %zu files\n", rows.size(), paths.size());
  const auto missing = tune::missing_trials(grid, budgets_of(o), rows);
  if (!missing.empty()) {
    std::printf("%zu of %zu grid rows are missing, e.g. %s\n", missing.size(), grid.size() * o.epochs.size(),
                missing.front().c_str());
  }
  const auto ranked = write_reports(o, grid, rows, out);
  util::write_json_atomically(out / "summary.json", {{"wall_seconds", timer.elapsed_seconds()},
                                                     {"configurations", ranked.size()},
                                                     {"missing", missing.size()},
                                                     {"merged_files", o.merge},
                                                     {"sumi_version", SUMI_VERSION}});
  std::printf("outputs: %s\n", outputs_line(ranked).c_str());
  return count_failed_rows(ranked) > 0 ? 1 : 0;
}

int run(Options o) {
  if (!o.merge.empty()) return merge_shards(o);
  const tune::Shard shard = tune::Shard::parse(o.shard);
  const int threads = o.threads > 0 ? o.threads : get_num_threads();
  const int jobs = std::min(o.jobs > 0 ? o.jobs : kDefaultJobs, threads);
  const int threads_per_job = std::max(1, threads / jobs);
  set_num_threads(threads);  // for loading

  const auto study = examples::load_study_data(o.data, uint64_t(o.seed), o.limit);
  const examples::RunFolder run_folder = examples::start_run("grid_search", threads, o.out, kLockHint);
  const fs::path& out = run_folder.path;
  set_num_threads(threads_per_job);  // each job's share (the setting is process-wide)
  check_shared_settings(o, out);
  examples::remove_final_outputs(out, {"summary.json"});
  const tune::ParameterGrid grid = make_grid(o);
  const int64_t max_epochs = *std::max_element(o.epochs.begin(), o.epochs.end());
  std::printf(
      "grid: %zu configurations (%zu runs x %zu epoch budgets); shard %s; %d runs at once, %d %s each\n",
      grid.size() * o.epochs.size(), grid.size(), o.epochs.size(), shard.to_string().c_str(), jobs,
      threads_per_job, threads_per_job == 1 ? "thread" : "threads");
  // Runs are dealt round-robin: a script may start more shards than a small grid has runs.
  if (uint64_t(shard.index) >= grid.size())
    std::printf("note: shard %s has no runs: the grid has %zu (at most %zu shards train something)\n",
                shard.to_string().c_str(), grid.size(), grid.size());
  if (o.epochs.size() > 1)
    std::printf(
        "epoch budgets share one run: each run trains %lld epochs and the smaller budgets' rows "
        "are its losses after that many epochs (constant learning rate)\n",
        (long long)max_epochs);

  std::printf("data: %lld train, %lld validation images\n", (long long)study->train->size(),
              (long long)study->validation->size());
  std::fflush(stdout);

  std::unique_ptr<util::ProgressBar> bar;
  tune::GridSearchOptions options;
  options.epochs = budgets_of(o);
  options.results_csv = out / "grid.csv";
  options.shard = shard;
  options.jobs = jobs;
  // Results are printed above the runs' progress bar (on_start makes it before the first result).
  options.on_result = [&](const tune::GridResult& r) {
    if (o.quiet) return;
    bar->write(util::string_printf("%s epochs=%lld: train loss %.5f, validation MSE %.5f, %.1f s\n",
                                   r.config.to_string().c_str(), (long long)r.epochs, r.train_loss,
                                   r.val_loss, r.seconds));
  };
  options.on_error = [&](const tune::Configuration& c, const std::string& message) {
    bar->write(util::string_printf("warning: %s failed: %s (recorded with NaN losses)\n",
                                   c.to_string().c_str(), message.c_str()),
               stderr);
  };
  // What the runs got: fewer runs to do than jobs (a small or resumed search) share all the threads.
  int runs_at_once = jobs, threads_each = threads_per_job;
  options.on_start = [&](std::size_t runs) {
    if (runs > 0 && runs < std::size_t(jobs)) {
      runs_at_once = int(runs);
      threads_each = std::max(1, threads / int(runs));
      set_num_threads(threads_each);
      std::printf("%zu %s to do: %zu at once, %d %s each\n", runs, runs == 1 ? "run" : "runs", runs,
                  threads_each, threads_each == 1 ? "thread" : "threads");
      std::fflush(stdout);
    }
    bar = std::make_unique<util::ProgressBar>(int64_t(runs), "runs",
                                              util::ProgressBarOptions{.quiet = o.quiet, .unit = "run"});
  };
  options.on_run_done = [&](std::size_t, std::size_t) { bar->update(); };

  const auto train = [&](tune::Trial& trial) {
    const tune::Configuration& c = trial.config();
    examples::AutoencoderSettings s{.latent = c.get<int>("latent"),
                                    .weight_decay = c.get<double>("weight_decay"),
                                    .dropout = c.get<double>("dropout"),
                                    .batch = c.get<int>("batch"),
                                    .lr = o.lr,
                                    .seed = uint64_t(o.seed)};
    // Only the budgets' epochs become rows, so only they are validated.
    examples::train_autoencoder_run(
        s, *study->train, *study->validation, int(trial.max_epochs()),
        [&](const examples::AutoencoderEpoch& e) {
          if (trial.is_budget(e.epoch)) trial.report(e.epoch, e.train_loss, e.val_mse);
        },
        nullptr, [&](int epoch) { return trial.is_budget(epoch); });
  };
  const tune::GridSearchSummary summary = tune::run_grid_search(grid, options, train);
  if (bar) bar->close();
  if (summary.torn_row_dropped)
    std::printf("dropped the incomplete last row of %s (an interrupted write)\n",
                options.results_csv.c_str());
  if (summary.runs_skipped > 0)
    std::printf("resumed: %zu of %zu runs were already in %s\n", summary.runs_skipped, summary.runs_total,
                options.results_csv.c_str());

  // The whole results file (other shards' or grids' rows written to the same file included).
  const auto rows = tune::merge_grid_results({options.results_csv}, grid);
  const auto ranked = write_reports(o, grid, rows, out);
  nlohmann::json summary_json = {
      {"wall_seconds", summary.wall_seconds},
      {"configurations", ranked.size()},
      {"runs", summary.runs_total},
      {"runs_trained", summary.runs_done},
      {"runs_skipped", summary.runs_skipped},
      {"runs_failed", summary.runs_failed},
      {"epoch_budgets_share_one_run", o.epochs.size() > 1},
      {"shard", shard.to_string()},
      {"jobs", runs_at_once},
      {"threads_per_job", threads_each},
      {"threads", threads},
      {"train_images", study->train->size()},
      {"seed", o.seed},
      {"lr", o.lr},
      {"max_rss_mb", util::max_rss_mb()},
      {"sumi_version", SUMI_VERSION},
  };
  if (const auto best = tune::best_result(ranked)) summary_json["best"] = tune::grid_result_json(*best);
  util::write_json_atomically(out / "summary.json", summary_json);
  std::printf("%zu runs in %.1f s; outputs: %s settings.json\n", summary.runs_done, summary.wall_seconds,
              outputs_line(ranked).c_str());
  return count_failed_rows(ranked) > 0 ? 1 : 0;
}

}  // namespace

// --quick's grid: four runs of two epochs on 12,000 images. Applied before parsing, so that axis flags and
// --limit given with --quick still count.
void apply_quick_defaults(Options& o) {
  o.latent = {5, 10};
  o.weight_decay = {0};
  o.dropout = {0, 0.25};
  o.batch = {300};
  o.epochs = {1, 2};
  o.limit = 12000;
}

int main(int argc, char** argv) {
  Options o;
  if (util::switch_on(argc, argv, "--quick"))  // changes the defaults that the other flags then override
    apply_quick_defaults(o);
  util::ArgParser cli(
      "Grid search over the study's autoencoder hyperparameters (Table 1 of the study by default: 72 "
      "configurations), ranked by final validation MSE. The epoch budgets share one run: each combination of "
      "the other axes trains for the largest, recording the smaller ones on the way. "
      "Rows already in OUT/grid.csv are skipped, so an interrupted search resumes.");
  const auto positive = [](double v) { return v > 0; };
  cli.bind("--latent", o.latent, "latent sizes").min(1);
  cli.bind("--weight-decay", o.weight_decay, "Adam weight decays").min(0);
  cli.bind("--dropout", o.dropout, "dropout probabilities")
      .min(0)
      .check([](double p) { return p < 1; }, "must be < 1");
  cli.bind("--batch", o.batch, "batch sizes").min(1);
  cli.bind("--epochs", o.epochs, "epoch budgets (one run of the largest per combination of the other axes)")
      .min(1);
  cli.bind("--lr", o.lr, "Adam learning rate (constant)").check(positive, "must be > 0");
  cli.bind("--out", o.out, "output folder");
  cli.bind("--shard", o.shard,
           "train only runs i, i+n, ... of the grid (i/n, 0-based; a run is a combination of the other axes; "
           "a shard "
           "past the number of runs has none); shards that run at the same time need their own --out");
  cli.bind("--merge", o.merge,
           "merge these grid.csv files of shards (same axis flags as the shards) into --out instead of "
           "training; separate arguments or a comma-separated list (--merge shard*/grid.csv)")
      .several();
  cli.bind("--jobs", o.jobs,
           "runs trained at once, each with threads/jobs threads (0: " + std::to_string(kDefaultJobs) +
               ", measured fastest on 2 cores)")
      .min(0);
  examples::bind_threads_flag(cli, o.threads, "threads in all (0: OMP_NUM_THREADS or all cores)");
  cli.bind("--data", o.data,
           "FashionMNIST folder; when empty, $SUMI_DATA or else /usr/share/datasets/fashion-mnist");
  cli.bind("--seed", o.seed, "seed of the split, initialisation and shuffling (the same for every run)");
  examples::bind_limit_flag(cli, o.limit);
  cli.bind("--quick", o.quick,
           "a small demo: 4 runs of 2 epochs on 12,000 images (10,000 train, 2,000 validation)");
  cli.bind("--quiet", o.quiet, "no progress bar or per-row lines");
  return util::run_main(cli, argc, argv, [&] {
    // Axis values are checked here, before anything is written, so that a mistyped list is a usage error.
    const auto check_axis = [](const char* flag, const auto& values) {
      if (values.empty()) throw util::CliError(flag, std::string(flag) + " needs at least one value");
      for (std::size_t i = 0; i < values.size(); ++i)
        if (std::find(values.begin(), values.begin() + std::ptrdiff_t(i), values[i]) !=
            values.begin() + std::ptrdiff_t(i))
          throw util::CliError(
              flag, std::string(flag) + " lists " + util::detail::format_cli_value(values[i]) + " twice");
    };
    check_axis("--latent", o.latent);
    check_axis("--weight-decay", o.weight_decay);
    check_axis("--dropout", o.dropout);
    check_axis("--batch", o.batch);
    check_axis("--epochs", o.epochs);
    if (cli.was_given("--merge") && o.merge.empty())
      throw util::CliError("--merge", "--merge needs at least one results file");
    try {
      tune::Shard::parse(o.shard);
    } catch (const std::invalid_argument& e) {
      throw util::CliError("--shard", std::string("invalid value for --shard: ") + e.what());
    }
    return run(o);
  });
}
