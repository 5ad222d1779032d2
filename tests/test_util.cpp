// Tests for sumi/util: timer, memory, atomic files, JSON files, CSV, the command-line parser and the progress
// bar.
#include <sys/stat.h>
#include <unistd.h>

#include <algorithm>
#include <catch2/catch.hpp>
#include <chrono>
#include <cstdio>
#include <filesystem>
#include <fstream>
#include <limits>
#include <sstream>
#include <string>
#include <thread>
#include <vector>

#include "sumi/util/atomic_file.hpp"
#include "sumi/util/cli.hpp"
#include "sumi/util/csv.hpp"
#include "sumi/util/dense_ranks.hpp"
#include "sumi/util/folder_lock.hpp"
#include "sumi/util/json_file.hpp"
#include "sumi/util/memory.hpp"
#include "sumi/util/progress_bar.hpp"
#include "sumi/util/read_file.hpp"
#include "sumi/util/timer.hpp"

namespace fs = std::filesystem;
using namespace sumi::util;

namespace {

// A fresh directory per test, removed afterwards.
struct TempDir {
  fs::path path;
  TempDir() {
    static int counter = 0;
    path = fs::temp_directory_path() /
           ("sumi_test_util_" + std::to_string(::getpid()) + "_" + std::to_string(counter++));
    fs::remove_all(path);
    fs::create_directories(path);
  }
  ~TempDir() {
    std::error_code ignored;
    fs::remove_all(path, ignored);
  }
  fs::path operator/(const std::string& name) const { return path / name; }
};

std::string read_file(const fs::path& path) {
  std::ifstream in(path, std::ios::binary);
  std::ostringstream content;
  content << in.rdbuf();
  return content.str();
}

std::vector<std::string> directory_entries(const fs::path& dir) {
  std::vector<std::string> names;
  for (const auto& entry : fs::directory_iterator(dir)) names.push_back(entry.path().filename().string());
  std::sort(names.begin(), names.end());
  return names;
}

std::vector<std::string> split_lines(const std::string& text) {
  std::vector<std::string> lines;
  std::istringstream in(text);
  for (std::string line; std::getline(in, line);) lines.push_back(line);
  return lines;
}

// Runs a parse over the given arguments (program name added) and returns the CliError it throws.
template <class Setup>
CliError parse_error(Setup setup, std::vector<std::string> args) {
  ArgParser cli("test");
  setup(cli);
  std::ostringstream help;
  try {
    cli.parse(std::span<const std::string>(args), help);
  } catch (const CliError& error) {
    return error;
  }
  FAIL("expected a CliError");
  return CliError("", "");
}

}  // namespace

TEST_CASE("dense_ranks numbers the distinct values in ascending order", "[util]") {
  const auto ints = dense_ranks(std::vector<int64_t>{100, 3, 7, 3, 100});
  CHECK(ints.distinct == std::vector<int64_t>{3, 7, 100});
  CHECK(ints.ranks == std::vector<int64_t>{2, 0, 1, 0, 2});
  const auto texts = dense_ranks(std::vector<std::string>{"shirt", "bag", "shirt"});
  CHECK(texts.distinct == std::vector<std::string>{"bag", "shirt"});
  CHECK(texts.ranks == std::vector<int64_t>{1, 0, 1});
  CHECK(dense_ranks(std::vector<int>{}).ranks.empty());
}

TEST_CASE("timer measures elapsed time, laps and resets", "[util][timer]") {
  Timer timer;
  std::this_thread::sleep_for(std::chrono::milliseconds(20));
  const double first_lap = timer.lap();
  CHECK(first_lap >= 0.019);
  CHECK(first_lap < 5.0);
  std::this_thread::sleep_for(std::chrono::milliseconds(10));
  const double second_lap = timer.lap();
  CHECK(second_lap >= 0.009);
  CHECK(second_lap < first_lap + 5.0);
  const double total = timer.elapsed_seconds();
  CHECK(total >= first_lap + second_lap);
  CHECK(timer.elapsed_milliseconds() >= 1000.0 * total);
  timer.reset();
  CHECK(timer.elapsed_seconds() < total);
}

TEST_CASE("max_rss_mb reports the peak resident set in MiB", "[util][memory]") {
  // 96 MiB, every page touched by a volatile write, which no compiler may drop with the allocation (clang
  // removes a vector that is filled and read back only once).
  std::vector<char> block(std::size_t(96) << 20);
  volatile char* pages = block.data();
  for (std::size_t i = 0; i < block.size(); i += 4096) pages[i] = 1;
  const double peak = max_rss_mb();
  CHECK(peak >= 96.0);    // the block alone is resident
  CHECK(peak < 1 << 20);  // under a TiB: KiB were converted, not taken as bytes
  // Linux also reports the high-water mark in /proc/self/status (kB); both must agree.
  std::ifstream status("/proc/self/status");
  for (std::string line; std::getline(status, line);)
    if (line.rfind("VmHWM:", 0) == 0) CHECK(peak == Approx(std::stod(line.substr(6)) / 1024.0).margin(8.0));
}

TEST_CASE("write_file_atomically replaces content and leaves no temporary file", "[util][atomic_file]") {
  TempDir dir;
  const fs::path target = dir / "result.txt";
  write_file_atomically(target, "first version\n");
  CHECK(read_file(target) == "first version\n");
  write_file_atomically(target, std::string_view("second"));
  CHECK(read_file(target) == "second");
  write_file_atomically(target, [](std::ostream& out) {
    for (int i = 0; i < 100000; ++i) out << i << '\n';  // more than the internal buffer
  });
  const std::string content = read_file(target);
  CHECK(content.size() == 588890);
  CHECK(content.substr(0, 6) == "0\n1\n2\n");
  CHECK(content.substr(content.size() - 6) == "99999\n");
  CHECK(directory_entries(dir.path) == std::vector<std::string>{"result.txt"});
}

TEST_CASE("write_file_atomically keeps the old file when the writer throws", "[util][atomic_file]") {
  TempDir dir;
  const fs::path target = dir / "keep.txt";
  write_file_atomically(target, "original");
  CHECK_THROWS_WITH(write_file_atomically(target,
                                          [](std::ostream& out) {
                                            out << "partial";
                                            throw std::runtime_error("writer failed");
                                          }),
                    "writer failed");
  CHECK(read_file(target) == "original");
  CHECK(directory_entries(dir.path) == std::vector<std::string>{"keep.txt"});
}

