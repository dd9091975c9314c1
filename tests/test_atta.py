"""ATTA-k (Zheng et al. 2020; haizhongzheng/ATTA): the per-image perturbation store carries over
between epochs, is reset every R epochs, follows the loader's crops and flips, stores fp16/int8
within their error bound, resumes bitwise, learns, and has its comparison row, cost and bench
timing."""
import pytest
import torch
import torch.nn as nn
from PIL import Image

from aft_fast.compare.recipes import plan
from aft_fast.data.augment import PAD
from aft_fast.data.batches import Origin
from aft_fast.data.torchvision_batches import TorchvisionBatches
from aft_fast.data.types import FileList
from aft_fast.errors import OptionError
from aft_fast.methods import make_method
from aft_fast.methods.atta import DeltaStore
from aft_fast.models import Normalized
from aft_fast.train.checkpoint import read_checkpoint
from aft_fast.train.options import TrainOptions
from aft_fast.train.update import Trainer
from test_methods import batch, tiny_net
from test_preemption import stop_then_resume

EPS = 0.1


def trainer_of(model, lr=0.05):
    return Trainer(model, torch.optim.SGD(model.parameters(), lr=lr), None, torch.device("cpu"))


def starts_of(method):
    """Record the start point every attack of `method` is given."""
    seen = []
    real = method.perturb

    def perturb(trainer, x, y, start=None):
        seen.append(start.clone())
        return real(trainer, x, y, start)

    method.perturb = perturb
    return seen


def test_second_epoch_starts_from_the_stored_delta_and_reset_every_r_epochs():
    torch.manual_seed(0)
    model, (x, y) = tiny_net(), batch()
    m = make_method("atta", eps=EPS, atta_reset=2)
    starts, t, origin = starts_of(m), trainer_of(model), Origin(torch.arange(16), 16)
    stored = []
    for epoch in range(4):
        m.set_progress(float(epoch))
        m.step(t, x, y, lambda f: None, origin=origin)
        stored.append(m.store.read(origin, x.shape).clone())
    assert torch.equal(starts[0], x)  # a new store: δ = 0, no random start
    assert stored[0].abs().max() > 0 and stored[0].abs().max() <= EPS + 1e-6
    # Epoch 2 (1-based) is a multiple of R = 2: reset, as the code's epoch % epochs_reset == 0.
    assert torch.equal(starts[1], x)
    torch.testing.assert_close(starts[2], x + stored[1], rtol=0, atol=0)  # carried over
    assert torch.equal(starts[3], x)  # epoch 4: reset again


def test_the_start_is_the_stored_delta_of_each_image_not_of_its_batch_position():
    torch.manual_seed(0)
    model, (x, y) = tiny_net(), batch()
    m = make_method("atta", eps=EPS, atta_reset=0)
    starts, t = starts_of(m), trainer_of(model)
    m.step(t, x, y, lambda f: None, origin=Origin(torch.arange(16), 32))
    first = m.store.read(Origin(torch.arange(16), 32), x.shape)
    perm = torch.randperm(16)
    m.step(t, x[perm], y[perm], lambda f: None, origin=Origin(perm, 32))
    torch.testing.assert_close(starts[1], x[perm] + first[perm], rtol=0, atol=0)
    assert m.store.values[16:].abs().max() == 0  # images never seen keep δ = 0


