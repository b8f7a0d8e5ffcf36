"""Optimizers: hand-checked update rules, 25-step trajectories against PyTorch, parameter groups,
state_dict round trips (through mdl.save/load), and errors."""
import math

import numpy as np
import pytest

import minidl as mdl
from minidl import optim
from minidl.nn.parameter import Parameter
from minidl.serialization import load, save


def param(values):
    return mdl.tensor(np.array(values, dtype=np.float64), requires_grad=True)


def set_grad(p, g):
    p.grad = mdl.tensor(np.array(g, dtype=np.float64))


def one_step(opt, p, g):
    set_grad(p, g)
    opt.step()
    return p.data.copy()


# --- the update rules on hand-checkable numbers ------------------------------------------

def test_sgd_plain_and_weight_decay():
    p = param([1.0, 2.0])
    np.testing.assert_allclose(one_step(optim.SGD([p], lr=0.1), p, [0.5, -1.0]), [0.95, 2.1])
    p = param([1.0, 2.0])
    # g + wd * p = [0.5 + 0.1, -1 + 0.2]
    np.testing.assert_allclose(one_step(optim.SGD([p], lr=0.1, weight_decay=0.1), p, [0.5, -1.0]), [0.94, 2.08])


def test_sgd_momentum_first_buffer_is_the_undamped_gradient():
    p = param([1.0])
    opt = optim.SGD([p], lr=0.1, momentum=0.9, dampening=0.5)
    np.testing.assert_allclose(one_step(opt, p, [2.0]), [1.0 - 0.1 * 2.0])            # b1 = g1
    np.testing.assert_allclose(opt.state[p]["momentum_buffer"], [2.0])
    np.testing.assert_allclose(one_step(opt, p, [4.0]), [0.8 - 0.1 * (0.9 * 2.0 + 0.5 * 4.0)])  # b2 = 3.8


def test_sgd_nesterov():
    p = param([1.0])
    opt = optim.SGD([p], lr=0.1, momentum=0.5, nesterov=True)
    np.testing.assert_allclose(one_step(opt, p, [2.0]), [1.0 - 0.1 * (2.0 + 0.5 * 2.0)])
    # b2 = 0.5 * 2 + 1 = 2; d2 = g2 + 0.5 * b2 = 2
    np.testing.assert_allclose(one_step(opt, p, [1.0]), [0.7 - 0.1 * 2.0])


def test_adam_first_steps():
    p = param([1.0, -1.0])
    opt = optim.Adam([p], lr=0.1)
    # step 1: m_hat = g, v_hat = g^2, so the step is lr * g / (|g| + eps): about lr per coordinate
    p1 = 1.0 - 0.1 * 0.5 / (0.5 + 1e-8)
    np.testing.assert_allclose(one_step(opt, p, [0.5, -2.0]), [p1, -1.0 + 0.1 * 2.0 / (2.0 + 1e-8)], rtol=1e-15)
    # step 2 with g = 1 for the first coordinate
    m = 0.9 * 0.1 * 0.5 + 0.1 * 1.0
    v = 0.999 * 0.001 * 0.25 + 0.001 * 1.0
    expected = p1 - 0.1 / (1 - 0.9 ** 2) * m / (math.sqrt(v) / math.sqrt(1 - 0.999 ** 2) + 1e-8)
    assert one_step(opt, p, [1.0, 0.0])[0] == pytest.approx(expected, rel=1e-12)
    assert opt.state[p]["step"] == 2


def test_adam_weight_decay_is_added_to_the_gradient():
    p = param([2.0])
    opt = optim.Adam([p], lr=0.1, weight_decay=0.5, eps=0.0)
    one_step(opt, p, [-0.5])  # g + wd * p = 0.5: the step goes against the decayed gradient
    np.testing.assert_allclose(p.data, [1.9])