TEST_CASE("threads writing one path at once each leave a whole file", "[util][atomic_file]") {
  TempDir dir;
  const fs::path target = dir / "shared.txt";
  constexpr int kThreads = 4, kRounds = 50;
  std::vector<std::thread> writers;
  for (int t = 0; t < kThreads; ++t)
    writers.emplace_back([&, t] {
      const std::string line(1000, char('a' + t));  // a file of one thread's letter only
      for (int round = 0; round < kRounds; ++round)
        write_file_atomically(target, [&](std::ostream& out) {
          for (int i = 0; i < 50; ++i) out << line << '\n';
        });
    });
  for (auto& w : writers) w.join();
  const std::string content = read_file(target);
  REQUIRE(content.size() == 50 * 1001);
  CHECK(std::count(content.begin(), content.end(), content.front()) == 50 * 1000);
  CHECK(directory_entries(dir.path) == std::vector<std::string>{"shared.txt"});
}

TEST_CASE("write_file_atomically into a missing directory names the path", "[util][atomic_file]") {
  TempDir dir;
  const fs::path target = dir / "no_such_dir" / "out.json";
  try {
    write_file_atomically(target, "x");
    FAIL("expected AtomicWriteError");
  } catch (const AtomicWriteError& error) {
    CHECK_THAT(error.what(), Catch::Contains(target.string()));
    CHECK_THAT(error.what(), Catch::Contains("No such file or directory"));
  }
  CHECK(directory_entries(dir.path).empty());
  CHECK_FALSE(fs::exists(target));
}

TEST_CASE("temporary files are new, exclusive files with room for long target names", "[util][atomic_file]") {
  TempDir dir;
  const fs::path target = dir / "model.safetensors";
  const auto [first, first_fd] = detail::create_temp_sibling(target);
  const auto [second, second_fd] = detail::create_temp_sibling(target);
  ::close(first_fd);
  ::close(second_fd);
  CHECK(first != second);  // two writers of one path never share a temporary file
  for (const fs::path& temp : {first, second}) {
    CHECK(temp.parent_path() == dir.path);
    CHECK(temp.filename().string().rfind("model.safetensors.tmp.", 0) == 0);
    CHECK(fs::is_regular_file(fs::symlink_status(temp)));
  }
  // A name near NAME_MAX (255) still leaves room for the suffix.
  const fs::path long_target = dir / (std::string(250, 'n') + ".csv");
  write_file_atomically(long_target, "long");
  CHECK(read_file(long_target) == "long");
}

TEST_CASE("temporary files a stopped writer left are removed, and nothing else", "[util][atomic_file]") {
  TempDir dir;
  const auto [made, made_fd] = detail::create_temp_sibling(dir / "model.safetensors");
  ::close(made_fd);
  for (const char* name :
       {"metrics.csv.tmp.0123456789abcdef", "a.tmp.0123456789ABCDEF", "b.tmp.0123456789abcde",
        ".tmp.0123456789abcdef", "c.tmp.0123456789abcdefa", "metrics.csv", "target"})
    write_file_atomically(dir / name, "x");
  fs::create_directories(dir / "d.tmp.0123456789abcdef");
  fs::create_directories(dir / "sub");
  write_file_atomically(dir / "sub" / "e.tmp.0123456789abcdef", "x");
  fs::create_symlink(dir / "target", dir / "l.tmp.0123456789abcdef");

  const std::vector<std::string> removed = remove_abandoned_temporary_files(dir.path);
  CHECK(removed == std::vector<std::string>{"metrics.csv.tmp.0123456789abcdef", made.filename().string()});
  CHECK(directory_entries(dir.path) ==
        std::vector<std::string>{".tmp.0123456789abcdef", "a.tmp.0123456789ABCDEF", "b.tmp.0123456789abcde",
                                 "c.tmp.0123456789abcdefa", "d.tmp.0123456789abcdef",
                                 "l.tmp.0123456789abcdef", "metrics.csv", "sub", "target"});
  CHECK(directory_entries(dir / "sub") == std::vector<std::string>{"e.tmp.0123456789abcdef"});
  CHECK(remove_abandoned_temporary_files(dir.path).empty());

  // A write in progress (its writer alive, here this process) is left alone, and completes.
  write_file_atomically(dir / "live.csv", [&](std::ostream& out) {
    out << "a,b\n";
    out.flush();
    const std::vector<std::string> entries = directory_entries(dir.path);
    CHECK(std::count_if(entries.begin(), entries.end(),
                        [](const std::string& e) { return e.starts_with("live.csv.tmp."); }) == 1);
    CHECK(remove_abandoned_temporary_files(dir.path).empty());
    out << "1,2\n";
  });
  CHECK(read_file(dir / "live.csv") == "a,b\n1,2\n");
}

TEST_CASE("write_file_atomically keeps the permissions and never writes through a link",
          "[util][atomic_file]") {
  TempDir dir;
  const fs::path target = dir / "private.json";
  write_file_atomically(target, "v1");
  fs::permissions(target, fs::perms::owner_read | fs::perms::owner_write);
  write_file_atomically(target, "v2");
  CHECK(read_file(target) == "v2");
  CHECK(fs::status(target).permissions() == (fs::perms::owner_read | fs::perms::owner_write));

  // A link at the target is replaced by the new file; the file it named is left alone.
  fs::create_directory(dir / "store");
  write_file_atomically(dir / "store" / "weights.bin", "old");
  fs::create_symlink(fs::path("store") / "weights.bin", dir / "weights.bin");
  write_file_atomically(dir / "weights.bin", "new");
  CHECK_FALSE(fs::is_symlink(dir / "weights.bin"));
  CHECK(read_file(dir / "weights.bin") == "new");
  CHECK(read_file(dir / "store" / "weights.bin") == "old");
}

