// The tune component (parameter grids, grid search with resume, shards and merging, ranking) and the grid
// search example.
#include <algorithm>
#include <catch2/catch.hpp>
#include <cmath>
#include <cstdlib>
#include <filesystem>
#include <fstream>
#include <map>
#include <mutex>
#include <set>

#include "common/autoencoder_run.hpp"
#include "example_runner.hpp"
#include "sumi/tune/grid_results.hpp"
#include "sumi/tune/grid_search.hpp"
#include "sumi/tune/parameter_grid.hpp"
#include "sumi/util/folder_lock.hpp"
#include "sumi/util/json_file.hpp"
#include "synthetic_images.hpp"

namespace fs = std::filesystem;
using namespace sumi;

namespace {

tune::ParameterGrid small_grid() {
  tune::ParameterGrid grid;
  grid.add_axis("latent", {5, 10}).add_axis("decay", {1e-5, 0.0}).add_axis("act", {"relu", "tanh", "gelu"});
  return grid;
}

// A fresh temporary folder for one test.
fs::path temp_dir(const std::string& name) {
  const fs::path dir = fs::temp_directory_path() / ("sumi_tune_" + name);
  fs::remove_all(dir);
  fs::create_directories(dir);
  return dir;
}

// A deterministic stand-in for training: losses depend on the configuration and epoch only.
double fake_loss(const tune::Configuration& c, int64_t epoch) {
  const double act = c.get<std::string>("act") == "relu"   ? 0.0
                     : c.get<std::string>("act") == "tanh" ? 0.1
                                                           : 0.2;
  return 1.0 / double(epoch) + 0.01 * c.get<double>("latent") + 1000 * c.get<double>("decay") + act;
}

// Counts calls per configuration (thread-safe) and reports every epoch.
struct FakeTrainer {
  std::mutex mutex;
  std::map<std::string, int> calls;
  std::vector<int64_t> max_epochs_seen;
  void operator()(tune::Trial& trial) {
    {
      std::lock_guard lock(mutex);
      ++calls[trial.config().to_string()];
      max_epochs_seen.push_back(trial.max_epochs());
    }
    for (int64_t e = 1; e <= trial.max_epochs(); ++e)
      trial.report(e, fake_loss(trial.config(), e) + 0.5, fake_loss(trial.config(), e));
  }
  tune::TrialFunction function() {
    return [this](tune::Trial& t) { (*this)(t); };
  }
};

}  // namespace

TEST_CASE("ParameterGrid enumerates every combination with the last axis fastest", "[tune]") {
  const tune::ParameterGrid grid = small_grid();
  REQUIRE(grid.size() == 12);
  std::set<std::string> seen;
  for (std::size_t i = 0; i < grid.size(); ++i) {
    const tune::Configuration c = grid.at(i);
    REQUIRE(seen.insert(c.to_string()).second);
    REQUIRE(grid.index_of(c) == i);
  }
  CHECK(grid.at(0).to_string() == "latent=5 decay=1e-05 act=relu");
  CHECK(grid.at(1).to_string() == "latent=5 decay=1e-05 act=tanh");
  CHECK(grid.at(3).to_string() == "latent=5 decay=0 act=relu");
  CHECK(grid.at(11).to_string() == "latent=10 decay=0 act=gelu");
  const tune::Configuration c = grid.at(4);
  CHECK(c.get<int>("latent") == 5);
  CHECK(c.get<double>("latent") == 5.0);
  CHECK(c.get<double>("decay") == 0.0);
  CHECK(c.get<std::string>("act") == "tanh");
  CHECK_THROWS_WITH(c.get<int>("decay"), Catch::Contains("decay"));
  CHECK_THROWS_WITH(c.at("dropout"), Catch::Contains("latent, decay, act"));
  CHECK_THROWS_AS(grid.at(12), std::out_of_range);
  CHECK_FALSE(grid.index_of(tune::Configuration({{"latent", int64_t(7)}, {"decay", 0.0}, {"act", "relu"}})));

  tune::ParameterGrid bad;
  bad.add_axis("a", {1, 2});
  CHECK_THROWS_WITH(bad.add_axis("a", {3}), Catch::Contains("twice"));
  CHECK_THROWS_WITH(bad.add_axis("b", std::vector<int>{}), Catch::Contains("no values"));
  CHECK_THROWS_WITH(bad.add_axis("c", {0.5, 0.5}), Catch::Contains("0.5 twice"));
  // NaN equals nothing: a NaN point could never be found again (resume, ranking), so it is refused.
  CHECK_THROWS_WITH(bad.add_axis("d", {0.5, std::nan("")}), Catch::Contains("'d' has a NaN value"));
  // An integer that does not fit the requested type is refused, not truncated.
  tune::ParameterGrid wide;
  wide.add_axis("width", std::vector<int64_t>{int64_t(1) << 33});
  CHECK_THROWS_WITH(wide.at(0).get<int>("width"), Catch::Contains("8589934592"));
  CHECK(wide.at(0).get<int64_t>("width") == int64_t(1) << 33);
  tune::ParameterGrid flags;
  flags.add_axis("flag", {0, 1, 2});
  CHECK_FALSE(flags.at(0).get<bool>("flag"));
  CHECK(flags.at(1).get<bool>("flag"));
  CHECK_THROWS_WITH(flags.at(2).get<bool>("flag"), Catch::Contains("out of its range"));
  tune::ParameterGrid clash;
  clash.add_axis("val_loss", {1});
  CHECK_THROWS_WITH(tune::results_header(clash), Catch::Contains("val_loss"));
}

