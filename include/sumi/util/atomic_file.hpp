#pragma once
// Atomic file replacement: readers (and a crash at any moment) see either the old complete file or the new
// complete file, never a truncated one. Results, checkpoints and plots are all written this way.
#include <fcntl.h>
#include <sys/file.h>
#include <sys/stat.h>
#include <unistd.h>

#include <algorithm>
#include <atomic>
#include <cerrno>
#include <cstdint>
#include <cstdio>
#include <cstring>
#include <filesystem>
#include <functional>
#include <ostream>
#include <random>
#include <stdexcept>
#include <streambuf>
#include <string>
#include <string_view>
#include <system_error>
#include <utility>
#include <vector>

#include "sumi/util/folder_lock.hpp"

namespace sumi::util {

// An I/O failure while writing or renaming; the message names the target path and the OS reason.
class AtomicWriteError : public std::runtime_error {
 public:
  using std::runtime_error::runtime_error;
};

namespace detail {

// Names of temporary siblings keep at most this many bytes of the target's name, so that the suffix still
// fits within NAME_MAX (255 on Linux file systems).
inline constexpr std::size_t kMaxTempStem = 200;
// A temporary name is the stem, this marker and kTempDigits lowercase hex digits.
inline constexpr std::string_view kTempMarker = ".tmp.";
inline constexpr std::size_t kTempDigits = 16;

[[noreturn]] inline void throw_atomic_write_error(const std::filesystem::path& path, const std::string& what,
                                                  int error_number);

// Creates and opens a new temporary sibling "<name>.tmp.<16 hex digits>" of `path` for writing: in the same
// folder, so the final rename stays on one file system. It is created exclusively (O_EXCL) and never through
// a link (O_NOFOLLOW), with a random name tried again on a clash, so no other writer (another thread, or a
// process in another PID namespace sharing the folder) and no planted link can share it. The descriptor
// holds an exclusive flock on the file, which tells remove_abandoned_temporary_files that its writer is
// alive; a file that sweep removed before the lock was taken is given up for another name. Returns the path
// and the descriptor.
inline std::pair<std::filesystem::path, int> create_temp_sibling(const std::filesystem::path& path) {
  static std::atomic<std::uint64_t> writes{0};
  std::string stem = path.filename().string();
  if (stem.size() > kMaxTempStem) stem.resize(kMaxTempStem);
  std::random_device device;
  for (int attempt = 0; attempt < 64; ++attempt) {
    const std::uint64_t salt = (std::uint64_t{device()} << 32) ^ device() ^ writes++;
    char suffix[32];
    std::snprintf(suffix, sizeof suffix, "%.*s%0*llx", int(kTempMarker.size()), kTempMarker.data(),
                  int(kTempDigits), static_cast<unsigned long long>(salt));
    const std::filesystem::path temp = path.parent_path() / (stem + suffix);
    const int fd = ::open(temp.c_str(), O_WRONLY | O_CREAT | O_EXCL | O_NOFOLLOW | O_CLOEXEC, 0666);
    if (fd < 0) {
      const int error = errno;  // before the message's allocations
      if (error != EEXIST) throw_atomic_write_error(path, "cannot create '" + temp.string() + "'", error);
      continue;
    }
    // Where the file system has no flock, the sweep cannot lock the file either, and leaves it.
    while (::flock(fd, LOCK_EX) != 0 && errno == EINTR) {
    }
    struct stat status {};
    if (::fstat(fd, &status) == 0 && status.st_nlink == 0) {
      ::close(fd);  // removed by a sweep between its creation and the lock
      continue;
    }
    return {temp, fd};
  }
  throw_atomic_write_error(path, "no free temporary name next to it", 0);
}

[[noreturn]] inline void throw_atomic_write_error(const std::filesystem::path& path, const std::string& what,
                                                  int error_number) {
  std::string message = "cannot write '" + path.string() + "' atomically: " + what;
  if (error_number != 0) message += ": " + std::string(std::strerror(error_number));
  throw AtomicWriteError(message);
}

// Writes everything or reports errno; retries the short writes and EINTR that POSIX allows.
inline int write_all(int fd, const char* data, std::size_t size) {
  while (size > 0) {
    const ssize_t written = ::write(fd, data, size);
    if (written < 0) {
      if (errno == EINTR) continue;
      return errno;
    }
    data += written;
    size -= static_cast<std::size_t>(written);
  }
  return 0;
}

// A buffered streambuf over a file descriptor, so the callback form streams to disk without holding the
// whole file in memory. The first failing write's errno is kept and the stream goes bad.
class FdStreambuf : public std::streambuf {
 public:
  explicit FdStreambuf(int fd) : fd_(fd), buffer_(std::size_t{1} << 16) { reset_put_area(); }
  int error() const { return error_; }

 protected:
  int_type overflow(int_type ch) override {
    if (!drain()) return traits_type::eof();
    if (traits_type::eq_int_type(ch, traits_type::eof())) return traits_type::not_eof(ch);
    *pptr() = traits_type::to_char_type(ch);
    pbump(1);
    return ch;
  }
  int sync() override { return drain() ? 0 : -1; }

