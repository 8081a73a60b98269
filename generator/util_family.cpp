#include "util_family.h"

namespace kf {

Candidate make_util_candidate(const ArchInfo& arch) {
  Candidate c;
  c.op = "util";
  c.kind = "util";
  c.arch = arch.name;
  c.shape = "none";
  c.config = "v1";
  c.name = "kf_util_stream_read";
  c.threads = 256;
  c.instance = "util/util.cu.in";
  c.params = {{"config", "util v1 " + arch.name}};
  c.min_occupancy = 1;
  return c;
}

}  // namespace kf