TEST_CASE("Shard parses i/n and shards partition a grid", "[tune]") {
  CHECK(tune::Shard::parse("1/3").index == 1);
  CHECK(tune::Shard::parse("1/3").count == 3);
  CHECK(tune::Shard::parse("+1/+3").index == 1);  // one '+' sign, as every number the examples read
  for (const char* bad : {"3/3", "-1/2", "1", "a/2", "0/0", "1/2x", "+-1/2"})
    CHECK_THROWS_WITH(tune::Shard::parse(bad), Catch::Contains(bad));
  CHECK_THROWS_WITH(tune::Shard::parse("0/99999999999999999999"),
                    Catch::Contains("'99999999999999999999' is out of range"));
  std::vector<int> owners(100, 0);
  for (int64_t s = 0; s < 3; ++s)
    for (std::size_t i = 0; i < owners.size(); ++i) owners[i] += tune::Shard{s, 3}.contains(i);
  for (int n : owners) REQUIRE(n == 1);
  // A shard built by hand is checked where it is used (0/0 would divide by zero).
  CHECK_THROWS_WITH(tune::Shard({0, 0}).contains(1), Catch::Contains("shard 0/0"));
  CHECK_THROWS_WITH(tune::Shard({3, 2}).contains(1), Catch::Contains("shard 3/2"));
}

TEST_CASE("grid search runs every combination once and records each epoch budget from one run", "[tune]") {
  const fs::path dir = temp_dir("once");
  const tune::ParameterGrid grid = small_grid();
  for (const int jobs : {1, 3}) {
    FakeTrainer trainer;
    const fs::path csv = dir / ("grid" + std::to_string(jobs) + ".csv");
    const auto summary =
        tune::run_grid_search(grid, {.epochs = {4, 2}, .results_csv = csv, .jobs = jobs}, trainer.function());
    REQUIRE(trainer.calls.size() == grid.size());
    for (const auto& [config, n] : trainer.calls) REQUIRE(n == 1);
    for (const int64_t e : trainer.max_epochs_seen) REQUIRE(e == 4);
    REQUIRE(summary.runs_done == grid.size());
    REQUIRE(summary.results.size() == 2 * grid.size());
    const auto rows = tune::read_grid_results(csv, grid);
    REQUIRE(rows.size() == 2 * grid.size());
    std::set<std::pair<std::string, int64_t>> keys;
    for (const auto& r : rows) {
      REQUIRE(keys.insert({r.config.to_string(), r.epochs}).second);
      REQUIRE((r.epochs == 2 || r.epochs == 4));
      REQUIRE(r.val_loss == fake_loss(r.config, r.epochs));  // exact: numbers round-trip through the CSV
      REQUIRE(r.train_loss == fake_loss(r.config, r.epochs) + 0.5);
      REQUIRE(r.seconds >= 0);
    }
  }
  fs::remove_all(dir);
}

TEST_CASE("a trial trains for its largest budget and knows which epochs are budgets", "[tune]") {
  const tune::ParameterGrid grid = small_grid();
  const tune::Trial trial(grid.at(0), {2, 4}, 0);
  REQUIRE(trial.max_epochs() == 4);
  REQUIRE(trial.is_budget(2));
  REQUIRE(trial.is_budget(4));
  REQUIRE_FALSE(trial.is_budget(1));
  REQUIRE_FALSE(trial.is_budget(3));
  REQUIRE_FALSE(trial.is_budget(5));
}

