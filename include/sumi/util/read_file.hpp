#pragma once
// Opens or reads a whole file, with errors that name the file and what it was meant to be.
#include <fcntl.h>
#include <sys/stat.h>
#include <unistd.h>

#include <cerrno>
#include <cstdint>
#include <cstring>
#include <filesystem>
#include <stdexcept>
#include <string>

#include "sumi/util/printable.hpp"

namespace sumi::util {

namespace detail {
inline std::string quoted_path(const std::filesystem::path& path) {
  std::string quoted = "'";  // appended piecewise: GCC 12 warns falsely (-Wrestrict) about "'" + string
  quoted += path.string();
  quoted += '\'';
  return quoted;
}
template <class Error>
[[noreturn]] void throw_read_error(const std::string& what, const std::string& quoted_path,
                                   int error_number) {
  throw Error(what + quoted_path + ": " + std::strerror(error_number));
}
}  // namespace detail

// An open file: its descriptor, which the caller closes, and its size when opened (a hint: files in /proc say
// 0).
struct OpenedFile {
  int fd;
  int64_t size;
};

// Opens `path` for reading if it is a regular file (or a link to one): a folder would fail later with an
// error that names nothing, and a pipe or a device would block (for a writer) or never end. Otherwise throws
// `Error` naming the file and `kind` ("CSV file", "IDX file").
template <class Error = std::runtime_error>
OpenedFile open_regular_file(const std::filesystem::path& path, const std::string& kind) {
  const std::string quoted = detail::quoted_path(path);
  // O_NONBLOCK: opening a pipe for reading would otherwise wait for a writer; regular files ignore it.
  const int fd = ::open(path.c_str(), O_RDONLY | O_CLOEXEC | O_NONBLOCK);
  // errno is kept before a message is built: its allocations may change it.
  if (fd < 0) {
    const int error = errno;
    detail::throw_read_error<Error>("cannot open " + kind + " ", quoted, error);
  }
  struct stat info {};
  if (::fstat(fd, &info) != 0) {
    const int error = errno;
    ::close(fd);
    detail::throw_read_error<Error>("cannot read " + kind + " ", quoted, error);
  }
  if (!S_ISREG(info.st_mode)) {
    ::close(fd);
    if (S_ISDIR(info.st_mode)) throw Error(quoted + " is a folder, not " + with_article(kind));
    throw Error(quoted + " is not a regular file (a pipe, socket or device), not " + with_article(kind));
  }
  ::fcntl(fd, F_SETFL, ::fcntl(fd, F_GETFL) & ~O_NONBLOCK);  // a network file system may honour it
  return {fd, int64_t(info.st_size)};
}

// The bytes of `path` (see open_regular_file). A read error is reported, never taken for the end of the file.
template <class Error = std::runtime_error>
std::string read_file_text(const std::filesystem::path& path, const std::string& kind) {
  const auto [fd, size] = open_regular_file<Error>(path, kind);
  const struct Closer {
    int fd;
    ~Closer() { ::close(fd); }
  } closer{fd};
  const std::string quoted = detail::quoted_path(path);
  // The size is a hint (files in /proc say 0 and are read all the same); one too large for memory is named.
  std::string content;
  try {
    content.reserve(static_cast<std::size_t>(size));
  } catch (const std::exception&) {  // bad_alloc, or length_error past max_size()
    throw Error(kind + " " + quoted + " is too large to read into memory (" + std::to_string(size) +
                " bytes)");
  }
  char buffer[1 << 16];
  for (;;) {
    const ssize_t got = ::read(fd, buffer, sizeof buffer);
    if (got == 0) return content;
    if (got < 0) {
      const int error = errno;
      if (error == EINTR) continue;
      detail::throw_read_error<Error>("cannot read " + kind + " ", quoted, error);
    }
    content.append(buffer, static_cast<std::size_t>(got));
  }
}

}  // namespace sumi::util
