"""`aft-fast robustify`: the choices (every decision path, on constructed probe results), one
tiny end-to-end run (a BatchNorm net on 1×28×28 synthetic data, one-batch probes) whose report
and exports are checked, the train warning's rule, and bad input."""
import base64
import json
import re
import shutil
from dataclasses import replace

import pytest
import torch
import yaml
from click.testing import CliRunner

from aft_fast.errors import OptionError
from aft_fast.models import build, rebuild
from aft_fast.robustify import RobustifyOptions, choose, measure, robustify
from aft_fast.robustify.choose import Probe
from aft_fast.robustify.options import check_all
from aft_fast.robustify.report import pct, summary_rows
from aft_fast.train.checkpoint import load_checkpoint
from aft_fast.train.options import TrainOptions
from aft_fast.train.pretrained_bn import PretrainedBatchNormWarning, warn_pretrained_batchnorm

BN_ARCH = "model_factories:tiny_bn_cnn"
TINY = dict(data="synthetic", arch=BN_ARCH, batch_size=32, eval_steps=2, steps=2, eps=0.1,
            quiet=True, log_every=10**9, device="cpu", workers=0)


# ------------------------------------------------------------------ the choices, path by path
def probe(lr, bn, clean, robust, n=500):
    return Probe(lr=lr, bn=bn, clean=clean, robust=robust, n=n)


def test_pick_takes_the_most_robust():
    probes = [probe(1e-3, "frozen", 0.80, 0.10), probe(3e-4, "frozen", 0.85, 0.30),
              probe(1e-3, "updating", 0.82, 0.20)]
    c = choose.pick(probes, chance=0.1)
    assert (c.probe.lr, c.probe.bn) == (3e-4, "frozen")
    assert c.tied == ("lr0.0003-bn-frozen",) and not c.collapsed


def test_pick_breaks_a_tie_by_clean_accuracy():
    # 0.300 vs 0.295 on 500 images: well within one sd of a difference (~2.9 points)
    probes = [probe(1e-3, "updating", 0.70, 0.300), probe(1e-4, "updating", 0.85, 0.295)]
    c = choose.pick(probes, chance=0.1)
    assert c.probe.lr == 1e-4 and len(c.tied) == 2 and "most accurate clean" in c.why


def test_pick_never_takes_a_collapsed_probe():
    # issue 26's CIFAR ResNet: frozen statistics collapsed it to ~chance, and a constant
    # predictor is "robust"; the updating probe keeps clean accuracy
    probes = [probe(3e-4, "frozen", 0.14, 0.14), probe(3e-4, "updating", 0.80, 0.02)]
    c = choose.pick(probes, chance=0.1)
    assert c.probe.bn == "updating" and c.collapsed == ("lr0.0003-bn-frozen",)
    assert "collapsed" in c.why
    assert choose.batchnorm_decision(probes, c).startswith("updating statistics")


def test_pick_frozen_when_frozen_measures_better():
    # EfficientNet-Lite0's case: updating statistics lag the weights
    probes = [probe(3e-4, "frozen", 0.60, 0.12), probe(3e-4, "updating", 0.55, 0.03)]
    c = choose.pick(probes, chance=0.1)
    assert c.probe.bn == "frozen" and c.probe.freeze_bn_stats
    assert choose.batchnorm_decision(probes, c).startswith("frozen statistics")


def test_pick_reestimated_when_it_measures_better():
    # frozen statistics kept the clean images' statistics; re-estimated on the adversarial
    # examples the fine-tune trained on, the same weights score higher
    probes = [probe(3e-4, "frozen", 0.60, 0.12), probe(3e-4, "reestimated", 0.62, 0.20),
              probe(3e-4, "updating", 0.55, 0.03)]
    c = choose.pick(probes, chance=0.1)
    assert c.probe.bn == "reestimated" and c.probe.freeze_bn_stats  # the fine-tune runs frozen
    assert c.probe.name == "lr0.0003-bn-reestimated"
    decision = choose.batchnorm_decision(probes, c)
    assert decision.startswith("reestimated statistics") and "updating: best 3.0%" in decision
    record = choose.as_record(probes, c)
    assert record["reestimate_bn"] and record["freeze_bn_stats"] and record["bn"] == "reestimated"


