#include <sys/stat.h>

#include <catch2/catch.hpp>
#include <cstdint>
#include <cstring>
#include <filesystem>
#include <fstream>
#include <map>
#include <optional>
#include <string>
#include <vector>

#include "fixture.hpp"
#include "peak_memory.hpp"
#include "sumi/io/safetensors.hpp"

using namespace sumi;
namespace fs = std::filesystem;

namespace {
fs::path temp_path(const std::string& name) {
  return fs::temp_directory_path() / ("sumi_test_" + name);
}
void write_bytes(const fs::path& p, const std::string& bytes) {
  std::ofstream(p, std::ios::binary) << bytes;
}
std::string read_bytes(const fs::path& p) {
  std::ifstream in(p, std::ios::binary);
  return {std::istreambuf_iterator<char>(in), {}};
}
// A safetensors file of this header (its length in front) and data section.
void write_with_header(const fs::path& p, const std::string& header, const std::string& data) {
  const uint64_t length = header.size();
  write_bytes(p, std::string(reinterpret_cast<const char*>(&length), 8) + header + data);
}
}  // namespace

TEST_CASE("safetensors round-trips tensors, scalars and metadata", "[io]") {
  const fs::path path = temp_path("roundtrip.safetensors");
  Generator gen(3);
  const Tensor<float> a = Tensor<float>::randn({2, 3, 4}, gen);
  const Tensor<double> b = Tensor<double>::rand({5}, gen);
  io::write_safetensors(path,
                        {{"a", io::TensorRecord::from_tensor(a)},
                         {"b", io::TensorRecord::from_tensor(b)},
                         {"n", io::TensorRecord::from_int64(42)}},
                        {{"format", "pt"}});
  const io::SafetensorsFile f = io::read_safetensors(path);
  REQUIRE(f.metadata.at("format") == "pt");
  const Tensor<float> a2 = f.tensor<float>("a");
  REQUIRE(a2.shape() == a.shape());
  for (int64_t i = 0; i < a.numel(); ++i) REQUIRE(a2.data()[i] == a.data()[i]);
  REQUIRE(f.record("b").dtype == "F64");
  REQUIRE(f.tensor<double>("b").at({4}) == b.at({4}));
  REQUIRE(f.int64_scalar("n") == 42);
  REQUIRE_FALSE(fs::exists(path.string() + ".tmp"));
  // The content checksum is in the file, not among the metadata read back.
  REQUIRE(f.metadata.size() == 1);
  REQUIRE(read_bytes(path).find(std::string("\"") + io::kChecksumKey + "\":\"") != std::string::npos);
  // Files without data, or with empty tensors among others, read back; an empty tensor's null data pointer
  // must not restart the checksum (zlib reads a null buffer as a request for its initial value).
  io::write_safetensors(path, {});
  REQUIRE(io::read_safetensors(path).tensors.empty());
  io::write_safetensors(path, {}, {{"epoch", "3"}});
  REQUIRE(io::read_safetensors(path).metadata.at("epoch") == "3");
  io::write_safetensors(path, {{"a", io::TensorRecord::from_tensor(Tensor<float>::zeros({0, 3}))},
                               {"b", io::TensorRecord::from_tensor(b)}});
  REQUIRE(io::read_safetensors(path).tensor<double>("b").at({4}) == b.at({4}));
  io::write_safetensors(path, {{"a", io::TensorRecord::from_tensor(Tensor<float>::zeros({0}))}},
                        {{"epoch", "3"}});
  std::string header_changed = read_bytes(path);
  header_changed[header_changed.find("\"3\"") + 1] = '2';
  write_bytes(path, header_changed);
  REQUIRE_THROWS_WITH(io::read_safetensors(path), Catch::Contains("checksum mismatch"));
  fs::remove(path);
}

