#pragma once
// Reads a whole file into memory, with errors that name the file and what it was meant to be.
#include <fcntl.h>
#include <sys/stat.h>
#include <unistd.h>

#include <cerrno>
#include <cstring>
#include <filesystem>
#include <stdexcept>
#include <string>

namespace sumi::util {

namespace detail {
[[noreturn]] inline void throw_read_error(const std::string& what, const std::string& quoted_path,
                                          int error_number) {
  throw std::runtime_error(what + quoted_path + ": " + std::strerror(error_number));
}
}  // namespace detail

// The bytes of `path`; `kind` ("CSV file", "JSON file") names what was expected in the errors. Only a regular
// file (or a link to one) is read: a folder fails with a stream error that names nothing, and a pipe or a
// device would block or never end. A read error is reported, never taken for the end of the file.
inline std::string read_file_text(const std::filesystem::path& path, const std::string& kind) {
  std::string quoted = "'";  // appended piecewise: GCC 12 warns falsely (-Wrestrict) about "'" + string
  quoted += path.string();
  quoted += '\'';
  // O_NONBLOCK: opening a pipe for reading would otherwise wait for a writer; regular files ignore it.
  const int fd = ::open(path.c_str(), O_RDONLY | O_CLOEXEC | O_NONBLOCK);
  // errno is kept before a message is built: its allocations may change it.
  if (fd < 0) {
    const int error = errno;
    detail::throw_read_error("cannot open " + kind + " ", quoted, error);
  }
  const struct Closer {
    int fd;
    ~Closer() { ::close(fd); }
  } closer{fd};
  struct stat info {};
  if (::fstat(fd, &info) != 0) {
    const int error = errno;
    detail::throw_read_error("cannot read " + kind + " ", quoted, error);
  }
  if (S_ISDIR(info.st_mode)) throw std::runtime_error(quoted + " is a folder, not a " + kind);
  if (!S_ISREG(info.st_mode))
    throw std::runtime_error(quoted + " is not a regular file (a pipe, socket or device), not a " + kind);
  ::fcntl(fd, F_SETFL, ::fcntl(fd, F_GETFL) & ~O_NONBLOCK);  // a network file system may honour it

  // The size is a hint (files in /proc say 0 and are read all the same); one too large for memory is named.
  std::string content;
  try {
    content.reserve(static_cast<std::size_t>(info.st_size));
  } catch (const std::exception&) {  // bad_alloc, or length_error past max_size()
    throw std::runtime_error(kind + " " + quoted + " is too large to read into memory (" +
                             std::to_string(info.st_size) + " bytes)");
  }
  char buffer[1 << 16];
  for (;;) {
    const ssize_t got = ::read(fd, buffer, sizeof buffer);
    if (got == 0) return content;
    if (got < 0) {
      const int error = errno;
      if (error == EINTR) continue;
      detail::throw_read_error("cannot read " + kind + " ", quoted, error);
    }
    content.append(buffer, static_cast<std::size_t>(got));
  }
}

}  // namespace sumi::util