def test_adagrad_accumulates_and_decays_lr():
    p = param([1.0])
    opt = optim.Adagrad([p], lr=0.1, lr_decay=0.5, initial_accumulator_value=0.25, eps=0.0)
    np.testing.assert_allclose(one_step(opt, p, [2.0]), [1.0 - 0.1 * 2.0 / math.sqrt(4.25)])
    # step 2: lr / (1 + 1 * 0.5), sum = 4.25 + 1
    np.testing.assert_allclose(one_step(opt, p, [1.0]), [p.data[0]])
    np.testing.assert_allclose(opt.state[p]["sum"], [5.25])
    assert p.data[0] == pytest.approx(1.0 - 0.2 / math.sqrt(4.25) - 0.1 / 1.5 / math.sqrt(5.25), rel=1e-14)
    assert optim.AdaGrad is optim.Adagrad


def test_rmsprop_plain_centered_and_momentum():
    p = param([1.0])
    one_step(optim.RMSprop([p], lr=0.01, alpha=0.9, eps=0.0), p, [2.0])
    np.testing.assert_allclose(p.data, [1.0 - 0.01 * 2.0 / math.sqrt(0.1 * 4.0)])

    p = param([1.0])
    opt = optim.RMSprop([p], lr=0.01, alpha=0.9, eps=0.0, centered=True)
    one_step(opt, p, [2.0])  # v = 0.4, g_avg = 0.2: divide by sqrt(0.4 - 0.04)
    np.testing.assert_allclose(p.data, [1.0 - 0.01 * 2.0 / math.sqrt(0.36)])

    p = param([1.0])
    opt = optim.RMSprop([p], lr=0.01, alpha=0.9, eps=0.0, momentum=0.5)
    one_step(opt, p, [2.0])
    b1 = 2.0 / math.sqrt(0.4)
    one_step(opt, p, [2.0])
    b2 = 0.5 * b1 + 2.0 / math.sqrt(0.9 * 0.4 + 0.4)
    np.testing.assert_allclose(p.data, [1.0 - 0.01 * (b1 + b2)])


def test_parameters_without_grad_are_skipped_and_objects_kept():
    a, b = param([1.0]), param([2.0])
    opt = optim.Adam([a, b], lr=0.1)
    data_a = a.data
    set_grad(a, [1.0])
    opt.step()
    assert b.data[0] == 2.0 and b not in opt.state
    assert a.data is data_a and a.data[0] != 1.0  # updated in place: views and the Parameter stay valid


def test_float32_parameters_stay_float32():
    p = mdl.tensor(np.ones(3, dtype=np.float32), requires_grad=True)
    for opt in (optim.SGD([p], lr=np.float64(0.1), momentum=0.9), optim.Adam([p]), optim.Adagrad([p]),
                optim.RMSprop([p], centered=True, momentum=0.5)):
        p.grad = mdl.tensor(np.full(3, 0.5, dtype=np.float32))
        opt.step()
        assert p.dtype == np.float32
        assert all(v.dtype == np.float32 for v in opt.state[p].values() if isinstance(v, np.ndarray))


def test_zero_grad():
    p = param([1.0, 2.0])
    opt = optim.SGD([p], lr=0.1)
    set_grad(p, [3.0, 4.0])
    shared = p.grad
    opt.zero_grad(set_to_none=False)
    np.testing.assert_array_equal(p.grad.data, [0.0, 0.0])
    np.testing.assert_array_equal(shared.data, [3.0, 4.0])  # a fresh array, the old one untouched
    opt.zero_grad()
    assert p.grad is None


def test_step_with_closure_and_autograd():
    w = Parameter(np.zeros(2))
    x = mdl.tensor(np.array([[1.0, 2.0], [3.0, 1.0]]))
    y = mdl.tensor(np.array([5.0, 5.0]))
    opt = optim.SGD([w], lr=0.05, momentum=0.5)

    def closure():
        opt.zero_grad()
        loss = (((x @ w) - y) ** 2).mean()
        loss.backward()
        return loss

    losses = [opt.step(closure).item() for _ in range(60)]
    assert losses[-1] < 1e-6 < losses[0]
    np.testing.assert_allclose(w.data, [1.0, 2.0], atol=1e-3)
    assert isinstance(w, Parameter) and w.creator is None  # the step recorded no graph


# --- 25-step trajectories against PyTorch -------------------------------------------------

