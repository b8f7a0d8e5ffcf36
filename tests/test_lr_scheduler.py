"""Learning-rate schedulers: sequences against PyTorch's and hand-computed schedules, ReduceLROnPlateau's
patience/cooldown/min_lr/threshold rules, OneCycleLR's phases and momentum, state_dict round trips, errors."""
import itertools
import math
from collections import Counter

import numpy as np
import pytest

import minidl as mdl
from minidl import optim
from minidl.optim.lr_scheduler import (CosineAnnealingLR, ExponentialLR, LambdaLR, LRScheduler, MultiStepLR,
                                       OneCycleLR, ReduceLROnPlateau, StepLR)
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


def test_multistep_schedule_counts_a_repeated_milestone_twice():
    sched = MultiStepLR(make_opt((0.1, 1.0)), milestones=[5, 2, 5], gamma=0.5)
    factors = [1, 1, 0.5, 0.5, 0.5, 0.125, 0.125, 0.125]
    np.testing.assert_allclose(lr_sequence(sched, 8), [[0.1 * f, 1.0 * f] for f in factors], rtol=1e-12)
    assert sched.milestones == Counter({2: 1, 5: 2})


def test_cosine_schedule_follows_the_closed_form_past_t_max():
    lrs = lr_sequence(CosineAnnealingLR(make_opt((0.1, 1.0)), T_max=10, eta_min=0.01), 45)
    expected = [[0.01 + (lr - 0.01) * (1 + math.cos(math.pi * e / 10)) / 2 for lr in (0.1, 1.0)] for e in range(45)]
    np.testing.assert_allclose(lrs, expected, rtol=1e-12)
    assert lrs[10] == [0.01, 0.01] and lrs[20] == pytest.approx([0.1, 1.0], rel=1e-12)  # down, then back up
    assert lr_sequence(CosineAnnealingLR(make_opt(), T_max=4), 5)[4] == [0.0]