TEST_CASE("JSON files are written pretty-printed and read back", "[util][json]") {
  TempDir dir;
  const fs::path path = dir / "summary.json";
  nlohmann::json summary = {{"model", "autoencoder"}, {"latent", {2, 5, 10}}, {"loss", 0.0213}};
  write_json_atomically(path, summary);
  const std::string text = read_file(path);
  CHECK(text.back() == '\n');
  CHECK_THAT(text, Catch::Contains("\n  \"loss\": 0.0213"));
  CHECK(read_json_file(path) == summary);
  CHECK(directory_entries(dir.path) == std::vector<std::string>{"summary.json"});
  CHECK_THROWS_WITH(read_json_file(dir / "missing.json"), Catch::Contains("missing.json"));
  write_file_atomically(dir / "bad.json", "{\"a\": ");
  CHECK_THROWS_WITH(read_json_file(dir / "bad.json"), Catch::Contains("bad.json"));
  // A folder in the file's place is named (reading it fails with a stream error that names nothing).
  fs::create_directory(dir / "folder.json");
  CHECK_THROWS_WITH(read_json_file(dir / "folder.json"),
                    Catch::Contains("folder.json") && Catch::Contains("is a folder, not a JSON file"));
}

TEST_CASE("read_file_text reads regular files only and reports read errors", "[util][read_file]") {
  TempDir dir;
  write_file_atomically(dir / "table.csv", "a,b\n1,2\n");
  CHECK(read_file_text(dir / "table.csv", "CSV file") == "a,b\n1,2\n");
  CHECK_THROWS_WITH(read_file_text(dir / "missing.csv", "CSV file"),
                    Catch::Contains("cannot open CSV file '" + (dir / "missing.csv").string() + "'") &&
                        Catch::Contains("No such file or directory"));
  // A pipe would block until a writer comes (and a device might never end): refused at once.
  const fs::path pipe = dir / "pipe.csv";
  REQUIRE(::mkfifo(pipe.c_str(), 0600) == 0);
  CHECK_THROWS_WITH(read_file_text(pipe, "CSV file"),
                    Catch::Contains("pipe.csv") && Catch::Contains("is not a regular file"));
  // Files in /proc have no size and are read all the same.
  CHECK_THAT(read_file_text("/proc/self/status", "status file"), Catch::Contains("Pid:"));
  // Reading this one fails (EIO at address 0): an error, not an empty file.
  CHECK_THROWS_WITH(read_file_text("/proc/self/mem", "CSV file"),
                    Catch::Contains("cannot read CSV file '/proc/self/mem'"));
}

TEST_CASE("a folder lock is exclusive until released", "[util][folder_lock]") {
  TempDir dir;
  {
    const FolderLock lock(dir.path);
    // A second lock (another open of the folder, as another process would make) is refused, naming the
    // folder and the hint.
    CHECK_THROWS_WITH(FolderLock(dir.path, "use another folder"),
                      Catch::Contains(dir.path.string()) && Catch::Contains("in use by another process") &&
                          Catch::Contains("; use another folder"));
  }
  CHECK_NOTHROW(FolderLock(dir.path));
  CHECK_THROWS_WITH(FolderLock(dir / "missing"), Catch::Contains("missing") && Catch::Contains("to lock it"));
}

TEST_CASE("a folder made locked survives a sweep; an unlocked one is removed, never through a link",
          "[util][folder_lock]") {
  TempDir dir;
  {
    const FolderLock live = FolderLock::create(dir / "live");
    write_file_atomically(dir / "live" / "a.png", "x");
    CHECK_THROWS_WITH(FolderLock::create(dir / "live"), Catch::Contains("live") && Catch::Contains("exists"));
    CHECK_FALSE(remove_abandoned_folder(dir / "live"));
    CHECK(read_file(dir / "live" / "a.png") == "x");
  }
  CHECK(remove_abandoned_folder(dir / "live"));  // its owner let go without renaming it
  CHECK_FALSE(fs::exists(dir / "live"));

  fs::create_directories(dir / "target" / "sub");
  write_file_atomically(dir / "target" / "sub" / "b.png", "x");
  write_file_atomically(dir / "file", "x");
  fs::create_directory_symlink(dir / "target", dir / "link");
  CHECK_FALSE(remove_abandoned_folder(dir / "link"));
  CHECK_FALSE(remove_abandoned_folder(dir / "file"));
  CHECK_FALSE(remove_abandoned_folder(dir / "missing"));
  CHECK(directory_entries(dir.path) == std::vector<std::string>{"file", "link", "target"});
  CHECK(remove_abandoned_folder(dir / "target"));  // with everything in it
  CHECK(directory_entries(dir.path) == std::vector<std::string>{"file", "link"});
  CHECK_THROWS_WITH(FolderLock::create(dir / "no" / "parent"),
                    Catch::Contains("cannot create and lock folder"));
}

TEST_CASE("CSV numbers are written in shortest round-trip form", "[util][csv]") {
  CHECK(format_round_trip(0.1) == "0.1");
  CHECK(format_round_trip(1.0 / 3.0) == "0.3333333333333333");
  CHECK(format_round_trip(1e-300) == "1e-300");
  CHECK(format_round_trip(0.1f) == "0.1");
  CHECK(format_round_trip(-2.5) == "-2.5");
  CHECK(CsvField(42).encoded() == "42");
  CHECK(CsvField(int64_t(-7)).encoded() == "-7");
  CHECK(CsvField(std::size_t(3)).encoded() == "3");
  CHECK(CsvField(true).encoded() == "true");
  CHECK(CsvField("plain").encoded() == "plain");
  CHECK(CsvField("a,b").encoded() == "\"a,b\"");
  CHECK(CsvField("say \"hi\"").encoded() == "\"say \"\"hi\"\"\"");
  CHECK(CsvField("two\nlines").encoded() == "\"two\nlines\"");
  CHECK(CsvField(" padded").encoded() == "\" padded\"");
  CHECK(CsvField("").encoded() == "\"\"");
  // Read back: one sign only ("+5" is 5, "+-5" is not a number).
  CHECK(parse_number<double>("+5") == 5.0);
  CHECK(parse_number<double>("-5") == -5.0);
  CHECK_FALSE(parse_number<double>("+-5"));
  CHECK_FALSE(parse_number<double>("+"));
  CHECK(parse_number<int64_t>("+7") == 7);
  CHECK_FALSE(parse_number<int64_t>("+-7"));
  // The reason for a refusal: too large for the type, or not a number at all.
  NumberError error{};
  CHECK(parse_number<int8_t>("127") == 127);
  CHECK_FALSE(parse_number<int8_t>("128", &error));
  CHECK(error == NumberError::out_of_range);
  CHECK_FALSE(parse_number<int64_t>("12a", &error));
  CHECK(error == NumberError::malformed);
  CHECK_FALSE(parse_number<double>("1e999", &error));
  CHECK(error == NumberError::out_of_range);
  CHECK_FALSE(parse_number<double>("", &error));
  CHECK(error == NumberError::malformed);
}