def _problem():
    """Multinomial logistic regression: W (3, 4), b (3,), 20 samples, float64."""
    rng = np.random.default_rng(0)
    x = rng.standard_normal((20, 4))
    y = rng.integers(0, 3, 20)
    w0 = rng.standard_normal((3, 4)) * 0.5
    b0 = rng.standard_normal(3) * 0.1
    return x, y, w0, b0


def _gradients(x, y, w, b):
    """d(mean cross-entropy)/dW and /db, in closed form: both frameworks get the same gradients, so only the
    optimizers' arithmetic is compared."""
    z = x @ w.T + b
    p = np.exp(z - z.max(axis=1, keepdims=True))
    p /= p.sum(axis=1, keepdims=True)
    p[np.arange(len(y)), y] -= 1
    p /= len(y)
    return p.T @ x, p.sum(axis=0)


def _run_minidl(make, steps, params=None, opt=None):
    x, y, w0, b0 = _problem()
    if params is None:
        params = [param(w0), param(b0)]
    opt = opt or make(params)
    trajectory = []
    for _ in range(steps):
        gw, gb = _gradients(x, y, params[0].data, params[1].data)
        params[0].grad, params[1].grad = mdl.tensor(gw), mdl.tensor(gb)
        opt.step()
        trajectory.append([p.data.copy() for p in params])
    return trajectory, params, opt


CONFIGS = [
    ("SGD", dict(lr=0.5)),
    ("SGD", dict(lr=0.3, momentum=0.9)),
    ("SGD", dict(lr=0.3, momentum=0.9, dampening=0.3)),
    ("SGD", dict(lr=0.3, momentum=0.8, nesterov=True)),
    ("SGD", dict(lr=0.3, momentum=0.9, weight_decay=0.05)),
    ("SGD", dict(lr=0.3, momentum=0.9, nesterov=True, weight_decay=0.01)),
    ("Adam", dict(lr=0.05)),
    ("Adam", dict(lr=0.05, betas=(0.8, 0.99), eps=1e-6, weight_decay=0.1)),
    ("AdamW", dict(lr=0.05)),
    ("AdamW", dict(lr=0.05, betas=(0.8, 0.99), eps=1e-6, weight_decay=0.5)),
    ("Adagrad", dict(lr=0.3)),
    ("Adagrad", dict(lr=0.3, lr_decay=0.1, initial_accumulator_value=0.5, weight_decay=0.02)),
    ("RMSprop", dict(lr=0.01)),
    ("RMSprop", dict(lr=0.01, alpha=0.9, momentum=0.7)),
    ("RMSprop", dict(lr=0.01, centered=True)),
    ("RMSprop", dict(lr=0.005, alpha=0.95, momentum=0.5, centered=True, weight_decay=0.1, eps=1e-6)),
]


@pytest.mark.torch
@pytest.mark.parametrize("name, kwargs", CONFIGS, ids=[f"{n}-{i}" for i, (n, _) in enumerate(CONFIGS)])
def test_trajectory_matches_pytorch(torch, name, kwargs):
    steps = 25
    ours, _, _ = _run_minidl(lambda ps: getattr(optim, name)(ps, **kwargs), steps)

    x, y, w0, b0 = _problem()
    tw, tb = torch.tensor(w0, requires_grad=True), torch.tensor(b0, requires_grad=True)
    topt = getattr(torch.optim, name)([tw, tb], **kwargs)
    for k in range(steps):
        gw, gb = _gradients(x, y, tw.detach().numpy(), tb.detach().numpy())
        tw.grad, tb.grad = torch.from_numpy(gw), torch.from_numpy(gb)
        topt.step()
        for mine, theirs in zip(ours[k], (tw, tb)):
            np.testing.assert_allclose(mine, theirs.detach().numpy(), rtol=1e-10, atol=1e-13,
                                       err_msg=f"{name}{kwargs} step {k + 1}")
    assert np.abs(ours[-1][0] - w0).max() > 1e-2  # the parameters really moved


