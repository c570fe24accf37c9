"""The inputs of one feed-forward layer, validated, and the rules that turn what a user typed
into sizes (d_ff as N, Mx or the parameter-matched GLU width). Standard library only."""

from __future__ import annotations

import math
import re
from collections.abc import Iterable
from dataclasses import dataclass, field, replace
from typing import TYPE_CHECKING

from ffn_calc.errors import ConfigError
from ffn_calc.json_fields import JsonForm, json_key
from ffn_calc.model.activations import ACTIVATIONS, GATED_FORMS, Activation, activation
from ffn_calc.model.attention import Attention
from ffn_calc.model.dtypes import DTYPES, packing
from ffn_calc.model.norms import NORM_TYPES, NormType
from ffn_calc.model.norms import norm_type as _norm_type
from ffn_calc.model.weight_formats import WEIGHT_FORMATS, GroupRule, Packing

if TYPE_CHECKING:
    from fractions import Fraction

NORM_PLACEMENTS = ("none", "pre", "post")  # where the norm goes; which norm it is: NORM_TYPES (norms.py)

# Far beyond any real model, small enough that a typo such as 10^30 is caught as one.
MAX_SIZE = 2**40
DEFAULT_FF_MULTIPLIER = 4


def check_size(argument: str, value: object, minimum: int = 1) -> int:
    """Return `value` as a size (a whole number from `minimum` to MAX_SIZE) or raise ConfigError."""
    if isinstance(value, bool) or not isinstance(value, int):
        raise ConfigError(argument, f"must be a whole number, got {value!r}")
    if value < minimum:
        raise ConfigError(argument, f"must be at least {minimum}, got {value}")
    if value > MAX_SIZE:
        raise ConfigError(argument, f"must be at most 2^40 = {MAX_SIZE:,}, got {value:.3g}")
    return value


_INT_RE = re.compile(r"[+]?\d+(_\d+)*")
_MULTIPLIER_RE = re.compile(r"(?P<num>\d+(\.\d+)?|\.\d+)(/(?P<den>\d+))?[x×]")


def parse_size(argument: str, text: str | int, minimum: int = 1) -> int:
    """Parse a size typed by the user: digits only (4096, 4_096); no floats, no exponents."""
    if isinstance(text, int):  # a default value, already a number
        return check_size(argument, text, minimum)
    text = text.strip()
    if not _INT_RE.fullmatch(text):
        raise ConfigError(argument, f"must be a whole number such as 4096, got {text!r}")
    return check_size(argument, int(text), minimum)


@dataclass(frozen=True)
class DFF:
    """A resolved d_ff and, in words, how it was reached."""

    value: int
    rule: str


