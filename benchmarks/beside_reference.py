"""What the benchmarks beside the TRM reference share (benchmarks/reference.py runs them): the
reference imported from its clone, both networks built from its initial weights, a batch in its
format, and the two training steps driven alike.

The reference's training script needs CUDA and its adam-atan2 kernel; here its model and loss
head are driven directly, with arcsolver's AdamAtan2 (whose step equals that kernel's; tests/
engine/test_optim.py) on its weights and its own sign-SGD on its puzzle embeddings. Its warm-up counts
steps as arcsolver's does.
"""

from __future__ import annotations

import sys
from dataclasses import dataclass, field
from pathlib import Path
from types import SimpleNamespace

import torch

from arcsolver.data.encoding import CANVAS, CANVAS_SIDES, PAD
from arcsolver.data.loaders import load_tasks
from arcsolver.data.stream import SizedStream, build_puzzles, trainable_pairs
from arcsolver.engine.optim import AdamAtan2, warmup_factor
from arcsolver.model.loss import trm_loss
from arcsolver.model.trm import TRM, TRMConfig
from arcsolver.reference.weights import reference_state_to_trm

IGNORE_LABEL_ID = -100  # the reference's label for cells without a target (our PAD)
PUZZLE_EMB_LR, WEIGHT_DECAY, BETAS = 1e-2, 0.1, (0.9, 0.95)  # the paper's (and both codes' defaults)


# --- the reference, imported from its clone ---------------------------------------------


def import_reference(path: Path) -> SimpleNamespace:
    """The reference's TRM, loss head and puzzle-embedding sign-SGD, imported from a clone."""
    path = Path(path).resolve()
    if not (path / "models" / "recursive_reasoning" / "trm.py").is_file():
        raise SystemExit(f"{path} is not a clone of the TRM reference code (no models/recursive_reasoning/trm.py)")
    sys.path.insert(0, str(path))
    try:
        from models.losses import ACTLossHead
        from models.recursive_reasoning.trm import TinyRecursiveReasoningModel_ACTV1
        from models.sparse_embedding import CastedSparseEmbeddingSignSGD_Distributed
    except ImportError as e:
        raise SystemExit(f"cannot import the reference code from {path}: {e} (it needs einops and pydantic)") from e
    return SimpleNamespace(
        Model=TinyRecursiveReasoningModel_ACTV1, LossHead=ACTLossHead, SignSGD=CastedSparseEmbeddingSignSGD_Distributed
    )


def reference_arch(cfg: TRMConfig, batch: int, n_puzzle_ids: int, dtype: torch.dtype) -> dict:
    """The reference's model settings equal to `cfg` (its TRM on a cfg.canvas-side canvas)."""
    return dict(
        batch_size=batch,
        seq_len=cfg.canvas * cfg.canvas,
        puzzle_emb_ndim=cfg.hidden_size,
        num_puzzle_identifiers=n_puzzle_ids,
        vocab_size=cfg.vocab_size,
        H_cycles=cfg.n_recursions,
        L_cycles=cfg.n_latent_steps,
        H_layers=0,
        L_layers=cfg.n_layers,
        hidden_size=cfg.hidden_size,
        expansion=cfg.expansion,
        num_heads=cfg.n_heads,
        pos_encodings="rope",
        rms_norm_eps=cfg.rms_eps,
        rope_theta=cfg.rope_theta,
        halt_max_steps=cfg.n_supervision,
        halt_exploration_prob=cfg.halt_exploration_prob,
        forward_dtype="bfloat16" if dtype == torch.bfloat16 else "float32",
        mlp_t=False,
        puzzle_emb_len=cfg.puzzle_emb_len,
        no_ACT_continue=True,
    )


