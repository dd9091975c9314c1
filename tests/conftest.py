"""Shared test fixtures, and markers that skip cleanly: `cuda` without a GPU, `dali` without
nvidia-dali. Skips are listed in the summary (-ra), so a skipped CUDA test is never mistaken for a
passed one. Tests take their helpers from here as fixtures, never from another test module."""
import importlib.util

import pytest
import torch

HAS_CUDA = torch.cuda.is_available()
HAS_DALI = importlib.util.find_spec("nvidia") is not None and \
    importlib.util.find_spec("nvidia.dali") is not None

DEVICES = ["cpu", pytest.param("cuda", marks=pytest.mark.cuda)]


def _fashion_mnist_missing() -> str | None:
    """Why `--data fashion-mnist` cannot load here (None when it can)."""
    from aft_fast.data import fashion_mnist as fm

    if all(fm._find(fm.data_dir(), s) for part in fm.FILES.values() for s in part):
        return None
    return f"Fashion-MNIST idx files not in {fm.data_dir()} (`{fm.INSTALL}`)"


def pytest_collection_modifyitems(config, items):
    skip_cuda = pytest.mark.skip(reason="needs a CUDA GPU (none visible)")
    skip_dali = pytest.mark.skip(reason="needs nvidia-dali (pip install '.[dali]')")
    no_fashion = _fashion_mnist_missing() if any("fashion" in i.keywords for i in items) else None
    for item in items:
        if "cuda" in item.keywords and not HAS_CUDA:
            item.add_marker(skip_cuda)
        if "dali" in item.keywords and not HAS_DALI:
            item.add_marker(skip_dali)
        if "fashion" in item.keywords and no_fashion:
            item.add_marker(pytest.mark.skip(reason=no_fashion))


@pytest.fixture(autouse=True)
def _seed():
    torch.manual_seed(0)


# ------------------------------------------------------------------------------ tiny runs
TINY_RUN = dict(data="synthetic", arch="small_cnn", batch_size=32, eval_max_batches=1, eval_steps=2,
                steps=2, eps=0.1, quiet=True, log_every=10**9, device="cpu")


@pytest.fixture
def small_synthetic(monkeypatch):
    """`train` builds its synthetic data as 128 1×28×28 images (4 batches of TINY_RUN), which
    small_cnn takes."""
    import aft_fast.train.run as run
    real = run.make_loaders

    def tiny(data, **kw):
        return real(data, synthetic_shape=(1, 28, 28), synthetic_size=128, **kw)

    monkeypatch.setattr(run, "make_loaders", tiny)


@pytest.fixture
def synthetic_opts(small_synthetic):
    """`synthetic_opts(tmp_path, name, **overrides)`: the TrainOptions of a tiny CPU run on the
    small synthetic data, written to tmp_path / name."""
    from aft_fast.train.options import TrainOptions

    def make(tmp_path, name, **kw):
        return TrainOptions(out=str(tmp_path / name), **{**TINY_RUN, **kw})

    return make
