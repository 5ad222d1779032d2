#include <sys/stat.h>
#include <zlib.h>

#include <algorithm>
#include <atomic>
#include <catch2/catch.hpp>
#include <cstdlib>
#include <filesystem>
#include <fstream>
#include <limits>
#include <numeric>
#include <set>
#include <string>
#include <thread>
#include <vector>

#include "sumi/data/data_loader.hpp"
#include "sumi/data/dataset.hpp"
#include "sumi/data/fashion_mnist.hpp"
#include "sumi/data/idx.hpp"
#include "sumi/data/tensor_dataset.hpp"
#include "sumi/ops/elementwise.hpp"
#include "sumi/ops/linalg.hpp"
#include "sumi/ops/reduction.hpp"

using namespace sumi;
using namespace sumi::data;
namespace fs = std::filesystem;

namespace {

fs::path temp_path(const std::string& name) {
  return fs::temp_directory_path() / ("sumi_test_data_" + name);
}

// A fresh, empty temporary directory.
fs::path temp_dir(const std::string& name) {
  const fs::path dir = temp_path(name);
  fs::remove_all(dir);
  fs::create_directories(dir);
  return dir;
}

std::string idx_bytes(const Shape& dims, const std::vector<uint8_t>& data, uint8_t type = 0x08) {
  std::string s = {0, 0, char(type), char(dims.size())};
  for (int64_t d : dims)
    for (int shift = 24; shift >= 0; shift -= 8) s += char((uint64_t(d) >> shift) & 0xff);
  s.append(data.begin(), data.end());
  return s;
}

void write_raw(const fs::path& p, const std::string& bytes) {
  std::ofstream(p, std::ios::binary).write(bytes.data(), std::streamsize(bytes.size()));
}

void write_gz(const fs::path& p, const std::string& bytes) {
  gzFile f = gzopen(p.c_str(), "wb");
  REQUIRE(f != nullptr);
  REQUIRE(gzwrite(f, bytes.data(), unsigned(bytes.size())) == int(bytes.size()));
  REQUIRE(gzclose(f) == Z_OK);
}

std::string read_raw(const fs::path& p) {
  std::ifstream in(p, std::ios::binary);
  return {std::istreambuf_iterator<char>(in), {}};
}

// A gzip member of `bytes` exactly `size` bytes long, padded by a comment in its header (FCOMMENT), so that
// members can end exactly where the reader's input buffer does.
std::string gzip_member_of_size(const fs::path& scratch, const std::string& bytes, std::size_t size) {
  write_gz(scratch, bytes);
  std::string member = read_raw(scratch);
  REQUIRE(member[3] == 0);  // no optional header fields yet
  REQUIRE(member.size() + 1 <= size);
  member[3] = 0x10;
  member.insert(10, std::string(size - member.size() - 1, 'c') + '\0');
  return member;
}

std::vector<uint8_t> iota_bytes(std::size_t n, uint8_t start = 0) {
  std::vector<uint8_t> v(n);
  for (std::size_t i = 0; i < n; ++i) v[i] = uint8_t(start + i * 7);
  return v;
}

// A synthetic dataset: sample i is the image (i, -i) with label i % 7, so a batch shows which samples it
// holds.
struct IotaDataset {
  int64_t n = 0;
  int64_t throw_at = -1;  // get_batch throws when asked for this index
  mutable std::atomic<int64_t> calls{0};
  mutable std::atomic<bool> on_other_thread{false};
  std::thread::id consumer = std::this_thread::get_id();

  explicit IotaDataset(int64_t size, int64_t throw_at_index = -1) : n(size), throw_at(throw_at_index) {}
  int64_t size() const { return n; }
  void get_batch(std::span<const int64_t> indices, Tensor<float>& images,
                 std::vector<int64_t>& labels) const {
    ++calls;
    if (std::this_thread::get_id() != consumer) on_other_thread = true;
    prepare_batch_tensor(images, {int64_t(indices.size()), 2});
    labels.resize(indices.size());
    for (std::size_t k = 0; k < indices.size(); ++k) {
      if (indices[k] == throw_at) throw std::runtime_error("boom at sample " + std::to_string(throw_at));
      images.data()[2 * k] = float(indices[k]);
      images.data()[2 * k + 1] = -float(indices[k]);
      labels[k] = indices[k] % 7;
    }
  }
};

static_assert(Dataset<IotaDataset>);
static_assert(Dataset<MnistDataset>);
static_assert(Dataset<Subset<MnistDataset>>);
static_assert(Dataset<Subset<Subset<IotaDataset>>>);
static_assert(!Dataset<int>);

// All batches of one epoch, checking each batch's contents against its indices along the way.
std::vector<std::vector<int64_t>> collect_epoch(DataLoader<IotaDataset>& loader) {
  std::vector<std::vector<int64_t>> batches;
  for (const Batch& b : loader) {
    REQUIRE(b.index == int64_t(batches.size()));
    REQUIRE(b.images.shape() == Shape{b.size(), 2});
    REQUIRE(int64_t(b.labels.size()) == b.size());
    for (int64_t k = 0; k < b.size(); ++k) {
      const int64_t i = b.indices[std::size_t(k)];
      REQUIRE(b.images.at({k, 0}) == float(i));
      REQUIRE(b.images.at({k, 1}) == -float(i));
      REQUIRE(b.labels[std::size_t(k)] == i % 7);
    }
    batches.push_back(b.indices);
  }
  return batches;
}

std::vector<int64_t> flatten(const std::vector<std::vector<int64_t>>& batches) {
  std::vector<int64_t> all;
  for (const auto& b : batches) all.insert(all.end(), b.begin(), b.end());
  return all;
}

}  // namespace

