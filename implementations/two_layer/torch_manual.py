"""PyTorch tensors, gradients by hand.

A torch Tensor is conceptually identical to a numpy array, with two
differences that matter here: it can live on a GPU, and torch runs its
matrix products through its own kernels (MKL/oneDNN on x86 CPUs) rather than
numpy's OpenBLAS. The algorithm is the numpy one, line for line; only the
spelling of the operations changes.
"""

import numpy as np
import torch

from sidebyside.implementations.two_layer.problem import demo

# This file's registry entries: implementations/__init__.py reads them from the source, without importing it.
IMPLEMENTATIONS = [
    {"name": "torch_manual", "order": 20, "framework": "torch", "requires": ("torch",), "extra": "torch",
     "promise": {"compiled": False}},
]


class Net:
    def __init__(self, w1, w2, learning_rate, device="cpu", dtype="float32"):
        self.device = torch.device(device)
        self.dtype = getattr(torch, dtype)
        self.learning_rate = learning_rate
        # Copies of the shared initial weights, moved to the device once.
        self.w1 = torch.tensor(np.asarray(w1), dtype=self.dtype, device=self.device)
        self.w2 = torch.tensor(np.asarray(w2), dtype=self.dtype, device=self.device)

    def prepare(self, x, y):
        """Tensors of our dtype on our device; no copy if they already are."""
        return (
            torch.as_tensor(x, dtype=self.dtype, device=self.device),
            torch.as_tensor(y, dtype=self.dtype, device=self.device),
        )

    def step(self, x, y):
        """One step of gradient descent; returns the loss before the update.

        `.item()` copies the loss to the host, which waits for the GPU.
        """
        return self.train_step(*self.prepare(x, y)).item()

    def train(self, x, y, steps):
        """Run `steps` steps; the losses stay on the device until the end."""
        x, y = self.prepare(x, y)
        losses = torch.stack([self.train_step(x, y) for _ in range(steps)])
        return losses.cpu().numpy()

    def params(self):
        return self.w1.cpu().numpy().copy(), self.w2.cpu().numpy().copy()

    def info(self):
        # Every operation runs eagerly, one at a time from Python: no graph,
        # no compiler (results.json records this next to the compiled ones).
        return {"compiled": False}

    def train_step(self, x, y):
        w1, w2 = self.w1, self.w2

        # Forward pass: compute predicted y
        h = x.mm(w1)
        h_relu = h.clamp(min=0)
        y_pred = h_relu.mm(w2)

        # Compute loss: the sum of squared errors over every element.
        # The loss stays a 0-dimensional tensor: no host copy, no GPU wait.
        error = y_pred - y
        loss = error.pow(2).sum()

        # Backward pass: compute gradients of w1 and w2 with respect to loss
        grad_y_pred = 2.0 * error
        grad_w2 = h_relu.t().mm(grad_y_pred)
        grad_h_relu = grad_y_pred.mm(w2.t())
        # ReLU passes the gradient where its input was positive and blocks it
        # elsewhere. grad_h_relu is a fresh tensor, so it is masked in place.
        grad_h = grad_h_relu.masked_fill_(h < 0, 0)
        grad_w1 = x.t().mm(grad_h)

        # Update weights: in place, so no new weight tensors are allocated
        w1 -= self.learning_rate * grad_w1
        w2 -= self.learning_rate * grad_w2
        return loss


if __name__ == "__main__":
    demo(Net)
