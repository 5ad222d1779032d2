// Runs the autoencoder example end to end on a few hundred FashionMNIST images.
#include <catch2/catch.hpp>
#include <cstdlib>
#include <filesystem>
#include <fstream>
#include <map>
#include <string>

#include "example_runner.hpp"
#include "models/autoencoder.hpp"
#include "sumi/data/detail/stb_image.hpp"
#include "sumi/nn/serialize.hpp"
#include "sumi/util/atomic_file.hpp"
#include "sumi/util/csv.hpp"
#include "sumi/util/folder_lock.hpp"
#include "sumi/util/json_file.hpp"

namespace fs = std::filesystem;
using namespace sumi;

TEST_CASE("autoencoder example trains, writes every output and resumes", "[example][e2e]") {
  if (!test::fashion_mnist_installed()) {
    WARN("FashionMNIST not installed (apt-get install dataset-fashion-mnist); skipping");
    return;
  }
  const fs::path out = fs::temp_directory_path() / "sumi_e2e_autoencoder";
  fs::remove_all(out);
  const std::string common = "--limit 600 --batch 50 --quiet --threads 2 --out " + out.string();
  REQUIRE(test::run_example("autoencoder", common + " --epochs 2", out.string() + ".log") == 0);

  const util::CsvTable metrics = util::read_csv(out / "metrics.csv");
  REQUIRE(metrics.size() == 2);
  CHECK(metrics.number(1, "train_loss") < metrics.number(0, "train_loss"));
  CHECK(metrics.number(1, "val_mse") < metrics.number(0, "val_mse"));

  const nlohmann::json summary = util::read_json_file(out / "summary.json");
  for (const char* key : {"val_mse", "test_mse", "seconds_per_epoch", "epochs", "max_rss_mb"})
    REQUIRE(summary.at(key).is_number());
  REQUIRE(summary["epochs"] == 2);
  REQUIRE(summary["val_mse"].get<double>() == Approx(metrics.number(1, "val_mse")));

  models::Autoencoder<float> model(5);
  REQUIRE(test::read_text(out / "model.txt") == model.summary() + "\n");  // the architecture, as printed
  const auto loaded = nn::load_state(model, out / "autoencoder.safetensors");
  REQUIRE(loaded.metadata.at("epoch") == "2");

  int w = 0, h = 0, channels = 0;
  unsigned char* png = stbi_load((out / "reconstructions.png").c_str(), &w, &h, &channels, 0);
  REQUIRE(png != nullptr);
  stbi_image_free(png);
  REQUIRE(w > 3 * 28);
  REQUIRE(h > 2 * 28);
  const std::string svg = test::read_text(out / "loss.svg");
  REQUIRE(svg.find("<svg") != std::string::npos);
  REQUIRE(svg.find("validation") != std::string::npos);

  // Resuming runs only the third epoch and keeps the first two rows.
  REQUIRE(test::run_example("autoencoder", common + " --epochs 3 --resume", out.string() + ".log") == 0);
  const util::CsvTable resumed = util::read_csv(out / "metrics.csv");
  REQUIRE(resumed.size() == 3);
  REQUIRE(resumed.text(1, "train_loss") == metrics.text(1, "train_loss"));
  REQUIRE(test::read_text(out.string() + ".log").find("resumed") != std::string::npos);
  REQUIRE(util::read_json_file(out / "summary.json")["epochs"] == 3);
  // A resume that would train nothing is refused, like the DCGAN's, and leaves the outputs as they were.
  const std::string summary_text = test::read_text(out / "summary.json");
  REQUIRE(test::run_example("autoencoder", common + " --epochs 3 --resume", out.string() + ".log") == 2);
  REQUIRE_THAT(test::read_text(out.string() + ".log"),
               Catch::Contains("after epoch 3 but --epochs is 3: ask for more to resume"));
  REQUIRE(test::read_text(out / "summary.json") == summary_text);
  // Resuming with another seed (another split) or learning rate would continue a different run; the refused
  // run leaves the folder's architecture summary as it was.
  for (const char* changed : {" --seed 3", " --lr 0.002", " --batch 60"}) {
    REQUIRE(test::run_example("autoencoder", common + " --epochs 4 --resume" + changed,
                              out.string() + ".log") == 2);
    const std::string flag = std::string(changed).substr(1, std::string(changed).find(' ', 1) - 1);
    REQUIRE_THAT(test::read_text(out.string() + ".log"),
                 Catch::Contains("autoencoder.safetensors was trained with " + flag + " "));
    REQUIRE(test::read_text(out / "model.txt") == model.summary() + "\n");
  }
  REQUIRE(test::run_example("autoencoder", common + " --epochs 4 --resume --latent 7",
                            out.string() + ".log") == 1);
  REQUIRE(test::read_text(out / "model.txt") == model.summary() + "\n");
  REQUIRE(util::read_csv(out / "metrics.csv").size() == 3);

  // A checkpoint that does not say where to resume, is past --epochs, or lacks the optimiser state is
  // refused naming the file, and nothing is trained.
  const fs::path checkpoint = out / "autoencoder.safetensors", log = out.string() + ".log";
  const io::SafetensorsFile saved = io::read_safetensors(checkpoint);
  auto write_checkpoint = [&](const std::map<std::string, std::string>& metadata_changes,
                              const std::string& drop_prefix) {
    auto metadata = saved.metadata;
    for (const auto& [key, value] : metadata_changes) metadata[key] = value;
    auto tensors = saved.tensors;
    std::erase_if(tensors,
                  [&](const auto& t) { return !drop_prefix.empty() && t.first.starts_with(drop_prefix); });
    if (!drop_prefix.empty()) metadata[nn::kExtraTensorsKey] = "[]";
    io::write_safetensors(checkpoint, tensors, metadata);
  };
  for (const char* epoch : {"abc", "-5", "3x"}) {
    write_checkpoint({{"epoch", epoch}}, "");
    REQUIRE(test::run_example("autoencoder", common + " --epochs 4 --resume", log) == 1);
    REQUIRE_THAT(test::read_text(log), Catch::Contains(checkpoint.string()) &&
                                           Catch::Contains(std::string("'epoch' is '") + epoch + "'"));
  }
  write_checkpoint({{"epoch", "1000"}}, "");
  REQUIRE(test::run_example("autoencoder", common + " --epochs 4 --resume", log) == 2);
  REQUIRE_THAT(test::read_text(log), Catch::Contains("after epoch 1000 but --epochs is 4"));
  write_checkpoint({{"latent", "7"}}, "");
  REQUIRE(test::run_example("autoencoder", common + " --epochs 4 --resume", log) == 1);
  REQUIRE_THAT(test::read_text(log), Catch::Contains("'latent' is 7"));
  write_checkpoint({}, "optimizer.");
  REQUIRE(test::run_example("autoencoder", common + " --epochs 4 --resume", log) == 1);
  REQUIRE_THAT(test::read_text(log),
               Catch::Contains(checkpoint.string()) && Catch::Contains("no optimizer state for parameter 0"));
  REQUIRE(util::read_csv(out / "metrics.csv").size() == 3);

  // A metrics file that does not parse is named.
  io::write_safetensors(checkpoint, saved.tensors, saved.metadata);
  const std::string metrics_text = test::read_text(out / "metrics.csv");
  std::ofstream(out / "metrics.csv") << "epoch,train_loss,val_mse,epoch_seconds\n1,abc,0.1,0.2\n";
  REQUIRE(test::run_example("autoencoder", common + " --epochs 4 --resume", log) == 1);
  REQUIRE_THAT(test::read_text(log),
               Catch::Contains((out / "metrics.csv").string()) && Catch::Contains("'abc' is not a number"));
  fs::remove_all(out);

  // --resume with nothing to resume says so, and trains from the start.
  REQUIRE(test::run_example("autoencoder", common + " --epochs 1 --resume", log) == 0);
  REQUIRE_THAT(test::read_text(log), Catch::Contains("no checkpoint") && Catch::Contains("from epoch 1"));
  fs::remove_all(out);

  // A run whose loss diverges stops before writing weights: a NaN checkpoint could not even be resumed.
  // One step per epoch (250 training images, batch 250): its loss is finite and its update ruins the
  // weights, so only the validation loss shows it.
  REQUIRE(test::run_example(
              "autoencoder",
              "--limit 300 --batch 250 --quiet --threads 2 --epochs 2 --lr 1e38 --out " + out.string(),
              log) == 1);
  REQUIRE_THAT(test::read_text(log),
               Catch::Contains("training diverged: the validation MSE after epoch 1 is") &&
                   Catch::Contains("lower --lr"));
  REQUIRE_FALSE(fs::exists(checkpoint));
  REQUIRE_FALSE(fs::exists(out / "summary.json"));
  fs::remove_all(out);
}