TEST_CASE("IDX reader reads raw and gzipped files, detected by content", "[data][idx]") {
  const std::vector<uint8_t> pixels = iota_bytes(3 * 2 * 4);
  const std::string images = idx_bytes({3, 2, 4}, pixels);
  const std::string labels = idx_bytes({3}, {7, 0, 255});
  // The names lie about compression on purpose: the gzip magic, not the extension, decides.
  const fs::path raw = temp_path("images.gz"), gz = temp_path("images.idx"), raw_labels = temp_path("labels");
  write_raw(raw, images);
  write_gz(gz, images);
  write_raw(raw_labels, labels);
  REQUIRE(read_raw(gz).substr(0, 2) == "\x1f\x8b");

  for (const fs::path& p : {raw, gz}) {
    const IdxArray a = read_idx(p);
    REQUIRE(a.dims == Shape{3, 2, 4});
    REQUIRE(a.numel() == 24);
    REQUIRE(a.data == pixels);
  }
  const IdxArray l = read_idx(raw_labels);
  REQUIRE(l.dims == Shape{3});
  REQUIRE(l.data == std::vector<uint8_t>{7, 0, 255});

  // Big-endian dimensions above 255 and an empty array.
  const fs::path big = temp_path("big.gz");
  write_gz(big, idx_bytes({300}, iota_bytes(300)));
  REQUIRE(read_idx(big).dims == Shape{300});
  REQUIRE(read_idx(big).data == iota_bytes(300));
  write_raw(big, idx_bytes({0, 28, 28}, {}));
  REQUIRE(read_idx(big).dims == Shape{0, 28, 28});

  // Gzip members one after another are one gzip stream (as `cat a.gz b.gz` makes and gunzip reads), even
  // where a member boundary falls inside the header or the data.
  for (const std::size_t cut : {std::size_t{3}, std::size_t{10}, images.size()}) {
    write_gz(big, images.substr(0, cut));
    const std::string first = read_raw(big);
    write_gz(big, images.substr(cut));
    write_raw(big, first + read_raw(big));
    REQUIRE(read_idx(big).data == pixels);
  }
  // A first member ending just before, at and just after the reader's 128 KiB input buffer.
  for (const std::size_t end : {std::size_t{131071}, std::size_t{131072}, std::size_t{131073}}) {
    INFO(end);
    const std::string first = gzip_member_of_size(big, images.substr(0, 10), end);
    REQUIRE(first.size() == end);
    write_gz(big, images.substr(10));
    write_raw(big, first + read_raw(big));
    REQUIRE(read_idx(big).data == pixels);
  }
  for (const fs::path& p : {raw, gz, raw_labels, big}) fs::remove(p);
}

