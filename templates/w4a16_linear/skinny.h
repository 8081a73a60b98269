// w4a16_linear skinny kernel: y[M, N] = x[M, K] * dequant(W)^T for M <= 16 on the
// matrix instructions, B fragments built from the GPTQ words themselves (no dequantised tile).
//
// Why: the decode kind spends ~5 issue slots per int4 weight on CUDA cores (nibble to
// float, zero point, scale, FMA), which at M = 1 costs as long as the weight stream
// itself (bench/NOTES.md linear v7). Here a pair of weights costs a shift and a logic op
// (128 + q or 1024 + q, exact in 16 bits), the multiply-add is a matrix instruction, and
// once per group the fold removes the bias (with the group's x sums, one more matrix
// product) and applies the scale to the fp32 sums.
//
// A block covers BN columns and 16 rows of M (rows past M are zeros and never stored).
// Each of its WARPS warps takes a contiguous K slice (K / SPLIT_K / WARPS, whole groups)
// and walks it in 32-k spans. A span's 4 GPTQ word rows x BN columns, and each lane's
// two rows of x, travel by asynchronous copies into the warp's ring of STAGES
// shared-memory slots, so STAGES spans are in flight while the warp multiplies, at no
// register cost. The copies read whole 256- or 512-byte row pieces, and each lane reads
// back the 16 bytes its fragments need (skinny_tiling.h): the warp synchronises between
// copies landing and reads, and between reads and refills (no block barrier). Measured
// on the way here (bench/NOTES.md linear v8-v10): a register ring left too few warps per
// SM, and copies of 8 lanes x 128 bytes per row cost 1.5x the read floor by themselves.
// The warps' sums meet in shared memory in a fixed order; SPLIT_K > 1 spreads K over
// the blocks of a thread-block cluster too (sm_90), block 0 of which sums their tiles
// from distributed shared memory.
// Its entry points wait for the kernel before them first (kf_grid_dependency.h), so the
// runtime may launch them to overlap that kernel.
// A Rows policy (rows.h) says which rows of x a block reads and where its rows go, so the
// MoE GEMMs run the same body over routed rows (w4a16_moe/gemm_skinny.h), with the
// fused SiLU (silu.h: the block's upper BN/2 columns are the up partners of the lower)
// or the top_k-summing epilogue (kReduce).
// The paired swapped form (block_m 16, PAIRED; `_sw` in the config key) takes 16 rows with
// the weights as the A operand: each biased weight pair feeds two products, one per 8-row
// half of x, where block_m 8 runs M = 16 as two blocks per column block that each unpack
// the same weights (the unpacking is what a decode kernel's issue slots go to:
// bench/NOTES.md linear v27). Each half has its own group sums and x sums, folded alike.
// NVIDIA only (mma.sync m16n8k16 layout); the generator does not emit it for AMD.
#pragma once
#include "kf_cluster.h"
#include "kf_grid_dependency.h"
#include "kf_mbarrier.h"
#include "kf_portability.h"
#include "w4a16_linear/args.h"
#include "w4a16_linear/rows.h"
#include "w4a16_linear/silu.h"
#include "w4a16_linear/skinny_tiling.h"
#include "w4a16_linear/tiling.h"

// Timeline hooks for development harnesses (bench/linear/decode_timeline.cu defines it to
// stamp the global timer); compiled out everywhere else.
#ifndef KF_SKINNY_STAMP
#define KF_SKINNY_STAMP(point) \
  do {                         \
  } while (0)
#endif

