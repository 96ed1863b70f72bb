"""PyTorch autograd, with the data served by a Dataset and a DataLoader.

The gradients come from autograd: the weights are tensors with
`requires_grad=True`, the loss is written with ordinary tensor operations
(`logsumexp` for the softmax's normaliser), and `loss.backward()` fills each
weight's `.grad`. Adam stays hand-written, under `torch.no_grad()`.

The batches come from `torch.utils.data`, the way PyTorch programs usually
feed a training loop: a `Dataset` answers "item i", a `Sampler` decides which
items and in what order, and the `DataLoader` iterates. Our sampler replays
the shared batch order instead of shuffling on its own. It yields whole
batches of indices and the DataLoader is built with `batch_size=None`, which
turns off its own batching: the dataset then looks up all of a batch's
images in one indexing operation, instead of 32 single-image lookups that
`collate` would stack afterwards, which takes several times longer.
"""

import numpy as np
import torch
from torch.utils.data import DataLoader, Dataset, Sampler

from sidebyside.implementations.digits.demo import demo

# This file's registry entries, read from the source by implementations/__init__.py: the two-layer
# file of the same name declares their other fields.
IMPLEMENTATIONS = [{"name": "torch_autograd"}]


class Digits(Dataset):
    """Images and labels, already on the device; item `i` may be an index tensor."""

    def __init__(self, x, y):
        self.x, self.y = x, y

    def __len__(self):
        return len(self.y)

    def __getitem__(self, index):
        return self.x[index], self.y[index]


class SharedOrder(Sampler):
    """Yields the shared batches of one epoch, each a tensor of indices."""

    def __init__(self, batches, device):
        # No copy when the batches already are tensors on the device (prepare_batches).
        self.batches = [torch.as_tensor(batch, device=device) for batch in batches]

    def __len__(self):
        return len(self.batches)

    def __iter__(self):
        return iter(self.batches)


class Net:
    def __init__(self, params, problem, device="cpu"):
        self.problem = problem
        self.device = torch.device(device)
        self.dtype = getattr(torch, problem.dtype)
        # requires_grad=True asks autograd to compute gradients for these tensors.
        self.weights = {
            name: torch.tensor(np.asarray(value), dtype=self.dtype, device=self.device, requires_grad=True)
            for name, value in params.items()
        }
        # Adam's state: running means of the gradients and of their squares, and the step count.
        self.m = {name: torch.zeros_like(value) for name, value in self.weights.items()}
        self.v = {name: torch.zeros_like(value) for name, value in self.weights.items()}
        self.t = 0

    def prepare(self, x, y=None):
        """Images as tensors of our dtype on our device, labels as int64; no copy if they already are."""
        x = torch.as_tensor(x, dtype=self.dtype, device=self.device)
        return x if y is None else (x, torch.as_tensor(y, dtype=torch.int64, device=self.device))

    def prepare_batches(self, batches):
        """The epoch's index arrays as int64 tensors on our device, moved once, outside any timed region."""
        return [torch.as_tensor(batch, dtype=torch.int64, device=self.device) for batch in batches]

    def fit_epoch(self, x, y, batches):
        """One step per batch the DataLoader serves; the losses stay on the device until the end."""
        loader = DataLoader(Digits(*self.prepare(x, y)), sampler=SharedOrder(batches, self.device), batch_size=None)
        losses = [self.train_step(x_batch, y_batch) for x_batch, y_batch in loader]
        return torch.stack(losses).cpu().numpy()

    def predict(self, x):
        """The most likely class of each image; no graph is recorded."""
        with torch.no_grad():
            return self.forward(self.prepare(x)).argmax(dim=1).cpu().numpy()

    def params(self):
        return {name: value.detach().cpu().numpy().copy() for name, value in self.weights.items()}

    def forward(self, x):
        w = self.weights
        h = x.mm(w["w1"]) + w["b1"]
        h_relu = h.relu()
        return h_relu.mm(w["w2"]) + w["b2"]

    def train_step(self, x, y):
        # Forward pass: compute the class scores, recording the graph for autograd
        y_pred = self.forward(x)

        # Compute loss: mean over the batch of log(sum(exp(y_pred))) - y_pred[label]
        loss = (y_pred.logsumexp(dim=1) - y_pred.gather(1, y.unsqueeze(1)).squeeze(1)).mean()

        # Backward pass: autograd fills the .grad of every weight
        loss.backward()

        # Update weights: Adam, eps added to √v̂ as in torch.optim.Adam. The
        # update must not be recorded in the graph, hence torch.no_grad();
        # setting .grad to None lets the next backward write fresh gradients.
        p = self.problem
        self.t += 1
        correction1 = 1 - p.beta1**self.t  # bias corrections: m and v start at zero
        correction2 = 1 - p.beta2**self.t
        with torch.no_grad():
            for name, w in self.weights.items():
                grad, m, v = w.grad, self.m[name], self.v[name]
                m.mul_(p.beta1).add_(grad, alpha=1 - p.beta1)
                v.mul_(p.beta2).addcmul_(grad, grad, value=1 - p.beta2)
                denominator = (v / correction2).sqrt_().add_(p.eps)  # √v̂ + eps
                w.addcdiv_(m, denominator, value=-p.learning_rate / correction1)
                w.grad = None
        return loss.detach()


if __name__ == "__main__":
    demo(Net)
