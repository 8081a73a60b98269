// The kernel pack: one SQLite file (DIR/kforge.sqlite) holding every generated kernel
// with its code object, resources and status, the model layers it serves, and (once
// autotune has run on it) every measurement and the winners per M range. Other
// tools (autotune, runtime, tests) rely on this schema; PRAGMA user_version is its
// version and is checked on open, so a foreign or future file is refused untouched.
#pragma once
#include <sqlite3.h>

#include <cstdint>
#include <map>
#include <string>
#include <vector>

namespace kf {

// 2: `routing` in results and winners (MoE tuning per routing archetype). Opening a
// version 1 pack migrates it in place, in one transaction, keeping every row.
constexpr int kPackSchemaVersion = 2;

struct PackKernel {
  std::string name, arch, op, kind, shape, config;
  std::vector<uint8_t> code_object;  // empty when the candidate did not compile
  int vgprs_or_regs = 0, sgprs = 0, agprs = 0, lds_bytes = 0, scratch_bytes = 0, spills = 0;
  int occupancy = 0, threads = 0;
  int mma_count = -1;                // -1: not checked
  std::string status;                // ok | pruned:<why> | compile_error
  std::string compiler;
  // Hash of everything that built the code object: generated source, templates,
  // compiler identity and flags (the compile cache key).
  std::string source_hash;
  std::string log;
  // Hex SHA-256 of code_object (sha256_hex, compile_cache.h), "" when not known. Table
  // code_digests keeps it where a shipped DB drops the object (tools/slim_db.py).
  std::string code_sha256;
};

struct PackShape {
  std::string model, layer, op, shape;
  int count = 0;
};

class Pack {
 public:
  // Opens (creating when `create` and absent) and checks the schema; a version 1 pack is
  // migrated to the current version (one transaction, nothing lost). Throws kf::Error
  // naming the path for a file that is not SQLite, not a kforge pack, or of another
  // schema version; such a file is never modified.
  static Pack open(const std::string& path, bool create);
  // Opens an existing pack of schema version 1 or the current one for reading only: no
  // migration, no write (checks and reports read a tracked DB this way). Throws like open.
  static Pack open_read_only(const std::string& path);
  Pack(Pack&& o) noexcept : db_(o.db_), path_(std::move(o.path_)) { o.db_ = nullptr; }
  Pack(const Pack&) = delete;
  ~Pack();

  void begin();
  void commit();
  void rollback();
  void put_kernel(const PackKernel& k);   // insert or replace by (name, arch), with its digest
  // Measurements of `k.name` on `k.arch` taken of a code object built differently from
  // `k` (another source_hash) no longer describe it: deletes them, so autotune measures
  // the kernel again, unless the stored code object is byte for byte k's (a template
  // change that leaves this kernel's code alone: a comment, another kind's branch), or,
  // where the object was not kept (a shipped DB's non-winners), its digest matches.
  // Returns how many went. Call before put_kernel.
  int drop_stale_results(const PackKernel& k);
  void put_shape(const PackShape& s);     // insert or ignore
  void set_meta(const std::string& key, const std::string& value);
  // Drops the rows of (arch, op, shape) whose name is not in `keep`: kernels a newer
  // candidate space no longer emits. Returns how many went.
  int delete_stale(const std::string& arch, const std::string& op, const std::string& shape,
                   const std::vector<std::string>& keep);

  std::vector<PackKernel> kernels(const std::string& where_sql = "") const;
  // name -> source_hash of the kernels of `arch` that can run (not slimmed out of a
  // shipped DB: tools/slim_db.py leaves no code object and status pruned:not_a_winner).
  std::map<std::string, std::string> runnable_hashes(const std::string& arch) const;
  std::vector<PackShape> shapes() const;
  std::string meta(const std::string& key) const;
  const std::string& path() const { return path_; }

 private:
  Pack(sqlite3* db, std::string path) : db_(db), path_(std::move(path)) {}
  void exec(const std::string& sql) const;
  sqlite3* db_;
  std::string path_;
};

}  // namespace kf
