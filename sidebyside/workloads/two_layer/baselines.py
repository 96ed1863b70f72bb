"""The plain tutorial versions, as baselines: "no strawmen".

Each function returns a `step(x, y) -> float` written the way the tutorials
write it (jcjohnson/pytorch-examples, the Keras guides): no in-place tricks,
no fused updates. The targets benchmark checks that every implementation in
implementations/ is at least as fast as the plain version of the same code,
so a framework is never judged on a handicapped rewrite.
"""

import numpy as np


def numpy_plain(x, y, w1, w2, learning_rate):
    w1, w2 = w1.copy(), w2.copy()

    def step(x, y):
        nonlocal w1, w2
        h = x.dot(w1)
        h_relu = np.maximum(h, 0)
        y_pred = h_relu.dot(w2)
        loss = np.square(y_pred - y).sum()
        grad_y_pred = 2.0 * (y_pred - y)
        grad_w2 = h_relu.T.dot(grad_y_pred)
        grad_h_relu = grad_y_pred.dot(w2.T)
        grad_h = grad_h_relu.copy()
        grad_h[h < 0] = 0
        grad_w1 = x.T.dot(grad_h)
        w1 -= learning_rate * grad_w1
        w2 -= learning_rate * grad_w2
        return float(loss)

    return step


def torch_manual_plain(x, y, w1, w2, learning_rate):
    import torch

    x, y, w1, w2 = (torch.from_numpy(a.copy()) for a in (x, y, w1, w2))

    def step(_x, _y):
        h = x.mm(w1)
        h_relu = h.clamp(min=0)
        y_pred = h_relu.mm(w2)
        loss = (y_pred - y).pow(2).sum().item()
        grad_y_pred = 2.0 * (y_pred - y)
        grad_w2 = h_relu.t().mm(grad_y_pred)
        grad_h_relu = grad_y_pred.mm(w2.t())
        grad_h = grad_h_relu.clone()
        grad_h[h < 0] = 0
        grad_w1 = x.t().mm(grad_h)
        w1.sub_(learning_rate * grad_w1)
        w2.sub_(learning_rate * grad_w2)
        return loss

    return step


def torch_autograd_plain(x, y, w1, w2, learning_rate):
    import torch

    from sidebyside.implementations.two_layer.torch_autograd import MyReLU

    x, y = torch.from_numpy(x.copy()), torch.from_numpy(y.copy())
    w1 = torch.from_numpy(w1.copy()).requires_grad_()
    w2 = torch.from_numpy(w2.copy()).requires_grad_()

    def step(_x, _y):
        nonlocal w1, w2  # `w1 -= ...` updates in place but rebinds the name
        relu = MyReLU.apply
        y_pred = relu(x.mm(w1)).mm(w2)
        loss = (y_pred - y).pow(2).sum()
        loss.backward()
        with torch.no_grad():
            w1 -= learning_rate * w1.grad
            w2 -= learning_rate * w2.grad
            w1.grad.zero_()
            w2.grad.zero_()
        return loss.item()

    return step


def torch_nn_plain(x, y, w1, w2, learning_rate):
    """pytorch-examples' two_layer_net_optim.py: nn.Sequential, MSELoss(sum) and torch.optim.SGD.

    torch_nn is "nn + optim", so its plain version uses the optimizer too;
    comparing it with a hand-written update would time optim.SGD, not
    whether torch_nn's own code costs anything.
    """
    import torch

    D_in, H = w1.shape
    D_out = w2.shape[1]
    model = torch.nn.Sequential(
        torch.nn.Linear(D_in, H, bias=False), torch.nn.ReLU(), torch.nn.Linear(H, D_out, bias=False)
    ).to(torch.float32 if x.dtype == np.float32 else torch.float64)
    with torch.no_grad():
        model[0].weight.copy_(torch.from_numpy(w1.T.copy()))
        model[2].weight.copy_(torch.from_numpy(w2.T.copy()))
    loss_fn = torch.nn.MSELoss(reduction="sum")
    x, y = torch.from_numpy(x.copy()), torch.from_numpy(y.copy())

    optimizer = torch.optim.SGD(model.parameters(), lr=learning_rate)

    def step(_x, _y):
        y_pred = model(x)
        loss = loss_fn(y_pred, y)
        optimizer.zero_grad()
        loss.backward()
        optimizer.step()
        return loss.item()

    return step


def keras_fit_plain(x, y, w1, w2, learning_rate):
    """The Keras guides' idiom: model.fit, here one batch per call."""
    import keras

    model = keras.Sequential([
        keras.Input(shape=(w1.shape[0],)),
        keras.layers.Dense(w1.shape[1], activation="relu", use_bias=False),
        keras.layers.Dense(w2.shape[1], use_bias=False),
    ])
    model.layers[0].set_weights([w1])
    model.layers[1].set_weights([w2])
    model.compile(optimizer=keras.optimizers.SGD(learning_rate=learning_rate), loss="mse")

    def step(_x, _y):
        history = model.fit(x, y, batch_size=len(x), epochs=1, verbose=0, shuffle=False)
        return history.history["loss"][0]

    return step


# Each implementation and the plain version it must not be slower than.
BASELINES = {
    "numpy_manual": numpy_plain,
    "torch_manual": torch_manual_plain,
    "torch_autograd": torch_autograd_plain,
    "torch_nn": torch_nn_plain,
    "keras_tensorflow": keras_fit_plain,
    "keras_torch": keras_fit_plain,
    "keras_jax": keras_fit_plain,
}
# Compiled variants are compared with the eager code they compile; the
# outcome is reported, not required (compilers may lose at this size).
EAGER_COUNTERPARTS = {
    "torch_compile": "torch_nn",
    "tf_function_xla": "tf_function",
    "keras_tensorflow_xla": "keras_tensorflow",
    "keras_torch_compile": "keras_torch",
    "keras_jax": "keras_jax_eager",
}
