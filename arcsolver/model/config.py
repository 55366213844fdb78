"""TRMConfig: the model's shape and recursion schedule, the `model` section of a recipe; its
defaults are the paper's ARC settings (n, T and N_sup as the paper names them)."""

from __future__ import annotations

from typing import Literal

from pydantic import BaseModel, ConfigDict, Field, model_validator

from arcsolver.data.encoding import VOCAB_SIZE
from arcsolver.model.layers import MlpConv, swiglu_width
from arcsolver.model.positions import Positions, check_head_dim


class TRMConfig(BaseModel):
    """The model's shape and recursion schedule; defaults are the paper's ARC settings."""

    model_config = ConfigDict(extra="forbid", allow_inf_nan=False)

    hidden_size: int = Field(512, gt=0, le=16384, description="width D of the network")
    n_heads: int = Field(8, gt=0, le=256, description="attention heads")
    n_layers: int = Field(2, gt=0, le=64, description="blocks of the one network f")
    expansion: float = Field(
        4.0, gt=0, le=64, description="SwiGLU hidden width over D (rounded up to a multiple of 256)"
    )
    n_latent_steps: int = Field(4, ge=1, le=64, description="n: z updates per recursion")
    n_recursions: int = Field(3, ge=1, le=64, description="T: recursions per supervision step, T-1 without grad")
    n_supervision: int = Field(16, ge=1, le=256, description="N_sup: most supervision steps per sample")
    puzzle_emb_len: int = Field(16, ge=1, le=256, description="prefix positions; the task vector fills the first")
    canvas: int = Field(30, gt=0, le=30, description="side of the largest canvas (the fixed one with rope1d)")
    vocab_size: int = Field(
        VOCAB_SIZE,
        description="tokens: PAD, EOS and 10 colours; fixed by the encoding, not a setting (saved configs hold it)",
    )
    rope_theta: float = Field(10000.0, gt=0, le=1e12, description="RoPE base")
    positions: Positions = Field(
        "rope1d",
        description="rope1d: the paper's RoPE over the flattened canvas (one canvas size); rope2d: over (row, column), any canvas",
    )
    rms_eps: float = Field(1e-5, gt=0, le=1, description="RMSNorm epsilon")
    halt_exploration_prob: float = Field(
        0.1, ge=0, le=1, description="share of samples forced to a random minimum number of steps"
    )
    halt_exploration: Literal["per_step", "per_sample"] = Field(
        "per_step",
        description="per_step: the exploration minimum is drawn anew at every step (the reference's); per_sample: once when a sample comes in",
    )
    halt_loss_weight: float = Field(0.5, ge=0, description="weight of the halting BCE in the loss")
    mixer: Literal["attention", "mlp"] = Field(
        "attention",
        description="how a block mixes positions: attention (the paper's ARC network) or mlp, TRM-MLP's SwiGLU over the positions of one fixed canvas (needs positions=rope1d)",
    )
    grad_latent_steps: int | None = Field(
        None,
        ge=1,
        le=64,
        description="k: of the backpropagated recursion, only the last k latent updates (and the answer update) keep their graph; None: all n (the paper's)",
    )
    mlp_conv: MlpConv = Field(
        "none",
        description="convolve SwiGLU's gated activations before its down projection: 1d over the sequence (URM's ConvSwiGLU), 2d over the canvas's rows and columns; none: the paper's SwiGLU",
    )
    mlp_conv_kernel: int = Field(2, ge=1, le=30, description="kernel of mlp_conv (k, or k x k with 2d)")

    @model_validator(mode="before")
    @classmethod
    def _ignore_table_size(cls, data):
        # Configs saved by earlier versions hold the table's size, n_puzzle_ids: the table's shape
        # in the weights is what counts, so it is accepted and dropped.
        if isinstance(data, dict) and "n_puzzle_ids" in data:
            return {k: v for k, v in data.items() if k != "n_puzzle_ids"}
        return data

    @model_validator(mode="after")
    def _check_shapes(self) -> TRMConfig:
        if self.hidden_size % self.n_heads:
            raise ValueError(f"hidden_size {self.hidden_size} must be divisible by n_heads {self.n_heads}")
        check_head_dim(self.positions, self.head_dim)
        if swiglu_width(self.hidden_size, self.expansion) < 1:
            raise ValueError(
                f"expansion {self.expansion} leaves the SwiGLU of hidden_size {self.hidden_size} no width; "
                "give an expansion of 1 or more (the paper's is 4)"
            )
        if self.mixer == "mlp" and self.positions != "rope1d":
            raise ValueError(
                "mixer 'mlp' mixes the positions of one canvas size, and rope2d runs canvases of many sizes: "
                "set positions='rope1d' (the fixed canvas), or keep mixer='attention'"
            )
        if self.grad_latent_steps is not None and self.grad_latent_steps > self.n_latent_steps:
            raise ValueError(
                f"grad_latent_steps {self.grad_latent_steps} exceeds n_latent_steps {self.n_latent_steps}: "
                "give at most n (n backpropagates the whole recursion)"
            )
        if self.vocab_size != VOCAB_SIZE:
            raise ValueError(
                f"vocab_size must be {VOCAB_SIZE}, the tokens the encoding writes (PAD, EOS and 10 colours)"
            )
        return self

    @property
    def head_dim(self) -> int:
        """d: the width of one attention head."""
        return self.hidden_size // self.n_heads

    @property
    def seq_len(self) -> int:
        """Positions per sample on the configured canvas: prefix plus cells."""
        return self.puzzle_emb_len + self.canvas * self.canvas
