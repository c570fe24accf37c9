"""The recompute modes, optimizers and sharding stages of a training step, declared once (the
CLI's choices and help, and TrainingOptions in training.py, derive from them). Kept apart from
training.py so that the command line can offer the choices without loading the training model."""

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


class Optimizer(NamedTuple):
    """An optimizer: `states` per parameter, each in float32 under
    mixed precision and in the weights' dtype otherwise, unless `blockwise_8bit`: bitsandbytes'
    blockwise 8-bit states (one byte per element and a float32 absmax per block of BNB_BLOCK
    elements, per state; a tensor under BNB_MIN_8BIT_SIZE elements keeps float32 states)."""

    help: str
    states: int
    blockwise_8bit: bool = False


OPTIMIZERS: dict[str, Optimizer] = {
    "sgd": Optimizer("SGD, no state", 0),
    "momentum": Optimizer("SGD with momentum, 1 state", 1),
    "adam": Optimizer("Adam, 2 states (momentum and variance)", 2),
    "adamw": Optimizer("AdamW: Adam's 2 states, weight decay decoupled", 2),
    "adam8bit": Optimizer("bitsandbytes' Adam8bit: Adam's 2 states in 1 byte each, a float32 absmax per 256 elements", 2, blockwise_8bit=True),
}  # fmt: skip
MASTER_BYTES = 4  # float32 master weights under mixed precision
STATE_BYTES_MIXED = 4  # optimizer states in float32 under mixed precision
# bitsandbytes/optim/optimizer.py, Optimizer2State.init_state: blocks = ceil(n / 256), absmax1 and
# absmax2 float32 of `blocks` entries; uint8 state1 and state2; min_8bit_size 4096 (below: float32 states).
# Its two 256-entry quantisation maps are shared by every parameter: left out.
BNB_BLOCK = 256
BNB_ABSMAX_BYTES = 4
BNB_MIN_8BIT_SIZE = 4096


def state_bytes(optimizer: str, tensor_elements: int, element_bytes: int) -> int:
    """The optimizer states of one weight tensor of `tensor_elements` elements, each state
    element `element_bytes` wide (float32 under mixed precision) unless the states are 8-bit."""
    opt = OPTIMIZERS[optimizer]
    if not opt.blockwise_8bit:
        return opt.states * tensor_elements * element_bytes
    if tensor_elements < BNB_MIN_8BIT_SIZE:
        return opt.states * tensor_elements * 4
    blocks = -(-tensor_elements // BNB_BLOCK)
    return opt.states * (tensor_elements + blocks * BNB_ABSMAX_BYTES)


# --zero's values: the stage each name means (FSDP's ShardingStrategy names beside DeepSpeed's stages);
# data_parallel.py shards by them. Here, with the other choices of a training step, so that the
# command line's choices do not load the sharding and pipeline arithmetic at start-up.
ZERO_STAGES: dict[str, int] = {"0": 0, "1": 1, "2": 2, "3": 3, "no_shard": 0, "shard_grad_op": 2, "full_shard": 3, "hybrid_shard": 3}
# --schedule's values (pipeline.py)
SCHEDULES = ("gpipe", "1f1b", "interleaved")
