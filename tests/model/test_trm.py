from types import SimpleNamespace

import pydantic
import pytest
import torch

from arcsolver.data.encoding import EOS, PAD
from arcsolver.engine.optim import AdamAtan2
from arcsolver.errors import ConfigError
from arcsolver.model import TRM, TRMConfig, halting_target, trm_loss


@pytest.fixture(autouse=True)
def one_thread():
    """Models this small run faster on one thread, and do not stall when the CPU is shared."""
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(threads)


def tiny_config(**overrides) -> TRMConfig:
    settings = dict(
        hidden_size=32,
        n_heads=2,
        n_layers=2,
        n_latent_steps=2,
        n_recursions=3,
        n_supervision=4,
        puzzle_emb_len=3,
        canvas=5,
    )
    settings.update(overrides)
    return TRMConfig(**settings)


def random_batch(batch_size=4, canvas=5, seed=0) -> dict[str, torch.Tensor]:
    g = torch.Generator().manual_seed(seed)
    return {
        "inputs": torch.randint(0, 12, (batch_size, canvas, canvas), generator=g),
        "labels": torch.randint(0, 12, (batch_size, canvas, canvas), generator=g),
        "puzzle_ids": torch.randint(1, 6, (batch_size,), generator=g),
    }


def graph_size(tensor: torch.Tensor) -> int:
    """Number of autograd nodes reachable from `tensor`."""
    seen, stack = set(), [tensor.grad_fn]
    while stack:
        node = stack.pop()
        if node is None or node in seen:
            continue
        seen.add(node)
        stack.extend(next_node for next_node, _ in node.next_functions)
    return len(seen)


# --- config --------------------------------------------------------------------------


def test_config_defaults_are_the_papers_arc_settings():
    config = TRMConfig()
    assert (config.hidden_size, config.n_heads, config.n_layers, config.expansion) == (512, 8, 2, 4)
    assert (config.n_latent_steps, config.n_recursions, config.n_supervision) == (4, 3, 16)
    assert (config.puzzle_emb_len, config.canvas, config.vocab_size) == (16, 30, 12)
    assert config.seq_len == 916
    assert (config.halt_exploration_prob, config.halt_loss_weight) == (0.1, 0.5)
    assert config.halt_exploration == "per_step"  # the reference's draw


def test_config_is_validated():
    with pytest.raises(pydantic.ValidationError, match="divisible by n_heads"):
        TRMConfig(hidden_size=100, n_heads=8)
    with pytest.raises(pydantic.ValidationError):
        TRMConfig(positions="learned")
    with pytest.raises(pydantic.ValidationError):
        TRMConfig(n_recursion=3)  # a typo is an error, not a silently ignored key
    with pytest.raises(pydantic.ValidationError, match="rope2d"):
        TRMConfig(hidden_size=12, n_heads=2, positions="rope2d")  # head dim 6
    with pytest.raises(pydantic.ValidationError, match="vocab_size must be 12"):
        TRMConfig(vocab_size=13)


def test_the_table_size_of_saved_settings_is_accepted_and_not_a_setting():
    # Settings saved before the table's size became the model's argument still validate.
    assert TRMConfig.model_validate({"n_puzzle_ids": 900, "canvas": 10}) == TRMConfig(canvas=10)
    assert "n_puzzle_ids" not in TRMConfig.model_fields
    assert TRMConfig.model_validate(TRMConfig().model_dump()).vocab_size == 12  # a saved config loads


def test_paper_sized_network_has_about_seven_million_parameters():
    n_params = sum(p.numel() for p in TRM(TRMConfig(), 1).parameters())
    assert 6_500_000 < n_params < 7_500_000


# --- recursion and gradients -----------------------------------------------------------


def test_only_the_last_recursion_builds_a_graph():
    torch.manual_seed(0)
    model = TRM(tiny_config(n_recursions=3, n_latent_steps=2), 6)
    outputs = []
    model.blocks[-1].register_forward_hook(lambda module, args, out: outputs.append(out))
    batch = random_batch()
    carry, out = model(model.initial_carry(batch), batch)
    per_recursion = model.config.n_latent_steps + 1  # f calls: n for z, one for y
    assert len(outputs) == 3 * per_recursion
    assert all(o.grad_fn is None and not o.requires_grad for o in outputs[: 2 * per_recursion])
    assert all(o.grad_fn is not None for o in outputs[2 * per_recursion :])

    loss, _ = trm_loss(out.logits, out.labels, out.halt_logit, model.config.halt_loss_weight)
    loss.backward()
    assert all(p.grad is not None for p in model.blocks.parameters())
    assert model.embed_tokens.weight.grad is not None and model.halt_head.weight.grad is not None


