#include <torch/library.h>

#include "ops/cpu/elementwise.h"
#include "ops/step_math.h"

namespace aft_fast {
namespace {

// One chunk of the element loop, compiled per instruction set (see elementwise.h).
AFT_CPU_CLONES void delta_step_chunk(const math::DeltaStep& op, const float* a0, const float* a1,
                                     const float* g, float eps, float alpha, uint64_t offset,
                                     int64_t m, float* a0_new, float* out) {
  cpu::apply_chunk(op, a0, a1, g, eps, alpha, offset, m, a0_new, out);
}

void delta_step_cpu(at::Tensor& delta, const at::Tensor& grad, const at::Tensor& x, double eps,
                    double alpha, double lo, double hi, const c10::optional<at::Tensor>& eps_n,
                    const c10::optional<at::Tensor>& alpha_n,
                    const c10::optional<at::Tensor>& x_adv) {
  check_box("delta_step_", lo, hi);
  const OpArgs a = make_args("delta_step_", delta, "delta", x, "x", grad, eps, alpha, eps_n,
                             alpha_n, x_adv, "x_adv");
  cpu::run(a, math::DeltaStep{float(lo), float(hi)}, &delta_step_chunk);
}

}  // namespace

TORCH_LIBRARY_IMPL(aft_fast, CPU, m) { m.impl("delta_step_", &delta_step_cpu); }

}  // namespace aft_fast
