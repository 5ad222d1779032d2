#pragma once
// An exclusive advisory lock on a folder, held while a process owns the files in it: two processes that
// append to and then rewrite the same results file would otherwise lose one's rows without an error.
#include <fcntl.h>
#include <sys/file.h>
#include <unistd.h>

#include <cerrno>
#include <cstring>
#include <filesystem>
#include <stdexcept>
#include <string>
#include <utility>

namespace sumi::util {

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
  FolderLock(FolderLock&& other) noexcept : fd_(std::exchange(other.fd_, -1)) {}
  FolderLock(const FolderLock&) = delete;
  FolderLock& operator=(const FolderLock&) = delete;
  FolderLock& operator=(FolderLock&&) = delete;
  ~FolderLock() {
    if (fd_ >= 0) ::close(fd_);  // closing the last descriptor releases the lock
  }

 private:
  int fd_ = -1;
};

}  // namespace sumi::util
