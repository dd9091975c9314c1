// The scalar math of every attack op, shared by the CPU and CUDA kernels and mirrored, operation
// for operation, by aft_fast/reference.py (the tests compare the two for exact float32 equality).
//
// Conventions: math in float32 whatever the storage dtype; sign(0) = sign(NaN) = 0, so a NaN
// gradient element leaves its pixel where it was; clamps ignore NaN (`v > b ? v : b` returns b
// when v is NaN), so every result lands inside the eps-ball and the [lo, hi] box.
#pragma once
#include <cstdint>

#if defined(__CUDACC__)
#define AFT_HD __host__ __device__ __forceinline__
#else
#define AFT_HD inline
#endif

namespace aft_fast {
namespace math {

AFT_HD float sign0(float g) { return float(g > 0.f) - float(g < 0.f); }
AFT_HD float max_nan(float v, float b) { return v > b ? v : b; }  // fmax: NaN v gives b
AFT_HD float min_nan(float v, float b) { return v < b ? v : b; }  // fmin: NaN v gives b
AFT_HD float clamp(float v, float lo, float hi) { return min_nan(max_nan(v, lo), hi); }

// The l∞ projection: onto the eps-ball around x_nat, then onto the box.
AFT_HD float project(float v, float x_nat, float eps, float lo, float hi) {
  return clamp(clamp(v, x_nat - eps, x_nat + eps), lo, hi);
}

// Rounded multiply/add that nvcc may not fuse into an FMA (the reference rounds twice).
AFT_HD float mul_rn(float a, float b) {
#if defined(__CUDA_ARCH__)
  return __fmul_rn(a, b);
#else
  return a * b;
#endif
}
AFT_HD float add_rn(float a, float b) {
#if defined(__CUDA_ARCH__)
  return __fadd_rn(a, b);
#else
  return a + b;
#endif
}

// A 32-bit finaliser ("lowbias32"): a bijection with good avalanche.
AFT_HD uint32_t mix32(uint32_t x) {
  x ^= x >> 16;
  x *= 0x7feb352du;
  x ^= x >> 15;
  x *= 0x846ca68bu;
  x ^= x >> 16;
  return x;
}

// Counter-based uniform in [0, 1) with 24 random bits: a pure function of (seed, offset), so
// the result does not depend on the device, the thread count or the launch configuration.
AFT_HD float uniform01(uint64_t seed, uint64_t offset) {
  const uint32_t lo = mix32(uint32_t(offset) ^ uint32_t(seed));
  const uint32_t hi = mix32(uint32_t(offset >> 32) ^ uint32_t(seed >> 32));
  return float(mix32(lo ^ hi) >> 8) * (1.0f / 16777216.0f);
}

// ---- the three ops as element functors: (a0, a1, g, eps, alpha, offset) -> (new a0, out) ----
// a0 is the tensor updated in place, a1 the clean reference, g the gradient.

struct PgdStep {  // a0 = x_adv, a1 = x_nat
  static constexpr bool reads_a0 = true, reads_grad = true;
  float lo, hi;
  AFT_HD void operator()(float x, float x_nat, float g, float eps, float alpha, uint64_t,
                         float& x_new, float& out) const {
    x_new = project(x + alpha * sign0(g), x_nat, eps, lo, hi);  // alpha*sign is exact: no FMA issue
    out = x_new;
  }
};

struct RandomInit {  // a0 = x_adv (written only), a1 = x_nat
  static constexpr bool reads_a0 = false, reads_grad = false;
  float lo, hi;
  uint64_t seed;
  AFT_HD void operator()(float, float x_nat, float, float eps, float, uint64_t offset,
                         float& x_new, float& out) const {
    const float low = max_nan(x_nat - eps, lo), high = min_nan(x_nat + eps, hi);
    const float u = uniform01(seed, offset);
    x_new = clamp(add_rn(low, mul_rn(u, high - low)), low, high);
    out = x_new;
  }
};

struct DeltaStep {  // a0 = delta, a1 = x; out = x + delta (the next adversarial input)
  static constexpr bool reads_a0 = true, reads_grad = true;
  float lo, hi;
  AFT_HD void operator()(float d, float x, float g, float eps, float alpha, uint64_t,
                         float& d_new, float& x_adv) const {
    const float stepped = clamp(d + alpha * sign0(g), -eps, eps);
    x_adv = clamp(x + stepped, lo, hi);
    d_new = x_adv - x;
  }
};

}  // namespace math
}  // namespace aft_fast