TEST_CASE("IDX reader errors name the file and the problem", "[data][idx][errors]") {
  const std::string good = idx_bytes({4, 3, 3}, iota_bytes(36));
  const fs::path bad = temp_path("bad-images-idx3-ubyte");
  const fs::path bad_gz = temp_path("bad-images-idx3-ubyte.gz");
  auto names = [](const fs::path& p) { return Catch::Contains(p.filename().string()); };

  SECTION("missing file") {
    const fs::path missing = temp_path("no-such-file-idx1-ubyte.gz");
    REQUIRE_THROWS_AS(read_idx(missing), IdxError);
    REQUIRE_THROWS_WITH(read_idx(missing), names(missing) && Catch::Contains("cannot open"));
  }
  SECTION("a pipe or a folder") {
    // Opening a pipe would wait for a writer: refused at once.
    const fs::path pipe = temp_path("pipe-idx1-ubyte");
    fs::remove(pipe);
    REQUIRE(::mkfifo(pipe.c_str(), 0600) == 0);
    REQUIRE_THROWS_AS(read_idx(pipe), IdxError);
    REQUIRE_THROWS_WITH(read_idx(pipe), names(pipe) && Catch::Contains("is not a regular file"));
    fs::remove(pipe);
    REQUIRE_THROWS_WITH(read_idx(fs::temp_directory_path()), Catch::Contains("is a folder, not an IDX file"));
  }
  SECTION("truncated data, raw and gzipped") {
    write_raw(bad, good.substr(0, good.size() - 5));
    REQUIRE_THROWS_WITH(read_idx(bad), names(bad) && Catch::Contains("truncated") &&
                                           Catch::Contains("36 data bytes") && Catch::Contains("only 31"));
    write_gz(bad_gz, good.substr(0, good.size() - 5));
    REQUIRE_THROWS_WITH(read_idx(bad_gz),
                        names(bad_gz) && Catch::Contains("truncated") && Catch::Contains("only 31"));
  }
  SECTION("truncated header and empty file") {
    write_raw(bad, good.substr(0, 9));
    REQUIRE_THROWS_WITH(read_idx(bad), names(bad) && Catch::Contains("truncated header"));
    write_raw(bad, "");
    REQUIRE_THROWS_WITH(read_idx(bad), names(bad) && Catch::Contains("truncated"));
  }
  SECTION("truncated gzip stream") {
    write_gz(bad_gz, good);
    const std::string compressed = read_raw(bad_gz);
    write_raw(bad_gz, compressed.substr(0, compressed.size() / 2));
    REQUIRE_THROWS_AS(read_idx(bad_gz), IdxError);
    REQUIRE_THROWS_WITH(read_idx(bad_gz), names(bad_gz));
    // Only the 8-byte trailer (checksum and length) missing: every data byte is there, unverified.
    write_raw(bad_gz, compressed.substr(0, compressed.size() - 8));
    REQUIRE_THROWS_WITH(read_idx(bad_gz), names(bad_gz) && Catch::Contains("truncated gzip data"));
  }
  SECTION("bad magic") {
    std::string png = good;
    png.replace(0, 4, "\x89PNG");
    write_raw(bad, png);
    REQUIRE_THROWS_WITH(read_idx(bad), names(bad) && Catch::Contains("bad magic 89 50 4E 47"));
    write_gz(bad_gz, png);
    REQUIRE_THROWS_WITH(read_idx(bad_gz), names(bad_gz) && Catch::Contains("bad magic"));
    write_raw(bad, idx_bytes({}, {}));  // rank 0
    REQUIRE_THROWS_WITH(read_idx(bad), names(bad) && Catch::Contains("rank 0"));
  }
  SECTION("unsupported element type") {
    write_raw(bad, idx_bytes({4}, std::vector<uint8_t>(16), 0x0D));
    REQUIRE_THROWS_WITH(read_idx(bad), names(bad) && Catch::Contains("unsupported element type float32"));
  }
  SECTION("trailing data, raw and gzipped") {
    write_raw(bad, good + "xyz");
    REQUIRE_THROWS_WITH(
        read_idx(bad), names(bad) && Catch::Contains("size mismatch") && Catch::Contains("3 trailing bytes"));
    write_gz(bad_gz, good + "xyz");
    REQUIRE_THROWS_WITH(read_idx(bad_gz), names(bad_gz) && Catch::Contains("size mismatch") &&
                                              Catch::Contains("3 trailing bytes"));
  }
  SECTION("bytes after the gzip stream") {
    // Every data byte is there and verified, but what follows is not gzip: gzread would skip it silently.
    write_gz(bad_gz, good);
    const std::string compressed = read_raw(bad_gz);
    write_raw(bad_gz, compressed + "garbage");
    REQUIRE_THROWS_AS(read_idx(bad_gz), IdxError);
    REQUIRE_THROWS_WITH(read_idx(bad_gz),
                        names(bad_gz) && Catch::Contains("7 bytes after the end of the gzip"));
    write_raw(bad_gz, compressed + std::string(1, '\x1f'));  // half a gzip magic
    REQUIRE_THROWS_WITH(read_idx(bad_gz),
                        names(bad_gz) && Catch::Contains("1 byte after the end of the gzip"));
    // The same where the stream ends at the end of the reader's input buffer, and the byte follows it.
    for (const std::size_t end : {std::size_t{131071}, std::size_t{131072}}) {
      write_raw(bad_gz, gzip_member_of_size(bad, good, end) + "\x1f");
      REQUIRE_THROWS_WITH(read_idx(bad_gz), Catch::Contains("1 byte after the end of the gzip"));
      write_raw(bad_gz, gzip_member_of_size(bad, good, end) + "\x1f\x8b");  // a member cut after its magic
      REQUIRE_THROWS_WITH(read_idx(bad_gz), Catch::Contains("truncated gzip data"));
    }
    write_raw(bad_gz, compressed + std::string(300000, '\0'));  // more than one input buffer of padding
    REQUIRE_THROWS_WITH(read_idx(bad_gz), names(bad_gz) && Catch::Contains("300000 bytes after the end"));
  }
  SECTION("corrupt gzip checksum") {
    write_gz(bad_gz, good);
    std::string compressed = read_raw(bad_gz);
    compressed[compressed.size() - 8] ^= 1;  // the trailer's CRC-32
    write_raw(bad_gz, compressed);
    REQUIRE_THROWS_WITH(read_idx(bad_gz),
                        names(bad_gz) && Catch::Contains("corrupt gzip data (incorrect data check)"));
  }
  SECTION("implausible header does not allocate") {
    write_gz(bad_gz, idx_bytes({0xffffffff, 0xffffffff, 0xffffffff}, {}));
    REQUIRE_THROWS_WITH(read_idx(bad_gz), names(bad_gz) && Catch::Contains("implausible"));
    write_gz(bad_gz, idx_bytes({0x7fffffff, 2}, {1, 2, 3}));  // 4 GiB promised, 3 bytes present
    REQUIRE_THROWS_WITH(read_idx(bad_gz),
                        names(bad_gz) && Catch::Contains("truncated") && Catch::Contains("only 3"));
  }
  fs::remove(bad);
  fs::remove(bad_gz);
}