@pytest.mark.torch
def test_param_groups_with_different_settings_match_pytorch(torch):
    x, y, w0, b0 = _problem()
    w, b = param(w0), param(b0)
    opt = optim.SGD([{"params": [w]}, {"params": b, "lr": 0.05, "momentum": 0.5}], lr=0.3, momentum=0.9)
    assert [g["lr"] for g in opt.param_groups] == [0.3, 0.05]
    assert [g["momentum"] for g in opt.param_groups] == [0.9, 0.5]
    assert opt.param_groups[1]["params"][0] is b
    ours, _, _ = _run_minidl(None, 10, [w, b], opt)

    tw, tb = torch.tensor(w0, requires_grad=True), torch.tensor(b0, requires_grad=True)
    topt = torch.optim.SGD([{"params": [tw]}, {"params": tb, "lr": 0.05, "momentum": 0.5}], lr=0.3, momentum=0.9)
    for k in range(10):
        gw, gb = _gradients(x, y, tw.detach().numpy(), tb.detach().numpy())
        tw.grad, tb.grad = torch.from_numpy(gw), torch.from_numpy(gb)
        topt.step()
    np.testing.assert_allclose(ours[-1][0], tw.detach().numpy(), rtol=1e-10)
    np.testing.assert_allclose(ours[-1][1], tb.detach().numpy(), rtol=1e-10)


def test_adamw_decays_the_parameter_directly_not_through_the_gradient():
    # one step from theta = 2 with gradient 0: Adam's m and v stay 0, so only the decay moves it
    p = param([2.0])
    set_grad(p, [0.0])
    optim.AdamW([p], lr=0.1, weight_decay=0.5).step()
    np.testing.assert_allclose(p.data, [2.0 * (1 - 0.1 * 0.5)], rtol=1e-15)
    q = param([2.0])
    set_grad(q, [0.0])
    optim.Adam([q], lr=0.1, weight_decay=0.5).step()  # L2 through the gradient: a full-size Adam step
    np.testing.assert_allclose(q.data, [2.0 - 0.1], rtol=1e-6)


def test_add_param_group_takes_the_defaults():
    a, b = param([1.0]), param([2.0])
    opt = optim.Adam([a], lr=0.01, betas=(0.8, 0.9))
    opt.add_param_group({"params": [b], "lr": 0.1})
    assert opt.param_groups[1]["betas"] == (0.8, 0.9) and opt.param_groups[1]["lr"] == 0.1
    set_grad(a, [1.0])
    set_grad(b, [1.0])
    opt.step()
    np.testing.assert_allclose([a.data[0], b.data[0]], [1.0 - 0.01, 2.0 - 0.1], rtol=1e-6)


# --- state_dict -------------------------------------------------------------------------

def test_state_dict_layout_is_pytorchs_and_a_snapshot():
    a, b, c = param([1.0]), param([2.0, 3.0]), param([4.0])
    opt = optim.SGD([{"params": [a, b]}, {"params": [c], "lr": 0.5}], lr=0.1, momentum=0.9)
    set_grad(a, [1.0])
    set_grad(c, [1.0])
    opt.step()
    sd = opt.state_dict()
    assert sd["param_groups"] == [
        {"lr": 0.1, "momentum": 0.9, "dampening": 0, "weight_decay": 0, "nesterov": False, "params": [0, 1]},
        {"lr": 0.5, "momentum": 0.9, "dampening": 0, "weight_decay": 0, "nesterov": False, "params": [2]},
    ]
    assert sorted(sd["state"]) == [0, 2]  # b had no gradient, so no state
    buf = sd["state"][0]["momentum_buffer"]
    opt.step()
    np.testing.assert_array_equal(buf, [1.0])  # later steps do not change the snapshot


@pytest.mark.parametrize("name, kwargs", [
    ("SGD", dict(lr=0.3, momentum=0.9, nesterov=True)),
    ("Adam", dict(lr=0.05, weight_decay=0.1)),
    ("AdamW", dict(lr=0.05, weight_decay=0.1)),
    ("Adagrad", dict(lr=0.3, lr_decay=0.1, initial_accumulator_value=0.5)),
    ("RMSprop", dict(lr=0.01, momentum=0.7, centered=True)),
])
def test_state_dict_round_trip_continues_the_same_trajectory(tmp_path, name, kwargs):
    make = lambda ps: getattr(optim, name)(ps, **kwargs)  # noqa: E731
    full, _, _ = _run_minidl(make, 25)

    first, params, opt = _run_minidl(make, 10)
    save({"params": [p.detach() for p in params], "optimizer": opt.state_dict()}, tmp_path / "ckpt.npz")
    ckpt = load(tmp_path / "ckpt.npz")
    fresh = [param(t.data) for t in ckpt["params"]]
    opt2 = make(fresh)
    opt2.load_state_dict(ckpt["optimizer"])
    rest, _, _ = _run_minidl(None, 15, fresh, opt2)
    for k, (mine, expected) in enumerate(zip(first + rest, full)):
        for m, e in zip(mine, expected):
            np.testing.assert_array_equal(m, e, err_msg=f"step {k + 1}")