TEST_CASE("CSV reader leaves a spreadsheet's UTF-8 byte order mark out of the first column's name",
          "[util][csv]") {
  const CsvTable table = parse_csv("\xEF\xBB\xBFlabel,x\r\n1,2\r\n");
  CHECK(table.header == std::vector<std::string>{"label", "x"});
  CHECK(table.integer(0, "label") == 1);
  CHECK(parse_csv("a\n\xEF\xBB\xBF\n").rows[0][0] == "\xEF\xBB\xBF");  // only at the start of the text
}

TEST_CASE("CSV writer and reader round-trip text and numbers", "[util][csv]") {
  TempDir dir;
  const fs::path path = dir / "log.csv";
  const double third = 1.0 / 3.0;
  {
    CsvWriter writer(path, {"epoch", "loss", "note"});
    writer.write_row({1, third, "warm-up, slow"});
    writer.write_row({2, 1e-300, "quote \" inside"});
    writer.write_row({3, -0.0213f, "multi\nline"});
    writer.write_row({4, std::numeric_limits<double>::infinity(), ""});
    CHECK_THROWS_AS(writer.write_row({5, 1.0}), std::invalid_argument);
  }
  const CsvTable table = read_csv(path);
  REQUIRE(table.header == std::vector<std::string>{"epoch", "loss", "note"});
  REQUIRE(table.size() == 4);
  CHECK(table.number(0, "loss") == third);  // exact: the text round-trips
  CHECK(table.number(1, "loss") == 1e-300);
  CHECK(float(table.number(2, "loss")) == -0.0213f);  // floats are written in their own shortest form
  CHECK(table.text(2, "loss") == "-0.0213");
  CHECK(table.number(3, "loss") == std::numeric_limits<double>::infinity());
  CHECK(table.text(0, "note") == "warm-up, slow");
  CHECK(table.text(1, "note") == "quote \" inside");
  CHECK(table.text(2, "note") == "multi\nline");
  CHECK(table.text(3, "note").empty());
  CHECK(table.numbers("epoch") == std::vector<double>{1, 2, 3, 4});
  CHECK(table.integer(3, "epoch") == 4);
  CHECK_THROWS_WITH(table.integer(0, "loss"),
                    Catch::Contains("column 'loss'") && Catch::Contains("not an integer"));
  const CsvTable counts = parse_csv("epoch\n+7\n-3\n1e300\n99999999999999999999\n2.0\n");
  CHECK(counts.integer(0, "epoch") == 7);
  CHECK(counts.integer(1, "epoch") == -3);
  CHECK_THROWS_WITH(counts.integer(2, "epoch"), Catch::EndsWith("'1e300' is not an integer"));
  CHECK_THROWS_WITH(counts.integer(3, "epoch"), Catch::EndsWith("is not an integer in range"));
  CHECK_THROWS_WITH(counts.integer(4, "epoch"),
                    Catch::Contains("row 5") && Catch::EndsWith("'2.0' is not an integer"));
  const CsvTable signs = parse_csv("epoch\n+-3\n99999999999999999999x\n+\n");
  CHECK_THROWS_WITH(signs.integer(0, "epoch"), Catch::EndsWith("'+-3' is not an integer"));
  CHECK_THROWS_WITH(signs.integer(1, "epoch"), Catch::EndsWith("'99999999999999999999x' is not an integer"));
  CHECK_THROWS_WITH(signs.integer(2, "epoch"), Catch::EndsWith("'+' is not an integer"));
  CHECK_THROWS_WITH(table.number(0, "note"), Catch::Contains("note") && Catch::Contains("warm-up, slow"));
  CHECK_THROWS_WITH(table.column_index("accuracy"), Catch::Contains("accuracy"));
  // A name given to two columns: which one is meant is not guessed.
  const CsvTable twice = parse_csv("x,y,x\n1,2,3\n");
  CHECK_THROWS_WITH(twice.number(0, "x"), Catch::Contains("the column 'x' twice (columns 1 and 3)"));
  CHECK(twice.number(0, "y") == 2);

  // The whole table written atomically reads back identically.
  write_csv_atomically(dir / "copy.csv", table);
  const CsvTable copy = read_csv(dir / "copy.csv");
  CHECK(copy.header == table.header);
  CHECK(copy.rows == table.rows);
}

