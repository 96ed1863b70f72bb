"""PyTorch nn and optim: the model as layers, the update as an optimizer.

`torch.nn` packages the forward pass as Modules holding their own weights,
and ships common losses; `torch.optim` packages the update rule. Two styles
build the same network: `nn.Sequential` strings layers together (function
style, the default here), and a subclass of `nn.Module` writes `forward`
itself (class style). Note that `nn.Linear` stores its weight as
(out_features, in_features) and computes x·Wᵀ, so our (D_in, H) weights go in
transposed and come out transposed again.
"""

import numpy as np
import torch

from sidebyside.implementations import TORCH_OPTIM
from sidebyside.implementations.two_layer.problem import demo

# This file's registry entries: implementations/__init__.py reads them from the source, without importing it.
IMPLEMENTATIONS = [
    {"name": "torch_nn", "order": 40, "framework": "torch", "requires": ("torch",), "extra": "torch",
     "preload": TORCH_OPTIM, "promise": {"compiled": False}},
]


class TwoLayerNet(torch.nn.Module):
    """The class style: layers as attributes, forward written out."""

    def __init__(self, D_in, H, D_out):
        super().__init__()
        self.linear1 = torch.nn.Linear(D_in, H, bias=False)
        self.linear2 = torch.nn.Linear(H, D_out, bias=False)

    def forward(self, x):
        h_relu = self.linear1(x).clamp(min=0)
        return self.linear2(h_relu)


def build_model(D_in, H, D_out, style):
    if style == "sequential":
        # The function style: a container that applies its layers in order.
        return torch.nn.Sequential(
            torch.nn.Linear(D_in, H, bias=False),
            torch.nn.ReLU(),
            torch.nn.Linear(H, D_out, bias=False),
        )
    if style == "module":
        return TwoLayerNet(D_in, H, D_out)
    raise ValueError(f"unknown style {style!r}; valid styles: sequential, module")


class Net:
    def __init__(self, w1, w2, learning_rate, device="cpu", dtype="float32", style="sequential"):
        self.device = torch.device(device)
        self.dtype = getattr(torch, dtype)
        w1, w2 = np.asarray(w1), np.asarray(w2)
        (D_in, H), (_, D_out) = w1.shape, w2.shape
        self.model = build_model(D_in, H, D_out, style).to(self.device, self.dtype)
        self.linear1, self.linear2 = [m for m in self.model.modules() if isinstance(m, torch.nn.Linear)]
        # Load the shared initial weights, transposed to nn.Linear's (out, in).
        with torch.no_grad():
            self.linear1.weight.copy_(torch.as_tensor(w1.T))
            self.linear2.weight.copy_(torch.as_tensor(w2.T))
        # reduction="sum" gives the tutorial's sum of squares, not the mean.
        self.loss_fn = torch.nn.MSELoss(reduction="sum")
        # Plain SGD: no momentum, no weight decay.
        self.optimizer = torch.optim.SGD(self.model.parameters(), lr=learning_rate)

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
        w1 = self.linear1.weight.detach().cpu().numpy().T.copy()
        w2 = self.linear2.weight.detach().cpu().numpy().T.copy()
        return w1, w2

    def info(self):
        # Every operation runs eagerly, one at a time from Python: no graph,
        # no compiler (results.json records this next to the compiled ones).
        return {"compiled": False}

    def train_step(self, x, y):
        # Forward pass: compute predicted y by passing x to the model
        y_pred = self.model(x)

        # Compute loss
        loss = self.loss_fn(y_pred, y)

        # Backward pass: clear the old gradients (set to None by default),
        # then let autograd compute new ones for every parameter
        self.optimizer.zero_grad()
        loss.backward()

        # Update weights: the optimizer applies w -= learning_rate * w.grad
        self.optimizer.step()
        return loss.detach()


if __name__ == "__main__":
    demo(Net)