def test_load_state_dict_restores_settings_and_copies_arrays():
    a = param([1.0, 2.0])
    opt = optim.SGD([a], lr=0.1, momentum=0.9)
    set_grad(a, [1.0, 1.0])
    opt.step()
    sd = opt.state_dict()
    b = mdl.tensor(np.zeros(2, dtype=np.float32), requires_grad=True)
    opt2 = optim.SGD([b], lr=0.7)
    opt2.load_state_dict(sd)
    assert opt2.param_groups[0]["lr"] == 0.1 and opt2.param_groups[0]["momentum"] == 0.9
    assert opt2.param_groups[0]["params"][0] is b
    buf = opt2.state[b]["momentum_buffer"]
    assert buf.dtype == np.float32 and buf is not sd["state"][0]["momentum_buffer"]


def test_load_state_dict_errors_leave_the_optimizer_unchanged():
    a, b = param([1.0]), param([2.0, 3.0])
    opt = optim.Adam([a, b])
    set_grad(a, [1.0])
    opt.step()
    sd = opt.state_dict()
    with pytest.raises(ValueError, match=r"Adam.load_state_dict: parameter group 0 has 2 parameters in the state "
                                         r"dict and 1 in this optimizer"):
        optim.Adam([a]).load_state_dict(sd)
    with pytest.raises(ValueError, match=r"the state dict has 1 parameter groups, this optimizer has 2"):
        optim.Adam([{"params": [a]}, {"params": [b]}]).load_state_dict(sd)
    swapped = optim.Adam([b, a])
    with pytest.raises(ValueError, match=r"state 'exp_avg' of parameter 0 has shape \(1,\), but the parameter "
                                         r"has shape \(2,\)"):
        swapped.load_state_dict(sd)
    assert swapped.state == {}
    with pytest.raises(ValueError, match=r"expected a dict with 'state' and 'param_groups'"):
        opt.load_state_dict({"state": {}})
    bad = opt.state_dict()
    bad["param_groups"][0]["lr"] = -1.0
    with pytest.raises(ValueError, match=r"Adam: lr must be a number >= 0; got -1.0"):
        opt.load_state_dict(bad)
    assert opt.param_groups[0]["lr"] == 1e-3


def opt_snapshot(opt):
    """An optimizer's groups and state, arrays bit for bit, parameters by identity."""
    groups = [dict(g, params=[id(p) for p in g["params"]]) for g in opt.param_groups]
    state = {id(p): {k: (v.dtype, v.tobytes()) if isinstance(v, np.ndarray) else v for k, v in st.items()}
             for p, st in opt.state.items()}
    return groups, state


def stepped(make):
    """An optimizer over two groups (shapes (2,) and (3,)) after one step, and its state_dict."""
    a, b = param([1.0, 2.0]), param([3.0, 4.0, 5.0])
    opt = make([{"params": [a]}, {"params": [b], "lr": 0.05}])
    set_grad(a, [0.5, -1.0])
    set_grad(b, [1.0, 1.0, 1.0])
    opt.step()
    return opt, opt.state_dict()


def _set(path, value):
    """A change to a state dict: ``value`` at ``path`` (a tuple of keys), or the entry deleted for DELETE."""
    def change(sd):
        *parents, last = path
        for key in parents:
            sd = sd[key]
        if value is DELETE:
            del sd[last]
        else:
            sd[last] = value(sd[last]) if callable(value) else value
    return change


