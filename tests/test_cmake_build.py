"""CMakeLists.txt builds the same sources into a library torch.ops.load_library can load."""
import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest
import torch

ROOT = Path(__file__).resolve().parents[1]


def _cmake():
    exe = shutil.which("cmake")
    if exe is None:
        return None
    out = subprocess.run([exe, "--version"], capture_output=True, text=True).stdout.split()
    version = tuple(int(p) for p in out[2].split(".")[:2]) if len(out) > 2 else (0, 0)
    return exe if version >= (3, 26) else None


@pytest.mark.slow
@pytest.mark.skipif(_cmake() is None, reason="needs cmake >= 3.26 (pip install cmake)")
def test_cmake_builds_loadable_ops(tmp_path):
    toolkit = os.environ.get("CUDA_HOME", "/usr/local/cuda")
    # the CUDA wheels lie beside torch (not in site.getsitepackages()[0] in a venv that sees the
    # system's packages)
    nvrtc = Path(torch.__file__).parents[1] / "nvidia" / "cu13" / "lib" / "libnvrtc.so.13"
    with_cuda = Path(toolkit, "bin", "nvcc").exists() and nvrtc.exists()
    args = [_cmake(), "-S", str(ROOT), "-B", str(tmp_path), f"-DWITH_CUDA={'ON' if with_cuda else 'OFF'}",
            f"-DCMAKE_PREFIX_PATH={torch.utils.cmake_prefix_path}",
            f"-DCUDA_TOOLKIT_ROOT_DIR={toolkit}", f"-DCMAKE_CUDA_COMPILER={toolkit}/bin/nvcc",
            f"-DCUDA_nvrtc_LIBRARY={nvrtc}"]
    env = {**os.environ, "TORCH_CUDA_ARCH_LIST": "9.0"}  # one arch: the test checks the build, not coverage
    subprocess.run(args, check=True, env=env, capture_output=True)
    subprocess.run([_cmake(), "--build", str(tmp_path), "-j2"], check=True, env=env, capture_output=True)
    lib = tmp_path / "libaft_fast_ops.so"
    assert lib.exists()
    # Load it in a fresh interpreter (this one already has aft_fast._C's registrations).
    code = ("import torch; torch.ops.load_library(%r); x = torch.rand(2, 3, 4, 4); a = x.clone();"
            "torch.ops.aft_fast.pgd_step_(a, torch.ones_like(x), x, 0.1, 0.05, 0.0, 1.0);"
            "assert torch.allclose(a, (x + 0.05).clamp(max=1)); print('ok')") % str(lib)
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert "ok" in out.stdout
