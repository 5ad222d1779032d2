#pragma once
// An exclusive advisory lock on a folder, held while a process owns the files in it: two processes that
// append to and then rewrite the same results file would otherwise lose one's rows without an error.
#include <fcntl.h>
#include <sys/file.h>
#include <sys/stat.h>
#include <unistd.h>

#include <cerrno>
#include <cstring>
#include <filesystem>
#include <stdexcept>
#include <string>
#include <utility>

namespace sumi::util {

namespace detail {

// Whether `path` (not followed if a link) still names the file `fd` has open.
inline bool still_named(int fd, const std::filesystem::path& path) {
  struct stat opened {};
  struct stat named {};
  return ::fstat(fd, &opened) == 0 && opened.st_nlink > 0 && ::lstat(path.c_str(), &named) == 0 &&
         named.st_dev == opened.st_dev && named.st_ino == opened.st_ino;
}

// Locks `path` for removal if its owner is gone: opens it without following a link or blocking, checks that
// it is of `type` (S_IFREG or S_IFDIR), takes its flock without waiting (a live owner holds it) and checks
// that the name still is what was locked. Returns the descriptor holding the lock, or -1 to leave it be.
inline int lock_if_abandoned(const std::filesystem::path& path, mode_t type) {
  const int fd = ::open(path.c_str(), O_RDONLY | O_NOFOLLOW | O_NONBLOCK | O_CLOEXEC);
  if (fd < 0) return -1;
  struct stat opened {};
  if (::fstat(fd, &opened) == 0 && (opened.st_mode & S_IFMT) == type && ::flock(fd, LOCK_EX | LOCK_NB) == 0 &&
      still_named(fd, path))
    return fd;
  ::close(fd);
  return -1;
}

}  // namespace detail

class FolderLock {
 public:
  // Locks `folder` (which must exist) or throws naming it: another process holding it, or no such folder.
  // `hint` is added to the message for the first case (what to do instead).
  explicit FolderLock(const std::filesystem::path& folder, const std::string& hint = "") {
    fd_ = ::open(folder.c_str(), O_RDONLY | O_DIRECTORY | O_CLOEXEC);
    if (fd_ < 0)
      throw std::runtime_error("cannot open folder '" + folder.string() +
                               "' to lock it: " + std::strerror(errno));
    if (::flock(fd_, LOCK_EX | LOCK_NB) != 0) {
      const int error = errno;
      ::close(fd_);
      if (error == EWOULDBLOCK)
        throw std::runtime_error("folder '" + folder.string() + "' is in use by another process" +
                                 (hint.empty() ? "" : "; " + hint));
      throw std::runtime_error("cannot lock folder '" + folder.string() + "': " + std::strerror(error));
    }
  }
  // Creates `folder`, which must not exist, and locks it before anything is written into it: for a process
  // that fills a folder and then renames it into place, so that remove_abandoned_folder leaves it alone.
  // Waits for a sweep that locked it first, and creates it again where that sweep removed it. A folder it
  // cannot lock is removed again and refused, as the constructor refuses one.
  static FolderLock create(const std::filesystem::path& folder) {
    for (int attempt = 0; attempt < 64; ++attempt) {
      std::error_code error;
      if (!std::filesystem::create_directory(folder, error))
        refuse_to_create(folder, error ? error.message() : "it exists");
      const int fd = ::open(folder.c_str(), O_RDONLY | O_DIRECTORY | O_NOFOLLOW | O_CLOEXEC);
      if (fd < 0) {
        const int open_error = errno;
        if (open_error == ENOENT) continue;  // removed by a sweep already
        ::rmdir(folder.c_str());
        refuse_to_create(folder, std::string("cannot open it: ") + std::strerror(open_error));
      }
      int locked;
      while ((locked = ::flock(fd, LOCK_EX)) != 0 && errno == EINTR) {
      }
      if (locked != 0) {
        const int lock_error = errno;
        ::close(fd);
        ::rmdir(folder.c_str());
        refuse_to_create(folder, std::string("cannot lock it: ") + std::strerror(lock_error));
      }
      if (detail::still_named(fd, folder)) return FolderLock(fd);
      ::close(fd);  // a sweep that locked it first has removed it
    }
    refuse_to_create(folder, "removed again at every try");
  }
  FolderLock(FolderLock&& other) noexcept : fd_(std::exchange(other.fd_, -1)) {}
  FolderLock(const FolderLock&) = delete;
  FolderLock& operator=(const FolderLock&) = delete;
  FolderLock& operator=(FolderLock&&) = delete;
  ~FolderLock() {
    if (fd_ >= 0) ::close(fd_);  // closing the last descriptor releases the lock
  }

 private:
  explicit FolderLock(int locked_fd) : fd_(locked_fd) {}
  [[noreturn]] static void refuse_to_create(const std::filesystem::path& folder, const std::string& why) {
    throw std::runtime_error("cannot create and lock folder '" + folder.string() + "': " + why);
  }
  int fd_ = -1;
};

// Removes `folder` and everything in it if it is a folder (not a link to one) that no process holds a
// FolderLock on: the work of a process killed before it finished. Returns whether it was removed.
inline bool remove_abandoned_folder(const std::filesystem::path& folder) {
  const int fd = detail::lock_if_abandoned(folder, S_IFDIR);
  if (fd < 0) return false;
  std::error_code error;
  std::filesystem::remove_all(folder, error);
  ::close(fd);
  return !error;
}

}  // namespace sumi::util