def test_graph_size_does_not_depend_on_the_number_of_recursions():
    batch = random_batch()
    sizes = []
    for n_recursions in (2, 4):
        torch.manual_seed(0)
        model = TRM(tiny_config(n_recursions=n_recursions), 6)
        _, out = model(model.initial_carry(batch), batch)
        sizes.append(graph_size(trm_loss(out.logits, out.labels, out.halt_logit, model.config.halt_loss_weight)[0]))
    assert sizes[0] == sizes[1]


def test_carried_state_holds_no_graph():
    model = TRM(tiny_config(), 6)
    batch = random_batch()
    carry = model.initial_carry(batch)
    for _ in range(2):
        carry, out = model(carry, batch)
        for state in (carry.y, carry.z):
            assert state.grad_fn is None and not state.requires_grad
        assert out.logits.requires_grad


# --- deep supervision with a carry ----------------------------------------------------


def test_halted_samples_are_replaced_and_the_others_kept():
    torch.manual_seed(0)
    model = TRM(tiny_config(), 6).eval()  # eval: no exploration randomness, halting only at N_sup
    first, second = random_batch(seed=1), random_batch(seed=2)
    carry, _ = model(model.initial_carry(first), first)
    assert not carry.halted.any() and carry.steps.tolist() == [1, 1, 1, 1]

    carry.halted = torch.tensor([True, False, True, False])
    new_carry, out = model(carry, second)
    fresh = torch.tensor([0, 2])
    kept = torch.tensor([1, 3])
    assert new_carry.steps.tolist() == [1, 2, 1, 2]
    assert torch.equal(new_carry.inputs[fresh], second["inputs"][fresh])
    assert torch.equal(new_carry.inputs[kept], first["inputs"][kept])
    assert torch.equal(out.labels[fresh], second["labels"][fresh])
    assert torch.equal(out.labels[kept], first["labels"][kept])
    assert torch.equal(new_carry.puzzle_ids[kept], first["puzzle_ids"][kept])

    # fresh rows start over from the initial state; kept rows continue from their carry
    _, fresh_out = model(model.initial_carry(second), second)
    carry.halted[:] = False
    _, kept_out = model(carry, first)
    assert torch.allclose(out.logits[fresh], fresh_out.logits[fresh], atol=1e-5)
    assert torch.allclose(out.logits[kept], kept_out.logits[kept], atol=1e-5)


def test_eval_mode_runs_exactly_n_supervision_steps():
    model = TRM(tiny_config(n_supervision=5), 6).eval()
    with torch.no_grad():
        model.halt_head.bias.fill_(10.0)  # the model wants to halt at once; eval ignores it
    batch = random_batch()
    carry = model.initial_carry(batch)
    for step in range(1, 6):
        carry, _ = model(carry, batch)
        assert carry.steps.tolist() == [step] * 4
        assert carry.halted.all() == (step == 5)


def test_training_halts_on_a_positive_logit_or_at_n_supervision():
    model = TRM(tiny_config(n_supervision=3, halt_exploration_prob=0.0), 6).train()
    batch = random_batch()
    carry, _ = model(model.initial_carry(batch), batch)
    assert not carry.halted.any()  # halt bias -5: keep going
    carry, _ = model(carry, batch)
    carry, _ = model(carry, batch)
    assert carry.halted.all() and carry.steps.tolist() == [3] * 4
    with torch.no_grad():
        model.halt_head.bias.fill_(10.0)
    carry, _ = model(carry, batch)
    assert carry.halted.all() and carry.steps.tolist() == [1] * 4