TEST_CASE("CSV writer appends to an existing file with the same header", "[util][csv]") {
  TempDir dir;
  const fs::path path = dir / "resume.csv";
  {
    CsvWriter writer(path, {"epoch", "loss"}, CsvWriter::Mode::append);  // missing file: header written
    writer.write_row({1, 0.5});
  }
  {
    CsvWriter writer(path, {"epoch", "loss"}, CsvWriter::Mode::append);
    writer.write_row({2, 0.25});
  }
  CHECK(read_file(path) == "epoch,loss\n1,0.5\n2,0.25\n");
  CHECK_THROWS_WITH(CsvWriter(path, {"epoch", "accuracy"}, CsvWriter::Mode::append),
                    Catch::Contains("resume.csv") && Catch::Contains("epoch,loss"));
  write_file_atomically(dir / "binary.csv", std::string("ep\0och,loss\n", 12));
  CHECK_THROWS_WITH(CsvWriter(dir / "binary.csv", {"epoch", "loss"}, CsvWriter::Mode::append),
                    Catch::Contains("its header 'ep\\x00och,loss' differs from 'epoch,loss'"));
  {
    CsvWriter writer(path, {"epoch", "loss"});  // truncate starts over
    writer.write_row({7, 1});
  }
  CHECK(read_file(path) == "epoch,loss\n7,1\n");
  // A row cut off by a crash (no final line break; "0.2" may be "0.25" cut short) is dropped before
  // appending, and the rows before it are handed over.
  write_file_atomically(path, "epoch,loss\n1,0.5\n2,0.2");
  CsvTable existing;
  const auto keep = [&](const CsvTable& table) { existing = table; };
  {
    CsvWriter writer(path, {"epoch", "loss"}, CsvWriter::Mode::append, keep);
    CHECK(writer.torn_row_dropped());
    CHECK(existing.rows == std::vector<std::vector<std::string>>{{"1", "0.5"}});
    CHECK(read_file(path) == "epoch,loss\n1,0.5\n");  // rewritten before the first new row
    writer.write_row({3, 0.125});
  }
  CHECK(read_file(path) == "epoch,loss\n1,0.5\n3,0.125\n");
  {
    CsvWriter writer(path, {"epoch", "loss"}, CsvWriter::Mode::append, keep);
    CHECK_FALSE(writer.torn_row_dropped());
    CHECK(existing.numbers("epoch") == std::vector<double>{1, 3});
  }
  // \r ends a row too; a header cut before its line break is completed; a file of blank lines starts over;
  // a header cut inside its text is dropped (as a torn row) and written again: the file held nothing else.
  struct Continued {
    std::string before, after;
    bool torn;
  };
  for (const Continued& c : std::vector<Continued>{{"epoch,loss\r1,0.5\r", "epoch,loss\r1,0.5\r4,2\n", false},
                                                   {"epoch,loss", "epoch,loss\n4,2\n", false},
                                                   {"\n\n", "\n\nepoch,loss\n4,2\n", false},
                                                   {"epoch,lo", "epoch,loss\n4,2\n", true},
                                                   {"e", "epoch,loss\n4,2\n", true},
                                                   {"\n\nepo", "\n\nepoch,loss\n4,2\n", true}}) {
    INFO(c.before);
    write_file_atomically(path, c.before);
    {
      CsvWriter writer(path, {"epoch", "loss"}, CsvWriter::Mode::append);
      CHECK(writer.torn_row_dropped() == c.torn);
      writer.write_row({4, 2});
    }
    CHECK(read_file(path) == c.after);
  }
  // A malformed file, or the start of another header, is refused untouched.
  for (const std::string bad : {"epoch,loss\n1\n2,3\n", "step,lo", "epoch,lossy", "\n\nstep"}) {
    write_file_atomically(path, bad);
    CHECK_THROWS_WITH(CsvWriter(path, {"epoch", "loss"}, CsvWriter::Mode::append),
                      Catch::Contains("cannot append to '" + path.string() + "'"));
    CHECK(read_file(path) == bad);
  }
  // The caller's check sees the table before anything is written; when it refuses, the torn row stays.
  const std::string torn = "epoch,loss\n1,x\n2,0.";
  write_file_atomically(path, torn);
  const auto numeric = [](const CsvTable& table) { table.numbers("loss"); };
  CHECK_THROWS_WITH(CsvWriter(path, {"epoch", "loss"}, CsvWriter::Mode::append, numeric),
                    Catch::Contains("'x' is not a number"));
  CHECK(read_file(path) == torn);
  // A torn row whose quoted field holds a line break is one row.
  write_file_atomically(path, "epoch,note\n1,\"a\nb\"\n2,\"c\nd");
  {
    CsvWriter writer(path, {"epoch", "note"}, CsvWriter::Mode::append, keep);
    CHECK(writer.torn_row_dropped());
    CHECK(existing.rows == std::vector<std::vector<std::string>>{{"1", "a\nb"}});
  }
  CHECK(read_file(path) == "epoch,note\n1,\"a\nb\"\n");
  // A folder is named as one.
  CHECK_THROWS_WITH(CsvWriter(dir.path, {"epoch"}, CsvWriter::Mode::append), Catch::Contains("is a folder"));
}

TEST_CASE("a CSV log whose last row was cut short is refused when read", "[util][csv]") {
  TempDir dir;
  const fs::path path = dir / "log.csv";
  write_file_atomically(path, "epoch,loss\n1,0.5\n2,0.2");
  CHECK(read_csv(path).size() == 2);  // any CSV may end without a line break
  CHECK_THROWS_WITH(read_csv_log(path), Catch::Contains("log.csv") && Catch::Contains("cut short"));
  write_file_atomically(path, "epoch,loss\n1,0.5\n2,0.25\n");
  CHECK(read_csv_log(path).numbers("loss") == std::vector<double>{0.5, 0.25});
}

TEST_CASE("CSV parser handles CRLF, blank lines and reports malformed records", "[util][csv]") {
  const CsvTable table = parse_csv("a,b\r\n1,\"x\r\ny\"\r\n\r\n+2,3\r\n");
  REQUIRE(table.size() == 2);
  CHECK(table.text(0, "b") == "x\r\ny");
  CHECK(table.number(1, "a") == 2.0);
  CHECK_THROWS_WITH(parse_csv("a,b\n1,2\n3\n"), Catch::Contains("line 3") && Catch::Contains("1 fields"));
  CHECK_THROWS_WITH(parse_csv("a\n\"open\n"), Catch::Contains("unterminated"));
  CHECK_THROWS_WITH(parse_csv("a\n\"x\"y\n"), Catch::Contains("line 2"));
  CHECK_THROWS_WITH(read_csv("/nonexistent/dir/file.csv"), Catch::Contains("/nonexistent/dir/file.csv"));
  // Bytes of a binary file are shown, not allowed to cut the message short at a NUL.
  using namespace std::string_literals;
  const CsvTable binary = parse_csv("a,b\n1,x\0\x1by\n"s);
  CHECK_THROWS_WITH(binary.number(0, "b"), Catch::EndsWith("'x\\x00\\x1by' is not a number"));
  CHECK(printable(std::string(200, 'z')) == std::string(120, 'z') + "...");
  CHECK(printable("caf\xc3\xa9\x7f") == "caf\xc3\xa9\\x7f");  // UTF-8 kept, DEL shown
}

