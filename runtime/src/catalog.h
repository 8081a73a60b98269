// Turns the rows read from a pack into the lookup structures of kf_db (db.h): parsed
// kernels, the winners of each shape reduced to one contiguous list of M ranges, the
// sorted indexes kf_select, kf_select_linear, kf_select_moe, kf_select_mla and
// kf_select_mxfp4_moe search, and the MoE and sparse MLA helper kernels.
#pragma once
#include "db.h"
#include "pack_reader.h"

namespace kf {
namespace rt {

// Fills db->kernels, handles, ranges and indexes. Rows that cannot be used (unknown
// kind, unparsable key, a winner naming a kernel the pack lacks) are skipped with one
// line on stderr each: a partly damaged pack still serves what it can.
kf_status build_catalog(PackRows&& rows, kf_db* db);

}  // namespace rt
}  // namespace kf