TEST_CASE("a resumed autoencoder run with dropout continues as an uninterrupted one", "[example][e2e]") {
  if (!test::fashion_mnist_installed()) {
    WARN("FashionMNIST not installed (apt-get install dataset-fashion-mnist); skipping");
    return;
  }
  const fs::path straight = fs::temp_directory_path() / "sumi_e2e_dropout_straight",
                 resumed = fs::temp_directory_path() / "sumi_e2e_dropout_resumed";
  fs::remove_all(straight);
  fs::remove_all(resumed);
  const std::string common = "--limit 600 --batch 50 --dropout 0.25 --quiet --threads 2";
  REQUIRE(test::run_example("autoencoder", common + " --epochs 3 --out " + straight.string(),
                            straight.string() + ".log") == 0);
  REQUIRE(test::run_example("autoencoder", common + " --epochs 2 --out " + resumed.string(),
                            resumed.string() + ".log") == 0);
  REQUIRE(test::run_example("autoencoder", common + " --epochs 3 --resume --out " + resumed.string(),
                            resumed.string() + ".log") == 0);
  const util::CsvTable a = util::read_csv(straight / "metrics.csv"),
                       b = util::read_csv(resumed / "metrics.csv");
  REQUIRE(a.size() == 3);
  REQUIRE(b.size() == 3);
  for (std::size_t row = 0; row < 3; ++row) {
    REQUIRE(b.text(row, "train_loss") == a.text(row, "train_loss"));
    REQUIRE(b.text(row, "val_mse") == a.text(row, "val_mse"));
  }
  fs::remove_all(straight);
  fs::remove_all(resumed);
}

