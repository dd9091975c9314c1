#include <torch/library.h>

#include "ops/cpu/elementwise.h"
#include "ops/step_math.h"

namespace aft_fast {
namespace {

// One chunk of the element loop, compiled per instruction set (see elementwise.h).
AFT_CPU_CLONES void random_init_chunk(const math::RandomInit& op, const float* a0, const float* a1,
                                      const float* g, float eps, float alpha, uint64_t offset,
                                      int64_t m, float* a0_new, float* out) {
  cpu::apply_chunk(op, a0, a1, g, eps, alpha, offset, m, a0_new, out);
}

void random_init_cpu(at::Tensor& x_adv, const at::Tensor& x_nat, double eps, double lo, double hi,
                     int64_t seed, const c10::optional<at::Tensor>& eps_n,
                     const c10::optional<at::Tensor>& out) {
  check_box("random_init_", lo, hi);
  const OpArgs a = make_args("random_init_", x_adv, "x_adv", x_nat, "x_nat", at::Tensor(), eps, 0.0,
                             eps_n, c10::nullopt, out, "out");
  cpu::run(a, math::RandomInit{float(lo), float(hi), static_cast<uint64_t>(seed)}, &random_init_chunk);
}

}  // namespace

TORCH_LIBRARY_IMPL(aft_fast, CPU, m) { m.impl("random_init_", &random_init_cpu); }

}  // namespace aft_fast
