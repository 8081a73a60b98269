// Rules and shared-memory plan of the sparse_mla wgmma kind (decode_wgmma.h) as constexpr
// functions: the template static_asserts them, the generator enumerates and sizes launches
// with them and the runtime checks pack rows with them. The grid is the decode kind's
// (launch.h decode_grid with block_h = kBlockH).
#pragma once
#include "kf_mma_layouts.h"  // KF_HD
#include "sparse_mla/launch.h"

namespace kf {
namespace mla {
namespace wgmma {

// 64 heads per block (the instruction's M), 64 KV rows per tile, two warpgroups: one
// computes the scores while the other gathers the next tile; each owns half of the 512
// output dims.
constexpr int kBlockH = 64;
constexpr int kBlockK = 64;
constexpr int kWarps = 8;
constexpr int kStages = 2;  // what 227 KB holds beside Q: a tile in use and one landing

// Byte offsets in the dynamic shared memory, after aligning its start to 1024 bytes (the
// 128-byte swizzle's atom): Q and each KV stage are 64 rows x 576 dims of 16 bits, nine
// 64-dim column blocks of 64 rows x 128 bytes; then the P fragments (16 words per thread
// of a warpgroup), two floats per row (rescale factor; row sum and max at the end), and
// three tiles' KV row numbers.
constexpr int kTileBytes = kBlockK * kHeadDim * 2;  // 73728
constexpr int kQOffset = 0;
KF_HD constexpr int kv_offset(int stage) { return kTileBytes * (1 + stage); }
constexpr int kPOffset = kTileBytes * (1 + kStages);
constexpr int kPWordsPerThread = 16;  // four k16 steps x four A registers
constexpr int kPBytes = 128 * kPWordsPerThread * 4;
constexpr int kMaxOffset = kPOffset + kPBytes;
constexpr int kRowsOffset = kMaxOffset + 2 * kBlockH * 4;
constexpr int kRowBuffers = 3;  // tile c in use, c + 1 being gathered, c + 2 published early
constexpr int kEnd = kRowsOffset + kRowBuffers * kBlockK * 4;

// Byte offset of 16-byte piece `piece` (dims 8 piece .. 8 piece + 7) of row r in a KV
// stage or Q: wg::b_tile_offset_sw128(r, 8 piece, kBlockK) spelled so that, for a run of
// rows starting at a multiple of 8, everything but r * 128 is a compile-time constant.
KF_HD constexpr int row_piece_offset(int r, int piece) {
  return (piece / 8) * (kBlockK * 128) + r * 128 + ((piece % 8) ^ (r % 8)) * 16;
}

// The gather's copies: each warp instruction moves four whole rows' 128-byte column
// blocks. Lane l copies, in row group g of its warp's rows, row 4 g + l / 8 and of it the
// 16-byte piece 8 c + l % 8 for each of the nine column blocks c. So a row's source
// address is formed once per group, and the destination is one of two per-lane bases
// (the swizzle phase of the row, (4 g + l / 8) % 8, depends on g only through g % 2) plus
// a compile-time constant: row_piece_offset(gather_row(l, g), gather_piece(l, c)) ==
// gather_lane_base(l, g % 2) + gather_step(g, c), from the warp's first row (a multiple
// of 8). One copy per piece and group as before, a few instructions per row group.
constexpr int kGatherRows = 4;  // rows per warp copy instruction
KF_HD constexpr int gather_row(int lane, int group) { return kGatherRows * group + lane / 8; }
KF_HD constexpr int gather_piece(int lane, int block) { return 8 * block + lane % 8; }
KF_HD constexpr int gather_lane_base(int lane, int odd_group) {
  return (lane / 8) * 128 + ((lane % 8) ^ (lane / 8 + kGatherRows * odd_group)) * 16;
}
KF_HD constexpr int gather_step(int group, int block) { return block * (kBlockK * 128) + group * kGatherRows * 128; }

// What a launch passes as dynamic shared memory: the plan plus the alignment slack.
KF_HD constexpr int smem_bytes() { return kEnd + 1024; }
constexpr int kMaxShared = 232448;  // sm_90a's opt-in limit per block (227 KB)
static_assert(smem_bytes() <= kMaxShared, "Q, two KV stages and the exchange buffers fit an sm_90a block");

// H a multiple of 64; the config is fixed but for the KV splits.
KF_HD constexpr bool config_valid(int heads, int block_h, int block_k, int warps, int splits, int stages) {
  return heads % kBlockH == 0 && block_h == kBlockH && block_k == kBlockK && warps == kWarps && stages == kStages &&
         splits >= 1 && splits <= kMaxSplits;
}

}  // namespace wgmma
}  // namespace mla
}  // namespace kf
