#pragma once
// CSV for experiment logs and result tables: a streaming writer (one flushed row per epoch survives a crash,
// and a resumed run can append), a reader giving text cells with numeric access, and numbers written in
// their shortest form that reads back to the identical double.
#include <algorithm>
#include <concepts>
#include <cstdint>
#include <filesystem>
#include <fstream>
#include <functional>
#include <initializer_list>
#include <iterator>
#include <optional>
#include <span>
#include <stdexcept>
#include <string>
#include <string_view>
#include <type_traits>
#include <vector>

#include "sumi/util/atomic_file.hpp"
#include "sumi/util/number_text.hpp"
#include "sumi/util/printable.hpp"
#include "sumi/util/read_file.hpp"

namespace sumi::util {

// Quotes a cell when a reader could otherwise split or trim it: separators, quotes, line breaks, leading or
// trailing spaces, and the empty string (so an empty single-column row is not mistaken for a blank line).
inline std::string escape_csv_field(std::string_view text) {
  bool needs_quotes = text.empty() || text.front() == ' ' || text.back() == ' ' || text.front() == '\t' ||
                      text.back() == '\t';
  for (char ch : text)
    if (ch == ',' || ch == '"' || ch == '\n' || ch == '\r') needs_quotes = true;
  if (!needs_quotes) return std::string(text);
  std::string quoted = "\"";
  for (char ch : text) {
    if (ch == '"') quoted += '"';
    quoted += ch;
  }
  quoted += '"';
  return quoted;
}

// One cell ready to be written: numbers become round-trip text, strings are quoted when needed.
// Accepts any arithmetic type (bool as true/false) or text, so rows read as `{epoch, loss, "relu"}`.
class CsvField {
 public:
  CsvField(std::string_view text) : encoded_(escape_csv_field(text)) {}
  CsvField(const std::string& text) : CsvField(std::string_view(text)) {}
  CsvField(const char* text) : CsvField(std::string_view(text)) {}
  template <class T>
  requires(std::is_arithmetic_v<T> && !std::is_same_v<T, char>) CsvField(T value) {
    if constexpr (std::is_same_v<T, bool>) {
      encoded_ = value ? "true" : "false";
    } else if constexpr (std::is_floating_point_v<T>) {
      encoded_ = format_round_trip(value);
    } else {
      encoded_ = std::to_string(value);
    }
  }

  // The cell as it appears in the file (quoted and escaped if needed).
  const std::string& encoded() const { return encoded_; }

 private:
  std::string encoded_;
};

// One CSV line (with trailing newline) from already-encoded fields.
inline std::string format_csv_row(std::span<const CsvField> fields) {
  std::string line;
  for (std::size_t i = 0; i < fields.size(); ++i) {
    if (i > 0) line += ',';
    line += fields[i].encoded();
  }
  line += '\n';
  return line;
}

inline std::string format_csv_row(std::span<const std::string> texts) {
  std::vector<CsvField> fields(texts.begin(), texts.end());
  return format_csv_row(std::span<const CsvField>(fields));
}

namespace detail {

// RFC 4180 record reader: quoted fields may hold commas, doubled quotes and line breaks; accepts \n, \r\n
// and \r line ends; skips blank lines. Errors name the 1-based line where the bad record starts.
class CsvRecordReader {
 public:
  explicit CsvRecordReader(std::string_view text) : text_(text) {}

  std::optional<std::vector<std::string>> next() {
    while (pos_ < text_.size() && is_line_break(text_[pos_])) consume_line_break();
    if (pos_ >= text_.size()) return std::nullopt;
    record_line_ = line_;
    std::vector<std::string> fields;
    std::string field;
    while (true) {
      if (pos_ < text_.size() && text_[pos_] == '"') {
        read_quoted(field);
      } else {
        while (pos_ < text_.size() && text_[pos_] != ',' && !is_line_break(text_[pos_])) {
          if (text_[pos_] == '"') fail("unexpected quote inside an unquoted field");
          field += text_[pos_++];
        }
      }
      fields.push_back(std::move(field));
      field.clear();
      if (pos_ >= text_.size()) break;
      if (text_[pos_] == ',') {
        ++pos_;
        continue;
      }
      consume_line_break();
      break;
    }
    return fields;
  }