def test_lambda_schedule_multiplies_the_initial_rate():
    sched = LambdaLR(make_opt((0.1, 1.0)), [lambda e: 0.9 ** e, lambda e: min(1.0, (e + 1) / 4)])
    assert lr_sequence(sched, 6) == [[0.1 * 0.9 ** e, 1.0 * min(1.0, (e + 1) / 4)] for e in range(6)]
    one_for_all = LambdaLR(make_opt((0.1, 1.0)), lambda e: e // 2)
    assert lr_sequence(one_for_all, 5) == [[0.0, 0.0], [0.0, 0.0], [0.1, 1.0], [0.1, 1.0], [0.2, 2.0]]


@pytest.mark.torch
@pytest.mark.parametrize("kind, kwargs", [
    ("StepLR", dict(step_size=30, gamma=0.1)),
    ("StepLR", dict(step_size=8, gamma=0.96)),
    ("StepLR", dict(step_size=1, gamma=0.5)),
    ("ExponentialLR", dict(gamma=0.95)),
    ("MultiStepLR", dict(milestones=[30, 80])),
    ("MultiStepLR", dict(milestones=[7, 3, 3, 50], gamma=0.5)),
    ("MultiStepLR", dict(milestones=[0, 10, 10, 10], gamma=0.7)),
    ("CosineAnnealingLR", dict(T_max=10)),
    ("CosineAnnealingLR", dict(T_max=7, eta_min=0.001)),
    ("CosineAnnealingLR", dict(T_max=1, eta_min=0.01)),
    ("CosineAnnealingLR", dict(T_max=30, eta_min=0.05)),  # between the two groups' rates: one rises
    ("LambdaLR", dict(lr_lambda=lambda e: 0.95 ** e)),
    ("LambdaLR", dict(lr_lambda=[lambda e: e // 30, lambda e: 1 / (e + 1)])),
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


# --- OneCycleLR ---------------------------------------------------------------------------

def one_cycle_run(sched, key="momentum"):
    """The rate and the momentum (``key``: 'momentum' or 'betas') of group 0 at steps 0 .. total_steps."""
    group = sched.optimizer.param_groups[0]
    out = [(sched.get_last_lr()[0], group[key])]
    for _ in range(sched.total_steps):
        sched.step()
        out.append((sched.get_last_lr()[0], group[key]))
    return out


def test_one_cycle_linear_schedule_by_hand():
    sched = OneCycleLR(make_opt(), max_lr=1.0, total_steps=10, anneal_strategy="linear")
    # lr 1.0 / 25 = 0.04 up to 1.0 at step 0.3 * 10 - 1 = 2, then down to 0.04 / 1e4 = 4e-6 at step 9;
    # momentum the other way, 0.95 down to 0.85 and back
    lrs, momenta = zip(*one_cycle_run(sched))
    rise, fall = range(0, 3), range(3, 11)
    np.testing.assert_allclose(lrs, [0.04 + 0.96 * s / 2 for s in rise] + [1 - (1 - 4e-6) * (s - 2) / 7 for s in fall],
                               rtol=1e-12)
    np.testing.assert_allclose(momenta, [0.95 - 0.1 * s / 2 for s in rise] + [0.85 + 0.1 * (s - 2) / 7 for s in fall],
                               rtol=1e-12)
    assert lrs[10] < 0  # step total_steps, after the last batch, goes on along the line, as in PyTorch
    assert [sched.optimizer.param_groups[0][k] for k in ("initial_lr", "max_lr", "min_lr")] == [0.04, 1.0, 4e-6]


def test_one_cycle_three_phases_by_hand():
    sched = OneCycleLR(make_opt(), max_lr=1.0, total_steps=10, anneal_strategy="linear", three_phase=True)
    # up to 1.0 at step 2, back to 0.04 at step 0.6 * 10 - 2 = 4, then down to 4e-6 at step 9, momentum at 0.95
    lrs, momenta = zip(*one_cycle_run(sched))
    expected = [0.04, 0.52, 1.0, 0.52, 0.04] + [0.04 - (0.04 - 4e-6) * (s - 4) / 5 for s in range(5, 11)]
    np.testing.assert_allclose(lrs, expected, rtol=1e-12)
    np.testing.assert_allclose(momenta, [0.95, 0.9, 0.85, 0.9] + [0.95] * 7, rtol=1e-12)


def test_one_cycle_cosine_schedule_by_hand():
    sched = OneCycleLR(make_opt(), max_lr=1.0, epochs=2, steps_per_epoch=5)
    lrs, momenta = zip(*one_cycle_run(sched))
    assert sched.total_steps == 10
    np.testing.assert_allclose(lrs[:3], [0.04, 0.52, 1.0], rtol=1e-12)  # half way up the cosine, the middle
    assert lrs[9] == pytest.approx(4e-6, rel=1e-9)
    fall = np.array(lrs[2:10])
    np.testing.assert_allclose(fall + fall[::-1], 1 + 4e-6, rtol=1e-12)  # a half cosine: symmetric about its middle
    np.testing.assert_allclose(momenta[:3], [0.95, 0.9, 0.85], rtol=1e-12)
    assert lrs[10] == pytest.approx(lrs[8], rel=1e-9)  # after the last batch, the cosine past its bottom


@pytest.mark.torch
@pytest.mark.parametrize("kind", ["SGD", "Adam"])
@pytest.mark.parametrize("kwargs", [
    dict(max_lr=0.5, total_steps=100),
    dict(max_lr=[0.5, 0.2], total_steps=100, anneal_strategy="linear"),
    dict(max_lr=0.5, epochs=4, steps_per_epoch=25, three_phase=True),
    dict(max_lr=0.4, total_steps=37, pct_start=0.25, three_phase=True, anneal_strategy="linear", div_factor=10.0,
         final_div_factor=100.0),
    dict(max_lr=0.5, total_steps=50, base_momentum=[0.8, 0.7], max_momentum=0.9),
    dict(max_lr=0.5, total_steps=20, pct_start=0.0),
    dict(max_lr=0.3, total_steps=1),
    dict(max_lr=0.5, total_steps=30, cycle_momentum=False),
])
def test_one_cycle_matches_pytorch_exactly(torch, kind, kwargs):
    extra = dict(momentum=0.9) if kind == "SGD" else {}
    ours_groups = [{"params": [mdl.tensor(np.ones(2), requires_grad=True)], "lr": lr} for lr in (0.1, 0.03)]
    their_groups = [{"params": [torch.ones(2, requires_grad=True)], "lr": lr} for lr in (0.1, 0.03)]
    ours = OneCycleLR(getattr(optim, kind)(ours_groups, lr=0.1, **extra), **kwargs)
    theirs = torch.optim.lr_scheduler.OneCycleLR(getattr(torch.optim, kind)(their_groups, lr=0.1, **extra), **kwargs)
    keys = ["lr", "initial_lr", "max_lr", "min_lr", "momentum" if kind == "SGD" else "betas"]
    if kwargs.get("cycle_momentum", True):
        keys += ["max_momentum", "base_momentum"]
    for step in range(ours.total_steps + 1):
        assert ours.get_last_lr() == theirs.get_last_lr(), step  # the same arithmetic: bit for bit
        for key in keys:
            assert [g[key] for g in ours.optimizer.param_groups] == [g[key] for g in theirs.optimizer.param_groups], \
                (step, key)
        if step < ours.total_steps:
            theirs.optimizer.step()
            ours.step()
            theirs.step()
    with pytest.raises(ValueError, match=rf"Tried to step {ours.total_steps + 1} times"):
        theirs.step()
    with pytest.raises(ValueError, match=rf"OneCycleLR: tried to step {ours.total_steps + 1} times"):
        ours.step()


def test_one_cycle_refuses_to_step_past_total_steps_and_stays_as_it_was():
    opt = make_opt()
    sched = OneCycleLR(opt, max_lr=0.1, total_steps=5)
    for _ in range(5):
        sched.step()
    before = (sched.state_dict(), opt.state_dict()["param_groups"])
    with pytest.raises(ValueError, match=r"^OneCycleLR: tried to step 6 times, but total_steps is 5; the schedule is "
                                         r"over \(make total_steps the number of batches trained, "
                                         r"epochs \* steps_per_epoch\)$"):
        sched.step()
    assert (sched.state_dict(), opt.state_dict()["param_groups"]) == before


def test_one_cycle_momentum_needs_an_optimizer_with_momentum():
    params = [mdl.tensor(np.ones(2), requires_grad=True)]
    with pytest.raises(ValueError, match=r"^OneCycleLR: cycle_momentum=True needs an optimizer with momentum or "
                                         r"betas, and Adagrad has neither; pass cycle_momentum=False$"):
        OneCycleLR(optim.Adagrad(params, lr=0.1), max_lr=0.1, total_steps=5)
    opt = optim.Adagrad(params, lr=0.1)
    OneCycleLR(opt, max_lr=0.1, total_steps=5, cycle_momentum=False)
    assert "max_momentum" not in opt.param_groups[0] and opt.param_groups[0]["lr"] == pytest.approx(0.004)
    adam = optim.Adam(params, betas=(0.9, 0.99))
    sched = OneCycleLR(adam, max_lr=0.1, total_steps=5, max_momentum=0.97)
    assert sched.use_beta1 and adam.param_groups[0]["betas"] == (pytest.approx(0.97), 0.99)
    with pytest.raises(ValueError, match=r"^OneCycleLR: max_momentum must be a number in \[0, 1\) \(Adam's beta1\) or "
                                         r"a list of them, one per parameter group; got 1.0$"):
        OneCycleLR(adam, max_lr=0.1, total_steps=5, max_momentum=1.0)
    sgd = optim.SGD(params, lr=0.1)  # no momentum: OneCycleLR turns it on, as in PyTorch
    OneCycleLR(sgd, max_lr=0.1, total_steps=5)
    assert sgd.param_groups[0]["momentum"] == pytest.approx(0.95)


# --- saving and loading the new schedulers ---------------------------------------------------

class Warmup:
    """A callable lr_lambda with state, which LambdaLR's state dict holds (its attributes)."""

    def __init__(self, epochs):
        self.epochs = epochs

    def __call__(self, epoch):
        return min(1.0, (epoch + 1) / self.epochs)


def test_lambda_state_dict_holds_no_functions():
    warmup = Warmup(4)
    sched = LambdaLR(make_opt((0.1, 0.2)), [lambda e: 0.5 ** e, warmup])
    sched.step()
    state = sched.state_dict()
    assert state["lr_lambdas"] == [None, {"epochs": 4}]
    assert state == {"base_lrs": [0.1, 0.2], "last_epoch": 1, "_last_lr": [0.05, 0.1],
                     "lr_lambdas": [None, {"epochs": 4}]}
    other = Warmup(100)
    restored = LambdaLR(make_opt((0.1, 0.2)), [lambda e: 0.5 ** e, other])
    restored.load_state_dict(state)
    assert other.epochs == 4 and restored.lr_lambdas[1] is other  # the attributes go into its own function
    restored.step()
    assert restored.get_last_lr() == [0.025, 0.2 * 0.75]
    warmup.epochs = 8
    assert state["lr_lambdas"][1] == {"epochs": 4}  # the state dict is a copy


@pytest.mark.parametrize("make", [
    lambda o: MultiStepLR(o, milestones=[3, 3, 9], gamma=0.5),
    lambda o: CosineAnnealingLR(o, T_max=6, eta_min=0.001),
    lambda o: LambdaLR(o, [lambda e: 0.9 ** e, Warmup(4)]),
    lambda o: OneCycleLR(o, max_lr=[0.5, 0.2], total_steps=20, three_phase=True),
    lambda o: OneCycleLR(o, max_lr=0.5, total_steps=20, anneal_strategy="linear"),
], ids=["MultiStepLR", "CosineAnnealingLR", "LambdaLR", "OneCycleLR", "OneCycleLR-linear"])
def test_new_schedulers_state_dict_round_trip(tmp_path, make):
    def run(sched, steps):
        out = []
        for _ in range(steps):
            sched.step()
            out.append((sched.get_last_lr(), [g["momentum"] for g in sched.optimizer.param_groups]))
        return out

    expected = run(make(make_opt((0.1, 0.05))), 20)
    opt = make_opt((0.1, 0.05))
    sched = make(opt)
    first = run(sched, 7)
    save({"optimizer": opt.state_dict(), "scheduler": sched.state_dict()}, tmp_path / "ckpt")
    ckpt = load(tmp_path / "ckpt")
    opt2 = make_opt((0.1, 0.05))
    sched2 = make(opt2)  # the scheduler first: OneCycleLR's constructor sets the rates of step 0
    opt2.load_state_dict(ckpt["optimizer"])
    sched2.load_state_dict(ckpt["scheduler"])
    assert sched2.last_epoch == 7 and sched2.get_last_lr() == first[-1][0]
    assert first + run(sched2, 13) == expected
    # the state at the end loads too, though the 'linear' OneCycleLR's last rate is below 0 (as in PyTorch)
    save({"scheduler": sched2.state_dict()}, tmp_path / "end")
    sched3 = make(make_opt((0.1, 0.05)))
    sched3.load_state_dict(load(tmp_path / "end")["scheduler"])
    assert sched3.state_dict() == sched2.state_dict()
    if isinstance(sched3, MultiStepLR):
        assert isinstance(sched3.milestones, Counter)


NEW_SCHEDULERS = {
    "StepLR": lambda o: StepLR(o, step_size=2),
    "MultiStepLR": lambda o: MultiStepLR(o, milestones=[2]),
    "ExponentialLR": lambda o: ExponentialLR(o, gamma=0.5),
    "CosineAnnealingLR": lambda o: CosineAnnealingLR(o, T_max=5),
    "LambdaLR": lambda o: LambdaLR(o, lambda e: 1.0),
    "OneCycleLR": lambda o: OneCycleLR(o, max_lr=0.1, total_steps=5),
}


@pytest.mark.parametrize("source, target", [(s, t) for s, t in itertools.permutations(NEW_SCHEDULERS, 2)
                                            if {s, t} & {"MultiStepLR", "CosineAnnealingLR", "LambdaLR", "OneCycleLR"}])
def test_new_scheduler_state_of_another_kind_is_refused(source, target):
    ours = NEW_SCHEDULERS[target](make_opt())
    before = ours.state_dict()
    with pytest.raises(ValueError, match=rf"^{target}.load_state_dict: not a {target} state dict \(missing keys"):
        ours.load_state_dict(NEW_SCHEDULERS[source](make_opt()).state_dict())
    assert ours.state_dict() == before


def test_a_failing_step_leaves_the_schedule_where_it_was():
    opt = make_opt()
    sched = LambdaLR(opt, lambda e: 1.0 if e < 3 else -1.0)
    sched.step()
    sched.step()
    with pytest.raises(ValueError, match=r"^LambdaLR: lr_lambda\(3\) must be a number >= 0 \(a factor of the initial "
                                         r"learning rate\); got -1.0$"):
        sched.step()
    assert sched.last_epoch == 2 and sched.get_last_lr() == [0.1] and opt.param_groups[0]["lr"] == 0.1


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
    (lambda o: MultiStepLR(o, milestones=30), ValueError,
     r"^MultiStepLR: milestones must be a list of epochs \(ints >= 0\); got 30$"),
    (lambda o: MultiStepLR(o, milestones=[30, -1]), ValueError, r"milestones must be a list .*; got \[30, -1\]$"),
    (lambda o: MultiStepLR(o, milestones=[2.5]), ValueError, r"milestones must be a list .*; got \[2.5\]$"),
    (lambda o: MultiStepLR(o, milestones="30"), ValueError, r"milestones must be a list .*; got '30'$"),
    (lambda o: MultiStepLR(o, milestones=[3], gamma=0), ValueError, r"^MultiStepLR: gamma must be a number > 0; got 0"),
    (lambda o: MultiStepLR("opt", milestones=[3]), TypeError, r"^MultiStepLR: expected an optimizer, got str$"),
    (lambda o: CosineAnnealingLR(o, T_max=0), ValueError, r"^CosineAnnealingLR: T_max must be an int >= 1; got 0$"),
    (lambda o: CosineAnnealingLR(o, T_max=10.0), ValueError, r"T_max must be an int >= 1; got 10.0"),
    (lambda o: CosineAnnealingLR(o, T_max=10, eta_min=-0.1), ValueError,
     r"^CosineAnnealingLR: eta_min must be a number >= 0; got -0.1$"),
    (lambda o: LambdaLR(o, 0.5), ValueError,
     r"^LambdaLR: lr_lambda must be a function of the epoch or a list of them, one per parameter group; got 0.5$"),
    (lambda o: LambdaLR(o, [abs, abs]), ValueError,
     r"^LambdaLR: lr_lambda has 2 functions, but the optimizer has 1 parameter groups$"),
    (lambda o: LambdaLR(o, lambda e: -0.5), ValueError,
     r"^LambdaLR: lr_lambda\(0\) must be a number >= 0 \(a factor of the initial learning rate\); got -0.5$"),
    (lambda o: LambdaLR(o, lambda e: "1"), ValueError, r"lr_lambda\(0\) must be a number >= 0 .*; got '1'$"),
    (lambda o: LambdaLR(None, abs), TypeError, r"^LambdaLR: expected an optimizer, got NoneType$"),
    (lambda o: OneCycleLR(o, max_lr=0.1), ValueError, r"^OneCycleLR: give total_steps, or epochs and steps_per_epoch; "
                                                      r"got total_steps=None, epochs=None, steps_per_epoch=None$"),
    (lambda o: OneCycleLR(o, max_lr=0.1, epochs=3), ValueError, r"total_steps=None, epochs=3, steps_per_epoch=None$"),
    (lambda o: OneCycleLR(o, max_lr=0.1, total_steps=0), ValueError,
     r"^OneCycleLR: total_steps must be an int >= 1; got 0$"),
    (lambda o: OneCycleLR(o, max_lr=0.1, total_steps=10.0), ValueError, r"total_steps must be an int >= 1; got 10.0"),
    (lambda o: OneCycleLR(o, max_lr=0.1, epochs=0, steps_per_epoch=5), ValueError, r"epochs must be an int >= 1"),
    (lambda o: OneCycleLR(o, max_lr=0.1, epochs=2, steps_per_epoch=2.5), ValueError,
     r"^OneCycleLR: steps_per_epoch must be an int >= 1; got 2.5$"),
    (lambda o: OneCycleLR(o, max_lr=0.1, total_steps=10, pct_start=1.5), ValueError,
     r"^OneCycleLR: pct_start must be a number in \[0, 1\]; got 1.5$"),
    (lambda o: OneCycleLR(o, max_lr=0.1, total_steps=10, pct_start=0.1), ValueError,
     r"^OneCycleLR: pct_start=0.1 with total_steps=10 leaves phase 1 of the schedule with no steps \(it starts and "
     r"ends at step 0.0\); choose another pct_start$"),
    (lambda o: OneCycleLR(o, max_lr=0.1, total_steps=10, pct_start=1.0), ValueError,
     r"pct_start=1.0 with total_steps=10 leaves phase 2 of the schedule with no steps \(it starts and ends at "
     r"step 9\)"),
    (lambda o: OneCycleLR(o, max_lr=0.1, total_steps=10, pct_start=0.55, three_phase=True), ValueError,
     r"pct_start=0.55 with total_steps=10 and three_phase=True leaves phase 3 of the schedule with no steps"),
    (lambda o: OneCycleLR(o, max_lr=0.1, total_steps=10, anneal_strategy="cosine"), ValueError,
     r"^OneCycleLR: anneal_strategy must be 'cos' or 'linear'; got 'cosine'$"),
    (lambda o: OneCycleLR(o, max_lr=0.1, total_steps=10, three_phase="yes"), ValueError,
     r"^OneCycleLR: three_phase must be True or False; got 'yes'$"),
    (lambda o: OneCycleLR(o, max_lr=0.1, total_steps=10, cycle_momentum=1), ValueError,
     r"^OneCycleLR: cycle_momentum must be True or False; got 1$"),
    (lambda o: OneCycleLR(o, max_lr=[0.1, 0.2], total_steps=10), ValueError,
     r"^OneCycleLR: max_lr has 2 values, but the optimizer has 1 parameter groups$"),
    (lambda o: OneCycleLR(o, max_lr=-1, total_steps=10), ValueError,
     r"^OneCycleLR: max_lr must be a number >= 0 or a list of them, one per parameter group; got -1$"),
    (lambda o: OneCycleLR(o, max_lr=0.1, total_steps=10, div_factor=0), ValueError,
     r"^OneCycleLR: div_factor must be a number > 0; got 0$"),
    (lambda o: OneCycleLR(o, max_lr=0.1, total_steps=10, final_div_factor=None), ValueError,
     r"^OneCycleLR: final_div_factor must be a number > 0; got None$"),
    (lambda o: OneCycleLR(o, max_lr=0.1, total_steps=10, max_momentum=-0.5), ValueError,
     r"^OneCycleLR: max_momentum must be a number >= 0 or a list of them, one per parameter group; got -0.5$"),
    (lambda o: OneCycleLR(o, max_lr=0.1, total_steps=10, base_momentum=[0.8, 0.9]), ValueError,
     r"^OneCycleLR: base_momentum has 2 values, but the optimizer has 1 parameter groups$"),
    (lambda o: OneCycleLR([], max_lr=0.1, total_steps=10), TypeError, r"^OneCycleLR: expected an optimizer, got list$"),
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
    (lambda o: MultiStepLR(o, [3]), "milestones", {3: 0}, r"^MultiStepLR.load_state_dict: milestones must be a dict "
                                                          r"from epoch \(int >= 0\) to how often it is a milestone "
                                                          r"\(int >= 1\); got \{3: 0\}$"),
    (lambda o: MultiStepLR(o, [3]), "milestones", [3], r"milestones must be a dict from epoch .*; got \[3\]$"),
    (lambda o: MultiStepLR(o, [3]), "milestones", {"3": 1}, r"milestones must be a dict .*; got \{'3': 1\}$"),
    (lambda o: MultiStepLR(o, [3]), "gamma", -1, r"^MultiStepLR.load_state_dict: gamma must be a number > 0; got -1$"),
    (lambda o: CosineAnnealingLR(o, 5), "T_max", 0, r"^CosineAnnealingLR.load_state_dict: T_max must be an int >= 1"),
    (lambda o: CosineAnnealingLR(o, 5), "eta_min", None, r"eta_min must be a number >= 0; got None"),
    (lambda o: CosineAnnealingLR(o, 5), "last_epoch", -1, r"last_epoch must be an int >= 0; got -1"),
    (lambda o: LambdaLR(o, abs), "lr_lambdas", [None, None],
     r"^LambdaLR.load_state_dict: lr_lambdas must be a list of 1 entries, each None or a dict of the attributes of a "
     r"callable object; got \[None, None\]$"),
    (lambda o: LambdaLR(o, abs), "lr_lambdas", [{"a": 1}], r"lr_lambdas must be a list of 1 entries"),  # abs has none
    (lambda o: LambdaLR(o, Warmup(3)), "lr_lambdas", ["epochs"], r"lr_lambdas must be a list of 1 entries"),
    (lambda o: LambdaLR(o, abs), "base_lrs", [-1], r"base_lrs must be a list of numbers >= 0"),
    (lambda o: OneCycleLR(o, 0.1, total_steps=10), "total_steps", 0,
     r"^OneCycleLR.load_state_dict: total_steps must be an int >= 1; got 0$"),
    (lambda o: OneCycleLR(o, 0.1, total_steps=10), "pct_start", 2, r"pct_start must be a number in \[0, 1\]; got 2"),
    (lambda o: OneCycleLR(o, 0.1, total_steps=10), "pct_start", 0.1, r"leaves phase 1 of the schedule with no steps"),
    (lambda o: OneCycleLR(o, 0.1, total_steps=10), "anneal_strategy", "cosine", r"anneal_strategy must be 'cos' or"),
    (lambda o: OneCycleLR(o, 0.1, total_steps=10), "three_phase", 1, r"three_phase must be True or False; got 1"),
    (lambda o: OneCycleLR(o, 0.1, total_steps=10), "cycle_momentum", None, r"cycle_momentum must be True or False"),
    (lambda o: OneCycleLR(o, 0.1, total_steps=10), "last_epoch", 11,
     r"^OneCycleLR.load_state_dict: last_epoch must be at most total_steps=10; got 11$"),
    (lambda o: OneCycleLR(o, 0.1, total_steps=10), "last_epoch", 1.0, r"last_epoch must be an int >= 0; got 1.0"),
    (lambda o: OneCycleLR(o, 0.1, total_steps=10), "_last_lr", ["0.1"],
     r"_last_lr must be a list of numbers, one per parameter group; got \['0.1'\]"),
    (lambda o: OneCycleLR(o, 0.1, total_steps=10), "base_lrs", [-0.1], r"base_lrs must be a list of numbers >= 0"),
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
