// What is not an op goes through pybind11: the build information `aft-fast info` prints.
// Importing the module (aft_fast._C) also loads the TORCH_LIBRARY registrations in this library.
#include <torch/extension.h>
#include <torch/version.h>

#define AFT_STR_(...) #__VA_ARGS__
#define AFT_STR(...) AFT_STR_(__VA_ARGS__)

namespace {

pybind11::dict build_info() {
  pybind11::dict d;
  d["version"] = AFT_STR(AFT_VERSION);  // setup.py passes aft_fast/policy.py's VERSION
  d["torch"] = TORCH_VERSION;
  d["cxx"] = __VERSION__;
#ifdef AFT_WITH_CUDA
  d["cuda_kernels"] = true;
  d["cuda_archs"] = AFT_STR(AFT_CUDA_ARCHS);
#else
  d["cuda_kernels"] = false;
  d["cuda_archs"] = "";
#endif
  d["ops"] = pybind11::make_tuple("pgd_step_", "random_init_", "delta_step_");
  return d;
}

}  // namespace

PYBIND11_MODULE(_C, m) {
  m.doc() = "aft_fast compiled ops (registered as torch.ops.aft_fast.*) and build information";
  m.def("build_info", &build_info, "How this library was built");
}