def test_pick_excludes_nothing_when_every_probe_is_below_chance():
    probes = [probe(1e-3, None, 0.05, 0.0), probe(1e-4, None, 0.08, 0.01)]
    c = choose.pick(probes, chance=0.1)
    assert c.probe.lr == 1e-4 and not c.collapsed
    assert choose.batchnorm_decision(probes, c).startswith("not applicable")


def test_epochs_from_the_budget_or_the_method():
    assert choose.epochs(3, 10)[0] == 3
    assert choose.epochs(None, 10) == (10, "10 (the method's default; --budget sets it)")


def test_warnings_for_a_small_budget_and_for_zero_robustness():
    good = [probe(1e-3, None, 0.8, 0.2)]
    c = choose.pick(good, chance=0.1)
    assert choose.warnings(updates=choose.MIN_UPDATES, probes=good, choice=c, eps=0.1) == []
    few = choose.warnings(updates=47, probes=good, choice=c, eps=0.1)
    assert len(few) == 1 and "47 weight updates" in few[0]
    zero = [probe(1e-3, None, 0.8, 0.0)]
    got = choose.warnings(updates=10**4, probes=zero, choice=choose.pick(zero, chance=0.1),
                          eps=0.1)
    assert len(got) == 1 and "no probe reached" in got[0]


def test_an_asked_for_handling_is_the_only_one_chosen():
    # updating measures best, but the user asked for frozen: the probes choose only the LR
    probes = [probe(1e-3, "frozen", 0.60, 0.05), probe(3e-4, "frozen", 0.62, 0.08),
              probe(1e-3, "updating", 0.80, 0.20)]
    c = choose.pick(probes, chance=0.1, handling="frozen")
    assert (c.probe.lr, c.probe.bn) == (3e-4, "frozen")
    assert "--bn-handling frozen" in choose.batchnorm_decision(probes, c)
    assert choose.pick(probes, chance=0.1).probe.bn == "updating"  # auto: the measurement


def test_probes_scored_with_a_weak_attack_are_flagged():
    good = [probe(1e-3, None, 0.8, 0.2)]
    c = choose.pick(good, chance=0.1)
    weak = choose.warnings(updates=10**4, probes=good, choice=c, eps=0.1, probe_steps=3)
    assert len(weak) == 1 and "PGD-3" in weak[0]
    assert choose.warnings(updates=10**4, probes=good, choice=c, eps=0.1,
                           probe_steps=choose.STRONG_STEPS) == []


def test_round2_takes_the_best_uncollapsed_probe_of_each_handling():
    probes = [probe(1e-3, "frozen", 0.12, 0.12), probe(3e-4, "frozen", 0.45, 0.01),
              probe(1e-4, "frozen", 0.50, 0.02), probe(1e-3, "updating", 0.64, 0.05),
              probe(1e-4, "updating", 0.30, 0.06), probe(1e-3, "reestimated", 0.10, 0.0)]
    # frozen 1e-3 and re-estimated collapsed; updating 1e-4 too (0.30 < half-way to 0.64)
    got = choose.finalists(probes, chance=0.1)
    assert [p.name for p in got] == ["lr0.0001-bn-frozen", "lr0.001-bn-updating"]
    assert choose.finalists(probes, chance=0.1, handling="frozen") == []  # asked: LR only
    one = [p for p in probes if p.bn == "updating"]
    assert choose.finalists(one, chance=0.1) == []  # one handling left: nothing to rank
    assert choose.finalists([probe(1e-3, None, 0.6, 0.1), probe(1e-4, None, 0.5, 0.2)], 0.1) == []


def test_round2_scores_decide_and_say_so():
    first = [probe(1e-4, "frozen", 0.50, 0.014), probe(1e-3, "updating", 0.64, 0.049)]
    second = [replace(p, round=2, steps=50, clean=c, robust=r)
              for p, c, r in zip(first, (0.72, 0.75), (0.15, 0.09))]
    c = choose.pick(second, chance=0.1)
    assert c.probe.name == "lr0.0001-bn-frozen-round2" and c.probe.bn == "frozen"
    record = choose.as_record(first + second, c, second)
    assert record["rounds"] == 2 and record["chosen"] == "lr0.0001-bn-frozen-round2"
    assert record["batchnorm"].startswith("frozen statistics (frozen: best 15.0% robust")


