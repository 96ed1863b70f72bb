"""PyTorch tensors, gradients by hand, written for speed: no new tensor in the step.

The maths, data and steps are torch_manual's. torch_manual spells each line
as an expression, and every expression makes a new tensor (thirteen in a
step, counting the mask and the loss, among them the 1000×100 gradient of
w1 and its scaled copy), each one a trip through torch's caching allocator
and a write into memory that is cold in the cache. Here every output is
allocated once and each operation writes into it (`mm(out=)`,
`dot(out=)`, `relu_`), and the update is fused into the product
that makes the gradient: `w.addmm_(a, b, alpha=-2·lr)` is one BLAS call,
w ← w − 2·lr·(a·b), where torch_manual makes the gradient, then
lr × gradient, then subtracts. The factor 2 of the squared error's
derivative moves into alpha with the learning rate (scalars commute with
the products: the same maths, rounded in another place), so 2·error is
never made either. The error y_pred − y comes out of one `addmm` (beta=-1
subtracts y), and the loss is the dot product of the error with itself,
written into a preallocated scalar (in `train`, straight into its slot of
the preallocated losses).

Every matrix is kept transposed: w1 as H×D_in (`w1_t`), w2 as D_out×H
(`w2_t`), and the hidden layer and the error with the batch as their rows'
length (H×N, D_out×N). For the two large products, the forward w1_t·xᵀ
and the update w1_t += alpha·grad_hᵀ·x both read and write w1_t row by
row, with its long side (D_in) as the rows' length, which ran faster than
x·w1 and xᵀ·grad_h. For the small ones, MKL is slow when the output's rows
are only D_out = 10 long: y_pred = h_relu·w2 (64×10) is made as its
transpose, w2_t·h_reluᵀ (10×64), and the update of w2 likewise. x arrives
as every implementation receives it, N×D_in and row-major; the forward
reads it as xᵀ through a view (BLAS takes a transposed operand as it is:
no copy), and the update reads x as given. A copy of xᵀ made in the step
would cost a training loop, which gets a new batch every step, that copy
every step; the view costs nothing. docs/tuned-variants.md keeps the
figures behind these choices, with their dates.

ReLU is applied in place (`relu_`): the hidden layer before the ReLU is not
needed again, since relu(h) > 0 exactly where h > 0. Its backward is one op,
`threshold_backward` (the kernel autograd itself runs for ReLU): the
gradient passes where relu(h) > 0, where torch_manual makes a mask and
fills (two ops). It differs from torch_manual's `grad_h[h < 0] = 0` only
where h is exactly 0, where ReLU has no derivative and either choice is a
subgradient. Eight operations in all, where torch_manual runs sixteen.

With more than one thread and a small batch, the hidden units are split
into one block per thread, and the two large products run as batched
products of those blocks (`bmm`, `baddbmm_`): torch gives each block of the
batch to one thread, and each thread computes its block's rows of hᵀ and
updates the same rows of w1_t with one-thread BLAS, so each thread's part of
w1 stays in its own core's cache from step to step. A single product with
two threads is split by BLAS itself, which ran slower per thread than one
thread alone. The maths is the same: every hidden unit's row of the product
is the same dot products. For large batches the split was slower than one
product, so batches of more than SPLIT_MAX_BATCH rows keep one product.

Ops run under `torch.inference_mode()`, which tells the dispatcher that no
autograd bookkeeping is needed at all (no version counters, no autograd
dispatch); no tensor here requires grad, so nothing is lost.

On a GPU the step is also recorded once as a CUDA graph and replayed: one
launch per step instead of eight. It is recorded after one warm-up step on
a side stream whose weight changes are undone, for the input tensors it is
given, and recorded again if a later call passes other ones;
`cuda_graph=False` runs the GPU step op by op, like the CPU. That path is
guarded to CUDA devices and was written on a machine without a GPU, so it
has not run yet: its test (test_tuned_on_cuda_where_present) is skipped
where no GPU is present. The split into blocks is for CPU threads: a GPU
keeps one block.
"""

import math

import numpy as np
import torch

from sidebyside.implementations.two_layer.problem import demo

