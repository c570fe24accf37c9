"""The recompute modes and optimizers of a training step, declared once (the CLI's choices and
help, and TrainingOptions in training.py, derive from them). Kept apart from training.py so that
the command line can offer the choices without loading the training model."""

from __future__ import annotations

from typing import NamedTuple


class Recompute(NamedTuple):
    """A recompute mode: what it re-runs in backward instead of keeping (`activations`: the
    activation and gate stages, from their saved inputs; `forward`: the whole forward pass,
    from the layer input, which is then all that is kept)."""

    help: str
    activations: bool
    forward: bool


RECOMPUTE: dict[str, Recompute] = {
    "none": Recompute("keep every tensor the backward pass reads", activations=False, forward=False),
    "selective": Recompute("recompute the activation from its saved input", activations=True, forward=False),
    "full": Recompute("save only the layer input, run the forward again", activations=False, forward=True),
}
OPTIMIZERS: dict[str, int] = {"sgd": 0, "momentum": 1, "adam": 2}  # optimizer states per parameter
MASTER_BYTES = 4  # float32 master weights under mixed precision
STATE_BYTES_MIXED = 4  # optimizer states in float32 under mixed precision
