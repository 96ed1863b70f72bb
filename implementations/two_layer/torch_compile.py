"""PyTorch nn and optim, with the whole training step under torch.compile.

This is the torch_nn step, unchanged (its Net is inherited, not re-typed),
wrapped in `torch.compile`. On the
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

import torch

from sidebyside.implementations import COMPILE_FIRST, FrameworkBroken, TORCH_COMPILER
from sidebyside.implementations.two_layer import torch_nn
from sidebyside.implementations.two_layer.problem import demo

# This file's registry entries: implementations/__init__.py reads them from the source, without importing it.
IMPLEMENTATIONS = [
    {"name": "torch_compile", "order": 90, "framework": "torch", "requires": ("torch",), "extra": "torch",
     "slow_start": True, "preload": TORCH_COMPILER, "first_step": COMPILE_FIRST, "promise": {"compiled": True}},
]


class Net(torch_nn.Net):
    """torch_nn's Net (its model, loss, optimizer and step, inherited), with the step compiled."""

    def __init__(self, w1, w2, learning_rate, device="cpu", dtype="float32", style="sequential", mode="default"):
        super().__init__(w1, w2, learning_rate, device, dtype, style)
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
        self.compiled_step = torch.compile(super().train_step, mode=mode, dynamic=False)
        self.first_call_s = None
        self.cache = {}

    def train_step(self, x, y):
        """torch_nn's step, compiled: torch_nn's step() and train() call this one."""
        return self.call_compiled(x, y)

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


if __name__ == "__main__":
    demo(Net)