TEST_CASE("MnistDataset checks that images and labels agree", "[data][idx][errors]") {
  const fs::path images = temp_path("cm-images-idx3-ubyte"), labels = temp_path("cm-labels-idx1-ubyte.gz");
  write_raw(images, idx_bytes({3, 2, 2}, iota_bytes(12)));
  write_gz(labels, idx_bytes({4}, {0, 1, 2, 3}));
  REQUIRE_THROWS_AS(MnistDataset::from_files(images, labels), IdxError);
  REQUIRE_THROWS_WITH(MnistDataset::from_files(images, labels),
                      Catch::Contains("count mismatch") && Catch::Contains(images.filename().string()) &&
                          Catch::Contains("3 images") && Catch::Contains(labels.filename().string()) &&
                          Catch::Contains("4 labels"));
  // Swapped files: the ranks are wrong.
  REQUIRE_THROWS_WITH(MnistDataset::from_files(labels, images),
                      Catch::Contains(labels.filename().string()) && Catch::Contains("rank 3"));
  write_gz(labels, idx_bytes({3}, {0, 4, 2}));
  const MnistDataset ds = MnistDataset::from_files(images, labels);
  REQUIRE(ds.size() == 3);
  REQUIRE(ds.num_classes() == 5);
  // Arrays built in code must hold the bytes their dimensions promise.
  REQUIRE_THROWS_WITH(
      MnistDataset(IdxArray{{100, 28, 28}, iota_bytes(12)}, IdxArray{{100}, iota_bytes(100)}, "made.idx"),
      Catch::Contains("made.idx") && Catch::Contains("[100, 28, 28]") && Catch::Contains("12 bytes"));
  REQUIRE_THROWS_WITH(MnistDataset(IdxArray{{1, 2, 2}, iota_bytes(4)}, IdxArray{{-1}, {}}),
                      Catch::Contains("'labels'") && Catch::Contains("[-1]"));
  fs::remove(images);
  fs::remove(labels);
}

TEST_CASE("DataLoader counts batches without overflow for any batch size", "[data][loader]") {
  IotaDataset ds(10);
  const int64_t huge = std::numeric_limits<int64_t>::max();
  DataLoader loader(ds, {.batch_size = huge});
  REQUIRE(loader.size() == 1);
  const auto batches = collect_epoch(loader);
  REQUIRE(batches.size() == 1);
  REQUIRE(batches[0].size() == 10);
}