TEST_CASE("autoencoder example rejects bad flags naming the flag", "[example][errors]") {
  const fs::path log = fs::temp_directory_path() / "sumi_e2e_flags.log";
  REQUIRE(test::run_example("autoencoder", "--epochs abc", log) == 2);
  REQUIRE(test::read_text(log).find("--epochs") != std::string::npos);
  REQUIRE(test::run_example("autoencoder", "--bogus 1", log) == 2);
  REQUIRE(test::read_text(log).find("--bogus") != std::string::npos);
  REQUIRE(test::run_example("autoencoder", "--data /nonexistent/dir --epochs 1", log) == 1);
  REQUIRE(test::read_text(log).find("/nonexistent/dir") != std::string::npos);
  // Sizes out of range are flag errors, before any work.
  REQUIRE(test::run_example("autoencoder", "--threads 100000", log) == 2);
  REQUIRE(test::read_text(log).find("--threads") != std::string::npos);
  REQUIRE(test::run_example("autoencoder", "--limit 5", log) == 2);
  REQUIRE(test::read_text(log).find("--limit") != std::string::npos);
  REQUIRE(test::run_example("autoencoder", "--out ''", log) == 2);
  REQUIRE(test::read_text(log).find("--out") != std::string::npos);
}

TEST_CASE("example runs lock their output folder and drop an earlier run's summary and temporary files",
          "[example][errors]") {
  const fs::path dir = fs::temp_directory_path() / "sumi_e2e_locked";
  const fs::path log = fs::temp_directory_path() / "sumi_e2e_locked.log";
  fs::remove_all(dir);
  fs::create_directories(dir);
  {
    // Another run holds the folder: each example refuses it instead of mixing its files with that run's.
    const util::FolderLock other_run(dir);
    for (const std::string& run :
         {std::string("autoencoder --limit 600 --epochs 1"), std::string("finetune --limit 600 --epochs 1"),
          std::string("dcgan --data synthetic --iterations 1")}) {
      INFO(run);
      REQUIRE(test::run_example(run.substr(0, run.find(' ')),
                                run.substr(run.find(' ')) + " --out " + dir.string(), log) == 1);
      REQUIRE(test::read_text(log).find("'" + dir.string() + "' is in use by another process") !=
              std::string::npos);
    }
  }
  // An earlier run's summary is gone once training starts, so a run that stops (here: diverges) does not
  // leave it beside its own files; nor do the temporary files of a run killed mid-write.
  util::write_file_atomically(dir / "summary.json", "{\"test_mse\": 0.01}\n");
  util::write_file_atomically(dir / "summary.json.tmp.00000000deadbeef", "{\"test_");
  REQUIRE(test::run_example("autoencoder", "--limit 600 --epochs 1 --lr 1e30 --out " + dir.string(), log) ==
          1);
  REQUIRE(test::read_text(log).find("training diverged") != std::string::npos);
  REQUIRE(test::read_text(log).find("removed 1 temporary file an interrupted run left "
                                    "(summary.json.tmp.00000000deadbeef)") != std::string::npos);
  REQUIRE_FALSE(fs::exists(dir / "summary.json"));
  REQUIRE_FALSE(fs::exists(dir / "summary.json.tmp.00000000deadbeef"));
  // The folder is the autoencoder's now: another example's run into it (a --resume given the wrong folder)
  // is refused before it writes anything, where it would have replaced metrics.csv, loss.svg and model.txt.
  REQUIRE(test::read_text(dir / ".sumi-program") == "autoencoder\n");
  const std::string metrics = "epoch,train_loss,val_mse,epoch_seconds\n1,0.5,0.25,1\n";
  util::write_file_atomically(dir / "metrics.csv", metrics);
  for (const std::string& run : {std::string("finetune --limit 600 --epochs 1"),
                                 std::string("dcgan --data synthetic --iterations 1 --resume")}) {
    INFO(run);
    REQUIRE(test::run_example(run.substr(0, run.find(' ')),
                              run.substr(run.find(' ')) + " --out " + dir.string(), log) == 2);
    REQUIRE(test::read_text(log).find("--out '" + dir.string() +
                                      "' holds the outputs of an autoencoder run") != std::string::npos);
    REQUIRE(test::read_text(dir / "metrics.csv") == metrics);
    REQUIRE(test::read_text(dir / ".sumi-program") == "autoencoder\n");
  }
  fs::remove_all(dir);
}

