"""In-memory sources (mnist5k, synthetic), the `Batches` contract they share with the folder
loaders (order, shards, exact resume), errors, and the data package's import graph."""
import ast
import math
from pathlib import Path

import pytest
import torch

from aft_fast.data import Batches, make_loaders, mnist5k
from aft_fast.data.tensors import TensorBatches
from aft_fast.errors import OptionError


def test_mnist5k_splits():
    sizes = {s: len(mnist5k(s)[1]) for s in ("train", "val", "test")}
    assert sizes == {"train": 3500, "val": 500, "test": 1000}
    x, y = mnist5k("train")
    assert x.shape == (3500, 1, 28, 28) and x.dtype == torch.float32 and y.dtype == torch.int64
    assert x.min() >= 0 and x.max() <= 1 and x.max() > 0.9
    assert set(y.tolist()) == set(range(10))
    # Disjoint splits: no test image equals a training image (rows are distinct digits).
    train_keys = {hash(r.numpy().tobytes()) for r in mnist5k("train")[0]}
    assert not any(hash(r.numpy().tobytes()) in train_keys for r in mnist5k("test")[0])
    with pytest.raises(ValueError, match="split must be one of"):
        mnist5k("dev")


def test_loader_contract_and_determinism():
    L = make_loaders("mnist5k", batch_size=256)
    assert isinstance(L.train, Batches) and len(L.train) == 14 and L.train.num_samples == 3500
    L.train.set_epoch(3)
    a = torch.cat([y for _, y in L.train])
    L.train.set_epoch(3)
    b = torch.cat([y for _, y in L.train])
    L.train.set_epoch(4)
    c = torch.cat([y for _, y in L.train])
    assert torch.equal(a, b) and not torch.equal(a, c) and len(a) == 3500
    assert L.train_eval.num_samples == 512


def test_tensor_order_is_unchanged_by_the_shared_base():
    """The order runs recorded before `Batches` existed were trained on (seed·1000003 + epoch)."""
    L = make_loaders("synthetic", batch_size=10, synthetic_size=50, seed=2)
    L.train.set_epoch(5)
    expected = torch.randperm(50, generator=torch.Generator().manual_seed(2 * 1_000_003 + 5))
    assert torch.equal(L.train.indices(), expected)


@pytest.mark.parametrize("n,world_size", [(101, 2), (3, 5), (10, 3)])
def test_shards_follow_distributed_sampler(n, world_size):
    """Every rank's indices are DistributedSampler's (shuffled with seed + epoch, wrap-around
    padding, even when the padding exceeds the data), so all ranks run the same steps."""
    for rank in range(world_size):
        b = Batches(n, 4, shuffle=True, seed=7, device="cpu", channels_last=False, rank=rank,
                    world_size=world_size)
        b.set_epoch(2)
        ref = torch.utils.data.DistributedSampler(range(n), num_replicas=world_size, rank=rank,
                                                  shuffle=True, seed=7)
        ref.set_epoch(2)
        assert b.indices().tolist() == list(ref) and b.num_samples == math.ceil(n / world_size)


def test_tensor_shards_cover_every_sample_once():
    seen = []
    for rank in range(2):
        L = make_loaders("synthetic", batch_size=10, rank=rank, world_size=2, synthetic_size=101)
        L.train.set_epoch(1)
        seen.append(L.train.indices())
    assert len(seen[0]) == len(seen[1]) == 51
    assert set(torch.cat(seen).tolist()) == set(range(101))  # every sample, one padded repeat
    assert len(set(seen[0].tolist()) & set(seen[1].tolist())) <= 1


