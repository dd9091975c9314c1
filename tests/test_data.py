import pytest
import torch

from aft_fast.data import make_loaders, mnist5k


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
    assert len(L.train) == 14 and L.train.num_samples == 3500
    L.train.set_epoch(3)
    a = torch.cat([y for _, y in L.train])
    L.train.set_epoch(3)
    b = torch.cat([y for _, y in L.train])
    L.train.set_epoch(4)
    c = torch.cat([y for _, y in L.train])
    assert torch.equal(a, b) and not torch.equal(a, c) and len(a) == 3500
    assert len(L.train_eval.labels) == 512


def test_shards_cover_every_sample_once():
    seen = []
    for rank in range(2):
        L = make_loaders("synthetic", batch_size=10, rank=rank, world_size=2, synthetic_size=101)
        L.train.set_epoch(1)
        seen.append(torch.cat([L.train.indices()]))
    assert len(seen[0]) == len(seen[1]) == 51
    union = torch.cat(seen)
    assert set(union.tolist()) == set(range(101))  # every sample, one padded repeat
    assert len(set(seen[0].tolist()) & set(seen[1].tolist())) <= 1


def test_channels_last_batches():
    L = make_loaders("synthetic", batch_size=8, channels_last=True)
    x, _ = next(iter(L.train))
    assert x.is_contiguous(memory_format=torch.channels_last)


@pytest.mark.parametrize("kw,message", [
    (dict(data="imagenet"), "--data must be one of"),
    (dict(data="mnist5k", loader="fast"), "--loader must be one of"),
    (dict(data="mnist5k", batch_size=0), "--batch-size must be >= 1"),
])
def test_errors(kw, message):
    with pytest.raises(ValueError, match=message):
        make_loaders(**{"batch_size": 8, **kw})


def test_synthetic_takes_the_image_size():
    L = make_loaders("synthetic", batch_size=4, image_size=48)
    x, _ = next(iter(L.train))
    assert L.spec.image_size == 48 and x.shape[1:] == (3, 48, 48)