TEST_CASE("latent example checks its input files before exploring", "[example][errors]") {
  if (!test::fashion_mnist_installed()) {
    WARN("FashionMNIST not installed (apt-get install dataset-fashion-mnist); skipping");
    return;
  }
  const fs::path dir = fs::temp_directory_path() / "sumi_e2e_latent_inputs";
  fs::remove_all(dir);
  fs::create_directories(dir);
  const fs::path good = dir / "autoencoder.safetensors", no_decoder = dir / "encoder_only.safetensors";
  models::Autoencoder<float> model(5);
  nn::save_state(model, good);
  auto tensors = io::read_safetensors(good).tensors;
  std::erase_if(tensors, [](const auto& t) { return t.first.starts_with("decoder."); });
  io::write_safetensors(no_decoder, tensors);
  const fs::path log = dir / "latent.log";

  // Without its decoder the model would decode random images: every missing tensor is named.
  REQUIRE(test::run_example(
              "latent", "--quiet --autoencoder " + no_decoder.string() + " --out " + (dir / "out").string(),
              log) == 1);
  REQUIRE_THAT(test::read_text(log), Catch::Contains(no_decoder.string()) && Catch::Contains("missing") &&
                                         Catch::Contains("decoder."));

  // Classifier outputs with the wrong rows fail before the first t-SNE, and before the output folder is made.
  std::ofstream(dir / "outputs.csv") << "o0,o1,label\n0.1,0.2,3\n";
  REQUIRE(test::run_example("latent",
                            "--quiet --autoencoder " + good.string() + " --classifier-outputs " +
                                (dir / "outputs.csv").string() + " --out " + (dir / "out_rows").string(),
                            log) == 1);
  REQUIRE_THAT(test::read_text(log),
               Catch::Contains("outputs.csv") && Catch::Contains("expected 10000 rows"));
  REQUIRE_FALSE(fs::exists(dir / "out_rows"));
  // So is an unknown SUMI_ISA.
  REQUIRE(test::run_example("latent",
                            "--quiet --autoencoder " + good.string() + " --out " + (dir / "out_isa").string(),
                            log, {}, "SUMI_ISA=bogus") == 1);
  REQUIRE_THAT(test::read_text(log), Catch::Contains("SUMI_ISA") && Catch::Contains("bogus"));
  REQUIRE_FALSE(fs::exists(dir / "out_isa"));
  // So is a perplexity the test set cannot have.
  REQUIRE(test::run_example("latent",
                            "--quiet --perplexity 1e6 --autoencoder " + good.string() + " --out " +
                                (dir / "out_perplexity").string(),
                            log) == 2);
  REQUIRE_THAT(test::read_text(log), Catch::Contains("--perplexity") &&
                                         Catch::Contains("below the number of points minus one (9999)"));
  REQUIRE_FALSE(fs::exists(dir / "out_perplexity"));
  fs::remove_all(dir);
}
