// w4a16_linear `wgmma` kind (sm_90a only): y[M, N] = x[M, K] * dequant(W)^T for prefill
// M, on Hopper's warpgroup MMA (kf_wgmma.h) with the weights as the A operand.
//
// wgmma takes A from registers and B from shared memory. The int4 weights must be
// dequantised in registers anyway, so they are A (64 weight rows per warpgroup) and x is
// B (block_m tokens, the instruction's N); the product is y^T, stored transposed.
// Each warp's 16 A rows are weight rows in pairs: fragment rows g and g + 8 are weight
// rows 2g and 2g + 1 of the warp's 16, so a thread's two rows sit side by side in every
// GPTQ word row (one 8-byte shared load) and in y (one packed store per token).
//
// K is walked in block_k stages through a ring of STAGES slots filled by 16-byte
// cp.async copies: x 128-byte swizzled for wgmma (wgmma_tiling.h), the raw weight words,
// the stage's group of scales and zero points. A producer warpgroup after the
// multiplying ones issues every copy, with few registers (wgmma_tiling.h). Each slot has
// two phase barriers (kf_mbarrier.h): "full" completes when the slot's copies have
// landed, "empty" when every multiplying warp's products have read it. With each thread
// copying its share, every stage cost each thread its copies' issue, a wait for them, a
// proxy fence and a block barrier at which the warpgroups met, and the loop ran at ~70%
// of the product's rate (bench/NOTES.md linear v48). Per k16 step a thread builds its
// four A registers from four words: the nibbles of k 2t, 2t + 1 of a word (byte t) become a
// biased 16-bit pair by one byte-permute and one lop3 (the 2^7 / 2^10 magic exponent:
// 0x4300 | q is bf16 128 + q, 0x6400 | q is fp16 1024 + q), then (pair - (bias + z)) is
// exact and one multiply applies the scale. Products run asynchronously: a stage's are
// issued back to back and may still run while the next stage is unpacked, so the ring
// releases a slot once the products of the stage after it are under way; the producer
// keeps up to STAGES - 1 stages loading ahead. The producer's copy addresses are fixed
// bases plus constants (a 16-byte column of x, a run of weight words), so issuing a
// stage costs a few instructions per copy: with per-copy index arithmetic the issue cost
// was most of the loop (bench/NOTES.md v13).
#pragma once
#include "kf_cluster.h"
#include "kf_mbarrier.h"
#include "kf_portability.h"
#include "kf_wgmma.h"
#include "w4a16_linear/args.h"
#include "w4a16_linear/rows.h"
#include "w4a16_linear/wgmma_tiling.h"

