"""The optimizer update of a training step in NumPy, for `verify --backward`: real states
allocated per parameter (SGD none, momentum one, Adam two), in float32 under mixed precision
(else in the weights' dtype), and float32 master weights under mixed precision, so that their
bytes are read off the arrays. The update runs in blocks of BLOCK elements, so its temporaries
stay within SCRATCH_BYTES."""

from __future__ import annotations

from typing import Any

import numpy as np

from ffn_calc.model.training_options import BNB_BLOCK, BNB_MIN_8BIT_SIZE
from ffn_calc.verifier.arrays import BLOCK_ELEMENTS, blocks

BLOCK = BLOCK_ELEMENTS  # elements updated at a time
SCRATCH_BYTES = 8 * BLOCK * 8  # at most 8 block-sized temporaries at once (Adam's), float64 at most
LR, MOMENTUM, BETA1, BETA2, EPS = 1e-3, 0.9, 0.9, 0.999, 1e-8
# The states each optimizer allocates, as torch.optim (and bitsandbytes, for adam8bit) name them;
# the model's OPTIMIZERS says how many (a test holds the two together).
STATES = {"sgd": (), "momentum": ("momentum",), "adam": ("exp_avg", "exp_avg_sq"), "adamw": ("exp_avg", "exp_avg_sq"),
          "adam8bit": ("state1", "state2")}  # fmt: skip
EIGHT_BIT = ("adam8bit",)  # bitsandbytes' blockwise 8-bit states


class Optimizer:
    """The states and master weights of `params`, allocated when made (before the step's
    forward pass, as in every step after the first); `step(grads)` updates the weights."""

    def __init__(self, params: dict[str, np.ndarray], name: str, mixed_precision: bool):
        self.params, self.name, self.mixed = params, name, mixed_precision
        self.master = {k: v.astype(np.float32) for k, v in params.items()} if mixed_precision else {}
        # bitsandbytes' 8-bit states: a uint8 code per element (signed for the momentum, stored
        # offset by 128) and a float32 absmax per BNB_BLOCK elements; small tensors keep float32 states
        self.eight = {k for k, v in params.items() if name in EIGHT_BIT and v.size >= BNB_MIN_8BIT_SIZE}
        self.states: dict[str, dict[str, np.ndarray]] = {
            state: {k: np.zeros(v.shape, np.uint8 if k in self.eight else np.float32 if mixed_precision or name in EIGHT_BIT else v.dtype)
                    for k, v in params.items()}
            for state in STATES[name]
        }  # fmt: skip
        self.absmax: dict[str, dict[str, np.ndarray]] = {
            state: {k: np.zeros(-(-params[k].size // BNB_BLOCK), np.float32) for k in self.eight} for state in STATES[name]
        }
        self.steps = 0
        self.stepped: dict[str, int] = {}  # per weight, the elements the last step moved (a non-zero step computed)

    @property
    def state_bytes(self) -> int:
        arrays = [*self.states.values(), *self.absmax.values()]
        return sum(a.nbytes for per in arrays for a in per.values())

    @property
    def master_bytes(self) -> int:
        return sum(a.nbytes for a in self.master.values())

    def step(self, grads: dict[str, np.ndarray]) -> None:
        self.steps += 1
        t = self.steps
        for name, weight in self.params.items():
            if name not in grads:  # no gradient, no step (as torch.optim skips a parameter whose .grad is None)
                continue
            target = (self.master.get(name, weight)).reshape(-1)
            g = grads[name].reshape(-1)
            states = [per[name].reshape(-1) for per in self.states.values()]
            out = weight.reshape(-1)
            self.stepped[name] = 0
            for i, j in blocks(target.size, BLOCK):
                ct: Any = np.float64 if target.dtype == np.float64 else np.float32
                gb = g[i:j].astype(ct)
                w = target[i:j].astype(ct)
                if self.name == "sgd":
                    delta = LR * gb
                elif self.name == "momentum":
                    m = states[0][i:j].astype(ct) * MOMENTUM + gb
                    states[0][i:j] = m
                    delta = LR * m
                elif name in self.eight:  # dequantise, update, quantise again block by block
                    m = self._load("state1", name, i, j) * BETA1 + (1 - BETA1) * gb
                    v = self._load("state2", name, i, j) * BETA2 + (1 - BETA2) * gb * gb
                    self._store("state1", name, i, j, m)
                    self._store("state2", name, i, j, v)
                    delta = LR * (m / (1 - BETA1**t)) / (np.sqrt(v / (1 - BETA2**t)) + EPS)
                else:
                    m = states[0][i:j].astype(ct) * BETA1 + (1 - BETA1) * gb
                    v = states[1][i:j].astype(ct) * BETA2 + (1 - BETA2) * gb * gb
                    states[0][i:j], states[1][i:j] = m, v
                    delta = LR * (m / (1 - BETA1**t)) / (np.sqrt(v / (1 - BETA2**t)) + EPS)
                self.stepped[name] += int(np.count_nonzero(delta))
                w -= delta
                target[i:j] = w
                if self.mixed:
                    out[i:j] = w  # the 16-bit weights from the float32 master

    def _load(self, state: str, name: str, i: int, j: int) -> np.ndarray:
        """The float32 values of elements i:j (a whole number of blocks) of an 8-bit state."""
        code = self.states[state][name].reshape(-1)[i:j].astype(np.float32)
        scale = np.repeat(self.absmax[state][name][i // BNB_BLOCK : -(-j // BNB_BLOCK)], BNB_BLOCK)[: j - i]
        return ((code - 128) / 127 if state == "state1" else code / 255) * scale

    def _store(self, state: str, name: str, i: int, j: int, values: np.ndarray) -> None:
        """Quantise elements i:j: each block's absmax, then a byte per element (linear codes:
        bitsandbytes' dynamic map differs in its codes, not in its bytes)."""
        n = j - i
        padded = np.zeros(-(-n // BNB_BLOCK) * BNB_BLOCK, np.float32)
        padded[:n] = values
        absmax = np.abs(padded.reshape(-1, BNB_BLOCK)).max(axis=1)
        self.absmax[state][name][i // BNB_BLOCK : -(-j // BNB_BLOCK)] = absmax
        scale = np.repeat(np.where(absmax > 0, absmax, 1), BNB_BLOCK)[:n]
        code = np.rint(values / scale * 127) + 128 if state == "state1" else np.rint(values / scale * 255)
        self.states[state][name].reshape(-1)[i:j] = code.astype(np.uint8)
