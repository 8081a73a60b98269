#include "routing_report.h"

#include <cerrno>
#include <climits>
#include <cstdarg>
#include <cstdio>
#include <cstdlib>
#include <sstream>

#include "error.h"

namespace kf {

namespace {

// Past these a report is neither quick (T x experts noise draws) nor about real kernels.
constexpr int64_t kMaxReportTokens = int64_t(1) << 20;
constexpr int kMaxReportBlockM = 4096;

// Layers sharing one (experts, top_k) route identically, so they share one table.
struct RoutingShape {
  int experts = 0, top_k = 0;
  std::string layers;
};

std::vector<RoutingShape> routing_shapes(const ModelDesc& model) {
  std::vector<RoutingShape> shapes;
  for (const auto& l : model.moe) {
    if (l.experts < 1 || l.experts > INT_MAX || l.top_k < 1 || l.top_k > l.experts)
      throw Error("MoE layer " + l.layer + " has experts = " + std::to_string(l.experts) +
                  ", top_k = " + std::to_string(l.top_k) + " (need 1 <= top_k <= experts)");
    RoutingShape* same = nullptr;
    for (auto& s : shapes)
      if (s.experts == l.experts && s.top_k == l.top_k) same = &s;
    if (!same) {
      shapes.push_back({int(l.experts), int(l.top_k), ""});
      same = &shapes.back();
    }
    same->layers += (same->layers.empty() ? "" : ", ") + l.layer;
  }
  return shapes;
}

std::string printf_str(const char* fmt, ...) __attribute__((format(printf, 1, 2)));
std::string printf_str(const char* fmt, ...) {
  char buf[128];
  va_list ap;
  va_start(ap, fmt);
  vsnprintf(buf, sizeof buf, fmt, ap);
  va_end(ap);
  return buf;
}

std::string trim_right(std::string s) {
  s.erase(s.find_last_not_of(' ') + 1);
  return s;
}

// Column layout: the left part is 40 characters, each block_m cell 15 (" waste% blocks*"),
// so four block_m values fit in 100 columns.
void print_table(std::ostream& os, const RoutingShape& shape, const std::vector<int64_t>& tokens,
                 const std::vector<RoutingArchetype>& archetypes, const std::vector<int>& block_m,
                 uint64_t seed) {
  os << "MoE routing of " << shape.layers << ": " << shape.experts << " experts, top-" << shape.top_k
     << ", seed " << seed << "\n";
  std::string labels(40, ' ');
  for (int bm : block_m) labels += printf_str(" %13s ", ("block_m " + std::to_string(bm)).c_str());
  os << trim_right(labels) << "\n";
  std::string head = printf_str("%-9s %5s %4s %5s %7s %5s", "archetype", "T", "hit", "min", "mean", "max");
  for (size_t i = 0; i < block_m.size(); ++i) head += "  waste blocks ";
  os << trim_right(head) << "\n";

  for (size_t a = 0; a < archetypes.size(); ++a) {
    if (a > 0) os << "\n";
    for (int64_t t : tokens) {
      const std::vector<int32_t> ids = generate_routing(archetypes[a], t, shape.experts, shape.top_k, seed);
      std::vector<RoutingStats> per_bm;
      for (int bm : block_m) per_bm.push_back(routing_stats(ids, t, shape.experts, shape.top_k, bm));
      size_t best = 0;
      for (size_t i = 1; i < per_bm.size(); ++i)
        if (routed_work(per_bm[i]) < routed_work(per_bm[best])) best = i;

      const RoutingStats& s = per_bm.front();  // the loads do not depend on block_m
      std::string row = printf_str("%-9s %5lld %4d %5lld %7.1f %5lld", routing_archetype_name(archetypes[a]),
                                   (long long)t, s.experts_hit, (long long)s.min_load, s.mean_load, (long long)s.max_load);
      for (size_t i = 0; i < per_bm.size(); ++i)
        row += printf_str(" %5.1f%% %6lld%c", 100.0 * per_bm[i].padding_waste, (long long)per_bm[i].blocks,
                          i == best ? '*' : ' ');
      os << trim_right(row) << "\n";
    }
  }
  os << "hit: experts with a token; min/mean/max: tokens per expert; waste: padded slots\n"
     << "holding no token; blocks: block_m-row tiles after moe_align. * least work per T:\n"
     << "padded rows + " << kWeightStreamRows << " rows per block for streaming its expert's weights.\n";
}

}  // namespace

std::vector<int64_t> default_routing_tokens() {
  std::vector<int64_t> t;
  for (int64_t v = 1; v <= 4096; v *= 2) t.push_back(v);
  return t;
}

std::vector<RoutingArchetype> default_routing_archetypes() {
  return {RoutingArchetype::uniform, RoutingArchetype::zipf1, RoutingArchetype::zipf2};
}

std::vector<int> default_routing_block_m() { return {16, 32, 64, 128}; }

int64_t routed_work(const RoutingStats& s) { return s.padded_slots + s.blocks * kWeightStreamRows; }

void print_routing_report(std::ostream& out, const ModelDesc& model, const std::vector<int64_t>& tokens,
                          const std::vector<RoutingArchetype>& archetypes, const std::vector<int>& block_m,
                          uint64_t seed) {
  if (model.moe.empty())
    throw Error("model " + model.name + " has no MoE layer, so there is no routing to report " +
                "(--routing-report needs a mixture-of-experts model, e.g. qwen3-35b, Mixtral, Qwen3-MoE)");
  if (tokens.empty() || archetypes.empty() || block_m.empty())
    throw Error("routing report needs at least one token count, archetype and block_m");
  for (int64_t t : tokens)
    if (t < 1 || t > kMaxReportTokens)
      throw Error("bad token count " + std::to_string(t) + " (1 to " + std::to_string(kMaxReportTokens) + ")");
  for (int bm : block_m)
    if (bm < 1 || bm > kMaxReportBlockM)
      throw Error("bad block_m " + std::to_string(bm) + " (1 to " + std::to_string(kMaxReportBlockM) + ")");
  const std::vector<RoutingShape> shapes = routing_shapes(model);

  // Built whole before writing, so a bad token count leaves no half-printed table.
  std::ostringstream os;
  for (size_t i = 0; i < shapes.size(); ++i) {
    if (i > 0) os << "\n";
    print_table(os, shapes[i], tokens, archetypes, block_m, seed);
  }
  out << os.str();
}

void print_routing_report(std::ostream& out, const ModelDesc& model, const std::string& tokens_csv,
                          const std::string& archetypes_csv, const std::string& block_m_csv,
                          const std::string& seed_text) {
  // Parsed here rather than by CLI11, which would take "-1" as 2^64 - 1.
  uint64_t seed = 0;
  if (!seed_text.empty()) {
    const bool digits = seed_text.find_first_not_of("0123456789") == std::string::npos;
    errno = 0;
    seed = digits ? std::strtoull(seed_text.c_str(), nullptr, 10) : 0;
    if (!digits || errno == ERANGE)
      throw Error("bad --seed '" + seed_text + "' (a whole number from 0 to 18446744073709551615)");
  }
  const auto tokens = tokens_csv.empty() ? default_routing_tokens() : parse_positive_list(tokens_csv, "--tokens");
  const auto archetypes =
      archetypes_csv.empty() ? default_routing_archetypes() : parse_routing_archetypes(archetypes_csv);
  std::vector<int> block_m = default_routing_block_m();
  if (!block_m_csv.empty()) {
    block_m.clear();
    for (int64_t v : parse_positive_list(block_m_csv, "--block-m")) {
      if (v > kMaxReportBlockM)
        throw Error("bad --block-m '" + std::to_string(v) + "' (at most " + std::to_string(kMaxReportBlockM) + ")");
      block_m.push_back(int(v));
    }
  }
  print_routing_report(out, model, tokens, archetypes, block_m, seed);
}

std::vector<int64_t> parse_positive_list(const std::string& csv, const std::string& option) {
  std::vector<int64_t> out;
  std::stringstream ss(csv);
  for (std::string item; std::getline(ss, item, ',');) {
    if (item.empty()) continue;
    try {
      size_t used = 0;
      const long long v = std::stoll(item, &used);
      if (used != item.size() || v <= 0) throw std::invalid_argument(item);
      out.push_back(v);
    } catch (const std::exception&) {
      throw Error("bad " + option + " '" + item + "' (positive integers, comma-separated)");
    }
  }
  if (out.empty()) throw Error(option + " needs a value");
  return out;
}

}  // namespace kf
