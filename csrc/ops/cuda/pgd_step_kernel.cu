#include <torch/library.h>

#include "ops/cuda/elementwise.cuh"
#include "ops/step_math.h"

namespace aft_fast {
namespace {

void pgd_step_cuda(at::Tensor& x_adv, const at::Tensor& grad, const at::Tensor& x_nat, double eps,
                  double alpha, double lo, double hi, const c10::optional<at::Tensor>& eps_n,
                  const c10::optional<at::Tensor>& alpha_n, const c10::optional<at::Tensor>& out) {
  check_box("pgd_step_", lo, hi);
  const OpArgs a = make_args("pgd_step_", x_adv, "x_adv", x_nat, "x_nat", grad, eps, alpha, eps_n,
                             alpha_n, out, "out");
  cuda::run(x_adv, a, math::PgdStep{float(lo), float(hi)}, "pgd_step_");
}

}  // namespace

TORCH_LIBRARY_IMPL(aft_fast, CUDA, m) { m.impl("pgd_step_", &pgd_step_cuda); }

}  // namespace aft_fast