DELETE = object()
SGD = lambda ps: optim.SGD(ps, lr=0.1, momentum=0.9)  # noqa: E731
ADAM = lambda ps: optim.Adam(ps, lr=0.1)  # noqa: E731
NESTEROV = lambda ps: optim.SGD(ps, lr=0.1, momentum=0.9, nesterov=True)  # noqa: E731


@pytest.mark.parametrize("make, change, pattern", [
    (SGD, _set(("extra",), 1), r"expected a dict with 'state' and 'param_groups' and nothing else .* got a dict "
                               r"with the keys 'state', 'param_groups', 'extra'"),
    (SGD, _set(("param_groups",), 3), r"'param_groups' must be a list of dicts, got int"),
    (SGD, _set(("state",), []), r"'state' must be a dict from parameter index to dict, got list"),
    (SGD, _set(("param_groups", 1), [1]), r"parameter group 1 must be a dict, got list"),
    (SGD, _set(("param_groups", 0, "params"), DELETE), r"parameter group 0 lacks 'params'"),
    (SGD, _set(("param_groups", 1, "nesterov"), DELETE),
     r"parameter group 1 lacks 'nesterov', so it is not a SGD state dict \(SGD's settings are lr, momentum, "
     r"dampening, weight_decay, nesterov\)"),
    (SGD, _set(("param_groups", 0, "params"), ["0"]),
     r"'params' of parameter group 0 must be a list of parameter indices \(ints\), got \['0'\]"),
    (SGD, _set(("param_groups", 0, "params"), 0), r"'params' of parameter group 0 must be a list"),
    (SGD, _set(("param_groups", 1, "params"), [0]), r"parameter index 0 appears twice in 'param_groups'"),
    (SGD, _set(("param_groups", 1, "lr"), -0.5),
     r"^SGD.load_state_dict: parameter group 1: SGD: lr must be a number >= 0; got -0.5$"),
    (SGD, _set(("param_groups", 1, "lr"), "0.1"), r"parameter group 1: SGD: lr must be a number >= 0; got '0.1'"),
    (SGD, _set(("param_groups", 0, "momentum"), None), r"parameter group 0: SGD: momentum must be a number >= 0"),
    (NESTEROV, _set(("param_groups", 0, "momentum"), 0), r"parameter group 0: SGD: nesterov=True needs momentum > 0"),
    (SGD, _set(("state", 5), {}), r"the state dict has state for parameter 5, which none of its parameter groups"),
    (SGD, _set(("state", "0"), {}), r"state for parameter '0', which none"),
    (SGD, _set(("state", 0), 1.5), r"the state of parameter 0 must be a dict, got float"),
    (SGD, _set(("state", 1, "exp_avg"), np.zeros(3)),
     r"the state of parameter 1 has 'exp_avg', which SGD does not keep \(it keeps momentum_buffer\)"),
    (SGD, _set(("state", 1, "momentum_buffer"), np.zeros(2)),
     r"state 'momentum_buffer' of parameter 1 has shape \(2,\), but the parameter has shape \(3,\)"),
    (SGD, _set(("state", 1, "momentum_buffer"), [0.0, 0.0, 0.0]),
     r"state 'momentum_buffer' of parameter 1 must be an array shaped like the parameter, got list"),
    (SGD, _set(("state", 1, "momentum_buffer"), np.zeros(3, dtype=complex)),
     r"state 'momentum_buffer' of parameter 1 must be an array of real numbers, got dtype complex128"),
    (SGD, _set(("state", 1, "momentum_buffer"), np.array(["a", "b", "c"])), r"got dtype <U1"),
    (ADAM, _set(("state", 1, "step"), -1), r"^Adam.load_state_dict: state 'step' of parameter 1 must be an int >= 0; "
                                           r"got -1$"),
    (ADAM, _set(("state", 0, "step"), 1.5), r"state 'step' of parameter 0 must be an int >= 0; got 1.5"),
    (ADAM, _set(("state", 0, "exp_avg_sq"), DELETE), r"the state of parameter 0 lacks 'exp_avg_sq'"),
    (ADAM, _set(("param_groups", 1, "betas"), (0.9, 1.0)), r"parameter group 1: Adam: betas must be a pair"),
    (ADAM, _set(("param_groups", 1, "betas"), DELETE), r"parameter group 1 lacks 'betas'"),
])
def test_load_state_dict_checks_everything_before_changing_anything(make, change, pattern):
    opt, sd = stepped(make)
    set_grad(opt.param_groups[0]["params"][0], [1.0, 1.0])
    opt.step()  # so that the optimizer differs from the state dict
    change(sd)
    before = opt_snapshot(opt)
    with pytest.raises(ValueError, match=pattern if pattern.startswith("^") else
                       type(opt).__name__ + r".load_state_dict: .*" + pattern):
        opt.load_state_dict(sd)
    assert opt_snapshot(opt) == before


