#include "vllm_export.h"

#include <sqlite3.h>

#include <algorithm>
#include <filesystem>
#include <fstream>
#include <map>
#include <nlohmann/json.hpp>
#include <set>

#include "error.h"
#include "winners.h"

namespace fs = std::filesystem;

namespace kf {

namespace {

// A read-only connection; every query binds its values.
struct Db {
  sqlite3* db = nullptr;
  std::string path;
  explicit Db(const std::string& p) : path(p) {
    if (sqlite3_open_v2(p.c_str(), &db, SQLITE_OPEN_READONLY, nullptr) != SQLITE_OK) {
      const std::string msg = db ? sqlite3_errmsg(db) : "out of memory";
      sqlite3_close(db);
      throw Error("cannot open tuning db '" + p + "': " + msg);
    }
    sqlite3_busy_timeout(db, 10000);
  }
  ~Db() { sqlite3_close(db); }
  // Rows of text columns.
  std::vector<std::vector<std::string>> rows(const char* sql, const std::vector<std::string>& args) const {
    sqlite3_stmt* s = nullptr;
    if (sqlite3_prepare_v2(db, sql, -1, &s, nullptr) != SQLITE_OK)
      throw Error("tuning db '" + path + "': " + sqlite3_errmsg(db));
    for (size_t i = 0; i < args.size(); ++i) sqlite3_bind_text(s, static_cast<int>(i + 1), args[i].c_str(), -1, SQLITE_TRANSIENT);
    std::vector<std::vector<std::string>> out;
    while (sqlite3_step(s) == SQLITE_ROW) {
      std::vector<std::string> r;
      for (int c = 0; c < sqlite3_column_count(s); ++c) {
        const auto* t = sqlite3_column_text(s, c);
        r.push_back(t ? reinterpret_cast<const char*>(t) : "");
      }
      out.push_back(std::move(r));
    }
    sqlite3_finalize(s);
    return out;
  }
};

}  // namespace

std::string vllm_config_file_name(const MoeShape& gemm1, const std::string& device) {
  std::string name = device;
  std::replace(name.begin(), name.end(), ' ', '_');
  return "E=" + std::to_string(gemm1.experts) + ",N=" + std::to_string(gemm1.n / 2) + ",device_name=" + name +
         ",dtype=int4_w4a16.json";
}

std::string vllm_config_json(const std::string& db_path, const std::string& arch, const std::string& device,
                             const MoeShape& gemm1, bool cold_l2) {
  const Db db(db_path);
  const std::string op = gemm1.op(), shape = gemm1.key(), cold = cold_l2 ? "1" : "0";
  const auto win = db.rows(
      "SELECT m_lo, m_hi, kernel FROM winners WHERE arch = ?1 AND device = ?2 AND op = ?3 AND shape = ?4"
      " AND cold_l2 = ?5 AND routing = '' ORDER BY m_lo",
      {arch, device, op, shape, cold});
  if (win.empty()) return "";
  std::set<int64_t> ts;
  for (const auto& r : db.rows("SELECT DISTINCT m FROM results WHERE arch = ?1 AND device = ?2 AND op = ?3"
                               " AND shape = ?4 AND cold_l2 = ?5 AND routing != '' AND disposition = 'passed'",
                               {arch, device, op, shape, cold}))
    ts.insert(std::stoll(r[0]));
  nlohmann::ordered_json j = nlohmann::ordered_json::object();
  for (int64_t t : ts) {
    std::string kernel;
    for (const auto& w : win)
      if (std::stoll(w[0]) <= t && t <= std::stoll(w[1])) kernel = w[2];
    if (kernel.empty()) continue;
    const auto k = db.rows("SELECT kind, config FROM kernels WHERE arch = ?1 AND name = ?2", {arch, kernel});
    if (k.empty()) throw Error("tuning db '" + db_path + "': winner '" + kernel + "' is not among its kernels");
    const LinearConfig c = parse_linear_config(k[0][0], k[0][1]);
    // GROUP_SIZE_M: kforge's grids walk N fastest with no grouping of M blocks (1 in vLLM's terms).
    // BLOCK_SIZE_M: vLLM's kernel multiplies its tiles with tl.dot, which needs at least
    // 16 rows; a decode winner (1-8 rows per block) maps to that smallest tile.
    j[std::to_string(t)] = {{"BLOCK_SIZE_M", std::max(c.block_m, 16)}, {"BLOCK_SIZE_N", c.block_n}, {"BLOCK_SIZE_K", c.block_k},
                            {"GROUP_SIZE_M", 1},         {"num_warps", c.warps},      {"num_stages", c.stages}};
  }
  return j.dump(4) + "\n";
}

std::vector<std::string> export_vllm_configs(const std::string& db_path, const std::string& arch,
                                             const std::vector<MoeTuneShape>& shapes, bool cold_l2,
                                             const std::string& dir, std::ostream& out) {
  std::error_code ec;
  fs::create_directories(dir, ec);
  if (ec) throw Error("cannot create '" + dir + "': " + ec.message());
  std::vector<std::string> devices;
  for (const auto& r : Db(db_path).rows("SELECT DISTINCT device FROM winners WHERE arch = ?1 AND routing = ''"
                                        " AND op = 'w4a16_moe_gemm1' ORDER BY device",
                                        {arch}))
    devices.push_back(r[0]);
  std::vector<std::string> written;
  for (const auto& s : shapes) {
    if (s.shape.gemm != 1) continue;  // vLLM's file describes the layer by its gate_up GEMM
    for (const auto& dev : devices) {
      const std::string text = vllm_config_json(db_path, arch, dev, s.shape, cold_l2);
      if (text.empty()) continue;
      const std::string path = (fs::path(dir) / vllm_config_file_name(s.shape, dev)).string();
      if (std::find(written.begin(), written.end(), path) != written.end()) {
        out << "autotune: " << path << " already written for another shape of this layer; " << s.key << " skipped\n";
        continue;
      }
      std::ofstream f(path, std::ios::binary | std::ios::trunc);
      f << text;
      if (!f.flush()) throw Error("cannot write '" + path + "'");
      out << "autotune: wrote " << path << " (" << s.key << " on " << dev << ")\n";
      written.push_back(path);
    }
  }
  return written;
}

}  // namespace kf