  std::size_t record_line() const { return record_line_; }

 private:
  static bool is_line_break(char ch) { return ch == '\n' || ch == '\r'; }

  void consume_line_break() {
    if (text_[pos_] == '\r' && pos_ + 1 < text_.size() && text_[pos_ + 1] == '\n') ++pos_;
    ++pos_;
    ++line_;
  }

  void read_quoted(std::string& field) {
    ++pos_;  // opening quote
    while (true) {
      if (pos_ >= text_.size()) fail("unterminated quoted field");
      const char ch = text_[pos_];
      if (ch == '"') {
        if (pos_ + 1 < text_.size() && text_[pos_ + 1] == '"') {
          field += '"';
          pos_ += 2;
          continue;
        }
        ++pos_;  // closing quote
        if (pos_ < text_.size() && text_[pos_] != ',' && !is_line_break(text_[pos_]))
          fail("unexpected character after a closing quote");
        return;
      }
      if (ch == '\n' || (ch == '\r' && !(pos_ + 1 < text_.size() && text_[pos_ + 1] == '\n'))) ++line_;
      field += ch;
      ++pos_;
    }
  }

  [[noreturn]] void fail(const std::string& what) const {
    throw std::runtime_error("CSV record at line " + std::to_string(record_line_) + ": " + what);
  }

  std::string_view text_;
  std::size_t pos_ = 0;
  std::size_t line_ = 1;
  std::size_t record_line_ = 1;
};

// The length of `text` up to the line break that ends its last complete record. Our logs write each row
// whole, ending in a line break, so anything after it (outside quotes) is a row cut short by an interruption.
inline std::size_t complete_records_length(std::string_view text) {
  std::size_t length = 0;
  bool quoted = false;  // a doubled quote toggles twice
  for (std::size_t i = 0; i < text.size(); ++i) {
    if (text[i] == '"')
      quoted = !quoted;
    else if (!quoted && (text[i] == '\n' || text[i] == '\r'))
      length = i + 1;
  }
  return length;
}

}  // namespace detail

// A parsed CSV file: the header and every row as text, with lookups by column name.
struct CsvTable {
  std::vector<std::string> header;
  std::vector<std::vector<std::string>> rows;

  std::size_t size() const { return rows.size(); }

  bool has_column(std::string_view name) const {
    for (const auto& column : header)
      if (column == name) return true;
    return false;
  }

  // Index of the column called `name`; throws std::out_of_range naming it when there is none, and
  // std::invalid_argument when there are several (which one is meant is not for a reader to guess).
  std::size_t column_index(std::string_view name) const {
    const auto first = std::find(header.begin(), header.end(), name);
    if (first == header.end()) throw std::out_of_range("CSV has no column '" + std::string(name) + "'");
    if (const auto again = std::find(first + 1, header.end(), name); again != header.end())
      throw std::invalid_argument("CSV has the column '" + printable(name) + "' twice (columns " +
                                  std::to_string(first - header.begin() + 1) + " and " +
                                  std::to_string(again - header.begin() + 1) + ")");
    return std::size_t(first - header.begin());
  }

  const std::string& text(std::size_t row, std::string_view column) const {
    if (row >= rows.size())
      throw std::out_of_range("CSV row " + std::to_string(row + 1) + " out of range (" +
                              std::to_string(rows.size()) + " rows)");
    return rows[row][column_index(column)];
  }

