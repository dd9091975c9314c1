#include <torch/library.h>

#include "ops/cpu/elementwise.h"
#include "ops/step_math.h"

namespace aft_fast {
namespace {

// One chunk of the element loop, compiled per instruction set (see elementwise.h).
AFT_CPU_CLONES void pgd_step_chunk(const math::PgdStep& op, const float* a0, const float* a1,
                                   const float* g, float eps, float alpha, uint64_t offset,
                                   int64_t m, float* a0_new, float* out) {
  cpu::apply_chunk(op, a0, a1, g, eps, alpha, offset, m, a0_new, out);
}

void pgd_step_cpu(at::Tensor& x_adv, const at::Tensor& grad, const at::Tensor& x_nat, double eps,
                  double alpha, double lo, double hi, const c10::optional<at::Tensor>& eps_n,
                  const c10::optional<at::Tensor>& alpha_n, const c10::optional<at::Tensor>& out) {
  check_box("pgd_step_", lo, hi);
  const OpArgs a = make_args("pgd_step_", x_adv, "x_adv", x_nat, "x_nat", grad, eps, alpha, eps_n,
                             alpha_n, out, "out");
  cpu::run(a, math::PgdStep{float(lo), float(hi)}, &pgd_step_chunk);
}

}  // namespace

TORCH_LIBRARY_IMPL(aft_fast, CPU, m) { m.impl("pgd_step_", &pgd_step_cpu); }

}  // namespace aft_fast
