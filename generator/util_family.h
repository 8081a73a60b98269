// The utility kernels every pack carries per arch (templates/util): a streaming read
// (L2 flush and read floor for timing) and an empty kernel (launch cost). Both live in
// one code object whose pack name is kf_util_stream_read (op "util").
#pragma once
#include "arch.h"
#include "candidate.h"

namespace kf {

Candidate make_util_candidate(const ArchInfo& arch);

}  // namespace kf
