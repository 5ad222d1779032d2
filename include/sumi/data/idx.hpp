#pragma once
// Reader for the IDX format of MNIST, FashionMNIST and KMNIST: a 4-byte magic (0x00 0x00, element type,
// rank), `rank` big-endian uint32 dimensions, then the elements in row-major order. Files may be gzipped (as
// they are distributed) or raw; the gzip magic decides. Every check names the file, because a corrupt or
// half-downloaded dataset otherwise surfaces much later as a mysterious accuracy problem.
#include <unistd.h>
#include <zlib.h>

#include <algorithm>
#include <cerrno>
#include <cstdint>
#include <cstdio>
#include <cstring>
#include <filesystem>
#include <limits>
#include <memory>
#include <stdexcept>
#include <string>
#include <vector>

#include "sumi/tensor/shape.hpp"
#include "sumi/util/read_file.hpp"

namespace sumi::data {

// A malformed, truncated or unreadable data file. The message names the file.
class IdxError : public std::runtime_error {
 public:
  using std::runtime_error::runtime_error;
};

// The contents of an IDX file of unsigned bytes: dims[0] is usually the number of samples.
struct IdxArray {
  Shape dims;
  std::vector<uint8_t> data;

  int64_t numel() const { return shape_numel(dims); }
};

namespace detail {

inline constexpr uint8_t kIdxUnsignedByte = 0x08;
inline constexpr int64_t kIdxMaxBytes = int64_t{1} << 40;  // a sanity bound against corrupt headers

[[noreturn]] inline void idx_fail(const std::filesystem::path& path, const std::string& what) {
  throw IdxError("IDX file '" + path.string() + "': " + what);
}

// "1 byte", "3 bytes".
inline std::string count_of(uint64_t count, const std::string& noun) {
  return std::to_string(count) + " " + noun + (count == 1 ? "" : "s");
}

inline std::string idx_type_name(uint8_t type) {
  switch (type) {
    case 0x08:
      return "unsigned byte";
    case 0x09:
      return "signed byte";
    case 0x0B:
      return "int16";
    case 0x0C:
      return "int32";
    case 0x0D:
      return "float32";
    case 0x0E:
      return "float64";
    default:
      return "";
  }
}

// A byte stream over a raw or gzipped file, so the parser below reads both the same way. Gzip data goes
// through zlib's inflate rather than gzread, which silently ignores bytes after the last gzip member: a file
// appended to (or two files glued together) is an error here, as `gzip -t` flags it (even zero padding, which
// gzip only warns about). Several gzip members one after another are valid gzip and read as one stream.
class IdxSource {
 public:
  explicit IdxSource(const std::filesystem::path& path) : path_(path), file_(open_stream(path)) {
    unsigned char magic[2] = {0, 0};
    gzipped_ = std::fread(magic, 1, 2, file()) == 2 && is_gzip_magic(magic);
    std::rewind(file());
    if (gzipped_) {
      input_.resize(std::size_t{1} << 17);
      stream_.next_in = input_.data();
      if (inflateInit2(&stream_, 16 + MAX_WBITS) != Z_OK)  // 16: a gzip wrapper, not zlib's
        idx_fail(path, "cannot start zlib's decompressor");
      inflating_ = true;
    }
  }
  IdxSource(const IdxSource&) = delete;
  IdxSource& operator=(const IdxSource&) = delete;
  ~IdxSource() {
    if (inflating_) inflateEnd(&stream_);
  }

  bool gzipped() const { return gzipped_; }

