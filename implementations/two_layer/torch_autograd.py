"""PyTorch autograd, with ReLU as a custom autograd Function.

Instead of writing the backward pass by hand, the weights are tensors with
`requires_grad=True`: torch records every operation on them in a graph as
the forward pass runs, and `loss.backward()` walks that graph backwards to
fill `w1.grad` and `w2.grad`. ReLU is defined as our own
`torch.autograd.Function`, to show how a new operation plugs into that
machinery: its `forward` saves what `backward` will need with
`ctx.save_for_backward`, and its `backward` turns the gradient of the output
into the gradient of the input.
"""

import numpy as np
import torch

from sidebyside.implementations.two_layer.problem import demo

# This file's registry entries: implementations/__init__.py reads them from the source, without importing it.
IMPLEMENTATIONS = [
    {"name": "torch_autograd", "order": 30, "framework": "torch", "requires": ("torch",), "extra": "torch",
     "promise": {"compiled": False}},
]


class MyReLU(torch.autograd.Function):
    """ReLU with a hand-written backward, called as MyReLU.apply(h)."""

    @staticmethod
    def forward(ctx, input):
        # Keep the input: backward needs to know where it was negative.
        ctx.save_for_backward(input)
        return input.clamp(min=0)

    @staticmethod
    def backward(ctx, grad_output):
        (input,) = ctx.saved_tensors
        # grad_output may be shared with the graph, so mask a copy of it.
        grad_input = grad_output.clone()
        grad_input[input < 0] = 0
        return grad_input


class Net:
    def __init__(self, w1, w2, learning_rate, device="cpu", dtype="float32"):
        self.device = torch.device(device)
        self.dtype = getattr(torch, dtype)
        self.learning_rate = learning_rate
        # requires_grad=True asks autograd to compute gradients for these tensors.
        self.w1 = torch.tensor(np.asarray(w1), dtype=self.dtype, device=self.device, requires_grad=True)
        self.w2 = torch.tensor(np.asarray(w2), dtype=self.dtype, device=self.device, requires_grad=True)

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
        return self.w1.detach().cpu().numpy().copy(), self.w2.detach().cpu().numpy().copy()

    def info(self):
        # Every operation runs eagerly, one at a time from Python: no graph,
        # no compiler (results.json records this next to the compiled ones).
        return {"compiled": False}

    def train_step(self, x, y):
        w1, w2 = self.w1, self.w2

        # Forward pass: compute predicted y, recording the graph for autograd
        h = x.mm(w1)
        h_relu = MyReLU.apply(h)
        y_pred = h_relu.mm(w2)

        # Compute loss: the sum of squared errors over every element
        loss = (y_pred - y).pow(2).sum()

        # Backward pass: autograd fills w1.grad and w2.grad
        loss.backward()

        # Update weights. The update itself must not be recorded in the graph,
        # hence torch.no_grad(). Setting .grad to None afterwards (rather than
        # zeroing it) lets the next backward write fresh gradients directly.
        with torch.no_grad():
            w1 -= self.learning_rate * w1.grad
            w2 -= self.learning_rate * w2.grad
            w1.grad = None
            w2.grad = None
        return loss.detach()


if __name__ == "__main__":
    demo(Net)