TEST_CASE("grid search resumes: rows already in the file are not run again", "[tune]") {
  const fs::path dir = temp_dir("resume");
  const tune::ParameterGrid grid = small_grid();
  const fs::path csv = dir / "grid.csv";
  {
    FakeTrainer trainer;
    tune::run_grid_search(grid, {.epochs = {1, 3}, .results_csv = csv}, trainer.function());
  }
  // Interrupt: keep the header and the first 9 rows (runs 0-3 complete, run 4 has only its 1-epoch row), and
  // leave the last one cut in the middle of a line.
  std::string text = test::read_text(csv);
  std::size_t pos = 0;
  for (int line = 0; line < 10; ++line) pos = text.find('\n', pos) + 1;
  const std::size_t cut = text.find('\n', pos);
  std::ofstream(csv, std::ios::trunc) << text.substr(0, pos) << text.substr(pos, (cut - pos) / 2);
  // The cut line (no line break after it: only an interrupted write leaves that) is dropped and its run
  // done again.
  FakeTrainer trainer;
  const auto summary =
      tune::run_grid_search(grid, {.epochs = {1, 3}, .results_csv = csv}, trainer.function());
  CHECK(summary.torn_row_dropped);
  CHECK(summary.runs_skipped == 4);
  CHECK(summary.runs_done == grid.size() - 4);
  CHECK(summary.rows_written == 2 * grid.size() - 9);
  for (std::size_t i = 0; i < 4; ++i) CHECK(trainer.calls.count(grid.at(i).to_string()) == 0);
  for (std::size_t i = 4; i < grid.size(); ++i) CHECK(trainer.calls.at(grid.at(i).to_string()) == 1);
  const auto rows = tune::read_grid_results(csv, grid);
  REQUIRE(rows.size() == 2 * grid.size());
  REQUIRE(tune::missing_trials(grid, {1, 3}, rows).empty());

  // Everything recorded: nothing runs.
  FakeTrainer again;
  const auto done = tune::run_grid_search(grid, {.epochs = {1, 3}, .results_csv = csv}, again.function());
  CHECK(again.calls.empty());
  CHECK_FALSE(done.torn_row_dropped);
  CHECK(done.runs_skipped == grid.size());
  CHECK(done.results.size() == 2 * grid.size());

  // A file for other axes is refused, naming it.
  tune::ParameterGrid other;
  other.add_axis("latent", {5});
  CHECK_THROWS_WITH(tune::run_grid_search(other, {.epochs = {1}, .results_csv = csv}, again.function()),
                    Catch::Contains(csv.string()) && Catch::Contains("columns"));
  // A complete row that does not parse is not an interruption: the error names the file, which is left as
  // it is (its torn last row too).
  const std::string bad_row = text.substr(0, pos) + "5,x,relu,1,0.1,0.1,0\n5,1e-05,re";
  util::write_file_atomically(csv, bad_row);
  CHECK_THROWS_WITH(tune::run_grid_search(grid, {.epochs = {1, 3}, .results_csv = csv}, again.function()),
                    Catch::Contains(csv.string()) && Catch::Contains("'x'"));
  CHECK(test::read_text(csv) == bad_row);
  for (const char* epochs : {"1e30", "nan", "2.5"}) {
    util::write_file_atomically(csv, text.substr(0, pos) + "5,1e-05,relu," + epochs + ",0.1,0.1,0\n");
    CHECK_THROWS_WITH(tune::run_grid_search(grid, {.epochs = {1, 3}, .results_csv = csv}, again.function()),
                      Catch::Contains("epochs must be a whole number") && Catch::Contains(epochs));
  }
  for (const char* seconds : {"inf", "-1", "nan"}) {
    util::write_file_atomically(csv, text.substr(0, pos) + "5,1e-05,relu,1,0.1,0.1," + seconds + "\n");
    CHECK_THROWS_WITH(tune::run_grid_search(grid, {.epochs = {1, 3}, .results_csv = csv}, again.function()),
                      Catch::Contains("seconds a finite number >= 0") && Catch::Contains(seconds));
  }
  // A run recorded twice with different losses is refused before anything trains, naming both rows.
  util::write_file_atomically(csv, text.substr(0, pos) + "5,1e-05,relu,1,0.9,0.9,0\n");
  CHECK_THROWS_WITH(tune::run_grid_search(grid, {.epochs = {1, 3}, .results_csv = csv}, again.function()),
                    Catch::Contains(csv.string()) && Catch::Contains("rows 1 and 10") &&
                        Catch::Contains("latent=5 decay=1e-05 act=relu epochs=1 is recorded twice"));
  CHECK(again.calls.empty());
  // The same row twice with the same losses (a line copied) is accepted, and its run counted once.
  const std::size_t first_row = text.find('\n') + 1;
  util::write_file_atomically(
      csv, text.substr(0, pos) + text.substr(first_row, text.find('\n', first_row) + 1 - first_row));
  CHECK(tune::read_grid_results(csv, grid).size() == 9);
  const auto copied = tune::run_grid_search(grid, {.epochs = {1, 3}, .results_csv = csv}, again.function());
  CHECK(copied.runs_skipped == 4);
  CHECK(copied.results.size() == 2 * grid.size());  // each configuration and budget once
  again.calls.clear();
  // A file that is not this grid's is refused as it is, even when its last line looks cut short (the start
  // of this grid's own header, "lat", would be a header cut short, and written again).
  for (const std::string& foreign : {std::string("step"), std::string("a,b\n1,2\n3,")}) {
    util::write_file_atomically(csv, foreign);
    CHECK_THROWS_WITH(tune::run_grid_search(grid, {.epochs = {1, 3}, .results_csv = csv}, again.function()),
                      Catch::Contains(csv.string()) && Catch::Contains("columns"));
    CHECK(test::read_text(csv) == foreign);
  }
  // Rows ending in \r (old Mac line ends) are complete.
  std::string mac = text.substr(0, pos);
  std::replace(mac.begin(), mac.end(), '\n', '\r');
  util::write_file_atomically(csv, mac);
  FakeTrainer from_mac;
  const auto mac_summary =
      tune::run_grid_search(grid, {.epochs = {1, 3}, .results_csv = csv}, from_mac.function());
  CHECK_FALSE(mac_summary.torn_row_dropped);
  CHECK(mac_summary.runs_skipped == 4);
  // ... and its columns are shown whole even when the file holds control bytes.
  util::write_file_atomically(csv, std::string("lat\0ent,epochs\n", 15));
  CHECK_THROWS_WITH(tune::run_grid_search(other, {.epochs = {1}, .results_csv = csv}, again.function()),
                    Catch::Contains("has columns 'lat\\x00ent,epochs' but this grid needs 'latent,epochs,"));
  fs::remove_all(dir);
}

