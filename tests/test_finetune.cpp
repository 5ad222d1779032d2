// The frozen-encoder classifier: freezing, the cached prefix, loading an autoencoder's encoder, and the
// finetune example end to end.
#include <catch2/catch.hpp>
#include <cmath>
#include <cstdlib>
#include <cstring>
#include <filesystem>
#include <fstream>

#include "common/classifier_training.hpp"
#include "example_runner.hpp"
#include "models/classifier.hpp"
#include "sumi/io/safetensors.hpp"
#include "sumi/nn/serialize.hpp"
#include "sumi/optim/adam.hpp"
#include "sumi/util/csv.hpp"
#include "sumi/util/json_file.hpp"
#include "synthetic_images.hpp"

namespace fs = std::filesystem;
using namespace sumi;

namespace {

std::shared_ptr<models::Classifier<float>> new_classifier(uint64_t seed) {
  Generator gen(seed);
  auto encoder = std::make_shared<models::Encoder<float>>(5, 0.0, gen);
  auto model = std::make_shared<models::Classifier<float>>(encoder, 10, gen);
  model->set_prefix_frozen(true);
  return model;
}

bool bit_identical(const Tensor<float>& a, const Tensor<float>& b) {
  if (a.shape() != b.shape()) return false;
  const Tensor<float> x = a.contiguous(), y = b.contiguous();
  return std::memcmp(x.data(), y.data(), std::size_t(x.numel()) * sizeof(float)) == 0;
}

bool is_prefix_parameter(const std::string& name) {
  return name.rfind("encoder.encoder_cnn.", 0) == 0;
}

}  // namespace

TEST_CASE("freezing the prefix: frozen parameters stay bit-identical and get no optimiser state",
          "[finetune]") {
  auto model = new_classifier(3);
  const nn::ParameterCount counts = model->count_parameters();
  CHECK(counts.frozen == 80 + 1168 + 4640);                 // the three convolutions
  CHECK(counts.trainable == 288 * 64 + 64 + 64 * 10 + 10);  // Linear(288, 64) and the new Linear(64, 10)
  const std::string summary = model->summary();
  CHECK(summary.find("Conv2d(1, 8, kernel_size=(3, 3), stride=(2, 2), padding=(1, 1)) [frozen]") !=
        std::string::npos);
  CHECK(summary.find("Linear(in_features=64, out_features=10, bias=True)\n") != std::string::npos);
  CHECK(summary.find("Frozen parameters: 5888") != std::string::npos);

  const nn::StateDict<float> before = model->state_dict();
  optim::Adam<float> optimizer(model->parameters(), {.lr = 1e-2});
  const data::MnistDataset images = test::synthetic_images(20, 4);
  data::DataLoader loader(images, {.batch_size = 20});
  const auto epoch = examples::train_classifier_epoch(*model, optimizer, loader);
  CHECK(std::isfinite(epoch.loss));

  int frozen = 0, trainable = 0;
  for (const auto& [name, p] : model->named_parameters()) {
    INFO(name);
    const bool unchanged = bit_identical(p.value(), before.find(name)->tensor);
    if (is_prefix_parameter(name)) {
      ++frozen;
      CHECK_FALSE(p.requires_grad());
      CHECK(unchanged);
      CHECK(optimizer.state(p) == nullptr);
      CHECK_FALSE(p.grad().defined());
    } else {
      ++trainable;
      CHECK(p.requires_grad());
      CHECK_FALSE(unchanged);
      REQUIRE(optimizer.state(p) != nullptr);
      CHECK(optimizer.state(p)->step == 1);
    }
  }
  CHECK(frozen == 6);
  CHECK(trainable == 4);
  CHECK(optimizer.num_states() == 4);
}