def build_equal(ref, cfg: TRMConfig, n_puzzle_ids: int, batch: int, device, dtype, seed: int, random_rows=False):
    """(reference loss head, arcsolver TRM with rope1d, arcsolver TRM with rope2d), all three
    with the reference's initial weights for `seed` and a table of n_puzzle_ids rows. random_rows fills the puzzle table (zero at
    the start of training in both) with random rows, so that a comparison exercises it."""
    torch.manual_seed(seed)
    with torch.device(device):
        head = ref.LossHead(
            ref.Model(reference_arch(cfg, batch, n_puzzle_ids, dtype)), loss_type="stablemax_cross_entropy"
        )
    if random_rows:
        with torch.no_grad():
            head.model.inner.puzzle_emb.weights.normal_()
            head.model.inner.puzzle_emb.weights[0].zero_()
    weights = reference_state_to_trm(head.state_dict())
    ours = []
    for positions in ("rope1d", "rope2d"):
        model = TRM(cfg.model_copy(update={"positions": positions}), n_puzzle_ids).to(device)
        model.load_state_dict(weights, strict=True)
        ours.append(model)
    return head, ours[0], ours[1]


def reference_batch(b: dict) -> dict:
    """A batch in the reference's format: int32 token sequences (the canvas row-major), cells
    without a target as -100."""
    labels = b["labels"].flatten(1)
    return {
        "inputs": b["inputs"].flatten(1).int(),
        "labels": torch.where(labels == PAD, IGNORE_LABEL_ID, labels).int(),
        "puzzle_identifiers": b["puzzle_ids"].int(),
    }


def compare_one_step(head, ours: TRM, b: dict, device) -> dict[str, float]:
    """The largest absolute differences between one supervision step of each (exploration off,
    both in training mode), from a fresh carry: logits, halting logits, next y (z_H) and z (z_L)."""
    head.model.config.halt_exploration_prob = 0.0
    ours.config = ours.config.model_copy(update={"halt_exploration_prob": 0.0})
    rb = reference_batch(b)
    with torch.device(device):
        carry = head.initial_carry(rb)
    carry, _, _, out, _ = head(carry=carry, batch=rb, return_keys=["logits", "q_halt_logits"])
    our_carry, step = ours(ours.initial_carry(b), b)
    return {
        "logits": (out["logits"].float() - step.logits.float()).abs().max().item(),
        "halt_logit": (out["q_halt_logits"].float() - step.halt_logit.float()).abs().max().item(),
        "y": (carry.inner_carry.z_H.float() - our_carry.y.float()).abs().max().item(),
        "z": (carry.inner_carry.z_L.float() - our_carry.z.float()).abs().max().item(),
    }


# --- the data ------------------------------------------------------------------------


def arc1_stream(seed: int, n_augmentations: int) -> SizedStream:
    """The ARC-AGI-1 training mix (all pairs of the 400 training tasks) in augmented versions,
    each batch from one canvas side, TRM's reference sampling."""
    tasks = list(load_tasks("arc1/training"))
    puzzles = build_puzzles(tasks, n_augmentations, seed)
    return SizedStream(puzzles, trainable_pairs(tasks, []), CANVAS_SIDES, seed, sampling="reference")


def table_rows(stream: SizedStream) -> int:
    """Puzzle-table rows for a stream's task versions: one each, and the blank row."""
    return len(stream.streams[CANVAS].puzzles) + 1


def on_device(batch, device, side: int | None = None) -> dict:
    """A stream batch as tensors; with `side`, padded with PAD to that canvas (the grids keep
    their offsets, so this is the encoding on the larger canvas)."""
    inputs, labels = torch.from_numpy(batch.inputs).long(), torch.from_numpy(batch.labels).long()
    if side is not None:
        grow = side - inputs.shape[-1]
        inputs = torch.nn.functional.pad(inputs, (0, grow, 0, grow), value=PAD)
        labels = torch.nn.functional.pad(labels, (0, grow, 0, grow), value=PAD)
    return {
        "inputs": inputs.to(device),
        "labels": labels.to(device),
        "puzzle_ids": torch.from_numpy(batch.puzzle_ids).to(device),
    }


# --- the two trainers, driven alike ----------------------------------------------------


def exact_fraction(logits: torch.Tensor, labels: torch.Tensor, ignore: int) -> torch.Tensor:
    """Share of samples whose every supervised cell is the argmax prediction."""
    labels = labels.flatten(1)
    wrong = (logits.argmax(-1) != labels) & (labels != ignore)
    return (~wrong.any(-1)).float().mean()


