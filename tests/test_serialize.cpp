// nn::save_state / nn::load_state: bit-exact round trips with PyTorch names and dtypes, and errors that
// name the file and every mismatching tensor.
#include <catch2/catch.hpp>
#include <cstring>
#include <filesystem>
#include <fstream>
#include <limits>
#include <memory>

#include "../examples/models/autoencoder.hpp"
#include "fixture.hpp"
#include "sumi/nn/activation.hpp"
#include "sumi/nn/batch_norm.hpp"
#include "sumi/nn/conv.hpp"
#include "sumi/nn/linear.hpp"
#include "sumi/nn/sequential.hpp"
#include "sumi/nn/serialize.hpp"
#include "sumi/ops/loss.hpp"
#include "sumi/optim/adam.hpp"

using namespace sumi;
using Catch::Contains;
namespace fs = std::filesystem;

namespace {

fs::path temp_path(const std::string& name) {
  return fs::temp_directory_path() / ("sumi_test_serialize_" + name);
}

template <class T>
bool bit_equal(const Tensor<T>& a, const Tensor<T>& b) {
  if (a.shape() != b.shape()) return false;
  const Tensor<T> ca = a.contiguous(), cb = b.contiguous();
  return std::memcmp(ca.data(), cb.data(), std::size_t(ca.numel()) * sizeof(T)) == 0;
}

// Conv + BatchNorm + Linear, with buffers and a counter.
template <class T>
class Net : public nn::Module<T> {
 public:
  explicit Net(Generator& gen) {
    using namespace nn;
    this->register_module("features", std::make_shared<Sequential<T>>(
                                          std::make_shared<Conv2d<T>>(2, 3, 3, 1, 1, 1, 1, true, gen),
                                          std::make_shared<BatchNorm2d<T>>(3), std::make_shared<ReLU<T>>()));
    this->register_module("head", std::make_shared<Linear<T>>(3 * 4 * 4, 2, true, gen));
  }
  Variable<T> forward(const Variable<T>& x) override {
    return this->child("head")->forward(flatten(this->child("features")->forward(x)));
  }
  std::string type_name() const override { return "Net"; }
};

template <class T>
void require_same_state(const nn::Module<T>& a, const nn::Module<T>& b) {
  const auto sa = a.state_dict(), sb = b.state_dict();
  REQUIRE(sa.names() == sb.names());
  for (const auto& e : sa) {
    INFO(e.name);
    const auto& f = sb.at(e.name);
    REQUIRE(e.is_integer == f.is_integer);
    if (e.is_integer)
      REQUIRE(e.integer == f.integer);
    else
      REQUIRE(bit_equal(e.tensor, f.tensor));
  }
}

// A copy of a good file's tensors with edits, written as a new file.
void write_edited(const fs::path& from, const fs::path& to,
                  const std::function<void(std::map<std::string, io::TensorRecord>&)>& edit) {
  const io::SafetensorsFile f = io::read_safetensors(from);
  std::map<std::string, io::TensorRecord> tensors = f.tensors;
  edit(tensors);
  io::write_safetensors(to, tensors, f.metadata);
}

}  // namespace

