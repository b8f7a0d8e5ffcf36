"""Learning-rate schedulers: sequences against PyTorch's and hand-computed schedules, ReduceLROnPlateau's
patience/cooldown/min_lr/threshold rules, state_dict round trips, errors."""
import math

import numpy as np
import pytest

import minidl as mdl
from minidl import optim
from minidl.optim.lr_scheduler import ExponentialLR, LRScheduler, ReduceLROnPlateau, StepLR
from minidl.serialization import load, save


def make_opt(lrs=(0.1,)):
    groups = [{"params": [mdl.tensor(np.ones(2), requires_grad=True)], "lr": lr} for lr in lrs]
    return optim.SGD(groups, lr=lrs[0], momentum=0.9)


def torch_opt(torch, lrs=(0.1,)):
    groups = [{"params": [torch.ones(2, requires_grad=True)], "lr": lr} for lr in lrs]
    return torch.optim.SGD(groups, lr=lrs[0], momentum=0.9)


def lr_sequence(sched, epochs):
    """The rates in effect during epochs 0 .. epochs-1, stepping after each."""
    out = []
    for _ in range(epochs):
        out.append(sched.get_last_lr())
        sched.step()
    return out


# --- epoch-based schedulers --------------------------------------------------------------

def test_resnet_step_schedule():
    opt = make_opt()
    sched = StepLR(opt, step_size=30, gamma=0.1)
    lrs = [lr for lr, in lr_sequence(sched, 90)]
    np.testing.assert_allclose(lrs, [0.1] * 30 + [0.01] * 30 + [0.001] * 30, rtol=1e-12)
    assert sched.last_epoch == 90 and opt.param_groups[0]["lr"] == pytest.approx(1e-4)