def test_store_follows_the_crop_and_flip_of_the_padded_image():
    """A δ written through (crop, flip) lands where those pixels are in the padded image, and
    comes back mirrored when the same crop is read unflipped."""
    store = DeltaStore(2, (1, 8 + 2 * PAD, 8 + 2 * PAD), "fp32", 1.0, "cpu")
    padded = torch.rand(2, 1, 16, 16)
    top_left, flip = torch.tensor([[1, 6], [4, 0]]), torch.tensor([True, False])
    crops = torch.stack([padded[i, :, t:t + 8, l:l + 8] for i, (t, l) in enumerate(top_left)])
    seen = torch.where(flip[:, None, None, None], crops.flip(-1), crops)  # what the loader gives
    origin = Origin(torch.arange(2), 2, top_left, flip, PAD)
    store.write(origin, seen)
    for i, (t, l) in enumerate(top_left):
        assert torch.equal(store.values[i, :, t:t + 8, l:l + 8], padded[i, :, t:t + 8, l:l + 8])
    assert torch.equal(store.read(origin, seen.shape), seen)
    unflipped = store.read(origin._replace(flip=torch.tensor([False, False])), seen.shape)
    assert torch.equal(unflipped, crops)


def test_the_folder_loader_says_where_it_cropped_and_flipped(tmp_path):
    """Each batch's Origin rebuilds its images from the padded originals (small preset)."""
    files, originals = [], []
    for i in range(6):
        img = torch.randint(0, 256, (8, 8, 3), generator=torch.Generator().manual_seed(i))
        path = tmp_path / f"{i}.png"
        Image.fromarray(img.numpy().astype("uint8")).save(path)
        files.append(str(path))
        originals.append(nn.functional.pad(img.permute(2, 0, 1).float() / 255, [PAD] * 4))
    loader = TorchvisionBatches(FileList(files, [0] * 6), 4, train=True, augment="small",
                                image_size=8, device="cpu", workers=0, seed=0,
                                channels_last=False, rank=0, world_size=1)
    loader.ask_origin()
    seen = 0
    for x, _y, o in loader:
        for k in range(len(x)):
            t, l = o.crop[k].tolist()
            crop = originals[o.index[k]][:, t:t + 8, l:l + 8]
            torch.testing.assert_close(x[k], crop.flip(-1) if o.flip[k] else crop)
            seen += 1
        assert o.pad == PAD and o.size == 6
    assert seen == 6


def test_augmentations_it_cannot_follow_are_refused_naming_the_option(tmp_path):
    files = FileList([str(tmp_path / "a.png")], [0])
    loader = TorchvisionBatches(files, 4, train=True, augment="imagenet", image_size=8,
                                device="cpu", workers=0, seed=0, channels_last=False, rank=0,
                                world_size=1)
    with pytest.raises(OptionError, match="random-resized crop") as err:
        loader.ask_origin()
    assert err.value.option == "augment"
    with pytest.raises(OptionError, match="fp32, fp16, int8") as err:
        TrainOptions(method="atta", atta_storage="bf8").check()
    assert err.value.option == "atta_storage"
    with pytest.raises(OptionError, match="is an option of atta"):
        TrainOptions(method="pgd-at", atta_k=2).check()


@pytest.mark.parametrize("storage, bound", [("fp16", EPS * 2 ** -11), ("int8", EPS / 254)])
def test_low_precision_storage_round_trip_error_is_bounded(storage, bound):
    store = DeltaStore(64, (1, 8, 8), storage, EPS, "cpu")
    origin = Origin(torch.arange(64), 64)
    delta = (torch.rand(64, 1, 8, 8, generator=torch.Generator().manual_seed(0)) * 2 - 1) * EPS
    delta[0, 0, 0, :2] = torch.tensor([EPS, -EPS])  # the ball's edge is kept
    store.write(origin, delta)
    back = store.read(origin, delta.shape)
    err = (back - delta).abs().max().item()
    assert 0 < err <= bound * (1 + 1e-6)
    assert back.abs().max() <= EPS * (1 + 1e-6)
    assert store.values.element_size() == {"fp16": 2, "int8": 1}[storage]


