"""The Tiny Recursive Model: one small network f refines an answer y through a latent z.

x = embed(puzzle vector, input canvas)
one recursion:        n times  z = f(z, x + y);  then  y = f(y, z)
one supervision step: T recursions, the first T-1 without gradients
deep supervision:     up to N_sup steps per sample, y and z carried (detached) between
                      steps, a loss and an optimiser step after each; a sample halts when
                      its halting logit says its answer is right, and a fresh one takes
                      its place in the batch.

Its settings, TRMConfig, are in config.py beside it.
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

import torch
from torch import nn

from arcsolver.model.config import TRMConfig
from arcsolver.model.layers import Block, PositionMLPBlock, lecun_linear, trunc_normal_
from arcsolver.model.positions import Rope, RotaryEmbedding
from arcsolver.model.puzzle_embedding import PuzzleEmbedding


@dataclass
class Carry:
    """What deep supervision carries from one step to the next, per sample of the batch.

    y, z: [B, L, D] detached states. steps: [B] supervision steps taken by the current sample.
    halted: [B] bool, the sample is done and is replaced at the next step. min_steps: [B] the
    exploration minimum (0 = none) drawn when the sample came in, or at this step with
    halt_exploration = "per_step". inputs, labels: [B, H, W] and
    puzzle_ids: [B], the current samples.
    """

    y: torch.Tensor
    z: torch.Tensor
    steps: torch.Tensor
    halted: torch.Tensor
    min_steps: torch.Tensor
    inputs: torch.Tensor
    labels: torch.Tensor
    puzzle_ids: torch.Tensor


@dataclass
class StepOutput:
    """One supervision step's answer: logits [B, H*W, vocab], halt_logit [B] (float32) and the
    labels [B, H, W] of the samples they belong to."""

    logits: torch.Tensor
    halt_logit: torch.Tensor
    labels: torch.Tensor


def _batch_fields(batch: Any) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """(inputs, labels, puzzle_ids) from a mapping or an object with those attributes."""
    if isinstance(batch, Mapping):
        return batch["inputs"], batch["labels"], batch["puzzle_ids"]
    return batch.inputs, batch.labels, batch.puzzle_ids


class TRM(nn.Module):
    """Tiny Recursive Model: network f, token and task embeddings, answer and halting heads."""

    y_init: torch.Tensor  # buffers, registered in __init__
    z_init: torch.Tensor

    def __init__(self, config: TRMConfig, n_puzzle_ids: int):
        """n_puzzle_ids: rows of the task-vector table, blank row 0 included. It is data, not a
        setting: pretraining counts its task versions, loading a checkpoint reads its table."""
        super().__init__()
        self.config = config
        D = config.hidden_size
        self.embed_scale = math.sqrt(D)
        # std 1/sqrt(D), times sqrt(D) at use: unit-scale inputs, the same scale as the state.
        self.embed_tokens = nn.Embedding(config.vocab_size, D)
        trunc_normal_(self.embed_tokens.weight, std=1.0 / self.embed_scale)
        self.puzzle_emb = PuzzleEmbedding(n_puzzle_ids, D)
        self.rotary = RotaryEmbedding.from_config(config)
        self.blocks = nn.ModuleList(self._block(config) for _ in range(config.n_layers))
        # Where the answer and the reasoning start, broadcast over positions. Fixed random
        # vectors, saved with the model: with T > 1 the no-grad recursions come right after
        # them, so no gradient could reach them, and as parameters weight decay would only
        # shrink them.
        self.register_buffer("y_init", trunc_normal_(torch.empty(D), std=1.0))
        self.register_buffer("z_init", trunc_normal_(torch.empty(D), std=1.0))
        self.lm_head = lecun_linear(D, config.vocab_size)
        self.halt_head = nn.Linear(D, 1)
        # Start confident that the answer is wrong: halting has to be learned, not stumbled into.
        with torch.no_grad():
            self.halt_head.weight.zero_()
            self.halt_head.bias.fill_(-5.0)

    @staticmethod
    def _block(config: TRMConfig) -> nn.Module:
        """One block of f: attention's, or TRM-MLP's over the positions of the fixed canvas."""
        conv = (config.mlp_conv, config.mlp_conv_kernel, config.puzzle_emb_len)
        if config.mixer == "mlp":
            return PositionMLPBlock(config.hidden_size, config.seq_len, config.expansion, config.rms_eps, *conv)
        return Block(config.hidden_size, config.n_heads, config.expansion, config.rms_eps, *conv)

    # --- the recursion -----------------------------------------------------------------

    def f(self, a: torch.Tensor, b: torch.Tensor, rope: Rope) -> torch.Tensor:
        """The one network: its blocks applied to a + b (b is the injected input)."""
        h = a + b
        for block in self.blocks:
            h = block(h, rope)
        return h

    def latent_recursion(self, x, y, z, rope: Rope, n_steps: int | None = None) -> tuple[torch.Tensor, torch.Tensor]:
        """n updates of the latent from question, answer and latent, then one of the answer
        (n_steps of them in place of n, where given).

        Both calls use the same f; only the presence of x tells it which job it is doing.
        """
        for _ in range(self.config.n_latent_steps if n_steps is None else n_steps):
            z = self.f(z, x + y, rope)
        y = self.f(y, z, rope)
        return y, z

    def supervision_step(
        self, x, y, z, rope: Rope, n_recursions: int | None = None
    ) -> tuple[torch.Tensor, torch.Tensor]:
        """T recursions: T-1 improve y and z without a graph, the last is backpropagated in full
        (or, with grad_latent_steps = k, only its last k latent updates and the answer update).
        n_recursions: a T other than the model's own (inference may recurse deeper)."""
        n, k = self.config.n_latent_steps, self.config.grad_latent_steps
        with torch.no_grad():
            for _ in range((n_recursions or self.config.n_recursions) - 1):
                y, z = self.latent_recursion(x, y, z, rope)
            for _ in range(n - (n if k is None else k)):  # the truncated start of the last one
                z = self.f(z, x + y, rope)
        return self.latent_recursion(x, y, z, rope, k)

    # --- embeddings and heads ------------------------------------------------------------

    def embed_input(self, inputs: torch.Tensor, puzzle_ids: torch.Tensor) -> torch.Tensor:
        """x [B, L, D]: the task vector, zeros for the rest of the prefix, then the input cells."""
        B = inputs.shape[0]
        tokens = self.embed_tokens(inputs.flatten(1))
        task = self.puzzle_emb(puzzle_ids).to(tokens.dtype)
        rest = tokens.new_zeros(B, self.config.puzzle_emb_len - 1, tokens.shape[-1])
        # The task vector is scaled with the tokens: sign-SGD moves it in steps of lr x sqrt(D).
        return self.embed_scale * torch.cat([task[:, None, :], rest, tokens], dim=1)

    def heads(self, y: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """Logits [B, H*W, vocab] on the answer positions and halt logit [B] from position 0."""
        logits = self.lm_head(y[:, self.config.puzzle_emb_len :])
        halt_logit = self.halt_head(y[:, 0]).squeeze(-1).float()
        return logits, halt_logit

    def initial_state(self, batch_size: int, seq_len: int) -> tuple[torch.Tensor, torch.Tensor]:
        """y and z at the start of a sample: the initial vectors at every position."""
        shape = (batch_size, seq_len, self.config.hidden_size)
        return self.y_init.expand(shape), self.z_init.expand(shape)

    # --- deep supervision --------------------------------------------------------------

    def initial_carry(self, batch: Any) -> Carry:
        """A carry in which every sample is halted, so the first forward loads the whole batch."""
        inputs, labels, puzzle_ids = _batch_fields(batch)
        B, H, W = inputs.shape
        y, z = self.initial_state(B, self.config.puzzle_emb_len + H * W)
        steps = torch.zeros(B, dtype=torch.long, device=inputs.device)
        halted = torch.ones(B, dtype=torch.bool, device=inputs.device)
        return Carry(y, z, steps, halted, steps.clone(), inputs, labels, puzzle_ids)

    def forward(self, carry: Carry, batch: Any) -> tuple[Carry, StepOutput]:
        """One supervision step for every sample, replacing halted samples by `batch`'s rows.

        `batch` has inputs, labels [B, H, W] and puzzle_ids [B] (a mapping or attributes), with
        the carry's B, H and W. Returns the next carry (y, z detached) and this step's output.
        In training a sample halts when its halt logit > 0 (once past its exploration minimum)
        or after N_sup steps; in eval mode only after N_sup steps.
        """
        fresh_inputs, fresh_labels, fresh_ids = _batch_fields(batch)
        reset = carry.halted
        cells = reset[:, None, None]
        inputs = torch.where(cells, fresh_inputs, carry.inputs)
        labels = torch.where(cells, fresh_labels, carry.labels)
        puzzle_ids = torch.where(reset, fresh_ids, carry.puzzle_ids)
        y = torch.where(cells, self.y_init, carry.y)
        z = torch.where(cells, self.z_init, carry.z)
        steps = torch.where(reset, 0, carry.steps)
        min_steps = carry.min_steps
        if self.config.halt_exploration == "per_sample":
            min_steps = torch.where(reset, self._draw_min_steps(reset), min_steps)

        rope = self.rotary(*inputs.shape[-2:], inputs.device)
        x = self.embed_input(inputs, puzzle_ids)
        y, z = self.supervision_step(x, y, z, rope)
        logits, halt_logit = self.heads(y)

        steps = steps + 1
        with torch.no_grad():
            halted = steps >= self.config.n_supervision
            if self.training:
                if self.config.halt_exploration == "per_step" and self.config.n_supervision > 1:
                    # Drawn after the forward, every step, as the reference draws it: a sample
                    # halts only once the step count passes this step's draw.
                    min_steps = self._draw_min_steps(steps)
                wants_to_halt = (halt_logit > 0) & (steps >= min_steps)
                halted = halted | wants_to_halt
        y, z = y.detach(), z.detach()
        next_carry = Carry(y, z, steps, halted, min_steps, inputs, labels, puzzle_ids)
        return next_carry, StepOutput(logits, halt_logit, labels)

    def _draw_min_steps(self, like: torch.Tensor) -> torch.Tensor:
        """Per sample: with prob halt_exploration_prob a minimum of 2..N_sup steps, else 0
        (a uniform draw, then the minimum, each one value per sample: the reference's order).

        Forcing some samples to keep going shows the halting head states it would not
        otherwise visit (the answer improving after the model wanted to stop). Training only.
        """
        if not self.training:
            return torch.zeros_like(like, dtype=torch.long)
        n_sup = self.config.n_supervision
        explore = torch.rand(like.shape, device=like.device) < self.config.halt_exploration_prob
        minimum = torch.randint(2, max(n_sup, 2) + 1, like.shape, device=like.device)
        return torch.where(explore, minimum, 0)

    # --- inference ---------------------------------------------------------------------

    @torch.no_grad()
    def predict(
        self,
        inputs: torch.Tensor,
        puzzle_ids: torch.Tensor,
        n_recursions: int | None = None,
        n_supervision: int | None = None,
        start_noise: torch.Tensor | None = None,
    ) -> tuple[torch.Tensor, torch.Tensor]:
        """All N_sup supervision steps from scratch, without halting or gradients.

        n_recursions, n_supervision: a T and an N_sup other than the model's own (None: its own).
        start_noise [B, 2, L, D]: added to the initial y and z, for noisy rollouts of one query.
        Returns the last step's logits [B, H*W, vocab] and halt logits [B], in either mode.
        """
        rope = self.rotary(*inputs.shape[-2:], inputs.device)
        x = self.embed_input(inputs, puzzle_ids)
        y, z = self.initial_state(x.shape[0], x.shape[1])
        if start_noise is not None:
            y, z = y + start_noise[:, 0], z + start_noise[:, 1]
        for _ in range(n_supervision or self.config.n_supervision):
            y, z = self.supervision_step(x, y, z, rope, n_recursions)
        return self.heads(y)

    # --- the task table ----------------------------------------------------------------

    def grow_puzzles(self, n_new: int) -> range:
        """Add `n_new` task rows (initialised to the mean trained row); return their ids."""
        return self.puzzle_emb.grow(n_new)
