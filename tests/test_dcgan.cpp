// The DCGAN generator and discriminator and one tutorial training iteration against PyTorch
// (tests/fixtures/dcgan.safetensors, from make_fixtures.py's make_dcgan), and the dcgan example end to end.
#include <catch2/catch.hpp>

#include <cstdlib>
#include <filesystem>
#include <fstream>
#include "max_error.hpp"

#include "common/dcgan_training.hpp"
#include "common/resume.hpp"
#include "example_runner.hpp"
#include "fixture.hpp"
#include "models/dcgan.hpp"
#include "sumi/data/detail/stb_image.hpp"
#include "sumi/data/glyph_folder.hpp"
#include "sumi/nn/serialize.hpp"
#include "sumi/optim/adam.hpp"
#include "sumi/util/atomic_file.hpp"
#include "sumi/util/csv.hpp"
#include "sumi/util/json_file.hpp"
#include "sumi/util/read_file.hpp"

namespace fs = std::filesystem;
using namespace sumi;

namespace {

models::DcganConfig fixture_config(const test::Fixture& fx) {
  const nlohmann::json c = fx.meta_json("config");
  return {c["nz"].get<int64_t>(), c["ngf"].get<int64_t>(), c["ndf"].get<int64_t>(), c["nc"].get<int64_t>(),
          c["image_size"].get<int64_t>()};
}

struct FixtureNets {
  explicit FixtureNets(const test::Fixture& fx) : config(fixture_config(fx)), G(config), D(config) {
    const fs::path file = std::string(SUMI_FIXTURE_DIR) + "/dcgan.safetensors";
    nn::load_state(G, file, {.prefix = "G."});
    nn::load_state(D, file, {.prefix = "D."});
  }
  models::DcganConfig config;
  models::DcganGenerator<float> G;
  models::DcganDiscriminator<float> D;
};

// Every parameter, buffer and counter of `model` equals the fixture's `prefix` state, and every parameter's
// change from `before` matches the fixture's change (prefix_before -> prefix), which a comparison of the
// parameters alone could hide (the changes are ~1e-4 of weights ~1e-2).
void require_state(const test::Fixture& fx, const nn::Module<float>& model, const std::string& prefix,
                   const std::string& prefix_before, const nn::StateDict<float>& before) {
  for (const auto& e : model.state_dict()) {
    INFO("state entry " << prefix << e.name);
    if (e.is_integer) {
      REQUIRE(e.integer == fx.file().int64_scalar(prefix + e.name));
      continue;
    }
    fx.require_close(prefix + e.name, e.tensor, 2e-4);
    if (!before.contains(e.name) || e.name.find("running_") != std::string::npos) continue;
    const Tensor<double> expected_after = fx.file().tensor<double>(prefix + e.name);
    const Tensor<double> expected_before = fx.file().tensor<double>(prefix_before + e.name);
    const Tensor<float> ours_before = before.tensor(e.name).contiguous(), ours = e.tensor.contiguous();
    double scale = 0, worst = 0;
    for (int64_t i = 0; i < ours.numel(); ++i)
      scale = std::max(scale, std::abs(expected_after.data()[i] - expected_before.data()[i]));
    for (int64_t i = 0; i < ours.numel(); ++i) {
      const double want = expected_after.data()[i] - expected_before.data()[i];
      const double got = double(ours.data()[i]) - double(ours_before.data()[i]);
      worst = sumi::test::nan_max(worst, std::abs(got - want) / (scale + 1e-30));
    }
    INFO("largest update error relative to the largest update (" << scale << "): " << worst);
    REQUIRE(scale > 0);
    REQUIRE(worst < 0.02);
  }
}

}  // namespace

