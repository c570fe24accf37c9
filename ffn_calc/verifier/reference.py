"""A second, deliberately obvious implementation of the layer, in float64, one token at a time.

It shares no code with the fast path (forward.py, routing.py, arrays.py): no blocks, no
threads, no grouping of rows, no in-place kernels. Each token is a float64 vector; a linear
is that vector times the weight matrix plus the bias; every activation is the kernel table's
scalar `reference` formula (the math module, one float at a time); every norm is its kernel
record's `reference`, its definition written with math.fsum; the router is a softmax, a sort
(ties to the lower index), the top k and their weights renormalised, then each chosen expert runs on the
token and the results are summed by weight. `check_reference` (properties.py) compares the
fast path's output on a sample of tokens with this.

The only concession to speed: the tokens of a sample go through a weight matrix together,
so each block of its rows is converted to float64 once and not once per token; every token
still takes its own vector × matrix product, and nothing mixes two tokens.
"""

from __future__ import annotations

import json
import math
from concurrent.futures import ThreadPoolExecutor

import numpy as np

from ffn_calc.model import structure as names
from ffn_calc.model.layer import FFNConfig
from ffn_calc.verifier.kernels import kernel, norm_kernel

# Weight rows are converted to float64 a block of at most BLOCK_BYTES at a time, so the block is
# still in the core's cache when the product reads it: 64 rows of LLaMA-2-7B's 11,008 columns
# (5.6 MB) made the reference 4× slower than 5 rows (440 KB).
BLOCK_BYTES = 1 << 19