TEST_CASE("save_state / load_state round-trip parameters, buffers and counters bit-exactly", "[serialize]") {
  Generator g1(1), g2(2);
  Net<float> a(g1), b(g2);
  // Train-mode forwards move the BatchNorm statistics and count batches.
  for (int i = 0; i < 3; ++i) a.forward(Variable<float>(Tensor<float>::randn({4, 2, 4, 4}, g1)));
  auto* bn = dynamic_cast<nn::BatchNorm2d<float>*>(
      a.child_as<nn::Sequential<float>>("features")->operator[](1).get());
  REQUIRE(bn->num_batches_tracked == 3);

  const fs::path path = temp_path("roundtrip.safetensors");
  nn::save_state(a, path, {{"epoch", "3"}});
  // The file: PyTorch names, F32 tensors, I64 scalar counter, metadata.
  const io::SafetensorsFile file = io::read_safetensors(path);
  REQUIRE(file.tensors.size() == a.state_dict().size());
  REQUIRE(file.record("features.0.weight").dtype == "F32");
  REQUIRE(file.record("features.0.weight").shape == Shape{3, 2, 3, 3});
  REQUIRE(file.record("features.1.running_var").dtype == "F32");
  REQUIRE(file.record("features.1.num_batches_tracked").dtype == "I64");
  REQUIRE(file.record("features.1.num_batches_tracked").shape.empty());
  REQUIRE(file.int64_scalar("features.1.num_batches_tracked") == 3);
  REQUIRE(file.metadata.at("epoch") == "3");
  REQUIRE(file.metadata.at("format") == "pt");
  for (const auto& entry : fs::directory_iterator(path.parent_path()))  // no temporary file left behind
    REQUIRE(entry.path().filename().string().rfind(path.filename().string() + ".tmp.", 0) != 0);

  const auto b_weight = b.parameters()[0];
  const auto loaded = nn::load_state(b, path);
  require_same_state(a, b);
  REQUIRE(bit_equal(b_weight.value(), a.parameters()[0].value()));  // loaded in place
  REQUIRE(loaded.metadata.at("epoch") == "3");
  REQUIRE(loaded.extra.empty());
  a.eval();
  b.eval();
  const Variable<float> x(Tensor<float>::randn({2, 2, 4, 4}, g1));
  REQUIRE(bit_equal(a.forward(x).value(), b.forward(x).value()));

  // Double modules are stored as F64.
  Generator g3(3), g4(4);
  Net<double> d1(g3), d2(g4);
  nn::save_state(d1, path);
  REQUIRE(io::read_safetensors(path).record("head.weight").dtype == "F64");
  nn::load_state(d2, path);
  require_same_state(d1, d2);
  fs::remove(path);
}

TEST_CASE("load_state names the file and every missing, unexpected, mis-shaped or mistyped tensor",
          "[serialize][errors]") {
  Generator gen(5);
  Net<float> net(gen);
  const fs::path good = temp_path("good.safetensors");
  const fs::path bad = temp_path("bad.safetensors");
  nn::save_state(net, good);
  const auto before = net.state_dict();
  auto unchanged = [&] {
    for (const auto& e : net.state_dict())
      if (!e.is_integer) REQUIRE(bit_equal(e.tensor, before.tensor(e.name)));
  };

  write_edited(good, bad, [](auto& t) { t.erase("head.bias"); });
  REQUIRE_THROWS_WITH(nn::load_state(net, bad), Contains(bad.string()) && Contains("missing (1): head.bias"));

  write_edited(good, bad, [](auto& t) {
    t["head.weight"] = io::TensorRecord::from_tensor(Tensor<float>::zeros({48, 2}));
  });
  REQUIRE_THROWS_WITH(nn::load_state(net, bad),
                      Contains(bad.string()) && Contains("head.weight: expected [2, 48], found [48, 2]"));

  write_edited(good, bad,
               [](auto& t) { t["head.extra"] = io::TensorRecord::from_tensor(Tensor<float>::zeros({1})); });
  REQUIRE_THROWS_WITH(nn::load_state(net, bad),
                      Contains(bad.string()) && Contains("unexpected (1): head.extra"));
  write_edited(good, bad, [](auto& t) {
    t[std::string("head\0x", 6)] = io::TensorRecord::from_tensor(Tensor<float>::zeros({1}));
  });
  REQUIRE_THROWS_WITH(nn::load_state(net, bad), Catch::EndsWith("unexpected (1): head\\x00x"));

  write_edited(good, bad, [](auto& t) {
    t["features.0.bias"] = io::TensorRecord::from_tensor(Tensor<double>::zeros({3}));
    t["features.1.num_batches_tracked"] = io::TensorRecord::from_tensor(Tensor<float>::zeros({}));
  });
  REQUIRE_THROWS_WITH(nn::load_state(net, bad),
                      Contains(bad.string()) && Contains("features.0.bias: expected F32, found F64") &&
                          Contains("features.1.num_batches_tracked: expected I64, found F32"));
  // convert_dtype accepts F64 for a float module (the counter must still be I64).
  write_edited(good, bad, [](auto& t) {
    t["head.bias"] = io::TensorRecord::from_tensor(Tensor<double>::full({2}, 0.5));
  });
  REQUIRE_THROWS_AS(nn::load_state(net, bad), nn::StateDictError);
  nn::load_state(net, bad, {.convert_dtype = true});
  REQUIRE(net.state_dict().tensor("head.bias").data()[1] == 0.5f);
  nn::load_state(net, good);
  // A file without the batch counter (safetensors.torch.save_file of a model without it) loads as in
  // torch 1.13 and Module::load_state_dict: the counter restarts at 0.
  write_edited(good, bad,
               [](auto& t) { t["features.1.num_batches_tracked"] = io::TensorRecord::from_int64(5); });
  nn::load_state(net, bad);
  REQUIRE(net.state_dict().integer("features.1.num_batches_tracked") == 5);
  write_edited(good, bad, [](auto& t) { t.erase("features.1.num_batches_tracked"); });
  nn::load_state(net, bad);
  REQUIRE(net.state_dict().integer("features.1.num_batches_tracked") == 0);
  nn::load_state(net, good);

  // All problems at once, and the module is left as it was.
  write_edited(good, bad, [](auto& t) {
    t.erase("features.1.running_mean");
    t["head.weight"] = io::TensorRecord::from_tensor(Tensor<float>::zeros({2, 47}));
    t["stray"] = io::TensorRecord::from_int64(1);
    t["head.bias"] = io::TensorRecord::from_tensor(Tensor<double>::zeros({2}));
  });
  try {
    nn::load_state(net, bad);
    FAIL("load_state accepted a mismatched file");
  } catch (const nn::StateDictError& e) {
    const std::string what = e.what();
    REQUIRE_THAT(what, Contains(bad.string()));
    REQUIRE_THAT(what, Contains("missing (1): features.1.running_mean"));
    REQUIRE_THAT(what, Contains("unexpected (1): stray"));
    REQUIRE_THAT(what, Contains("head.weight: expected [2, 48], found [2, 47]"));
    REQUIRE_THAT(what, Contains("head.bias: expected F32, found F64"));
  }
  unchanged();

  // Non-strict: missing and unexpected are skipped and reported.
  write_edited(good, bad, [](auto& t) {
    t.erase("head.bias");
    t["stray"] = io::TensorRecord::from_int64(1);
  });
  const auto partial = nn::load_state(net, bad, {.strict = false});
  REQUIRE(partial.skipped.missing_keys == std::vector<std::string>{"head.bias"});
  REQUIRE(partial.skipped.unexpected_keys == std::vector<std::string>{"stray"});

  // A truncated or missing file names the file.
  std::string bytes;
  {
    std::ifstream in(good, std::ios::binary);
    bytes.assign(std::istreambuf_iterator<char>(in), {});
  }
  std::ofstream(bad, std::ios::binary | std::ios::trunc) << bytes.substr(0, bytes.size() - 16);
  REQUIRE_THROWS_WITH(nn::load_state(net, bad), Contains(bad.string()) && Contains("truncated"));
  REQUIRE_THROWS_WITH(nn::load_state(net, temp_path("absent.safetensors")), Contains("absent.safetensors"));
  unchanged();
  fs::remove(good);
  fs::remove(bad);
}