TEST_CASE("DCGAN modules have PyTorch's names and shapes", "[dcgan]") {
  const models::DcganConfig c64{100, 64, 64, 3, 64};
  models::DcganGenerator<float> G(c64);
  models::DcganDiscriminator<float> D(c64);
  REQUIRE(G.count_parameters().total() == 3576704);  // the tutorial's numbers
  REQUIRE(D.count_parameters().total() == 2765568);
  const auto names = G.state_dict().names();
  REQUIRE(names.front() == "main.0.weight");
  REQUIRE(names.back() == "main.12.weight");
  NoGradGuard no_grad;
  Generator gen(3);
  const Variable<float> fake = G(Variable<float>(Tensor<float>::randn({2, 100, 1, 1}, gen)));
  REQUIRE(fake.shape() == Shape{2, 3, 64, 64});
  REQUIRE(D(fake).shape() == Shape{2, 1, 1, 1});

  const models::DcganConfig c32{16, 8, 8, 1, 32};
  models::DcganGenerator<float> G32(c32);
  models::DcganDiscriminator<float> D32(c32);
  const Variable<float> small = G32(Variable<float>(Tensor<float>::randn({2, 16, 1, 1}, gen)));
  REQUIRE(small.shape() == Shape{2, 1, 32, 32});
  REQUIRE(D32(small).shape() == Shape{2, 1, 1, 1});
  REQUIRE(G32.state_dict().names().back() == "main.9.weight");  // one block fewer
  REQUIRE_THROWS_WITH(D32(fake), Catch::Contains("[N, 1, 32, 32]"));
  REQUIRE_THROWS_WITH(models::DcganGenerator<float>({100, 64, 64, 3, 48}), Catch::Contains("48"));
}

TEST_CASE("DCGAN weights_init draws N(0, 0.02) convolutions and N(1, 0.02) BatchNorm weights", "[dcgan]") {
  models::DcganDiscriminator<float> D({100, 64, 64, 3, 64});
  Generator gen(5);
  models::dcgan_weights_init(D, gen);
  auto stats = [](const Tensor<float>& t) {
    double s = 0, s2 = 0;
    for (int64_t i = 0; i < t.numel(); ++i) s += t.data()[i], s2 += double(t.data()[i]) * t.data()[i];
    const double m = s / double(t.numel());
    return std::pair{m, std::sqrt(s2 / double(t.numel()) - m * m)};
  };
  const auto [wm, ws] = stats(D.state_dict().tensor("main.8.weight"));
  CHECK(std::abs(wm) < 1e-3);
  CHECK(ws == Approx(0.02).epsilon(0.02));
  const auto [bm, bs] = stats(D.state_dict().tensor("main.9.weight"));
  CHECK(bm == Approx(1.0).epsilon(0.01));
  CHECK(bs == Approx(0.02).epsilon(0.3));
  const Tensor<float> bias = D.state_dict().tensor("main.9.bias");
  for (int64_t i = 0; i < bias.numel(); ++i) REQUIRE(bias.data()[i] == 0.0f);
}

TEST_CASE("DCGAN forward matches PyTorch", "[dcgan][golden]") {
  const test::Fixture fx("dcgan");
  FixtureNets nets(fx);
  const Tensor<float> real = fx.input<float>("real"), noise = fx.input<float>("noise");
  NoGradGuard no_grad;
  fx.require_close("fake", nets.G(Variable<float>(noise)).value(), 1e-4);
  const Tensor<float> d_real = nets.D(Variable<float>(real)).value();
  REQUIRE(d_real.shape() == Shape{4, 1, 1, 1});
  double mean = 0;
  for (int64_t i = 0; i < 4; ++i) mean += d_real.data()[i] / 4.0;
  REQUIRE(mean == Approx(fx.file().tensor<double>("D_x").item()).epsilon(1e-5));
}

TEST_CASE("one DCGAN training iteration matches PyTorch: losses, outputs, updates, running stats",
          "[dcgan][golden]") {
  const test::Fixture fx("dcgan");
  FixtureNets nets(fx);
  const nlohmann::json adam = fx.meta_json("config")["adam"];
  const optim::AdamOptions options{.lr = adam["lr"].get<double>(),
                                   .beta1 = adam["betas"][0].get<double>(),
                                   .beta2 = adam["betas"][1].get<double>(),
                                   .eps = adam["eps"].get<double>()};
  optim::Adam<float> optG(nets.G.parameters(), options), optD(nets.D.parameters(), options);
  const nn::StateDict<float> g_before = nets.G.state_dict().to<double>().to<float>();  // deep copies
  const nn::StateDict<float> d_before = nets.D.state_dict().to<double>().to<float>();

  const examples::DcganStepResult r = examples::dcgan_train_step(
      nets.G, nets.D, optG, optD, fx.input<float>("real"), fx.input<float>("noise"));
  auto scalar = [&](const char* name) { return fx.file().tensor<double>(name).item(); };
  CHECK(r.d_x == Approx(scalar("D_x")).epsilon(1e-5));
  CHECK(r.d_g_z1 == Approx(scalar("D_G_z1")).epsilon(1e-5));
  CHECK(r.d_g_z2 == Approx(scalar("D_G_z2")).epsilon(1e-5));
  CHECK(r.loss_d == Approx(scalar("errD")).epsilon(1e-5));
  CHECK(r.loss_g == Approx(scalar("errG")).epsilon(1e-5));
  fx.require_close("fake", r.fake, 1e-4);
  require_state(fx, nets.G, "G_after.", "G.", g_before);
  require_state(fx, nets.D, "D_after.", "D.", d_before);

  nets.G.eval();
  NoGradGuard no_grad;
  fx.require_close("G_eval_out", nets.G(Variable<float>(fx.input<float>("noise"))).value(), 2e-4);
}

