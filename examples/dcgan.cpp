// The PyTorch DCGAN tutorial's GAN on Kuzushiji-Kanji-style images: trains, plots the losses, shows real
// against generated images and saves both networks with their optimiser state. See --help.
#include <algorithm>
#include <cmath>
#include <cstdio>
#include <cstring>
#include <filesystem>
#include <map>
#include <memory>
#include <set>

#include "common/dcgan_training.hpp"
#include "common/resume.hpp"
#include "common/run_start.hpp"
#include "models/dcgan.hpp"
#include "sumi/data/glyph_folder.hpp"
#include "sumi/data/image_folder.hpp"
#include "sumi/sumi.hpp"

namespace fs = std::filesystem;
using namespace sumi;

namespace {

struct Options {
  std::string data, out = "out/dcgan", model;
  int64_t iterations = 0, seed = 0, generate = 0, progress_every = 500, max_chars = 0;
  int epochs = 5, batch = 128, nz = 100, ngf = 64, ndf = 64, nc = 3, image_size = 64, threads = 0;
  double lr = 2e-4, beta1 = 0.5;
  bool resume = false, quick = false, quiet = false;

  models::DcganConfig config() const { return {nz, ngf, ndf, nc, image_size}; }
};

// --quick: a small net on 32x32 grayscale glyphs of the most widely drawn characters, sized to show
// kanji-like samples within minutes on two cores. Explicit flags still override these.
void apply_quick_defaults(Options& o) {
  o.image_size = 32;
  o.nc = 1;
  o.ngf = 32;
  o.ndf = 32;
  o.batch = 64;
  o.epochs = 20;
  o.max_chars = 400;
  o.progress_every = 200;
  o.out = "out/dcgan_quick";
}

// Uniform noise images in [-1, 1], the same for the same index (for timing without data).
class SyntheticImages {
 public:
  SyntheticImages(int64_t size, Shape sample, uint64_t seed)
      : size_(size), sample_(std::move(sample)), seed_(seed) {}
  int64_t size() const { return size_; }
  void get_batch(std::span<const int64_t> indices, Tensor<float>& images,
                 std::vector<int64_t>& labels) const {
    Shape shape{int64_t(indices.size())};
    shape.insert(shape.end(), sample_.begin(), sample_.end());
    data::prepare_batch_tensor(images, shape);
    labels.assign(indices.size(), 0);
    const int64_t per = shape_numel(sample_);
    for (std::size_t k = 0; k < indices.size(); ++k) {
      Generator gen(data::detail::splitmix64(seed_ ^ uint64_t(indices[k])));
      float* p = images.data() + int64_t(k) * per;
      for (int64_t i = 0; i < per; ++i) p[i] = float(gen.uniform(-1.0, 1.0));
    }
  }

