"""The independent oracle: the two-layer net's maths in plain float64 numpy.

Written for the tests alone, in the most literal form (no in-place tricks),
so that no implementation is ever checked against itself.
"""

import numpy as np


def loss(x, y, w1, w2):
    y_pred = np.maximum(x @ w1, 0.0) @ w2
    return float(np.sum((y_pred - y) ** 2))


def gradients(x, y, w1, w2):
    h = x @ w1
    y_pred = np.maximum(h, 0.0) @ w2
    grad_y_pred = 2.0 * (y_pred - y)
    grad_w2 = np.maximum(h, 0.0).T @ grad_y_pred
    grad_w1 = x.T @ ((grad_y_pred @ w2.T) * (h > 0))
    return grad_w1, grad_w2


def train(x, y, w1, w2, learning_rate, steps):
    """Losses before each update, and the final weights."""
    x, y, w1, w2 = (np.array(a, dtype=np.float64) for a in (x, y, w1, w2))
    losses = []
    for _ in range(steps):
        losses.append(loss(x, y, w1, w2))
        grad_w1, grad_w2 = gradients(x, y, w1, w2)
        w1 = w1 - learning_rate * grad_w1
        w2 = w2 - learning_rate * grad_w2
    return np.array(losses), w1, w2


def finite_difference(function, array, step=1e-6):
    """Central differences of a scalar function with respect to every entry."""
    gradient = np.zeros_like(array)
    for index in np.ndindex(array.shape):
        saved = array[index]
        array[index] = saved + step
        plus = function()
        array[index] = saved - step
        minus = function()
        array[index] = saved
        gradient[index] = (plus - minus) / (2 * step)
    return gradient
