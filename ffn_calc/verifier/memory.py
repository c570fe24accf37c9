"""How much memory a verify run needs, decided before anything is allocated: the forward
peak the model predicts, the checks on a sample of tokens that follow it, and the scratch the NumPy pass holds beyond
the tensors the model counts. When the whole pass does not fit, it runs in chunks of tokens;
when even one token does not, verify is refused with the size it would need."""

from __future__ import annotations

import os
from dataclasses import replace

from ffn_calc.errors import VerifyRefused
from ffn_calc.model.forward import FFNReport, analyze, chunked_peak
from ffn_calc.model.layer import FFNConfig
from ffn_calc.verifier import arrays, packed, reference
from ffn_calc.verifier.compare import PEAK_TOLERANCE
from ffn_calc.verifier.observe import SAMPLE_TOKENS

# What tracemalloc counts in a forward pass beyond its arrays: the recorder's and the threads'
# Python objects. Measured at 9–19 KB on small dense layers (`verify 1 4 8 --d-ff 32`,
# `verify 2 16 64`) and 40–100 KB with 64–256 experts, whose products the recorder lists.
INTERPRETER_BYTES = 1 << 16
MEMORY_SHARE = 0.8  # of the memory the OS reports available


def available_memory_bytes() -> int:
    """MemAvailable from /proc/meminfo, else physical memory."""
    try:
        with open("/proc/meminfo") as f:
            for line in f:
                if line.startswith("MemAvailable:"):
                    return int(line.split()[1]) * 1024
    except OSError:
        pass
    return os.sysconf("SC_PAGE_SIZE") * os.sysconf("SC_PHYS_PAGES")


def widest_row(cfg: FFNConfig) -> int:
    """The widest row an elementwise step works on: d_model, the (shared experts') d_ff, or the experts' logits."""
    return max(cfg.d_model, cfg.d_ff * max(1, cfg.shared_experts), cfg.experts)


def peak_allowance(prediction: FFNReport) -> int:
    """The absolute allowance of the peak check above its prediction, for a pass whose narrow
    products run in the workspace (set aside by its observed bytes): the interpreter's objects
    (INTERPRETER_BYTES, measured) and the elementwise threads' blocks (arrays.elementwise_scratch_bytes)."""
    return INTERPRETER_BYTES + arrays.elementwise_scratch_bytes(widest_row(prediction.config))


def routing_bytes_bound(cfg: FFNConfig) -> int:
    """At most what the routing's integer arrays take (forward.moe): per (token, slot) pair the
    top-k index, the grouping order, the slot and the rank in int64 and a kept flag; per expert
    its count and start. 0 for a dense layer."""
    return (cfg.tokens * cfg.top_k * (4 * 8 + 1) + 2 * 8 * cfg.experts) if cfg.is_moe else 0


def scratch_allowance(prediction: FFNReport) -> int:
    """What the pass may hold beyond the tensors the prediction counts, for planning the memory:
    the peak check's absolute allowance, the routing's integer arrays, in a narrow dtype
    (float16, bfloat16, float8) the workspace of the largest product (arrays.narrow_scratch_bytes)
    and, with packed weights (--weight-dtype), the packed products' scratch (packed.packed_scratch_bytes)."""
    cfg = prediction.config
    products = [s.matmul for s in prediction.stages if s.matmul]
    narrow = packed_bytes = 0
    if cfg.dtype in arrays.NARROW:
        narrow = max((arrays.narrow_scratch_bytes(*p, cfg.dtype) for p in products), default=0)
    if cfg.weight_dtype in packed.VERIFIED:
        packed_bytes = packed.packed_scratch_bytes(products, cfg.weight_dtype, cfg.dtype)
    return peak_allowance(prediction) + routing_bytes_bound(cfg) + narrow + packed_bytes


