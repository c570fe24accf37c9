"""The recompute modes and optimizers of a training step, declared once (the CLI's choices and
help, and TrainingOptions in training.py, derive from them). Kept apart from training.py so that
the command line can offer the choices without loading the training model."""

from __future__ import annotations

RECOMPUTE: dict[str, str] = {
    "none": "keep every tensor the backward pass reads",
    "selective": "recompute the activation from its saved input",
    "full": "save only the layer input, run the forward again",
}
OPTIMIZERS: dict[str, int] = {"sgd": 0, "momentum": 1, "adam": 2}  # optimizer states per parameter
MASTER_BYTES = 4  # float32 master weights under mixed precision
STATE_BYTES_MIXED = 4  # optimizer states in float32 under mixed precision