 private:
  bool drain() {
    if (error_ != 0) return false;
    const std::size_t pending = static_cast<std::size_t>(pptr() - pbase());
    error_ = write_all(fd_, pbase(), pending);
    reset_put_area();
    return error_ == 0;
  }
  void reset_put_area() { setp(buffer_.data(), buffer_.data() + buffer_.size()); }

  int fd_;
  int error_ = 0;
  std::vector<char> buffer_;
};

// Best effort: makes the rename itself durable. Failure here does not undo a successful replacement.
inline void fsync_directory(const std::filesystem::path& directory) {
  const int fd = ::open(directory.empty() ? "." : directory.c_str(), O_RDONLY | O_DIRECTORY | O_CLOEXEC);
  if (fd < 0) return;
  ::fsync(fd);
  ::close(fd);
}

// Whether `name` is a temporary name create_temp_sibling makes.
inline bool is_temp_sibling_name(std::string_view name) {
  if (name.size() <= kTempMarker.size() + kTempDigits) return false;
  const std::string_view digits = name.substr(name.size() - kTempDigits);
  return name.substr(name.size() - kTempDigits - kTempMarker.size(), kTempMarker.size()) == kTempMarker &&
         digits.find_first_not_of("0123456789abcdef") == std::string_view::npos;
}

}  // namespace detail

// Removes the temporary files that writers stopped mid-write (a killed process) left in `folder`, not in its
// subfolders, and returns their names. Only regular files named as write_file_atomically names them are
// touched, and only those whose writer is gone: a live writer holds a lock on its file (see
// detail::create_temp_sibling), so a write in progress, by this process or another, is left alone. Best
// effort: a folder that cannot be read, or a file that cannot be opened, is skipped.
inline std::vector<std::string> remove_abandoned_temporary_files(const std::filesystem::path& folder) {
  std::vector<std::string> removed;
  std::error_code error;
  for (std::filesystem::directory_iterator it(folder, error), end; !error && it != end; it.increment(error)) {
    const std::filesystem::path path = it->path();
    const std::string name = path.filename().string();
    if (!detail::is_temp_sibling_name(name)) continue;
    const int fd = detail::lock_if_abandoned(path, S_IFREG);
    if (fd < 0) continue;
    if (::unlink(path.c_str()) == 0) removed.push_back(name);  // while locked
    ::close(fd);
  }
  std::sort(removed.begin(), removed.end());
  return removed;
}

// Calls `write` with a stream to a new temporary sibling (see detail::create_temp_sibling), then flushes,
// fsyncs and renames it over `path`. On any failure the temporary file is removed: an I/O failure throws
// AtomicWriteError naming `path`, and an exception thrown by `write` itself propagates unchanged. The target
// directory must exist. An existing regular file keeps its permission bits. A symbolic link at `path` is
// replaced by the new file, never written through: following it would let whoever can make a link in the
// folder choose which file a run overwrites.
inline void write_file_atomically(const std::filesystem::path& path,
                                  const std::function<void(std::ostream&)>& write) {
  const std::pair<std::filesystem::path, int> created = detail::create_temp_sibling(path);
  const std::filesystem::path& temp = created.first;
  const int fd = created.second;

  auto fail = [&](const std::string& what, int error_number) {
    ::close(fd);
    std::error_code ignored;
    std::filesystem::remove(temp, ignored);
    detail::throw_atomic_write_error(path, what, error_number);
  };

  struct stat existing {};
  if (::lstat(path.c_str(), &existing) == 0 && S_ISREG(existing.st_mode) &&
      ::fchmod(fd, existing.st_mode & 07777) != 0)
    fail("cannot copy the permissions of the file it replaces", errno);

  {
    detail::FdStreambuf buffer(fd);
    std::ostream stream(&buffer);
    try {
      write(stream);
      stream.flush();
    } catch (...) {
      ::close(fd);
      std::error_code ignored;
      std::filesystem::remove(temp, ignored);
      throw;
    }
    if (buffer.error() != 0) fail("write failed", buffer.error());
    if (!stream) fail("the stream reported an error", 0);
  }
  if (::fsync(fd) != 0) fail("fsync failed", errno);
  // The descriptor, and with it the lock that marks the write as alive, is kept until the rename.
  std::error_code rename_error;
  std::filesystem::rename(temp, path, rename_error);
  if (rename_error) fail("rename from '" + temp.string() + "' failed: " + rename_error.message(), 0);
  // Not checked: fsync has succeeded, so an error close reports now cannot mean lost data, and the complete
  // file is already in place; a write reported as failed would be a false alarm.
  ::close(fd);
  detail::fsync_directory(path.parent_path());
}

// Throws AtomicWriteError naming `path` unless write_file_atomically could create its temporary sibling (the
// folder exists and takes new files), by creating and removing one. For programs that write their outputs
// after long work, so that a path they cannot write fails before the work, not after it.
inline void require_writable_location(const std::filesystem::path& path) {
  const auto [temp, fd] = detail::create_temp_sibling(path);
  ::close(fd);
  std::error_code ignored;
  std::filesystem::remove(temp, ignored);
}

// Replaces `path` with exactly `bytes`, atomically (see the callback form).
inline void write_file_atomically(const std::filesystem::path& path, std::string_view bytes) {
  write_file_atomically(
      path, [bytes](std::ostream& out) { out.write(bytes.data(), std::streamsize(bytes.size())); });
}

}  // namespace sumi::util