class ReferenceTrainer:
    """The reference's training step as its pretrain.py takes it (loss / batch, then each
    optimiser at the warmed-up lr), on its one 30x30 carry."""

    def __init__(self, ref, head, lr: float, warmup: int, device, compile_: bool):
        self.head, self.lr, self.warmup, self.device = head, lr, warmup, device
        self.forward = torch.compile(head) if compile_ else head
        self.adam = AdamAtan2(head.parameters(), lr=lr, betas=BETAS, weight_decay=WEIGHT_DECAY)
        table = head.model.inner.puzzle_emb
        self.sign = ref.SignSGD(table.buffers(), lr=PUZZLE_EMB_LR, weight_decay=WEIGHT_DECAY, world_size=1)
        self.carry, self.steps = None, 0

    def step(self, b: dict) -> tuple[torch.Tensor, torch.Tensor]:
        rb = reference_batch(b)
        if self.carry is None:
            with torch.device(self.device):
                self.carry = self.head.initial_carry(rb)
        self.carry, loss, _, out, _ = self.forward(carry=self.carry, batch=rb, return_keys=["logits"])
        batch = rb["inputs"].shape[0]
        (loss / batch).backward()
        scale = warmup_factor(self.steps, self.warmup)
        for opt, base in ((self.sign, PUZZLE_EMB_LR), (self.adam, self.lr)):
            for group in opt.param_groups:
                group["lr"] = base * scale
            opt.step()
            opt.zero_grad()
        self.steps += 1
        labels = self.carry.current_data["labels"]
        return loss.detach() / batch, exact_fraction(out["logits"], labels, IGNORE_LABEL_ID)

    @torch.no_grad()
    def predict(self, b: dict) -> torch.Tensor:
        """All N_sup steps in eval mode, as the reference's evaluation runs them."""
        self.head.eval()
        rb = reference_batch(b)
        with torch.device(self.device):
            carry = self.head.initial_carry(rb)
        for _ in range(self.head.model.config.halt_max_steps):
            carry, _, _, out, _ = self.forward(carry=carry, batch=rb, return_keys=["logits"])
        self.head.train()
        return out["logits"]


@dataclass
class OurTrainer:
    """arcsolver's training step (the loss, Adam-atan2, sign-SGD on the batch's task rows) with
    one carry per canvas side, as its pretraining loop keeps them."""

    model: TRM
    lr: float
    warmup: int
    dtype: torch.dtype
    compile_: bool
    carries: dict = field(default_factory=dict)
    steps: int = 0

    def __post_init__(self):
        self.model.train()
        self.forward = torch.compile(self.model) if self.compile_ else self.model
        self.predict_fn = torch.compile(self.model.predict) if self.compile_ else self.model.predict
        self.opt = AdamAtan2(self.model.parameters(), lr=self.lr, betas=BETAS, weight_decay=WEIGHT_DECAY)

    def autocast(self, device_type: str):
        return torch.autocast(device_type, dtype=self.dtype, enabled=self.dtype != torch.float32)

    def step(self, b: dict) -> tuple[torch.Tensor, torch.Tensor]:
        side = b["inputs"].shape[-1]
        carry = self.carries.get(side) or self.model.initial_carry(b)
        with self.autocast(b["inputs"].device.type):
            carry, out = self.forward(carry, b)
        self.carries[side] = carry
        loss, _ = trm_loss(out.logits, out.labels, out.halt_logit, self.model.config.halt_loss_weight)
        self.opt.zero_grad(set_to_none=True)
        loss.backward()
        scale = warmup_factor(self.steps, self.warmup)
        for group in self.opt.param_groups:
            group["lr"] = self.lr * scale
        self.opt.step()
        self.model.puzzle_emb.step(PUZZLE_EMB_LR * scale, WEIGHT_DECAY)
        self.steps += 1
        return loss.detach(), exact_fraction(out.logits, out.labels, PAD)

    @torch.no_grad()
    def predict(self, b: dict) -> torch.Tensor:
        self.model.eval()
        with self.autocast(b["inputs"].device.type):
            logits, _ = self.predict_fn(b["inputs"], b["puzzle_ids"])
        self.model.train()
        return logits


def sync(device) -> None:
    if torch.device(device).type == "cuda":
        torch.cuda.synchronize()