def test_load_state_dict_keeps_extra_group_keys_and_empty_states():
    opt, sd = stepped(SGD)
    sd["param_groups"][0]["initial_lr"] = 0.1  # a scheduler's, as add_param_group keeps it
    sd["state"][0] = {}
    opt.load_state_dict(sd)
    assert opt.param_groups[0]["initial_lr"] == 0.1
    assert opt.state[opt.param_groups[0]["params"][0]] == {}
    opt, sd = stepped(ADAM)
    sd["state"][0]["step"] = np.int64(4)  # a NumPy int, as a hand-made file may hold
    opt.load_state_dict(sd)
    assert type(opt.state[opt.param_groups[0]["params"][0]]["step"]) is int


# --- errors -------------------------------------------------------------------------------

@pytest.mark.parametrize("make, error, pattern", [
    (lambda p: optim.SGD(p, lr=-0.1), ValueError, r"SGD: lr must be a number >= 0; got -0.1"),
    (lambda p: optim.SGD(p, lr=float("nan")), ValueError, r"SGD: lr must be a number >= 0; got nan"),
    (lambda p: optim.SGD(p), ValueError, r"SGD: lr is required"),
    (lambda p: optim.SGD(p, lr="0.1"), ValueError, r"SGD: lr must be a number >= 0; got '0.1'"),
    (lambda p: optim.SGD(p, lr=0.1, momentum=-0.5), ValueError, r"SGD: momentum must be a number >= 0; got -0.5"),
    (lambda p: optim.SGD(p, lr=0.1, dampening=1.5), ValueError, r"SGD: dampening must be a number in \[0, 1\]"),
    (lambda p: optim.SGD(p, lr=0.1, weight_decay=-1), ValueError, r"SGD: weight_decay must be a number >= 0; got -1"),
    (lambda p: optim.SGD(p, lr=0.1, nesterov=True), ValueError,
     r"SGD: nesterov=True needs momentum > 0 and dampening = 0, got momentum=0 and dampening=0"),
    (lambda p: optim.SGD(p, lr=0.1, momentum=0.9, dampening=0.1, nesterov=True), ValueError,
     r"got momentum=0.9 and dampening=0.1"),
    (lambda p: optim.Adam(p, betas=(0.9, 1.0)), ValueError,
     r"Adam: betas must be a pair \(beta1, beta2\) of numbers in \[0, 1\); got \(0.9, 1.0\)"),
    (lambda p: optim.Adam(p, betas=(-0.1, 0.9)), ValueError, r"Adam: betas must be"),
    (lambda p: optim.Adam(p, betas=0.9), ValueError, r"Adam: betas must be"),
    (lambda p: optim.Adam(p, eps=-1e-8), ValueError, r"Adam: eps must be a number >= 0"),
    (lambda p: optim.Adagrad(p, lr_decay=-0.1), ValueError, r"Adagrad: lr_decay must be a number >= 0"),
    (lambda p: optim.Adagrad(p, initial_accumulator_value=-1), ValueError, r"Adagrad: initial_accumulator_value"),
    (lambda p: optim.RMSprop(p, alpha=1.5), ValueError, r"RMSprop: alpha must be a number in \[0, 1\]; got 1.5"),
    (lambda p: optim.RMSprop(p, momentum=-0.1), ValueError, r"RMSprop: momentum must be a number >= 0"),
    (lambda p: optim.RMSprop(p, centered=1), ValueError, r"RMSprop: centered must be True or False; got 1"),
    (lambda p: optim.SGD([{"params": p, "lr": -1}], lr=0.1), ValueError, r"SGD: lr must be a number >= 0; got -1"),
])
def test_bad_settings(make, error, pattern):
    with pytest.raises(error, match=pattern):
        make([param([1.0])])