 private:
  int64_t size_;
  Shape sample_;
  uint64_t seed_;
};

struct Row {
  int64_t iteration, epoch;
  double loss_d, loss_g, d_x, d_g_z1, d_g_z2, seconds;
};

void write_metrics(const std::vector<Row>& rows, const fs::path& path) {
  util::CsvTable table;
  table.header = {"iteration", "epoch", "loss_d", "loss_g", "d_x", "d_g_z1", "d_g_z2", "seconds"};
  for (const auto& r : rows)
    table.rows.push_back({std::to_string(r.iteration), std::to_string(r.epoch),
                          util::format_round_trip(r.loss_d), util::format_round_trip(r.loss_g),
                          util::format_round_trip(r.d_x), util::format_round_trip(r.d_g_z1),
                          util::format_round_trip(r.d_g_z2), util::format_round_trip(r.seconds)});
  util::write_csv_atomically(path, table);
}

std::vector<Row> read_metrics(const fs::path& path) {
  return examples::read_metrics_rows(path, [](const util::CsvTable& t, std::size_t i) {
    return Row{t.integer(i, "iteration"), t.integer(i, "epoch"), t.number(i, "loss_d"),
               t.number(i, "loss_g"),     t.number(i, "d_x"),    t.number(i, "d_g_z1"),
               t.number(i, "d_g_z2"),     t.number(i, "seconds")};
  });
}

void write_loss_charts(const std::vector<Row>& rows, const fs::path& out) {
  std::vector<double> it, d, g, epochs, d_mean, g_mean;
  for (const auto& r : rows) {
    it.push_back(double(r.iteration));
    d.push_back(r.loss_d);
    g.push_back(r.loss_g);
    if (epochs.empty() || epochs.back() != double(r.epoch)) {
      epochs.push_back(double(r.epoch));
      d_mean.push_back(0);
      g_mean.push_back(0);
    }
  }
  for (std::size_t e = 0; e < epochs.size(); ++e) {  // means per epoch
    int64_t n = 0;
    for (const auto& r : rows)
      if (double(r.epoch) == epochs[e]) d_mean[e] += r.loss_d, g_mean[e] += r.loss_g, ++n;
    d_mean[e] /= double(n);
    g_mean[e] /= double(n);
  }
  plot::LineChart batches;
  batches.title = "Generator and discriminator loss during training";
  batches.x_label = "iteration";
  batches.y_label = "loss";
  batches.add_series("D", it, d);
  batches.add_series("G", it, g);
  batches.save(out / "loss_batches.svg");
  plot::LineChart per_epoch;
  per_epoch.title = "Mean loss per epoch";
  per_epoch.x_label = "epoch";
  per_epoch.y_label = "loss";
  per_epoch.add_series("D", epochs, d_mean, {.markers = true});
  per_epoch.add_series("G", epochs, g_mean, {.markers = true});
  per_epoch.save(out / "loss_epochs.svg");
}

plot::GridOptions grid_options(int64_t image_size, int nrow = 8) {
  return {.nrow = nrow,
          .padding = 2,
          .normalize = plot::Normalize::range,
          .value_range = {-1.0f, 1.0f},
          .upscale = image_size <= 32 ? 2 : 1};
}

plot::ImageBatchView view(const Tensor<float>& t, int64_t n) {
  return {t.data(), std::min(n, t.size(0)), t.size(1), t.size(2), t.size(3)};
}

// G(z) for `noise`, under no_grad. The generator stays in training mode, as in the tutorial: its BatchNorm
// layers normalise with the statistics of this batch.
Tensor<float> generate(models::DcganGenerator<float>& G, const Tensor<float>& noise) {
  NoGradGuard no_grad;
  return G(Variable<float>(noise)).value().contiguous();
}

// `left` and `right` side by side with a gap (real | fake).
plot::Image8 side_by_side(const plot::Image8& left, const plot::Image8& right, int gap) {
  plot::Image8 out{left.width + gap + right.width, std::max(left.height, right.height), left.channels, {}};
  out.pixels.assign(std::size_t(out.width) * std::size_t(out.height) * std::size_t(out.channels), 255);
  for (const auto& [img, x0] : {std::pair{&left, 0}, std::pair{&right, left.width + gap}})
    for (int y = 0; y < img->height; ++y)
      std::memcpy(&out.pixels[(std::size_t(y) * std::size_t(out.width) + std::size_t(x0)) *
                              std::size_t(out.channels)],
                  &img->pixels[std::size_t(y) * std::size_t(img->width) * std::size_t(img->channels)],
                  std::size_t(img->width) * std::size_t(img->channels));
  return out;
}

// The settings a resumed run must repeat (the sizes are checked against the weights separately). `data`
// names the images (the folder's absolute path) and their count: other images would make the resumed run
// another run.
std::vector<examples::RunSetting> resumed_settings(const Options& o, const std::string& data) {
  return {{"--batch", o.batch}, {"--seed", o.seed}, {"--lr", o.lr}, {"--beta1", o.beta1}, {"--data", data}};
}

std::map<std::string, std::string> checkpoint_metadata(const Options& o, const std::string& data,
                                                       int64_t iteration, int64_t epoch, int64_t per_epoch) {
  std::map<std::string, std::string> metadata = {{"nz", std::to_string(o.nz)},
                                                 {"ngf", std::to_string(o.ngf)},
                                                 {"ndf", std::to_string(o.ndf)},
                                                 {"nc", std::to_string(o.nc)},
                                                 {"image_size", std::to_string(o.image_size)},
                                                 {"iteration", std::to_string(iteration)},
                                                 {"epoch", std::to_string(epoch)},
                                                 {"batches_per_epoch", std::to_string(per_epoch)}};
  examples::record_settings(metadata, resumed_settings(o, data));
  return metadata;
}

models::DcganConfig config_from_file(const fs::path& file) {
  const auto meta = io::read_safetensors(file).metadata;
  return {nn::metadata_integer(meta, "nz", file, 1), nn::metadata_integer(meta, "ngf", file, 1),
          nn::metadata_integer(meta, "ndf", file, 1), nn::metadata_integer(meta, "nc", file, 1),
          nn::metadata_integer(meta, "image_size", file, 1)};
}

int run_generate(const Options& o) {
  if (o.model.empty()) throw util::CliError("--model", "--generate needs --model generator.safetensors");
  const models::DcganConfig config = config_from_file(o.model);
  models::DcganGenerator<float> G(config);
  nn::load_state(G, o.model);
  // Not locked: samples may be drawn into a folder while a run is training there (under names of their own).
  const fs::path out = o.out;
  examples::create_output_folder(o.threads, out);
  examples::print_run_start("dcgan --generate", out);
  std::printf("%lld samples from %s\n", (long long)o.generate, o.model.c_str());
  Generator gen(uint64_t(o.seed) + 7);
  // At least 64 per batch so BatchNorm sees a batch's worth of statistics.
  const Tensor<float> fake =
      generate(G, Tensor<float>::randn({std::max<int64_t>(o.generate, 64), config.nz, 1, 1}, gen));
  const int nrow = int(std::ceil(std::sqrt(double(o.generate))));
  // Names of their own: the default --out is a training run's folder, whose samples.png and summary.json
  // describe that run.
  plot::save_image_grid(out / "generated.png", view(fake, o.generate), grid_options(config.image_size, nrow));
  util::write_json_atomically(out / "generated.json", {{"generated", o.generate},
                                                       {"model", o.model},
                                                       {"max_rss_mb", util::max_rss_mb()},
                                                       {"sumi_version", SUMI_VERSION}});
  std::printf("outputs: generated.png generated.json\n");
  return 0;
}

// The default data: the kanji set rendered from the installed fonts, built once into `dir`.
fs::path rendered_kanji(const fs::path& dir, const Options& o) {
  if (fs::exists(dir / "render.json")) {
    const nlohmann::json rendered = util::read_json_file(dir / "render.json");
    if (!rendered.is_object())
      throw std::runtime_error("'" + (dir / "render.json").string() + "' is not a JSON object");
    if (!rendered.contains("max_chars") || rendered["max_chars"] != o.max_chars)
      throw util::CliError("--max-chars", "'" + dir.string() + "' was rendered with --max-chars " +
                                              rendered.value("max_chars", nlohmann::json()).dump() +
                                              ", not " + std::to_string(o.max_chars) +
                                              ": remove it to render it again, or pass --data " +
                                              dir.string() + " to use it as it is");
    // Fonts installed since the set was rendered are not in it: say so rather than re-render unasked.
    std::set<std::string> rendered_paths, installed_paths;
    if (const auto fonts = rendered.find("fonts"); fonts != rendered.end() && fonts->is_array())
      for (const auto& font : *fonts)
        if (font.is_object() && font.contains("path") && font["path"].is_string())
          rendered_paths.insert(font["path"].get<std::string>());
    for (const auto& path : data::find_kanji_fonts()) installed_paths.insert(path.string());
    std::printf("using the kanji set rendered earlier in %s from %zu fonts\n", dir.c_str(),
                rendered_paths.size());
    if (installed_paths != rendered_paths)
      std::printf(
          "note: %zu kanji fonts are installed now, not the same ones; remove %s to render it from them\n",
          installed_paths.size(), dir.c_str());
    return dir;
  }
  if (fs::exists(dir))
    throw std::runtime_error("'" + dir.string() +
                             "' exists but has no render.json; remove it to render the kanji set again");
  const auto fonts = data::find_kanji_fonts();
  if (fonts.empty())
    throw std::runtime_error(
        "no --data given and no kanji fonts installed to render the default set (install e.g. "
        "fonts-ipafont-gothic fonts-klee fonts-aoyagi-kouzan-t, or pass --data)");
  std::printf("rendering the kanji set from %zu fonts into %s (once)\n", fonts.size(), dir.c_str());
  std::fflush(stdout);
  util::ProgressBar bar(0, "render", {.quiet = o.quiet, .unit = "char"});
  const auto stats = data::render_glyph_folder(dir, fonts, {.size = 64, .max_chars = o.max_chars, .seed = 0},
                                               [&] { bar.update(); });
  bar.close();
  examples::print_removed_leftovers("partial folder", "a killed rendering", stats.removed_partial_folders);
  std::printf("rendered %lld characters, %lld images\n", (long long)stats.characters,
              (long long)stats.images);
  return dir;
}

// The progress_*.png grids in `folder`.
std::vector<fs::path> progress_grids(const fs::path& folder) {
  std::vector<fs::path> grids;
  for (const auto& entry : fs::directory_iterator(folder)) {
    const std::string name = entry.path().filename().string();
    if (name.starts_with("progress_") && name.ends_with(".png")) grids.push_back(entry.path());
  }
  return grids;
}

template <class Dataset>
int train(const Options& o, const Dataset& dataset, const std::string& data_name) {
  const fs::path out = o.out;
  const models::DcganConfig config = o.config();
  Generator init(uint64_t(o.seed));
  models::DcganGenerator<float> G(config, init);
  models::DcganDiscriminator<float> D(config, init);
  models::dcgan_weights_init(G, init);
  models::dcgan_weights_init(D, init);
  const optim::AdamOptions adam{.lr = o.lr, .beta1 = o.beta1, .beta2 = 0.999};
  optim::Adam<float> optG(G.parameters(), adam), optD(D.parameters(), adam);
  const std::string data = (data_name == "synthetic" ? data_name : fs::weakly_canonical(data_name).string()) +
                           " (" + std::to_string(dataset.size()) + " images)";

  // The last, smaller batch of an epoch is kept, as the tutorial's DataLoader does (drop_last=False).
  data::DataLoader loader(dataset, {.batch_size = o.batch, .shuffle = true, .seed = uint64_t(o.seed)});
  const int64_t per_epoch = loader.size();
  if (per_epoch == 0) throw std::runtime_error(data_name + " has no images");
  const int64_t total = o.iterations > 0 ? o.iterations : int64_t(o.epochs) * per_epoch;

  const fs::path g_file = out / "generator.safetensors", d_file = out / "discriminator.safetensors";
  std::vector<Row> rows;
  int64_t start = 0;
  // Saved one after the other: a kill between them leaves their last complete pair to resume from.
  const std::vector<fs::path> checkpoint_files = {g_file, d_file};
  if (o.resume && examples::restore_checkpoint_set(checkpoint_files, "iteration")) {
    for (const auto& [file, theirs] :
         {std::pair{g_file, config_from_file(g_file)}, std::pair{d_file, config_from_file(d_file)}})
      if (theirs.nz != config.nz || theirs.ngf != config.ngf || theirs.ndf != config.ndf ||
          theirs.nc != config.nc || theirs.image_size != config.image_size)
        throw std::runtime_error(file.string() + " holds nz=" + std::to_string(theirs.nz) +
                                 " ngf=" + std::to_string(theirs.ngf) + " ndf=" + std::to_string(theirs.ndf) +
                                 " nc=" + std::to_string(theirs.nc) +
                                 " image_size=" + std::to_string(theirs.image_size) +
                                 "; pass the same --nz --ngf --ndf --nc --image-size to resume");
    const auto g_loaded = nn::load_state(G, g_file);
    const auto d_loaded = nn::load_state(D, d_file);
    examples::check_resumed_settings(g_loaded.metadata, resumed_settings(o, data), g_file);
    // Iteration i's batch follows from the batches per epoch: files written before each epoch's last, smaller
    // batch was kept (no such entry) counted one fewer when the batch does not divide the images.
    const int64_t saved_per_epoch =
        g_loaded.metadata.contains("batches_per_epoch")
            ? nn::metadata_integer(g_loaded.metadata, "batches_per_epoch", g_file, 1)
            : int64_t(dataset.size()) / o.batch;
    if (saved_per_epoch != per_epoch)
      throw std::runtime_error(
          g_file.string() + " was trained with " + std::to_string(saved_per_epoch) +
          " batches per epoch, this run has " + std::to_string(per_epoch) +
          " (the last, smaller batch of an epoch is now kept): train into another --out");
    start = nn::metadata_integer(g_loaded.metadata, "iteration", g_file, 1);
    examples::load_complete_optimizer_state(optG, g_loaded.extra.strip_prefix("optimizer."), g_file);
    examples::load_complete_optimizer_state(optD, d_loaded.extra.strip_prefix("optimizer."), d_file);
    rows = read_metrics(out / "metrics.csv");
    if (int64_t(rows.size()) < start)
      throw std::runtime_error((out / "metrics.csv").string() + " has fewer rows than the checkpoint's " +
                               std::to_string(start) + " iterations");
    rows.resize(std::size_t(start));
    std::printf("resumed from %s at iteration %lld\n", g_file.c_str(), (long long)start);
  } else if (o.resume) {
    std::printf("note: --resume: no checkpoint %s, so training starts from iteration 0\n", g_file.c_str());
  }
  if (o.resume && start >= total)  // a resume that trains nothing is a mistake
    throw util::CliError(o.iterations > 0 ? "--iterations" : "--epochs",
                         g_file.string() + " was saved at iteration " + std::to_string(start) + " but " +
                             (o.iterations > 0 ? "--iterations " + std::to_string(o.iterations)
                                               : "--epochs " + std::to_string(o.epochs) + " (" +
                                                     std::to_string(total) + " iterations)") +
                             " ends there: ask for more to resume");
  // After the resume checks, so that a refused resume leaves the folder's model.txt as it was.
  examples::write_model_summary(out / "model.txt", G.summary() + "\n" + D.summary(), o.quiet);
  // A run from the start drops the progress grids of an earlier run in this folder, which would otherwise
  // pass for its own.
  if (start == 0)
    for (const auto& progress : progress_grids(out)) fs::remove(progress);
  examples::remove_final_outputs(out, {"summary.json", "real_vs_fake.png", "samples.png"});

  Generator fixed_gen(uint64_t(o.seed) + 2);
  const Tensor<float> fixed_noise = Tensor<float>::randn({64, config.nz, 1, 1}, fixed_gen);
  // Metrics first: a resume trims rows past the checkpoint's iteration but cannot make up missing ones.
  // The previous pair is kept once the folder's files are this run's (resumed from, or saved by it).
  bool files_are_this_runs = start > 0;
  auto save_checkpoint = [&](int64_t iteration, int64_t epoch) {
    write_metrics(rows, out / "metrics.csv");
    const auto metadata = checkpoint_metadata(o, data, iteration, epoch, per_epoch);
    examples::save_checkpoint_set(
        checkpoint_files, files_are_this_runs, [&](std::size_t i, const fs::path& file) {
          if (i == 0)
            nn::save_state(G, file, metadata, optG.state_dict().with_prefix("optimizer."));
          else
            nn::save_state(D, file, metadata, optD.state_dict().with_prefix("optimizer."));
        });
    files_are_this_runs = true;
    if (!rows.empty()) write_loss_charts(rows, out);
  };

  std::printf("data: %s, %lld images, %lld iterations per epoch of batch %d; training to iteration %lld\n",
              data_name.c_str(), (long long)dataset.size(), (long long)per_epoch, o.batch, (long long)total);
  std::fflush(stdout);
  util::ProgressBar bar(total - start, "dcgan", {.quiet = o.quiet, .unit = "it"});
  std::vector<double> step_seconds;
  int64_t it = start;
  for (int64_t epoch = start / per_epoch; it < total; ++epoch) {
    const int64_t skip = epoch == start / per_epoch ? start % per_epoch : 0;
    int64_t index = 0;
    for (const data::Batch& batch : loader.epoch(epoch)) {
      if (index++ < skip) continue;
      if (it >= total) break;
      // The noise of iteration i depends only on (seed, i), so a resumed run draws what an uninterrupted one
      // would.
      Generator noise_gen(data::detail::epoch_seed(uint64_t(o.seed) + 1, it));
      const Tensor<float> noise = Tensor<float>::randn({batch.size(), config.nz, 1, 1}, noise_gen);
      util::Timer timer;
      const examples::DcganStepResult r = examples::dcgan_train_step(G, D, optG, optD, batch.images, noise);
      const double seconds = timer.elapsed_seconds();
      step_seconds.push_back(seconds);
      ++it;
      rows.push_back({it, epoch + 1, r.loss_d, r.loss_g, r.d_x, r.d_g_z1, r.d_g_z2, seconds});
      if (o.progress_every > 0 && it % o.progress_every == 0) {
        char name[64];
        std::snprintf(name, sizeof name, "progress_%06lld.png", (long long)it);
        plot::save_image_grid(out / name, view(generate(G, fixed_noise), 64),
                              grid_options(config.image_size));
      }
      bar.set_postfix("loss_d", r.loss_d);
      bar.set_postfix("loss_g", r.loss_g);
      bar.set_postfix("D(x)", r.d_x);
      bar.update();
    }
    save_checkpoint(it, epoch + 1);
    double d = 0, g = 0;
    int64_t n = 0;
    for (const auto& r : rows)
      if (r.epoch == epoch + 1) d += r.loss_d, g += r.loss_g, ++n;
    if (n)
      bar.write(util::string_printf("epoch %lld: iteration %lld, mean loss D %.4f, G %.4f\n",
                                    (long long)(epoch + 1), (long long)it, d / double(n), g / double(n)));
  }
  bar.close();
  if (rows.empty()) throw std::runtime_error("no iteration was trained");

  // Figures: 64 real images | 64 generated from the fixed noise, and 64 from fresh noise.
  Tensor<float> real;  // 64 images (or all there are), from as many batches as that takes
  int64_t real_count = 0;
  for (const data::Batch& batch : loader.epoch(0)) {
    if (!real.defined()) {
      Shape shape = batch.images.shape();
      shape[0] = std::min<int64_t>(64, dataset.size());
      real = Tensor<float>::empty(shape);
    }
    const int64_t take = std::min(real.size(0) - real_count, batch.size());
    real.slice(real_count, real_count + take).copy_(batch.images.slice(0, take));
    real_count += take;
    if (real_count == real.size(0)) break;
  }
  const plot::GridOptions grid = grid_options(config.image_size);
  const plot::Image8 real_grid = plot::make_image_grid(view(real, 64), grid);
  const plot::Image8 fake_grid = plot::make_image_grid(view(generate(G, fixed_noise), 64), grid);
  plot::save_png(out / "real_vs_fake.png", side_by_side(real_grid, fake_grid, 16));
  Generator fresh(uint64_t(o.seed) + 3 + uint64_t(it));
  plot::save_image_grid(out / "samples.png",
                        view(generate(G, Tensor<float>::randn({64, config.nz, 1, 1}, fresh)), 64), grid);

  std::vector<double> timed(step_seconds.size() > 1 ? step_seconds.begin() + 1 : step_seconds.begin(),
                            step_seconds.end());
  std::sort(timed.begin(), timed.end());
  const double median = timed.empty() ? 0.0 : (timed[(timed.size() - 1) / 2] + timed[timed.size() / 2]) / 2;
  const Row& last = rows.back();
  nlohmann::json summary = {
      {"seconds_per_iteration", median},
      {"max_rss_mb", util::max_rss_mb()},
      {"iterations", last.iteration},
      {"epochs", double(last.iteration) / double(per_epoch)},
      {"iterations_this_run", int64_t(step_seconds.size())},
      {"loss_d", last.loss_d},
      {"loss_g", last.loss_g},
      {"d_x", last.d_x},
      {"d_g_z1", last.d_g_z1},
      {"d_g_z2", last.d_g_z2},
      {"threads", get_num_threads()},
      {"data", data_name},
      {"images", dataset.size()},
      {"batch", o.batch},
      {"nz", o.nz},
      {"ngf", o.ngf},
      {"ndf", o.ndf},
      {"nc", o.nc},
      {"image_size", o.image_size},
      {"lr", o.lr},
      {"beta1", o.beta1},
      {"seed", o.seed},
      {"sumi_version", SUMI_VERSION},
  };
  util::write_json_atomically(out / "summary.json", summary);
  const bool progress_written = !progress_grids(out).empty();  // this run's, or an earlier part's if resumed
  std::printf(
      "%.3f s per iteration (median), max RSS %.0f MB; outputs: loss_epochs.svg loss_batches.svg "
      "real_vs_fake.png samples.png %smetrics.csv generator.safetensors discriminator.safetensors "
      "model.txt summary.json\n",
      median, util::max_rss_mb(), progress_written ? "progress_*.png " : "");
  return 0;
}

int run(const Options& o) {
  if (o.generate > 0) return run_generate(o);
  if (!o.model.empty())
    throw util::CliError("--model",
                         "--model is read only with --generate; training starts from new weights "
                         "(--resume continues the run in --out)");
  if (o.data == "synthetic") {
    const examples::RunFolder run_folder = examples::start_run("dcgan", o.threads, o.out);
    // 64 batches an epoch whatever --iterations, so that a longer run resumes on the same images.
    const SyntheticImages images(64 * int64_t(o.batch), {o.nc, o.image_size, o.image_size}, uint64_t(o.seed));
    return train(o, images, "synthetic");
  }
  // The data first: a missing or empty folder leaves no empty output folder behind. Rendering it already
  // runs on --threads threads.
  if (o.threads > 0) set_num_threads(o.threads);
  const fs::path root =
      o.data.empty() ? rendered_kanji(o.quick ? "out/kanji_quick" : "out/kanji", o) : fs::path(o.data);
  if (!fs::is_directory(root)) throw std::runtime_error("--data: '" + root.string() + "' is not a folder");
  util::Timer timer;
  const data::ImageFolder images(root, {.channels = o.nc, .image_size = o.image_size, .threads = o.threads});
  const examples::RunFolder run_folder = examples::start_run("dcgan", o.threads, o.out);
  std::printf("loaded %lld images of %zu classes from %s in %.1f s", (long long)images.size(),
              images.classes().size(), root.c_str(), timer.elapsed_seconds());
  if (!images.skipped_files().empty())
    std::printf("; skipped %zu that could not be decoded, e.g. %s", images.skipped_files().size(),
                images.skipped_files().front().c_str());
  std::printf("\n");
  return train(o, images, root.string());
}

}  // namespace

