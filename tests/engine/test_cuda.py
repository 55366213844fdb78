"""On a CUDA GPU: the memory model's micro-batch fits for real, a real out-of-memory error is
recovered from, and accumulation matches the whole batch in bf16. Skipped without a GPU."""

import pytest
import torch

from arcsolver.config import OptimConfig
from arcsolver.engine.distributed import Dist
from arcsolver.engine.ema import EMA
from arcsolver.engine.memory import gpu_budget
from arcsolver.engine.memory_model import measure_step_memory
from arcsolver.engine.optim import build_optimizer
from arcsolver.engine.step import Stepper
from arcsolver.model.config import TRMConfig
from arcsolver.model.trm import TRM

pytestmark = [pytest.mark.cuda, pytest.mark.skipif(not torch.cuda.is_available(), reason="needs a CUDA GPU")]

DEVICE = torch.device("cuda", 0)
CONFIG = TRMConfig(hidden_size=256, n_heads=4, canvas=30, n_supervision=4)


def setup(micro, seed=0):
    torch.manual_seed(seed)
    model = TRM(CONFIG, n_puzzle_ids=65).to(DEVICE).train()
    optim = OptimConfig(global_batch_size=64, warmup_steps=0)
    opt = build_optimizer(model, optim.optimizer, optim.lr, optim.betas, optim.weight_decay)
    messages = []
    stepper = Stepper(model, model, opt, EMA(model, 0.99), optim, Dist(), torch.bfloat16, micro, messages.append)
    return model, stepper, messages


def batch(size=64):
    g = torch.Generator().manual_seed(1)
    cells = torch.randint(2, 12, (size, 30, 30), generator=g)
    return {
        "inputs": cells.to(DEVICE),
        "labels": cells.flip(-1).to(DEVICE),
        "puzzle_ids": torch.randint(1, 65, (size,), generator=g).to(DEVICE),
    }


@pytest.fixture(autouse=True)
def whole_card():
    yield
    torch.cuda.set_per_process_memory_fraction(1.0, DEVICE)
    torch.cuda.empty_cache()


def test_accumulated_bf16_step_matches_the_whole_batch():
    whole, s_whole, _ = setup(None)
    split, s_split, _ = setup(16)
    before = {n: p.detach().clone() for n, p in whole.named_parameters()}
    b = batch()
    s_whole.step(whole.initial_carry(b), b, 1.0)
    s_split.step(split.initial_carry(b), b, 1.0)
    # bf16 sums in another order: compare the updates as vectors (Adam-atan2's first step is
    # sign-like, so a near-zero gradient may flip one element's sign).
    for (name, a), (_, c) in zip(whole.named_parameters(), split.named_parameters()):
        update = a.detach() - before[name]
        if update.norm() > 0:
            assert (a - c).norm() <= 0.05 * update.norm(), name


def test_the_chosen_micro_batch_runs_inside_its_budget():
    model, stepper, _ = setup(None)
    memory = measure_step_memory(model, torch.bfloat16)
    # A budget of room for ~12 samples: the pick must run without exceeding it.
    budget = memory.fixed + memory.carry_per_sample * 64 + 12.5 * memory.per_sample
    micro = memory.micro_batch(budget, 64)
    assert 8 <= micro <= 12
    stepper.micro_batch = micro
    b = batch()
    torch.cuda.reset_peak_memory_stats(DEVICE)
    stepper.step(model.initial_carry(b), b, 1.0)
    assert torch.cuda.max_memory_allocated(DEVICE) <= budget
    assert gpu_budget(DEVICE) > 0


def test_a_real_out_of_memory_error_halves_the_micro_batch():
    model, stepper, messages = setup(None)
    memory = measure_step_memory(model, torch.bfloat16)
    b = batch()
    carry = model.initial_carry(b)
    torch.cuda.synchronize(DEVICE)
    # Leave room for about 20 samples of the 64: the whole batch fails, 16 fits.
    cap = memory.fixed + memory.carry_per_sample * 64 + 20 * memory.per_sample
    torch.cuda.empty_cache()
    torch.cuda.set_per_process_memory_fraction(cap / torch.cuda.get_device_properties(DEVICE).total_memory, DEVICE)
    carry, loss, _, _ = stepper.step(carry, b, 1.0)
    assert stepper.micro_batch <= 32 and messages and "out of memory at micro-batch 64" in messages[0]
    assert torch.isfinite(loss)