// ------------------------------------------------------------------------------------- the example program

namespace {
// A tiny rendered kanji set (24 characters, 32x32) in a fresh folder under the temporary directory, and the
// flags that train a tiny DCGAN on it; empty when no kanji font is installed.
struct TinyKanjiRun {
  explicit TinyKanjiRun(const std::string& name) : root(fs::temp_directory_path() / name) {
    const std::vector<fs::path> fonts = data::find_kanji_fonts();
    if (fonts.empty()) return;
    fs::remove_all(root);
    fs::create_directories(root);
    data::render_glyph_folder(root / "kanji", {fonts.front()}, {.size = 32, .max_chars = 24});
    flags = "--data " + (root / "kanji").string() +
            " --image-size 32 --nc 1 --nz 8 --ngf 8 --ndf 8 --batch 8 " +
            "--threads 2 --quiet --progress-every 2";
  }
  ~TinyKanjiRun() {
    std::error_code ignored;
    fs::remove_all(root, ignored);
  }
  fs::path root;
  std::string flags;
};
}  // namespace

TEST_CASE("dcgan example trains on a tiny rendered set, writes every output and generates",
          "[example][e2e]") {
  const TinyKanjiRun run("sumi_e2e_dcgan");
  if (run.flags.empty()) {
    WARN("no kanji font installed (scripts/install-deps.sh installs fonts-ipafont-gothic); skipping");
    return;
  }
  const fs::path out = run.root / "out", log = run.root / "log.txt";
  REQUIRE(test::run_example("dcgan", run.flags + " --iterations 3 --out " + out.string(), log) == 0);
  for (const char* f :
       {"loss_epochs.svg", "loss_batches.svg", "real_vs_fake.png", "samples.png", "metrics.csv",
        "summary.json", "generator.safetensors", "discriminator.safetensors", "model.txt"})
    REQUIRE(fs::exists(out / f));
  REQUIRE(fs::exists(out / "progress_000002.png"));
  const util::CsvTable metrics = util::read_csv(out / "metrics.csv");
  REQUIRE(metrics.size() == 3);
  for (std::size_t i = 0; i < metrics.size(); ++i)
    for (const char* key : {"loss_d", "loss_g", "d_x", "d_g_z1", "d_g_z2"})
      REQUIRE(std::isfinite(metrics.number(i, key)));
  const nlohmann::json summary = util::read_json_file(out / "summary.json");
  REQUIRE(summary.at("seconds_per_iteration").is_number());
  REQUIRE(summary.at("max_rss_mb").get<double>() > 0);
  REQUIRE(summary.at("iterations") == 3);
  const std::string svg = test::read_text(out / "loss_batches.svg");
  REQUIRE(svg.find("<svg") != std::string::npos);

  // --generate writes new samples from the saved generator without training, beside the training run's
  // outputs rather than over them.
  const std::string samples = test::read_text(out / "samples.png");
  REQUIRE(test::run_example("dcgan",
                            "--generate 10 --model " + (out / "generator.safetensors").string() +
                                " --quiet --out " + out.string(),
                            log) == 0);
  CHECK(test::read_text(out / "samples.png") == samples);
  CHECK(util::read_json_file(out / "summary.json").at("iterations") == 3);
  CHECK(util::read_json_file(out / "generated.json").at("generated") == 10);
  int w = 0, h = 0, channels = 0;
  unsigned char* png = stbi_load((out / "generated.png").c_str(), &w, &h, &channels, 0);
  REQUIRE(png != nullptr);
  stbi_image_free(png);
  REQUIRE(w >= 4 * 32);  // 4 columns of 32x32 samples (upscaled)
}

