"""Adam-atan2 step by step against its formula, the warm-up schedule, and Muon beside it."""

import math

import pytest
import torch
from torch import nn

from arcsolver.engine.optim import AdamAtan2, build_optimizer, run_progress, schedule_factor, warmup_factor

BETAS = (0.9, 0.95)


def step(opt, p, grad, lr):
    p.grad = grad.clone()
    for group in opt.param_groups:
        group["lr"] = lr  # as the training loop sets it, warm-up included
    opt.step()


def test_the_first_step_is_the_decay_and_a_bias_corrected_sign_of_the_gradient():
    p0 = torch.tensor([0.5, -1.0, 2.0, 0.3, -0.7], dtype=torch.float64)
    g = torch.tensor([0.2, -3.0, 1e-3, 0.0, -1e-6], dtype=torch.float64)
    lr, wd = 1e-2, 0.1
    p = p0.clone().requires_grad_()
    opt = AdamAtan2([p], lr=lr, betas=BETAS, weight_decay=wd)
    step(opt, p, g, lr)
    # m = (1 - b1) g and v / (1 - b2) = g^2: the step is lr / (1 - b1) * atan2((1 - b1) g, |g|), the
    # same for every nonzero g whatever its size, and nothing but the decay where g = 0.
    beta1 = BETAS[0]
    expected = p0 * (1 - lr * wd) - lr / (1 - beta1) * math.atan(1 - beta1) * torch.sign(g)
    torch.testing.assert_close(p.detach(), expected, rtol=1e-12, atol=1e-15)
    state = opt.state[p]
    assert state["step"].item() == 1
    torch.testing.assert_close(state["exp_avg"], (1 - beta1) * g)
    torch.testing.assert_close(state["exp_avg_sq"], (1 - BETAS[1]) * g * g)


def test_the_second_step_follows_the_reference_kernel_by_hand():
    p0 = [0.5, -1.0, 2.0, 0.3]
    g1, g2 = [0.2, -3.0, 1e-3, 0.0], [-0.1, -2.0, 5.0, 0.4]
    lr1, lr2, wd = 1e-2, 3e-2, 0.1  # a new lr at step 2 (warm-up): the decay uses the step's own
    p = torch.tensor(p0, dtype=torch.float64, requires_grad=True)
    opt = AdamAtan2([p], lr=lr1, betas=BETAS, weight_decay=wd)
    step(opt, p, torch.tensor(g1, dtype=torch.float64), lr1)
    step(opt, p, torch.tensor(g2, dtype=torch.float64), lr2)

    b1, b2 = BETAS
    expected = []
    for x, a, b in zip(p0, g1, g2):
        m, v = (1 - b1) * a, (1 - b2) * a * a
        x = x * (1 - lr1 * wd) - lr1 / (1 - b1) * math.atan2(m, math.sqrt(v / (1 - b2)))
        m, v = b1 * m + (1 - b1) * b, b2 * v + (1 - b2) * b * b
        x = x * (1 - lr2 * wd) - lr2 / (1 - b1**2) * math.atan2(m, math.sqrt(v / (1 - b2**2)))
        expected.append(x)
    torch.testing.assert_close(p.detach(), torch.tensor(expected, dtype=torch.float64), rtol=1e-12, atol=1e-15)


def test_the_steps_do_not_depend_on_the_gradients_scale():
    torch.manual_seed(0)
    grads = [torch.randn(6, dtype=torch.float64) for _ in range(3)]
    finals = []
    for scale in (1.0, 1e-4, 1e4):  # no epsilon: atan2 sees only the ratio of m to sqrt(v)
        p = torch.ones(6, dtype=torch.float64, requires_grad=True)
        opt = AdamAtan2([p], lr=1e-2, betas=BETAS, weight_decay=0.0)
        for g in grads:
            step(opt, p, g * scale, 1e-2)
        finals.append(p.detach())
    torch.testing.assert_close(finals[0], finals[1])
    torch.testing.assert_close(finals[0], finals[2])