def test_a_tie_between_batchnorm_handlings_is_flagged():
    tied = [probe(1e-4, "frozen", 0.654, 0.016, n=512),
            probe(1e-3, "updating", 0.736, 0.025, n=512)]
    c = choose.pick(tied, chance=0.1)
    assert c.probe.bn == "updating" and len(c.tied) == 2  # the more accurate clean
    said = choose.warnings(updates=10**4, probes=tied, choice=c, eps=0.1)
    assert len(said) == 1 and "BatchNorm handlings apart (frozen, updating within" in said[0]
    assert "--confirm-epochs at the fine-tune's epochs" in said[0]  # the longer test to run
    after_full = choose.warnings(updates=10**4, probes=tied, choice=c, eps=0.1, full=True)
    assert "--confirm-epochs" not in after_full[0] and "--probe-images" in after_full[0]
    apart = [replace(tied[0], robust=0.08), tied[1]]  # frozen clearly ahead: no tie, no warning
    assert choose.warnings(updates=10**4, probes=apart, choice=choose.pick(apart, 0.1),
                           eps=0.1) == []
    asked = choose.pick(tied, chance=0.1, handling="updating")
    assert choose.warnings(updates=10**4, probes=tied, choice=asked, eps=0.1) == []


# ------------------------------------------------------------------ the probes' runs
def fake_probes(out, handling, *, resume=False, keep=False, lrs=(1e-3, 1e-4), seen=None):
    """run_probes with stand-ins that record each call and leave a checkpoint behind."""
    seen = [] if seen is None else seen

    def trained(opts, lr, bn, *, batches, scored):
        seen.append(("train", lr, bn))
        from pathlib import Path
        Path(opts.out).mkdir(parents=True, exist_ok=True)
        (Path(opts.out) / "last.pt").write_bytes(b"x" * 10)
        return Probe(lr, bn, clean=0.5 + lr, robust=0.1 + lr, n=32, batches=batches)

    def rescored(opts, frozen, attack):
        seen.append(("reestimate", frozen.lr, frozen.bn))
        return replace(frozen, bn="reestimated", robust=frozen.robust / 2)

    from aft_fast.robustify.probe import run_probes
    base = TrainOptions(**TINY)
    return run_probes(base, out, lrs=list(lrs), batchnorm=True, batches=1, images=32, scored=32,
                      train_size=256, attack=None, handling=handling, resume=resume, keep=keep,
                      say=lambda s: None, probe=trained, reestimated=rescored), seen


@pytest.mark.parametrize("handling, names", [
    ("auto", ["frozen", "reestimated", "updating"]),
    ("frozen", ["frozen"]), ("updating", ["updating"]),
    ("reestimated", ["frozen", "reestimated"]),  # re-estimation re-scores a frozen run
])
def test_probes_run_only_the_handlings_that_may_be_chosen(tmp_path, handling, names):
    probes, seen = fake_probes(tmp_path / "p", handling, lrs=(1e-3,))
    assert [p.bn for p in probes] == names
    assert [s[0] for s in seen].count("reestimate") == names.count("reestimated")


def test_scored_probes_drop_their_checkpoints_and_are_read_back_on_resume(tmp_path):
    out = tmp_path / "p"
    probes, _ = fake_probes(out, "auto")
    assert not list(out.glob("**/*.pt"))  # deleted once scored
    assert len(list(out.glob("*/probe.json"))) == 6  # 2 LRs × (frozen, re-estimated, updating)
    again, seen = fake_probes(out, "auto", resume=True)
    assert again == probes and seen == []  # read back: nothing trained or re-scored
    kept, _ = fake_probes(tmp_path / "k", "auto", keep=True)
    assert len(list((tmp_path / "k").glob("*/last.pt"))) == 4
    # a probe read back under other options is refused, as train --resume refuses
    from aft_fast.robustify.probe import RESULT
    record = json.loads((out / "lr0.001-bn-frozen" / RESULT).read_text())
    record["options"]["eps"] = 0.2
    (out / "lr0.001-bn-frozen" / RESULT).write_text(json.dumps(record))
    with pytest.raises(OptionError, match="--eps") as err:
        fake_probes(out, "auto", resume=True)
    assert err.value.option == "resume"