TEST_CASE("load_fashion_mnist loads a split, resolves its directory and explains a missing dataset",
          "[data]") {
  const fs::path dir = temp_dir("fmnist");
  const std::vector<uint8_t> pixels = iota_bytes(5 * 28 * 28, 3);
  write_gz(dir / "t10k-images-idx3-ubyte.gz", idx_bytes({5, 28, 28}, pixels));
  write_raw(dir / "t10k-labels-idx1-ubyte", idx_bytes({5}, {9, 0, 3, 3, 1}));  // uncompressed works too

  const MnistDataset ds = load_fashion_mnist(dir, Split::test);
  REQUIRE(ds.size() == 5);
  REQUIRE(ds.sample_shape() == Shape{1, 28, 28});
  REQUIRE(ds.label(0) == 9);
  REQUIRE(fashion_mnist_classes[std::size_t(ds.label(0))] == "Ankle boot");
  REQUIRE_THROWS_WITH(ds.label(5), Catch::Contains("MnistDataset::label") && Catch::Contains("5"));
  REQUIRE_THROWS_WITH(ds.label(-1), Catch::Contains("MnistDataset::label") && Catch::Contains("-1"));
  REQUIRE(fashion_mnist_classes[0] == "T-shirt/top");

  Tensor<float> images;
  std::vector<int64_t> labels;
  const std::vector<int64_t> idx = {4, 0};
  ds.get_batch(idx, images, labels);
  REQUIRE(images.shape() == Shape{2, 1, 28, 28});
  REQUIRE(labels == std::vector<int64_t>{1, 9});
  for (int64_t p = 0; p < 28 * 28; ++p) {
    REQUIRE(images.data()[p] == float(pixels[std::size_t(4 * 784 + p)]) / 255.0f);
    REQUIRE(images.data()[784 + p] == float(pixels[std::size_t(p)]) / 255.0f);
  }
  // Same shape again: the buffer is reused.
  const float* buffer = images.data();
  ds.get_batch(std::vector<int64_t>{1, 2}, images, labels);
  REQUIRE(images.data() == buffer);
  REQUIRE(labels == std::vector<int64_t>{0, 3});
  REQUIRE_THROWS_AS(ds.get_batch(std::vector<int64_t>{5}, images, labels), std::out_of_range);

  SECTION("SUMI_DATA is used when no directory is given") {
    ::setenv("SUMI_DATA", dir.c_str(), 1);
    REQUIRE(resolve_fashion_mnist_dir() == dir);
    REQUIRE(resolve_fashion_mnist_dir("/elsewhere") == "/elsewhere");
    REQUIRE(load_fashion_mnist(Split::test).size() == 5);
    REQUIRE_THROWS_WITH(load_fashion_mnist(Split::train), Catch::Contains("$SUMI_DATA"));
    ::unsetenv("SUMI_DATA");
    REQUIRE(resolve_fashion_mnist_dir() == "/usr/share/datasets/fashion-mnist");
  }
  SECTION("a missing split lists the files looked for and the install command") {
    REQUIRE_THROWS_AS(load_fashion_mnist(dir, Split::train), DatasetNotFoundError);
    REQUIRE_THROWS_WITH(load_fashion_mnist(dir, Split::train),
                        Catch::Contains((dir / "train-images-idx3-ubyte.gz").string()) &&
                            Catch::Contains((dir / "train-labels-idx1-ubyte").string()) &&
                            Catch::Contains("apt-get install dataset-fashion-mnist"));
  }
  SECTION("labels outside the 10 classes are rejected") {
    write_raw(dir / "t10k-labels-idx1-ubyte", idx_bytes({5}, {9, 0, 10, 3, 1}));
    REQUIRE_THROWS_WITH(load_fashion_mnist(dir, Split::test),
                        Catch::Contains("t10k-labels-idx1-ubyte") && Catch::Contains("label 10 of sample 2"));
  }
  SECTION("images of another size than 28x28 are rejected naming the file") {
    write_gz(dir / "t10k-images-idx3-ubyte.gz", idx_bytes({5, 14, 56}, iota_bytes(5 * 14 * 56, 3)));
    REQUIRE_THROWS_AS(load_fashion_mnist(dir, Split::test), IdxError);
    REQUIRE_THROWS_WITH(load_fashion_mnist(dir, Split::test),
                        Catch::Contains("t10k-images-idx3-ubyte.gz") && Catch::Contains("14x56"));
  }
  SECTION("a split without images is rejected naming the file") {
    // Valid IDX files of 0 images: a run would train on nothing, or report the accuracy of no test images.
    write_gz(dir / "t10k-images-idx3-ubyte.gz", idx_bytes({0, 28, 28}, {}));
    write_raw(dir / "t10k-labels-idx1-ubyte", idx_bytes({0}, {}));
    REQUIRE_THROWS_AS(load_fashion_mnist(dir, Split::test), IdxError);
    REQUIRE_THROWS_WITH(load_fashion_mnist(dir, Split::test),
                        Catch::Contains("t10k-images-idx3-ubyte.gz") && Catch::Contains("holds no images"));
  }
  fs::remove_all(dir);
}

