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