def test_exploration_per_sample_sets_a_minimum_number_of_steps():
    torch.manual_seed(0)
    model = TRM(tiny_config(n_supervision=6, halt_exploration_prob=1.0, halt_exploration="per_sample"), 6).train()
    with torch.no_grad():
        model.halt_head.bias.fill_(10.0)
    batch = random_batch(batch_size=16)
    carry, _ = model(model.initial_carry(batch), batch)
    drawn = carry.min_steps.clone()  # drawn when the samples came in
    assert ((drawn >= 2) & (drawn <= 6)).all()
    halted_at = torch.where(carry.halted, carry.steps, 0)
    for _ in range(5):
        carry, _ = model(carry, batch)
        newly = carry.halted & (halted_at == 0)
        halted_at[newly] = carry.steps[newly]
    assert torch.equal(halted_at, drawn)  # each halted as soon as its minimum allowed


def test_exploration_per_step_is_the_references_draw_at_every_step():
    """The reference draws, after each step's forward, a uniform value and a minimum per sample
    (rand, then randint 2..N_sup) and halts a sample only once its step count reaches that
    step's minimum. Replaying those draws from the same seed gives the same halting."""
    n_sup, batch_size, prob = 6, 16, 0.5
    model = TRM(tiny_config(n_supervision=n_sup, halt_exploration_prob=prob), 6).train()
    assert model.config.halt_exploration == "per_step"  # the default
    with torch.no_grad():
        model.halt_head.bias.fill_(10.0)  # every sample wants to halt: only exploration holds it
    batch = random_batch(batch_size=batch_size)
    torch.manual_seed(7)
    carry = model.initial_carry(batch)
    seen = []
    for _ in range(8):
        carry, _ = model(carry, batch)
        seen.append((carry.steps.clone(), carry.halted.clone()))

    torch.manual_seed(7)
    steps = torch.zeros(batch_size, dtype=torch.long)
    halted = torch.ones(batch_size, dtype=torch.bool)
    for got_steps, got_halted in seen:
        steps = torch.where(halted, 0, steps) + 1
        minimum = (torch.rand(batch_size) < prob) * torch.randint(2, n_sup + 1, (batch_size,))
        halted = (steps >= n_sup) | (steps >= minimum)
        assert torch.equal(got_steps, steps) and torch.equal(got_halted, halted)
    assert (torch.stack([s for s, _ in seen]) > 1).any()  # exploration held some samples back


def test_per_step_and_per_sample_exploration_differ_only_in_the_draw():
    """With exploration off both give the same steps; with it on, per_sample keeps one minimum
    per sample while per_step redraws it."""
    batch = random_batch(batch_size=16)
    results = {}
    for mode in ("per_step", "per_sample"):
        for prob in (0.0, 1.0):
            torch.manual_seed(0)
            model = TRM(tiny_config(n_supervision=6, halt_exploration_prob=prob, halt_exploration=mode), 6).train()
            carry = model.initial_carry(batch)
            draws = []
            for _ in range(3):
                carry, out = model(carry, batch)
                draws.append(carry.min_steps.clone())
            results[mode, prob] = (out.logits, carry.steps, draws)
    assert torch.equal(results["per_step", 0.0][0], results["per_sample", 0.0][0])
    assert torch.equal(results["per_step", 0.0][1], results["per_sample", 0.0][1])
    per_sample, per_step = results["per_sample", 1.0][2], results["per_step", 1.0][2]
    assert all(torch.equal(d, per_sample[0]) for d in per_sample)  # halt bias -5: nobody halts
    assert not all(torch.equal(d, per_step[0]) for d in per_step)


def test_predict_matches_n_supervision_eval_steps():
    torch.manual_seed(0)
    model = TRM(tiny_config(n_supervision=3), 6).eval()
    batch = random_batch()
    carry = model.initial_carry(batch)
    for _ in range(3):
        carry, out = model(carry, batch)
    logits, halt_logit = model.predict(batch["inputs"], batch["puzzle_ids"])
    assert logits.shape == (4, 25, 12) and halt_logit.shape == (4,)
    assert not logits.requires_grad
    assert torch.allclose(logits, out.logits, atol=1e-5)
    assert torch.allclose(halt_logit, out.halt_logit, atol=1e-5)


def test_batch_may_be_an_object_with_attributes():
    model = TRM(tiny_config(), 6)
    batch = SimpleNamespace(**random_batch())
    carry, out = model(model.initial_carry(batch), batch)
    assert out.logits.shape == (4, 25, 12)


