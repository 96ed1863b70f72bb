"""PyTorch nn and optim, with the whole training step under torch.compile.

This is the torch_nn step, unchanged, wrapped in `torch.compile`. On the
first call, TorchDynamo reads the Python bytecode of the step and captures
the tensor operations it runs into graphs; AOTAutograd derives the backward
graph ahead of time; and the Inductor backend generates fused C++ (on a CPU)
or Triton (on a GPU) kernels for them, compiling with the system's C++
compiler. Later calls only check that the inputs still match what was
compiled (the "guards") and run the compiled code.

Two things are worth knowing. `loss.backward()` and the optimizer's step
break the capture into several graphs ("graph breaks"); each graph is still
compiled, and the Python between them runs as usual. And the compile cost is
paid by the first step: tens of seconds on a small CPU, or a few seconds when
Inductor finds the kernels in its on-disk cache from an earlier run. `info()`
reports how long that first call took and whether the cache was hit, so
the compile cost can be shown next to the steady-state speed.
"""

import time

import numpy as np
import torch

from sidebyside.implementations import FrameworkBroken
from sidebyside.implementations.devices import torch_device
from sidebyside.implementations.two_layer.problem import demo
from sidebyside.implementations.two_layer.torch_nn import build_model


class Net:
    def __init__(self, w1, w2, learning_rate, device="cpu", dtype="float32", style="sequential", mode="default"):
        self.device = torch_device(device)
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
        # torch.compile returns a wrapper at once; nothing is compiled until
        # the first call. dynamic=False compiles for the exact shapes seen,
        # and a new shape compiles again, rather than switching to kernels
        # generic in the batch size.
        self.mode = mode
        # Compiled code is cached per Python function, guarded on the objects
        # it touched (this net's optimizer, for one), and after 8 variants
        # Dynamo gives up and silently runs the function eagerly. Each net
        # therefore starts from empty caches, as in a fresh process: the
        # on-disk Inductor cache is kept, and a net made earlier would simply
        # compile again on its next call.
        torch.compiler.reset()
        self.compiled_step = torch.compile(self.train_step, mode=mode, dynamic=False)
        self.first_call_s = None
        self.cache = {}

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
        return self.call_compiled(*self.prepare(x, y)).item()

    def train(self, x, y, steps):
        """Run `steps` steps; the losses stay on the device until the end."""
        x, y = self.prepare(x, y)
        losses = torch.stack([self.call_compiled(x, y) for _ in range(steps)])
        return losses.cpu().numpy()

    def params(self):
        w1 = self.linear1.weight.detach().cpu().numpy().T.copy()
        w2 = self.linear2.weight.detach().cpu().numpy().T.copy()
        return w1, w2

    def info(self):
        # "compiled": Dynamo captured at least one graph on the first call
        # (torch's own counter, read in call_compiled); None before it.
        compiled = None if self.first_call_s is None else self.cache.get("graphs", 0) > 0
        return {"compile_mode": self.mode, "first_call_s": self.first_call_s, **self.cache, "compiled": compiled}

    def call_compiled(self, x, y):
        if self.first_call_s is not None:
            return self.compiled_step(x, y)
        # The first call compiles. A failure here (no C++ compiler, say) is
        # reported as such rather than hidden by running eagerly instead.
        counters = torch._dynamo.utils.counters
        before = {name: counters["inductor"][name] for name in ("fxgraph_cache_hit", "fxgraph_cache_miss")}
        graphs = counters["stats"]["unique_graphs"]
        start = time.perf_counter()
        try:
            loss = self.compiled_step(x, y)
            if self.device.type == "cuda":
                torch.cuda.synchronize(self.device)
        except Exception as error:
            summary = str(error).strip().splitlines()[0] if str(error).strip() else ""
            raise FrameworkBroken(f"torch.compile failed: {type(error).__name__}: {summary}") from error
        self.first_call_s = time.perf_counter() - start
        # Inductor keeps compiled graphs on disk between runs; a hit means
        # the first step paid for tracing but not for generating C++ again.
        self.cache = {
            "graphs": counters["stats"]["unique_graphs"] - graphs,
            "inductor_cache_hits": counters["inductor"]["fxgraph_cache_hit"] - before["fxgraph_cache_hit"],
            "inductor_cache_misses": counters["inductor"]["fxgraph_cache_miss"] - before["fxgraph_cache_miss"],
        }
        if self.cache["graphs"] == 0:
            raise FrameworkBroken("torch.compile captured no graph: the step ran eagerly")
        return loss

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