def checks_bytes(prediction: FFNReport) -> int:
    """What the structural and reference checks hold after the main pass (properties.py): the
    weights and the input, still alive; one pass over three copies of the sample
    (observe.SAMPLE_TOKENS tokens each) and the Conv1d form on it, at most twice such a
    pass's activations; and the float64 reference, a block of weight rows and a few vectors
    of the widest width per sampled token."""
    cfg = prediction.config
    m = min(SAMPLE_TOKENS, cfg.tokens)
    sample_pass = analyze(replace(cfg, batch=3, seq_len=m)).peak.activation_bytes
    widest = max(cfg.d_model, 2 * cfg.d_ff * max(1, cfg.shared_experts), cfg.experts)
    reference_bytes = 2 * max(reference.BLOCK_BYTES, 8 * widest) + 8 * widest * 8 * m
    input_bytes = cfg.tokens * cfg.d_model * cfg.dtype_bytes
    return prediction.totals.weight_bytes + input_bytes + 2 * sample_pass + reference_bytes


def required_bytes(prediction: FFNReport, chunk_tokens: int = 0) -> int:
    """What a verify run allocates at most: the larger of the forward peak (whole, or run
    `chunk_tokens` tokens at a time) and what the checks on the sampled tokens hold after it,
    plus as much again as the peak check tolerates above it (compare.PEAK_TOLERANCE) and the
    scratch allowance."""
    forward_peak = chunked_peak(prediction.config, chunk_tokens) if chunk_tokens else prediction.totals.peak_bytes
    held = max(forward_peak, checks_bytes(prediction))
    # The scratch is a chunk's: its products' workspace and its routing arrays.
    run = analyze(replace(prediction.config, batch=1, seq_len=chunk_tokens)) if chunk_tokens else prediction
    return held + int(PEAK_TOLERANCE * held) + scratch_allowance(run)


def _size(n: int | float) -> str:
    for unit, size in (("TiB", 2**40), ("GiB", 2**30), ("MiB", 2**20)):
        if n >= size:
            return f"{n / size:.2f} {unit}"
    return f"{n / 2**10:.2f} KiB"


def memory_limit(limit_bytes: int | None) -> tuple[int, str]:
    if limit_bytes is None:
        return int(available_memory_bytes() * MEMORY_SHARE), f"{MEMORY_SHARE:.0%} of the memory available"
    return limit_bytes, "--max-memory"


def plan_chunks(prediction: FFNReport, limit_bytes: int | None) -> tuple[int, int]:
    """(chunk_tokens, limit): 0 when the whole pass fits, else the most tokens per chunk that
    fit. Raises VerifyRefused, before anything is allocated, when even one token does not."""
    limit, where = memory_limit(limit_bytes)
    cfg = prediction.config
    need = required_bytes(prediction)
    if need <= limit:
        return 0, limit
    t = prediction.totals
    floor = required_bytes(prediction, 1)
    if floor > limit or cfg.expert_capacity is not None:
        why = (
            f"even one token at a time needs {_size(floor)} (weights {_size(t.weight_bytes)})"
            if floor > limit
            else f"the whole pass needs {_size(need)}, and capacity-factor routing cannot be split into chunks"
        )
        raise VerifyRefused(f"verify cannot run in {_size(limit)} ({where}): {why}; use smaller sizes or a smaller dtype")
    lo, hi = 1, cfg.tokens  # the largest chunk that fits: required_bytes grows with it
    while lo < hi:
        mid = (lo + hi + 1) // 2
        if required_bytes(prediction, mid) <= limit:
            lo = mid
        else:
            hi = mid - 1
    return lo, limit


def check_backward_fits(prediction: FFNReport, limit: int) -> None:
    """The backward check runs the whole layer at once and keeps its intermediates: the weights
    and their gradients, and about eight activation-sized arrays. Refuse it, before allocating,
    when that would not fit (the forward checks can still run in chunks)."""
    cfg = prediction.config
    if cfg.expert_capacity is not None:
        raise VerifyRefused("verify --backward: training with capacity buffers (dropped tokens) is not modelled; drop --capacity-factor")
    widest = cfg.tokens * max(cfg.d_ff * (2 if cfg.is_glu else 1), cfg.d_model) * cfg.dtype_bytes
    need = 2 * prediction.totals.weight_bytes + 8 * widest + scratch_allowance(prediction)
    if need > limit:
        raise VerifyRefused(f"verify --backward would need about {_size(need)} but the limit is {_size(limit)}; use smaller sizes")