def fake_round2(out, finalists, *, resume=False, steps=50, seen=None, full=False):
    """run_round2 with a stand-in finalist that records each call and leaves a checkpoint."""
    seen = [] if seen is None else seen

    def trained(opts, first, *, steps, images, attack, bn_batches, checkpoint="last.pt"):
        seen.append((first.name, opts.epochs, opts.lr, opts.freeze_bn_stats, opts.train_images,
                     opts.schedule) + ((opts.eval_steps, checkpoint) if full else ()))
        from pathlib import Path
        Path(opts.out).mkdir(parents=True, exist_ok=True)
        (Path(opts.out) / "last.pt").write_bytes(b"x" * 10)
        return replace(first, round=2, steps=steps, robust=first.robust * 3, batches=16)

    from aft_fast.robustify.probe import run_round2
    base = TrainOptions(**TINY)
    return run_round2(base, out, finalists, epochs=2, steps=steps, images=32, attack=None,
                      bn_batches=2, full=full, resume=resume, say=lambda s: None,
                      finalist=trained), seen


def test_round2_trains_each_finalist_longer_and_is_read_back_on_resume(tmp_path):
    finalists = [Probe(1e-4, "frozen", 0.5, 0.01, 32, 1), Probe(1e-3, "updating", 0.6, 0.05, 32, 1),
                 Probe(1e-3, "reestimated", 0.6, 0.04, 32, 1)]
    out = tmp_path / "p"
    got, seen = fake_round2(out, finalists)
    # the whole training split (TINY's, no subset) under the fine-tune's schedule (TINY's: the
    # method's), each at its own peak LR and handling
    assert seen == [("lr0.0001-bn-frozen", 2, 1e-4, True, None, None),
                    ("lr0.001-bn-updating", 2, 1e-3, False, None, None),
                    ("lr0.001-bn-reestimated", 2, 1e-3, True, None, None)]
    assert [p.name for p in got] == ["lr0.0001-bn-frozen-round2", "lr0.001-bn-updating-round2",
                                     "lr0.001-bn-reestimated-round2"]
    assert not list(out.glob("**/*.pt")) and len(list(out.glob("*-round2/probe.json"))) == 3
    again, seen = fake_round2(out, finalists, resume=True)
    assert again == got and seen == []
    with pytest.raises(OptionError, match="--confirm-steps") as err:
        fake_round2(out, finalists, resume=True, steps=20)  # scored with another attack
    assert err.value.option == "resume"


def test_a_folders_held_out_split_is_sized_to_the_probe_images(tmp_path):
    from aft_fast.data.make_folder import make_folder
    from aft_fast.robustify.pipeline import held_out_size
    make_folder(tmp_path / "f", size=8, per_class=20)  # 200 training images
    folder = TrainOptions(**{**TINY, "data": str(tmp_path / "f")})
    assert held_out_size(folder, 32) == 32
    assert held_out_size(folder, 512) == 40  # at most a fifth
    assert held_out_size(replace(folder, val_images=7), 512) == 7  # --val-images decides
    assert held_out_size(TrainOptions(**TINY), 512) is None  # built-in: its own val split


def test_bn_handling_on_a_network_without_batchnorm_names_the_option(tmp_path):
    path = tmp_path / "plain.pt"
    torch.save(build("small_cnn", 10).model.state_dict(), path)  # synthetic: 3×32×32
    opts = TrainOptions(**{**TINY, "arch": "small_cnn", "weights": str(path)})
    with pytest.raises(OptionError, match="no BatchNorm layer") as err:
        robustify(opts, RobustifyOptions(out=str(tmp_path / "o"), bn_handling="frozen"),
                  say=lambda s: None)
    assert err.value.option == "bn_handling"


# ------------------------------------------------------------------ train's warning (step 6)
def test_train_warns_on_a_pretrained_batchnorm_network_at_aft_default_lr(tmp_path):
    bn = build(BN_ARCH, 10, in_channels=1)
    plain = build("small_cnn", 10, in_channels=1)
    opts = TrainOptions(method="aft", weights="w.pt", arch=BN_ARCH)
    with pytest.warns(PretrainedBatchNormWarning, match="peak LR 0.001"):
        assert warn_pretrained_batchnorm(opts, bn)
    for quiet in (TrainOptions(method="aft", weights="w.pt", lr=3e-4),  # a lower LR
                  TrainOptions(method="aft", weights=None, allow_scratch=True),  # not pretrained
                  TrainOptions(method="pgd-at", weights="w.pt")):  # not fine-tuning
        assert warn_pretrained_batchnorm(quiet, bn) is None
    assert warn_pretrained_batchnorm(opts, plain) is None  # no BatchNorm