  // The cell as a double; throws std::invalid_argument naming the row, column and text if it is not a number.
  double number(std::size_t row, std::string_view column) const {
    const std::string& cell = text(row, column);
    if (const auto value = parse_number<double>(cell)) return *value;
    throw std::invalid_argument("CSV row " + std::to_string(row + 1) + " after the header, column '" +
                                std::string(column) + "': '" + printable(cell) + "' is not a number");
  }

  // The cell as an integer (an epoch, a count); throws std::invalid_argument naming the row, column and text
  // if it is not a whole number that fits int64_t.
  int64_t integer(std::size_t row, std::string_view column) const {
    const std::string& cell = text(row, column);
    NumberError error{};
    if (const auto value = parse_number<int64_t>(cell, &error)) return *value;
    throw std::invalid_argument("CSV row " + std::to_string(row + 1) + " after the header, column '" +
                                std::string(column) + "': '" + printable(cell) + "' is not an integer" +
                                (error == NumberError::out_of_range ? " in range" : ""));
  }

  // A whole column as doubles (e.g. a loss curve).
  std::vector<double> numbers(std::string_view column) const {
    std::vector<double> values;
    values.reserve(rows.size());
    for (std::size_t row = 0; row < rows.size(); ++row) values.push_back(number(row, column));
    return values;
  }

  // The table as CSV text (cells quoted when needed).
  std::string to_csv() const {
    std::string text = format_csv_row(std::span<const std::string>(header));
    for (const auto& row : rows) text += format_csv_row(std::span<const std::string>(row));
    return text;
  }
};

// Parses CSV text whose first record is the header; every row must have the header's width. A UTF-8 byte
// order mark (spreadsheets write one) is not part of the first column's name.
inline CsvTable parse_csv(std::string_view text) {
  if (text.starts_with("\xEF\xBB\xBF")) text.remove_prefix(3);
  CsvTable table;
  detail::CsvRecordReader reader(text);
  if (auto header = reader.next()) table.header = std::move(*header);
  while (auto row = reader.next()) {
    if (row->size() != table.header.size())
      throw std::runtime_error("CSV record at line " + std::to_string(reader.record_line()) + " has " +
                               std::to_string(row->size()) + " fields, the header has " +
                               std::to_string(table.header.size()));
    table.rows.push_back(std::move(*row));
  }
  return table;
}

namespace detail {
inline CsvTable parse_csv_file(const std::string& content, const std::filesystem::path& path) {
  try {
    return parse_csv(content);
  } catch (const std::runtime_error& error) {
    throw std::runtime_error("'" + path.string() + "': " + error.what());
  }
}
}  // namespace detail

// Reads and parses a CSV file; errors name the path.
inline CsvTable read_csv(const std::filesystem::path& path) {
  return detail::parse_csv_file(read_file_text(path, "CSV file"), path);
}

// Reads a CSV file written row by row, each ending in a line break (a log, as CsvWriter writes it): one whose
// last row lacks it was cut short by an interruption and is refused (appending to it with CsvWriter drops
// that row).
inline CsvTable read_csv_log(const std::filesystem::path& path) {
  const std::string content = read_file_text(path, "CSV file");
  if (detail::complete_records_length(content) < content.size())
    throw std::runtime_error("'" + path.string() +
                             "' ends in a row cut short by an interrupted write; continuing what wrote it "
                             "drops that row");
  return detail::parse_csv_file(content, path);
}

// Writes a whole table atomically (for final result tables rather than running logs).
inline void write_csv_atomically(const std::filesystem::path& path, const CsvTable& table) {
  write_file_atomically(path, table.to_csv());
}

// A header as one line for a message: the names as CSV, made printable.
inline std::string header_text(const std::vector<std::string>& names) {
  std::string joined = format_csv_row(std::span<const std::string>(names));
  joined.pop_back();  // the line break
  return printable(joined, 300);
}

// Streams rows to a CSV file, flushing each one so a log is readable while training and survives a crash.
// Mode::append continues an existing file (a resumed run); when the file is missing or holds only line breaks
// it starts one, header included. Appending parses the file first and hands the table to `check` (which may
// throw to refuse it, in its own words; it sees the complete rows, not a torn last one), then refuses a
// header other than `header`, all before anything is written. Rows are written whole, each ending in a line
// break, so a last record without one was cut short by an interruption (its last number may be cut too): it
// is dropped, the file rewritten atomically without it, and torn_row_dropped() says so. A header cut before
// its line break is completed; one cut inside the header's own text is written again.
class CsvWriter {
 public:
  enum class Mode { truncate, append };
  using ExistingCheck = std::function<void(const CsvTable&)>;

