"""PyTorch tensors, softmax cross-entropy gradient and Adam by hand.

The numpy file line for line, in torch's spelling: the tensors can live on a
GPU, matrix products run through torch's own kernels, and the Adam update
uses torch's in-place operations (`mul_`, `add_`, `addcmul_`, `addcdiv_`),
which write into the existing tensors instead of allocating new ones. The
training set is moved to the device once; each step indexes its batch there.
"""

import numpy as np
import torch

from sidebyside.implementations.digits.demo import demo

# This file's registry entries, read from the source by implementations/__init__.py: the two-layer
# file of the same name declares their other fields.
IMPLEMENTATIONS = [{"name": "torch_manual"}]


def loss_and_gradients(params, x, y):
    """The mean softmax cross-entropy of the batch and the gradient of every parameter."""
    w1, b1, w2, b2 = params["w1"], params["b1"], params["w2"], params["b2"]
    N = len(y)
    rows = torch.arange(N, device=y.device)

    # Forward pass: compute the class scores y_pred (the logits)
    h = x.mm(w1) + b1
    h_relu = h.clamp(min=0)
    y_pred = h_relu.mm(w2) + b2

    # Compute loss: the mean over the batch of -log softmax(y_pred)[label],
    # with each row's largest score subtracted first so exp cannot overflow.
    # The loss stays a 0-dimensional tensor: no host copy, no GPU wait.
    shifted = y_pred - y_pred.amax(dim=1, keepdim=True)
    log_probs = shifted - shifted.exp().sum(dim=1, keepdim=True).log()
    loss = -log_probs[rows, y].mean()

    # Backward pass: (softmax - one_hot(label)) / N is the gradient of the
    # scores; the bias gradients sum over the batch.
    grad_y_pred = log_probs.exp()
    grad_y_pred[rows, y] -= 1
    grad_y_pred /= N
    grad_w2 = h_relu.t().mm(grad_y_pred)
    grad_b2 = grad_y_pred.sum(dim=0)
    grad_h_relu = grad_y_pred.mm(w2.t())
    # ReLU blocks the gradient where its input was not positive.
    grad_h = grad_h_relu.masked_fill_(h <= 0, 0)
    grad_w1 = x.t().mm(grad_h)
    grad_b1 = grad_h.sum(dim=0)
    return loss, {"w1": grad_w1, "b1": grad_b1, "w2": grad_w2, "b2": grad_b2}


class Net:
    def __init__(self, params, problem, device="cpu"):
        self.problem = problem
        self.device = torch.device(device)
        self.dtype = getattr(torch, problem.dtype)
        # Copies of the shared initial weights, moved to the device once.
        self.weights = {
            name: torch.tensor(np.asarray(value), dtype=self.dtype, device=self.device)
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
        """One step per batch of indices; the losses stay on the device until the epoch ends."""
        x, y = self.prepare(x, y)
        losses = []
        for batch in batches:
            batch = torch.as_tensor(batch, device=self.device)  # no copy if prepare_batches made it
            losses.append(self.train_step(x[batch], y[batch]))
        return torch.stack(losses).cpu().numpy()

    def predict(self, x):
        """The most likely class of each image."""
        x = self.prepare(x)
        h_relu = (x.mm(self.weights["w1"]) + self.weights["b1"]).clamp(min=0)
        return (h_relu.mm(self.weights["w2"]) + self.weights["b2"]).argmax(dim=1).cpu().numpy()

    def params(self):
        return {name: value.cpu().numpy().copy() for name, value in self.weights.items()}

    def train_step(self, x, y):
        loss, grads = loss_and_gradients(self.weights, x, y)

        # Update weights: Adam, eps added to √v̂ as in torch.optim.Adam
        p = self.problem
        self.t += 1
        correction1 = 1 - p.beta1**self.t  # bias corrections: m and v start at zero
        correction2 = 1 - p.beta2**self.t
        for name, grad in grads.items():
            w, m, v = self.weights[name], self.m[name], self.v[name]
            m.mul_(p.beta1).add_(grad, alpha=1 - p.beta1)
            v.mul_(p.beta2).addcmul_(grad, grad, value=1 - p.beta2)
            denominator = (v / correction2).sqrt_().add_(p.eps)  # √v̂ + eps
            w.addcdiv_(m, denominator, value=-p.learning_rate / correction1)  # w -= lr · m̂ / (√v̂ + eps)
        return loss.detach()


if __name__ == "__main__":
    demo(Net)