# ------------------------------------------------------------------ bad input
@pytest.fixture
def weights(tmp_path):
    path = tmp_path / "pretrained.pt"
    torch.save(build(BN_ARCH, 10, in_channels=1).model.state_dict(), path)
    return str(path)


@pytest.mark.parametrize("change, option, message", [
    (dict(weights=None), "weights", "pass --weights"),
    (dict(weights="missing.pt"), "weights", "no such file"),
    (dict(eps=8.0), "eps", "did you mean 8/255"),
    (dict(eps=0.0), "eps", "must be > 0"),
    (dict(method="natural"), "method", "makes nothing robust"),
])
def test_bad_input_names_the_option(weights, change, option, message):
    opts = TrainOptions(**{**TINY, "weights": weights, **change})
    with pytest.raises(OptionError, match=message) as err:
        check_all(opts, RobustifyOptions())
    assert err.value.option == option


def test_bad_probe_lrs_and_missing_eps_on_the_command_line(weights, tmp_path):
    with pytest.raises(OptionError) as err:
        check_all(TrainOptions(**{**TINY, "weights": weights}), RobustifyOptions(probe_lrs="1e-3,x"))
    assert err.value.option == "probe_lrs"
    from aft_fast.cli import main

    res = CliRunner().invoke(main, ["robustify", "--weights", weights, "--out", str(tmp_path)])
    assert res.exit_code == 2 and "--eps" in res.output and "is required" in res.output


# ------------------------------------------------------------------ one tiny end-to-end run
def tiny_robustify(weights, out, *, resume=False, overwrite=False):
    """robustify on tiny synthetic data, shortened attacks, re-estimation chosen."""
    threads = torch.get_num_threads()
    torch.set_num_threads(1)  # tiny tensors: threads only add synchronisation
    with pytest.MonkeyPatch.context() as mp:
        import aft_fast.train.run as run_module

        real = run_module.make_loaders
        mp.setattr(run_module, "make_loaders", lambda data, **kw: real(
            data, synthetic_shape=(1, 28, 28), synthetic_size=256, **kw))
        # the protocol's attacks shortened (the reference AutoAttack is compare's tested code)
        short = measure.protocol
        mp.setattr(measure, "protocol", lambda **kw: replace(
            short(**kw), pgd_steps=3, weak_steps=2, mask_steps=2, aa_steps=2, aa_queries=10))
        # the path that does most: re-estimated statistics (every choice path is tested above
        # on constructed probes)
        pick, finalists = choose.pick, choose.finalists
        mp.setattr(choose, "pick", lambda probes, chance, handling: pick(
            [p for p in probes if p.bn == "reestimated"], chance))
        # round 2 between the re-estimated and the updating probe, whatever round 1 measured
        mp.setattr(choose, "finalists", lambda probes, chance, handling: [
            p for p in probes if p.bn in ("reestimated", "updating")])
        lines = []
        report = robustify(TrainOptions(**{**TINY, "weights": str(weights),
                                           "overwrite": overwrite}),
                           RobustifyOptions(out=str(out), budget=1, probe_lrs="1e-3",
                                            probe_batches=1, probe_images=32, test_images=16,
                                            bn_batches=2, pgd_restarts=2, aa_images=2,
                                            confirm_epochs=1, confirm_steps=3, resume=resume),
                           command="aft-fast robustify (test)", say=lines.append)
    torch.set_num_threads(threads)
    return report, lines


@pytest.fixture(scope="module")
def run(tmp_path_factory):
    tmp = tmp_path_factory.mktemp("robustify")
    w = tmp / "pretrained.pt"
    torch.manual_seed(0)
    torch.save(build(BN_ARCH, 10, in_channels=1).model.state_dict(), w)
    report, lines = tiny_robustify(w, tmp / "out")
    return tmp / "out", report, lines


