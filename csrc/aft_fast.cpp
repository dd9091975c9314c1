// Every op's schema, declared once. Backends register their kernels in csrc/ops/{cpu,cuda}/.
// The ops mutate their first argument (and the optional second output) and return nothing, so
// torch.compile/functionalization need no fake kernel for them.
#include <torch/library.h>

TORCH_LIBRARY(aft_fast, m) {
  m.def(
      "pgd_step_(Tensor(a!) x_adv, Tensor grad, Tensor x_nat, float eps, float alpha, float lo, "
      "float hi, Tensor? eps_per_sample=None, Tensor? alpha_per_sample=None, "
      "Tensor(b!)? out=None) -> ()");
  m.def(
      "random_init_(Tensor(a!) x_adv, Tensor x_nat, float eps, float lo, float hi, int seed, "
      "Tensor? eps_per_sample=None, Tensor(b!)? out=None) -> ()");
  m.def(
      "delta_step_(Tensor(a!) delta, Tensor grad, Tensor x, float eps, float alpha, float lo, "
      "float hi, Tensor? eps_per_sample=None, Tensor? alpha_per_sample=None, "
      "Tensor(b!)? x_adv=None) -> ()");
}
