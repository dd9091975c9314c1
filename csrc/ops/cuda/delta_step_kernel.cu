#include <torch/library.h>

#include "ops/cuda/elementwise.cuh"
#include "ops/step_math.h"

namespace aft_fast {
namespace {

void delta_step_cuda(at::Tensor& delta, const at::Tensor& grad, const at::Tensor& x, double eps,
                    double alpha, double lo, double hi, const c10::optional<at::Tensor>& eps_n,
                    const c10::optional<at::Tensor>& alpha_n,
                    const c10::optional<at::Tensor>& x_adv) {
  check_box("delta_step_", lo, hi);
  const OpArgs a = make_args("delta_step_", delta, "delta", x, "x", grad, eps, alpha, eps_n,
                             alpha_n, x_adv, "x_adv");
  cuda::run(delta, a, math::DeltaStep{float(lo), float(hi)}, "delta_step_");
}

}  // namespace

TORCH_LIBRARY_IMPL(aft_fast, CUDA, m) { m.impl("delta_step_", &delta_step_cuda); }

}  // namespace aft_fast