def glu_matched_d_ff(d_model: int, multiple_of: int | None = None, ffn_dim_multiplier: float | None = None) -> DFF:
    """The GLU width that keeps a 4× FFN's parameters, as LLaMA computes it (llama/model.py):
    f = int(2·4·d/3); f = int(m·f) if a multiplier m is given; f = M·ceil(f/M) for multiple_of M.
    The multiplier is applied in floating point, exactly as LLaMA's code does."""
    four = DEFAULT_FF_MULTIPLIER * d_model
    value = int(2 * four / 3)
    steps = [f"int(2 × 4 × {d_model} / 3) = {value}"]
    if ffn_dim_multiplier is not None:
        if not (ffn_dim_multiplier > 0 and math.isfinite(ffn_dim_multiplier)):
            raise ConfigError("--ffn-dim-multiplier", f"must be a positive number, got {ffn_dim_multiplier}")
        scaled = int(ffn_dim_multiplier * value)
        steps.append(f"int({ffn_dim_multiplier:g} × {value}) = {scaled}")
        value = scaled
    if multiple_of is not None:
        check_size("--multiple-of", multiple_of)
        rounded = multiple_of * ((value + multiple_of - 1) // multiple_of)
        steps.append(f"{multiple_of} × ceil({value} / {multiple_of}) = {rounded}")
        value = rounded
    check_size("--d-ff", value)
    return DFF(value, "GLU parameter-matched: " + " → ".join(steps))


def resolve_d_ff(
    d_model: int,
    spec: str | int | None,
    multiple_of: int | None = None,
    ffn_dim_multiplier: float | None = None,
) -> DFF:
    """d_ff from `--d-ff`: absent → 4 × d_model; `N` → N; `Mx` → M × d_model, which must be
    whole; `glu` → the parameter-matched GLU width (with --multiple-of, --ffn-dim-multiplier)."""
    if isinstance(spec, str) and spec.strip().lower() == "glu":
        return glu_matched_d_ff(d_model, multiple_of, ffn_dim_multiplier)
    if multiple_of is not None or ffn_dim_multiplier is not None:
        raise ConfigError(
            "--multiple-of" if multiple_of is not None else "--ffn-dim-multiplier",
            "applies to the parameter-matched GLU width only; add --d-ff glu",
        )
    if spec is None:
        value = DEFAULT_FF_MULTIPLIER * d_model
        return DFF(value, f"default 4 × d_model = 4 × {d_model} = {value}")
    if isinstance(spec, int):
        return DFF(check_size("--d-ff", spec), f"given: {spec}")
    text = spec.strip().lower()
    match = _MULTIPLIER_RE.fullmatch(text)
    if match is None:
        if text.endswith(("x", "×")):
            raise ConfigError("--d-ff", f"the multiplier {spec!r} is not a number; write it like 4x or 2.5x or 8/3x")
        if not _INT_RE.fullmatch(text):
            raise ConfigError("--d-ff", f"expected a number (3072), a multiple (4x) or glu, got {spec!r}")
        return DFF(parse_size("--d-ff", text), f"given: {text}")
    if match["den"] is not None and int(match["den"]) == 0:
        raise ConfigError("--d-ff", f"the multiplier {spec!r} divides by zero; write it like 4x or 8/3x")
    from fractions import Fraction  # only multipliers need it; kept off the start-up path

    factor = Fraction(match["num"]) / Fraction(match["den"] or 1)
    exact = factor * d_model
    if exact.denominator != 1:
        raise ConfigError(
            "--d-ff",
            f"{spec} × d_model {d_model} = {float(exact):g} is not a whole number; pick a multiplier that gives one or give d_ff directly",
        )
    value = check_size("--d-ff", int(exact))
    return DFF(value, f"{text[:-1]} × d_model = {text[:-1]} × {d_model} = {value}")


@dataclass(frozen=True)
class FFNConfig(JsonForm):
    """The inputs of one feed-forward layer.

    Sizes are element counts. `activation` is a plain nonlinearity (relu, gelu, gelu_tanh,
    silu) or a gated one (swiglu, geglu, geglu_tanh, reglu: act(x·W_gate) ⊙ (x·W_up)).
    `fused` stores a GLU's gate and up weights as one (d_model, 2·d_ff) matrix. `experts` > 0
    makes a mixture of experts, each of width d_ff, with `top_k` active per token, plus
    `shared_experts` always active (with `shared_expert_gate`, their output scaled per token by
    sigmoid(x·w_s), w_s of shape (d_model, 1), as Qwen2-MoE does); `capacity_factor` pads each expert to a fixed buffer
    (GShard/Switch style) instead of routing dropless. `layers` multiplies the model totals.
    `dtype` names the storage type of weights and activations (`dtype_bytes` each);
    `weight_dtype`, when given, stores the FFN's weight matrices apart, as a checkpoint format
    does (GPTQ, AWQ, NF4, MXFP4, NVFP4, FP8 with block or row scales: weight_formats.py; or a plain
    element type), with `group_size` as the format reads it (0: one group over all of K); biases,
    norms, the router and activations stay in `dtype`. `dense_layers` more layers have a dense FFN of width `dense_d_ff` (DeepSeek's first
    layers, Qwen-MoE's mlp_only_layers), sharing the activation, biases and norm: a mixed stack
    of two layer groups, whose order does not change a total. `norm`
    places a residual and a norm around the FFN (none, pre, post); `norm_type` says which norm
    (layer: LayerNorm, rms: RMSNorm; the registry in norms.py). With norm none it counts nothing
    and records what a preset or config.json says the model uses.
    """

    batch: int
    seq_len: int
    d_model: int
    d_ff: int
    activation: str = "relu"
    bias: bool = True
    norm: str = "none"
    norm_type: str = "layer"
    dtype: str = "float32"
    d_ff_rule: str = ""
    fused: bool = False
    experts: int = 0
    top_k: int = 0
    shared_experts: int = 0
    shared_expert_gate: bool = False
    capacity_factor: float | None = None
    router_bias: bool = False  # gpt-oss: the router's linear has a bias of `experts` entries
    layers: int = 1
    dense_layers: int = 0
    dense_d_ff: int = 0  # 0: no dense layers
    weight_dtype: str | None = None  # None: the weights are in `dtype`
    group_size: int | None = None  # entries per scale along K, for a grouped weight type
    # The attention around the FFN (a preset's or config.json's), for explain's share of the layer; not in JSON.
    attention: Attention | None = field(default=None, metadata=json_key(omit=True))
    # Where the values came from (preset, config.json, flags); in JSON, the derived figures follow.
    origin: tuple[str, ...] = field(default=(), metadata=json_key(then=("tokens", "dtype_bytes", "weight_bits", "expert_capacity")))

    def __post_init__(self) -> None:
        check_size("BATCH", self.batch)
        check_size("SEQ_LEN", self.seq_len)
        check_size("D_MODEL", self.d_model)
        check_size("--d-ff", self.d_ff)
        check_size("--layers", self.layers)
        _check_choice("--activation", self.activation, ACTIVATIONS)
        _check_choice("--norm", self.norm, NORM_PLACEMENTS)
        _check_choice("--norm-type", self.norm_type, NORM_TYPES)
        _check_choice("--dtype", self.dtype, DTYPES)
        if DTYPES[self.dtype].weights_only:
            raise ConfigError("--dtype", f"{self.dtype} is a format for weights only; give --weight-dtype {self.dtype} and a --dtype for activations")
        if DTYPES[self.dtype].compute_only:
            raise ConfigError("--dtype", f"{self.dtype} is what FP4 products compute in, not a storage type: an FP4 activation exists only as a "
                              "W4A4 product's quantized input; give --weight-dtype nvfp4 and a 16-bit --dtype")  # fmt: skip
        if self.weight_dtype is not None:
            self._check_weight_dtype()
        self._check_group_size()
        check_size("--dense-layers", self.dense_layers, minimum=0)
        check_size("--dense-d-ff", self.dense_d_ff, minimum=0)
        if self.dense_layers and not self.dense_d_ff:
            raise ConfigError("--dense-layers", "the dense layers need their width; add --dense-d-ff")
        for name, flag in (
            ("--bias", self.bias),
            ("--fused", self.fused),
            ("--shared-expert-gate", self.shared_expert_gate),
            ("router_bias", self.router_bias),
        ):
            if not isinstance(flag, bool):
                raise ConfigError(name, f"must be true or false, got {flag!r}")
        if self.capacity_factor is not None and (isinstance(self.capacity_factor, bool) or not isinstance(self.capacity_factor, int | float)):
            raise ConfigError("--capacity-factor", f"must be a number such as 1.25, got {self.capacity_factor!r}")
        if self.fused and not self.is_glu:
            raise ConfigError("--fused", f"a fused gate/up matrix needs a gated activation ({', '.join(GATED_FORMS)}), not {self.activation}")
        check_size("--experts", self.experts, minimum=0)
        check_size("--shared-experts", self.shared_experts, minimum=0)
        if self.experts:
            check_size("--top-k", self.top_k)
            if self.top_k > self.experts:
                raise ConfigError("--top-k", f"cannot exceed --experts ({self.experts}), got {self.top_k}")
        else:
            for name, value in (("--top-k", self.top_k), ("--shared-experts", self.shared_experts)):
                if value:
                    raise ConfigError(name, "needs --experts (a mixture of experts)")
            if self.capacity_factor is not None:
                raise ConfigError("--capacity-factor", "needs --experts (a mixture of experts)")
        if self.router_bias and not self.experts:
            raise ConfigError("router_bias", "biases the router of a mixture of experts; add --experts")
        if self.shared_expert_gate and not self.shared_experts:
            raise ConfigError("--shared-expert-gate", "gates the shared experts' output; add --shared-experts (and --experts)")
        if self.capacity_factor is not None and not (0 < self.capacity_factor < 1e6):
            raise ConfigError("--capacity-factor", f"must be a positive number such as 1.25, got {self.capacity_factor}")
        if not self.d_ff_rule:
            object.__setattr__(self, "d_ff_rule", f"given: {self.d_ff}")

    @property
    def tokens(self) -> int:
        """batch × seq_len: the rows every position-wise matmul sees."""
        return self.batch * self.seq_len

    @property
    def dtype_bytes(self) -> int:
        return DTYPES[self.dtype].bytes

    def _check_weight_dtype(self) -> None:
        """A registered --weight-dtype that can store weights; an earlier name becomes its format, said in `origin`."""
        assert self.weight_dtype is not None
        _check_choice("--weight-dtype", self.weight_dtype, DTYPES)
        kind = DTYPES[self.weight_dtype]
        if kind.compute_only:
            raise ConfigError(
                "--weight-dtype", f"{self.weight_dtype} values need their block scales: give nvfp4 (E4M3 per 16) or mxfp4 (E8M0 per 32)"
            )
        if kind.alias_of is not None:
            object.__setattr__(self, "weight_dtype", kind.alias_of)
            object.__setattr__(self, "origin", (*self.origin, kind.what))

    def _group_rule(self) -> GroupRule | None:
        fmt = WEIGHT_FORMATS.get(self.weight_dtype or "") if self.weight_dtype != self.dtype else None
        return fmt.group if fmt is not None else None

    def _check_group_size(self) -> None:
        """--group-size as the weight format reads it (its default when not given), or refused."""
        rule = self._group_rule()
        if self.group_size is None:
            if rule is not None:
                object.__setattr__(self, "group_size", rule.default)
            return
        check_size("--group-size", self.group_size, minimum=0)
        if rule is None:
            kinds = ", ".join(n for n, f in WEIGHT_FORMATS.items() if f.group is not None)
            what = f"{self.weight_dtype} has none" if self.weight_packing is not None else "add --weight-dtype"
            raise ConfigError("--group-size", f"sets the groups of a weight format ({kinds}); {what}")
        if self.group_size == 0 and not rule.per_channel:
            raise ConfigError("--group-size", f"0 (one group over all of K) is not a {self.weight_dtype} layout; give a number of {rule.what}")
        if rule.allowed and self.group_size and self.group_size not in rule.allowed:
            raise ConfigError("--group-size", f"{self.weight_dtype} takes {' or '.join(map(str, rule.allowed))} {rule.what}, got {self.group_size}")

    @property
    def weight_packing(self) -> Packing | None:
        """How the weight matrices are stored when --weight-dtype sets them apart, else None."""
        if self.weight_dtype is None or self.weight_dtype == self.dtype:
            return None
        return packing(self.weight_dtype, self.group_size or 0, self.dtype)

    @property
    def product_dtype(self) -> str:
        """What the FFN's products compute in: --dtype (weight-only formats are dequantized on the
        fly), or the dtype of a format that quantizes each product's input too (fp8_block and
        fp8_row: FP8; nvfp4: FP4)."""
        p = self.weight_packing
        return (p.spec.computes_in if p is not None else None) or self.dtype

    @property
    def weight_bits(self) -> int:
        """Bits per weight-matrix entry, scales not included."""
        return DTYPES[self.weight_dtype or self.dtype].bits

    @property
    def groups(self) -> tuple[FFNConfig, ...]:
        """The model's layer groups, each an FFNConfig of its `layers` identical layers: the
        dense ones first (with `dense_layers`), then this layer's."""
        if not self.dense_layers:
            return (self,)
        dense = replace(
            self, d_ff=self.dense_d_ff, d_ff_rule=f"dense layers: {self.dense_d_ff}", experts=0, top_k=0, shared_experts=0,
            shared_expert_gate=False, capacity_factor=None, router_bias=False, layers=self.dense_layers, dense_layers=0, dense_d_ff=0,
        )  # fmt: skip
        return (dense, replace(self, dense_layers=0, dense_d_ff=0))

    @property
    def is_glu(self) -> bool:
        return self.activation in GATED_FORMS

    @property
    def base_activation(self) -> str:
        """The nonlinearity itself: silu for swiglu, gelu for geglu, the name for plain ones."""
        return GATED_FORMS.get(self.activation, self.activation)

    @property
    def nonlinearity(self) -> Activation:
        """The registry entry of the nonlinearity (the gate's, for a GLU)."""
        return activation(self.activation)

    @property
    def norm_kind(self) -> NormType | None:
        """The registry entry of the norm the layer computes, or None with norm none."""
        return None if self.norm == "none" else _norm_type(self.norm_type)

    @property
    def is_moe(self) -> bool:
        return self.experts > 0

    @property
    def expert_capacity(self) -> int | None:
        """Tokens each expert's buffer holds: ceil(C · tokens · top_k / experts), exact."""
        if self.capacity_factor is None:
            return None
        from fractions import Fraction

        c = Fraction(repr(self.capacity_factor))
        return math.ceil(c * self.tokens * self.top_k / self.experts)

    @property
    def balanced_expert_rows(self) -> Fraction:
        """Rows each routed expert computes when routing is balanced: tokens · top_k / experts."""
        from fractions import Fraction

        return Fraction(self.tokens * self.top_k, self.experts)


def _check_choice(argument: str, value: str, choices: Iterable[str]) -> None:
    if value not in choices:
        raise ConfigError(argument, f"unknown value {value!r}; choose one of {', '.join(choices)}")


def make_config(
    batch: int,
    seq_len: int,
    d_model: int,
    d_ff: str | int | None = None,
    multiple_of: int | None = None,
    ffn_dim_multiplier: float | None = None,
    **options: object,
) -> FFNConfig:
    """An FFNConfig from user-level inputs, `d_ff` as `--d-ff` takes it (None, N, Mx or glu)."""
    check_size("D_MODEL", d_model)
    resolved = resolve_d_ff(d_model, d_ff, multiple_of, ffn_dim_multiplier)
    return FFNConfig(
        batch=batch,
        seq_len=seq_len,
        d_model=d_model,
        d_ff=resolved.value,
        d_ff_rule=resolved.rule,
        **options,  # type: ignore[arg-type]
    )