def rows_per_block(width: int) -> int:
    """Rows of a `width`-column weight converted to float64 at a time: BLOCK_BYTES' worth, at least one."""
    return max(1, BLOCK_BYTES // (8 * max(1, width)))


Params = dict[str, np.ndarray]
Vector = np.ndarray  # one token: a 1-D float64 array


def linear(tokens: list[Vector], w: np.ndarray, b: np.ndarray | None) -> list[Vector]:
    """Each token x as x·W + b, in float64: out[j] = Σ_i x[i]·W[i, j] + b[j]. The rows of W are
    converted to float64 a block at a time for all the tokens at once; the two halves of its
    rows run on two threads (NumPy lets go of the GIL in the copy and the product), each into
    its own sum, added at the end."""
    if not tokens:
        return []
    xs = np.stack(tokens)
    k, step = w.shape[0], rows_per_block(w.shape[1])
    half = -(-k // 2 // step) * step if k > 2 * step else k

    def part(start: int, stop: int) -> np.ndarray:
        total = np.zeros((len(tokens), w.shape[1]))
        block = np.empty((step, w.shape[1]))
        for lo in range(start, stop, step):
            hi = min(stop, lo + step)
            rows = block[: hi - lo]
            rows[...] = w[lo:hi]  # to float64
            total += xs[:, lo:hi] @ rows
        return total

    if half < k:
        with ThreadPoolExecutor(max_workers=1) as pool:
            second = pool.submit(part, half, k)
            total = part(0, half) + second.result()
    else:
        total = part(0, k)
    outs = list(total)
    if b is not None:
        bias = b.astype(np.float64)
        outs = [out + bias for out in outs]
    return outs


def activation(kind: str, h: Vector) -> Vector:
    """The nonlinearity's scalar formula (kernels.py `reference`), element by element."""
    formula = kernel(kind).reference
    return np.array([formula(float(v)) for v in h])


def norm(cfg: FFNConfig, p: Params, x: Vector) -> Vector:
    """The config's norm on one token: its kernel record's reference form (kernels.py), the
    definition written with math.fsum, independent of the kernel the fast path runs."""
    return norm_kernel(cfg.norm_type).reference(x, p)


def ffn(cfg: FFNConfig, p: Params, prefix: str, tokens: list[Vector], expert: int | None = None) -> list[Vector]:
    """The FFN core under `prefix`: act(x·W1 + b1)·W2 + b2, or for a GLU
    (act(x·W_gate + b_gate) ⊙ (x·W_up + b_up))·W_down + b_down, the gate and up halves of a
    fused W_gate_up being its first and last d_ff columns. `expert` picks one routed expert."""

    def weight(name: str) -> np.ndarray:
        return p[prefix + name] if expert is None else p[prefix + name][expert]

    def bias(name: str) -> np.ndarray | None:
        if prefix + name not in p:
            return None
        return weight(name)

    act = cfg.base_activation
    if not cfg.is_glu:
        w1, w2 = names.PLAIN_LINEARS
        hidden = [activation(act, h) for h in linear(tokens, weight(w1.weight), bias(w1.bias))]
        return linear(hidden, weight(w2.weight), bias(w2.bias))
    gate_spec, up_spec, down_spec = names.GATED_LINEARS
    if cfg.fused:
        fused = names.FUSED_LINEARS[0]
        both = linear(tokens, weight(fused.weight), bias(fused.bias))
        width = both[0].size // 2
        gates, ups = [v[:width] for v in both], [v[width:] for v in both]
    else:
        gates = linear(tokens, weight(gate_spec.weight), bias(gate_spec.bias))
        ups = linear(tokens, weight(up_spec.weight), bias(up_spec.bias))
    hidden = [activation(act, g) * u for g, u in zip(gates, ups, strict=True)]
    return linear(hidden, weight(down_spec.weight), bias(down_spec.bias))


def softmax(logits: Vector) -> list[float]:
    top = max(logits.tolist())
    exps = [math.exp(v - top) for v in logits.tolist()]
    total = math.fsum(exps)
    return [e / total for e in exps]


def route(cfg: FFNConfig, logits: Vector, given: list[int] | None = None) -> list[tuple[int, float]]:
    """The k most likely experts of one token, most likely first (ties to the lower index), or
    the `given` ones, each with its probability divided by the sum of the k chosen."""
    probs = softmax(logits)
    ranked = sorted(range(cfg.experts), key=lambda e: (-probs[e], e))
    chosen = ranked[: cfg.top_k] if given is None else given
    total = math.fsum(probs[e] for e in chosen)
    return [(e, probs[e] / total) for e in chosen]


def moe(cfg: FFNConfig, p: Params, tokens: list[Vector], given: list[list[int] | None] | None = None) -> list[Vector]:
    """Shared experts (scaled by sigmoid(x·w_s) under Qwen's gate) plus the weighted sum of
    each token's top-k routed experts (or, for a token whose `given` is not None, those)."""
    outs = [np.zeros(cfg.d_model) for _ in tokens]
    if cfg.shared_experts:
        shared = ffn(cfg, p, names.SHARED, tokens)
        if cfg.shared_expert_gate:
            gates = linear(tokens, p[names.W_SHARED_EXPERT_GATE], None)
            shared = [s * (1.0 / (1.0 + math.exp(-float(g[0])))) for s, g in zip(shared, gates, strict=True)]
        outs = [o + s for o, s in zip(outs, shared, strict=True)]
    given = given or [None] * len(tokens)
    choices = [route(cfg, logits, g) for logits, g in zip(linear(tokens, p[names.W_ROUTER], None), given, strict=True)]
    for e in range(cfg.experts):  # each expert on the tokens that chose it, one product each
        mine = [(t, w) for t, chosen in enumerate(choices) for expert, w in chosen if expert == e]
        if not mine:
            continue
        ys = ffn(cfg, p, names.EXPERT, [tokens[t] for t, _ in mine], expert=e)
        for (t, w), y in zip(mine, ys, strict=True):
            outs[t] = outs[t] + w * y
    return outs


def reference(cfg: FFNConfig, p: Params, xs: np.ndarray, given: list[list[int] | None] | None = None) -> np.ndarray:
    """The layer on each row of `xs` (tokens, d_model), each row on its own, as float64:
    FFN(x), pre-norm x + FFN(N(x)), or post-norm N(x + FFN(x)); `given`: the experts of the
    tokens whose routing is not to be chosen here. Capacity-factor routing is not per token
    (which pairs are dropped depends on the other tokens), so it is refused."""
    if cfg.expert_capacity is not None:
        raise ValueError("the reference routes each token on its own: capacity-factor routing depends on the other tokens")
    tokens = [row.astype(np.float64) for row in xs.reshape(-1, cfg.d_model)]
    inner = [norm(cfg, p, x) for x in tokens] if cfg.norm == "pre" else tokens
    ys = moe(cfg, p, inner, given) if cfg.is_moe else ffn(cfg, p, "", inner)
    if cfg.norm != "none":
        ys = [x + y for x, y in zip(tokens, ys, strict=True)]
    if cfg.norm == "post":
        ys = [norm(cfg, p, r) for r in ys]
    return np.array(ys).reshape(xs.shape)


# --- packed weights, dequantized from the formats' definitions ------------------------------------
#
# Written apart from packed.py's tile dequantizer, so a bug in one is seen against the other: the
# int32 words read as their little-endian bytes, unpacked to a stream of bits (numpy.unpackbits)
# and cut into b-bit fields; bitsandbytes' bytes unpacked most significant bit first (so the high
# nibble, the even value, comes first) and its nested_offset read with json.loads; E2M1 decoded
# from its bits (sign, 2 exponent bits of bias 1, 1 mantissa bit), E4M3 from its bits (sign, 4
# exponent bits of bias 7, 3 mantissa bits; exponent 0 subnormal) and E8M0 as 2^(e − 127).


def _fields(words: np.ndarray, b: int) -> np.ndarray:
    """int32 words (…, w) → their b-bit fields (…, 32·w/b), field i at bits b·i..b·i+b−1 of the
    little-endian stream of the words' bits."""
    raw = np.ascontiguousarray(words).astype("<i4").view(np.uint8)  # (…, 4·w), little-endian
    bits = np.unpackbits(raw, axis=-1, bitorder="little").reshape(*words.shape[:-1], -1, b)
    return (bits * (1 << np.arange(b))).sum(axis=-1).astype(np.float64)


def _nibbles(words: np.ndarray) -> np.ndarray:
    return _fields(words, 4)


def _e2m1(code: np.ndarray) -> np.ndarray:
    sign = np.where(code & 8, -1.0, 1.0)
    exp, mant = (code >> 1) & 3, (code & 1).astype(np.float64)
    return sign * np.where(exp == 0, 0.5 * mant, np.exp2(exp.astype(np.float64) - 1) * (1 + 0.5 * mant))


def _e4m3(byte: np.ndarray) -> np.ndarray:
    byte = byte.astype(np.int64)
    sign = np.where(byte & 0x80, -1.0, 1.0)
    exp, mant = (byte >> 3) & 15, (byte & 7).astype(np.float64)
    return sign * np.where(exp == 0, mant / 8 * 2.0**-6, np.exp2(exp.astype(np.float64) - 7) * (1 + mant / 8))


def dequantize(fmt: str, arrays: dict[str, np.ndarray], k: int, n: int, group: int) -> np.ndarray:
    """One (K, N) matrix of a packed format as float64, from its stored arrays."""
    if fmt.startswith("gptq_int"):
        b = int(fmt[len("gptq_int") :])
        q = _fields(arrays["qweight"].T, b).T  # (K, N): along K within a column's words
        z = _fields(arrays["qzeros"], b)[arrays["g_idx"]] + 1  # v1 stores zero − 1
        return arrays["scales"].astype(np.float64)[arrays["g_idx"]] * (q - z)
    if fmt == "awq_int4":
        order = [0, 2, 4, 6, 1, 3, 5, 7]  # AutoAWQ's pack order: nibble t holds column 8j + order[t]
        inverse = np.argsort(order)

        def unpack(words: np.ndarray) -> np.ndarray:
            nib = _nibbles(words).reshape(words.shape[0], -1, 8)
            return nib[:, :, inverse].reshape(words.shape[0], -1)

        g = np.arange(k) // group
        return arrays["scales"].astype(np.float64)[g] * (unpack(arrays["qweight"]) - unpack(arrays["qzeros"])[g])
    if fmt == "mxfp4":
        blocks = arrays["_blocks"]  # (N, K/32, 16)
        codes = np.stack([blocks & 15, blocks >> 4], axis=-1).reshape(n, k // 32, 32)
        scale = np.exp2(arrays["_scales"].astype(np.float64) - 127)
        return (_e2m1(codes) * scale[:, :, None]).reshape(n, k).T
    if fmt in ("nf4", "nf4_dq"):
        bits = np.unpackbits(arrays["weight"].reshape(-1))  # most significant bit first: the even value's nibble first
        codes = (bits.reshape(-1, 4) * np.array([8, 4, 2, 1])).sum(axis=1)[: k * n]
        blocks = np.arange(k * n) // group
        if fmt == "nf4":
            absmax = arrays["weight.absmax"].astype(np.float64)
        else:
            state = json.loads(bytes(arrays["weight.quant_state.bitsandbytes__nf4"]).decode())
            i = np.arange(len(arrays["weight.absmax"]))
            absmax = (arrays["weight.nested_quant_map"].astype(np.float64)[arrays["weight.absmax"]]
                      * arrays["weight.nested_absmax"].astype(np.float64)[i // state["nested_blocksize"]] + state["nested_offset"])  # fmt: skip
        flat = arrays["weight.quant_map"].astype(np.float64)[codes] * absmax[blocks]
        return flat.reshape(n, k).T  # the torch weight (N, K), flattened
    if fmt == "nvfp4":
        pairs = arrays["weight"]  # (N, K/2)
        nvcodes = np.stack([pairs & 15, pairs >> 4], axis=-1).reshape(n, k)
        scale = _e4m3(arrays["weight_scale"].view(np.uint8))[:, np.arange(k) // 16] * float(arrays["weight_scale_2"])
        return (_e2m1(nvcodes) * scale).T
    if fmt in ("fp8_block", "fp8_row"):
        values = _e4m3(arrays["weight"].view(np.uint8))  # (N, K)
        if fmt == "fp8_row":
            return (values * arrays["weight_scale"].astype(np.float64)).T
        s = arrays["weight_scale_inv"].astype(np.float64)
        return (values * s[np.arange(n) // group][:, np.arange(k) // group]).T
    raise KeyError(fmt)
