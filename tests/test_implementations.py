"""The implementations' interface, determinism, devices and styles."""

import subprocess
import sys

import numpy as np
import pytest

from sidebyside import implementations
from sidebyside.implementations.two_layer.problem import DeviceUnavailable, Problem, make_data
from tests.conftest import (KERAS_REPEAT, ROOT, VariantCheck, in_process_names, keras_names, keras_runs, oracle_run,
                            skip_if_missing, train)

SHORT = 60  # steps: enough to leave the first few, quick enough to repeat


@pytest.mark.parametrize("name", in_process_names())
def test_same_thread_count_gives_bit_identical_losses(name):
    skip_if_missing(name)
    first, _ = train(name, "float32", SHORT)
    second, _ = train(name, "float32", SHORT)
    assert np.array_equal(first, second)


@pytest.mark.parametrize("name", keras_names())
def test_keras_is_deterministic(name):
    """Two runs in one process of its backend (the process test_agreement's Keras check trains in too)."""
    skip_if_missing(name)
    first, second = keras_runs(name)["repeated"]
    assert len(first) == KERAS_REPEAT and first == second


@pytest.mark.parametrize("name", in_process_names())
def test_interface(name):
    """prepare, step on numpy and prepared data, train, params, on the CPU."""
    skip_if_missing(name)
    problem = Problem(N=8, D_in=20, H=6, D_out=3, learning_rate=1e-3)
    x, y, w1, w2 = make_data(problem)
    on_numpy = implementations.create(name, w1, w2, problem.learning_rate, device="cpu", dtype="float32")
    on_prepared = implementations.create(name, w1, w2, problem.learning_rate, device="cpu", dtype="float32")
    try:
        check = VariantCheck(name)
        prepared = on_prepared.prepare(x, y)
        assert on_numpy.step(x, y) == on_prepared.step(*prepared)
        assert isinstance(on_numpy.step(x, y), float)
        losses = on_numpy.train(x, y, 3)
        assert isinstance(losses, np.ndarray) and losses.shape == (3,)
        w1_now, w2_now = on_numpy.params()
        assert isinstance(w1_now, np.ndarray) and w1_now.shape == (20, 6) and w2_now.shape == (6, 3)
        assert not np.array_equal(w1_now, w1), "training moved the weights"
        assert np.array_equal(make_data(problem)[2], w1), "the caller's arrays were not written to"
        check.verify(on_prepared, *prepared)
    finally:
        for net in (on_numpy, on_prepared):
            if hasattr(net, "close"):
                net.close()


@pytest.mark.parametrize("name", in_process_names())
def test_cuda_without_gpu_is_a_clear_error(name):
    """The adapter of the framework it computes with says why, before any net is built (the worker asks it)."""
    skip_if_missing(name)
    from sidebyside.frameworks import compute_framework, cuda_available, device

    spec = implementations.spec(name)
    if cuda_available(compute_framework(spec)):
        pytest.skip("a CUDA device is present")
    with pytest.raises(DeviceUnavailable):
        device(compute_framework(spec), "cuda")


def test_torch_nn_sequential_and_module_styles_agree():
    skip_if_missing("torch_nn")
    sequential, (w1_s, w2_s) = train("torch_nn", "float64", SHORT, style="sequential")
    module, (w1_m, w2_m) = train("torch_nn", "float64", SHORT, style="module")
    assert np.array_equal(sequential, module)
    assert np.array_equal(w1_s, w1_m) and np.array_equal(w2_s, w2_m)


def test_torch_nn_stores_weights_transposed():
    skip_if_missing("torch_nn")
    x, y, w1, w2 = make_data(Problem(N=4, D_in=5, H=3, D_out=2))
    net = implementations.create("torch_nn", w1, w2, 1e-6)
    assert tuple(net.linear1.weight.shape) == (3, 5)
    assert np.array_equal(net.params()[0], w1)


@pytest.mark.parametrize("name", ["numpy_manual", "torch_autograd"])
def test_runs_on_its_own_like_the_tutorial(name):
    skip_if_missing(name)
    result = subprocess.run([sys.executable, "-m", f"sidebyside.implementations.two_layer.{name}"], capture_output=True,
                            text=True, cwd=ROOT, timeout=300, check=True)
    lines = result.stdout.split("\n")
    steps = [int(line.split()[0]) for line in lines if line.strip()]
    assert steps == [99, 199, 299, 399, 499]
    assert float(lines[-2].split()[1]) < 1e-3


TUNED = [name for name in implementations.names() if implementations.spec(name).tuned_from]


@pytest.mark.parametrize("name", [name for name in TUNED if implementations.spec(name).framework != "numpy"])
def test_tuned_on_cuda_where_present(name):
    """The GPU paths of the tuned variants (torch_tuned's CUDA graph) against the oracle, where a GPU is."""
    skip_if_missing(name)
    from sidebyside.frameworks import cuda_available

    if not cuda_available(implementations.spec(name).framework):
        pytest.skip("n/a: no CUDA device")
    losses, _ = train(name, "float64", 20, device="cuda")
    reference, _, _ = oracle_run(steps=20)
    assert np.max(np.abs(losses - reference) / reference) < 1e-8


