import math

import pytest

from aft_fast.errors import OptionError
from aft_fast.train.schedules import make_schedule


def test_slow_start_fast_decay_shape():
    s = make_schedule("slow-start-fast-decay", 1e-3, 10)
    ts = [i / 10 for i in range(101)]
    lrs = [s(t) for t in ts]
    peak = max(range(len(lrs)), key=lrs.__getitem__)
    assert ts[peak] == pytest.approx(3.0)  # rises over the first 30% of the run
    assert lrs[0] == pytest.approx(1e-4) and lrs[peak] == pytest.approx(1e-3)
    assert lrs[-1] == pytest.approx(1e-5)
    assert all(a <= b for a, b in zip(lrs[:peak], lrs[1:peak + 1]))  # smooth rise
    assert all(a >= b for a, b in zip(lrs[peak:], lrs[peak + 1:]))  # then decay
    # Fast decay: the first post-peak epoch loses more than the last epoch does.
    assert s(3) - s(4) > s(9) - s(10)
    # Slow start: the first epoch gains less than the epoch before the peak.
    assert s(1) - s(0) < s(2.5) - s(1.5)


def test_step_lr_plateaus():
    s = make_schedule("step-lr", 0.1, 10, every=2, gamma=0.5)
    assert [s(t) for t in (0, 1.99, 2, 3.5, 4, 9.9)] == pytest.approx(
        [0.1, 0.1, 0.05, 0.05, 0.025, 0.1 * 0.5 ** 4])


def test_multistep_paper_pretraining():
    s = make_schedule("multistep", 0.1, 200, milestones=[60, 120, 160], gamma=0.2)
    assert [s(t) for t in (0, 59.9, 60, 120, 160, 199)] == pytest.approx(
        [0.1, 0.1, 0.02, 0.004, 0.0008, 0.0008])
    frac = make_schedule("multistep", 0.1, 200)  # default milestones are fractions of the run
    assert frac(61) == pytest.approx(0.02)


def test_cyclic_triangle():
    s = make_schedule("cyclic", 0.2, 10)
    assert s(0) == 0 and s(4) == pytest.approx(0.2) and s(10) == pytest.approx(0)
    assert s(2) == pytest.approx(0.1) and s(7) == pytest.approx(0.1)


@pytest.mark.parametrize("args,option,message", [
    (("nope", 0.1, 10), "schedule", "must be one of"),
    (("cyclic", -1, 10), "lr", "must be > 0"),
    (("cyclic", 0.1, 0), "epochs", "must be > 0"),
])
def test_schedule_errors(args, option, message):
    with pytest.raises(OptionError, match=message) as err:
        make_schedule(*args)
    assert err.value.option == option


def test_bad_schedule_parameter():
    with pytest.raises(OptionError, match="do not fit schedule step-lr") as err:
        make_schedule("step-lr", 0.1, 10, gama=0.5)
    assert err.value.option == "schedule_params"
    assert math.isfinite(make_schedule("constant", 0.1, 1)(0.5))