def test_run_follows_its_choice_and_says_why(run):
    out, report, lines = run
    c = report["choices"]
    assert [p["name"] for p in c["probes"]] == [
        "lr0.001-bn-frozen", "lr0.001-bn-reestimated", "lr0.001-bn-updating",
        "lr0.001-bn-reestimated-round2", "lr0.001-bn-updating-round2"]
    second = c["probes"][3:]
    assert [p["steps"] for p in second] == [3, 3] and c["rounds"] == 2
    # round 1 scored with the attack that measured the model as given, and says so
    assert {p["steps"] for p in c["probes"][:3]} == {report["held_out_before"]["steps"]} != {0}
    assert all(p["batches"] == 8 and p["n"] == 32 for p in second)  # 1 epoch of 256 images
    args = yaml.safe_load((out / "train" / "args.yaml").read_text())
    assert args["lr"] == c["lr"] and args["freeze_bn_stats"] == c["freeze_bn_stats"]
    assert args["epochs"] == c["epochs"] == 1
    assert any(line.startswith("  chosen:") and "round 2, 8 batches and PGD-3" in line
               for line in lines)
    assert sum(line.startswith("  round 2, ") for line in lines) == 2
    # round 2 ran the whole fine-tune (--confirm-epochs 1 = --budget 1): the winner's run is it
    assert any("was this fine-tune: its run is taken as it is" in line for line in lines)
    chosen = out / "probes" / c["chosen"]
    assert ((out / "train" / "metrics.jsonl").read_text()
            == (chosen / "metrics.jsonl").read_text())
    assert not list((out / "probes").glob("**/*.pt"))
    assert any("weight updates" in w for w in c["warnings"])  # 8 updates: far too few
    assert any("scored with PGD-3" in w for w in c["warnings"])  # round 2 decided, PGD-3
    assert report["held_out_before"]["n"] == 32  # val, never test
    assert report["test"]["after"]["clean_n"] == 32


def test_run_reestimates_the_statistics_of_what_it_evaluates_and_exports(run):
    out, report, lines = run
    assert report["choices"]["chosen"] == "lr0.001-bn-reestimated-round2"
    assert report["choices"]["reestimated"]["images"] == 64  # --bn-batches 2 of 32
    assert report["training"]["checkpoint"] == str(out / "train" / "best-bn-reestimated.pt")
    trained = torch.load(out / "train" / "best.pt", weights_only=True)["model"]
    shipped = torch.load(report["training"]["checkpoint"], weights_only=True)["model"]
    stats = [k for k in trained if k.endswith(("running_mean", "running_var"))]
    assert stats and all(not torch.equal(trained[k], shipped[k]) for k in stats)
    assert all(torch.equal(trained[k], shipped[k]) for k in trained
               if k not in stats and not k.endswith("num_batches_tracked"))
    assert any("re-estimating" in line for line in lines)
    assert "re-estimated after the fine-tune on 64" in (out / "report.md").read_text()


def test_report_renders_the_json_and_embeds_the_figures(run):
    out, report, _ = run
    assert json.loads((out / "report.json").read_text())["choices"] == report["choices"]
    md, page = (out / "report.md").read_text(), (out / "report.html").read_text()
    for row in summary_rows(report):
        for cell in row[2:]:
            assert cell in md and cell in page
    after = report["test"]["after"]
    for v in (after["clean_acc"], after["pgd_acc"], after["autoattack_acc"]):
        assert pct(v) in md
    for p in report["choices"]["probes"]:
        assert pct(p["clean"]) in md and pct(p["robust"]) in page
    images = re.findall(r'src="data:image/png;base64,([^"]+)"', page)
    assert len(images) == 4
    assert all(base64.b64decode(i).startswith(b"\x89PNG") for i in images)
    for name in ("before_after", "training", "eps_curve", "choices"):
        assert (out / "figures" / f"{name}.png").read_bytes().startswith(b"\x89PNG")
        assert f"figures/{name}.png" in md
    assert [p["eps"] for p in after["curve"]["points"]][-1] == pytest.approx(0.4)
    assert "PGD-3 × 2 restarts" in md and "AutoAttack (REDUCED settings)" in md
    assert "| PGD-2 |" in md and "| PGD-3 |" in md  # the probes' attack; round 2's


def test_exports_reload_and_agree_with_the_checkpoint(run):
    out, report, _ = run
    from safetensors.torch import load_file

    shipped = report["training"]["checkpoint"]  # best.pt, its statistics re-estimated
    ckpt = torch.load(shipped, weights_only=True)
    want_model = load_checkpoint(shipped, trust_code=True)
    x = torch.rand(5, 1, 28, 28)
    with torch.no_grad():
        want = want_model(x)
    for state in (load_file(str(out / "model" / "model.safetensors")),
                  torch.load(out / "model" / "model.pt", weights_only=True)):
        net = rebuild(ckpt, trust_code=True).eval()
        net.model.load_state_dict(state)
        with torch.no_grad():
            assert torch.equal(net(x), want)
    import onnxruntime as ort

    session = ort.InferenceSession(str(out / "model" / "model.onnx"))
    got = torch.from_numpy(session.run(None, {"images": x.numpy()})[0])
    torch.testing.assert_close(got, want, atol=1e-4, rtol=0)
    assert report["exports"]["agrees"]
    card = (out / "model" / "MODEL_CARD.md").read_text()
    assert "aft-fast robustify (test)" in card and report["environment"]["commit"] in card
    assert pct(report["test"]["after"]["autoattack_acc"]) in card and "| 2 |" in card