def test_runs_under_bf16_autocast():
    model = TRM(tiny_config(), 6)
    batch = random_batch()
    with torch.autocast("cpu", dtype=torch.bfloat16):
        carry, out = model(model.initial_carry(batch), batch)
        loss, _ = trm_loss(out.logits, out.labels, out.halt_logit, model.config.halt_loss_weight)
    loss.backward()
    assert torch.isfinite(loss) and out.halt_logit.dtype == torch.float32
    assert carry.y.dtype == torch.bfloat16  # the carried state is in the compute dtype


# --- positions ------------------------------------------------------------------------


def test_rope2d_model_runs_on_canvases_of_different_sizes():
    model = TRM(tiny_config(positions="rope2d", canvas=6), 6).eval()
    for canvas in (5, 8):
        batch = random_batch(canvas=canvas)
        logits, halt_logit = model.predict(batch["inputs"], batch["puzzle_ids"])
        assert logits.shape == (4, canvas * canvas, 12) and torch.isfinite(halt_logit).all()


def test_rope1d_refuses_another_canvas():
    model = TRM(tiny_config(positions="rope1d", canvas=6), 6)
    batch = random_batch(canvas=8)
    with pytest.raises(ConfigError, match="rope1d.*6x6.*8x8.*rope2d"):
        model(model.initial_carry(batch), batch)


# --- the task table -------------------------------------------------------------------


def test_puzzle_rows_are_updated_only_for_the_batch():
    torch.manual_seed(0)
    model = TRM(tiny_config(), 6)
    batch = random_batch()
    batch["puzzle_ids"] = torch.tensor([1, 3, 3, 1])
    carry, out = model(model.initial_carry(batch), batch)
    trm_loss(out.logits, out.labels, out.halt_logit, model.config.halt_loss_weight)[0].backward()
    model.puzzle_emb.step(lr=0.01, weight_decay=0.1)
    changed = (model.puzzle_emb.weight != 0).any(-1)
    assert changed.tolist() == [False, True, False, True, False, False]


def test_grow_and_state_dict_round_trip():
    torch.manual_seed(0)
    model = TRM(tiny_config(), 3)
    model.puzzle_emb.weight[1:] = torch.randn(2, 32)
    state = model.state_dict()
    network = {k: v.clone() for k, v in state.items() if not k.startswith("puzzle_emb")}
    new_ids = model.grow_puzzles(2)
    assert list(new_ids) == [3, 4] and model.puzzle_emb.n_rows == 5
    assert all(torch.equal(v, model.state_dict()[k]) for k, v in network.items())

    restored = TRM(tiny_config(), 3)
    restored.load_state_dict(model.state_dict())
    assert restored.puzzle_emb.n_rows == 5
    batch = random_batch()
    batch["puzzle_ids"] = torch.tensor([4, 3, 1, 2])
    expected, _ = model.eval().predict(batch["inputs"], batch["puzzle_ids"])
    got, _ = restored.eval().predict(batch["inputs"], batch["puzzle_ids"])
    assert torch.equal(got, expected)


# --- it learns ------------------------------------------------------------------------


def on_canvas(grid: torch.Tensor, canvas: int) -> torch.Tensor:
    """Tokens of `grid` on a PAD canvas with the EOS row below and EOS column right of it."""
    board = torch.full((canvas, canvas), PAD, dtype=torch.long)
    h, w = grid.shape
    board[:h, :w] = grid + 2
    board[h, : w + 1] = EOS
    board[: h + 1, w] = EOS
    return board


def test_overfits_four_tiny_tasks():
    torch.manual_seed(0)
    g = torch.Generator().manual_seed(1)
    tasks = [lambda x: x.flip(1), lambda x: x.flip(0), lambda x: x.T, lambda x: (x + 1) % 4]
    inputs, labels, ids = [], [], []
    for task_id, transform in enumerate(tasks, start=1):
        for _ in range(2):
            grid = torch.randint(0, 4, (3, 3), generator=g)
            inputs.append(on_canvas(grid, 4))
            labels.append(on_canvas(transform(grid), 4))
            ids.append(task_id)
    batch = {
        "inputs": torch.stack(inputs),
        "labels": torch.stack(labels),
        "puzzle_ids": torch.tensor(ids),
    }

    config = TRMConfig(
        hidden_size=64, n_heads=2, n_latent_steps=2, n_recursions=2, n_supervision=4,
        puzzle_emb_len=2, canvas=4, halt_exploration="per_sample",
    )  # fmt: skip
    # The step budget was sized on this seed's trajectory, which the exploration draws are part of
    # (with per_step draws this seed reaches 7 of 8 at step 1500).
    model = TRM(config, n_puzzle_ids=len(tasks) + 1)
    optimizer = torch.optim.AdamW(model.parameters(), lr=1e-3, betas=(0.9, 0.95), weight_decay=0.1)
    carry = model.initial_carry(batch)
    exact = 0.0
    for step in range(1500):
        carry, out = model(carry, batch)
        loss, _ = trm_loss(out.logits, out.labels, out.halt_logit, config.halt_loss_weight)
        loss.backward()
        optimizer.step()
        optimizer.zero_grad()
        model.puzzle_emb.step(lr=1e-2, weight_decay=0.1)
        if step % 25 == 24:
            logits, _ = model.eval().predict(batch["inputs"], batch["puzzle_ids"])
            model.train()
            exact = halting_target(logits, batch["labels"]).mean().item()
            if exact == 1.0:
                break
    assert exact == 1.0, f"exact accuracy {exact} after {step + 1} steps"