TEST_CASE("the installed FashionMNIST has the expected shapes, labels and pixels", "[data][fashion_mnist]") {
  const fs::path dir = "/usr/share/datasets/fashion-mnist";
  if (!fs::exists(dir / "train-images-idx3-ubyte.gz")) {
    WARN("FashionMNIST is not installed at " << dir << " (apt-get install dataset-fashion-mnist); skipped");
    return;
  }
  for (const auto& [split, n] :
       {std::pair{Split::train, int64_t(60000)}, std::pair{Split::test, int64_t(10000)}}) {
    const MnistDataset ds = load_fashion_mnist(dir, split);
    REQUIRE(ds.size() == n);
    REQUIRE(ds.sample_shape() == Shape{1, 28, 28});
    REQUIRE(ds.num_classes() == 10);
    // The classes are balanced, and the first sample of both splits is an ankle boot.
    std::vector<int64_t> per_class(10, 0);
    for (int64_t i = 0; i < n; ++i) ++per_class[std::size_t(ds.label(i))];
    for (int64_t count : per_class) REQUIRE(count == n / 10);
    REQUIRE(ds.label(0) == 9);

    Tensor<float> images;
    std::vector<int64_t> labels;
    const std::vector<int64_t> idx = {0, 1, n - 1};
    ds.get_batch(idx, images, labels);
    REQUIRE(images.shape() == Shape{3, 1, 28, 28});
    const auto [lo, hi] = std::minmax_element(images.data(), images.data() + images.numel());
    REQUIRE(*lo == 0.0f);
    REQUIRE(*hi == 1.0f);
    const auto raw = ds.pixels(0);
    REQUIRE(std::count(raw.begin(), raw.end(), uint8_t(0)) > 100);  // a dark background, not noise
  }
}

TEST_CASE("DataLoader yields every index exactly once per epoch", "[data][loader]") {
  for (int64_t n : {1, 10, 17, 64}) {
    for (int64_t bs : {1, 4, 5, 16, 17, 100}) {
      for (bool shuffle : {false, true}) {
        for (bool drop_last : {false, true}) {
          CAPTURE(n, bs, shuffle, drop_last);
          IotaDataset ds(n);
          DataLoader loader(ds, {.batch_size = bs, .shuffle = shuffle, .seed = 7, .drop_last = drop_last});
          const auto batches = collect_epoch(loader);
          const int64_t expected_batches = drop_last ? n / bs : (n + bs - 1) / bs;
          REQUIRE(loader.size() == expected_batches);
          REQUIRE(int64_t(batches.size()) == expected_batches);
          for (std::size_t k = 0; k < batches.size(); ++k) {
            if (k + 1 < batches.size() || drop_last || n % bs == 0)
              REQUIRE(int64_t(batches[k].size()) == bs);
            else
              REQUIRE(int64_t(batches[k].size()) == n % bs);
          }
          std::vector<int64_t> all = flatten(batches);
          // The batches follow epoch 0's order (the first `all.size()` entries of it, with drop_last).
          const std::vector<int64_t> order = loader.order(0);
          REQUIRE(all == std::vector<int64_t>(order.begin(), order.begin() + std::ptrdiff_t(all.size())));
          std::sort(all.begin(), all.end());
          REQUIRE(std::adjacent_find(all.begin(), all.end()) == all.end());  // no duplicates
          REQUIRE(int64_t(all.size()) == (drop_last ? n - n % bs : n));
          if (!drop_last) {
            std::vector<int64_t> expected(static_cast<std::size_t>(n));
            std::iota(expected.begin(), expected.end(), int64_t{0});
            REQUIRE(all == expected);
          }
          if (!shuffle) REQUIRE(flatten(batches) == std::vector<int64_t>(all.begin(), all.end()));
        }
      }
    }
  }
  IotaDataset empty(0);
  DataLoader none(empty, {.batch_size = 4});
  REQUIRE(none.size() == 0);
  REQUIRE(collect_epoch(none).empty());
}

TEST_CASE("DataLoader shuffling is reproducible by seed and differs across epochs", "[data][loader]") {
  IotaDataset ds(100);
  DataLoader a(ds, {.batch_size = 8, .shuffle = true, .seed = 42});
  DataLoader b(ds, {.batch_size = 8, .shuffle = true, .seed = 42});
  DataLoader c(ds, {.batch_size = 8, .shuffle = true, .seed = 43});

  REQUIRE(a.epoch() == 0);
  const auto a0 = flatten(collect_epoch(a));
  REQUIRE(a.epoch() == 1);  // each iteration advances the epoch
  const auto a1 = flatten(collect_epoch(a));
  const auto b0 = flatten(collect_epoch(b));
  const auto b1 = flatten(collect_epoch(b));
  const auto c0 = flatten(collect_epoch(c));
  std::vector<int64_t> sorted(100);
  std::iota(sorted.begin(), sorted.end(), int64_t{0});

  REQUIRE(a0 == b0);
  REQUIRE(a1 == b1);
  REQUIRE(a0 != a1);
  REQUIRE(a0 != c0);
  REQUIRE(a0 != sorted);
  REQUIRE(a0 == a.order(0));
  // Pinning the epoch replays it, from any loader with the same seed.
  REQUIRE(flatten(collect_epoch(a.epoch(0))) == a0);
  b.set_epoch(1);
  REQUIRE(flatten(collect_epoch(b)) == a1);
  // Epoch e does not depend on how many epochs ran before: a fresh loader jumps straight to it.
  DataLoader fresh(ds, {.batch_size = 8, .shuffle = true, .seed = 42});
  REQUIRE(flatten(collect_epoch(fresh.epoch(1))) == a1);
  // Without shuffling every epoch is in order.
  DataLoader seq(ds, {.batch_size = 8});
  REQUIRE(flatten(collect_epoch(seq)) == sorted);
  REQUIRE(flatten(collect_epoch(seq)) == sorted);
}