def test_build_optimizer_gives_the_reference_rule_with_the_recipes_settings():
    opt = build_optimizer(nn.Linear(2, 2), "adam_atan2", 3e-4, [0.9, 0.95], 0.1)
    assert isinstance(opt, AdamAtan2)
    group = opt.param_groups[0]
    assert (group["lr"], group["betas"], group["weight_decay"], group["a"], group["b"]) == (
        3e-4,
        (0.9, 0.95),
        0.1,
        1.0,
        1.0,
    )
    assert isinstance(build_optimizer(nn.Linear(2, 2), "adamw", 3e-4, [0.9, 0.95], 0.1), torch.optim.AdamW)


def test_warmup_rises_linearly_to_one_and_stays():
    # step counts the updates already taken: the first update runs at 1/warmup_steps (TRM's too).
    assert [warmup_factor(s, 4) for s in range(7)] == [0.25, 0.5, 0.75, 1.0, 1.0, 1.0, 1.0]
    assert warmup_factor(99, 100) == 1.0 and warmup_factor(10**6, 100) == 1.0
    assert warmup_factor(0, 1) == 1.0
    assert warmup_factor(0, 0) == 1.0 and warmup_factor(5, 0) == 1.0  # no warm-up: the full rate at once


def test_the_cooldown_falls_linearly_to_zero_over_the_last_fraction_of_the_run():
    assert schedule_factor(10, 4, 0.0, 0.9) == 1.0  # no cooldown: the paper's warm-up then constant
    assert [schedule_factor(10, 4, 0.5, p) for p in (0.0, 0.5, 0.75, 1.0, 1.5)] == [1.0, 1.0, 0.5, 0.0, 0.0]
    assert schedule_factor(0, 4, 1.0, 0.5) == 0.25 * 0.5  # inside the warm-up both apply
    assert schedule_factor(3, 0, 1.0, 0.25) == 0.75  # cooldown 1: from the first step


def test_a_runs_progress_is_by_the_bound_it_is_nearest():
    assert run_progress(5, 10) == 0.5
    assert run_progress(5, 10, (3e12, 4e12), (1.0, 100.0)) == 0.75  # FLOPs nearer their budget than steps
    assert run_progress(5, 10, (3e12, None), (90.0, 100.0)) == 0.9  # an unset bound counts for nothing


# --- Muon (optim.optimizer = "muon") -----------------------------------------------------


def tiny_trm(**model):
    from arcsolver.model import TRM, TRMConfig

    torch.manual_seed(0)
    cfg = TRMConfig(hidden_size=32, n_heads=2, n_latent_steps=1, n_recursions=1, canvas=3, puzzle_emb_len=2, **model)
    return TRM(cfg, 4)


def fake_gradients(model, seed):
    g = torch.Generator().manual_seed(seed)
    for p in model.parameters():
        p.grad = torch.randn(p.shape, generator=g)


def test_muon_takes_the_blocks_matrices_and_adam_atan2_the_rest():
    model = tiny_trm(mlp_conv="1d")
    opt = build_optimizer(model, "muon", 1e-3, BETAS, 0.1)
    muon, adam = opt.parts
    names = {id(p): n for n, p in model.named_parameters()}
    in_muon = {names[id(p)] for g in muon.param_groups for p in g["params"]}
    in_adam = {names[id(p)] for g in adam.param_groups for p in g["params"]}
    assert isinstance(muon, torch.optim.Muon) and isinstance(adam, AdamAtan2)
    assert in_muon == {
        f"blocks.{i}.{w}.weight" for i in range(2) for w in ("attn.qkv", "attn.out", "mlp.gate_up", "mlp.down")
    }
    assert in_adam == set(names.values()) - in_muon
    assert {"embed_tokens.weight", "lm_head.weight", "halt_head.weight", "blocks.0.mlp.conv.weight"} <= in_adam