TEST_CASE("a sumi safetensors file with any bit flipped is refused, naming the file", "[io][errors]") {
  const fs::path path = temp_path("flips.safetensors"), bad = temp_path("flipped.safetensors");
  Generator gen(5);
  io::write_safetensors(path,
                        {{"w", io::TensorRecord::from_tensor(Tensor<float>::randn({3, 2}, gen))},
                         {"step", io::TensorRecord::from_int64(7)}},
                        {{"epoch", "3"}});
  const std::string bytes = read_bytes(path);
  // A flip in a weight or a metadata value keeps the file well-formed: only the checksum can tell.
  std::string weight_flipped = bytes;
  weight_flipped[bytes.size() - 9] ^= 0x01;  // the last float of w (the I64 step is last)
  write_bytes(bad, weight_flipped);
  REQUIRE_THROWS_WITH(io::read_safetensors(bad),
                      Catch::Contains("flipped.safetensors") && Catch::Contains("checksum mismatch"));
  std::string epoch_flipped = bytes;
  epoch_flipped[bytes.find("\"3\"") + 1] = '2';
  write_bytes(bad, epoch_flipped);
  REQUIRE_THROWS_WITH(io::read_safetensors(bad), Catch::Contains("checksum mismatch"));
  // Every other flip is refused too, the checksum's own key included: with it damaged the file would read
  // as one written without a checksum (by another tool), unverified.
  const std::size_t key = bytes.find(io::kChecksumKey), key_end = key + std::strlen(io::kChecksumKey);
  for (std::size_t i = 0; i < bytes.size(); ++i)
    for (int bit = 0; bit < 8; ++bit) {
      std::string flipped = bytes;
      flipped[i] = char(flipped[i] ^ (1 << bit));
      write_bytes(bad, flipped);
      INFO("byte " << i << " bit " << bit);
      std::string error;
      try {
        io::read_safetensors(bad);
      } catch (const io::SafetensorsError& e) {
        error = e.what();
      }
      REQUIRE_THAT(error, Catch::Contains(bad.string()));
      // A key still valid JSON text, and not the other metadata key's name: the damaged key is named.
      const char c = flipped[i];
      if (i >= key && i < key_end && c >= ' ' && c < 0x7f && c != '"' && c != '\\')
        REQUIRE_THAT(error, Catch::Contains("is the checksum key 'sumi.crc32' with one byte changed"));
    }
  const io::SafetensorsFile f = io::read_safetensors(path);
  REQUIRE(f.tensor<float>("w").numel() == 6);
  REQUIRE(f.int64_scalar("step") == 7);
  REQUIRE(f.metadata == std::map<std::string, std::string>{{"epoch", "3"}});
  fs::remove(path);
  fs::remove(bad);
}

