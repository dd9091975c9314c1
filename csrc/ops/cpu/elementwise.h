// One fused pass over memory on the CPU.
//
// at::parallel_for splits the tensor; each thread walks it in chunks that fit in L1. Per chunk, any
// operand not stored as float32 is converted into a small float buffer (float32 operands are used
// in place), then the op's chunk function runs the element math over float arrays. That chunk
// function is compiled several times (AFT_CPU_CLONES: AVX-512, AVX2, baseline) and the loader
// picks the widest the CPU supports, so the branch-free loop is vectorised at full width without
// building the whole library for one instruction set. Only functions are cloned: inline functions
// they call are inlined into each clone or called in their baseline build, so no out-of-line copy
// compiled for a wider ISA can leak into baseline callers (the hazard of per-file -mavx2 flags).
#pragma once
#include <ATen/Dispatch.h>
#include <ATen/Parallel.h>
#include <c10/util/BFloat16.h>
#include <c10/util/Half.h>

#include <algorithm>
#include <type_traits>

#include "ops/op_args.h"

#if defined(__GNUC__) && (defined(__x86_64__) || defined(__i386__)) && !defined(__clang__)
#define AFT_CPU_CLONES __attribute__((target_clones("avx512f", "avx2", "default")))
#else
#define AFT_CPU_CLONES
#endif

namespace aft_fast {
namespace cpu {

constexpr int64_t kChunk = 2048;
constexpr int64_t kGrain = 32768;

// The element loop every chunk function instantiates. `a0`/`a0_new` may alias (in place).
template <class Op>
__attribute__((always_inline)) inline void apply_chunk(const Op& op, const float* a0,
                                                       const float* a1, const float* g,
                                                       float eps, float alpha, uint64_t offset,
                                                       int64_t m, float* a0_new, float* out) {
  for (int64_t j = 0; j < m; ++j) {
    float x_new, o;
    op(Op::reads_a0 ? a0[j] : 0.f, a1[j], Op::reads_grad ? g[j] : 0.f, eps, alpha,
       offset + static_cast<uint64_t>(j), x_new, o);
    a0_new[j] = x_new;
    out[j] = o;
  }
}

template <class Op>
using ChunkFn = void (*)(const Op&, const float*, const float*, const float*, float, float,
                         uint64_t, int64_t, float*, float*);

// 16-bit <-> float conversions (convert.cpp, per-ISA clones).
void to_float(const c10::Half* src, int64_t n, float* dst);
void to_float(const c10::BFloat16* src, int64_t n, float* dst);
void from_float(const float* src, int64_t n, c10::Half* dst);
void from_float(const float* src, int64_t n, c10::BFloat16* dst);

// A float view of `n` elements at `at` of a stream: the memory itself for float32, else `buf`.
inline const float* load_kind(const void* p, Kind k, int64_t at, int64_t n, float* buf) {
  switch (k) {
    case kF32:
      return static_cast<const float*>(p) + at;
    case kF16: to_float(static_cast<const c10::Half*>(p) + at, n, buf); break;
    case kBF16: to_float(static_cast<const c10::BFloat16*>(p) + at, n, buf); break;
  }
  return buf;
}

inline void store_kind(void* p, Kind k, int64_t at, int64_t n, const float* src) {
  switch (k) {
    case kF32: break;  // written in place by the chunk function
    case kF16: from_float(src, n, static_cast<c10::Half*>(p) + at); break;
    case kBF16: from_float(src, n, static_cast<c10::BFloat16*>(p) + at); break;
  }
}

template <typename scalar_t, class Op>
void run_typed(const OpArgs& a, const Op& op, ChunkFn<Op> chunk) {
  constexpr bool kIsFloat = std::is_same_v<scalar_t, float>;
  auto* a0 = static_cast<scalar_t*>(a.a0);
  const auto* a1 = static_cast<const scalar_t*>(a.a1);
  at::parallel_for(0, a.numel, kGrain, [&](int64_t begin, int64_t end) {
    float b0[kChunk], b1[kChunk], bg[kChunk], bout[kChunk];
    for (int64_t c = begin; c < end; c += kChunk) {
      const int64_t m = std::min(kChunk, end - c);
      float* x = b0;
      const float* xn = b1;
      if constexpr (kIsFloat) {
        x = a0 + c;
        xn = a1 + c;
      } else {
        if (Op::reads_a0) to_float(a0 + c, m, b0);
        to_float(a1 + c, m, b1);
      }
      const float* g = Op::reads_grad ? load_kind(a.grad, a.grad_kind, c, m, bg) : bg;
      float* out = (a.out && a.out_kind == kF32) ? static_cast<float*>(a.out) + c : bout;
      for (int64_t i = 0; i < m;) {  // runs of elements that share eps/alpha
        int64_t run = m - i;
        float eps = a.eps, alpha = a.alpha;
        if (a.per_sample_params) {
          const int64_t s = (c + i) / a.per_sample;
          run = std::min(run, (s + 1) * a.per_sample - (c + i));
          if (a.eps_n) eps = a.eps_n[s];
          if (a.alpha_n) alpha = a.alpha_n[s];
        }
        chunk(op, x + i, xn + i, g + i, eps, alpha, static_cast<uint64_t>(c + i), run, x + i,
              out + i);
        i += run;
      }
      if constexpr (!kIsFloat) from_float(b0, m, a0 + c);
      if (a.out) store_kind(a.out, a.out_kind, c, m, out);
    }
  });
}

template <class Op>
void run(const OpArgs& a, const Op& op, ChunkFn<Op> chunk) {
  if (a.numel == 0) return;
  AT_DISPATCH_SWITCH(a.dtype, "aft_fast_elementwise",
      AT_DISPATCH_CASE(at::kFloat, [&] { run_typed<scalar_t>(a, op, chunk); })
      AT_DISPATCH_CASE(at::kHalf, [&] { run_typed<scalar_t>(a, op, chunk); })
      AT_DISPATCH_CASE(at::kBFloat16, [&] { run_typed<scalar_t>(a, op, chunk); }));
}

}  // namespace cpu
}  // namespace aft_fast