TEST_CASE("grid search shards partition the grid and merge back to the full table", "[tune]") {
  const fs::path dir = temp_dir("shards");
  const tune::ParameterGrid grid = small_grid();
  FakeTrainer full_trainer;
  tune::run_grid_search(grid, {.epochs = {2}, .results_csv = dir / "full.csv"}, full_trainer.function());

  std::map<std::string, int> runs;
  std::vector<fs::path> files;
  for (int64_t s = 0; s < 5; ++s) {
    FakeTrainer trainer;
    files.push_back(dir / ("shard" + std::to_string(s) + ".csv"));
    const auto summary = tune::run_grid_search(
        grid, {.epochs = {2}, .results_csv = files.back(), .shard = {s, 5}}, trainer.function());
    for (const auto& [config, n] : trainer.calls) runs[config] += n;
    CHECK(summary.runs_total == (grid.size() + 4 - std::size_t(s)) / 5);
  }
  REQUIRE(runs.size() == grid.size());
  for (const auto& [config, n] : runs) REQUIRE(n == 1);

  files.push_back(files.front());  // a file given twice adds nothing
  const auto merged = tune::merge_grid_results(files, grid);
  const auto full = tune::read_grid_results(dir / "full.csv", grid);
  REQUIRE(merged.size() == full.size());
  for (std::size_t i = 0; i < full.size(); ++i) {
    REQUIRE(merged[i].config == full[i].config);  // grid order
    REQUIRE(merged[i].val_loss == full[i].val_loss);
  }
  CHECK(tune::missing_trials(grid, {2}, tune::merge_grid_results({files[0]}, grid)).size() ==
        grid.size() - 3);
  // The same row with other losses in two files is two different runs: refused naming both files.
  const fs::path rerun = dir / "rerun.csv";
  auto rerun_rows = tune::read_grid_results(files[0], grid);
  rerun_rows.front().val_loss += 0.125;
  tune::write_grid_results(rerun, grid, rerun_rows);
  CHECK_THROWS_WITH(tune::merge_grid_results({files[0], rerun}, grid),
                    Catch::Contains("different losses") && Catch::Contains(files[0].string()) &&
                        Catch::Contains(rerun.string()));
  // A shard whose last row was cut short (its search interrupted) is refused, not merged with a cut
  // number; nor is a shard of other axes.
  const std::string shard0 = test::read_text(files[0]);
  util::write_file_atomically(files[0], shard0.substr(0, shard0.size() - 3));
  CHECK_THROWS_WITH(tune::merge_grid_results(files, grid),
                    Catch::Contains(files[0].string()) && Catch::Contains("cut short"));
  tune::ParameterGrid other;
  other.add_axis("latent", {5});
  CHECK_THROWS_WITH(tune::merge_grid_results({files[1]}, other),
                    Catch::Contains(files[1].string()) && Catch::Contains("but this grid needs"));
  fs::remove_all(dir);
}