def test_googlenet_schedule_4_percent_every_8_epochs():
    sched = StepLR(make_opt((0.01,)), step_size=8, gamma=0.96)
    lrs = [lr for lr, in lr_sequence(sched, 100)]
    np.testing.assert_allclose(lrs, [0.01 * 0.96 ** (e // 8) for e in range(100)], rtol=1e-12)


def test_exponential_schedule():
    sched = ExponentialLR(make_opt((0.1, 1.0)), gamma=0.9)
    np.testing.assert_allclose(lr_sequence(sched, 20), [[0.1 * 0.9 ** e, 0.9 ** e] for e in range(20)], rtol=1e-12)


def test_initial_lr_is_recorded_and_kept():
    opt = make_opt((0.1, 0.2))
    sched = StepLR(opt, step_size=2)
    assert [g["initial_lr"] for g in opt.param_groups] == [0.1, 0.2] == sched.base_lrs
    assert sched.last_epoch == 0 and sched.get_last_lr() == [0.1, 0.2]
    sched.step()
    sched.step()
    assert sched.get_last_lr() == pytest.approx([0.01, 0.02])
    ExponentialLR(opt, gamma=0.5)  # a second scheduler keeps the first's initial_lr
    assert [g["initial_lr"] for g in opt.param_groups] == [0.1, 0.2]
    assert isinstance(sched, LRScheduler)


@pytest.mark.torch
@pytest.mark.parametrize("kind, kwargs", [
    ("StepLR", dict(step_size=30, gamma=0.1)),
    ("StepLR", dict(step_size=8, gamma=0.96)),
    ("StepLR", dict(step_size=1, gamma=0.5)),
    ("ExponentialLR", dict(gamma=0.95)),
])
def test_epoch_schedules_match_pytorch_exactly(torch, kind, kwargs):
    lrs = (0.1, 0.03)
    ours = getattr(optim.lr_scheduler, kind)(make_opt(lrs), **kwargs)
    theirs = getattr(torch.optim.lr_scheduler, kind)(torch_opt(torch, lrs), **kwargs)
    for epoch in range(100):
        assert ours.get_last_lr() == theirs.get_last_lr(), epoch  # the same arithmetic: bit for bit
        assert ours.last_epoch == theirs.last_epoch
        theirs.optimizer.step()
        ours.step()
        theirs.step()
    assert [g["initial_lr"] for g in ours.optimizer.param_groups] == \
        [g["initial_lr"] for g in theirs.optimizer.param_groups]


def test_step_scheduler_state_dict_round_trip(tmp_path):
    opt = make_opt((0.1, 0.05))
    sched = StepLR(opt, step_size=3, gamma=0.5)
    expected = lr_sequence(sched, 20)

    opt = make_opt((0.1, 0.05))
    sched = StepLR(opt, step_size=3, gamma=0.5)
    first = lr_sequence(sched, 7)
    save({"optimizer": opt.state_dict(), "scheduler": sched.state_dict()}, tmp_path / "ckpt")
    ckpt = load(tmp_path / "ckpt")
    opt2 = make_opt((0.1, 0.05))
    opt2.load_state_dict(ckpt["optimizer"])
    sched2 = StepLR(opt2, step_size=3, gamma=0.5)
    sched2.load_state_dict(ckpt["scheduler"])
    assert sched2.last_epoch == 7
    assert first + lr_sequence(sched2, 13) == expected


# --- ReduceLROnPlateau ----------------------------------------------------------------

def plateau_lrs(sched, metrics):
    out = []
    for m in metrics:
        sched.step(m)
        out.append(sched.get_last_lr()[0])
    return out


def test_plateau_patience_counts_bad_epochs():
    sched = ReduceLROnPlateau(make_opt((1.0,)), patience=2)
    # epoch 1 sets best; epochs 2, 3 are bad (2 <= patience); epoch 4 is the third bad one: drop
    assert plateau_lrs(sched, [1.0, 1.0, 1.0, 1.0, 1.0]) == pytest.approx([1, 1, 1, 0.1, 0.1])
    assert sched.num_bad_epochs == 1 and sched.best == 1.0 and sched.last_epoch == 5


def test_plateau_patience_zero_and_improvements_reset():
    sched = ReduceLROnPlateau(make_opt((1.0,)), patience=0, factor=0.5)
    assert plateau_lrs(sched, [5.0, 6.0, 4.0, 4.0, 3.0]) == pytest.approx([1, 0.5, 0.5, 0.25, 0.25])


def test_plateau_cooldown_and_min_lr():
    sched = ReduceLROnPlateau(make_opt((1.0,)), patience=0, cooldown=2, factor=0.1, min_lr=0.005)
    # drop at epoch 2; epochs 3-4 are cooldown (bad epochs ignored); drop at 5; then floor at min_lr
    lrs = plateau_lrs(sched, [1.0] * 9)
    assert lrs == pytest.approx([1, 0.1, 0.1, 0.1, 0.01, 0.01, 0.01, 0.005, 0.005])


def test_plateau_min_lr_per_group_and_eps():
    sched = ReduceLROnPlateau(make_opt((1.0, 1e-8)), patience=0, min_lr=[0.5, 0.0])
    for m in (1.0, 1.0, 1.0):
        sched.step(m)
    # group 0 floors at 0.5; group 1 would change by less than eps = 1e-8, so it is left alone
    assert sched.get_last_lr() == [0.5, 1e-8]


@pytest.mark.parametrize("mode, threshold_mode, metrics, expected_drops", [
    ("min", "rel", [10.0, 9.9995, 9.998], [False, True, False]),  # 0.5e-4 relative is not an improvement
    ("min", "abs", [10.0, 9.95, 9.5], [False, True, False]),      # threshold 0.1 absolute
    ("max", "rel", [10.0, 10.0005, 10.002], [False, True, False]),
    ("max", "abs", [10.0, 10.05, 10.5], [False, True, False]),
])
def test_plateau_threshold_modes(mode, threshold_mode, metrics, expected_drops):
    threshold = 1e-4 if threshold_mode == "rel" else 0.1
    sched = ReduceLROnPlateau(make_opt((1.0,)), mode=mode, threshold=threshold, threshold_mode=threshold_mode,
                              patience=0, factor=0.5)
    lr = 1.0
    for m, dropped in zip(metrics, expected_drops):
        sched.step(m)
        assert (sched.get_last_lr()[0] < lr) == dropped, m
        lr = sched.get_last_lr()[0]


def test_plateau_accepts_a_one_element_tensor():
    sched = ReduceLROnPlateau(make_opt((1.0,)), patience=0)
    sched.step(mdl.tensor(np.array(2.0)))
    assert sched.best == 2.0
    with pytest.raises(TypeError, match=r"ReduceLROnPlateau.step: metrics must be a number"):
        sched.step("low")


@pytest.mark.torch
@pytest.mark.parametrize("kwargs", [
    dict(),
    dict(patience=2, factor=0.5),
    dict(mode="max", patience=1, cooldown=2, factor=0.3),
    dict(threshold_mode="abs", threshold=0.05, patience=1, min_lr=0.02),
    dict(mode="max", threshold_mode="abs", threshold=0.01, patience=0, cooldown=1, min_lr=[0.01, 0.001]),
    dict(patience=0, eps=0.05),
])
def test_plateau_matches_pytorch(torch, kwargs):
    rng = np.random.default_rng(1)
    # a noisy metric that improves, stalls, then improves a little
    metrics = np.concatenate([np.linspace(2, 1, 15), np.full(20, 1.0), np.linspace(1, 0.9, 25)])
    metrics = metrics + rng.normal(0, 0.02, metrics.size)
    ours = ReduceLROnPlateau(make_opt((0.1, 0.05)), **kwargs)
    theirs = torch.optim.lr_scheduler.ReduceLROnPlateau(torch_opt(torch, (0.1, 0.05)), **kwargs)
    for epoch, m in enumerate(metrics):
        ours.step(float(m))
        theirs.step(float(m))
        assert ours.get_last_lr() == theirs.get_last_lr(), epoch
        assert (ours.best, ours.num_bad_epochs, ours.cooldown_counter, ours.last_epoch) == \
            (theirs.best, theirs.num_bad_epochs, theirs.cooldown_counter, theirs.last_epoch)
    assert ours.get_last_lr()[0] < 0.1  # the schedule really dropped


def test_plateau_state_dict_round_trip(tmp_path):
    metrics = [3.0, 2.0, 2.5, 2.5, 2.5, 1.0, 1.2, 1.2, 1.2, 1.2]
    ref = ReduceLROnPlateau(make_opt(), patience=1, cooldown=1)
    expected = plateau_lrs(ref, metrics)

    opt = make_opt()
    sched = ReduceLROnPlateau(opt, patience=1, cooldown=1)
    assert sched.state_dict()["best"] == math.inf
    save({"sched": sched.state_dict()}, tmp_path / "fresh")  # best = inf survives the file
    assert load(tmp_path / "fresh")["sched"]["best"] == math.inf
    first = plateau_lrs(sched, metrics[:4])
    save({"optimizer": opt.state_dict(), "scheduler": sched.state_dict()}, tmp_path / "ckpt")
    ckpt = load(tmp_path / "ckpt")
    opt2 = make_opt()
    opt2.load_state_dict(ckpt["optimizer"])
    sched2 = ReduceLROnPlateau(opt2)
    sched2.load_state_dict(ckpt["scheduler"])
    assert sched2.patience == 1 and sched2.cooldown == 1
    assert first + plateau_lrs(sched2, metrics[4:]) == expected


# --- errors -------------------------------------------------------------------------------

@pytest.mark.parametrize("make, error, pattern", [
    (lambda o: StepLR(o, step_size=0), ValueError, r"StepLR: step_size must be an int >= 1; got 0"),
    (lambda o: StepLR(o, step_size=2.5), ValueError, r"StepLR: step_size must be an int >= 1; got 2.5"),
    (lambda o: StepLR(o, step_size=3, gamma=-0.1), ValueError, r"StepLR: gamma must be a number > 0; got -0.1"),
    (lambda o: ExponentialLR(o, gamma=0), ValueError, r"ExponentialLR: gamma must be a number > 0; got 0"),
    (lambda o: StepLR("opt", step_size=3), TypeError, r"StepLR: expected an optimizer, got str"),
    (lambda o: ReduceLROnPlateau(o, factor=1.0), ValueError, r"ReduceLROnPlateau: factor must be a number in \[0, 1\)"),
    (lambda o: ReduceLROnPlateau(o, mode="minimum"), ValueError,
     r"ReduceLROnPlateau: mode must be 'min' or 'max'; got 'minimum'"),
    (lambda o: ReduceLROnPlateau(o, threshold_mode="relative"), ValueError, r"threshold_mode must be 'rel' or 'abs'"),
    (lambda o: ReduceLROnPlateau(o, patience=-1), ValueError,
     r"ReduceLROnPlateau: patience must be an int >= 0; got -1"),
    (lambda o: ReduceLROnPlateau(o, cooldown=0.5), ValueError,
     r"ReduceLROnPlateau: cooldown must be an int >= 0; got 0.5"),
    (lambda o: ReduceLROnPlateau(o, min_lr=[0.1, 0.2]), ValueError,
     r"ReduceLROnPlateau: min_lr has 2 values, but the optimizer has 1 parameter groups"),
    (lambda o: ReduceLROnPlateau(o, min_lr=-1), ValueError, r"min_lr must be a number >= 0"),
    (lambda o: ReduceLROnPlateau(None), TypeError, r"ReduceLROnPlateau: expected an optimizer, got NoneType"),
])
def test_bad_scheduler_settings(make, error, pattern):
    with pytest.raises(error, match=pattern):
        make(make_opt())


def test_load_state_dict_of_another_kind_is_refused():
    step = StepLR(make_opt(), step_size=3)
    with pytest.raises(ValueError, match=r"ExponentialLR.load_state_dict: not a ExponentialLR state dict "
                                         r"\(missing keys \[\], unknown keys \['step_size'\]\)"):
        ExponentialLR(make_opt(), gamma=0.5).load_state_dict(step.state_dict())
    plateau = ReduceLROnPlateau(make_opt())
    bad = plateau.state_dict()
    bad["mode"] = "sideways"
    with pytest.raises(ValueError, match=r"mode must be 'min' or 'max'; got 'sideways'"):
        plateau.load_state_dict(bad)
    assert plateau.mode == "min"


@pytest.mark.parametrize("make, key, value, pattern", [
    (lambda o: StepLR(o, step_size=3), "step_size", 0,
     r"^StepLR.load_state_dict: step_size must be an int >= 1; got 0$"),
    (lambda o: StepLR(o, step_size=3), "step_size", 2.5, r"step_size must be an int >= 1; got 2.5"),
    (lambda o: StepLR(o, step_size=3), "gamma", "0.1",
     r"StepLR.load_state_dict: gamma must be a number > 0; got '0.1'"),
    (lambda o: StepLR(o, step_size=3), "last_epoch", -3, r"last_epoch must be an int >= 0; got -3"),
    (lambda o: StepLR(o, step_size=3), "last_epoch", "7", r"last_epoch must be an int >= 0; got '7'"),
    (lambda o: StepLR(o, step_size=3), "base_lrs", [-0.1],
     r"base_lrs must be a list of numbers >= 0, one per parameter group; got \[-0.1\]"),
    (lambda o: StepLR(o, step_size=3), "_last_lr", 0.1, r"_last_lr must be a list of numbers >= 0"),
    (lambda o: ExponentialLR(o, gamma=0.5), "gamma", 0, r"^ExponentialLR.load_state_dict: gamma must be a number > 0"),
    (lambda o: ReduceLROnPlateau(o), "factor", 1.0, r"ReduceLROnPlateau.load_state_dict: factor must be a number in"),
    (lambda o: ReduceLROnPlateau(o), "patience", -1, r"patience must be an int >= 0; got -1"),
    (lambda o: ReduceLROnPlateau(o), "cooldown", 0.5, r"cooldown must be an int >= 0; got 0.5"),
    (lambda o: ReduceLROnPlateau(o), "eps", None, r"eps must be a number >= 0; got None"),
    (lambda o: ReduceLROnPlateau(o), "threshold", -1, r"threshold must be a number >= 0; got -1"),
    (lambda o: ReduceLROnPlateau(o), "threshold_mode", "relative", r"threshold_mode must be 'rel' or 'abs'"),
    (lambda o: ReduceLROnPlateau(o), "default_min_lr", -1, r"default_min_lr must be None or a number >= 0; got -1"),
    (lambda o: ReduceLROnPlateau(o), "min_lrs", ["0"], r"min_lrs must be a list of numbers >= 0"),
    (lambda o: ReduceLROnPlateau(o, min_lr=[0.1]), "min_lrs", [0.1, 0.2],
     r"ReduceLROnPlateau.load_state_dict: min_lrs has 2 values, but the optimizer has 1 parameter groups"),
    (lambda o: ReduceLROnPlateau(o), "best", math.nan, r"best must be a number \(not NaN\); got nan"),
    (lambda o: ReduceLROnPlateau(o), "best", "low", r"best must be a number \(not NaN\); got 'low'"),
    (lambda o: ReduceLROnPlateau(o), "num_bad_epochs", -1, r"num_bad_epochs must be an int >= 0; got -1"),
    (lambda o: ReduceLROnPlateau(o), "cooldown_counter", 1.5, r"cooldown_counter must be an int >= 0; got 1.5"),
    (lambda o: ReduceLROnPlateau(o), "last_epoch", None, r"last_epoch must be an int >= 0; got None"),
])
def test_load_state_dict_holds_a_state_to_the_constructors_rules(make, key, value, pattern):
    sched = make(make_opt())
    bad = sched.state_dict()
    bad[key] = value
    before = sched.state_dict()
    with pytest.raises(ValueError, match=pattern):
        sched.load_state_dict(bad)
    assert sched.state_dict() == before  # nothing changed, and it still works:
    if isinstance(sched, ReduceLROnPlateau):
        sched.step(1.0)
    else:
        sched.step()


def test_step_size_zero_is_refused_on_load_rather_than_dividing_by_zero_later():
    sched = StepLR(make_opt(), step_size=3)
    bad = dict(sched.state_dict(), step_size=0)
    with pytest.raises(ValueError, match=r"StepLR.load_state_dict: step_size must be an int >= 1; got 0"):
        sched.load_state_dict(bad)
    for _ in range(4):
        sched.step()
    assert sched.step_size == 3 and sched.get_last_lr() == pytest.approx([0.01])