  CsvWriter(const std::filesystem::path& path, std::vector<std::string> header, Mode mode = Mode::truncate,
            const ExistingCheck& check = nullptr)
      : path_(path), header_(std::move(header)) {
    if (header_.empty()) throw std::invalid_argument("CSV writer for '" + path_.string() + "': empty header");
    const std::string content = mode == Mode::append && std::filesystem::exists(path_)
                                    ? read_file_text(path_, "CSV file")
                                    : std::string();
    std::string_view complete = std::string_view(content).substr(0, detail::complete_records_length(content));
    // After blank lines only, the start of this header, cut inside its text (an interruption while it was
    // written): it is dropped like a torn row and written again.
    const std::string header_line = format_csv_row(std::span<const std::string>(header_));
    const std::string_view tail = std::string_view(content).substr(complete.size());
    const bool torn_header = complete.find_first_not_of("\r\n") == std::string_view::npos && !tail.empty() &&
                             tail.size() + 1 < header_line.size() && header_line.starts_with(tail);
    bool header_unterminated = false;
    CsvTable existing;
    try {
      existing = parse_csv(complete);
      header_unterminated = !torn_header && existing.header.empty() && complete.size() < content.size();
      if (header_unterminated) existing = parse_csv(content), complete = content;
    } catch (const std::runtime_error& e) {
      throw std::runtime_error("cannot append to '" + path_.string() + "': " + e.what());
    }
    const bool write_header = existing.header.empty();
    if (write_header) existing.header = header_;
    if (check) check(existing);
    if (existing.header != header_)
      throw std::runtime_error("cannot append to '" + path_.string() + "': its header '" +
                               header_text(existing.header) + "' differs from '" + header_text(header_) +
                               "' (write to another file, or remove this one to start over)");
    torn_row_dropped_ = complete.size() < content.size();
    if (torn_row_dropped_) write_file_atomically(path_, complete);
    out_.open(path_, std::ios::binary | (mode == Mode::append ? std::ios::app : std::ios::trunc));
    if (!out_) throw std::runtime_error("cannot open CSV file '" + path_.string() + "' for writing");
    if (header_unterminated) out_ << '\n';
    if (write_header) emit(header_line);
  }

  void write_row(std::initializer_list<CsvField> fields) {
    write_row(std::span<const CsvField>(fields.begin(), fields.size()));
  }
  void write_row(const std::vector<CsvField>& fields) { write_row(std::span<const CsvField>(fields)); }
  // Throws std::invalid_argument when the row's width differs from the header's.
  void write_row(std::span<const CsvField> fields) {
    if (fields.size() != header_.size())
      throw std::invalid_argument("CSV row for '" + path_.string() + "' has " +
                                  std::to_string(fields.size()) + " fields, the header has " +
                                  std::to_string(header_.size()));
    emit(format_csv_row(fields));
  }

  const std::vector<std::string>& header() const { return header_; }
  const std::filesystem::path& path() const { return path_; }
  bool torn_row_dropped() const { return torn_row_dropped_; }

 private:
  void emit(const std::string& line) {
    out_ << line;
    out_.flush();
    if (!out_) throw std::runtime_error("cannot write to CSV file '" + path_.string() + "'");
  }

  std::filesystem::path path_;
  std::vector<std::string> header_;
  bool torn_row_dropped_ = false;
  std::ofstream out_;
};

}  // namespace sumi::util
