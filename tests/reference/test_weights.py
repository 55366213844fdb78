"""arcsolver's TRM beside the TRM reference code: equal weights give equal outputs.

The reference is imported from a clone named by TRM_REFERENCE (or found beside this checkout);
where there is none, or it cannot be imported, the comparisons are skipped with the reason.
"""

from __future__ import annotations

import pytest
import torch
from helpers.reference import N_ROWS, build_equal_mlp_t, random_batch, small_config

from arcsolver.errors import ConfigError
from arcsolver.reference.settings import trm_settings_from_reference
from arcsolver.reference.weights import check_shapes, reference_state_to_trm


def test_equal_weights_give_equal_training_step(harness):
    bench, ref = harness
    cfg = small_config()
    head, fixed, _ = bench.build_equal(ref, cfg, N_ROWS, 4, "cpu", torch.float32, seed=3, random_rows=True)
    assert head.model.inner.puzzle_emb.weights[1:].abs().sum() > 0  # the task vectors take part
    diffs = bench.compare_one_step(head, fixed, random_batch(cfg, 4), "cpu")
    assert set(diffs) == {"logits", "halt_logit", "y", "z"}
    for name, diff in diffs.items():
        assert diff < 1e-4, f"{name} differs by {diff}"


def test_equal_weights_give_equal_inference_and_trained_steps(harness):
    """All N_sup steps of inference agree; so do both after a few training steps each on the
    same batches (the optimisers take the same steps)."""
    bench, ref = harness
    cfg = small_config(halt_exploration_prob=0.0)
    head, fixed, _ = bench.build_equal(ref, cfg, N_ROWS, 4, "cpu", torch.float32, seed=1)
    ref_trainer = bench.ReferenceTrainer(ref, head, 1e-3, 2, "cpu", False)
    our_trainer = bench.OurTrainer(fixed, 1e-3, 2, torch.float32, False)
    for k in range(3):
        b = random_batch(cfg, 4, seed=10 + k)
        ref_loss, ref_exact = ref_trainer.step(b)
        our_loss, our_exact = our_trainer.step(b)
        assert abs(ref_loss.item() - our_loss.item()) < 1e-4
        assert ref_exact.item() == our_exact.item()
    trained = reference_state_to_trm(head.state_dict())
    for key, value in fixed.state_dict().items():
        torch.testing.assert_close(value, trained[key], atol=1e-5, rtol=1e-4, msg=key)
    b = random_batch(cfg, 4, seed=99)
    torch.testing.assert_close(our_trainer.predict(b), ref_trainer.predict(b).float(), atol=1e-4, rtol=1e-4)


def test_equal_seeds_give_equal_halting_exploration(harness):
    """With exploration on, the reference and arcsolver (its default per-step draw) draw the
    same minima from the same seed, so the same samples halt at the same steps."""
    bench, ref = harness
    cfg = small_config(halt_exploration_prob=0.5, n_supervision=5)
    assert cfg.halt_exploration == "per_step"
    head, fixed, _ = bench.build_equal(ref, cfg, N_ROWS, 8, "cpu", torch.float32, seed=2)
    with torch.no_grad():  # every sample wants to halt: only the exploration holds one back
        head.model.inner.q_head.bias[0] = 5.0
        fixed.halt_head.bias.fill_(5.0)
    batches = [random_batch(cfg, 8, seed=20 + k) for k in range(6)]
    runs = {}
    for name, trainer in (
        ("reference", bench.ReferenceTrainer(ref, head, 1e-3, 2, "cpu", False)),
        ("arcsolver", bench.OurTrainer(fixed, 1e-3, 2, torch.float32, False)),
    ):
        torch.manual_seed(5)
        runs[name] = []
        for b in batches:
            loss, _ = trainer.step(b)
            carry = trainer.carry if name == "reference" else trainer.carries[cfg.canvas]
            runs[name].append((carry.steps.long().tolist(), carry.halted.tolist(), loss.item()))
    held_back = 0
    for (ref_steps, ref_halted, ref_loss), (steps, halted, loss) in zip(runs["reference"], runs["arcsolver"]):
        assert (ref_steps, ref_halted) == (steps, halted)
        assert abs(ref_loss - loss) < 1e-4
        held_back += sum(not h for h in halted)
    assert held_back > 0  # the draw decided something