TEST_CASE("CLI parses every flag type in both spellings", "[util][cli]") {
  ArgParser cli("Trains an autoencoder.", "train");
  cli.add<int>("--epochs", 10, "training epochs").min(1);
  cli.add<int64_t>("--seed", 1, "random seed");
  cli.add<double>("--lr", 1e-3, "learning rate").min(0.0);
  cli.add<std::string>("--out", "runs", "output directory");
  cli.add<bool>("--quiet", false, "no progress bars");
  cli.add<std::vector<int>>("--latent", {2, 5, 10}, "latent sizes");
  cli.add<std::vector<double>>("--dropout", {0.1}, "dropout rates");
  cli.add<std::vector<std::string>>("--models", {"mlp"}, "model names");
  std::string activation = "relu";
  cli.bind("--activation", activation, "hidden activation");

  const char* argv[] = {"./train",         "--epochs",       "25",      "--seed=12345678901", "--lr",
                        "2.5e-4",          "--out=/tmp/x=y", "--quiet", "--latent",           "5,10",
                        "--dropout=0,0.5", "--models",       "mlp,cnn", "--activation",       "gelu"};
  REQUIRE(cli.parse(int(std::size(argv)), argv) == CliStatus::run);
  CHECK(cli.get<int>("--epochs") == 25);
  CHECK(cli.get<int64_t>("--seed") == 12345678901);
  CHECK(cli.get<double>("--lr") == 2.5e-4);
  CHECK(cli.get<std::string>("--out") == "/tmp/x=y");
  CHECK(cli.get<bool>("--quiet"));
  CHECK(cli.get<std::vector<int>>("--latent") == std::vector<int>{5, 10});
  CHECK(cli.get<std::vector<double>>("--dropout") == std::vector<double>{0.0, 0.5});
  CHECK(cli.get<std::vector<std::string>>("--models") == std::vector<std::string>{"mlp", "cnn"});
  CHECK(activation == "gelu");
  CHECK(cli.was_given("--epochs"));
  CHECK_THROWS_AS(cli.get<double>("--epochs"), std::logic_error);  // wrong type is a programming error
  CHECK_THROWS_AS(cli.get<int>("--nope"), std::logic_error);

  ArgParser defaults;
  defaults.add<int>("--epochs", 10, "training epochs");
  defaults.add<bool>("--quiet", true, "no progress bars");
  defaults.add<double>("--shift", 0.0, "offset");
  REQUIRE(defaults.parse(std::vector<std::string>{"--quiet=false", "--shift", "-1.5"}) == CliStatus::run);
  CHECK(defaults.get<int>("--epochs") == 10);
  CHECK_FALSE(defaults.was_given("--epochs"));
  CHECK_FALSE(defaults.get<bool>("--quiet"));
  CHECK(defaults.get<double>("--shift") == -1.5);  // a single dash is a value, not a flag
}

TEST_CASE("CLI --help prints usage built from the registrations", "[util][cli]") {
  ArgParser cli("Trains an autoencoder.", "train");
  cli.add<int>("--epochs", 10, "training epochs");
  cli.add<std::vector<int>>("--latent", {2, 5}, "latent sizes");
  cli.add<bool>("--quiet", false, "no progress bars");
  std::ostringstream out;
  // --help wins even over a malformed value elsewhere on the line.
  CHECK(cli.parse(std::vector<std::string>{"--epochs", "abc", "--help"}, out) == CliStatus::exit_success);
  const std::string usage = out.str();
  CHECK_THAT(usage, Catch::StartsWith("Usage: train [options]"));
  CHECK_THAT(usage, Catch::Contains("Trains an autoencoder."));
  CHECK_THAT(usage, Catch::Contains("--epochs <int>"));
  CHECK_THAT(usage, Catch::Contains("training epochs (default: 10)"));
  CHECK_THAT(usage, Catch::Contains("--latent <int,...>"));
  CHECK_THAT(usage, Catch::Contains("(default: 2,5)"));
  CHECK_THAT(usage, Catch::Contains("--quiet"));
  CHECK_THAT(usage, Catch::Contains("--help"));
  CHECK(usage == cli.usage());
  std::ostringstream short_help;
  CHECK(cli.parse(std::vector<std::string>{"--epochs", "abc", "-h"}, short_help) == CliStatus::exit_success);
  CHECK(short_help.str() == usage);
  CHECK_THROWS_WITH(cli.parse(std::vector<std::string>{"--help=1"}, short_help),
                    Catch::Contains("--help takes no value"));
  // A flag's value is not a request for help, even when it reads "-h".
  ArgParser with_out("Writes files.");
  with_out.add<std::string>("--out", "out", "output folder");
  std::ostringstream no_help;
  CHECK(with_out.parse(std::vector<std::string>{"--out", "-h"}, no_help) == CliStatus::run);
  CHECK(no_help.str().empty());
  CHECK(with_out.get<std::string>("--out") == "-h");
}

