// Host side shared by every op and backend: argument checks that name the argument (messages built
// without iostreams, see check.h), and the flat description of one fused elementwise pass (raw
// pointers, dtypes, scalars) the kernels consume.
#pragma once
#include <ATen/core/Tensor.h>
#include <c10/util/Optional.h>

#include <cmath>
#include <cstdint>

#include "ops/check.h"

namespace aft_fast {

// Storage dtype of a secondary stream (gradient, extra output), decided at run time.
enum Kind : int { kF32 = 0, kF16 = 1, kBF16 = 2 };

struct OpArgs {
  void* a0 = nullptr;          // updated in place (x_adv or delta); dtype `dtype`
  const void* a1 = nullptr;    // clean reference (x_nat or x); dtype `dtype`
  const void* grad = nullptr;  // dtype `grad_kind`
  void* out = nullptr;         // optional second output; dtype `out_kind`
  Kind grad_kind = kF32, out_kind = kF32;
  const float* eps_n = nullptr;    // optional per-sample eps, [N]
  const float* alpha_n = nullptr;  // optional per-sample alpha, [N]
  float eps = 0.f, alpha = 0.f;
  int64_t numel = 0, per_sample = 1;  // per_sample: elements of one sample
  bool per_sample_params = false;  // eps_n or alpha_n given
  at::ScalarType dtype = at::kFloat;
};

inline Kind kind_of(const at::Tensor& t, const char* op, const char* name) {
  switch (t.scalar_type()) {
    case at::kFloat: return kF32;
    case at::kHalf: return kF16;
    case at::kBFloat16: return kBF16;
    default:
      msg::fail<c10::TypeError>(__func__, __FILE__, __LINE__, op, name,
                                " must be float32, float16 or bfloat16, got ", t.scalar_type());
  }
}

// Same layout = same strides on every dimension of size > 1.
inline bool same_layout(const at::Tensor& a, const at::Tensor& b) {
  for (int64_t d = 0; d < a.dim(); ++d)
    if (a.size(d) > 1 && a.stride(d) != b.stride(d)) return false;
  return true;
}

inline void check_operand(const char* op, const at::Tensor& t, const char* name,
                          const at::Tensor& ref, const char* ref_name) {
  AFT_CHECK_VALUE(t.sizes() == ref.sizes(), op, name, " and ", ref_name,
                  " must have the same shape, got ", t.sizes(), " and ", ref.sizes());
  AFT_CHECK_VALUE(t.device() == ref.device(), op, name, " and ", ref_name,
                  " must be on the same device, got ", t.device(), " and ", ref.device());
  AFT_CHECK_VALUE(same_layout(t, ref), op, name, " must have the same memory layout as ", ref_name,
                  ", got strides ", t.strides(), " and ", ref.strides());
  kind_of(t, op, name);
}

inline const float* per_sample_ptr(const char* op, const c10::optional<at::Tensor>& v,
                                   const char* name, const at::Tensor& x) {
  if (!v.has_value()) return nullptr;
  const at::Tensor& t = *v;
  const int64_t n = x.dim() ? x.size(0) : 1;
  AFT_CHECK_VALUE(t.dim() == 1 && t.size(0) == n, op, name, " must have shape [N] = [", n,
                  "], got ", t.sizes());
  AFT_CHECK_TYPE(t.scalar_type() == at::kFloat, op, name, " must be a float32 tensor, got ",
                 t.scalar_type());
  AFT_CHECK_VALUE(t.is_contiguous(), op, name, " must be contiguous, got strides ", t.strides());
  AFT_CHECK_VALUE(t.device() == x.device(), op, name, " must be on ", x.device(), ", got ",
                  t.device());
  AFT_CHECK_VALUE(n <= 1 || x.stride(0) == x.numel() / n, op, "per-sample ", name,
                  " needs the batch dimension outermost in memory, got strides ", x.strides());
  return t.data_ptr<float>();
}

inline float check_scalar(const char* op, double v, const char* name) {
  AFT_CHECK_VALUE(std::isfinite(v) && v >= 0, op, name, " must be a finite number >= 0, got ", v);
  return static_cast<float>(v);
}

inline void check_box(const char* op, double lo, double hi) {
  AFT_CHECK_VALUE(std::isfinite(lo) && std::isfinite(hi) && lo <= hi, op,
                  "the box must satisfy lo <= hi with finite bounds, got lo=", lo, ", hi=", hi);
}

// Validates everything and packs one pass. `a1`/`grad` may be undefined tensors (not used).
inline OpArgs make_args(const char* op, at::Tensor& a0, const char* a0_name, const at::Tensor& a1,
                        const char* a1_name, const at::Tensor& grad, double eps, double alpha,
                        const c10::optional<at::Tensor>& eps_n,
                        const c10::optional<at::Tensor>& alpha_n,
                        const c10::optional<at::Tensor>& out, const char* out_name) {
  OpArgs a;
  a.dtype = a0.scalar_type();
  kind_of(a0, op, a0_name);
  AFT_CHECK_VALUE(a0.is_non_overlapping_and_dense(), op, a0_name,
                  " must be dense in memory (contiguous or channels_last), got strides ",
                  a0.strides());
  check_operand(op, a1, a1_name, a0, a0_name);
  AFT_CHECK_TYPE(a1.scalar_type() == a.dtype, op, a1_name, " must have ", a0_name, "'s dtype ",
                 a.dtype, ", got ", a1.scalar_type());
  a.a0 = a0.data_ptr();
  a.a1 = a1.const_data_ptr();
  if (grad.defined()) {
    check_operand(op, grad, "grad", a0, a0_name);
    a.grad = grad.const_data_ptr();
    a.grad_kind = kind_of(grad, op, "grad");
  }
  if (out.has_value()) {
    check_operand(op, *out, out_name, a0, a0_name);
    a.out = out->data_ptr();
    a.out_kind = kind_of(*out, op, out_name);
  }
  a.eps = check_scalar(op, eps, "eps");
  a.alpha = check_scalar(op, alpha, "alpha");
  a.eps_n = per_sample_ptr(op, eps_n, "eps_per_sample", a0);
  a.alpha_n = per_sample_ptr(op, alpha_n, "alpha_per_sample", a0);
  a.per_sample_params = a.eps_n != nullptr || a.alpha_n != nullptr;
  a.numel = a0.numel();
  a.per_sample = (a0.dim() && a0.size(0) > 0) ? a.numel / a0.size(0) : 1;
  if (a.per_sample == 0) a.per_sample = 1;
  return a;
}

}  // namespace aft_fast