def test_learns_a_tiny_task_robustly():
    """Bright vs dark 8×8 images, ε = 0.1: ATTA-1 reaches high PGD-10 accuracy in a few epochs."""
    from aft_fast.evaluate import evaluate

    torch.manual_seed(0)
    g = torch.Generator().manual_seed(0)
    y = torch.randint(0, 2, (256,), generator=g)
    x = (0.3 + 0.4 * y.float()[:, None, None, None] +
         0.1 * torch.randn(256, 1, 8, 8, generator=g)).clamp(0, 1)
    net = nn.Sequential(nn.Conv2d(1, 4, 3, padding=1), nn.ReLU(), nn.AdaptiveAvgPool2d(1),
                        nn.Flatten(), nn.Linear(4, 2))
    model = Normalized(net, (0.5,), (0.25,))
    m, t = make_method("atta", eps=EPS, atta_reset=0), trainer_of(model, lr=0.1)
    before = evaluate(model, [(x, y)], eps=EPS, steps=10)["robust_acc"]
    for epoch in range(5):
        m.set_progress(float(epoch))
        for idx in torch.randperm(256, generator=g).split(32):
            m.step(t, x[idx], y[idx], lambda f: None, origin=Origin(idx, 256))
    after = evaluate(model, [(x, y)], eps=EPS, steps=10)["robust_acc"]
    assert after >= 0.9 and after > before


def test_resume_mid_epoch_is_bitwise(synthetic_opts, tmp_path, monkeypatch):
    # Never reset: the rest of epoch 2 starts from epoch 1's δ, read from the restored store.
    state = stop_then_resume(synthetic_opts, tmp_path, monkeypatch, method="atta", epochs=2,
                             atta_reset=0, atta_storage="int8")["method_state"]
    assert state["values"].dtype == torch.int8 and state["values"].shape == (128, 1, 28, 28)
    a = read_checkpoint(tmp_path / "straight" / "last.pt")["method_state"]["values"]
    b = read_checkpoint(tmp_path / "stopped" / "last.pt")["method_state"]["values"]
    assert torch.equal(a, b) and a.abs().max() > 0


def test_compare_builds_its_row_and_cost():
    for arch, family_reset in (("small_cnn", 0), ("preact_resnet18", 10)):
        (r,) = plan(arch=arch, eps=EPS, epochs=8, train_steps=2, replays=None, aft_epochs=None,
                    methods=("atta",))
        assert r.label == "ATTA-1" and r.parent is None and r.epochs == 8  # from scratch: E
        assert r.train["atta_k"] == 1 and r.train["atta_reset"] == family_reset
        assert r.passes_per_epoch == 2  # k + 1
    assert make_method("atta", eps=EPS, atta_k=3).passes_per_epoch() == 4
    assert make_method("atta", eps=0.031).alpha == pytest.approx(0.015)  # the code's ATTA-1 step


def test_bench_times_its_iteration():
    from aft_fast.perf.bench import run_bench
    from aft_fast.perf.workload import Workload

    w = Workload(arch="small_cnn", image_size=28, in_channels=1, batch=8, steps=2, eps=EPS,
                 device="cpu")
    row = run_bench(w, warmup=0, repeats=1, methods=("atta",), third_party=False)["methods"]["atta"]
    assert row["attack_steps"] == 1 and row["weight_updates_per_batch"] == 1
    assert row["epochs"] == 90.0 and row["median_s"] > 0


@pytest.mark.slow
def test_two_processes_keep_one_store_and_train_as_one_process(tmp_path):
    """The sampler deals the images to the ranks anew every epoch: with every new δ exchanged,
    two gloo processes train as one process does at the same global batch (2 epochs: the second
    starts from the first's δ, written by whichever rank had the image)."""
    from test_distributed import assert_close, launch, weights

    launch(2, tmp_path / "two", 16, 2, "--method", "atta")
    launch(1, tmp_path / "one", 16, 2, "--method", "atta")
    assert_close(weights(tmp_path / "two"), weights(tmp_path / "one"))
    ckpt = torch.load(tmp_path / "two" / "last.pt", weights_only=True)
    assert all(r["method_state"] is None for r in ckpt["progress"]["ranks"])  # held once
    assert ckpt["method_state"]["values"].abs().max() > 0