# ------------------------------------------------------------------ nothing lost
def test_an_interrupted_run_goes_on_with_resume_and_trains_nothing_again(run, tmp_path):
    out, report, _ = run
    copy = tmp_path / "out"
    shutil.copytree(out, copy)
    (copy / "report.json").unlink()  # killed during the evaluation, after the fine-tune
    assert not list((copy / "probes").glob("**/*.pt"))  # deleted once scored
    runs = sorted(copy.glob("**/last.pt")) + sorted(copy.glob("probes/*/probe.json"))
    assert len(runs) == 6  # the fine-tune; two trained probes, the re-estimated scoring, round 2
    stamps = [(p.stat().st_mtime_ns, p.read_bytes()) for p in runs]
    weights = out.parent / "pretrained.pt"
    with pytest.raises(OptionError, match="unfinished robustify run") as err:
        tiny_robustify(weights, copy)  # neither --resume nor --overwrite: refused before work
    assert err.value.option == "out"
    again, lines = tiny_robustify(weights, copy, resume=True)
    assert [(p.stat().st_mtime_ns, p.read_bytes()) for p in runs] == stamps
    assert any("resuming the fine-tune" in line for line in lines)
    assert sum("read back" in line for line in lines) == 5
    assert again["choices"]["probes"] == report["choices"]["probes"]
    assert again["training"]["rows"] == report["training"]["rows"]
    assert again["test"]["after"]["clean_acc"] == report["test"]["after"]["clean_acc"]
    assert (copy / "report.json").exists()


def test_a_full_length_round2_is_the_fine_tune_and_its_winner_is_taken(tmp_path):
    from aft_fast.robustify.probe import take_winner

    finalists = [Probe(1e-4, "frozen", 0.5, 0.01, 32, 1), Probe(1e-3, "updating", 0.6, 0.05, 32, 1)]
    probes = tmp_path / "probes"
    got, seen = fake_round2(probes, finalists, full=True)
    # the fine-tune's own per-epoch evaluation (TINY's PGD-2: it picks best.pt), best.pt scored
    assert seen == [("lr0.0001-bn-frozen", 2, 1e-4, True, None, None, 2, "best.pt"),
                    ("lr0.001-bn-updating", 2, 1e-3, False, None, None, 2, "best.pt")]
    assert len(list(probes.glob("*-round2/last.pt"))) == 2  # kept for the winner to be taken
    (probes / got[1].name / ".lock").write_text("a holder")
    train_dir = tmp_path / "train"
    assert take_winner(probes, got, got[1], train_dir)
    assert sorted(f.name for f in train_dir.iterdir()) == ["last.pt"]  # no probe.json, no lock
    assert not list(probes.glob("**/*.pt")) and len(list(probes.glob("*/probe.json"))) == 2
    # resumed (the fine-tune is there) or the run is gone (a new checkout): nothing taken
    assert not take_winner(probes, got, got[1], train_dir)
    assert not take_winner(probes, got, got[1], tmp_path / "elsewhere")
    assert not (tmp_path / "elsewhere").exists()


@pytest.mark.parametrize("state, flags, option, message", [
    ("finished", {}, "out", "finished robustify run"),
    ("empty", {"resume": True}, "resume", "no robustify run to go on from"),
    ("started", {}, "out", "pass --resume"),
    ("started", {"resume": True, "overwrite": True}, "resume", "pass one of them"),
])
def test_out_refuses_what_would_replace_or_invent_a_run(tmp_path, state, flags, option, message):
    from aft_fast.robustify.options import check_out

    if state in ("finished", "started"):
        (tmp_path / "train").mkdir()
    if state == "finished":
        (tmp_path / "report.json").write_text("{}")
    with pytest.raises(OptionError, match=message) as err:
        check_out(tmp_path, resume=flags.get("resume", False),
                  overwrite=flags.get("overwrite", False))
    assert err.value.option == option