def test_resume_mid_epoch_gives_the_rest_of_the_epoch():
    L = make_loaders("synthetic", batch_size=8, synthetic_size=60)  # 8 batches, the last of 4
    L.train.set_epoch(2)
    full = list(L.train)
    for k in (0, 3, 7, 8):
        L.train.set_epoch(2, start_batch=k)
        rest = list(L.train)
        assert len(rest) == len(full) - k
        for (xa, ya), (xb, yb) in zip(full[k:], rest):
            assert torch.equal(xa, xb) and torch.equal(ya, yb)
    L.train.set_epoch(2, start_batch=5)
    list(L.train)
    assert len(list(L.train)) == 8  # the offset applies to one pass only
    with pytest.raises(ValueError, match=r"start_batch must be in \[0, 8\]"):
        L.train.set_epoch(2, start_batch=9)


def test_uint8_images_become_float_in_unit_range():
    images = torch.tensor([[[[0, 255], [128, 1]]]], dtype=torch.uint8)
    x, _ = next(iter(TensorBatches(images, torch.tensor([3]), 1)))
    assert x.dtype == torch.float32 and torch.allclose(x, images.float() / 255)


def test_channels_last_batches():
    L = make_loaders("synthetic", batch_size=8, channels_last=True)
    x, _ = next(iter(L.train))
    assert x.is_contiguous(memory_format=torch.channels_last)


@pytest.mark.parametrize("kw,option,message", [
    (dict(data="imagenet"), "data", "must be one of mnist5k"),
    (dict(data="mnist5k", loader="fast"), "loader", "must be one of pytorch, dali"),
    (dict(data="mnist5k", batch_size=0), "batch_size", "must be >= 1"),
])
def test_errors_name_their_option(kw, option, message):
    with pytest.raises(OptionError, match=message) as err:
        make_loaders(**{"batch_size": 8, **kw})
    assert err.value.option == option and "--" not in err.value.message


def test_synthetic_takes_the_image_size():
    L = make_loaders("synthetic", batch_size=4, image_size=48)
    x, _ = next(iter(L.train))
    assert L.spec.image_size == 48 and x.shape[1:] == (3, 48, 48)


def _data_imports() -> dict[str, set[str]]:
    """{module: aft_fast.data modules it imports (at any depth of its code)}."""
    pkg = Path(__file__).resolve().parent.parent / "aft_fast" / "data"
    graph = {}
    for path in pkg.glob("*.py"):
        name = f"aft_fast.data.{path.stem}" if path.stem != "__init__" else "aft_fast.data"
        deps = set()
        for node in ast.walk(ast.parse(path.read_text())):
            if isinstance(node, ast.ImportFrom) and node.module:
                deps.add(node.module)
            elif isinstance(node, ast.Import):
                deps.update(a.name for a in node.names)
        graph[name] = {d for d in deps if d.startswith("aft_fast.data.") and d != name}
    return graph


def test_data_package_has_no_import_cycle_and_leaf_types():
    graph = _data_imports()
    assert graph["aft_fast.data.types"] == set() and graph["aft_fast.data.batches"] == set()
    state = {}

    def visit(m, path):
        assert state.get(m) != "open", f"import cycle: {' -> '.join(path + [m])}"
        if state.get(m) is None:
            state[m] = "open"
            for d in graph.get(m, ()):
                visit(d, path + [m])
            state[m] = "done"

    for m in graph:
        visit(m, [])


def test_train_images_is_a_fixed_subset_of_the_training_split():
    full = make_loaders("mnist5k", batch_size=100)
    a = make_loaders("mnist5k", batch_size=100, train_images=1000, seed=0)
    b = make_loaders("mnist5k", batch_size=100, train_images=1000, seed=1)
    assert a.train.num_samples == a.spec.train_size == 1000 and torch.equal(a.train.images, b.train.images)
    keys = {hash(r.numpy().tobytes()) for r in full.train.images}
    assert all(hash(r.numpy().tobytes()) in keys for r in a.train.images)
    assert torch.equal(a.val.images, full.val.images) and torch.equal(a.test.images, full.test.images)
    assert make_loaders("mnist5k", batch_size=100, train_images=10**6).train.num_samples == 3500
    with pytest.raises(OptionError, match="must be >= 1") as err:
        make_loaders("mnist5k", batch_size=100, train_images=0)
    assert err.value.option == "train_images"