int main(int argc, char** argv) {
  Options o;
  if (util::switch_on(argc, argv, "--quick"))  // changes the defaults that the other flags then override
    apply_quick_defaults(o);
  util::ArgParser cli(
      "Trains the PyTorch DCGAN tutorial's GAN on Kuzushiji-Kanji-style images (or writes samples "
      "from a trained generator with --generate).");
  cli.bind(
      "--data", o.data,
      "image folder with class subfolders (e.g. kkanji2), or 'synthetic' for random images (timing); empty: "
      "the kanji set rendered once from the installed fonts into out/kanji");
  cli.bind("--iterations", o.iterations, "stop after this many iterations in all (0: run --epochs)").min(0);
  cli.bind("--epochs", o.epochs, "training epochs").min(1);
  cli.bind("--batch", o.batch, "batch size").min(2);
  cli.bind("--nz", o.nz, "latent vector size").min(1);
  cli.bind("--ngf", o.ngf, "generator feature maps").min(1);
  cli.bind("--ndf", o.ndf, "discriminator feature maps").min(1);
  cli.bind("--nc", o.nc, "image channels, 1 or 3")
      .check([](int v) { return v == 1 || v == 3; }, "must be 1 or 3");
  cli.bind("--image-size", o.image_size, "image size, 64 or 32")
      .check([](int v) { return v == 64 || v == 32; }, "must be 64 or 32");
  cli.bind("--lr", o.lr, "Adam learning rate").check([](double v) { return v > 0; }, "must be > 0");
  cli.bind("--beta1", o.beta1, "Adam beta1")
      .check([](double v) { return v >= 0 && v < 1; }, "must be in [0, 1)");
  cli.bind("--seed", o.seed, "seed of the initialisation, shuffling and noise");
  examples::bind_threads_flag(cli, o.threads);
  cli.bind("--out", o.out, "output folder");
  cli.bind("--progress-every", o.progress_every,
           "write a progress grid from the fixed noise every N iterations (0: never)")
      .min(0);
  cli.bind("--resume", o.resume, "continue from the output folder's checkpoints");
  cli.bind("--generate", o.generate,
           "write this many samples from --model to <out>/generated.png (and generated.json), without "
           "training")
      .min(0);
  cli.bind("--model", o.model, "generator checkpoint for --generate");
  cli.bind("--max-chars", o.max_chars,
           "when rendering the default set: only the N characters drawn by the most fonts (0: all)")
      .min(0);
  cli.bind("--quick", o.quick,
           "a short run that shows kanji-like glyphs within minutes: 32x32 grayscale, ngf=ndf=32, batch 64, "
           "20 epochs "
           "over the 400 most common characters (rendered into out/kanji_quick), output out/dcgan_quick");
  cli.bind("--quiet", o.quiet, "no progress bar or model summary");
  return util::run_main(cli, argc, argv, [&] {
    if (o.generate > 0)  // the sizes come from --model; nothing is trained or read
      for (const char* flag :
           {"--nz", "--ngf", "--ndf", "--nc", "--image-size", "--iterations", "--epochs", "--batch", "--lr",
            "--beta1", "--resume", "--data", "--max-chars", "--quick", "--progress-every"})
        if (cli.was_given(flag))
          throw util::CliError(flag, std::string(flag) +
                                         " is not used with --generate (the sizes come from the --model "
                                         "checkpoint, and nothing is trained)");
    return run(o);
  });
}
