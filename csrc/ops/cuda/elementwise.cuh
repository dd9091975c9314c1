// One fused pass over memory on the GPU: a grid-stride kernel that moves VEC elements per thread
// with 16-byte loads/stores when every pointer is aligned (a scalar instantiation otherwise), math
// in float32, launched on the current stream. Any dense layout shared by all operands (contiguous,
// channels_last, ...) is just a flat array here.
#pragma once
#include <ATen/Dispatch.h>
#include <c10/cuda/CUDAException.h>
#include <c10/cuda/CUDAGuard.h>
#include <c10/cuda/CUDAStream.h>
#include <c10/util/BFloat16.h>
#include <c10/util/Half.h>
#include <cuda_runtime.h>

#include <algorithm>

#include "ops/op_args.h"

namespace aft_fast {
namespace cuda {

constexpr int kThreads = 256;

template <typename T, int N>
struct alignas(sizeof(T) * N) Pack {
  T v[N];
};

template <typename T, int N>
__device__ __forceinline__ void load_pack(const void* p, int64_t at, float (&f)[N]) {
  const auto pk = *reinterpret_cast<const Pack<T, N>*>(static_cast<const T*>(p) + at);
#pragma unroll
  for (int j = 0; j < N; ++j) f[j] = static_cast<float>(pk.v[j]);
}

template <typename T, int N>
__device__ __forceinline__ void store_pack(void* p, int64_t at, const float (&f)[N]) {
  Pack<T, N> pk;
#pragma unroll
  for (int j = 0; j < N; ++j) pk.v[j] = static_cast<T>(f[j]);
  *reinterpret_cast<Pack<T, N>*>(static_cast<T*>(p) + at) = pk;
}

template <int N>
__device__ __forceinline__ void load_kind(const void* p, Kind k, int64_t at, float (&f)[N]) {
  switch (k) {
    case kF32: load_pack<float, N>(p, at, f); break;
    case kF16: load_pack<c10::Half, N>(p, at, f); break;
    case kBF16: load_pack<c10::BFloat16, N>(p, at, f); break;
  }
}

template <int N>
__device__ __forceinline__ void store_kind(void* p, Kind k, int64_t at, const float (&f)[N]) {
  switch (k) {
    case kF32: store_pack<float, N>(p, at, f); break;
    case kF16: store_pack<c10::Half, N>(p, at, f); break;
    case kBF16: store_pack<c10::BFloat16, N>(p, at, f); break;
  }
}

// Elements [at, at + VEC) of one pass.
template <typename scalar_t, int VEC, class Op>
__device__ __forceinline__ void apply(const OpArgs& a, const Op& op, int64_t at) {
  float x[VEC] = {}, x_nat[VEC], g[VEC] = {}, x_new[VEC], out[VEC];
  if (Op::reads_a0) load_pack<scalar_t, VEC>(a.a0, at, x);
  load_pack<scalar_t, VEC>(a.a1, at, x_nat);
  if (Op::reads_grad) load_kind<VEC>(a.grad, a.grad_kind, at, g);
  float eps = a.eps, alpha = a.alpha;
  int64_t sample = 0, next = INT64_MAX;
  if (a.per_sample_params) {
    sample = at / a.per_sample;
    next = (sample + 1) * a.per_sample;
    if (a.eps_n) eps = a.eps_n[sample];
    if (a.alpha_n) alpha = a.alpha_n[sample];
  }
#pragma unroll
  for (int j = 0; j < VEC; ++j) {
    if (at + j >= next) {  // the pack straddles samples (only with per-sample eps/alpha)
      sample = (at + j) / a.per_sample;
      next = (sample + 1) * a.per_sample;
      if (a.eps_n) eps = a.eps_n[sample];
      if (a.alpha_n) alpha = a.alpha_n[sample];
    }
    op(x[j], x_nat[j], g[j], eps, alpha, static_cast<uint64_t>(at + j), x_new[j], out[j]);
  }
  store_pack<scalar_t, VEC>(a.a0, at, x_new);
  if (a.out) store_kind<VEC>(a.out, a.out_kind, at, out);
}

template <typename scalar_t, int VEC, class Op>
__global__ void __launch_bounds__(kThreads) elementwise_kernel(const OpArgs a, const Op op) {
  const int64_t tid = int64_t(blockIdx.x) * blockDim.x + threadIdx.x;
  const int64_t stride = int64_t(gridDim.x) * blockDim.x;
  const int64_t packs = a.numel / VEC;
  for (int64_t p = tid; p < packs; p += stride) apply<scalar_t, VEC>(a, op, p * VEC);
  const int64_t tail = packs * VEC + tid;  // fewer than VEC elements left
  if (VEC > 1 && tail < a.numel) apply<scalar_t, 1>(a, op, tail);
}

inline int sm_count() {
  int dev = 0, count = 0;
  C10_CUDA_CHECK(cudaGetDevice(&dev));
  C10_CUDA_CHECK(cudaDeviceGetAttribute(&count, cudaDevAttrMultiProcessorCount, dev));
  return count;
}

inline bool aligned(const void* p, int64_t bytes) {
  return p == nullptr || reinterpret_cast<uintptr_t>(p) % bytes == 0;
}

inline int64_t kind_size(Kind k) { return k == kF32 ? 4 : 2; }

template <typename scalar_t, int VEC, class Op>
void launch(const OpArgs& a, const Op& op) {
  const int64_t work = VEC > 1 ? a.numel / VEC : a.numel;
  const int64_t blocks = std::max<int64_t>(1, std::min<int64_t>((work + kThreads - 1) / kThreads,
                                                                int64_t(sm_count()) * 8));
  elementwise_kernel<scalar_t, VEC><<<blocks, kThreads, 0, c10::cuda::getCurrentCUDAStream()>>>(a, op);
  C10_CUDA_KERNEL_LAUNCH_CHECK();
}

template <typename scalar_t, class Op>
void run_typed(const OpArgs& a, const Op& op) {
  constexpr int VEC = 16 / sizeof(scalar_t);
  const bool vec_ok = aligned(a.a0, 16) && aligned(a.a1, 16) &&
                      aligned(a.grad, VEC * kind_size(a.grad_kind)) &&
                      aligned(a.out, VEC * kind_size(a.out_kind));
  if (vec_ok)
    launch<scalar_t, VEC>(a, op);
  else
    launch<scalar_t, 1>(a, op);
}

template <class Op>
void run(const at::Tensor& on, const OpArgs& a, const Op& op, const char* name) {
  AFT_CHECK_VALUE(on.is_cuda(), name, "expected CUDA tensors, got ", on.device());
  if (a.numel == 0) return;
  const c10::cuda::CUDAGuard guard(on.device());
  AT_DISPATCH_SWITCH(a.dtype, "aft_fast_elementwise",
      AT_DISPATCH_CASE(at::kFloat, [&] { run_typed<scalar_t>(a, op); })
      AT_DISPATCH_CASE(at::kHalf, [&] { run_typed<scalar_t>(a, op); })
      AT_DISPATCH_CASE(at::kBFloat16, [&] { run_typed<scalar_t>(a, op); }));
}

}  // namespace cuda
}  // namespace aft_fast
