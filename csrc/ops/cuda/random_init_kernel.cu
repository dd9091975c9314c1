#include <torch/library.h>

#include "ops/cuda/elementwise.cuh"
#include "ops/step_math.h"

namespace aft_fast {
namespace {

void random_init_cuda(at::Tensor& x_adv, const at::Tensor& x_nat, double eps, double lo, double hi,
                     int64_t seed, const c10::optional<at::Tensor>& eps_n,
                     const c10::optional<at::Tensor>& out) {
  check_box("random_init_", lo, hi);
  const OpArgs a = make_args("random_init_", x_adv, "x_adv", x_nat, "x_nat", at::Tensor(), eps, 0.0,
                             eps_n, c10::nullopt, out, "out");
  cuda::run(x_adv, a, math::RandomInit{float(lo), float(hi), static_cast<uint64_t>(seed)}, "random_init_");
}

}  // namespace

TORCH_LIBRARY_IMPL(aft_fast, CUDA, m) { m.impl("random_init_", &random_init_cuda); }

}  // namespace aft_fast
