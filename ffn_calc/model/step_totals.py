"""The totals of one training step of one layer (FLOPs and bytes), apart from training.py so that
the data-parallel and pipeline models built on them import them without importing the training
model that builds them."""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True)
class TrainingTotals:
    """FLOPs of one training step over the whole (batch, seq_len) input, and its memory in bytes."""

    forward_flops: int
    backward_flops: int
    recompute_flops: int
    dropout_flops: int
    step_flops: int
    forward_matmul_flops: int
    backward_matmul_flops: int
    backward_macs: int
    backward_elementwise_flops: int
    recompute_matmul_flops: int
    step_matmul_flops: int  # forward + backward + recomputed matmuls
    saved_activation_bytes: int
    weight_bytes: int
    gradient_bytes: int
    optimizer_state_bytes: int
    master_weight_bytes: int
    backward_transient_bytes: int  # the most gradients alive at once: a product's or an activation's output + input gradients
    recomputed_bytes: int  # what the recompute regenerates for the backward, alive during it (0 without recompute)
    peak_bytes: int
    bytes_per_param: int  # weights + gradients + optimizer states + master weights, per parameter