TEST_CASE("rows of other grids or budgets are told apart from the grid's own", "[tune]") {
  const tune::ParameterGrid grid = small_grid();
  tune::ParameterGrid wider = small_grid();
  wider.add_axis("extra", {1});
  std::vector<tune::GridResult> rows;
  for (const int64_t epochs : {1, 2, 3}) rows.push_back({grid.at(4), epochs, 0.5, 0.4, 1.0});
  tune::GridResult other = rows.front();
  other.config = tune::Configuration({{"latent", int64_t(7)}, {"decay", 0.0}, {"act", std::string("relu")}});
  rows.push_back(other);
  // Merged, the grid's rows come first and the others after them in file order.
  const fs::path dir = temp_dir("other_rows");
  tune::GridResult earlier = other, later = other;
  earlier.epochs = 3;  // file order, not epochs, among the rows outside the grid
  later.config = tune::Configuration({{"latent", int64_t(6)}, {"decay", 0.0}, {"act", std::string("relu")}});
  tune::write_grid_results(dir / "rows.csv", grid, {earlier, rows[2], later, rows[0]});
  const auto merged = tune::merge_grid_results({dir / "rows.csv"}, grid);
  REQUIRE(merged.size() == 4);
  CHECK(merged[0].epochs == 1);
  CHECK(merged[1].epochs == 3);
  CHECK(merged[2].config == earlier.config);
  CHECK(merged[2].epochs == 3);
  CHECK(merged[3].config == later.config);
  fs::remove_all(dir);
  const auto kept = tune::rows_in_grid(rows, grid, {1, 3});
  REQUIRE(kept.size() == 2);
  CHECK(kept[0].epochs == 1);
  CHECK(kept[1].epochs == 3);
  CHECK(kept[0].config == grid.at(4));
  CHECK(tune::rows_in_grid(rows, wider, {1, 2, 3}).empty());
}

TEST_CASE("ranking puts the lowest validation loss first and failures last", "[tune]") {
  const fs::path dir = temp_dir("rank");
  const tune::ParameterGrid grid = small_grid();
  std::vector<std::string> errors;
  const auto summary = tune::run_grid_search(
      grid,
      {.epochs = {1, 2},
       .results_csv = dir / "grid.csv",
       .on_error = [&](const tune::Configuration& c,
                       const std::string& what) { errors.push_back(c.to_string() + what); }},
      [](tune::Trial& t) {
        if (t.index() == 5) throw std::runtime_error("diverged");
        for (int64_t e = 1; e <= t.max_epochs(); ++e)
          t.report(e, 1.0, std::abs(double(t.index()) - 7.3) + double(e));
      });
  REQUIRE(errors.size() == 1);
  CHECK(errors[0].find("diverged") != std::string::npos);
  CHECK(summary.runs_failed == 1);
  const auto ranked = tune::rank_by_validation_loss(summary.results);
  REQUIRE(ranked.size() == 2 * grid.size());
  double lowest = INFINITY;
  for (const auto& r : summary.results)
    if (!std::isnan(r.val_loss)) lowest = std::min(lowest, r.val_loss);
  REQUIRE(ranked.front().val_loss == lowest);
  CHECK(grid.index_of(ranked.front().config) == 7u);
  CHECK(ranked.front().epochs == 1);
  for (std::size_t i = 1; i + 2 < ranked.size(); ++i) REQUIRE(ranked[i - 1].val_loss <= ranked[i].val_loss);
  CHECK(std::isnan(ranked[ranked.size() - 1].val_loss));
  CHECK(std::isnan(ranked[ranked.size() - 2].val_loss));

  const std::string md = tune::grid_results_markdown(ranked, 3);
  CHECK(md.find("| rank | latent | decay | act | epochs |") == 0);
  CHECK(md.find("| 1 | 10 | 1e-05 | tanh | 1 |") != std::string::npos);
  CHECK(std::count(md.begin(), md.end(), '\n') == 5);
  // A diverged loss too long for fixed notation is written exactly, not cut off.
  auto diverged = ranked;
  diverged.front().train_loss = 1.5e300;
  CHECK(tune::grid_results_markdown(diverged, 1).find(" 1.5e+300 |") != std::string::npos);
  // The best row is the lowest finite loss; a grid whose runs all failed has none.
  REQUIRE(tune::best_result(ranked));
  CHECK(tune::best_result(ranked)->val_loss == lowest);
  const std::vector<tune::GridResult> failures(ranked.end() - 2, ranked.end());
  CHECK_FALSE(tune::best_result(failures));
  // Text values that would break a Markdown table are escaped: '|' ends a cell, a line break a row.
  auto odd = std::vector<tune::GridResult>(ranked.begin(), ranked.begin() + 2);
  odd[0].config = tune::Configuration({{"act", std::string("relu|tanh")}});
  odd[1].config = tune::Configuration({{"act", std::string("two\r\nlines")}});
  const std::string odd_md = tune::grid_results_markdown(odd);
  CHECK(odd_md.find("| relu\\|tanh |") != std::string::npos);
  CHECK(odd_md.find("| two<br>lines |") != std::string::npos);
  CHECK(std::count(odd_md.begin(), odd_md.end(), '\n') == 4);
  const nlohmann::json best = tune::grid_result_json(ranked.front());
  CHECK(best["parameters"]["latent"] == 10);
  CHECK(best["parameters"]["act"] == "tanh");
  CHECK(best["val_loss"].get<double>() == lowest);
  CHECK(tune::grid_result_json(ranked.back())["val_loss"].is_null());
  fs::remove_all(dir);
}

