"""A tour of minidl's autograd: gradients, your own op, second derivatives, and a tiny model learning.

    python examples/autograd_tour.py
"""
import numpy as np

import minidl as mdl


class Cube(mdl.Function):
    """y = x**3.  dy/dx = 3 x**2, written with tensor ops so it can be differentiated again."""

    def forward(self, x):
        return x ** 3

    def backward(self, gy):
        x, = self.inputs
        return gy * 3 * x ** 2


def main():
    mdl.manual_seed(0)

    # 1. Gradients of a small expression.
    x = mdl.tensor(np.array([1.0, 2.0, 3.0]), requires_grad=True)
    y = (x * x).sum()
    y.backward()
    print("d/dx sum(x^2) at", x.data, "=", x.grad.data)

    # 2. Your own op, checked against central differences in float64.
    print("gradcheck(Cube):", mdl.gradcheck(lambda t: Cube()(t), [x]))
    print("gradgradcheck(Cube):", mdl.gradgradcheck(lambda t: Cube()(t), [x]))

    # 3. Second derivatives: differentiate the gradient.
    x.grad = None
    g, = mdl.grad(Cube()(x).sum(), [x], create_graph=True)
    g.sum().backward()
    print("d2/dx2 x^3 =", x.grad.data, "(6x)")

    # 4. A two-layer network learning XOR-like data (label: same sign in both coordinates) by plain
    #    gradient descent. The biases matter: without them the network is an odd function of its input,
    #    and this label is even.
    rng = np.random.default_rng(0)
    inputs = rng.uniform(-1, 1, (256, 2)).astype(np.float32)
    labels = (inputs[:, 0] * inputs[:, 1] > 0).astype(np.int64)
    X = mdl.tensor(inputs)
    w1 = mdl.tensor(rng.standard_normal((2, 16)).astype(np.float32), requires_grad=True)
    b1 = mdl.tensor(np.zeros(16, np.float32), requires_grad=True)
    w2 = mdl.tensor(rng.standard_normal((16, 2)).astype(np.float32) * 0.3, requires_grad=True)
    b2 = mdl.tensor(np.zeros(2, np.float32), requires_grad=True)
    params = [w1, b1, w2, b2]
    onehot = mdl.tensor(np.eye(2, dtype=np.float32)[labels])
    for step in range(301):
        logits = (X @ w1 + b1).tanh() @ w2 + b2
        loss = -(logits.log_softmax(axis=1) * onehot).sum(axis=1).mean()
        for p in params:
            p.grad = None
        loss.backward()
        for p in params:
            p.data -= 0.5 * p.grad.data
        if step % 100 == 0:
            accuracy = (logits.argmax(axis=1).data == labels).mean()
            print(f"step {step:3d}  loss {loss.item():.4f}  accuracy {accuracy:.1%}")


if __name__ == "__main__":
    main()