TEST_CASE("CLI list flags marked several() take the arguments after their value too", "[util][cli]") {
  const auto parse = [](std::vector<std::string> args, std::ostream& help = std::cout) {
    auto cli = std::make_unique<ArgParser>("Merges files.");
    cli->add<std::vector<std::string>>("--files", {}, "files to merge").several();
    cli->add<std::vector<int>>("--sizes", {2}, "sizes").several().min(1);
    cli->add<std::vector<int>>("--latent", {2}, "latent sizes");
    cli->add<bool>("--quiet", false, "quiet");
    cli->add<double>("--shift", 0.0, "offset");
    if (cli->parse(args, help) != CliStatus::run) return std::unique_ptr<ArgParser>();
    return cli;
  };
  using Names = std::vector<std::string>;
  // Several arguments, as a shell glob gives them, are each taken whole (commas included), in both
  // spellings, up to the next argument starting with '-'.
  auto cli = parse({"--files", "a/grid.csv", "lr=0.1,bs=64/grid.csv", "--quiet", "--shift", "-2"});
  CHECK(cli->get<Names>("--files") == Names{"a/grid.csv", "lr=0.1,bs=64/grid.csv"});
  CHECK(cli->get<bool>("--quiet"));
  CHECK(cli->get<double>("--shift") == -2);
  CHECK(parse({"--files=a", "b"})->get<Names>("--files") == Names{"a", "b"});
  CHECK(parse({"--files", "-a", "b"})->get<Names>("--files") == Names{"-a", "b"});  // the first is a value
  CHECK(parse({"--sizes", "3", "4", "--shift", "1"})->get<std::vector<int>>("--sizes") ==
        std::vector<int>{3, 4});
  // One argument is a comma-separated list, as for any list flag.
  CHECK(parse({"--files", "a,b"})->get<Names>("--files") == Names{"a", "b"});
  CHECK(parse({"--files="})->get<Names>("--files").empty());
  // A "-h" after them is a request for help, as anywhere but in a flag's first value.
  std::ostringstream help;
  CHECK_FALSE(parse({"--files", "a", "b", "-h"}, help));
  CHECK_THAT(help.str(), Catch::Contains("--files <text,...> ...") && Catch::Contains("files to merge"));
  // A flag not marked several() takes one argument, as before.
  CHECK_THROWS_WITH(parse({"--latent", "5", "10"}), Catch::Contains("unexpected argument '10'"));
  // An empty argument among several is refused, first or not (an unset shell variable, say), and so are
  // values the flag's checks refuse.
  CHECK_THROWS_WITH(parse({"--files", "a", ""}), Catch::Contains("--files: an empty argument"));
  CHECK_THROWS_WITH(parse({"--files", "", "b"}), Catch::Contains("--files: an empty argument"));
  CHECK_THROWS_WITH(parse({"--files=", "b"}), Catch::Contains("--files: an empty argument"));
  CHECK_THROWS_WITH(parse({"--sizes", "3", "x"}), Catch::Contains("invalid value 'x' for --sizes"));
  CHECK_THROWS_WITH(parse({"--sizes", "3", "0"}),
                    Catch::Contains("invalid value '3 0' for --sizes: must be >= 1"));
}

TEST_CASE("CLI switch_on reads a switch before parsing, in both spellings", "[util][cli]") {
  const auto on = [](std::vector<const char*> args) {
    args.insert(args.begin(), "program");
    return switch_on(int(args.size()), args.data(), "--quick");
  };
  CHECK_FALSE(on({}));
  CHECK(on({"--quick"}));
  CHECK(on({"--epochs", "3", "--quick=true"}));
  CHECK(on({"--quick=1"}));
  CHECK_FALSE(on({"--quick=false"}));
  CHECK_FALSE(on({"--quick", "--quick=false"}));  // the last one wins
  CHECK(on({"--quick=false", "--quick"}));
  CHECK_FALSE(on({"--quicker"}));
  CHECK_FALSE(on({"--quick=maybe"}));  // left for parse() to refuse
}

TEST_CASE("CLI errors name the flag and the bad value", "[util][cli]") {
  const auto setup = [](ArgParser& cli) {
    cli.add<int>("--epochs", 10, "training epochs").min(1);
    cli.add<double>("--lr", 1e-3, "learning rate").min(0.0).max(1.0);
    cli.add<std::vector<int>>("--latent", {2}, "latent sizes").min(1);
    cli.add<int>("--batch", 32, "batch size").check([](int v) { return v % 2 == 0; }, "must be even");
    cli.add<bool>("--quiet", false, "quiet");
    cli.add<std::vector<std::string>>("--files", {}, "files");
  };
  struct Case {
    std::vector<std::string> args;
    std::string flag;
    std::vector<std::string> fragments;
  };
  const std::vector<Case> cases = {
      {{"--epochs", "abc"}, "--epochs", {"--epochs", "'abc'", "integer"}},
      {{"--epochs=12x"}, "--epochs", {"--epochs", "'12x'"}},
      {{"--epochs", "99999999999"}, "--epochs", {"--epochs", "out of range"}},
      {{"--epochs", "-3"}, "--epochs", {"--epochs", "'-3'", ">= 1"}},
      {{"--lr", "1e-3x"}, "--lr", {"--lr", "'1e-3x'", "number"}},
      {{"--lr=nan"}, "--lr", {"--lr", "'nan'", "finite"}},
      {{"--lr", "2"}, "--lr", {"--lr", "'2'", "<= 1"}},
      {{"--latent", "5,,10"}, "--latent", {"--latent", "'5,,10'"}},
      {{"--latent", "5,0"}, "--latent", {"--latent", "'5,0'", ">= 1"}},
      {{"--batch", "7"}, "--batch", {"--batch", "'7'", "must be even"}},
      {{"--quiet=maybe"}, "--quiet", {"--quiet", "'maybe'"}},
      {{"--epochs"}, "--epochs", {"missing value for --epochs"}},
      {{"--epochs", "--lr", "0.1"}, "--epochs", {"missing value for --epochs"}},
      {{"--epoch", "3"}, "--epoch", {"unknown flag --epoch", "did you mean --epochs"}},
      {{"--frobnicate"}, "--frobnicate", {"unknown flag --frobnicate"}},
      {{"stray"}, "stray", {"unexpected argument 'stray'"}},
      {{"--epochs", "+-3"}, "--epochs", {"--epochs", "'+-3'", "integer"}},
      {{"--lr", "+-0.5"}, "--lr", {"--lr", "'+-0.5'", "number"}},
      {{"--files", "a,,b"}, "--files", {"--files", "'a,,b'", "empty element"}},
      {{"--quiet", "false"}, "--quiet", {"after the switch --quiet", "--quiet=false"}},
  };
  for (const auto& c : cases) {
    INFO("args: " << c.args.front());
    const CliError error = parse_error(setup, c.args);
    CHECK(error.flag() == c.flag);
    for (const auto& fragment : c.fragments) CHECK_THAT(error.what(), Catch::Contains(fragment));
  }
  // CliError is a std::invalid_argument, so callers can catch the standard type.
  ArgParser cli;
  setup(cli);
  CHECK_THROWS_AS(cli.parse(std::vector<std::string>{"--epochs", "0"}), std::invalid_argument);
  // Registration mistakes are logic errors.
  CHECK_THROWS_AS(cli.add<int>("--epochs", 1, "again"), std::logic_error);
  CHECK_THROWS_AS(cli.add<int>("epochs", 1, "no dashes"), std::logic_error);
  CHECK_THROWS_AS(cli.add<int>("--help", 1, "reserved"), std::logic_error);
}