def test_equal_weights_give_equal_mlp_t_steps_inference_and_training(harness):
    """TRM-MLP: the reference's mlp_t network and arcsolver's mixer="mlp" agree on a supervision
    step, on inference, and after a few training steps each."""
    bench, ref = harness
    cfg = small_config(halt_exploration_prob=0.0, mixer="mlp")
    head, model = build_equal_mlp_t(bench, ref, cfg, 4, seed=4, random_rows=True)
    assert any(k.endswith("mlp_t.gate_up_proj.weight") for k in head.state_dict())
    for name, diff in bench.compare_one_step(head, model, random_batch(cfg, 4), "cpu").items():
        assert diff < 1e-4, f"{name} differs by {diff}"
    head, model = build_equal_mlp_t(bench, ref, cfg, 4, seed=5)  # zero rows, as training starts
    ref_trainer = bench.ReferenceTrainer(ref, head, 1e-3, 2, "cpu", False)
    our_trainer = bench.OurTrainer(model, 1e-3, 2, torch.float32, False)
    for k in range(3):
        b = random_batch(cfg, 4, seed=30 + k)
        ref_loss, _ = ref_trainer.step(b)
        our_loss, _ = our_trainer.step(b)
        assert abs(ref_loss.item() - our_loss.item()) < 1e-4
    trained = reference_state_to_trm(head.state_dict())
    for key, value in model.state_dict().items():
        torch.testing.assert_close(value, trained[key], atol=1e-5, rtol=1e-4, msg=key)
    # One block agrees to float32 rounding (1e-6); over inference's N_sup x T x (n + 1) blocks the
    # MLP over positions amplifies that rounding far more than attention does (3e-4 on the logits
    # of these untrained weights, 1e-3 after training: a logit's scale is about 3).
    block, theirs = model.blocks[0], head.model.inner.L_level.layers[0]
    h = torch.randn(4, cfg.seq_len, cfg.hidden_size)
    torch.testing.assert_close(block(h, None), theirs(head.model.inner.rotary_emb(), h), atol=1e-5, rtol=1e-5)
    b = random_batch(cfg, 4, seed=98)
    torch.testing.assert_close(our_trainer.predict(b), ref_trainer.predict(b).float(), atol=5e-3, rtol=1e-3)


def test_untranslatable_weight_is_named():
    state = {
        "_orig_mod.model.inner.embed_tokens.embedding_weight": torch.zeros(12, 8),
        "model.inner.mystery": torch.zeros(1),
    }
    with pytest.raises(ConfigError, match="inner.mystery"):
        reference_state_to_trm(state)


def test_settings_and_shapes_are_checked():
    arch = dict(
        hidden_size=32, num_heads=2, L_layers=1, expansion=4, L_cycles=2, H_cycles=2, halt_max_steps=4, seq_len=64
    )
    settings = trm_settings_from_reference(arch)
    assert settings["canvas"] == 8 and settings["n_latent_steps"] == 2 and settings["positions"] == "rope1d"
    assert settings["mixer"] == "attention" and trm_settings_from_reference({**arch, "mlp_t": True})["mixer"] == "mlp"
    with pytest.raises(ConfigError, match="seq_len"):
        trm_settings_from_reference({**arch, "seq_len": 60})
    state = {"embed_tokens.weight": torch.zeros(12, 16)}
    with pytest.raises(ConfigError, match="embed_tokens.weight.*expected \\(12, 32\\)"):
        check_shapes(settings, state)
