// Devices in the SQLite file of the data directory (the embedded default).
#pragma once

#include <memory>
#include <mutex>
#include <string>
#include <vector>

#include "store/device_store.h"
#include "store/sqlite/sqlite_db.h"

namespace kbgap::store::sqlite {

class SqliteDeviceStore final : public DeviceStore {
 public:
  // Opens or creates the database at `path` and brings its schema up to date.
  static Result<std::unique_ptr<SqliteDeviceStore>> open(const std::string& path);

  Result<DeviceWrite> put(const std::vector<inventory::Device>& devices,
                          std::string_view now) override;
  Result<bool> remove(std::string_view id) override;
  Result<std::vector<inventory::Device>> all() override;
  Result<std::int64_t> version() override;

 private:
  explicit SqliteDeviceStore(Database db) : db_(std::move(db)) {}
  Result<std::int64_t> bump_version();
  std::mutex mutex_;  // the writing connection, used by one thread at a time
  Database db_;
  // version() has connections of its own: in WAL mode they never wait for a writer's
  // transaction, and several threads ask at once without queueing on one.
  struct Reader {
    std::mutex mutex;
    Database db;
    Statement version;
  };
  std::vector<std::unique_ptr<Reader>> readers_;
};

}  // namespace kbgap::store::sqlite