TEST_CASE("training on the cached prefix output gives the same results as running the prefix", "[finetune]") {
  const data::MnistDataset train = test::synthetic_images(60, 5), val = test::synthetic_images(20, 6);
  const data::DataLoaderOptions train_options{.batch_size = 16, .shuffle = true, .seed = 9};
  const data::DataLoaderOptions eval_options{.batch_size = 7};

  auto direct = new_classifier(11), cached = new_classifier(11);
  optim::Adam<float> direct_opt(direct->parameters()), cached_opt(cached->parameters());
  const data::TensorDataset train_features = examples::compute_prefix_features(*cached, train, 13);
  const data::TensorDataset val_features = examples::compute_prefix_features(*cached, val);
  REQUIRE(train_features.size() == 60);
  REQUIRE(train_features.sample_shape() == Shape{288});

  data::DataLoader image_loader(train, train_options), image_val(val, eval_options);
  data::DataLoader feature_loader(train_features, train_options), feature_val(val_features, eval_options);
  for (int e = 0; e < 3; ++e) {
    image_loader.set_epoch(e);
    feature_loader.set_epoch(e);
    const auto a = examples::train_classifier_epoch(*direct, direct_opt, image_loader);
    const auto b = examples::train_classifier_epoch(*cached, cached_opt, feature_loader);
    REQUIRE(a.loss == b.loss);
    REQUIRE(a.accuracy == b.accuracy);
  }
  for (const auto& [name, p] : direct->named_parameters()) {
    INFO(name);
    REQUIRE(bit_identical(p.value(), cached->state_dict().find(name)->tensor));
  }
  const auto a = examples::evaluate_classifier(*direct, image_val, true);
  const auto b = examples::evaluate_classifier(*cached, feature_val, true);
  REQUIRE(a.loss == b.loss);
  REQUIRE(a.accuracy == b.accuracy);
  REQUIRE(a.predictions == b.predictions);
  REQUIRE(a.labels == b.labels);
  REQUIRE(bit_identical(a.logits, b.logits));
  CHECK(a.logits.shape() == Shape{20, 10});
}

TEST_CASE("a classifier loads the encoder of an autoencoder checkpoint", "[finetune]") {
  const fs::path dir = fs::temp_directory_path() / "sumi_finetune_load";
  fs::remove_all(dir);
  fs::create_directories(dir);
  Generator gen(21);
  models::Autoencoder<float> autoencoder(7, 0.0, gen);
  nn::save_state(autoencoder, dir / "ae.safetensors");
  Generator head_gen(1);
  auto model = models::Classifier<float>::from_autoencoder_file(dir / "ae.safetensors", 10, head_gen);
  CHECK(model->encoder()->latent == 7);
  const nn::StateDict<float> ae = autoencoder.state_dict();
  for (const auto& [name, p] : model->named_parameters()) {
    INFO(name);
    if (name.rfind("encoder.encoder_lin.2.", 0) == 0) {
      CHECK(p.shape()[0] == 10);
    } else {
      CHECK(bit_identical(p.value(), ae.find(name)->tensor));
    }
  }
  std::ofstream(dir / "junk.safetensors") << "not a safetensors file";
  CHECK_THROWS_WITH(models::Classifier<float>::from_autoencoder_file(dir / "junk.safetensors", 10, head_gen),
                    Catch::Contains("junk.safetensors"));
  nn::Linear<float> not_an_autoencoder(3, 2);
  nn::save_state(not_an_autoencoder, dir / "linear.safetensors");
  CHECK_THROWS_WITH(
      models::Classifier<float>::from_autoencoder_file(dir / "linear.safetensors", 10, head_gen),
      Catch::Contains("linear.safetensors") && Catch::Contains("encoder.encoder_lin.2.weight"));
  // A classifier's checkpoint names its encoder the same way, with its head where the latent layer was.
  nn::save_state(*model, dir / "classifier.safetensors");
  CHECK_THROWS_WITH(
      models::Classifier<float>::from_autoencoder_file(dir / "classifier.safetensors", 10, head_gen),
      Catch::Contains("classifier.safetensors") && Catch::Contains("no decoder"));
  fs::remove_all(dir);
}

namespace {
const fs::path finetune_program = fs::path(SUMI_EXAMPLES_DIR) / "finetune";
}  // namespace

