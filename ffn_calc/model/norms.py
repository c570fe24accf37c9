"""The norm registry: every normalisation `--norm pre|post` can put around the FFN, declared
once with all that is known about it: its stage's name, its weights, its costs, what its
backward keeps. Choices, help text, the convention sentence, the stages, the training rules and
the verifier's kernel table (held to this one by a test) derive from it; config.json's family
table (catalogue/families.py) names each family's norm by its name here.

Costs are counted like an activation's: the arithmetic of the formula as written over a row of
d elements, rsqrt as one FLOP. The ÷d of a forward mean is folded into what follows it (not
counted), as LayerNorm has always been counted here; the backward counts it once per row for
each mean it takes. A name that is not registered raises; nothing falls through to LayerNorm.
"""

from __future__ import annotations

from typing import NamedTuple

from ffn_calc.model import structure as names


class NormType(NamedTuple):
    """One kind of norm over the d_model features of each row (token).

    `weights` are its parameter vectors, each of d_model elements, the scale γ first, then the
    shift β (their names, structure.py); `stage` is the name and op of its stage. Forward and
    backward FLOPs are per element and per row, with how they are counted in `flops_count` and
    `backward_count`. For backward it keeps its input and `stats` per row in float32
    (`stats_tensor`). `config_keys` are the config.json fields (its epsilon) that name it."""

    name: str
    label: str
    formula: str
    paper: str
    stage: str
    symbol: str
    weights: tuple[str, ...]
    flops_per_element: int
    flops_per_row: int
    flops_count: str
    backward_flops_per_element: int
    backward_flops_per_row: int
    weight_grad_flops_per_element: int
    backward_formula: str
    backward_count: str
    stats: tuple[str, ...]
    stats_tensor: str
    config_keys: tuple[str, ...]

    @property
    def params_per_element(self) -> int:
        """Parameters per feature of d_model: one per weight vector."""
        return len(self.weights)

    @property
    def saved_bytes_per_row(self) -> int:
        return STAT_BYTES * len(self.stats)

    def flops(self, rows: int, width: int) -> int:
        return rows * (self.flops_per_element * width + self.flops_per_row)

    def backward_flops(self, rows: int, width: int) -> int:
        return rows * (self.backward_flops_per_element * width + self.backward_flops_per_row)

    def weight_grad_flops(self, rows: int, width: int) -> int:
        """The part of the backward that its weights' gradients take (all of it that runs when
        its input needs no gradient)."""
        return rows * width * self.weight_grad_flops_per_element


STAT_BYTES = 4  # per-row statistics are kept in float32 whatever the dtype

_ALL = (
    NormType(
        "layer", "LayerNorm", "(x − mean(x)) / √(var(x) + ε) · γ + β", "Ba et al. 2016",
        "layernorm", "LN", (names.LN_GAMMA, names.LN_BETA),
        7, 2, "mean 1, centre 1, variance 2 (square, sum), normalise 1, affine 2 (scale, shift); "
        "per row eps-add + rsqrt",
        11, 2, 3, "dx = (γ·dy − mean(γ·dy) − x̂·mean(γ·dy·x̂)) / σ, dγ = Σ dy·x̂, dβ = Σ dy",
        "dγ 2, dβ 1, γ·dy 1, its sum 1, ·x̂ 1, its sum 1, x̂·mean 1, two subtracts 2, ÷σ 1; "
        "per row the two means' ÷d",
        ("mean", "1/σ"), names.LAYERNORM_STATS, ("layer_norm_eps", "layer_norm_epsilon"),
    ),
    NormType(
        "rms", "RMSNorm", "x / √(mean(x²) + ε) · γ", "Zhang & Sennrich 2019",
        "rmsnorm", "RMSNorm", (names.RMS_GAMMA,),
        4, 2, "square 1, sum 1, normalise 1, scale 1; per row eps-add + rsqrt",
        8, 1, 2, "dx = (γ·dy − x̂·mean(γ·dy·x̂)) / rms, dγ = Σ dy·x̂",
        "dγ 2, γ·dy 1, ·x̂ 1, its sum 1, x̂·mean 1, subtract 1, ÷rms 1; per row the mean's ÷d",
        ("1/rms",), names.RMSNORM_STATS, ("rms_norm_eps",),
    ),
    # Cohere's CohereLayerNorm (transformers, modeling_cohere.py; bias=False): LayerNorm's mean,
    # variance and normalisation, then γ and no β. Counted as LayerNorm without the shift (one
    # FLOP per element less forward) and without dβ (one less backward). Its config.json keys
    # its epsilon as LayerNorm's (layer_norm_eps), so no key names it: the family table does
    # (catalogue/families.py, model_type cohere and cohere2).
    NormType(
        "layer_nobias", "LayerNorm (no bias)", "(x − mean(x)) / √(var(x) + ε) · γ", "Cohere's CohereLayerNorm (modeling_cohere.py)",
        "layernorm_nobias", "LN", (names.LN_GAMMA,),
        6, 2, "mean 1, centre 1, variance 2 (square, sum), normalise 1, scale 1 (LayerNorm's, no shift); per row eps-add + rsqrt",
        10, 2, 2, "dx = (γ·dy − mean(γ·dy) − x̂·mean(γ·dy·x̂)) / σ, dγ = Σ dy·x̂",
        "dγ 2, γ·dy 1, its sum 1, ·x̂ 1, its sum 1, x̂·mean 1, two subtracts 2, ÷σ 1 (LayerNorm's, no dβ); "
        "per row the two means' ÷d",
        ("mean", "1/σ"), names.LAYERNORM_STATS, (),
    ),
    # OLMo-1's OlmoLayerNorm (transformers, modeling_olmo.py): F.layer_norm with weight and bias
    # None, no parameters at all. Counted as LayerNorm without the affine (two FLOPs per element
    # less forward) and without dγ, dβ and γ·dy (four less backward); with no weights, its
    # backward runs only when its input needs a gradient. Its config.json has no epsilon (1e-5
    # is fixed in the code): the family table names it (model_type olmo).
    NormType(
        "layer_nonparam", "LayerNorm (no affine)", "(x − mean(x)) / √(var(x) + ε)", "OLMo-1's OlmoLayerNorm (modeling_olmo.py)",
        "layernorm_nonparam", "LN", (),
        5, 2, "mean 1, centre 1, variance 2 (square, sum), normalise 1 (LayerNorm's, no affine); per row eps-add + rsqrt",
        7, 2, 0, "dx = (dy − mean(dy) − x̂·mean(dy·x̂)) / σ",
        "Σ dy 1, dy·x̂ 1, its sum 1, x̂·mean 1, two subtracts 2, ÷σ 1 (LayerNorm's, no dγ, dβ or γ·dy); per row the two means' ÷d",
        ("mean", "1/σ"), names.LAYERNORM_STATS, (),
    ),
)  # fmt: skip

NORM_TYPES: dict[str, NormType] = {n.name: n for n in _ALL}
BY_STAGE: dict[str, NormType] = {n.stage: n for n in _ALL}
WEIGHTS = frozenset(w for n in _ALL for w in n.weights)


def norm_type(name: str) -> NormType:
    """The registry entry called `name`, or KeyError."""
    return NORM_TYPES[name]