TEST_CASE("extra tensors carry the optimiser state for a bit-exact resume", "[serialize][resume]") {
  const fs::path path = temp_path("resume.safetensors");
  Generator data(9);
  const Variable<float> x(Tensor<float>::rand({4, 1, 28, 28}, data));
  auto train_step = [&](models::Autoencoder<float>& model, optim::Adam<float>& opt) {
    opt.zero_grad();
    mse_loss(model.forward(x), x).backward();
    opt.step();
  };

  // Four steps straight.
  Generator g1(21);
  models::Autoencoder<float> straight(4, 0.0, g1);
  optim::Adam<float> opt_straight(straight.parameters(), {.lr = 1e-3, .weight_decay = 1e-4});
  for (int i = 0; i < 4; ++i) train_step(straight, opt_straight);

  // Two steps, save, a new process (new model and optimiser) loads, two more steps.
  Generator g2(21);
  models::Autoencoder<float> first(4, 0.0, g2);
  optim::Adam<float> opt_first(first.parameters(), {.lr = 1e-3, .weight_decay = 1e-4});
  for (int i = 0; i < 2; ++i) train_step(first, opt_first);
  nn::save_state(first, path, {{"epoch", "2"}}, opt_first.state_dict().with_prefix("optimizer."));

  Generator g3(99);
  models::Autoencoder<float> resumed(4, 0.0, g3);
  optim::Adam<float> opt_resumed(resumed.parameters(), {.lr = 1e-3, .weight_decay = 1e-4});
  const auto loaded = nn::load_state(resumed, path);
  REQUIRE(loaded.metadata.at("epoch") == "2");
  REQUIRE(loaded.extra.size() == 3 * 20 + 1);  // step and two moments per parameter, and the group size
  REQUIRE(loaded.extra.integer("optimizer.0.step") == 2);
  opt_resumed.load_state_dict(loaded.extra.strip_prefix("optimizer."));
  for (int i = 0; i < 2; ++i) train_step(resumed, opt_resumed);
  require_same_state(straight, resumed);

  SECTION("a checkpoint with NaN weights, infinite optimiser moments or a negative step is refused") {
    const fs::path bad = temp_path("resume_bad.safetensors");
    const auto before = resumed.state_dict();
    write_edited(path, bad, [](auto& t) {
      Tensor<float> w = Tensor<float>::ones({8, 1, 3, 3});
      w.data()[5] = std::numeric_limits<float>::quiet_NaN();
      t["encoder.encoder_cnn.0.weight"] = io::TensorRecord::from_tensor(w);
      Tensor<float> m = Tensor<float>::zeros({8});
      m.data()[2] = -std::numeric_limits<float>::infinity();
      t["optimizer.1.exp_avg"] = io::TensorRecord::from_tensor(m);
    });
    REQUIRE_THROWS_WITH(nn::load_state(resumed, bad),
                        Contains(bad.string()) &&
                            Contains("encoder.encoder_cnn.0.weight: NaN at element 5") &&
                            Contains("optimizer.1.exp_avg: infinity at element 2"));
    // nothing was loaded
    for (const auto& e : resumed.state_dict())
      if (!e.is_integer) REQUIRE(bit_equal(e.tensor, before.tensor(e.name)));

    write_edited(path, bad, [](auto& t) { t["optimizer.3.step"] = io::TensorRecord::from_int64(-4); });
    const auto negative = nn::load_state(resumed, bad);
    REQUIRE_THROWS_WITH(opt_resumed.load_state_dict(negative.extra.strip_prefix("optimizer.")),
                        Contains("3.step: negative (-4)"));
    fs::remove(bad);
  }

  SECTION("extras of another dtype are refused as the module's tensors are, unless converting") {
    const fs::path bad = temp_path("resume_dtype.safetensors");
    write_edited(path, bad, [](auto& t) {
      t["optimizer.1.exp_avg"] = io::TensorRecord::from_tensor(Tensor<double>::zeros({8}));
      io::TensorRecord steps = io::TensorRecord::from_int64(2);
      steps.shape = {1};  // an I64 tensor, not the scalar an optimiser's step is
      t["optimizer.2.step"] = steps;
    });
    REQUIRE_THROWS_WITH(
        nn::load_state(resumed, bad),
        Contains(bad.string()) &&
            Contains("optimizer.1.exp_avg: expected F32 or an I64 scalar, found F64 of shape [8]") &&
            Contains("optimizer.2.step: expected F32 or an I64 scalar, found I64 of shape [1]"));
    write_edited(path, bad, [](auto& t) {
      t["optimizer.1.exp_avg"] = io::TensorRecord::from_tensor(Tensor<double>::full({8}, 0.25));
    });
    const auto converted = nn::load_state(resumed, bad, {.convert_dtype = true});
    CHECK(converted.extra.tensor("optimizer.1.exp_avg").data()[7] == 0.25f);
    fs::remove(bad);
  }

  SECTION("the list of extras must be a JSON list of names") {
    const fs::path bad = temp_path("resume_extras.safetensors");
    const io::SafetensorsFile file = io::read_safetensors(path);
    for (const std::string list :
         {R"({"a":"optimizer.0.step"})", R"("optimizer.0.step")", R"(["x",3])", "[1"}) {
      INFO(list);
      auto metadata = file.metadata;
      metadata.erase(io::kChecksumKey);
      metadata[nn::kExtraTensorsKey] = list;
      io::write_safetensors(bad, file.tensors, metadata);
      REQUIRE_THROWS_AS(nn::load_state(resumed, bad), io::SafetensorsError);
      REQUIRE_THROWS_WITH(
          nn::load_state(resumed, bad),
          Contains(bad.string()) && Contains("sumi.extra_tensors is not a JSON list of names"));
    }
    fs::remove(bad);
  }

  SECTION("an optimiser state index is read only as written") {
    auto state = opt_first.state_dict();
    // "00.step" would be parameter 0's step written another way, overwriting or overwritten by "0.step".
    for (const std::string name : {"00.step", "+0.step", " 0.step"}) {
      INFO(name);
      auto edited = state;
      edited.insert_integer(name, 5);
      REQUIRE_THROWS_WITH(opt_resumed.load_state_dict(edited),
                          Contains(name + " (not '<parameter index>.<name>' for 20 parameters)"));
    }
  }

  // Extra names may not shadow the module's.
  nn::StateDict<float> clash;
  clash.insert("encoder.encoder_cnn.0.bias", Tensor<float>::zeros({8}));
  REQUIRE_THROWS_WITH(nn::save_state(first, path, {}, clash), Contains("encoder.encoder_cnn.0.bias"));
  fs::remove(path);
}