TEST_CASE("dcgan example --resume continues exactly like an uninterrupted run", "[example][e2e]") {
  const TinyKanjiRun run("sumi_e2e_dcgan_resume");
  if (run.flags.empty()) {
    WARN("no kanji font installed (scripts/install-deps.sh installs fonts-ipafont-gothic); skipping");
    return;
  }
  const fs::path out = run.root / "out", straight = run.root / "straight", log = run.root / "log.txt";
  REQUIRE(test::run_example("dcgan", run.flags + " --iterations 2 --out " + out.string(), log) == 0);
  const util::CsvTable first = util::read_csv(out / "metrics.csv");
  REQUIRE(test::run_example("dcgan", run.flags + " --iterations 3 --resume --out " + out.string(), log) == 0);
  REQUIRE(test::read_text(log).find("resumed") != std::string::npos);
  const util::CsvTable resumed = util::read_csv(out / "metrics.csv");
  REQUIRE(resumed.size() == 3);
  REQUIRE(resumed.text(1, "loss_g") == first.text(1, "loss_g"));
  REQUIRE(resumed.number(2, "iteration") == 3);
  REQUIRE(util::read_json_file(out / "summary.json").at("iterations") == 3);
  REQUIRE(io::read_safetensors(out / "generator.safetensors").metadata.at("iteration") == "3");
  // The same batches, noise and optimiser state as without the interruption.
  REQUIRE(test::run_example("dcgan", run.flags + " --iterations 3 --out " + straight.string(), log) == 0);
  const util::CsvTable reference = util::read_csv(straight / "metrics.csv");
  REQUIRE(reference.text(2, "loss_d") == resumed.text(2, "loss_d"));
  REQUIRE(reference.text(2, "loss_g") == resumed.text(2, "loss_g"));

  // A kill between the two files of a save leaves the generator of iteration 3 beside the discriminator of
  // iteration 2: the resume goes back to the complete pair of iteration 2, kept as the previous versions, and
  // trains as if uninterrupted.
  const fs::path g_current = out / "generator.safetensors", d_current = out / "discriminator.safetensors";
  REQUIRE(io::read_safetensors(examples::previous_version(d_current)).metadata.at("iteration") == "2");
  fs::rename(examples::previous_version(d_current), d_current);
  REQUIRE(test::run_example("dcgan", run.flags + " --iterations 3 --resume --out " + out.string(), log) == 0);
  REQUIRE(test::read_text(log).find("resumed from " + g_current.string() + " at iteration 2") !=
          std::string::npos);
  REQUIRE(util::read_csv(out / "metrics.csv").text(2, "loss_g") == reference.text(2, "loss_g"));
  REQUIRE(io::read_safetensors(d_current).metadata.at("iteration") == "3");
  // Files of no common iteration (the previous generator lost too) are refused, naming each file's.
  fs::remove(examples::previous_version(g_current));
  fs::rename(examples::previous_version(d_current), d_current);
  REQUIRE(test::run_example("dcgan", run.flags + " --iterations 4 --resume --out " + out.string(), log) == 1);
  REQUIRE_THAT(test::read_text(log), Catch::Contains(g_current.string() + ": iteration 3") &&
                                         Catch::Contains(d_current.string() + ": iteration 2") &&
                                         Catch::Contains("no common iteration"));
  REQUIRE(test::run_example("dcgan", run.flags + " --iterations 3 --out " + out.string(), log) == 0);
  REQUIRE_FALSE(fs::exists(examples::previous_version(g_current)));  // a new run: the first save keeps none

  // A resume that would train nothing, or with another learning rate, is a mistake: refused naming the flag.
  REQUIRE(test::run_example("dcgan", run.flags + " --iterations 3 --resume --out " + out.string(), log) == 2);
  REQUIRE_THAT(test::read_text(log),
               Catch::Contains("--iterations") && Catch::Contains("saved at iteration 3"));
  REQUIRE(test::run_example("dcgan", run.flags + " --iterations 4 --lr 0.0001 --resume --out " + out.string(),
                            log) == 2);
  REQUIRE_THAT(test::read_text(log), Catch::Contains("was trained with --lr 0.0002, not 0.0001"));

  // A checkpoint counted in another number of batches per epoch (as before each epoch's last, smaller batch
  // was kept) would resume on other images: refused, naming the file.
  const fs::path g_file = out / "generator.safetensors";
  const std::string g_bytes = util::read_file_text(g_file, "checkpoint");
  io::SafetensorsFile g_saved = io::read_safetensors(g_file);
  REQUIRE(g_saved.metadata.contains("batches_per_epoch"));
  g_saved.metadata["batches_per_epoch"] = "999";
  io::write_safetensors(g_file, g_saved.tensors, g_saved.metadata);
  REQUIRE(test::run_example("dcgan", run.flags + " --iterations 4 --resume --out " + out.string(), log) == 1);
  REQUIRE_THAT(test::read_text(log),
               Catch::Contains(g_file.string()) && Catch::Contains("was trained with 999 batches per epoch"));
  util::write_file_atomically(g_file, g_bytes);

  // A discriminator checkpoint without its optimiser state would restart Adam silently: refused, naming it.
  const fs::path d_file = out / "discriminator.safetensors";
  io::SafetensorsFile saved = io::read_safetensors(d_file);
  std::erase_if(saved.tensors, [](const auto& t) { return t.first.starts_with("optimizer."); });
  saved.metadata[nn::kExtraTensorsKey] = "[]";
  io::write_safetensors(d_file, saved.tensors, saved.metadata);
  REQUIRE(test::run_example("dcgan", run.flags + " --iterations 4 --resume --out " + out.string(), log) == 1);
  REQUIRE_THAT(test::read_text(log),
               Catch::Contains(d_file.string()) && Catch::Contains("no optimizer state for parameter 0"));
  REQUIRE(util::read_csv(out / "metrics.csv").size() == 3);
}