def test_predict_at_a_depth_of_its_own_runs_more_steps_and_its_own_depth_changes_nothing():
    torch.manual_seed(0)
    model = TRM(tiny_config(n_supervision=2, n_recursions=2), 6).eval()
    batch = random_batch()
    calls = []
    real_f = model.f
    model.f = lambda *args: calls.append(1) or real_f(*args)
    plain = model.predict(batch["inputs"], batch["puzzle_ids"])
    own = model.predict(batch["inputs"], batch["puzzle_ids"], n_recursions=2, n_supervision=2)
    per_recursion = model.config.n_latent_steps + 1
    assert len(calls) == 2 * (2 * 2 * per_recursion)
    assert all(torch.equal(a, b) for a, b in zip(plain, own))  # overriding with its own depth is the same run
    calls.clear()
    deeper = model.predict(batch["inputs"], batch["puzzle_ids"], n_recursions=3, n_supervision=5)
    assert len(calls) == 5 * 3 * per_recursion
    assert not torch.equal(deeper[0], plain[0])


def test_predict_from_a_noisy_start_differs_and_zero_noise_is_the_plain_run():
    torch.manual_seed(0)
    model = TRM(tiny_config(), 6).eval()
    batch = random_batch()
    length = model.config.puzzle_emb_len + 25
    plain = model.predict(batch["inputs"], batch["puzzle_ids"])
    zero = model.predict(batch["inputs"], batch["puzzle_ids"], start_noise=torch.zeros(4, 2, length, 32))
    noisy = model.predict(batch["inputs"], batch["puzzle_ids"], start_noise=torch.randn(4, 2, length, 32))
    assert torch.equal(plain[0], zero[0])
    assert not torch.allclose(plain[0], noisy[0])


# --- levers -----------------------------------------------------------------------------


@pytest.mark.parametrize("conv", ["1d", "2d"])
def test_mlp_conv_trains_on_canvases_of_every_size(conv):
    """The convolved SwiGLU runs on sized canvases (rope2d, one side per batch) and on the fixed
    one, and its kernel and bias learn."""
    torch.manual_seed(0)
    model = TRM(tiny_config(positions="rope2d", canvas=6, mlp_conv=conv, mlp_conv_kernel=3), 6).train()
    for side in (3, 6):
        batch = random_batch(canvas=side)
        _, out = model(model.initial_carry(batch), batch)
        assert out.logits.shape == (4, side * side, 12)
        trm_loss(out.logits, out.labels, out.halt_logit, 0.5)[0].backward()
    conv_layer = model.blocks[0].mlp.conv
    assert conv_layer.weight.grad is not None and conv_layer.bias.grad.abs().sum() > 0
    fixed = TRM(tiny_config(mlp_conv=conv), 6)
    batch = random_batch()
    assert fixed(fixed.initial_carry(batch), batch)[1].logits.shape == (4, 25, 12)
    with pytest.raises(pydantic.ValidationError):
        tiny_config(mlp_conv="3d")
    with pytest.raises(pydantic.ValidationError):
        tiny_config(mlp_conv_kernel=0)