def test_torch_tuned_allocates_nothing_in_the_step():
    """The step writes into the buffers made for the first batch: the same storage, step after step."""
    skip_if_missing("torch_tuned")
    x, y, w1, w2 = make_data(Problem(N=8, D_in=20, H=6, D_out=3))
    net = implementations.create("torch_tuned", w1, w2, 1e-3)
    x, y = net.prepare(x, y)
    net.step(x, y)
    names = ("w1_t", "w2_t", "h_relu_t", "error_t", "grad_h_t", "loss")
    before = {name: getattr(net, name).data_ptr() for name in names}
    losses = net.train(x, y, 3)
    net.step(x, y)
    assert {name: getattr(net, name).data_ptr() for name in names} == before
    assert losses.shape == (3,) and net.info() == {"compiled": False, "cuda_graph": False}


@pytest.mark.parametrize("threads, N, blocks", [(2, 64, 2), (1, 64, 1), (2, 300, 1)])
def test_torch_tuned_splits_hidden_units_per_thread(threads, N, blocks):
    """One block of hidden units per thread for small batches, one block above SPLIT_MAX_BATCH;
    either way the float64 losses are the oracle's, also for an x that `prepare` never saw."""
    skip_if_missing("torch_tuned")
    import torch

    from sidebyside.implementations.two_layer import torch_tuned
    from tests import oracle

    assert N <= torch_tuned.SPLIT_MAX_BATCH or blocks == 1
    problem = Problem(N=N, D_in=50, H=10, D_out=3, dtype="float64")
    x, y, w1, w2 = make_data(problem)
    saved = torch.get_num_threads()
    torch.set_num_threads(threads)
    try:
        net = implementations.create("torch_tuned", w1, w2, problem.learning_rate, dtype="float64")
        losses = net.train(x, y, 10)
        assert net.w1_blocks.shape == (blocks, 10 // blocks, 50)
        unseen = torch.tensor(x)  # not the tensor prepare returned: the step copies any x it is given
        steps = [net.step(unseen, torch.tensor(y)) for _ in range(3)]
    finally:
        torch.set_num_threads(saved)
    reference, _, _ = oracle.train(x, y, w1, w2, problem.learning_rate, 13)
    assert np.max(np.abs(np.concatenate([losses, steps]) - reference) / reference) < 1e-12


def test_numpy_tuned_allocates_nothing():
    """The step writes into buffers made once, xᵀ's among them; a new x each step, through `step` or
    straight into `train_step`, still gives the oracle's float64 losses."""
    skip_if_missing("numpy_tuned")
    from tests import oracle

    problem = Problem(N=16, D_in=30, H=8, D_out=3, dtype="float64")
    x, y, w1, w2 = make_data(problem)
    net = implementations.create("numpy_tuned", w1, w2, problem.learning_rate, dtype="float64")
    losses = list(net.train(x, y, 4))
    names = ("w1_t", "w2_t", "update_w1_t", "update_w2_t", "x_t", "h_t", "h_relu_t", "y_pred_t", "grad_h_t", "passes")
    before = {name: getattr(net, name).ctypes.data for name in names}
    prepared_x, prepared_y = net.prepare(x, y)
    losses += [net.step(prepared_x, prepared_y) for _ in range(3)]
    losses += [float(net.train_step(x.copy(), prepared_y)) for _ in range(3)]
    losses += [net.step(x.copy(), y) for _ in range(3)]
    assert {name: getattr(net, name).ctypes.data for name in names} == before
    reference, _, _ = oracle.train(x, y, w1, w2, problem.learning_rate, len(losses))
    assert np.max(np.abs(np.array(losses) - reference) / reference) < 1e-12


def test_jax_tuned_gives_the_oracle_losses_step_by_step_and_in_its_loop():
    """x transposed inside the compiled step: a new x, step by step and in the compiled loop, still gives
    the oracle's float64 losses."""
    skip_if_missing("jax_tuned")
    from tests import oracle

    problem = Problem(N=16, D_in=30, H=8, D_out=3, dtype="float64")
    x, y, w1, w2 = make_data(problem)
    net = implementations.create("jax_tuned", w1, w2, problem.learning_rate, dtype="float64")
    losses = list(net.train(x, y, 4))
    prepared_x, prepared_y = net.prepare(x, y)
    losses += [net.step(prepared_x, prepared_y) for _ in range(3)]
    unseen, _ = net.prepare(x.copy(), y)
    losses += [np.asarray(net.dispatch_step(unseen, prepared_y)).item() for _ in range(3)]
    losses += list(net.train(x.copy(), y, 3))
    reference, _, _ = oracle.train(x, y, w1, w2, problem.learning_rate, len(losses))
    assert np.max(np.abs(np.array(losses) - reference) / reference) < 1e-12


def test_jax_tuned_donates_its_weights():
    """Donation is real on this backend: the weights passed in are deleted, not copied."""
    skip_if_missing("jax_tuned")
    x, y, w1, w2 = make_data(Problem(N=8, D_in=20, H=6, D_out=3))
    net = implementations.create("jax_tuned", w1, w2, 1e-3)
    x, y = net.prepare(x, y)
    old = net.w1t
    net.step(x, y)
    assert old.is_deleted() and not net.w1t.is_deleted()
