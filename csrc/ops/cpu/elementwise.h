// One fused pass over memory on the CPU: at::parallel_for over chunks that fit in L1; per chunk the
// secondary streams are converted to float once, and the inner loop over a run of elements that
// share eps/alpha is branch-free so the compiler vectorises it.
#pragma once
#include <ATen/Dispatch.h>
#include <ATen/Parallel.h>
#include <c10/util/BFloat16.h>
#include <c10/util/Half.h>

#include <algorithm>

#include "ops/op_args.h"

namespace aft_fast {
namespace cpu {

constexpr int64_t kChunk = 1024;
constexpr int64_t kGrain = 32768;

template <typename T>
inline void to_float(const T* src, int64_t n, float* dst) {
  for (int64_t i = 0; i < n; ++i) dst[i] = static_cast<float>(src[i]);
}
template <typename T>
inline void from_float(const float* src, int64_t n, T* dst) {
  for (int64_t i = 0; i < n; ++i) dst[i] = static_cast<T>(src[i]);
}

inline void load_kind(const void* p, Kind k, int64_t at, int64_t n, float* dst) {
  switch (k) {
    case kF32: to_float(static_cast<const float*>(p) + at, n, dst); break;
    case kF16: to_float(static_cast<const c10::Half*>(p) + at, n, dst); break;
    case kBF16: to_float(static_cast<const c10::BFloat16*>(p) + at, n, dst); break;
  }
}

inline void store_kind(void* p, Kind k, int64_t at, int64_t n, const float* src) {
  switch (k) {
    case kF32: from_float(src, n, static_cast<float*>(p) + at); break;
    case kF16: from_float(src, n, static_cast<c10::Half*>(p) + at); break;
    case kBF16: from_float(src, n, static_cast<c10::BFloat16*>(p) + at); break;
  }
}

template <typename scalar_t, class Op>
void run_typed(const OpArgs& a, const Op& op) {
  auto* a0 = static_cast<scalar_t*>(a.a0);
  const auto* a1 = static_cast<const scalar_t*>(a.a1);
  at::parallel_for(0, a.numel, kGrain, [&](int64_t begin, int64_t end) {
    float g[kChunk] = {}, out[kChunk];
    for (int64_t c = begin; c < end; c += kChunk) {
      const int64_t m = std::min(kChunk, end - c);
      if (Op::reads_grad) load_kind(a.grad, a.grad_kind, c, m, g);
      for (int64_t i = c; i < c + m;) {
        int64_t run_end = c + m;
        float eps = a.eps, alpha = a.alpha;
        if (a.per_sample_params) {
          const int64_t s = i / a.per_sample;
          run_end = std::min(run_end, (s + 1) * a.per_sample);
          if (a.eps_n) eps = a.eps_n[s];
          if (a.alpha_n) alpha = a.alpha_n[s];
        }
        for (int64_t j = i; j < run_end; ++j) {
          const float x = Op::reads_a0 ? static_cast<float>(a0[j]) : 0.f;
          float x_new, o;
          op(x, static_cast<float>(a1[j]), g[j - c], eps, alpha, static_cast<uint64_t>(j), x_new, o);
          a0[j] = static_cast<scalar_t>(x_new);
          out[j - c] = o;
        }
        i = run_end;
      }
      if (a.out) store_kind(a.out, a.out_kind, c, m, out);
    }
  });
}

template <class Op>
void run(const OpArgs& a, const Op& op, const char* /*name*/) {
  if (a.numel == 0) return;
  AT_DISPATCH_SWITCH(a.dtype, "aft_fast_elementwise",
      AT_DISPATCH_CASE(at::kFloat, [&] { run_typed<scalar_t>(a, op); })
      AT_DISPATCH_CASE(at::kHalf, [&] { run_typed<scalar_t>(a, op); })
      AT_DISPATCH_CASE(at::kBFloat16, [&] { run_typed<scalar_t>(a, op); }));
}

}  // namespace cpu
}  // namespace aft_fast