  // Reads up to n bytes; fewer only at the end of the data. Corrupt or truncated gzip data throws.
  std::size_t read(void* out, std::size_t n) {
    auto* dst = static_cast<unsigned char*>(out);
    if (!gzipped_) {
      const std::size_t got = std::fread(dst, 1, n, file());
      if (got < n && std::ferror(file()))
        idx_fail(path_, std::string("read error (") + std::strerror(errno) + ")");
      return got;
    }
    std::size_t total = 0;
    while (total < n && !finished_) {
      // inflate takes an unsigned count: fill in pieces well under its limit.
      const auto piece = unsigned(std::min<std::size_t>(n - total, std::size_t{1} << 30));
      stream_.next_out = dst + total;
      stream_.avail_out = piece;
      while (stream_.avail_out > 0 && !finished_) {
        if (stream_.avail_in == 0 && fill_input(1) == 0)
          idx_fail(path_,
                   "truncated gzip data (the stream ends before its checksum; an interrupted download?)");
        const int status = inflate(&stream_, Z_NO_FLUSH);
        if (status == Z_STREAM_END)
          next_member();
        else if (status == Z_DATA_ERROR)
          idx_fail(path_, std::string("corrupt gzip data (") +
                              (stream_.msg ? stream_.msg : "unknown zlib error") + ")");
        else if (status == Z_MEM_ERROR)
          idx_fail(path_, "out of memory while decompressing");
        else if (status != Z_OK)  // no other result is possible with input and output space; never spin
          idx_fail(path_, "zlib's inflate failed (code " + std::to_string(status) + ")");
      }
      total += piece - stream_.avail_out;
    }
    return total;
  }

  // The number of bytes left in the stream (reads and discards them).
  uint64_t count_remaining() {
    std::vector<unsigned char> sink(1 << 16);
    uint64_t total = 0;
    for (std::size_t got; (got = read(sink.data(), sink.size())) > 0;) total += got;
    return total;
  }

 private:
  static bool is_gzip_magic(const unsigned char* b) { return b[0] == 0x1f && b[1] == 0x8b; }

  // Only a regular file: fopen on a pipe would wait for a writer, and a folder or device fail obscurely.
  static std::FILE* open_stream(const std::filesystem::path& path) {
    const int fd = util::open_regular_file<IdxError>(path, "IDX file").fd;
    std::FILE* stream = ::fdopen(fd, "rb");
    if (!stream) {
      const int error = errno;
      ::close(fd);
      idx_fail(path, std::string("cannot open (") + std::strerror(error) + ")");
    }
    return stream;
  }

  // Tops the unread input up to at least `wanted` bytes where the file has them; returns what is unread.
  std::size_t fill_input(std::size_t wanted) {
    if (stream_.avail_in >= wanted) return stream_.avail_in;
    if (stream_.avail_in > 0) std::memmove(input_.data(), stream_.next_in, stream_.avail_in);
    const std::size_t got =
        std::fread(input_.data() + stream_.avail_in, 1, input_.size() - stream_.avail_in, file());
    if (got == 0 && std::ferror(file()))
      idx_fail(path_, std::string("read error (") + std::strerror(errno) + ")");
    stream_.next_in = input_.data();
    stream_.avail_in += unsigned(got);
    return stream_.avail_in;
  }

  // After a member's trailer (its checksum verified): the file ends, another member starts, or it holds
  // something that is not gzip.
  void next_member() {
    const std::size_t unread = fill_input(2);
    if (unread == 0) {
      finished_ = true;
    } else if (unread >= 2 && is_gzip_magic(stream_.next_in)) {
      inflateReset(&stream_);
    } else {
      std::error_code ec;
      const auto size = std::filesystem::file_size(path_, ec);
      const long position = std::ftell(file());
      // The file's size now may be less than the position read to if it shrank meanwhile.
      const std::string count = !ec && position >= 0 && size >= uint64_t(position)
                                    ? count_of(size - uint64_t(position) + unread, "byte")
                                    : "bytes";
      idx_fail(path_, count +
                          " after the end of the gzip stream that are not gzip data (appended to, or two "
                          "files joined?)");
    }
  }

  std::FILE* file() const { return file_.get(); }

  struct CloseFile {
    void operator()(std::FILE* f) const { std::fclose(f); }
  };