def test_bad_parameter_lists():
    p, q = param([1.0]), param([2.0])
    with pytest.raises(ValueError, match=r"SGD got an empty parameter list"):
        optim.SGD([], lr=0.1)
    with pytest.raises(ValueError, match=r"Adam got an empty parameter list"):
        optim.Adam(iter([]))
    with pytest.raises(ValueError, match=r"Adam: parameter group 1 has an empty parameter list"):
        optim.Adam([{"params": [p]}, {"params": []}])
    with pytest.raises(TypeError, match=r"got a single tensor of shape \(1,\); wrap it in a list"):
        optim.SGD(p, lr=0.1)
    with pytest.raises(TypeError, match=r"SGD: params must be an iterable of tensors or of dicts, got float"):
        optim.SGD(1.0, lr=0.1)
    with pytest.raises(TypeError, match=r"not a set"):
        optim.SGD({p, q}, lr=0.1)
    with pytest.raises(TypeError, match=r"SGD: can only optimize tensors, but parameter 1 of group 0 is a ndarray"):
        optim.SGD([p, np.ones(2)], lr=0.1)
    with pytest.raises(TypeError, match=r"can only optimize floating-point tensors, but parameter 0 of group 0 "
                                        r"has dtype int64"):
        optim.SGD([mdl.tensor(np.arange(3))], lr=0.1)
    with pytest.raises(ValueError, match=r"parameter 0 of group 0 is not a leaf"):
        optim.SGD([p * 2], lr=0.1)
    with pytest.raises(ValueError, match=r"parameter 1 of group 0 appears twice"):
        optim.SGD([p, p], lr=0.1)
    with pytest.raises(ValueError, match=r"parameter 0 of group 1 \(shape \(1,\)\) is already in another parameter "
                                         r"group"):
        optim.SGD([{"params": [p, q]}, {"params": [q]}], lr=0.1)
    opt = optim.SGD([p], lr=0.1)
    with pytest.raises(ValueError, match=r"already in another parameter group"):
        opt.add_param_group({"params": p})
    with pytest.raises(ValueError, match=r"SGD: parameter group 1 has no 'params' entry"):
        opt.add_param_group({"lr": 0.1})
    with pytest.raises(TypeError, match=r"a parameter group must be a dict"):
        opt.add_param_group([q])
    assert len(opt.param_groups) == 1


@pytest.mark.parametrize("dtype", [np.float32, np.float64])
@pytest.mark.parametrize("weight_decay", [0.0, 0.1])
def test_adam_gives_the_same_bits_on_every_kernel_set(dtype, weight_decay):
    # The fused update (one pass per parameter) against the reference's term-by-term NumPy: 12
    # steps on parameters small (one thread) and large (several), one of them a non-contiguous
    # view, which the compiled kernel hands to the reference.
    pytest.importorskip("numba")
    rng = np.random.default_rng(3)
    values = [rng.standard_normal(s).astype(dtype) for s in [(7,), (300, 250), (40, 30)]]
    grads = [[rng.standard_normal(v.shape).astype(dtype) for v in values] for _ in range(12)]
    finals = []
    for kernels in ("numpy", "numba"):
        params = [mdl.tensor(v.copy(), requires_grad=True) for v in values]
        params[2].data = np.asfortranarray(params[2].data)
        opt = optim.Adam(params, lr=0.01, betas=(0.8, 0.95), weight_decay=weight_decay)
        with mdl.using_config("kernels", kernels):
            for step in grads:
                for p, g in zip(params, step):
                    p.grad = mdl.tensor(g)
                opt.step()
        finals.append([p.data.copy() for p in params] + [opt.state[p]["exp_avg_sq"] for p in params])
    for ours, reference in zip(*finals):
        assert ours.dtype == dtype
        np.testing.assert_array_equal(ours, reference)
    assert np.abs(finals[0][1] - values[1]).max() > 0.05  # the parameters really moved