TEST_CASE("safetensors reader names the file and the problem", "[io][errors]") {
  const fs::path good = temp_path("good.safetensors");
  io::write_safetensors(good, {{"w", io::TensorRecord::from_tensor(Tensor<float>::ones({4, 4}))}});
  const std::string bytes = read_bytes(good);
  const fs::path bad = temp_path("bad.safetensors");

  REQUIRE_THROWS_WITH(io::read_safetensors(temp_path("missing.safetensors")),
                      Catch::Contains("missing.safetensors") && Catch::Contains("cannot open"));
  write_bytes(bad, bytes.substr(0, 5));
  REQUIRE_THROWS_WITH(io::read_safetensors(bad),
                      Catch::Contains("bad.safetensors") && Catch::Contains("truncated"));
  write_bytes(bad, bytes.substr(0, bytes.size() - 10));
  REQUIRE_THROWS_WITH(io::read_safetensors(bad), Catch::Contains("'w'") && Catch::Contains("truncated"));
  std::string corrupt = bytes;
  corrupt[9] = '#';
  write_bytes(bad, corrupt);
  REQUIRE_THROWS_WITH(io::read_safetensors(bad), Catch::Contains("not valid JSON"));
  // Another kind of file: its first bytes would read as an absurd header length.
  write_bytes(bad, "epoch,train_loss,val_mse\n1,0.0966,0.0575\n");
  REQUIRE_THROWS_WITH(io::read_safetensors(bad),
                      Catch::Contains("bad.safetensors") && Catch::Contains("not a safetensors file"));
  // A folder, and headers whose tensors overlap, leave a gap or stop before the end of the data.
  REQUIRE_THROWS_WITH(io::read_safetensors(fs::temp_directory_path()), Catch::Contains("is a folder"));
  auto with_header = [&](const std::string& header, std::size_t data_bytes) {
    const uint64_t length = header.size();
    std::string file(reinterpret_cast<const char*>(&length), 8);
    write_bytes(bad, file + header + std::string(data_bytes, '\0'));
  };
  with_header(R"({"a":{"dtype":"F32","shape":[2],"data_offsets":[0,8]},)"
              R"("b":{"dtype":"F32","shape":[2],"data_offsets":[4,12]}})",
              12);
  REQUIRE_THROWS_WITH(io::read_safetensors(bad),
                      Catch::Contains("bad.safetensors") && Catch::Contains("'a' and 'b' overlap"));
  with_header(R"({"a":{"dtype":"F32","shape":[1],"data_offsets":[0,4]},)"
              R"("b":{"dtype":"F32","shape":[1],"data_offsets":[8,12]}})",
              12);
  REQUIRE_THROWS_WITH(io::read_safetensors(bad), Catch::Contains("4 unused bytes before tensor 'b'"));
  with_header(R"({"a":{"dtype":"F32","shape":[1],"data_offsets":[0,4]}})", 6);
  REQUIRE_THROWS_WITH(io::read_safetensors(bad), Catch::Contains("2 bytes after the last tensor"));
  with_header(R"({"a":{"dtype":"F32","shape":[1],"data_offsets":[0,4]},)"
              R"("e":{"dtype":"F32","shape":[0],"data_offsets":[4,4]}})",
              4);
  REQUIRE(io::read_safetensors(bad).tensor<float>("a").numel() == 1);
  // Names and dtypes with control characters (JSON escapes) are shown, not allowed to end the message.
  with_header(R"({"a\u0000b":{"dtype":"F\u00003","shape":[1],"data_offsets":[0,4]}})", 4);
  REQUIRE_THROWS_WITH(io::read_safetensors(bad),
                      Catch::EndsWith("tensor 'a\\x00b' has unknown dtype F\\x003"));
  // Shapes whose byte count overflows (2^62 floats are 2^64 bytes, which wraps to 0) or that have negative
  // sizes (whose product can look right) are refused naming the file and the tensor.
  with_header(R"({"huge":{"dtype":"F32","shape":[4611686018427387904],"data_offsets":[0,0]}})", 0);
  REQUIRE_THROWS_WITH(
      io::read_safetensors(bad),
      Catch::Contains("bad.safetensors") && Catch::Contains("'huge' of shape [4611686018427387904]"));
  with_header(R"({"w":{"dtype":"F32","shape":[4294967296,4294967296],"data_offsets":[0,0]}})", 0);
  REQUIRE_THROWS_WITH(io::read_safetensors(bad),
                      Catch::Contains("bad.safetensors") && Catch::Contains("'w'"));
  with_header(R"({"neg":{"dtype":"F32","shape":[-1,-1],"data_offsets":[0,4]}})", 4);
  REQUIRE_THROWS_WITH(io::read_safetensors(bad), Catch::Contains("'neg' has a negative size"));
  with_header(R"({"wrap":{"dtype":"F32","shape":[18446744073709551615],"data_offsets":[0,4]}})", 4);
  REQUIRE_THROWS_WITH(io::read_safetensors(bad),
                      Catch::Contains("'wrap' has the size 18446744073709551615 in its shape"));
  // The format forbids repeated keys (the parser would keep the last: another reader, the first), and a
  // deeply nested header would overflow the stack of whatever prints or copies it; both are refused.
  with_header(R"({"a":{"dtype":"F32","shape":[1],"data_offsets":[0,4]},)"
              R"("a":{"dtype":"I32","shape":[1],"data_offsets":[0,4]}})",
              4);
  REQUIRE_THROWS_WITH(io::read_safetensors(bad),
                      Catch::Contains("bad.safetensors") && Catch::Contains("the key 'a' twice"));
  with_header(R"({"__metadata__":{"epoch":"1","epoch":"2"}})", 0);
  REQUIRE_THROWS_WITH(io::read_safetensors(bad), Catch::Contains("the key 'epoch' twice"));
  const std::string deep = std::string(100000, '[') + std::string(100000, ']');
  for (const std::string& header :
       {R"({"__metadata__":{"x":)" + deep + "}}", R"({"w":{"dtype":"F32","shape":)" + deep + "}}"}) {
    with_header(header, 0);
    REQUIRE_THROWS_WITH(io::read_safetensors(bad),
                        Catch::Contains("bad.safetensors") && Catch::Contains("nests deeper than 8 levels"));
  }
  with_header(R"({"__metadata__":{"x":[[[[1]]]]}})", 0);  // nested, but not too deep: kept as JSON text
  REQUIRE(io::read_safetensors(bad).metadata.at("x") == "[[[[1]]]]");
  // Sizes and offsets that are not integers are refused, not truncated (2.9 would read as 2).
  with_header(R"({"w":{"dtype":"F32","shape":[2.9],"data_offsets":[0,8]}})", 8);
  REQUIRE_THROWS_WITH(
      io::read_safetensors(bad),
      Catch::Contains("bad.safetensors") && Catch::Contains("'w' has shape [2.9], not a list of integers"));
  with_header(R"({"w":{"dtype":"F32","shape":[2],"data_offsets":[0,8.0]}})", 8);
  REQUIRE_THROWS_WITH(io::read_safetensors(bad),
                      Catch::Contains("'w' has data_offsets [0,8.0], not a list of non-negative integers"));
  with_header(R"({"w":{"dtype":"F32","shape":2,"data_offsets":[0,4]}})", 4);
  REQUIRE_THROWS_WITH(io::read_safetensors(bad), Catch::Contains("'w' has shape 2, not a list"));
  // Metadata that is not an object of strings.
  for (const char* metadata : {R"("oops")", "[1,2]", "5"}) {
    with_header(std::string(R"({"__metadata__":)") + metadata + "}", 0);
    REQUIRE_THROWS_AS(io::read_safetensors(bad), io::SafetensorsError);
    REQUIRE_THROWS_WITH(io::read_safetensors(bad), Catch::Contains("bad.safetensors") &&
                                                       Catch::Contains("__metadata__ is not a JSON object"));
  }
  // An undefined tensor cannot be written (it would not read back), nor one named like the metadata.
  REQUIRE_THROWS_WITH(io::TensorRecord::from_tensor(Tensor<float>()), Catch::Contains("undefined"));
  REQUIRE_THROWS_WITH(
      io::write_safetensors(bad, {{"__metadata__", io::TensorRecord::from_tensor(Tensor<float>::ones({1}))}}),
      Catch::Contains("bad.safetensors") && Catch::Contains("'__metadata__'"));
  // Records whose dtype, shape and bytes disagree would not read back; the checksum entry is the writer's.
  io::TensorRecord short_record = io::TensorRecord::from_tensor(Tensor<float>::ones({2}));
  short_record.shape = {3};
  REQUIRE_THROWS_WITH(io::write_safetensors(bad, {{"v", short_record}}),
                      Catch::Contains("bad.safetensors") &&
                          Catch::Contains("tensor 'v' of shape [3] and dtype F32 has 8 bytes of data"));
  short_record.shape = {2};
  short_record.dtype = "Q99";
  REQUIRE_THROWS_WITH(io::write_safetensors(bad, {{"v", short_record}}),
                      Catch::Contains("tensor 'v' has unknown dtype Q99"));
  io::TensorRecord huge;  // 2^62 floats are 2^64 bytes, which wraps to the 0 bytes it has
  huge.dtype = "F32";
  for (const Shape& shape : {Shape{int64_t(1) << 62}, Shape{int64_t(1) << 40, int64_t(1) << 40}}) {
    huge.shape = shape;
    REQUIRE_THROWS_AS(io::write_safetensors(bad, {{"h", huge}}), std::invalid_argument);
    REQUIRE_THROWS_WITH(io::write_safetensors(bad, {{"h", huge}}),
                        Catch::Contains("bad.safetensors") && Catch::Contains("tensor 'h' of shape"));
  }
  REQUIRE_THROWS_WITH(
      io::write_safetensors(bad, {}, {{io::kChecksumKey, "0"}}),
      Catch::Contains("bad.safetensors") && Catch::Contains("is written by write_safetensors"));
  // Names and metadata are JSON strings, which must be UTF-8: the error names the file.
  REQUIRE_THROWS_WITH(
      io::write_safetensors(bad, {{"w", io::TensorRecord::from_tensor(Tensor<float>::ones({1}))}},
                            {{"note", "caf\xe9"}}),
      Catch::Contains("bad.safetensors") && Catch::Contains("must be UTF-8"));
  fs::remove(good);
  fs::remove(bad);
}