namespace kf {
namespace w4a16 {
namespace skinny {

#if KF_MMA_SM80
// Nibbles i and i + 4 of w as a 16-bit pair of the activation type, biased: the nibbles
// land in the low mantissa bits of 2^7 (bf16) or 2^10 (fp16), which makes 128 + q or
// 1024 + q exactly, in one shift and one logic op. The products are taken with the bias
// in, and the fold removes it per group: sum (B + q) x - (B + z) sum x = sum (q - z) x,
// where sum x comes from one more matrix product of the same A with a B of ones
// (x_sums). That leaves no per-weight subtract and no per-column zero registers.
// The mask and the or are one lop3 ((a & b) | c, table 0xEA): written as C++, nvcc
// emits two logic ops per pair (a SASS logic op takes one immediate), which was 88 of
// the ~144 instructions per span of the swapped form (bench/NOTES.md linear v11).
template <bool BF16>
KF_INLINE uint32_t biased_pair(uint32_t w, int i) {
  const uint32_t nibbles = w >> (4 * i);
  uint32_t pair;
  asm("lop3.b32 %0, %1, %2, %3, 0xEA;" : "=r"(pair) : "r"(nibbles), "n"(0x000F000F), "n"(BF16 ? 0x43004300 : 0x64006400));
  return pair;
}
template <bool BF16>
constexpr float kBias = BF16 ? 128.f : 1024.f;

// d += a b, one m16n8k16 (A 16 x 16 in 4 registers, B 16 x 8 in 2, fp32 C in 4).
template <bool BF16>
KF_INLINE void mma_16n8(float (&d)[4], uint32_t a0, uint32_t a1, uint32_t a2, uint32_t a3, uint32_t b0,
                        uint32_t b1) {
  if constexpr (BF16) {
    asm volatile(
        "mma.sync.aligned.m16n8k16.row.col.f32.bf16.bf16.f32 "
        "{%0,%1,%2,%3}, {%4,%5,%6,%7}, {%8,%9}, {%0,%1,%2,%3};\n"
        : "+f"(d[0]), "+f"(d[1]), "+f"(d[2]), "+f"(d[3])
        : "r"(a0), "r"(a1), "r"(a2), "r"(a3), "r"(b0), "r"(b1));
  } else {
    asm volatile(
        "mma.sync.aligned.m16n8k16.row.col.f32.f16.f16.f32 "
        "{%0,%1,%2,%3}, {%4,%5,%6,%7}, {%8,%9}, {%0,%1,%2,%3};\n"
        : "+f"(d[0]), "+f"(d[1]), "+f"(d[2]), "+f"(d[3])
        : "r"(a0), "r"(a1), "r"(a2), "r"(a3), "r"(b0), "r"(b1));
  }
}
template <bool BF16>
constexpr uint32_t kOnes = BF16 ? 0x3F803F80u : 0x3C003C00u;  // 1.0 in both halves

// xs += A times a B of ones: xs[0] (= xs[1]) is the sum of row g's 16 x values of the
// atom, xs[2] (= xs[3]) that of row g + 8 (the C layout: c0, c1 row g; c2, c3 row g + 8).
template <bool BF16>
KF_INLINE void x_sums(float (&xs)[4], const FragA& a) {
  mma_16n8<BF16>(xs, a.r[0], a.r[1], a.r[2], a.r[3], kOnes<BF16>, kOnes<BF16>);
}

// The warp's lanes meet, their shared-memory traffic ordered (NVIDIA: bar.warp.sync). Here
// rather than in kf_portability.h: the kind is NVIDIA only, and every kernel includes that
// header (an edit there rebuilds them all).
KF_INLINE void warp_sync() { __syncwarp(); }

// The block's ring and tile: a static array when they fit 48 KiB, else the dynamic shared
// memory the launch passes (skinny_tiling.h, dynamic_shared_bytes). ALIGN: 128 in split-K
// kernels, whose barrier (split_barrier) is a static word that comes first; behind it a
// ring of 16-byte alignment started off a 128-byte line, every 8-lane copy of 128 bytes
// straddling two, and the first span landed 0.2-1.0 us later, more with more rows of x
// (bench/NOTES.md linear v56). 16, the type's own, elsewhere.
template <bool DYNAMIC, int UNITS, int ALIGN>
KF_INLINE u32x4* shared_units() {
  if constexpr (DYNAMIC) {
    extern __shared__ __align__(ALIGN) u32x4 kf_skinny_dynamic_shared[];
    return kf_skinny_dynamic_shared;
  } else {
    KF_SHARED __align__(ALIGN) u32x4 units[UNITS];
    return units;
  }
}

// Split-K: the barrier that counts the other blocks' sums into block 0 of a cluster (their
// bytes land after its ring: skinny_tiling.h received_bytes).
KF_INLINE uint64_t* split_barrier() {
  KF_SHARED uint64_t bar;
  return &bar;
}

// Halves (lo of a, lo of b) or (hi of a, hi of b): x values 4 apart in k, one register.
KF_INLINE uint32_t pair_lo(uint32_t a, uint32_t b) { return __byte_perm(a, b, 0x5410); }
KF_INLINE uint32_t pair_hi(uint32_t a, uint32_t b) { return __byte_perm(a, b, 0x7632); }
// The x values at offsets kk and kk + 4 (0 <= kk < 4) of a 16-byte x unit (8 values of
// one row, 2 per word) as one register: half kk % 2 of words kk / 2 and kk / 2 + 2.
KF_INLINE uint32_t x_pair(const u32x4& unit, int kk) {
  const uint32_t w[4] = {unit.x, unit.y, unit.z, unit.w};
  return kk % 2 ? pair_hi(w[kk / 2], w[kk / 2 + 2]) : pair_lo(w[kk / 2], w[kk / 2 + 2]);
}

#endif

}  // namespace skinny

// BM 16: x is the A operand (16 rows of M per block); BM 8: the swapped form
// (skinny_tiling.h), the weights are the A operand and x the B operand (8 rows of M);
// BM 16 with PAIRED: the swapped form over two 8-row halves of x, each weight fragment
// feeding one product per half (skinny_tiling.h paired_row, paired_col).
template <class Rows, int N, int K, int G, bool BF16, bool ASYM, int BM, int BN, int WARPS, int SPLIT_K,
          int STAGES, bool SILU = false, bool PAIRED = false>
KF_INLINE void skinny_body(const Rows rows, const kf_linear_args& args) {
#if KF_MMA_SM80
  static_assert(skinny::valid(N, K, G, BN, WARPS, SPLIT_K, STAGES, BM), "invalid skinny config");
  static_assert(!PAIRED || BM == skinny::kRows, "the paired swapped form takes 16 rows");
  constexpr bool SWAP = BM == skinny::kRowsSwapped || PAIRED;  // the weights are the A operand
  constexpr int XUNITS = SWAP && !PAIRED ? 1 : 2;              // x units per lane per span
  constexpr int CE = SWAP && !PAIRED ? 4 : 8;                  // accumulator elements per atom
  static_assert(!SILU || skinny::silu_valid(BN), "fused SiLU: whole 32-column chunks of gate and of up");
  static_assert(!(SILU && Rows::kReduce), "fused SiLU and the top_k sum are different GEMMs' epilogues");
  KF_SKINNY_STAMP(0);  // start
  using T = Act16<BF16>;
  constexpr int CHUNKS = BN / 32;            // 32-column chunks, two atoms each
  constexpr int KW = K / SPLIT_K / WARPS;    // k of one warp
  constexpr int SPANS = KW / skinny::kSpan;  // its 32-k spans
  constexpr int GROUP_SPANS = skinny::fold_k(K, G, KW) / skinny::kSpan;  // spans per scale fold

  const uint32_t* qweight = static_cast<const uint32_t*>(args.qweight);
  const uint16_t* x = static_cast<const uint16_t*>(args.x);
  const uint16_t* scales = static_cast<const uint16_t*>(args.scales);
  const uint32_t* qzeros = static_cast<const uint32_t*>(args.qzeros);
  const int lane = thread_id() % 32, warp = thread_id() / 32;
  const int g = lane / 4, t = lane % 4;
  const int n0 = block_x() * BN, split = block_y(), m0 = block_z() * BM;
  const int k0 = (split * WARPS + warp) * KW;  // this warp's K slice
  // The lane's rows of x: g and g + 8 (A rows), or g alone (the swapped form's B column);
  // rows that are not valid read nothing and stay zero.
  const bool row_ok[2] = {rows.valid(m0 + g), XUNITS == 2 && rows.valid(m0 + g + 8)};
  const uint16_t* xrow[2] = {x + (size_t)rows.x_row(m0 + g) * K, x + (size_t)rows.x_row(m0 + g + 8) * K};
  // The weight column of chunk j's first column (its 32 columns are contiguous): with
  // SILU, chunks of the lower half are gate columns and of the upper half up columns.
  auto chunk_col = [&](int j) {
    return SILU ? silu_weight_col(N, BN, BN / 2, block_x(), 32 * j) : n0 + 32 * j;
  };

  // One ring slot: 16-byte units [0, 32 CHUNKS) are the span's 4 word rows x BN columns
  // in row-major order (swizzled), copied by whole row pieces and read back by the lane
  // whose fragments need them (skinny_tiling.h); units 32 CHUNKS + 32 r + lane are
  // x[row][8t .. 8t + 7] of the lane's two rows, each lane's own (zeros for rows that are
  // not valid: the copy reads nothing).
  constexpr int SLOT = skinny::slot_rows(BN, BM);
  struct Stage {
    u32x4 w[CHUNKS];
    u32x4 xr[XUNITS];
  };
  u32x4* const smem = skinny::shared_units<(skinny::dynamic_shared_bytes(BN, WARPS, STAGES, BM, SPLIT_K) > 0),
                                           skinny::block_bytes(BN, WARPS, STAGES, BM, SPLIT_K) / 16,
                                           (SPLIT_K > 1 ? 128 : 16)>();
  u32x4* const ring = smem + warp * STAGES * SLOT * 32;  // [STAGES][SLOT * 32] of this warp
  // Split-K: block 0 of the cluster sets up the barrier that counts the other blocks' sums
  // in, before any thread arrives on the cluster barrier, which they wait on before
  // storing (after their loops, when the wait is long satisfied).
  constexpr int SPLIT_ENTRIES = BM * BN;
  if constexpr (SPLIT_K > 1) {
    if (cluster::rank() == 0 && thread_id() == 0) {
      mbar::init(skinny::split_barrier(), 1);
      cluster::fence_barrier_init();
    }
    cluster::arrive_relaxed();
  }
  // The span-invariant part of each copy, per lane: its source at span 0 (a span is 4
  // word rows, 4 N words, further on) and its slot position. Worked out once, so a span
  // costs its copies and not their address arithmetic.
  const uint32_t* wsrc[CHUNKS];
  int wdst[CHUNKS];
#pragma unroll
  for (int c = 0; c < CHUNKS; ++c) {
    const int u = 32 * c + lane;
    wsrc[c] = qweight + (size_t)(k0 / 8 + skinny::unit_row(BN, u)) * N + chunk_col(skinny::unit_chunk(BN, u)) +
              skinny::unit_col(BN, u);
    wdst[c] = skinny::swizzled(BN, u);
  }
  const uint16_t* xsrc[2] = {xrow[0] + k0 + 8 * t, xrow[1] + k0 + 8 * t};
  // Copies span `span` into `slot` and closes a group; past the slice the group is empty,
  // which keeps one group per span for the waits.
  auto request = [&](int span, int slot) {
    if (span < SPANS) {
      const size_t advance = (size_t)span * (4 * N);
      u32x4* dst = ring + slot * SLOT * 32;
#pragma unroll
      for (int c = 0; c < CHUNKS; ++c) cp_async16(dst + wdst[c], wsrc[c] + advance, true);
#pragma unroll
      for (int r = 0; r < XUNITS; ++r)
        cp_async16(dst + (CHUNKS + r) * 32 + lane, row_ok[r] ? xsrc[r] + span * skinny::kSpan : x, row_ok[r]);
    }
    cp_async_commit();
  };
  int wread[CHUNKS];  // slot positions of the lane's fragment words, chunk by chunk
#pragma unroll
  for (int j = 0; j < CHUNKS; ++j) wread[j] = skinny::swizzled(BN, skinny::fragment_unit(BN, lane, j));
  // After the wait: the other lanes' copies are visible once the warp has synchronised.
  auto read_slot = [&](int slot) {
    skinny::warp_sync();
    const u32x4* src = ring + slot * SLOT * 32;
    Stage st;
#pragma unroll
    for (int j = 0; j < CHUNKS; ++j) st.w[j] = src[wread[j]];
#pragma unroll
    for (int r = 0; r < XUNITS; ++r) st.xr[r] = src[(CHUNKS + r) * 32 + lane];
    return st;
  };

  // Per atom: 8 fp32 elements (16 x 16), or 4 in the swapped form (its 16 x 8 uses v[0 .. 3];
  // the paired form's second half v[4 .. 7]).
  FragC acc[2 * CHUNKS], gacc[2 * CHUNKS];
#pragma unroll
  for (int a = 0; a < 2 * CHUNKS; ++a)
#pragma unroll
    for (int e = 0; e < CE; ++e) acc[a].v[e] = 0.f;
  // The zero points and scales of the lane's fold columns in each chunk: 8t .. 8t + 7, or
  // 4g .. 4g + 3 in the swapped form (8-byte scale loads: the runtime promises scales
  // 8-byte alignment).
  uint32_t group_zeros[CHUNKS];
  u32x2 group_scales[CHUNKS][2];
  float xsum[4];  // the group's x sums (x_sums)

  // The swapped form's products: per 16-k step, each half's x sums (ones times its B)
  // and, per atom, one product per half from the same A registers. One half (block_m 8:
  // x row g) or, PAIRED, two (x rows g and g + 8: accumulator elements 4-7, x sums in
  // xsum_hi). Summing both halves' rows in one product (their B registers read as an A
  // of x) made the paired form's loop ~0.6 us slower (bench/NOTES.md linear v46).
  constexpr int HALVES = PAIRED ? 2 : 1;
  float xsum_hi[4];
  auto half = [](FragC& f, int h) -> float(&)[4] { return *reinterpret_cast<float(*)[4]>(f.v + 4 * h); };
  auto multiply_swapped = [&](const Stage& st) {
#pragma unroll
    for (int s = 0; s < 2; ++s) {
      // B of half h: register p holds x row g + 8h at k 8t + swapped_b_k(s, p) and + 4.
      uint32_t b[HALVES][2];
#pragma unroll
      for (int h = 0; h < HALVES; ++h)
#pragma unroll
        for (int p = 0; p < 2; ++p) b[h][p] = skinny::x_pair(st.xr[h], skinny::swapped_b_k(s, p));
      constexpr uint32_t one = skinny::kOnes<BF16>;
#pragma unroll
      for (int h = 0; h < HALVES; ++h)  // element v % 2: row 2t + v % 2 of the half
        skinny::mma_16n8<BF16>(h == 0 ? xsum : xsum_hi, one, one, one, one, b[h][0], b[h][1]);
#pragma unroll
      for (int j = 0; j < CHUNKS; ++j) {
        const uint32_t wv[4] = {st.w[j].x, st.w[j].y, st.w[j].z, st.w[j].w};
#pragma unroll
        for (int a = 0; a < 2; ++a) {
          uint32_t ar[4];
#pragma unroll
          for (int p = 0; p < 4; ++p)
            ar[p] = skinny::biased_pair<BF16>(wv[skinny::swapped_a_word(a, p)], skinny::swapped_a_nibble(s, p));
#pragma unroll
          for (int h = 0; h < HALVES; ++h)
            skinny::mma_16n8<BF16>(half(gacc[2 * j + a], h), ar[0], ar[1], ar[2], ar[3], b[h][0], b[h][1]);
        }
      }
    }
  };
  auto multiply_unswapped = [&](const Stage& st) {
#pragma unroll
    for (int s = 0; s < 2; ++s) {
      // A: register p holds x at k 8t + 2s + p / 2 and + 4 of row g + 8 (p % 2).
      FragA fa;
#pragma unroll
      for (int p = 0; p < 4; ++p) fa.r[p] = skinny::x_pair(st.xr[(XUNITS - 1) * (p % 2)], 2 * s + p / 2);
      skinny::x_sums<BF16>(xsum, fa);
#pragma unroll
      for (int j = 0; j < CHUNKS; ++j) {
        const uint32_t wv[4] = {st.w[j].x, st.w[j].y, st.w[j].z, st.w[j].w};
#pragma unroll
        for (int a = 0; a < 2; ++a) {
          FragB fb;
#pragma unroll
          for (int p = 0; p < 4; ++p) fb.r[p] = skinny::biased_pair<BF16>(wv[skinny::b_word(a, p)], skinny::b_nibble(s, p));
          mma16<BF16>(gacc[2 * j + a], fa, fb);
        }
      }
    }
  };
  auto multiply = [&](const Stage& st) {
    if constexpr (SWAP)
      multiply_swapped(st);
    else
      multiply_unswapped(st);
  };

  // Per group: its scales and zero points (both used by the fold), sums zeroed.
  auto start_group = [&](int span) {
    const int grp = (k0 + span * skinny::kSpan) / G;  // 0 throughout for per-channel
#pragma unroll
    for (int j = 0; j < CHUNKS; ++j) {
      // The fold's first column: 8t (8 columns: a whole qzeros word, chunks start at
      // multiples of 32), or 4g in the swapped form (4 columns: half a word).
      const int col = chunk_col(j) + (SWAP ? 4 * g : 8 * t);
      const uint16_t* srow = scales + (size_t)grp * N + col;
      group_scales[j][0] = load8(srow);
      if constexpr (!SWAP) group_scales[j][1] = load8(srow + 4);
      // uint4b8: z = 8; asymmetric: nibbles from the word holding the columns.
      group_zeros[j] = ASYM ? qzeros[(size_t)grp * (N / 8) + col / 8] >> (4 * (col % 8)) : 0x88888888u;
    }
#pragma unroll
    for (int v = 0; v < 4; ++v) xsum[v] = 0.f;
    if constexpr (PAIRED)
#pragma unroll
      for (int v = 0; v < 4; ++v) xsum_hi[v] = 0.f;
#pragma unroll
    for (int a = 0; a < 2 * CHUNKS; ++a)
#pragma unroll
      for (int e = 0; e < CE; ++e) gacc[a].v[e] = 0.f;
  };
  // acc += scale * (the group's biased sums - (bias + z) * its x sums), element by element
  // (fold_col, xsum_elem: skinny_tiling.h).
  auto fold_group = [&]() {
#pragma unroll
    for (int j = 0; j < CHUNKS; ++j) {
      const uint32_t sw[4] = {group_scales[j][0].x, group_scales[j][0].y, SWAP ? 0u : group_scales[j][1].x,
                              SWAP ? 0u : group_scales[j][1].y};
#pragma unroll
      for (int a = 0; a < 2; ++a)
#pragma unroll
        for (int e = 0; e < CE; ++e) {
          // The element's column among the lane's fold columns, and its row's x sum.
          const int c = PAIRED ? skinny::paired_col(a, e) : SWAP ? skinny::swapped_col(a, e) : skinny::fold_col(a, e);
          const float sc = T::to_f32(c % 2 ? sw[c / 2] >> 16 : sw[c / 2] & 0xffffu);
          const float bias = skinny::kBias<BF16> + (float)((group_zeros[j] >> (4 * c)) & 0xfu);
          const float x_sum = PAIRED ? (e < 4 ? xsum : xsum_hi)[skinny::swapped_xsum_elem(e % 4)]
                                     : xsum[SWAP ? skinny::swapped_xsum_elem(e) : skinny::xsum_elem(e)];
          acc[2 * j + a].v[e] += sc * (gacc[2 * j + a].v[e] - bias * x_sum);
        }
    }
  };

  // The ring: request spans 0 .. STAGES - 1; then per span wait for its group (the
  // STAGES - 1 later ones may stay in flight), take its slot into registers, multiply,
  // and refill the slot with the span STAGES ahead (after the multiply, which consumed
  // the registers the slot was read into).
#pragma unroll
  for (int s = 0; s < STAGES; ++s) request(s, s);
#pragma unroll 1
  for (int base = 0; base < SPANS; base += STAGES) {
#pragma unroll
    for (int s = 0; s < STAGES; ++s) {
      const int span = base + s;
      if (span < SPANS) {
        cp_async_wait<STAGES - 1>();
        if (span == 0) KF_SKINNY_STAMP(1);          // the first span has landed
        if (span == SPANS - 1) KF_SKINNY_STAMP(2);  // the last one has
        const Stage st = read_slot(s);
        if (span % GROUP_SPANS == 0) start_group(span);
        multiply(st);
        if (span % GROUP_SPANS == GROUP_SPANS - 1) fold_group();
        skinny::warp_sync();  // every lane has read the slot before any lane refills it
        request(span + STAGES, s);
      }
    }
  }
  KF_SKINNY_STAMP(6);  // warp 0's loop done
  cp_async_wait<0>();
  barrier();  // every warp is done with its ring before the tile reuses the memory
  KF_SKINNY_STAMP(3);  // every warp's loop done

  // The warps' sums, added into one BM x BN tile in warp order (deterministic). Where the
  // ring holds a tile per warp, every warp stores its own and each thread then adds its
  // entries over the warps (as the epilogue reads them, or first for a cluster's sum):
  // one or two barriers, where adding warp after warp into one tile takes one per warp, a
  // chain on the path of every decode layer.
  // In the block_m 8 form only the rows that are stored travel: at M = 1 one of the tile's
  // 8 (a MoE block at small T likewise), where moving every row's sums through shared
  // memory took 0.35-0.75 us after the last span (bench/NOTES.md linear v43). Which rows
  // are valid comes from the lanes' row_ok (lane 4g holds row g), live here anyway: a
  // fresh rows.valid per lane kept a MoE routing load alive across the loop, and spilled.
  // The 16-row forms exchange every row (skipping them spilled the paired form, which
  // serves M = 9-16, where most rows are valid), and so do blocks of fewer than 8 warps,
  // which add their sums warp after warp into one tile: there the row tests cost the
  // stores their vector form, and 2-warp MoE kernels ran ~8% slower at T = 16.
  constexpr bool PER_WARP_TILES =
      WARPS >= 8 && WARPS * skinny::tile_bytes(BN, BM) <= skinny::shared_bytes(BN, WARPS, STAGES, BM);
  constexpr bool SKIP_ROWS = SWAP && !PAIRED && (PER_WARP_TILES || SPLIT_K > 1);
  const uint32_t rows_valid = SKIP_ROWS ? __ballot_sync(0xFFFFFFFFu, row_ok[0]) : 0u;
  auto row_valid = [&](int r) { return !SKIP_ROWS || (rows_valid >> (4 * r) & 1u) != 0; };
  float(*tile)[BN] = reinterpret_cast<float(*)[BN]>(smem);
  // Where accumulator element e of atom a sits in the tile: row, and column within its chunk.
  auto tile_row = [&](int e) {
    return PAIRED ? skinny::paired_row(lane, e) : SWAP ? skinny::swapped_row(lane, e) : skinny::c_row(lane, e);
  };
  auto tile_col = [&](int a, int e) {
    return PAIRED ? 4 * g + skinny::paired_col(a, e) : SWAP ? 4 * g + skinny::swapped_col(a, e) : skinny::c_col(lane, a, e);
  };
  // Where every warp keeps its own tile and no cluster adds more (SPLIT_K 1), the
  // epilogue adds an entry over the warps as it reads it, in the same warp order: a pass
  // that wrote the sums back to the tile and a barrier before the epilogue read them again
  // took ~0.2 us of the decode tail (bench/NOTES.md linear v45).
  constexpr bool SUM_AT_STORE = PER_WARP_TILES && SPLIT_K == 1;
  // Those tiles' rows are BN + 4 words apart where that fits the ring: the swapped forms'
  // 16-byte stores put rows 2t + q of one 8-lane phase in the same banks at a stride of
  // BN (a multiple of 32 words), a 4-way conflict; 4 more words shift rows 2 apart by 8
  // banks (bench/NOTES.md linear v46).
  constexpr int TS = SUM_AT_STORE && WARPS * BM * (BN + 4) * 4 <= skinny::shared_bytes(BN, WARPS, STAGES, BM)
                         ? BN + 4
                         : BN;
  float* const part = &tile[0][0];  // PER_WARP_TILES: [WARPS][BM][TS]; part[0] is the tile
  // The sums of the 4 adjacent columns c .. c + 3 of row r (c a multiple of 4).
  auto sum4_at = [&](int r, int c) {
    if constexpr (SUM_AT_STORE) {
      float4 sum = *reinterpret_cast<const float4*>(&part[r * TS + c]);
#pragma unroll
      for (int w = 1; w < WARPS; ++w) {
        const float4 p = *reinterpret_cast<const float4*>(&part[w * BM * TS + r * TS + c]);
        sum.x += p.x;
        sum.y += p.y;
        sum.z += p.z;
        sum.w += p.w;
      }
      return sum;
    } else {
      return *reinterpret_cast<const float4*>(&tile[r][c]);
    }
  };
  auto sum_at = [&](int r, int c) {
    if constexpr (SUM_AT_STORE) {
      float sum = part[r * TS + c];
#pragma unroll
      for (int w = 1; w < WARPS; ++w) sum += part[w * BM * TS + r * TS + c];
      return sum;
    } else {
      return tile[r][c];
    }
  };
  if constexpr (PER_WARP_TILES && SWAP) {
    // In the swapped forms a lane holds, per chunk and row, the 4 adjacent columns
    // 4g .. 4g + 3 (swapped_col: atom 2j elements q, q + 2, then atom 2j + 1's): one
    // 16-byte store each. Scalar stores issued 4x the shared-memory instructions, all
    // warps' through one pipe at the end of the block (bench/NOTES.md linear v45).
#pragma unroll
    for (int j = 0; j < CHUNKS; ++j)
#pragma unroll
      for (int h = 0; h < HALVES; ++h)
#pragma unroll
        for (int q = 0; q < 2; ++q) {
          const int r = 8 * h + skinny::swapped_row(lane, q);
          const int e = 4 * h + q;
          if (row_valid(r))
            *reinterpret_cast<float4*>(&part[warp * BM * TS + r * TS + 32 * j + 4 * g]) =
                make_float4(acc[2 * j].v[e], acc[2 * j].v[e + 2], acc[2 * j + 1].v[e], acc[2 * j + 1].v[e + 2]);
        }
  } else if constexpr (PER_WARP_TILES) {
#pragma unroll
    for (int j = 0; j < CHUNKS; ++j)
#pragma unroll
      for (int a = 0; a < 2; ++a)
#pragma unroll
        for (int e = 0; e < CE; ++e) {
          if (row_valid(tile_row(e)))
            part[warp * BM * TS + tile_row(e) * TS + 32 * j + tile_col(a, e)] = acc[2 * j + a].v[e];
        }
  }
  if constexpr (PER_WARP_TILES) {
    KF_SKINNY_STAMP(7);  // warp 0's tile stored
    barrier();
    KF_SKINNY_STAMP(8);  // every warp's tile stored (unsplit, the epilogue adds them as it
                         // reads; split, each thread adds its entries below)
  } else {
    for (int w = 0; w < WARPS; ++w) {
      if (warp == w)
#pragma unroll
        for (int j = 0; j < CHUNKS; ++j)
#pragma unroll
          for (int a = 0; a < 2; ++a)
#pragma unroll
            for (int e = 0; e < CE; ++e) {
              float& dst = tile[tile_row(e)][32 * j + tile_col(a, e)];
              dst = w == 0 ? acc[2 * j + a].v[e] : dst + acc[2 * j + a].v[e];
            }
      barrier();
    }
  }

  if constexpr (SPLIT_K > 1) {
    // The SPLIT_K blocks of a tile are one thread-block cluster (cluster dims
    // (1, SPLIT_K, 1), skinny.cu.in). Each thread adds its entries over its block's warps;
    // blocks 1 .. SPLIT_K - 1 store theirs into block 0's `received` (asynchronous remote
    // stores whose bytes complete block 0's barrier) and are done; block 0 waits for the
    // barrier, adds them in rank order (deterministic) and runs the epilogue. No workspace
    // and no counter (their memory round trips cost more than the split gained:
    // bench/NOTES.md linear v20), and no cluster-wide barrier at the end: a barrier, the
    // remote loads and a second barrier took ~0.85 us (v54).
#if defined(__CUDA_ARCH__) && __CUDA_ARCH__ < 900
    static_assert(SPLIT_K == 1, "split-K sums through a thread-block cluster (sm_90)");
#endif
    // Each thread's PER quads (4 adjacent entries of a row, one 16-byte load of each
    // warp's tile and one remote store each); a tile of fewer quads than threads leaves
    // the last pass's upper threads idle. Only the valid rows' quads travel, and block 0
    // expects their bytes (the same count on every block). Written as a loop over a
    // dynamic tile index, ptxas spilled. Against a 4-byte store an entry, every row, this
    // put autotune's split medians 1-2% lower (v54).
    constexpr int THREADS = WARPS * 32, QUADS = SPLIT_ENTRIES / 4, PER = (QUADS + THREADS - 1) / THREADS;
    static_assert(TS == BN && BN % 4 == 0, "the split-K sum reads the warps' tiles as BM x BN each, by quads");
    float* const flat = &tile[0][0];
    float4 sum[PER];
    bool live[PER];  // the quad is in the tile and its row is valid
#pragma unroll
    for (int r = 0; r < PER; ++r) {
      const int i = 4 * (thread_id() + r * THREADS);
      live[r] = (QUADS % THREADS == 0 || i < SPLIT_ENTRIES) && row_valid(i / BN);
      sum[r] = make_float4(0.f, 0.f, 0.f, 0.f);
      if (live[r]) {
        sum[r] = *reinterpret_cast<const float4*>(&part[i]);
        if constexpr (PER_WARP_TILES)
#pragma unroll
          for (int w = 1; w < WARPS; ++w) {
            const float4 p = *reinterpret_cast<const float4*>(&part[w * SPLIT_ENTRIES + i]);
            sum[r].x += p.x;
            sum[r].y += p.y;
            sum[r].z += p.z;
            sum[r].w += p.w;
          }
      }
    }
    KF_SKINNY_STAMP(9);  // thread 0's entries added
    const int valid_rows = SKIP_ROWS ? __popc(rows_valid & 0x11111111u) : BM;  // lane 4g: row g
    const uint32_t rank = cluster::rank();
    float* const received = reinterpret_cast<float*>(smem + skinny::shared_bytes(BN, WARPS, STAGES, BM) / 16);
    cluster::wait();  // every block has started, block 0's barrier is set up
    if (rank != 0) {
      const uint32_t bar = cluster::map(mbar::address(skinny::split_barrier()), 0);
      const uint32_t base = cluster::map(cluster::shared_address(received), 0) + 4 * (rank - 1) * SPLIT_ENTRIES;
#pragma unroll
      for (int r = 0; r < PER; ++r)
        if (live[r]) cluster::store_async(base + 16 * (thread_id() + r * THREADS), sum[r], bar);
      return;
    }
    if (thread_id() == 0) mbar::arrive_expect_tx(skinny::split_barrier(), (SPLIT_K - 1) * valid_rows * BN * 4);
    mbar::wait_cluster(skinny::split_barrier(), 0);
#pragma unroll
    for (int r = 0; r < PER; ++r)
      if (live[r]) {
        const int i = 4 * (thread_id() + r * THREADS);
#pragma unroll
        for (int q = 1; q < SPLIT_K; ++q) {
          const float4 p = *reinterpret_cast<const float4*>(&received[(q - 1) * SPLIT_ENTRIES + i]);
          sum[r].x += p.x;
          sum[r].y += p.y;
          sum[r].z += p.z;
          sum[r].w += p.w;
        }
        *reinterpret_cast<float4*>(&flat[i]) = sum[r];  // only this thread reads or writes these entries
      }
    barrier();
  }

  KF_SKINNY_STAMP(4);  // the block's sums are in its tile
  uint16_t* y = static_cast<uint16_t*>(args.y);
  if constexpr (SILU) {
    // Tile columns [0, BN/2) are gate sums, [BN/2, BN) their up partners; y has N/2 columns.
    constexpr int HALF = BN / 2;
    for (int i = thread_id(); i < BM * HALF; i += WARPS * 32) {
      const int r = i / HALF, c = i % HALF;
      if (!rows.valid(m0 + r)) continue;
      const float f = rows.scale(m0 + r);
      y[(size_t)rows.y_row(m0 + r) * (N / 2) + block_x() * HALF + c] =
          static_cast<uint16_t>(T::from_f32(silu_mul(sum_at(r, c) * f, sum_at(r, c + HALF) * f)));
    }
  } else if constexpr (Rows::kReduce) {
    // Added into y (rows may share a row of y), two adjacent columns at a time.
    for (int i = thread_id(); i < BM * (BN / 2); i += WARPS * 32) {
      const int r = i / (BN / 2), c = 2 * (i % (BN / 2));
      if (rows.valid(m0 + r)) rows.template add_pair<BF16>(y, N, m0 + r, n0 + c, sum_at(r, c), sum_at(r, c + 1));
    }
  } else {
    // 4 adjacent columns a thread: 16-byte tile reads and one 8-byte store of 4 outputs
    // (the runtime asks y for 8-byte alignment, N is a multiple of 32), the passes
    // unrolled. With one column a pass the epilogue took ~0.7 us at block_m 16 bn96 w8,
    // with 4 ~0.4 (bench/NOTES.md linear v46).
    constexpr int QUADS = BM * BN / 4, THREADS = WARPS * 32;
#pragma unroll
    for (int pass = 0; pass < (QUADS + THREADS - 1) / THREADS; ++pass) {
      const int i = thread_id() + pass * THREADS;
      if (QUADS % THREADS != 0 && i >= QUADS) break;
      const int r = i / (BN / 4), c = 4 * (i % (BN / 4));
      if (!rows.valid(m0 + r)) continue;
      const float4 v = sum4_at(r, c);
      const float f = rows.scale(m0 + r);
      const uint32_t lo = T::from_f32(v.x * f) | uint32_t(T::from_f32(v.y * f)) << 16;
      const uint32_t hi = T::from_f32(v.z * f) | uint32_t(T::from_f32(v.w * f)) << 16;
      store8(&y[(size_t)rows.y_row(m0 + r) * N + n0 + c], u32x2{lo, hi});
    }
  }
  KF_SKINNY_STAMP(5);  // stored
#endif
}

}  // namespace w4a16

template <int N, int K, int G, bool BF16, bool ASYM, int BM, int BN, int WARPS, int SPLIT_K, int STAGES,
          bool PAIRED = false>
KF_INLINE void w4a16_linear_skinny(const kf_linear_args& args) {
  // Nothing is read before the kernel before this one is done (kf_grid_dependency.h).
  grid_dependency::wait();
  w4a16::skinny_body<w4a16::DenseRows, N, K, G, BF16, ASYM, BM, BN, WARPS, SPLIT_K, STAGES, false, PAIRED>({args.m},
                                                                                                          args);
}

}  // namespace kf
