"""How a training step trains: the recompute modes and optimizers, declared once (the CLI's
choices and help derive from them), and the options of one step. Kept apart from training.py
so that the command line can offer the choices without loading the training model."""

from __future__ import annotations

from dataclasses import dataclass

from ffn_calc.model.errors import ConfigError

RECOMPUTE: dict[str, str] = {
    "none": "keep every tensor the backward pass reads",
    "selective": "recompute the activation from its saved input",
    "full": "save only the layer input, run the forward again",
}
OPTIMIZERS: dict[str, int] = {"sgd": 0, "momentum": 1, "adam": 2}  # optimizer states per parameter
MASTER_BYTES = 4  # float32 master weights under mixed precision
STATE_BYTES_MIXED = 4  # optimizer states in float32 under mixed precision


@dataclass(frozen=True)
class TrainingOptions:
    """How a step trains: recomputation, optimizer, mixed precision (16-bit weights and
    gradients with float32 master weights and states), dropout on the FFN output, and whether
    the layer's input needs a gradient: False for the first layer of a stack or after a frozen
    embedding, when PyTorch skips every product whose only use is that gradient."""

    recompute: str = "none"
    optimizer: str = "adam"
    mixed_precision: bool = False
    dropout: bool = False
    input_grad: bool = True

    def __post_init__(self) -> None:
        if self.recompute not in RECOMPUTE:
            raise ConfigError("--recompute", f"unknown value {self.recompute!r}; choose one of {', '.join(RECOMPUTE)}")
        if self.optimizer not in OPTIMIZERS:
            raise ConfigError("--optimizer", f"unknown value {self.optimizer!r}; choose one of {', '.join(OPTIMIZERS)}")