def test_muon_steps_as_torchs_muon_and_adam_atan2_side_by_side():
    model, twin = tiny_trm(), tiny_trm()
    opt = build_optimizer(model, "muon", 1e-2, BETAS, 0.1)
    matrices = [p for n, p in twin.named_parameters() if n.startswith("blocks.")]
    rest = [p for n, p in twin.named_parameters() if not n.startswith("blocks.")]
    separate = [
        torch.optim.Muon(matrices, lr=1e-2, weight_decay=0.1, adjust_lr_fn="match_rms_adamw"),
        AdamAtan2(rest, lr=1e-2, betas=BETAS, weight_decay=0.1),
    ]
    for k in range(3):
        fake_gradients(model, k)
        fake_gradients(twin, k)
        opt.step()
        for o in separate:
            o.step()
    for (name, p), q in zip(model.named_parameters(), twin.parameters()):
        assert torch.equal(p, q), name
    assert not torch.equal(model.blocks[0].attn.qkv.weight, tiny_trm().blocks[0].attn.qkv.weight)


def test_muon_state_survives_a_checkpoint(tmp_path):
    """Saved as the other optimisers are (tensors to safetensors, the rest to JSON), loaded into a
    fresh model's optimiser, the next steps are those of the uninterrupted one."""
    import json

    from safetensors.torch import load_file, save_file

    from arcsolver.engine.checkpoint import optimizer_state
    from arcsolver.engine.snapshot import _optimizer_state_dict

    model = tiny_trm()
    opt = build_optimizer(model, "muon", 1e-2, BETAS, 0.1)
    for k in range(2):
        fake_gradients(model, k)
        opt.step()
    tensors, meta = optimizer_state(opt)
    assert any(key.endswith("momentum_buffer") for key in tensors) and any(key.endswith("exp_avg") for key in tensors)
    save_file(tensors, tmp_path / "optimizer.safetensors")
    (tmp_path / "state.json").write_text(json.dumps(meta))

    resumed = tiny_trm()
    resumed.load_state_dict(model.state_dict())
    opt2 = build_optimizer(resumed, "muon", 1e-2, BETAS, 0.1)
    saved = json.loads((tmp_path / "state.json").read_text())
    opt2.load_state_dict(
        _optimizer_state_dict(
            opt2, load_file(tmp_path / "optimizer.safetensors"), saved, tmp_path / "optimizer.safetensors"
        )
    )
    for k in (2, 3):
        fake_gradients(model, k)
        fake_gradients(resumed, k)
        opt.step()
        opt2.step()
    for (name, p), q in zip(model.named_parameters(), resumed.parameters()):
        assert torch.equal(p, q), name


def test_muon_is_refused_in_one_line_on_a_torch_without_it(monkeypatch):
    import pydantic

    from arcsolver.config import OptimConfig

    assert OptimConfig(optimizer="muon").optimizer == "muon"
    monkeypatch.delattr(torch.optim, "Muon")
    with pytest.raises(
        pydantic.ValidationError, match=r"muon needs torch.optim.Muon, part of torch since 2.9.*adam_atan2"
    ):
        OptimConfig(optimizer="muon")


def test_a_muon_run_resumes_to_the_weights_of_an_uninterrupted_one(tmp_path):
    import io

    from helpers import tiny_config
    from rich.console import Console

    from arcsolver.train.loop import pretrain

    def run(name, steps, resume=False):
        cfg = tiny_config(f"run.steps={steps}", "optim.optimizer='muon'", "run.dtype='float32'")
        pretrain(cfg, tmp_path / name, resume=resume, console=Console(file=io.StringIO()))
        latest = sorted((tmp_path / name / "checkpoints").glob("step_*"))[-1]
        return load_file(latest / "model.safetensors")

    from safetensors.torch import load_file

    whole = run("whole", 4)
    run("stopped", 2)
    resumed = run("stopped", 4, resume=True)
    assert whole.keys() == resumed.keys()
    for key in whole:
        assert torch.equal(whole[key], resumed[key]), key