namespace kf {
namespace w4a16 {
namespace wgmma {

// The biased pair (bias + q of k 2t, bias + q of k 2t + 1) of GPTQ word w (nibble j = k j).
template <bool BF16>
KF_INLINE uint32_t biased_pair(uint32_t w, uint32_t select_t) {
  const uint32_t r = __byte_perm(w, w >> 4, select_t);  // byte 0: byte t of w, byte 2: of w >> 4
  uint32_t pair;
  asm("lop3.b32 %0, %1, %2, %3, 0xEA;" : "=r"(pair) : "r"(r), "n"(0x000F000F), "n"(BF16 ? 0x43004300 : 0x64006400));
  return pair;
}

// (pair - bias) * scale on two packed 16-bit values: the subtraction is exact (small
// integers), so the weight is rounded once, as the reference rounds it.
template <bool BF16>
KF_INLINE uint32_t dequant_pair(uint32_t pair, uint32_t bias, uint32_t scale) {
  if constexpr (BF16) {
    const __nv_bfloat162 v = __hmul2(__hsub2(*reinterpret_cast<const __nv_bfloat162*>(&pair),
                                             *reinterpret_cast<const __nv_bfloat162*>(&bias)),
                                     *reinterpret_cast<const __nv_bfloat162*>(&scale));
    return *reinterpret_cast<const uint32_t*>(&v);
  } else {
    const __half2 v = __hmul2(__hsub2(*reinterpret_cast<const __half2*>(&pair), *reinterpret_cast<const __half2*>(&bias)),
                              *reinterpret_cast<const __half2*>(&scale));
    return *reinterpret_cast<const uint32_t*>(&v);
  }
}

// What a thread multiplies a stage's weights with, for its two columns c0 and c1 (one
// per fragment row): the scale and bias + zero point of each, in both 16-bit halves.
struct StageConsts {
  uint32_t scale[2], bias[2];
};
template <bool BF16, bool ASYM>
KF_INLINE StageConsts stage_consts(const unsigned char* ss, const unsigned char* zs, int c0, int c1) {
  constexpr uint32_t kBias = BF16 ? 0x4300u : 0x6400u;  // 16-bit 128.0 / 1024.0
  const uint16_t* s16 = reinterpret_cast<const uint16_t*>(ss);
  StageConsts q;
  q.scale[0] = s16[c0] * 0x10001u;
  q.scale[1] = s16[c1] * 0x10001u;
  if constexpr (ASYM) {
    const uint32_t* z = reinterpret_cast<const uint32_t*>(zs);
    q.bias[0] = (kBias | (z[c0 / 8] >> (4 * (c0 % 8)) & 0xFu)) * 0x10001u;
    q.bias[1] = (kBias | (z[c1 / 8] >> (4 * (c1 % 8)) & 0xFu)) * 0x10001u;
  } else {
    q.bias[0] = q.bias[1] = (kBias | 8u) * 0x10001u;  // uint4b8: z = 8
  }
  return q;
}

// One k16 product's A registers from its words: lo holds k 0 .. 7 and hi k 8 .. 15 of
// fragment rows g (x) and g + 8 (y).
template <bool BF16>
KF_INLINE void a_fragment(uint32_t (&a)[4], u32x2 lo, u32x2 hi, uint32_t select_t, const StageConsts& q) {
  a[0] = dequant_pair<BF16>(biased_pair<BF16>(lo.x, select_t), q.bias[0], q.scale[0]);
  a[1] = dequant_pair<BF16>(biased_pair<BF16>(lo.y, select_t), q.bias[1], q.scale[1]);
  a[2] = dequant_pair<BF16>(biased_pair<BF16>(hi.x, select_t), q.bias[0], q.scale[0]);
  a[3] = dequant_pair<BF16>(biased_pair<BF16>(hi.y, select_t), q.bias[1], q.scale[1]);
}

// A product width as a type, for code specialised on it.
template <int W>
struct Width {
  static constexpr int value = W;
};

// A count given as a Width (a constant) or as an int (a run-time value).
template <int W>
KF_INLINE constexpr int count_of(Width<W>) {
  return W;
}
KF_INLINE int count_of(int n) { return n; }

}  // namespace wgmma

// The kind's body over dense rows (rows.h), for the weight slice `args` describes (the
// MoE GEMMs' gathered rows take w4a16_moe/wgmma_gathered.h).
// SPLIT_K > 1 (grid z) gives each block K / SPLIT_K: for the middle Ms of narrow layers,
// where the tile grid alone leaves SMs idle. A tile's SPLIT_K blocks are one thread-block
// cluster (cluster dims (1, 1, SPLIT_K), wgmma.cu.in): each leaves its fp32 sums in its
// shared memory, and block r of the cluster sums rows 8j.. of the tile with j = r mod
// SPLIT_K from all of them, in rank order (deterministic), and stores them. No workspace,
// no counter: through global memory the partials cost about what the split gained
// (bench/NOTES.md linear v15, v21).
// STREAM > 0 (stream-K, dense rows only; wgmma_tiling.h): the grid is at most STREAM
// blocks, each taking a run of the tiles' k-steps; a tile's runs meet in the workspace.
template <int N, int K, int G, bool BF16, bool ASYM, int BM, int BN, int BK, int WARPS, int STAGES, int SPLIT_K = 1,
          int STREAM = 0>
KF_INLINE void wgmma_body(const DenseRows& rows, const kf_linear_args& args) {
  using namespace wgmma;
  static_assert(valid(N, K, G, BM, BN, BK, WARPS, STAGES, ASYM, SPLIT_K), "wgmma_tiling.h rules");
  static_assert(STREAM == 0 || (SPLIT_K == 1 && stream_valid(N, K, G, BM, BN, BK, WARPS, STAGES, ASYM, STREAM)),
                "stream-K: no cluster split");
  constexpr int kConsumers = WARPS * KF_WAVE;       // the warpgroups that multiply
  constexpr int kThreads = block_threads(WARPS);    // and the producer warpgroup after them
  constexpr int kCopiers = kThreads - kConsumers;
  static_assert(kCopiers == wg::kThreads, "one producer warpgroup");
  constexpr int XB = x_bytes(BM, BK), WB = w_bytes(BN, BK), SB = s_bytes(BN);
  constexpr int STAGE = stage_stride(BM, BN, BK, ASYM);
  constexpr int KT = K / BK / SPLIT_K, STEPS = BK / 16;  // stages of this block's K slice

  // The ring starts at the first 1024-byte boundary of the dynamic shared memory
  // (smem_bytes(...), passed at launch). Offsetting the shared array itself, not a
  // round-tripped integer address, keeps the pointer's address space known, so the
  // stage reads compile to shared loads (LDS) rather than generic ones.
  extern __shared__ u32x4 kf_wgmma_dynamic_shared[];
  const uint32_t base = static_cast<uint32_t>(__cvta_generic_to_shared(kf_wgmma_dynamic_shared));
  unsigned char* const smem = reinterpret_cast<unsigned char*>(kf_wgmma_dynamic_shared) + ((1024u - base % 1024u) % 1024u);
  KF_SHARED uint64_t full[STAGES], empty[STAGES];  // the ring's slot barriers

  const int tid = thread_id(), lane = tid % KF_WAVE, warp = tid / KF_WAVE;
  const bool producer = warp >= WARPS;
  const int ptid = tid - kConsumers;  // the producer's thread number
  const int t = lane % 4, g = lane / 4;
  // The tile and the k-steps this block works on; a stream-K block moves them run by run.
  int m0 = block_y() * BM, kt0 = SPLIT_K > 1 ? block_z() * KT : 0, kts = KT;
  // The block's shared-memory columns of this thread's fragment rows g and g + 8: weight
  // rows col, col + 1 side by side.
  const int c0 = 64 * (warp / 4) + 16 * (warp % 4) + 2 * g;
  const int c1 = c0 + 1;
  // The weight row (global column) of shared column c.
  int n0 = block_x() * BN;
  auto global_col = [&](int c) { return n0 + c; };
  const uint32_t select_t = wg::nibble_select(t);

  const uint16_t* x = static_cast<const uint16_t*>(args.x);
  const uint32_t* qweight = static_cast<const uint32_t*>(args.qweight);
  const uint16_t* scales = static_cast<const uint16_t*>(args.scales);
  const uint32_t* qzeros = static_cast<const uint32_t*>(args.qzeros);

  // The producer's copies. x: thread (c_x, r_x) takes 16-byte chunk c_x of rows r_x,
  // r_x + XR, ... (a row's chunks are adjacent lanes: whole sectors); XR % 8 == 0 keeps
  // the row's swizzle (chunk ^ row % 8), so every pass is one offset plus a constant.
  // Weights: chunk ptid + 128 j of the stage's word rows, which lie in shared memory as
  // in global memory.
  constexpr int CH = BK / 8;                                 // 16-byte chunks of an x row
  constexpr int XR = kCopiers / CH, XPASSES = BM / XR;
  constexpr int WC = BN / 4, WPASSES = WB / 16 / kCopiers;  // chunks of a word row; passes
  static_assert(kCopiers % CH == 0 && XR % 8 == 0 && BM % XR == 0, "x copies: passes of whole 8-row atoms");
  static_assert(WB % (16 * kCopiers) == 0 && BN / 8 <= kCopiers, "weight copies: whole passes");
  const int c_x = ptid % CH, r_x = ptid / CH;
  const int x_smem = wg::b_tile_offset_sw128(r_x, 8 * c_x, BM);
  // The producer's x base in the tile at m0 (a stream-K block moves it per run).
  const uint16_t* x_src;
  auto locate = [&] { x_src = x + (size_t)(m0 + r_x) * K + 8 * c_x; };
  if (tid == 0)
    for (int i = 0; i < STAGES; ++i) {
      mbar::init(&full[i], kCopiers);  // each producer thread's copies
      mbar::init(&empty[i], WARPS);    // each consumer warp, once its products are done
    }
  barrier();  // the slot barriers are initialised

  auto issue = [&](int kt, int slot) {  // kt: the run's stage number
    unsigned char* xs = smem + slot * STAGE;
    unsigned char* ws = xs + XB;
    unsigned char* ss = ws + WB;
    unsigned char* zs = ss + SB;
    const int k0 = (kt0 + kt) * BK, grp = k0 / G;
    // The x base and the rows left below M, laundered each stage: left visible, the
    // compiler kept every pass's address and predicate in registers across the loop,
    // and a producer warpgroup has few of those (wgmma_tiling.h).
    const uint16_t* xk = x_src + k0;
    int rows_left = rows.count() - m0 - r_x;
    asm volatile("" : "+l"(xk), "+r"(rows_left));
#pragma unroll
    for (int j = 0; j < XPASSES; ++j) {
      // Rows past M read nothing (a zero fill) and their address is never used, so every
      // pass copies from one base plus a constant. Choosing a valid pointer for them
      // instead put each copy's address through a move into the register pair the
      // previous copy was still reading: those moves waited on it one by one, a third of
      // the loop's stall samples (bench/NOTES.md linear v36).
      cp_async16(xs + x_smem + j * XR * 128, xk + (size_t)j * XR * K, j * XR < rows_left);
    }
#pragma unroll
    for (int j = 0; j < WPASSES; ++j) {
      const int f = ptid + j * kCopiers, kb = f / WC, c = f % WC;
      cp_async16(ws + 16 * f, qweight + (size_t)(k0 / 8 + kb) * N + global_col(4 * c), true);
    }
    if (ptid < BN / 8) cp_async16(ss + 16 * ptid, scales + (size_t)grp * N + global_col(8 * ptid), true);
    if constexpr (ASYM)
      if (ptid < BN / 32) cp_async16(zs + 16 * ptid, qzeros + (size_t)grp * (N / 8) + global_col(32 * ptid) / 8, true);
  };

  // Where a thread is in the ring: the slot of its next stage and that slot's phase.
  struct Ring {
    int slot = 0;
    uint32_t phase = 0;
    KF_INLINE void next() {
      if (++slot == STAGES) {
        slot = 0;
        phase ^= 1u;
      }
    }
  };
  Ring ring;

  // Stream-K: what the current run does with its sums, this block's number and the
  // launch's, and for a run that ends a tile the first block whose run holds that tile's
  // earlier steps.
  StreamRole run = StreamRole::whole;
  int block = 0, blocks = 1, first_contributor = 0;
  long long steps = 0;

  auto tile = [&] {
    constexpr int W = BM;  // products a whole tile wide (the gathered body narrows them)
    float acc[W / 2];
    wg::zero_operands(acc);

    int previous = -1;  // the slot of this run's previous stage, released once its products are done
    for (int kt = 0; kt < kts; ++kt) {
      mbar::wait(&full[ring.slot], ring.phase);
      wg::fence_proxy_async();  // the copies wrote through the generic proxy; wgmma reads through the async one

      const unsigned char* xs = smem + ring.slot * STAGE;
      const unsigned char* ws = xs + XB;
      const unsigned char* ss = ws + WB;
      const unsigned char* zs = ss + SB;
      // Words of word row kb for fragment rows g and g + 8 (one 8-byte load when adjacent).
      auto words = [&](int kb) -> u32x2 { return load8(ws + (kb * BN + c0) * 4); };
      // The words of the first AHEAD products, read at the stage's start, then each
      // product's words AHEAD products early. Read where they are used, each product's
      // shared loads sat behind the previous product's wgmma fence and wait (memory
      // clobbers), so every product waited for a shared-memory round trip and then its
      // unpacking chain; with products 64 or 128 tokens wide that latency, not the tensor
      // core, set the pace (bench/NOTES.md v37). Two ahead: a shared load's latency is
      // about one product's unpacking, and 16-warp blocks have room for two products'
      // words, not four.
      constexpr int AHEAD = STEPS < 2 ? STEPS : 2;
      u32x2 ahead_lo[AHEAD], ahead_hi[AHEAD];  // product s's words in slot s % AHEAD
#pragma unroll
      for (int s = 0; s < AHEAD; ++s) {
        ahead_lo[s] = words(2 * s);
        ahead_hi[s] = words(2 * s + 1);
      }
      const StageConsts q = stage_consts<BF16, ASYM>(ss, zs, c0, c1);
#pragma unroll
      for (int s = 0; s < STEPS; ++s) {
        // The previous stage's product s still reads the registers `a` is about to
        // overwrite (the same registers every stage): it and the STEPS - 1 after it may run.
        wg::wait<STEPS - 1>();
        // Before the last product, every product of the previous stage is done: its slot
        // goes back to the producer (one arrival a warp; the wait is warp-wide).
        if (s == STEPS - 1 && previous >= 0 && lane == 0) mbar::arrive(&empty[previous]);
        // Words of k 16s .. 16s + 7 and 16s + 8 .. 16s + 15; the slot takes product s + AHEAD's.
        const u32x2 lo = ahead_lo[s % AHEAD], hi = ahead_hi[s % AHEAD];
        if (s + AHEAD < STEPS) {
          ahead_lo[s % AHEAD] = words(2 * (s + AHEAD));
          ahead_hi[s % AHEAD] = words(2 * (s + AHEAD) + 1);
        }
        uint32_t a[4];
        a_fragment<BF16>(a, lo, hi, select_t, q);
        wg::fence();
        wg::mma_rs<W, BF16>(acc, a, wg::b_desc_sw128(xs, 16 * s, BM));
        wg::commit();
      }
      previous = ring.slot;
      ring.next();
    }
    wg::wait<0>();
    if (previous >= 0 && lane == 0) mbar::arrive(&empty[previous]);
    wg::fence_operands(acc);

    // Element 4j + e: fragment row g + 8 (e / 2) (column c0 or c1), tile row 8j + 2t + e % 2
    // (kf_wgmma_layout.h).
    if constexpr (STREAM > 0) {
      // bf16 layers exchange their partial sums as bf16 pairs (elements 2i, 2i + 1 in one
      // word): one SM writes and reads a split tile's partials at ~48 GB/s, on the critical
      // path twice (bench/NOTES.md v33), and halving the bytes took 9216x2048 at M = 256
      // from 24.8 to 23.0 us (v40). The error stays within one bf16 rounding of a partial
      // (normalised error 0.0026 against 0.0022 in fp32, tolerance 0.008). fp16 layers keep
      // fp32 partials: a bf16 rounding would be 8 times their output's.
      constexpr int WORDS = BF16 ? BM / 4 : BM / 2;  // 32-bit words of partials per thread
      static_assert(static_cast<long long>(WORDS) * kConsumers == stream_workspace_floats(1, BM, BN, BF16),
                    "a block's slot is the scratch the launch sizes (wgmma_tiling.h)");
      if (run == StreamRole::contribute) {  // word i of thread tid at slot[i][tid] (coalesced)
        float* const slot = args.workspace + (size_t)block * (WORDS * kConsumers) + tid;
#pragma unroll
        for (int i = 0; i < WORDS; ++i)
          slot[i * kConsumers] = BF16 ? __uint_as_float(pack2_bf16(acc[2 * i], acc[2 * i + 1])) : acc[i];
        mbar::sync_threads<1, kConsumers>();  // every thread's sums are written before the flag is raised
        if (tid == 0) store_release_device(args.counters + block, 1);
        return;
      }
      if (run == StreamRole::finish) {  // the tile's earlier steps, block by block (deterministic)
        if (tid == 0)
          for (int b = first_contributor; b < block; ++b)
            if (stream_holds_steps(b, blocks, steps)) {
              while (load_acquire_device(args.counters + b) == 0) {
              }
              args.counters[b] = 0;  // read once: left zero for the next launch
            }
        mbar::sync_threads<1, kConsumers>();
        for (int b = first_contributor; b < block; ++b)
          if (stream_holds_steps(b, blocks, steps)) {
            const float* const slot = args.workspace + (size_t)b * (WORDS * kConsumers) + tid;
            // In chunks: all the loads in flight at once would hold as many registers.
            static_assert(WORDS % 16 == 0, "whole chunks of 16 words");
#pragma unroll
            for (int i0 = 0; i0 < WORDS; i0 += 16) {
              float part[16];
#pragma unroll
              for (int i = 0; i < 16; ++i) part[i] = load_coherent(slot + (i0 + i) * kConsumers);
#pragma unroll
              for (int i = 0; i < 16; ++i) {
                if constexpr (BF16) {  // low half element 2i, high half 2i + 1
                  const uint32_t u = __float_as_uint(part[i]);
                  acc[2 * (i0 + i)] += __uint_as_float(u << 16);
                  acc[2 * (i0 + i) + 1] += __uint_as_float(u & 0xffff0000u);
                } else {
                  acc[i0 + i] += part[i];
                }
              }
            }
          }
      }
    }
    uint16_t* y = static_cast<uint16_t*>(args.y);
    if constexpr (SPLIT_K > 1) {
#if defined(__CUDA_ARCH__) && __CUDA_ARCH__ >= 900
      // The ring is free once every consumer warp's products are done (its copies have all
      // landed): element i of thread tid goes to flat[i][tid] (conflict-free).
      mbar::sync_threads<1, kConsumers>();
      float* const flat = reinterpret_cast<float*>(smem);
#pragma unroll
      for (int i = 0; i < BM / 2; ++i) flat[i * kConsumers + tid] = acc[i];
      cluster::sync();
      const uint32_t rank = cluster::rank();
      const uint32_t mine = cluster::shared_address(flat) + 4 * tid;
      constexpr int JR = BM / 8 / SPLIT_K;  // tile row groups per rank
#pragma unroll
      for (int jj = 0; jj < JR; ++jj) {
        const int j = jj * SPLIT_K + static_cast<int>(rank);
        float v[4] = {0.f, 0.f, 0.f, 0.f};  // elements 4j .. 4j + 3, every load issued first
        float part[SPLIT_K][4];
#pragma unroll
        for (int q = 0; q < SPLIT_K; ++q)
#pragma unroll
          for (int e = 0; e < 4; ++e) part[q][e] = cluster::load(mine + 4 * (4 * j + e) * kConsumers, q);
#pragma unroll
        for (int q = 0; q < SPLIT_K; ++q)
#pragma unroll
          for (int e = 0; e < 4; ++e) v[e] += part[q][e];
#pragma unroll
        for (int h = 0; h < 2; ++h) {
          const int i = m0 + 8 * j + 2 * t + h;
          if (!rows.valid(i)) continue;
          const float f = rows.scale(i);
          *reinterpret_cast<uint32_t*>(y + (size_t)rows.y_row(i) * N + n0 + c0) =
              Act16<BF16>::pack2(v[h] * f, v[2 + h] * f);
        }
      }
      cluster::sync_after_reads();  // the other blocks' sums stay until every rank has read them
#endif
      return;
    }
#pragma unroll
    for (int j = 0; j < W / 8; ++j)
#pragma unroll
      for (int h = 0; h < 2; ++h) {
        const int i = m0 + 8 * j + 2 * t + h;
        if (!rows.valid(i)) continue;
        const float f = rows.scale(i);
        const float v0 = acc[4 * j + h], v1 = acc[4 * j + 2 + h];
        *reinterpret_cast<uint32_t*>(y + (size_t)rows.y_row(i) * N + n0 + c0) = Act16<BF16>::pack2(v0 * f, v1 * f);
      }
  };
  // The block's runs, in order, for both roles: each sets m0, n0, kt0, kts (and the
  // stream-K role) and calls `body`. One run (the block's tile) unless stream-K.
  auto runs = [&](auto&& body) {
    if constexpr (STREAM > 0) {
      // The partition from the launch's block number and count, never from memory, and
      // with the count a constant where the launch has all B blocks (the tuned case): the
      // main loop's bounds then stay uniform values, so the ring's slot arithmetic and the
      // products' descriptors stay on the uniform datapath. A ticket read back from shared
      // memory, or a division by a run-time count, moved them to vector registers (one
      // R2UR per product) and cost 12-15% on whole tiles (bench/NOTES.md linear v30).
      block = block_x();
      constexpr int kTileSteps = K / BK, kColTiles = N / BN;
      steps = static_cast<long long>(kColTiles) * ((args.m + BM - 1) / BM) * kTileSteps;
      auto walk = [&](auto launched) {
        blocks = count_of(launched);
        // The block's runs from its last step back: the run that may contribute goes
        // first, the one that may wait on lower-numbered blocks last.
        const long long first = stream_first_step(block, blocks, steps);
        for (long long end = stream_first_step(block + 1, blocks, steps); end > first;) {
          const StreamRun r = stream_run(first, end, kTileSteps);
          const long long tile_first = static_cast<long long>(r.tile) * kTileSteps;
          m0 = r.tile / kColTiles * BM;
          n0 = r.tile % kColTiles * BN;
          kt0 = static_cast<int>(r.begin - tile_first);
          kts = static_cast<int>(end - r.begin);
          run = r.role;
          first_contributor = stream_block_of(tile_first, blocks, steps);
          body();
          end = r.begin;
        }
      };
      if (gridDim.x == STREAM)
        walk(Width<STREAM>{});
      else
        walk(static_cast<int>(gridDim.x));  // a part with fewer SMs
    } else {
      body();
    }
  };

  constexpr int kConsumerRegs = consumer_regs(WARPS);
  if (producer) {
    if constexpr (kConsumerRegs > 0) wg::lower_registers<producer_regs(WARPS)>();
    // Fills the ring stage after stage across the block's runs: a slot is refilled once
    // every consumer warp has released it, and each thread's copies of a stage count as
    // one arrival on its full barrier when they land.
    int filled = 0;
    runs([&] {
      locate();
      for (int kt = 0; kt < kts; ++kt, ++filled) {
        if (filled >= STAGES) mbar::wait(&empty[ring.slot], ring.phase ^ 1u);
        issue(kt, ring.slot);
        mbar::arrive_when_copied(&full[ring.slot]);
        ring.next();
      }
    });
#if defined(__CUDA_ARCH__) && __CUDA_ARCH__ >= 900
    if constexpr (SPLIT_K > 1) {  // the consumers' two cluster barriers count every thread
      cluster::sync();
      cluster::sync_after_reads();
    }
#endif
    return;
  }
  if constexpr (kConsumerRegs > 0) wg::raise_registers<kConsumerRegs>();
  runs(tile);
}

}  // namespace w4a16

template <int N, int K, int G, bool BF16, bool ASYM, int BM, int BN, int BK, int WARPS, int SPLIT_K, int STAGES,
          int STREAM = 0>
KF_INLINE void w4a16_linear_wgmma(const kf_linear_args& args) {
  w4a16::wgmma_body<N, K, G, BF16, ASYM, BM, BN, BK, WARPS, STAGES, SPLIT_K, STREAM>(w4a16::DenseRows{args.m}, args);
}

}  // namespace kf