TEST_CASE("random_split gives disjoint, covering, reproducible splits", "[data][split]") {
  const auto parts = random_split(60000, {50000, 10000}, 1);
  REQUIRE(parts.size() == 2);
  REQUIRE(parts[0].size() == 50000);
  REQUIRE(parts[1].size() == 10000);
  std::vector<int64_t> all = parts[0];
  all.insert(all.end(), parts[1].begin(), parts[1].end());
  std::sort(all.begin(), all.end());
  std::vector<int64_t> expected(60000);
  std::iota(expected.begin(), expected.end(), int64_t{0});
  REQUIRE(all == expected);  // disjoint and covering
  REQUIRE(random_split(60000, {50000, 10000}, 1) == parts);
  REQUIRE(random_split(60000, {50000, 10000}, 2)[1] != parts[1]);
  REQUIRE_FALSE(std::is_sorted(parts[1].begin(), parts[1].end()));
  REQUIRE_THROWS_WITH(random_split(60000, {50000, 9999}, 1), Catch::Contains("59999"));
  REQUIRE_THROWS_AS(random_split(10, {12, -2}, 1), std::invalid_argument);
  const int64_t max = std::numeric_limits<int64_t>::max();
  REQUIRE_THROWS_WITH(random_split(0, {max, max, 2}, 1), Catch::Contains("more than an int64_t holds"));

  // Subsets view the dataset through the split's indices, and a loader can own a temporary Subset.
  IotaDataset ds(20);
  const auto subsets = random_split(ds, {15, 5}, 3);
  REQUIRE(subsets[1].size() == 5);
  REQUIRE(subsets[1].indices() == random_split(20, {15, 5}, 3)[1]);
  DataLoader loader(Subset<IotaDataset>(ds, subsets[1].indices()), {.batch_size = 2});
  std::vector<int64_t> seen;
  for (const Batch& b : loader)
    for (int64_t k = 0; k < b.size(); ++k) seen.push_back(int64_t(b.images.at({k, 0})));
  REQUIRE(seen == subsets[1].indices());
  REQUIRE_THROWS_AS(Subset<IotaDataset>(ds, {0, 20}), std::out_of_range);
}

TEST_CASE("DataLoader assembles batches on a worker thread and reuses their buffers", "[data][loader]") {
  IotaDataset ds(64);
  DataLoader loader(ds, {.batch_size = 4, .prefetch = 2});
  std::set<const float*> buffers;
  for (int epoch = 0; epoch < 3; ++epoch)
    for (const Batch& b : loader) buffers.insert(b.images.data());
  REQUIRE(ds.on_other_thread);
  REQUIRE(ds.calls == 3 * 16);
  REQUIRE(buffers.size() <= 3);  // prefetch + the consumer's, recycled across steps and epochs
}

TEST_CASE("DataLoader leaves a batch alone while a graph or a copy holds it", "[data][loader]") {
  // Losses of several batches summed before one backward(), as gradient accumulation in PyTorch: each
  // linear() saved its batch for the backward pass, so a recycled buffer would change the gradient.
  IotaDataset ds(12);
  DataLoader loader(ds, {.batch_size = 2});
  Variable<float> weight(Tensor<float>::ones({1, 2}), true);
  Variable<float> total(Tensor<float>::scalar(0.0f));
  std::vector<Tensor<float>> copies;
  for (const Batch& b : loader) {
    copies.push_back(b.images);  // a shallow copy, as one kept for a plot
    total = total + sum(linear(Variable<float>(b.images), weight));
  }
  total.backward();
  // d total / d weight = the column sums of all rows (i, -i) for i = 0..11.
  REQUIRE(weight.grad().at({0, 0}) == 66.0f);
  REQUIRE(weight.grad().at({0, 1}) == -66.0f);
  for (std::size_t i = 0; i < copies.size(); ++i) REQUIRE(copies[i].at({1, 0}) == float(2 * i + 1));
}

TEST_CASE("DataLoader stops its worker when the loop breaks early", "[data][loader]") {
  IotaDataset ds(10000);
  DataLoader loader(ds, {.batch_size = 1, .shuffle = true, .seed = 5, .prefetch = 2});
  int64_t seen = 0;
  for (const Batch& b : loader) {
    REQUIRE(b.size() == 1);
    if (++seen == 3) break;
  }
  REQUIRE(seen == 3);
  // The worker ran at most prefetch + 1 batches ahead, then stopped instead of assembling the whole epoch.
  REQUIRE(ds.calls <= 3 + 3);
  // The loader is usable again.
  auto it = loader.begin();
  REQUIRE(it != loader.end());
  REQUIRE(it->epoch == 1);
}

