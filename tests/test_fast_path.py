"""The automatic fast path: every decision with the device's capability faked, the training run
recording and printing what it chose, the fp32 opt-out unchanged, evaluation in channels_last."""
import pytest
import torch
import torch.nn as nn
import yaml

from aft_fast import fast_path
from aft_fast.errors import OptionError
from aft_fast.fast_path import auto_amp, resolve


def _cuda(monkeypatch, capability):
    monkeypatch.setattr(torch.cuda, "get_device_capability", lambda device=None: capability)


@pytest.mark.parametrize("capability, amp", [((9, 0), "bf16"), ((8, 0), "bf16"), ((8, 6), "bf16"),
                                             ((7, 5), "fp16"), ((7, 0), "fp16"), ((6, 1), "none")])
def test_cuda_amp_follows_the_capability(monkeypatch, capability, amp):
    _cuda(monkeypatch, capability)
    assert auto_amp("cuda")[0] == amp


@pytest.mark.parametrize("avx512_bf16, amx, amp", [(True, False, "bf16"), (False, True, "bf16"),
                                                    (False, False, "none")])
def test_cpu_amp_reads_native_bf16(monkeypatch, avx512_bf16, amx, amp):
    monkeypatch.setattr(torch.cpu, "_is_avx512_bf16_supported", lambda: avx512_bf16,
                        raising=False)
    monkeypatch.setattr(torch.cpu, "_is_amx_tile_supported", lambda: amx, raising=False)
    assert auto_amp("cpu")[0] == amp


@pytest.mark.parametrize("flags, native", [({"avx2", "avx512_bf16"}, True), ({"amx_bf16"}, True),
                                           ({"avx2", "avx512f"}, False)])
def test_without_torchs_probe_the_kernel_flags_decide(monkeypatch, flags, native):
    for name in ("_is_avx512_bf16_supported", "_is_amx_tile_supported"):
        monkeypatch.delattr(torch.cpu, name, raising=False)
    monkeypatch.setattr(fast_path, "_cpuinfo_flags", lambda: flags)
    assert fast_path.cpu_native_bf16() is native


def test_other_devices_stay_fp32():
    assert auto_amp("meta")[0] == "none"


def test_channels_last_auto_is_on_for_convolutional_models_only(monkeypatch):
    monkeypatch.setattr(fast_path, "cpu_native_bf16", lambda: False)
    conv = nn.Sequential(nn.Conv2d(1, 4, 3), nn.Flatten(), nn.LazyLinear(2))
    mlp = nn.Sequential(nn.Flatten(), nn.Linear(4, 2))
    assert resolve("auto", "auto", "cpu", conv).channels_last
    assert not resolve("auto", "auto", "cpu", mlp).channels_last


def test_explicit_settings_are_kept_whatever_the_device(monkeypatch):
    monkeypatch.setattr(fast_path, "cpu_native_bf16", lambda: True)
    conv = nn.Conv2d(1, 4, 3)
    assert resolve("none", "off", "cpu", conv) == fast_path.FastPath(None, False)
    assert resolve("fp16", True, "cpu", conv) == fast_path.FastPath("fp16", True)
    auto = resolve("auto", "auto", "cpu", conv)
    assert (auto.amp, auto.channels_last) == ("bf16", True)
    assert "amp auto" in auto.why and "channels_last auto" in auto.why


@pytest.mark.parametrize("given, kept", [(True, "on"), (False, "off"), ("auto", "auto")])
def test_options_take_the_former_boolean_channels_last(synthetic_opts, tmp_path, given, kept):
    assert synthetic_opts(tmp_path, "r", channels_last=given).check().channels_last == kept


@pytest.mark.parametrize("name, value", [("amp", "fp8"), ("channels_last", "yes")])
def test_options_refuse_unknown_settings(synthetic_opts, tmp_path, name, value):
    with pytest.raises(OptionError, match="--" + name.replace("_", "-")):
        synthetic_opts(tmp_path, "r", **{name: value}).check()