TEST_CASE("load_state reads PyTorch's own state dicts by prefix", "[serialize][fixtures]") {
  // dcgan.safetensors holds the tutorial Generator's state as G.* (initial) and G_after.* (after a step).
  using namespace nn;
  auto make = [](Generator& gen) {
    auto convt = [&](int64_t in, int64_t out, int64_t s, int64_t p) {
      return std::make_shared<ConvTranspose2d<float>>(in, out, 4, s, p, 0, 1, 1, false, gen);
    };
    auto main = std::make_shared<Sequential<float>>(
        convt(16, 64, 1, 0), std::make_shared<BatchNorm2d<float>>(64), std::make_shared<ReLU<float>>(),
        convt(64, 32, 2, 1), std::make_shared<BatchNorm2d<float>>(32), std::make_shared<ReLU<float>>(),
        convt(32, 16, 2, 1), std::make_shared<BatchNorm2d<float>>(16), std::make_shared<ReLU<float>>(),
        convt(16, 8, 2, 1), std::make_shared<BatchNorm2d<float>>(8), std::make_shared<ReLU<float>>(),
        convt(8, 3, 2, 1), std::make_shared<Tanh<float>>());
    return main;
  };
  class G : public Module<float> {
   public:
    explicit G(std::shared_ptr<Module<float>> main) { register_module("main", std::move(main)); }
  };
  Generator gen(0);
  G g(make(gen));
  const fs::path fixture = fs::path(SUMI_FIXTURE_DIR) / "dcgan.safetensors";
  const auto loaded = load_state(g, fixture, {.prefix = "G_after."});
  test::Fixture fx("dcgan");
  for (const auto& e : g.state_dict()) {
    INFO(e.name);
    if (e.is_integer)
      REQUIRE(e.integer == fx.file().int64_scalar("G_after." + e.name));
    else
      fx.require_close("G_after." + e.name, e.tensor, 0.0);
  }
  REQUIRE(g.state_dict().integer("main.1.num_batches_tracked") == 1);
  // Everything outside the prefix came back as extras (the discriminator, the inputs, ...).
  REQUIRE(loaded.extra.contains("D.main.0.weight"));
  REQUIRE(loaded.extra.contains("G.main.0.weight"));
  REQUIRE_FALSE(loaded.extra.contains("G_after.main.0.weight"));
  // The wrong prefix reports every tensor as missing.
  REQUIRE_THROWS_WITH(load_state(g, fixture, {.prefix = "X."}),
                      Contains("dcgan.safetensors") && Contains("missing (") && Contains("X.main.0.weight"));
}

TEST_CASE("metadata_integer reads a whole number and names the file and key otherwise",
          "[serialize][errors]") {
  const fs::path file = "ckpt.safetensors";
  const std::map<std::string, std::string> metadata = {
      {"epoch", "12"}, {"bad", "abc"}, {"tail", "3x"}, {"negative", "-5"}, {"empty", ""}};
  REQUIRE(nn::metadata_integer(metadata, "epoch", file) == 12);
  REQUIRE(nn::metadata_integer(metadata, "negative", file, -10) == -5);
  REQUIRE_THROWS_WITH(nn::metadata_integer(metadata, "missing", file),
                      Contains("ckpt.safetensors") && Contains("'missing' is missing"));
  for (const char* key : {"bad", "tail", "negative", "empty"})
    REQUIRE_THROWS_WITH(nn::metadata_integer(metadata, key, file),
                        Contains("ckpt.safetensors") && Contains(std::string("'") + key + "'") &&
                            Contains("not a whole number >= 0"));
  const std::map<std::string, std::string> binary = {{"epoch", std::string("1\0\n2", 4)}};
  REQUIRE_THROWS_WITH(nn::metadata_integer(binary, "epoch", file),
                      Contains("'epoch' is '1\\x00\\x0a2', not a whole number"));
}
