#pragma once
// Data access to a block device (an NVMe namespace reached over the fabric): BlockSource and
// BlockSink over its device node.
//
// A block device has no holes to seek (SEEK_DATA answers its whole range), so the copy engine
// reads every chunk of a DeviceSource and finds the all-zero ones by looking; a file standing in
// for a device (a test's model) tells its holes the same way a file does. Reads go through the
// page cache with sequential readahead; writes too, or with `direct` through O_DIRECT where the
// device accepts it (a buffered descriptor is kept for what O_DIRECT refuses: EINVAL, a length
// or offset not aligned to the logical block size). sync() flushes either way. A read that ends
// before the device's size is an I/O error (UNAVAILABLE): the device went away or shrank under
// the copy, and a retry must reconnect.

#include <cstdint>
#include <memory>
#include <optional>
#include <string>

#include "copy/file_io.hpp"
#include "dmscore/copy.hpp"

namespace dmscore::detail {

class DeviceFile {
 public:
  // Opens `path` read-only or read-write (`direct`: writes O_DIRECT). `size` is what the device
  // must hold at least (the volume's size): a shorter device is FAILED_PRECONDITION.
  static Result<DeviceFile> open(const std::string& path, bool writable, std::uint64_t size,
                                 bool direct = false);

  std::uint64_t size() const { return size_; }
  const std::string& path() const { return path_; }
  bool direct() const { return direct_.valid(); }
  Status read_at(std::uint64_t offset, void* buf, std::size_t len) const;
  Status write_at(std::uint64_t offset, const void* buf, std::size_t len) const;
  // BLKZEROOUT on a block device; on a file, a punched hole (or written zeros).
  Status zero_range(std::uint64_t offset, std::uint64_t len) const;
  Status sync() const;
  int fd() const { return buffered_.get(); }

 private:
  template <class Buf, class Op>
  Status transfer(const char* what, std::uint64_t offset, Buf* p, std::size_t len, Op op) const;

  std::string path_;
  std::uint64_t size_ = 0;
  bool block_device_ = false;
  Fd direct_;    // O_DIRECT, when accepted
  Fd buffered_;  // always
};

class DeviceSource final : public BlockSource {
 public:
  explicit DeviceSource(DeviceFile dev, std::shared_ptr<void> keep = nullptr)
      : keep_(std::move(keep)), dev_(std::move(dev)) {}
  std::uint64_t size() const override { return dev_.size(); }
  Result<std::vector<Extent>> data_extents(std::uint64_t from, std::uint64_t to) const override;
  Status read_at(std::uint64_t offset, void* buf, std::size_t len) const override {
    return dev_.read_at(offset, buf, len);
  }

 private:
  // Declared first, so destroyed last: the device is closed before its connection goes.
  std::shared_ptr<void> keep_;  // what must live while the device is open (its connection)
  DeviceFile dev_;
};

class DeviceSink final : public BlockSink {
 public:
  DeviceSink(DeviceFile dev, bool fresh, std::shared_ptr<void> keep = nullptr)
      : keep_(std::move(keep)), dev_(std::move(dev)), fresh_(fresh) {}
  std::uint64_t size() const override { return dev_.size(); }
  Status write_at(std::uint64_t offset, const void* buf, std::size_t len) override {
    return dev_.write_at(offset, buf, len);
  }
  Status zero_range(std::uint64_t offset, std::uint64_t len) override {
    return dev_.zero_range(offset, len);
  }
  Status sync() override { return dev_.sync(); }
  bool known_zeroed() const override { return fresh_; }

 private:
  std::shared_ptr<void> keep_;
  DeviceFile dev_;
  bool fresh_;
};

}  // namespace dmscore::detail