TEST_CASE("progress bar prints periodic plain lines and a final line off-terminal", "[util][progress]") {
  std::ostringstream out;
  {
    ProgressBar bar(50, "epoch 1", {.out = &out, .terminal = false});
    for (int i = 0; i < 50; ++i) {
      bar.update();
      bar.set_postfix("loss", 0.0213);
      bar.set_postfix("acc", 97);
    }
    CHECK(bar.count() == 50);
  }  // the destructor closes it
  const auto lines = split_lines(out.str());
  // A line at each of 10%, 20%, ..., 90%, then the final one.
  REQUIRE(lines.size() == 10);
  CHECK(out.str().find('\r') == std::string::npos);
  CHECK_THAT(lines[0], Catch::StartsWith("epoch 1:  10%|##  "));
  CHECK_THAT(lines[0], Catch::Contains(" 5/50 ["));
  CHECK_THAT(lines[0], Catch::Contains("loss=0.0213, acc=97]"));
  CHECK_THAT(lines[4], Catch::Contains(" 25/50 "));
  CHECK_THAT(lines.back(), Catch::StartsWith("epoch 1: 100%|####################|"));
  CHECK_THAT(lines.back(), Catch::Contains(" 50/50 ["));
  CHECK_THAT(lines.back(), Catch::Contains("it/s, loss=0.0213, acc=97]"));
  for (const auto& line : lines) {
    const auto first = line.find("loss=");
    CHECK(line.find("loss=", first + 1) == std::string::npos);  // replaced, not repeated
  }
}

TEST_CASE("progress bar redraws in place on a terminal and is silent when quiet", "[util][progress]") {
  std::ostringstream terminal;
  {
    ProgressBar bar(4, "batches",
                    {.out = &terminal, .terminal = true, .redraw_interval_seconds = 1e9, .columns = 100});
    for (int i = 0; i < 4; ++i) bar.update();
    bar.set_postfix("lr", "1e-3");
    bar.close();
    bar.close();  // idempotent
  }
  const std::string text = terminal.str();
  // The initial draw and the final one only (the interval suppresses the rest), each starting with \r.
  CHECK(std::count(text.begin(), text.end(), '\r') == 2);
  CHECK(std::count(text.begin(), text.end(), '\n') == 1);
  CHECK(text.back() == '\n');
  CHECK_THAT(text, Catch::Contains("batches:   0%|"));
  CHECK_THAT(text, Catch::Contains("4/4 ["));
  CHECK_THAT(text, Catch::Contains("lr=1e-3]"));

  std::ostringstream silent;
  {
    ProgressBar bar(10, "quiet", {.out = &silent, .quiet = true});
    for (int i = 0; i < 10; ++i) bar.update();
    bar.set_postfix("loss", 1.0);
  }
  CHECK(silent.str().empty());
}

TEST_CASE("progress bar lines fit the terminal and text is written above the bar", "[util][progress]") {
  std::ostringstream terminal;
  std::FILE* log = std::tmpfile();
  REQUIRE(log != nullptr);
  {
    ProgressBar bar(1000, "epoch 12/50",
                    {.out = &terminal, .terminal = true, .redraw_interval_seconds = 0, .columns = 40});
    bar.set_postfix("loss_d", 0.123456);
    bar.set_postfix("loss_g", 4.56789);
    bar.set_postfix("D(x)", 0.987654);
    bar.update(10);
    bar.write("epoch 1: iteration 10\n", log);
    bar.update(10);
  }
  // Every redraw fits in 39 columns (a 40th character would wrap, and \r could not return to the start).
  std::string text = terminal.str();
  std::size_t redraws = 0;
  for (std::size_t start = 0; (start = text.find('\r', start)) != std::string::npos; ++start) {
    const std::size_t end = text.find_first_of("\r\n", start + 1);
    const std::string line = text.substr(start + 1, end == std::string::npos ? end : end - start - 1);
    const auto columns = std::count_if(
        line.begin(), line.end(), [](char ch) { return (static_cast<unsigned char>(ch) & 0xC0) != 0x80; });
    CHECK(columns <= 39);
    ++redraws;
  }
  CHECK(redraws >= 4);
  // The bar's line is blanked before the text and drawn again after it.
  CHECK_THAT(text, Catch::Contains("\r" + std::string(39, ' ') + "\r\repoch 12/50:"));
  std::rewind(log);
  char written[64] = {};
  CHECK(std::fread(written, 1, sizeof written - 1, log) == 22);
  CHECK(std::string(written) == "epoch 1: iteration 10\n");
  std::fclose(log);

  // Off a terminal the text is only written.
  std::ostringstream plain;
  ProgressBar bar(10, "runs", {.out = &plain, .terminal = false});
  std::FILE* sink = std::tmpfile();
  REQUIRE(sink != nullptr);
  bar.write("done\n", sink);
  CHECK(plain.str().empty());
  CHECK(std::ftell(sink) == 5);
  std::fclose(sink);
}

TEST_CASE("progress bar formats durations, rates and unknown totals", "[util][progress]") {
  CHECK(ProgressBar::format_duration(0) == "00:00");
  CHECK(ProgressBar::format_duration(59.9) == "00:59");
  CHECK(ProgressBar::format_duration(125) == "02:05");
  CHECK(ProgressBar::format_duration(3661) == "1:01:01");
  // An estimate from a rate near zero is too long to mean anything (and beyond int64_t it would be
  // undefined).
  CHECK(ProgressBar::format_duration(1e300) == "?");
  CHECK(ProgressBar::format_duration(std::nan("")) == "?");
  std::ostringstream out;
  ProgressBar bar(0, "stream", {.out = &out, .terminal = false});
  bar.update(30);
  CHECK(bar.render(10.0, 20) == "stream: 30it [00:10, 3.00it/s]");
  ProgressBar slow(10, "", {.out = &out, .terminal = false});
  slow.update(2);
  CHECK(slow.render(8.0, 0) == " 20% 2/10 [00:08<00:32, 4.00s/it]");
  slow.close();
  CHECK_THAT(out.str(), Catch::Contains("2/10"));
  // A long unit name is written whole in the rate.
  const std::string unit(80, 'u');
  ProgressBar long_unit(0, "", {.out = &out, .terminal = false, .unit = unit});
  long_unit.update(30);
  CHECK_THAT(long_unit.render(10.0, 0), Catch::EndsWith("3.00" + unit + "/s]"));
}