TEST_CASE("safetensors reader takes regular files only", "[io][errors]") {
  // A pipe would block the reader until a writer came: refused at once, naming it.
  const fs::path pipe = temp_path("pipe.safetensors");
  fs::remove(pipe);
  REQUIRE(::mkfifo(pipe.c_str(), 0600) == 0);
  REQUIRE_THROWS_AS(io::read_safetensors(pipe), io::SafetensorsError);
  REQUIRE_THROWS_WITH(io::read_safetensors(pipe),
                      Catch::Contains("pipe.safetensors") && Catch::Contains("is not a regular file"));
  fs::remove(pipe);
}

TEST_CASE("safetensors reader checks the layout before copying any tensor", "[io][errors]") {
  // 400 entries claiming the same 8 MiB span: copying each before the overlap is found would take 3.2 GiB
  // for an 8 MiB file.
  const fs::path bad = temp_path("overlap.safetensors");
  const int64_t span = int64_t(8) << 20;
  std::string header = "{";
  for (int i = 0; i < 400; ++i) {
    header += i ? ",\"t" : "\"t";  // appended piecewise: GCC 12 warns falsely (-Wrestrict) about "," + string
    header += std::to_string(1000 + i) + R"(":{"dtype":"U8","shape":[)" + std::to_string(span) +
              R"(],"data_offsets":[0,)" + std::to_string(span) + "]}";
  }
  write_with_header(bad, header + "}", std::string(std::size_t(span), '\x01'));
  const double before = test::peak_memory_mib();
  REQUIRE_THROWS_WITH(io::read_safetensors(bad), Catch::Contains("overlap.safetensors") &&
                                                     Catch::Contains("'t1000' and 't1001' overlap"));
  CHECK(test::peak_memory_mib() - before < 512);
  fs::remove(bad);
}

TEST_CASE("safetensors reader reads every dtype the format defines, converting the integer ones", "[io]") {
  const fs::path path = temp_path("dtypes.safetensors");
  std::string header = "{", data;
  // Each tensor holds two elements: 1 and the dtype's largest value (or -1 for the signed ones).
  const auto add = [&](const std::string& name, const std::string& dtype, const std::string& bytes) {
    header += header.size() > 1 ? ",\"" : "\"";
    header += name + R"(":{"dtype":")" + dtype + R"(","shape":[2],"data_offsets":[)" +
              std::to_string(data.size()) + "," + std::to_string(data.size() + bytes.size()) + "]}";
    data += bytes;
  };
  const auto two = [](auto first, auto second) {
    std::string bytes(2 * sizeof first, '\0');
    std::memcpy(bytes.data(), &first, sizeof first);
    std::memcpy(bytes.data() + sizeof first, &second, sizeof second);
    return bytes;
  };
  add("bool", "BOOL", two(uint8_t(1), uint8_t(0)));
  add("f16", "F16", two(uint16_t(0x3c00), uint16_t(0x4000)));  // 1 and 2
  add("bf16", "BF16", two(uint16_t(0x3f80), uint16_t(0x4000)));
  add("f8", "F8_E4M3", two(uint8_t(0x38), uint8_t(0x40)));
  add("i16", "I16", two(int16_t(1), int16_t(-1)));
  add("i32", "I32", two(int32_t(1), int32_t(-1)));
  add("i8", "I8", two(int8_t(1), int8_t(-1)));
  add("u16", "U16", two(uint16_t(1), uint16_t(65535)));
  add("u32", "U32", two(uint32_t(1), uint32_t(4294967295u)));
  add("u64", "U64", two(uint64_t(1), uint64_t(1) << 63));
  add("u8", "U8", two(uint8_t(1), uint8_t(255)));
  write_with_header(path, header + "}", data);
  const io::SafetensorsFile file = io::read_safetensors(path);
  REQUIRE(file.tensors.size() == 11);
  const auto values = [&](const std::string& name) {
    const Tensor<double> t = file.tensor<double>(name);
    return std::vector<double>(t.data(), t.data() + t.numel());
  };
  CHECK(values("bool") == std::vector<double>{1, 0});
  CHECK(values("i8") == std::vector<double>{1, -1});
  CHECK(values("i16") == std::vector<double>{1, -1});
  CHECK(values("i32") == std::vector<double>{1, -1});
  CHECK(values("u8") == std::vector<double>{1, 255});
  CHECK(values("u16") == std::vector<double>{1, 65535});
  CHECK(values("u32") == std::vector<double>{1, 4294967295.0});
  CHECK(values("u64") == std::vector<double>{1, 9223372036854775808.0});
  for (const char* name : {"f16", "bf16", "f8"})
    CHECK_THROWS_WITH(file.tensor<float>(name), Catch::Contains("dtypes.safetensors") &&
                                                    Catch::Contains(std::string("'") + name + "'") &&
                                                    Catch::Contains("cannot convert"));
  fs::remove(path);
}

TEST_CASE("fixtures written by PyTorch's side read back and regenerate their inputs", "[io][fixtures]") {
  test::Fixture fx("conv2d");
  // A stored input equals its regenerated fill (checked inside input()), and subsampled metadata parses.
  const Tensor<float> x = fx.input<float>("ae.enc.conv1.x");
  REQUIRE(x.shape() == Shape{2, 1, 28, 28});
  REQUIRE(fx.shape("dcgan64.D4.w") == Shape{512, 256, 4, 4});
  const Tensor<float> w = fx.input<float>("dcgan64.D4.w");
  fx.require_close("dcgan64.D4.w", w, 1e-7);
}