TEST_CASE("dcgan example reuses its rendered default set only as rendered, and says which fonts it holds",
          "[example][e2e]") {
  const std::vector<fs::path> fonts = data::find_kanji_fonts();
  if (fonts.empty()) {
    WARN("no kanji font installed (scripts/install-deps.sh installs fonts-ipafont-gothic); skipping");
    return;
  }
  // --quick's default data is out/kanji_quick under the working folder; a set rendered there from one font.
  const fs::path root = fs::temp_directory_path() / "sumi_e2e_dcgan_default_set", log = root / "log.txt";
  fs::remove_all(root);
  fs::create_directories(root / "out");
  const fs::path set = root / "out" / "kanji_quick";
  data::render_glyph_folder(set, {fonts.front()}, {.size = 32, .max_chars = 24});
  const std::string flags = "--quick --max-chars 24 --iterations 1 --batch 8 --threads 2 --quiet --out run";
  REQUIRE(test::run_example("dcgan", flags, log, root) == 0);
  const std::string text = test::read_text(log);
  CHECK_THAT(text, Catch::Contains("using the kanji set rendered earlier in out/kanji_quick from 1 fonts"));
  if (fonts.size() > 1)
    CHECK_THAT(text,
               Catch::Contains("note: " + std::to_string(fonts.size()) + " kanji fonts are installed now"));
  else
    CHECK_THAT(text, !Catch::Contains("note:"));
  REQUIRE(fs::exists(root / "run" / "metrics.csv"));

  // Another --max-chars would train on a set that is not the one asked for.
  REQUIRE(test::run_example("dcgan", "--quick --max-chars 30 --iterations 1 --out run2", log, root) == 2);
  CHECK_THAT(test::read_text(log), Catch::Contains("rendered with --max-chars 24, not 30"));
  // A render.json that is not an object is named.
  util::write_json_atomically(set / "render.json", nlohmann::json::array({1, 2}));
  REQUIRE(test::run_example("dcgan", flags + "3", log, root) == 1);
  CHECK_THAT(test::read_text(log), Catch::Contains("render.json' is not a JSON object"));
  CHECK_FALSE(fs::exists(root / "run3"));
  fs::remove_all(root);
}

TEST_CASE("dcgan example rejects bad flags and data naming them", "[example][errors]") {
  const fs::path log = fs::temp_directory_path() / "sumi_e2e_dcgan_flags.log";
  REQUIRE(test::run_example("dcgan", "--image-size 48", log) == 2);
  REQUIRE(test::read_text(log).find("--image-size") != std::string::npos);
  // A generator given without --generate is not silently ignored.
  REQUIRE(test::run_example("dcgan", "--model /tmp/generator.safetensors --iterations 1", log) == 2);
  REQUIRE(test::read_text(log).find("--model is read only with --generate") != std::string::npos);
  // Flags that --generate does not read are refused rather than dropped.
  REQUIRE(test::run_example("dcgan", "--generate 4 --model /tmp/generator.safetensors --nz 50", log) == 2);
  REQUIRE(test::read_text(log).find("--nz is not used with --generate") != std::string::npos);
  // Missing data is found before the output folder is made.
  const fs::path bad_out = fs::temp_directory_path() / "sumi_dcgan_bad";
  fs::remove_all(bad_out);
  REQUIRE(test::run_example("dcgan", "--data /nonexistent/kanji --iterations 1 --out " + bad_out.string(),
                            log) == 1);
  REQUIRE(test::read_text(log).find("/nonexistent/kanji") != std::string::npos);
  CHECK_FALSE(fs::exists(bad_out));
}