  std::filesystem::path path_;
  std::unique_ptr<std::FILE, CloseFile> file_;
  bool gzipped_ = false;
  bool inflating_ = false;  // stream_ initialised, to be ended
  z_stream stream_{};
  std::vector<unsigned char> input_;
  bool finished_ = false;
};

}  // namespace detail

// Reads an IDX file of unsigned bytes (raw or .gz), validating the magic, rank, dimensions and that the data
// length matches the header exactly (no truncation, no trailing bytes). Throws IdxError naming the file.
inline IdxArray read_idx(const std::filesystem::path& path) {
  using detail::idx_fail;
  detail::IdxSource source(path);
  const std::string kind = source.gzipped() ? " (decompressed)" : "";

  unsigned char magic[4];
  const std::size_t magic_got = source.read(magic, 4);
  if (magic_got < 4)
    idx_fail(path,
             "truncated: " + detail::count_of(magic_got, "byte") + kind + ", too short for the 4-byte magic");
  char hex[16];
  std::snprintf(hex, sizeof hex, "%02X %02X %02X %02X", magic[0], magic[1], magic[2], magic[3]);
  if (magic[0] != 0 || magic[1] != 0 || detail::idx_type_name(magic[2]).empty())
    idx_fail(path, std::string("bad magic ") + hex + ", expected 00 00 <type> <rank>; not an IDX file");
  if (magic[2] != detail::kIdxUnsignedByte)
    idx_fail(path, "unsupported element type " + detail::idx_type_name(magic[2]) + " (magic " + hex +
                       "); only unsigned byte (0x08) is supported");
  const int rank = magic[3];
  if (rank == 0) idx_fail(path, std::string("bad magic ") + hex + ": rank 0");

  std::vector<unsigned char> header(std::size_t(rank) * 4);
  const std::size_t header_got = source.read(header.data(), header.size());
  if (header_got < header.size())
    idx_fail(path, "truncated header: rank " + std::to_string(rank) + " needs " +
                       std::to_string(header.size()) + " dimension bytes, found " +
                       std::to_string(header_got));

  IdxArray out;
  out.dims.resize(std::size_t(rank));
  int64_t expected = 1;
  for (int d = 0; d < rank; ++d) {
    const unsigned char* b = &header[std::size_t(d) * 4];
    const int64_t dim =
        int64_t(uint32_t(b[0]) << 24 | uint32_t(b[1]) << 16 | uint32_t(b[2]) << 8 | uint32_t(b[3]));
    out.dims[std::size_t(d)] = dim;
    // Checked before multiplying, so a corrupt header cannot overflow or ask for terabytes.
    if (dim != 0 && expected > detail::kIdxMaxBytes / dim)
      idx_fail(path, "implausible dimensions " +
                         shape_str(Shape(out.dims.begin(), out.dims.begin() + d + 1)) +
                         "...: over 1 TiB of data; corrupt header?");
    expected *= dim;
  }
  const int64_t header_bytes = 4 + 4 * int64_t(rank);
  const auto promised = [&] {
    return "header promises dimensions " + shape_str(out.dims) + " = " + std::to_string(expected) +
           " data bytes";
  };

  if (!source.gzipped()) {
    // Raw files: compare with the file size before allocating anything.
    std::error_code ec;
    const auto file_size = int64_t(std::filesystem::file_size(path, ec));
    if (!ec && file_size - header_bytes < expected)
      idx_fail(path, "truncated: " + promised() + " but only " + std::to_string(file_size - header_bytes) +
                         " follow the header");
  }

  // Grow in steps for gzipped files, whose real length is unknown until read: a corrupt header promising
  // gigabytes then fails as truncated instead of allocating all of it first.
  constexpr int64_t kStep = int64_t{64} << 20;
  int64_t have = 0;
  while (have < expected) {
    const int64_t target = std::min(expected, std::max(have * 2, kStep));
    out.data.resize(std::size_t(target));
    const std::size_t got = source.read(out.data.data() + have, std::size_t(target - have));
    have += int64_t(got);
    if (have < target) {
      idx_fail(path, "truncated: " + promised() + " but only " + std::to_string(have) + " follow the header" +
                         kind);
    }
  }
  const uint64_t extra = source.count_remaining();
  if (extra > 0)
    idx_fail(path, "size mismatch: " + detail::count_of(extra, "trailing byte") + kind + " after the " +
                       std::to_string(expected) + " data bytes the header describes (dimensions " +
                       shape_str(out.dims) + ")");
  return out;
}

}  // namespace sumi::data