TEST_CASE("an exception while assembling a batch reaches the consumer", "[data][loader][errors]") {
  IotaDataset ds(40, /*throw_at_index=*/13);
  DataLoader loader(ds, {.batch_size = 4});
  std::vector<int64_t> seen;
  auto consume = [&] {
    for (const Batch& b : loader) seen.insert(seen.end(), b.indices.begin(), b.indices.end());
  };
  REQUIRE_THROWS_WITH(consume(), "boom at sample 13");
  // The batches before the failing one arrived in order; none after it.
  std::vector<int64_t> expected(12);
  std::iota(expected.begin(), expected.end(), int64_t{0});
  REQUIRE(seen == expected);

  IotaDataset first(8, /*throw_at_index=*/0);
  DataLoader fails_at_once(first, {.batch_size = 4});
  REQUIRE_THROWS_WITH(fails_at_once.begin(), "boom at sample 0");
  REQUIRE_THROWS_AS(DataLoader(ds, {.batch_size = 0}), std::invalid_argument);
}

TEST_CASE("TensorDataset batches the picked rows of any sample shape, with their labels",
          "[data][tensor_dataset]") {
  // Sample i of shape [2, 3] holds 100 * i + j, j = 0..5; its label is 10 - i.
  const int64_t n = 7;
  std::vector<float> values;
  std::vector<int64_t> labels;
  for (int64_t i = 0; i < n; ++i) {
    for (int64_t j = 0; j < 6; ++j) values.push_back(float(100 * i + j));
    labels.push_back(10 - i);
  }
  const TensorDataset dataset(Tensor<float>::from_vector(values, {n, 2, 3}), labels);
  REQUIRE(dataset.size() == n);
  REQUIRE(dataset.sample_shape() == Shape{2, 3});

  Tensor<float> batch;
  std::vector<int64_t> batch_labels;
  const std::vector<int64_t> picked{5, 0, 5, 3};
  dataset.get_batch(picked, batch, batch_labels);
  REQUIRE(batch.shape() == Shape{4, 2, 3});
  for (std::size_t k = 0; k < picked.size(); ++k) {
    CHECK(batch_labels[k] == 10 - picked[k]);
    for (int64_t j = 0; j < 6; ++j) CHECK(batch.data()[int64_t(k) * 6 + j] == float(100 * picked[k] + j));
  }

  // Through a DataLoader: every sample once per epoch, each with its own label.
  DataLoader loader(dataset, {.batch_size = 3, .shuffle = true, .seed = 4});
  std::vector<int64_t> seen;
  for (const Batch& b : loader)
    for (int64_t k = 0; k < b.size(); ++k) {
      const int64_t i = 10 - b.labels[std::size_t(k)];
      CHECK(b.images.data()[k * 6] == float(100 * i));
      seen.push_back(i);
    }
  std::sort(seen.begin(), seen.end());
  std::vector<int64_t> all(n);
  std::iota(all.begin(), all.end(), 0);
  CHECK(seen == all);

  // A strided tensor (a transposed view) is taken row by row as it reads, not as it is stored.
  const Tensor<float> rows = Tensor<float>::from_vector({1, 2, 3, 4, 5, 6}, {2, 3});
  const TensorDataset transposed(rows.transpose(0, 1), {7, 8, 9});
  transposed.get_batch(std::vector<int64_t>{1}, batch, batch_labels);
  CHECK(batch.shape() == Shape{1, 2});
  CHECK(batch.data()[0] == 2);
  CHECK(batch.data()[1] == 5);
  CHECK(batch_labels == std::vector<int64_t>{8});
}

TEST_CASE("TensorDataset refuses mismatched counts and indices out of range, naming them",
          "[data][tensor_dataset][errors]") {
  CHECK_THROWS_WITH(TensorDataset(Tensor<float>::zeros({4, 3}), {1, 2, 3}),
                    Catch::Contains("[4, 3]") && Catch::Contains("3 labels"));
  CHECK_THROWS_WITH(TensorDataset(Tensor<float>::zeros({}), {}),
                    Catch::Contains("TensorDataset: samples of shape []"));
  const TensorDataset dataset(Tensor<float>::zeros({4, 3}), {0, 1, 2, 3});
  Tensor<float> batch;
  std::vector<int64_t> labels;
  CHECK_THROWS_WITH(dataset.get_batch(std::vector<int64_t>{0, 4}, batch, labels),
                    Catch::Contains("index 4 out of range for 4 samples"));
  CHECK_THROWS_AS(dataset.get_batch(std::vector<int64_t>{-1}, batch, labels), std::out_of_range);
}