TEST_CASE("the 1-epoch rows of a shared {1, 2}-epoch run equal a separate 1-epoch run",
          "[tune][autoencoder]") {
  const fs::path dir = temp_dir("shared_epochs");
  const data::MnistDataset train = test::synthetic_images(32, 1), val = test::synthetic_images(10, 2);
  tune::ParameterGrid grid;
  grid.add_axis("dropout", {0.0, 0.25});
  const auto train_fn = [&](tune::Trial& trial) {
    examples::AutoencoderSettings s{.latent = 3,
                                    .weight_decay = 1e-4,
                                    .dropout = trial.config().get<double>("dropout"),
                                    .batch = 16,
                                    .seed = 7};
    // As the grid-search example does it: only the budgets' epochs are validated and reported.
    examples::train_autoencoder_run(
        s, train, val, int(trial.max_epochs()),
        [&](const examples::AutoencoderEpoch& e) {
          if (trial.is_budget(e.epoch)) trial.report(e.epoch, e.train_loss, e.val_mse);
        },
        nullptr, [&](int epoch) { return trial.is_budget(epoch); });
  };
  const auto shared =
      tune::run_grid_search(grid, {.epochs = {1, 2}, .results_csv = dir / "shared.csv"}, train_fn);
  const auto alone = tune::run_grid_search(grid, {.epochs = {1}, .results_csv = dir / "alone.csv"}, train_fn);
  REQUIRE(shared.results.size() == 4);
  REQUIRE(alone.results.size() == 2);
  for (const auto& a : alone.results) {
    const auto it = std::find_if(shared.results.begin(), shared.results.end(),
                                 [&](const tune::GridResult& s) { return tune::same_trial(s, a); });
    REQUIRE(it != shared.results.end());
    REQUIRE(it->train_loss == a.train_loss);  // bit-identical
    REQUIRE(it->val_loss == a.val_loss);
    const auto second =
        std::find_if(shared.results.begin(), shared.results.end(),
                     [&](const tune::GridResult& s) { return s.config == a.config && s.epochs == 2; });
    REQUIRE(second != shared.results.end());
    REQUIRE(second->train_loss != a.train_loss);  // the second epoch trained on
  }
  fs::remove_all(dir);
}

namespace {
const fs::path grid_search_program = fs::path(SUMI_EXAMPLES_DIR) / "grid_search";
}  // namespace

