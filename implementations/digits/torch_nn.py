"""PyTorch nn and optim: `nn.CrossEntropyLoss` and `optim.Adam`.

The network is an `nn.Sequential` of two `nn.Linear` layers (with biases)
around an `nn.ReLU`. `nn.CrossEntropyLoss` takes the raw class scores and
integer labels and applies log-softmax and the negative log-likelihood in
one numerically careful operation, averaged over the batch. `optim.Adam`
keeps the running means itself; it adds eps to √v̂, as the hand-written
files here do. `nn.Linear` stores its weight as (out_features, in_features),
so our (D_in, H) weights go in transposed and come out transposed again.
"""

import numpy as np
import torch

from sidebyside.implementations.digits.demo import demo

# This file's registry entries, read from the source by implementations/__init__.py: the two-layer
# file of the same name declares their other fields.
IMPLEMENTATIONS = [{"name": "torch_nn"}]


class Net:
    def __init__(self, params, problem, device="cpu"):
        self.device = torch.device(device)
        self.dtype = getattr(torch, problem.dtype)
        D_in, H = np.shape(params["w1"])
        D_out = np.shape(params["w2"])[1]
        self.model = torch.nn.Sequential(
            torch.nn.Linear(D_in, H),
            torch.nn.ReLU(),
            torch.nn.Linear(H, D_out),
        ).to(self.device, self.dtype)
        self.linear1, self.linear2 = self.model[0], self.model[2]
        # Load the shared initial weights, transposed to nn.Linear's (out, in).
        with torch.no_grad():
            for linear, w, b in ((self.linear1, "w1", "b1"), (self.linear2, "w2", "b2")):
                linear.weight.copy_(torch.as_tensor(np.asarray(params[w]).T))
                linear.bias.copy_(torch.as_tensor(np.asarray(params[b])))
        # Softmax cross-entropy from raw scores; reduction="mean" (the default) averages over the batch.
        self.loss_fn = torch.nn.CrossEntropyLoss()
        self.optimizer = torch.optim.Adam(
            self.model.parameters(),
            lr=problem.learning_rate,
            betas=(problem.beta1, problem.beta2),
            eps=problem.eps,
        )

    def prepare(self, x, y=None):
        """Images as tensors of our dtype on our device, labels as int64; no copy if they already are."""
        x = torch.as_tensor(x, dtype=self.dtype, device=self.device)
        return x if y is None else (x, torch.as_tensor(y, dtype=torch.int64, device=self.device))

    def prepare_batches(self, batches):
        """The epoch's index arrays as int64 tensors on our device, moved once, outside any timed region."""
        return [torch.as_tensor(batch, dtype=torch.int64, device=self.device) for batch in batches]

    def fit_epoch(self, x, y, batches):
        """One step per batch of indices; the losses stay on the device until the epoch ends."""
        x, y = self.prepare(x, y)
        self.model.train()
        losses = []
        for batch in batches:
            batch = torch.as_tensor(batch, device=self.device)  # no copy if prepare_batches made it
            losses.append(self.train_step(x[batch], y[batch]))
        return torch.stack(losses).cpu().numpy()

    def predict(self, x):
        """The most likely class of each image; no graph is recorded."""
        self.model.eval()
        with torch.no_grad():
            return self.model(self.prepare(x)).argmax(dim=1).cpu().numpy()

    def params(self):
        return {
            "w1": self.linear1.weight.detach().cpu().numpy().T.copy(),
            "b1": self.linear1.bias.detach().cpu().numpy().copy(),
            "w2": self.linear2.weight.detach().cpu().numpy().T.copy(),
            "b2": self.linear2.bias.detach().cpu().numpy().copy(),
        }

    def train_step(self, x, y):
        # Forward pass: compute the class scores by passing x to the model
        y_pred = self.model(x)

        # Compute loss: softmax cross-entropy, the mean over the batch
        loss = self.loss_fn(y_pred, y)

        # Backward pass: clear the old gradients, then let autograd compute new ones
        self.optimizer.zero_grad()
        loss.backward()

        # Update weights: the optimizer applies Adam's update to every parameter
        self.optimizer.step()
        return loss.detach()


if __name__ == "__main__":
    demo(Net)