TEST_CASE("finetune example trains an encoder when none is found and writes every output", "[example][e2e]") {
  if (!fs::exists(finetune_program)) {
    WARN("finetune example not built; skipping");
    return;
  }
  const fs::path out = fs::temp_directory_path() / "sumi_e2e_finetune";
  fs::remove_all(out);
  fs::create_directories(out);
  const fs::path log = out.string() + ".log";
  REQUIRE(test::run_example("finetune", "--epochs 0", log) == 2);
  CHECK(test::read_text(log).find("--epochs") != std::string::npos);
  // By default the encoder is the autoencoder example's.
  REQUIRE(test::run_example("finetune", "--help", log) == 0);
  CHECK(test::read_text(log).find("(default: out/autoencoder/autoencoder.safetensors)") != std::string::npos);
  const std::string missing_encoder = " --encoder " + (out / "missing.safetensors").string();
  REQUIRE(test::run_example(
              "finetune", "--encoder " + (out / "missing").string() + " --data " + (out / "nodata").string(),
              log) == 1);
  CHECK(test::read_text(log).find("nodata") != std::string::npos);
  if (!test::fashion_mnist_installed()) {
    WARN("FashionMNIST not installed; skipping the training part");
    return;
  }
  REQUIRE(
      test::run_example("finetune",
                        "--limit 600 --encoder-epochs 1 --epochs 2 --batch 100 --quiet --threads 2 --out " +
                            out.string() + missing_encoder,
                        log) == 0);
  CHECK(test::read_text(log).find("missing.safetensors' not found: training one") != std::string::npos);
  CHECK(test::read_text(log).find("autoencoder.safetensors (latent 5, saved after epoch 1)") !=
        std::string::npos);
  CHECK(fs::exists(out / "autoencoder.safetensors"));
  const nlohmann::json summary = util::read_json_file(out / "summary.json");
  REQUIRE(summary["test_accuracy"].is_number());
  CHECK(summary["test_accuracy"].get<double>() >= 0.0);
  CHECK(summary["test_accuracy"].get<double>() <= 1.0);
  CHECK(summary["seconds_per_epoch"].is_number());
  CHECK(summary["frozen_parameters"] == 5888);
  CHECK(summary["trainable_parameters"] == 19146);
  // The printed summary, kept: it marks the frozen parameters.
  CHECK_THAT(test::read_text(out / "model.txt"), Catch::Contains("Frozen parameters: 5888"));
  const util::CsvTable metrics = util::read_csv(out / "metrics.csv");
  REQUIRE(metrics.size() == 2);
  for (const char* column : {"epoch", "train_loss", "train_accuracy", "val_loss", "val_accuracy", "seconds"})
    CHECK(metrics.has_column(column));
  const util::CsvTable outputs = util::read_csv(out / "test_outputs.csv");
  REQUIRE(outputs.header.size() == 11);
  CHECK(outputs.header.front() == "out0");
  CHECK(outputs.header.back() == "label");
  CHECK(outputs.size() == 100);
  const util::CsvTable per_class = util::read_csv(out / "per_class_accuracy.csv");
  CHECK(per_class.size() == 10);
  CHECK(per_class.text(9, "name") == "Ankle boot");
  int64_t counted = 0;
  for (std::size_t c = 0; c < per_class.size(); ++c) {
    const int64_t count = per_class.integer(c, "count");
    counted += count;
    if (count == 0)  // no test image of this class: no accuracy, not 0
      CHECK(std::isnan(per_class.number(c, "accuracy")));
    else
      CHECK(per_class.number(c, "accuracy") == double(per_class.integer(c, "correct")) / double(count));
  }
  CHECK(counted == 100);
  CHECK(test::read_text(out / "confusion.svg").find("Ankle boot") != std::string::npos);
  for (const char* svg : {"loss.svg", "accuracy.svg"})
    CHECK(test::read_text(out / svg).find("<svg") != std::string::npos);
  models::Classifier<float> check(std::make_shared<models::Encoder<float>>(5), 10);
  nn::load_state(check, out / "classifier.safetensors");

  // The encoder trained into the folder is reused by the next run with the same settings ...
  REQUIRE(
      test::run_example("finetune",
                        "--limit 600 --encoder-epochs 1 --epochs 1 --batch 100 --quiet --threads 2 --out " +
                            out.string() + missing_encoder,
                        log) == 0);
  CHECK(test::read_text(log).find("missing.safetensors' not found: using the one trained earlier") !=
        std::string::npos);
  // ... and replaced for another split: it would have trained on this run's validation images.
  REQUIRE(
      test::run_example("finetune",
                        "--limit 600 --seed 3 --encoder-epochs 1 --epochs 1 --batch 100 --quiet --threads 2 "
                        "--out " +
                            out.string() + missing_encoder,
                        log) == 0);
  CHECK(test::read_text(log).find("was trained with --seed 0, not 3: training a new one") !=
        std::string::npos);
  CHECK(io::read_safetensors(out / "autoencoder.safetensors").metadata.at("seed") == "3");
  fs::remove_all(out);
}