TEST_CASE("grid_search example runs, resumes, shards and merges", "[example][e2e]") {
  if (!fs::exists(grid_search_program)) {
    WARN("grid_search example not built; skipping");
    return;
  }
  const fs::path dir = temp_dir("example");
  const fs::path log = dir / "log.txt";
  REQUIRE(test::run_example("grid_search", "--epochs abc", log) == 2);
  CHECK(test::read_text(log).find("--epochs") != std::string::npos);
  REQUIRE(test::run_example("grid_search", "--shard 2/2", log) == 2);
  CHECK(test::read_text(log).find("--shard") != std::string::npos);
  // Axis lists are checked before anything is written.
  REQUIRE(test::run_example("grid_search", "--latent 5,5 --out " + (dir / "dup").string(), log) == 2);
  CHECK(test::read_text(log).find("--latent lists 5 twice") != std::string::npos);
  CHECK_FALSE(fs::exists(dir / "dup"));
  REQUIRE(test::run_example("grid_search", "--dropout= --out " + (dir / "dup").string(), log) == 2);
  CHECK(test::read_text(log).find("--dropout needs at least one value") != std::string::npos);
  REQUIRE(test::run_example("grid_search", "--merge= --out " + (dir / "dup").string(), log) == 2);
  CHECK(test::read_text(log).find("--merge needs at least one results file") != std::string::npos);
  CHECK_FALSE(fs::exists(dir / "dup"));
  if (!test::fashion_mnist_installed()) {
    WARN("FashionMNIST not installed; skipping the training part");
    return;
  }
  const std::string grid =
      "--limit 300 --latent 3 --weight-decay 0 --dropout 0,0.25 --batch 100 --epochs 1,2 --quiet ";
  REQUIRE(test::run_example("grid_search", grid + "--out " + (dir / "full").string(), log) == 0);
  const nlohmann::json summary = util::read_json_file(dir / "full" / "summary.json");
  CHECK(summary["configurations"] == 4);
  CHECK(summary["wall_seconds"].is_number());
  const nlohmann::json best = util::read_json_file(dir / "full" / "best.json");
  CHECK(best["val_loss"].is_number());
  CHECK(test::read_text(dir / "full" / "grid.md").find("| rank |") != std::string::npos);
  CHECK(test::read_text(dir / "full" / "val_loss.svg").find("<svg") != std::string::npos);
  const std::string full_csv = test::read_text(dir / "full" / "grid.csv");

  // Resuming a finished search trains nothing and keeps the rows.
  REQUIRE(test::run_example("grid_search", grid + "--out " + (dir / "full").string(), log) == 0);
  CHECK(test::read_text(log).find("resumed: 2 of 2 runs") != std::string::npos);
  CHECK(test::read_text(dir / "full" / "grid.csv") == full_csv);

  // Two shards merged give the same table; their files given as a shell glob expands them (run_example runs
  // a shell), as separate arguments.
  for (const int s : {0, 1})
    REQUIRE(test::run_example("grid_search",
                              grid + "--shard " + std::to_string(s) + "/2 --out " +
                                  (dir / ("shard" + std::to_string(s))).string(),
                              log) == 0);
  REQUIRE(test::run_example("grid_search",
                            grid + "--merge " + (dir / "shard*" / "grid.csv").string() + " --out " +
                                (dir / "merged").string(),
                            log) == 0);
  CHECK(test::read_text(log).find("merged 4 rows from 2 files") != std::string::npos);
  const auto merged = util::read_csv(dir / "merged" / "grid.csv"),
             full = util::read_csv(dir / "full" / "grid.csv");
  REQUIRE(merged.size() == full.size());
  for (std::size_t i = 0; i < full.size(); ++i) CHECK(merged.text(i, "val_loss") == full.text(i, "val_loss"));
  CHECK(util::read_json_file(dir / "merged" / "settings.json")["seed"] == 0);
  // One run for two jobs: it had all the threads, and the summary says so.
  const nlohmann::json shard_summary = util::read_json_file(dir / "shard0" / "summary.json");
  CHECK(shard_summary["jobs"] == 1);
  CHECK(shard_summary["threads_per_job"] == shard_summary["threads"]);
  // Shards merged with other axis flags than theirs share no point with the grid: refused, no folder made.
  REQUIRE(test::run_example("grid_search",
                            "--latent 4 --weight-decay 0 --dropout 0,0.25 --batch 100 --epochs 1,2 --merge " +
                                (dir / "shard*" / "grid.csv").string() + " --out " +
                                (dir / "other_axes").string(),
                            log) == 1);
  CHECK(
      test::read_text(log).find("none of the 4 rows of the --merge files is a point of this grid (the first: "
                                "latent=3") != std::string::npos);
  CHECK_FALSE(fs::exists(dir / "other_axes"));
  // Shards trained with different settings are not merged.
  fs::copy(dir / "shard1", dir / "shard1_other_lr");
  util::write_json_atomically(dir / "shard1_other_lr" / "settings.json",
                              {{"lr", 0.01}, {"limit", 300}, {"seed", 0}});
  REQUIRE(test::run_example("grid_search",
                            grid + "--out " + (dir / "mixed").string() + " --merge " +
                                (dir / "shard0" / "grid.csv").string() + "," +
                                (dir / "shard1_other_lr" / "grid.csv").string(),
                            log) == 1);
  CHECK(test::read_text(log).find("different --lr") != std::string::npos);
  CHECK_FALSE(fs::exists(dir / "mixed"));  // a refused merge creates no output folder
  // ... nor a shard whose settings are unknown with shards whose settings are known.
  fs::copy(dir / "shard1", dir / "shard1_no_settings");
  fs::remove(dir / "shard1_no_settings" / "settings.json");
  REQUIRE(test::run_example("grid_search",
                            grid + "--out " + (dir / "mixed").string() + " --merge " +
                                (dir / "shard0" / "grid.csv").string() + "," +
                                (dir / "shard1_no_settings" / "grid.csv").string(),
                            log) == 1);
  CHECK(test::read_text(log).find("shard1_no_settings/grid.csv' has no settings.json beside it") !=
        std::string::npos);
  CHECK_FALSE(fs::exists(dir / "mixed"));
  // A merge into a folder whose grid.csv is not merged would replace its rows: refused, the file kept.
  REQUIRE(test::run_example("grid_search",
                            grid + "--out " + (dir / "full").string() + " --merge " +
                                (dir / "shard0" / "grid.csv").string(),
                            log) == 2);
  CHECK(test::read_text(log).find("holds a grid.csv that is not among the --merge files") !=
        std::string::npos);
  CHECK(test::read_text(dir / "full" / "grid.csv") == full_csv);

  // Rows whose settings are unknown are not resumed.
  fs::copy(dir / "full", dir / "no_settings");
  fs::remove(dir / "no_settings" / "settings.json");
  REQUIRE(test::run_example("grid_search", grid + "--out " + (dir / "no_settings").string(), log) == 2);
  CHECK(test::read_text(log).find("has no settings.json beside it") != std::string::npos);
  // Two processes in one folder would lose each other's rows: a folder in use is refused.
  {
    fs::create_directories(dir / "locked");
    const util::FolderLock in_use(dir / "locked");
    REQUIRE(test::run_example("grid_search", grid + "--out " + (dir / "locked").string(), log) == 1);
    CHECK(test::read_text(log).find("is in use by another process; shards that run at the same time need "
                                    "their own --out") != std::string::npos);
    CHECK_FALSE(fs::exists(dir / "locked" / "grid.csv"));
  }
  // A diverged run is recorded but never best, and its rows keep the exit status non-zero on resume.
  const std::string diverging =
      "--limit 300 --latent 3 --weight-decay 0 --dropout 0 --batch 100 --epochs 1 --lr 1e300 --quiet --out " +
      (dir / "diverged").string();
  for (const char* resumed : {"", "resumed: 1 of 1 runs"}) {
    REQUIRE(test::run_example("grid_search", diverging, log) == 1);
    CHECK(test::read_text(log).find(resumed) != std::string::npos);
    CHECK(test::read_text(log).find("1 of 1 rows have no validation loss") != std::string::npos);
    CHECK_FALSE(fs::exists(dir / "diverged" / "best.json"));
    CHECK_FALSE(util::read_json_file(dir / "diverged" / "summary.json").contains("best"));
  }
  // ... and merged, too.
  REQUIRE(test::run_example(
              "grid_search",
              "--latent 3 --weight-decay 0 --dropout 0 --batch 100 --epochs 1 --quiet --merge " +
                  (dir / "diverged" / "grid.csv").string() + " --out " + (dir / "diverged_merged").string(),
              log) == 1);
  CHECK(test::read_text(log).find("1 of 1 rows have no validation loss") != std::string::npos);

  // Rows trained with another learning rate are not resumed as this one's.
  REQUIRE(test::run_example("grid_search", grid + "--lr 0.002 --out " + (dir / "full").string(), log) == 2);
  CHECK(test::read_text(log).find("--lr 0.002") != std::string::npos);
  CHECK(test::read_text(dir / "full" / "grid.csv") == full_csv);

  // Another grid in the same folder: its rows are added, the old ones kept but not ranked with it.
  const std::string other =
      "--limit 300 --latent 4 --weight-decay 0 --dropout 0 --batch 100 --epochs 1 --quiet ";
  REQUIRE(test::run_example("grid_search", other + "--threads 2 --jobs 2 --out " + (dir / "full").string(),
                            log) == 0);
  CHECK(test::read_text(log).find("4 rows of grid.csv are for other axis values") != std::string::npos);
  CHECK(test::read_text(log).find("1 run to do: 1 at once, 2 threads each") != std::string::npos);
  CHECK(util::read_csv(dir / "full" / "grid.csv").size() == 5);
  CHECK(util::read_json_file(dir / "full" / "summary.json")["configurations"] == 1);
  CHECK(util::read_json_file(dir / "full" / "best.json")["parameters"]["latent"] == 4);

  // A shard with no configuration writes no best.json and does not list it.
  REQUIRE(test::run_example("grid_search", other + "--shard 1/2 --out " + (dir / "empty").string(), log) ==
          0);
  CHECK_FALSE(fs::exists(dir / "empty" / "best.json"));
  CHECK(test::read_text(log).find("note: shard 1/2 has no runs: the grid has 1") != std::string::npos);
  CHECK(test::read_text(log).find("best.json") == std::string::npos);
  fs::remove_all(dir);
}