def test_the_run_prints_and_records_its_choice(synthetic_opts, tmp_path, capsys, monkeypatch):
    from aft_fast.train.run import train

    monkeypatch.setattr(fast_path, "cpu_native_bf16", lambda: False)
    train(synthetic_opts(tmp_path, "run", method="natural", epochs=1, quiet=False,
                         amp="auto", channels_last="auto"))
    first = capsys.readouterr().out.splitlines()[0]
    assert first.startswith("precision fp32, memory format channels_last (amp auto")
    resolved = yaml.safe_load((tmp_path / "run" / "args.yaml").read_text())["resolved"]
    assert resolved["amp"] == "fp32" and resolved["channels_last"] is True


def test_fp32_opt_out_trains_as_before(synthetic_opts, tmp_path):
    """--amp none --channels-last off and the former defaults (none, False): the same weights."""
    from aft_fast.train.run import train
    from aft_fast.train.checkpoint import read_checkpoint

    def weights(name, **kw):
        train(synthetic_opts(tmp_path, name, method="pgd-at", epochs=1, **kw))
        return read_checkpoint(tmp_path / name / "last.pt")["model"]

    new, old = weights("new", amp="none", channels_last="off"), \
        weights("old", amp="none", channels_last=False)
    assert all(torch.equal(new[k], old[k]) for k in new)


def test_train_cli_takes_the_bare_flag_and_an_old_config(tmp_path):
    from click.testing import CliRunner

    from aft_fast.commands.train import train_command

    seen = {}
    cfg = tmp_path / "args.yaml"
    cfg.write_text("channels_last: false\namp: none\n")

    def fake_train(opts):
        seen["opts"] = opts
        raise SystemExit(0)

    import aft_fast.commands.train as cmd
    for args, expect in ((["--channels-last"], ("auto", "on")),
                         (["--config", str(cfg)], ("none", "off")),
                         ([], ("auto", "auto"))):
        seen.clear()
        with pytest.MonkeyPatch.context() as mp:
            mp.setattr(cmd, "train", fake_train)
            CliRunner().invoke(train_command, args)
        assert (seen["opts"].amp, seen["opts"].channels_last) == expect, args


@pytest.mark.parametrize("arch, channels, side", [("small_cnn", 3, 28), ("preact_resnet18", 3, 32)])
def test_evaluation_layout_keeps_fp32_numerics(arch, channels, side):
    """The channels_last model (NCHW images) computes the NCHW model's fp32 input gradient up
    to float rounding, and PGD from the same starts ends at nearly the same examples (a sign
    step turns a rounding difference of a near-zero gradient into a different pixel). Up to
    rounding at almost every pixel: a ReLU whose input lies within rounding of zero may switch
    between the layouts, and the gradient is discontinuous there (on an Intel Xeon, one of
    preact_resnet18's 262,144 layer3 pre-activations, 4.4e-8 from zero, moved 0.5% of the
    input gradient's entries, 1.3e-3 of its norm; the NCHW fp32 and fp64 masks agreed)."""
    import copy

    from aft_fast.attacks import AttackConfig, pgd
    from aft_fast.attacks.pgd import input_grad
    from aft_fast.models import build

    torch.manual_seed(0)
    model = build(arch, 10, in_channels=channels).eval()
    x, y = torch.rand(8, channels, side, side), torch.randint(0, 10, (8,))
    fast = fast_path.for_evaluation(copy.deepcopy(model))
    conv = next(m for m in fast.modules() if isinstance(m, nn.Conv2d))
    assert not conv.weight.is_contiguous()  # channels_last indeed
    got, want = input_grad(fast, x, y)[0], input_grad(model, x, y)[0]
    close = (got - want).abs() <= 1e-6 + 1e-4 * want.abs()
    assert close.float().mean() > 0.98 and (got - want).norm() < 1e-2 * want.norm()
    cfg = AttackConfig(0.1, 0.025, 5)
    plain = pgd(model, x, y, cfg, generator=torch.Generator().manual_seed(1))
    adv = pgd(fast, x, y, cfg, generator=torch.Generator().manual_seed(1))
    assert adv.dtype == torch.float32 and adv.is_contiguous()
    assert ((adv - plain).abs() < 1e-6).float().mean() > 0.9