# This file's registry entries: implementations/__init__.py reads them from the source, without importing it.
IMPLEMENTATIONS = [
    {"name": "torch_tuned", "order": 170, "framework": "torch", "requires": ("torch",), "extra": "torch",
     "tuned_from": "torch_manual",
     "tuning": "outputs are preallocated (mm(out=)), the weights are updated by fused in-place "
               "addmm_ with alpha = -2·learning rate, every matrix is kept transposed (the two large "
               "products read w1 along D_in and x through a transposed view, the small ones write D_out×N), the two large products are split "
               "into one block of hidden units per thread (bmm, baddbmm_) for batches of up to 256, ReLU runs "
               "in place and its backward is one threshold_backward, ops run under inference_mode, "
               "and on a GPU the step is replayed as one CUDA graph",
     "promise": {"compiled": False}},  # as its idiomatic sibling's
]

SPLIT_MAX_BATCH = 256  # the largest batch N whose hidden units are split into one block per thread


class Net:
    def __init__(self, w1, w2, learning_rate, device="cpu", dtype="float32", cuda_graph=True):
        self.device = torch.device(device)
        self.dtype = getattr(torch, dtype)
        self.learning_rate = learning_rate
        # Copies of the shared initial weights, moved to the device once.
        # Both transposed (H×D_in and D_out×H), copied once into that layout.
        self.w1_t = torch.tensor(np.asarray(w1).T, dtype=self.dtype, device=self.device).contiguous()
        self.w2_t = torch.tensor(np.asarray(w2).T, dtype=self.dtype, device=self.device).contiguous()
        # The factor 2 of d(error²)/d(error) and the step size, as one alpha.
        self.alpha = -2.0 * learning_rate
        self.use_graph = cuda_graph and self.device.type == "cuda"
        self.graph, self.graph_inputs = None, None
        self.buffers_for = None

    def prepare(self, x, y):
        """Tensors of our dtype on our device; no copy if they already are."""
        return (
            torch.as_tensor(x, dtype=self.dtype, device=self.device),
            torch.as_tensor(y, dtype=self.dtype, device=self.device),
        )

    def allocate(self, x, y):
        """The step's outputs, made once per batch shape."""
        if self.buffers_for == (x.shape, y.shape):
            return
        N, H, D_out = x.shape[0], self.w1_t.shape[0], self.w2_t.shape[0]
        options = dict(dtype=self.dtype, device=self.device)
        # The hidden layer and the error transposed (H×N, D_out×N), like the
        # weights; the `.t()` and `.view()` views are made once.
        self.h_relu_t = torch.empty((H, N), **options)  # h, then relu(h) in place
        self.h_relu = self.h_relu_t.t()
        self.w2 = self.w2_t.t()
        self.error_t = torch.empty((D_out, N), **options)
        self.error_t_flat = self.error_t.view(-1)
        self.grad_h_t = torch.empty((H, N), **options)
        self.loss = torch.empty((), **options)
        # Blocks of hidden units, one per thread, for the two large products:
        # views of w1_t, hᵀ and grad_hᵀ as blocks×(H/blocks)×…, all three
        # contiguous, so block b is rows b·H/blocks… of each.
        threads = torch.get_num_threads() if self.device.type == "cpu" and N <= SPLIT_MAX_BATCH else 1
        blocks = math.gcd(H, threads)
        self.w1_blocks = self.w1_t.view(blocks, H // blocks, -1)
        self.h_blocks = self.h_relu_t.view(blocks, H // blocks, N)
        self.grad_h_blocks = self.grad_h_t.view(blocks, H // blocks, N)
        self.buffers_for = (x.shape, y.shape)
        self.graph, self.graph_inputs = None, None

    def step(self, x, y):
        """One step of gradient descent; returns the loss before the update.

        `.item()` copies the loss to the host, which waits for the GPU.
        """
        with torch.inference_mode():
            return self.run_step(*self.prepare(x, y)).item()

    def train(self, x, y, steps):
        """Run `steps` steps; the losses stay on the device until the end."""
        with torch.inference_mode():
            x, y = self.prepare(x, y)
            losses = torch.empty(steps, dtype=self.dtype, device=self.device)
            for t in range(steps):
                if self.use_graph:
                    losses[t].copy_(self.run_step(x, y))
                else:
                    self.allocate(x, y)
                    self.train_step(x, y, losses[t])
            return losses.cpu().numpy()

    def params(self):
        return self.w1_t.t().cpu().numpy().copy(), self.w2_t.t().cpu().numpy().copy()

    def info(self):
        # Every operation runs eagerly, one at a time from Python: no graph,
        # no compiler (results.json records this next to the compiled ones).
        # A CUDA graph records the same kernels and replays them: it compiles
        # nothing, and is recorded only where the step has run on a GPU.
        return {"compiled": False, "cuda_graph": self.graph is not None}

    def run_step(self, x, y):
        """The step, replayed from a CUDA graph on a GPU; the loss as a device scalar."""
        self.allocate(x, y)
        if not self.use_graph:
            return self.train_step(x, y)
        if self.graph is None or not all(a is b for a, b in zip(self.graph_inputs, (x, y))):
            self.record_graph(x, y)
        self.graph.replay()
        return self.loss

    def record_graph(self, x, y):
        # A warm-up step on a side stream makes cuBLAS's workspace before the
        # capture; its weight changes are undone, so it is no training step.
        saved = self.w1_t.clone(), self.w2_t.clone()
        side = torch.cuda.Stream(self.device)
        side.wait_stream(torch.cuda.current_stream(self.device))
        with torch.cuda.stream(side):
            self.train_step(x, y)
            self.w1_t.copy_(saved[0])
            self.w2_t.copy_(saved[1])
        torch.cuda.current_stream(self.device).wait_stream(side)
        graph = torch.cuda.CUDAGraph()
        with torch.cuda.graph(graph):  # records the kernels; runs nothing
            self.train_step(x, y)
        # The graph reads x and y where they are: keep them alive with it.
        self.graph, self.graph_inputs = graph, (x, y)

    def train_step(self, x, y, loss=None):
        w2_t = self.w2_t
        h_relu_t, error_t, grad_h_t = self.h_relu_t, self.error_t, self.grad_h_t
        loss = self.loss if loss is None else loss

        # Forward pass: compute predicted y, and at once the error
        # y_pred - y, in one BLAS call: addmm's beta=-1 subtracts y.
        # hᵀ = w1ᵀ·xᵀ, as one product per block of hidden units, each on its
        # own thread; xᵀ is this step's batch read transposed (a view: BLAS
        # takes a transposed operand as it is, no copy), expanded (a view
        # too) to one per block.
        x_t = x.t()
        blocks = self.w1_blocks.shape[0]
        torch.bmm(self.w1_blocks, x_t.expand(blocks, *x_t.shape), out=self.h_blocks)
        h_relu_t.relu_()
        # errorᵀ = w2ᵀ·h_reluᵀ - yᵀ: y.t() is a view, BLAS reads it transposed.
        torch.addmm(y.t(), w2_t, h_relu_t, beta=-1, out=error_t)

        # Compute loss: the sum of squared errors over every element, as the
        # dot product of the error with itself. The loss stays on the device.
        torch.dot(self.error_t_flat, self.error_t_flat, out=loss)

        # Backward pass: grad_y_pred = 2 · error; the 2 is in alpha. The
        # input gradient is taken before w2 changes, then w2 is updated by
        # the product that is its gradient: w2ᵀ += alpha · errorᵀ · h_relu.
        torch.mm(self.w2, error_t, out=grad_h_t)
        w2_t.addmm_(error_t, self.h_relu, alpha=self.alpha)
        # ReLU passes the gradient where its output was positive and blocks
        # it elsewhere: autograd's own ReLU kernel, in place.
        torch.ops.aten.threshold_backward.grad_input(grad_h_t, h_relu_t, 0, grad_input=grad_h_t)

        # Update weights: in place, fused into the product, w1ᵀ += alpha · grad_hᵀ · x,
        # each block of w1ᵀ's rows by the thread that made those rows of hᵀ.
        self.w1_blocks.baddbmm_(self.grad_h_blocks, x.expand(blocks, *x.shape), alpha=self.alpha)
        return loss

if __name__ == "__main__":
    demo(Net)