def test_with_every_lever_off_training_is_what_it_was_before_the_levers():
    """Four training steps of a tiny model from a fixed seed, exploration off: the losses and
    the weights' sum the code computed before any lever existed (recorded then, on this test's
    settings). A lever whose off position changes the computation changes these."""
    torch.manual_seed(0)
    cfg = tiny_config(n_recursions=2, n_supervision=3, halt_exploration_prob=0.0)
    model = TRM(cfg, 6).train()
    optimizer = AdamAtan2(model.parameters(), lr=1e-3, betas=(0.9, 0.95), weight_decay=0.1)
    batch = random_batch()
    carry, losses = model.initial_carry(batch), []
    for _ in range(4):
        carry, out = model(carry, batch)
        loss, _ = trm_loss(out.logits, out.labels, out.halt_logit, 0.5)
        loss.backward()
        optimizer.step()
        optimizer.zero_grad()
        model.puzzle_emb.step(1e-2, 0.1)
        losses.append(loss.item())
    total = sum(p.double().sum().item() for p in model.state_dict().values())
    before = [2.623586893081665, 2.4742271900177, 2.4995334148406982, 2.4378414154052734]
    assert losses == pytest.approx(before, rel=1e-6, abs=0)
    assert total == pytest.approx(-22.816559031273783, rel=1e-6)


def test_truncated_gradient_keeps_the_graph_of_the_last_k_latent_updates_only():
    batch = random_batch()
    grads, outputs = {}, {}
    for k in (None, 3, 1):
        torch.manual_seed(0)
        model = TRM(tiny_config(n_latent_steps=3, n_recursions=2, grad_latent_steps=k), 6)
        seen = []
        model.blocks[-1].register_forward_hook(lambda module, args, out, seen=seen: seen.append(out))
        _, out = model(model.initial_carry(batch), batch)
        trm_loss(out.logits, out.labels, out.halt_logit, 0.5)[0].backward()
        grads[k] = torch.cat([p.grad.flatten() for p in model.blocks.parameters()])
        outputs[k] = out.logits.detach()
        with_graph = [o.grad_fn is not None for o in seen]
        # f calls: one recursion without a graph (3 z updates and y), then the last recursion.
        keep = 3 if k is None else k
        assert with_graph == [False] * (4 + 3 - keep) + [True] * (keep + 1)
    # The forward is the same computation; k = n is the paper's gradient, a smaller k another one.
    assert torch.equal(outputs[None], outputs[3]) and torch.equal(outputs[None], outputs[1])
    assert torch.equal(grads[None], grads[3])
    assert not torch.allclose(grads[None], grads[1])
    with pytest.raises(pydantic.ValidationError, match="grad_latent_steps 4 exceeds n_latent_steps 3"):
        tiny_config(n_latent_steps=3, grad_latent_steps=4)


def test_mlp_mixer_mixes_the_positions_of_the_fixed_canvas():
    torch.manual_seed(0)
    model = TRM(tiny_config(mixer="mlp"), 6).train()
    block = model.blocks[0]
    assert not hasattr(block, "attn") and block.mlp_t.gate_up.in_features == model.config.seq_len
    batch = random_batch()
    _, out = model(model.initial_carry(batch), batch)
    trm_loss(out.logits, out.labels, out.halt_logit, 0.5)[0].backward()
    assert block.mlp_t.gate_up.weight.grad.abs().sum() > 0
    # Every position reaches every other through the MLP over positions.
    h = torch.randn(1, model.config.seq_len, 32)
    changed = h.clone()
    changed[0, -1] += 1.0
    assert (block(changed, None) - block(h, None))[0, 0].abs().sum() > 0
    with pytest.raises(ConfigError, match="rope1d positions for a 5x5 canvas"):
        small = random_batch(canvas=4)
        model(model.initial_carry(small), small)


def test_mlp_mixer_with_sized_canvases_is_refused_in_one_line():
    from helpers import TINY
    from typer.testing import CliRunner

    from arcsolver.cli import app

    with pytest.raises(pydantic.ValidationError, match="set positions='rope1d'"):
        tiny_config(mixer="mlp", positions="rope2d", canvas=8)
    sets = [x for item in [*TINY, "model.positions='rope2d'", "model.mixer='mlp'"] for x in ("--set", item)]
    result = CliRunner().invoke(app, ["plan", *sets], env={"COLUMNS": "300"})
    assert result.exit_code == 1 and "Traceback" not in result.output, result.output
    assert len(result.output.strip().splitlines()) == 1 and "mixer 'mlp'" in result.output
