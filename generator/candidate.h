// One kernel to generate: a family's config bound to a shape and an arch. Target- and
// family-neutral, so the compile, prune and pack stages handle every family alike.
#pragma once
#include <string>

#include "template_subst.h"

namespace kf {

struct Candidate {
  std::string op;             // family, e.g. "w4a16_linear"
  std::string kind;           // "decode", "prefill", ...
  std::string arch;           // "gfx1151", "sm_90a", ...
  std::string shape;          // canonical shape key
  std::string config;         // canonical config key
  std::string name;           // kernel symbol = op_kind_shape_config
  std::string instance;       // instance template, relative to the templates dir
  TemplateParams params;      // exactly the instance template's placeholders
  int threads = 0;            // threads per block
  bool needs_mma = false;     // the kind must compile to matrix instructions
  int min_occupancy = 1;      // waves per SIMD below which the candidate is pruned
  int dynamic_shared = 0;     // bytes of dynamic shared memory its launch passes (counted
                              // with the static ones for occupancy and pruning)
};

}  // namespace kf
