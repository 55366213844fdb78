"""The learned per-task vector ("puzzle embedding"), trained by sign-SGD on the rows in the batch.

The table has a row per augmented task version (hundreds of thousands of rows), so it is a
buffer, not a parameter: AdamW would keep two moments per row and decay every row at every
step, while a batch only ever touches a few hundred rows. Instead each training forward pass
gathers the batch's rows into a small leaf tensor; after backward its gradient is summed per
task id and applied to those rows only.

Gradient accumulation runs several forwards before one update: their rows are all kept, and
the update sums the gradients of every row of every forward.

Single process:  loss.backward(); table.step(lr, weight_decay)
Distributed:     ids, grads = table.batch_gradients(); all-gather both across processes;
                 table.apply_sign_sgd(all_ids, all_grads, lr, weight_decay); table.clear_batch()
"""

from __future__ import annotations

import torch
from torch import nn

BLANK_ID = 0  # row 0: "no task", kept at zero and never updated


def _check_rows(n_rows: int) -> None:
    if n_rows < 1:
        raise ValueError(f"a puzzle-embedding table needs at least its blank row, got {n_rows}")


class PuzzleEmbedding(nn.Module):
    """A table of n_rows x dim task vectors; row 0 is blank. All rows start at zero."""

    weight: torch.Tensor  # a buffer: sign-SGD updates it, not the optimiser

    def __init__(self, n_rows: int, dim: int):
        super().__init__()
        _check_rows(n_rows)
        self.dim = dim
        self.register_buffer("weight", torch.zeros(n_rows, dim))
        # The rows gathered by the training forward passes since the last update, and their ids.
        self._batch_rows: list[torch.Tensor] = []
        self._batch_ids: list[torch.Tensor] = []

    @property
    def n_rows(self) -> int:
        return self.weight.shape[0]

    # Making a fresh leaf inside a compiled graph is not traceable: leave this call eager.
    @torch.compiler.disable
    def forward(self, puzzle_ids: torch.Tensor) -> torch.Tensor:
        """[B] ids -> [B, dim] rows; in training with grad enabled, a leaf that collects grads."""
        rows = self.weight[puzzle_ids]  # a copy: gradients land here, not in the table
        if self.training and torch.is_grad_enabled():
            rows.requires_grad_(True)
            self._batch_rows.append(rows)
            self._batch_ids.append(puzzle_ids)
        return rows

    def batch_gradients(self) -> tuple[torch.Tensor, torch.Tensor]:
        """(ids [B], grads [B, dim]) of the training forwards since the last update, one row per
        sample (B summed over the micro-batches).

        Shapes are fixed per batch so that a distributed trainer can all-gather them: the sign
        must be taken of the gradient summed over all processes. Zeros where no grad arrived.
        """
        if not self._batch_rows:
            raise RuntimeError("no training forward pass since the last update: nothing to apply")
        grads = [r.grad if r.grad is not None else torch.zeros_like(r) for r in self._batch_rows]
        return torch.cat(self._batch_ids), torch.cat(grads)

    @torch.no_grad()
    def apply_sign_sgd(self, ids: torch.Tensor, grads: torch.Tensor, lr: float, weight_decay: float) -> None:
        """Sign-SGD with decoupled weight decay on the rows in `ids` only (never the blank row).

        Gradients are summed per unique id first: w <- w * (1 - lr * wd) - lr * sign(sum g).
        Every shape here is the batch's, never the number of distinct ids, so the update runs
        without waiting for the device (torch.unique or a boolean mask would).
        """
        ids, order = ids.sort()
        # Position i of the sorted ids belongs to group g[i]: one group per distinct id.
        starts = torch.ones_like(ids, dtype=torch.bool)
        starts[1:] = ids[1:] != ids[:-1]
        group = starts.cumsum(0) - 1
        summed = torch.zeros(len(ids), self.dim, device=grads.device)
        summed.index_add_(0, group, grads[order].float())
        rows = self.weight[ids]
        updated = rows * (1 - lr * weight_decay) - lr * summed[group].sign()
        # A repeated id is written once per occurrence, each time with the same row.
        self.weight[ids] = torch.where((ids == BLANK_ID)[:, None], rows, updated)

    def step(self, lr: float, weight_decay: float) -> None:
        """Single-process update with the last forward's gradients, which are then dropped."""
        ids, grads = self.batch_gradients()
        self.apply_sign_sgd(ids, grads, lr, weight_decay)
        self.clear_batch()

    def clear_batch(self) -> None:
        """Forget the rows gathered since the last update (and their gradients)."""
        self._batch_rows, self._batch_ids = [], []

    @torch.no_grad()
    def grow(self, n_new: int) -> range:
        """Append `n_new` rows at the mean of the trained rows (all but blank); return their ids.

        New task versions met at test time start from the average task rather than from blank,
        which the adaptation paper found better than random draws. The network is untouched.
        """
        if n_new < 0:
            raise ValueError(f"cannot grow the puzzle-embedding table by {n_new} rows")
        old = self.n_rows
        trained = self.weight[1:]
        mean = trained.mean(0) if len(trained) else torch.zeros_like(self.weight[0])
        self.weight = torch.cat([self.weight, mean.expand(n_new, -1)])
        return range(old, old + n_new)

    @torch.no_grad()
    def resize(self, n_rows: int) -> None:
        """Make the table `n_rows` long: new rows are zero (blank-like), surplus rows dropped."""
        _check_rows(n_rows)
        new = self.weight.new_zeros(n_rows, self.dim)
        keep = min(n_rows, self.n_rows)
        new[:keep] = self.weight[:keep]
        self.weight = new
        self.clear_batch()

    def _load_from_state_dict(self, state_dict, prefix, *args, **kwargs):
        # The row count follows the checkpoint: tables grow after the network is built. A
        # different width is left to the normal size-mismatch error.
        saved = state_dict.get(prefix + "weight")
        if saved is not None and saved.ndim == 2 and saved.shape[1] == self.dim:
            if len(saved) != self.n_rows:
                self.resize(len(saved))
        super()._load_from_state_dict(state_dict, prefix, *args, **kwargs)

    def extra_repr(self) -> str:
        return f"n_rows={self.n_rows}, dim={self.dim}"
