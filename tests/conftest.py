"""Markers that skip cleanly: `cuda` without a GPU, `dali` without nvidia-dali. Skips are listed
in the summary (-ra), so a skipped CUDA test is never mistaken for a passed one."""
import importlib.util

import pytest
import torch

HAS_CUDA = torch.cuda.is_available()
HAS_DALI = importlib.util.find_spec("nvidia") is not None and \
    importlib.util.find_spec("nvidia.dali") is not None

DEVICES = ["cpu", pytest.param("cuda", marks=pytest.mark.cuda)]


def pytest_collection_modifyitems(config, items):
    skip_cuda = pytest.mark.skip(reason="needs a CUDA GPU (none visible)")
    skip_dali = pytest.mark.skip(reason="needs nvidia-dali (pip install '.[dali]')")
    for item in items:
        if "cuda" in item.keywords and not HAS_CUDA:
            item.add_marker(skip_cuda)
        if "dali" in item.keywords and not HAS_DALI:
            item.add_marker(skip_dali)


@pytest.fixture(autouse=True)
def _seed():
    torch.manual_seed(0)
