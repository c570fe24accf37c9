"""The pure core: shapes, parameters, FLOPs and memory of one FFN layer, as exact integers.

Standard library only: no typer, rich or numpy here, and nothing prints. The counting
convention is in `conventions.py`; this module applies it stage by stage. Totals are sums
over the stages and are never computed a second way.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from math import prod

from ffn_calc.conventions import (
    ACTIVATION_FLOPS_PER_ELEMENT,
    ACTIVATION_FORMULAS,
    BIAS_ADD_FLOPS_PER_ELEMENT,
    DTYPE_BYTES,
    FLOPS_PER_MAC,
    RESIDUAL_ADD_FLOPS_PER_ELEMENT,
    layernorm_flops,
)

ACTIVATIONS = tuple(ACTIVATION_FORMULAS)
NORMS = ("none", "pre", "post")
DTYPES = tuple(DTYPE_BYTES)

# Far beyond any real model, small enough that a typo such as 10^30 is caught as one.
MAX_SIZE = 2**40
DEFAULT_FF_MULTIPLIER = 4


class ConfigError(ValueError):
    """A bad input. `argument` names it the way the user typed it (BATCH, --d-ff, ...)."""

    def __init__(self, argument: str, message: str) -> None:
        super().__init__(f"{argument}: {message}")
        self.argument = argument
        self.message = message


def check_size(argument: str, value: object) -> int:
    """Return `value` as a size (a whole number from 1 to MAX_SIZE) or raise ConfigError."""
    if isinstance(value, bool) or not isinstance(value, int):
        raise ConfigError(argument, f"must be a whole number, got {value!r}")
    if value < 1:
        raise ConfigError(argument, f"must be at least 1, got {value}")
    if value > MAX_SIZE:
        raise ConfigError(argument, f"must be at most 2^40 = {MAX_SIZE:,}, got {value:.3g}")
    return value


_INT_RE = re.compile(r"[+]?\d+(_\d+)*")
_MULTIPLIER_RE = re.compile(r"(?P<num>\d+(\.\d+)?|\.\d+)(/(?P<den>\d+))?[x×]")


def parse_size(argument: str, text: str) -> int:
    """Parse a size typed by the user: digits only (4096, 4_096); no floats, no exponents."""
    text = text.strip()
    if not _INT_RE.fullmatch(text):
        raise ConfigError(argument, f"must be a whole number such as 4096, got {text!r}")
    return check_size(argument, int(text))


@dataclass(frozen=True)
class DFF:
    """A resolved d_ff and, in words, how it was reached."""

    value: int
    rule: str


def resolve_d_ff(d_model: int, spec: str | int | None) -> DFF:
    """d_ff from `--d-ff`: absent → 4 × d_model; `N` → N; `Mx` → M × d_model, which must be whole."""
    if spec is None:
        value = DEFAULT_FF_MULTIPLIER * d_model
        return DFF(value, f"default 4 × d_model = 4 × {d_model} = {value}")
    if isinstance(spec, int):
        return DFF(check_size("--d-ff", spec), f"given: {spec}")
    text = spec.strip().lower()
    match = _MULTIPLIER_RE.fullmatch(text)
    if match is None:
        if text.endswith(("x", "×")):
            raise ConfigError(
                "--d-ff", f"the multiplier {spec!r} is not a number; write it like 4x or 2.5x or 8/3x"
            )
        return DFF(parse_size("--d-ff", text), f"given: {text}")
    if match["den"] is not None and int(match["den"]) == 0:
        raise ConfigError("--d-ff", f"the multiplier {spec!r} divides by zero; write it like 4x or 8/3x")
    from fractions import Fraction  # only multipliers need it; kept off the start-up path

    factor = Fraction(match["num"]) / Fraction(match["den"] or 1)
    exact = factor * d_model
    if exact.denominator != 1:
        raise ConfigError(
            "--d-ff",
            f"{spec} × d_model {d_model} = {float(exact):g} is not a whole number; "
            "pick a multiplier that gives one or give d_ff directly",
        )
    value = check_size("--d-ff", int(exact))
    return DFF(value, f"{text[:-1]} × d_model = {text[:-1]} × {d_model} = {value}")


@dataclass(frozen=True)
class FFNConfig:
    """The inputs of one feed-forward layer. Sizes are element counts; `dtype` names the
    storage type of weights and activations (its size is `dtype_bytes`)."""

    batch: int
    seq_len: int
    d_model: int
    d_ff: int
    activation: str = "relu"
    bias: bool = True
    norm: str = "none"
    dtype: str = "float32"
    d_ff_rule: str = ""

    def __post_init__(self) -> None:
        check_size("BATCH", self.batch)
        check_size("SEQ_LEN", self.seq_len)
        check_size("D_MODEL", self.d_model)
        check_size("--d-ff", self.d_ff)
        _check_choice("--activation", self.activation, ACTIVATIONS)
        _check_choice("--norm", self.norm, NORMS)
        _check_choice("--dtype", self.dtype, DTYPES)
        if not self.d_ff_rule:
            object.__setattr__(self, "d_ff_rule", f"given: {self.d_ff}")

    @property
    def tokens(self) -> int:
        """batch × seq_len: the rows every position-wise matmul sees."""
        return self.batch * self.seq_len

    @property
    def dtype_bytes(self) -> int:
        return DTYPE_BYTES[self.dtype]


def _check_choice(argument: str, value: str, choices: tuple[str, ...]) -> None:
    if value not in choices:
        raise ConfigError(argument, f"unknown value {value!r}; choose one of {', '.join(choices)}")


@dataclass(frozen=True)
class Tensor:
    """A named array: `shape` in elements, `bytes` = elements × dtype_bytes."""

    name: str
    shape: tuple[int, ...]
    dtype_bytes: int
    role: str = "activation"  # weight | bias | norm | activation

    @property
    def elements(self) -> int:
        return prod(self.shape)

    @property
    def bytes(self) -> int:
        return self.elements * self.dtype_bytes


@dataclass(frozen=True)
class Stage:
    """One step of the forward pass.

    `matmul` is (M, K, N) for a product (M, K)·(K, N), else None. `flops` = matmul_flops +
    elementwise_flops; `macs` counts the matmul only. `weights` are the parameters the stage
    owns. `inputs` names the earlier stages whose outputs it reads (for memory liveness).
    """

    name: str
    op: str  # input | matmul | activation | add | layernorm
    formula: str
    inputs: tuple[str, ...]
    output: Tensor
    weights: tuple[Tensor, ...] = ()
    matmul: tuple[int, int, int] | None = None
    elementwise_flops: int = 0

    @property
    def output_shape(self) -> tuple[int, ...]:
        return self.output.shape

    @property
    def output_bytes(self) -> int:
        return self.output.bytes

    @property
    def macs(self) -> int:
        return prod(self.matmul) if self.matmul else 0

    @property
    def matmul_flops(self) -> int:
        return FLOPS_PER_MAC * self.macs

    @property
    def flops(self) -> int:
        return self.matmul_flops + self.elementwise_flops

    @property
    def weight_params(self) -> int:
        return sum(t.elements for t in self.weights if t.role == "weight")

    @property
    def bias_params(self) -> int:
        return sum(t.elements for t in self.weights if t.role == "bias")

    @property
    def norm_params(self) -> int:
        return sum(t.elements for t in self.weights if t.role == "norm")

    @property
    def params(self) -> int:
        return self.weight_params + self.bias_params + self.norm_params

    @property
    def weight_bytes(self) -> int:
        return sum(t.bytes for t in self.weights)


@dataclass(frozen=True)
class Totals:
    """Sums over the stages. Counts are elements, FLOPs and MACs are per forward pass of the
    whole (batch, seq_len) input, bytes are in the config's dtype."""

    weight_params: int  # matrix entries
    bias_params: int
    norm_params: int  # LayerNorm γ and β
    params: int
    macs: int
    matmul_flops: int
    elementwise_flops: int
    flops: int
    flops_per_token: int
    matmul_flops_per_token: int
    weight_bytes: int
    activation_bytes: int  # every stage output (input x included) summed, none freed
    peak_bytes: int  # weights + the activations alive at the busiest moment


@dataclass(frozen=True)
class Peak:
    """Where the forward pass holds the most memory: the stage, the activations alive then
    (by stage name), and their bytes. Weights are alive throughout and counted apart."""

    stage: str
    live: tuple[str, ...]
    activation_bytes: int


@dataclass(frozen=True)
class FFNReport:
    config: FFNConfig
    stages: tuple[Stage, ...]
    totals: Totals
    peak: Peak
    weights: tuple[Tensor, ...] = field(init=False)

    def __post_init__(self) -> None:
        object.__setattr__(self, "weights", tuple(w for s in self.stages for w in s.weights))

    def stage(self, name: str) -> Stage:
        for s in self.stages:
            if s.name == name:
                return s
        raise KeyError(name)


def build_stages(cfg: FFNConfig) -> tuple[Stage, ...]:
    """The stages of one FFN forward pass, in order.

    none: input → linear1 → activation → linear2
    pre:  input → layernorm → linear1 → activation → linear2 → residual   (x + FFN(LN(x)))
    post: input → linear1 → activation → linear2 → residual → layernorm   (LN(x + FFN(x)))
    """
    b, s, d, f, n = cfg.batch, cfg.seq_len, cfg.d_model, cfg.d_ff, cfg.tokens
    nb = cfg.dtype_bytes

    def tensor(name: str, *shape: int, role: str = "activation") -> Tensor:
        return Tensor(name, shape, nb, role)

    # Formulas name each stage's output by its usual letter: x, n = LN(x), h, a, y, r = x + y.
    symbol = {"input": "x", "linear1": "h", "activation": "a", "linear2": "y", "residual": "r"}

    def layernorm(name: str, source: str, out: str) -> Stage:
        symbol[name] = out
        return Stage(
            name=name,
            op="layernorm",
            formula=f"{out} = LN({symbol[source]})",
            inputs=(source,),
            output=tensor(name, b, s, d),
            weights=(tensor("ln_gamma", d, role="norm"), tensor("ln_beta", d, role="norm")),
            elementwise_flops=layernorm_flops(n, d),
        )

    def linear(name: str, source: str, w: str, bname: str, k: int, m: int) -> Stage:
        weights = (tensor(w, k, m, role="weight"),)
        formula = f"{symbol[name]} = {symbol[source]}·{w}"
        if cfg.bias:
            weights += (tensor(bname, m, role="bias"),)
            formula += f" + {bname}"
        return Stage(
            name=name,
            op="matmul",
            formula=formula,
            inputs=(source,),
            output=tensor(name, b, s, m),
            weights=weights,
            matmul=(n, k, m),
            elementwise_flops=BIAS_ADD_FLOPS_PER_ELEMENT * n * m if cfg.bias else 0,
        )

    stages = [Stage("input", "input", "x", (), tensor("input", b, s, d))]
    ffn_in = "input"
    if cfg.norm == "pre":
        stages.append(layernorm("layernorm", "input", "n"))
        ffn_in = "layernorm"
    stages.append(linear("linear1", ffn_in, "W1", "b1", d, f))
    stages.append(
        Stage(
            name="activation",
            op="activation",
            formula=f"a = {cfg.activation}(h)",
            inputs=("linear1",),
            output=tensor("activation", b, s, f),
            elementwise_flops=ACTIVATION_FLOPS_PER_ELEMENT[cfg.activation] * n * f,
        )
    )
    stages.append(linear("linear2", "activation", "W2", "b2", f, d))
    if cfg.norm != "none":
        stages.append(
            Stage(
                name="residual",
                op="add",
                formula="r = x + y",
                inputs=("input", "linear2"),
                output=tensor("residual", b, s, d),
                elementwise_flops=RESIDUAL_ADD_FLOPS_PER_ELEMENT * n * d,
            )
        )
    if cfg.norm == "post":
        stages.append(layernorm("layernorm", "residual", "z"))
    return tuple(stages)


def forward_peak(stages: tuple[Stage, ...]) -> Peak:
    """The activation memory at the busiest moment of an out-of-place forward pass.

    The model (which `verify` runs and measures): each stage allocates a new output while
    its inputs are alive; an output is freed once no later stage reads it; the input x is
    held by the caller throughout; the last output stays alive. Elementwise scratch is
    bounded by the verifier's block size and is not part of the model.
    """
    best: Peak | None = None
    for i, stage in enumerate(stages):
        later_inputs = {name for later in stages[i:] for name in later.inputs}
        live = tuple(
            s.name
            for s in stages[: i + 1]
            if s is stage or s.op == "input" or s.name in later_inputs
        )
        total = sum(s.output_bytes for s in stages if s.name in live)
        if best is None or total > best.activation_bytes:
            best = Peak(stage.name, live, total)
    assert best is not None
    return best


def analyze(cfg: FFNConfig) -> FFNReport:
    """Shapes, parameters, FLOPs and memory of one FFN layer under `cfg`."""
    stages = build_stages(cfg)
    peak = forward_peak(stages)
    weight_bytes = sum(s.weight_bytes for s in stages)
    flops = sum(s.flops for s in stages)
    matmul_flops = sum(s.matmul_flops for s in stages)
    totals = Totals(
        weight_params=sum(s.weight_params for s in stages),
        bias_params=sum(s.bias_params for s in stages),
        norm_params=sum(s.norm_params for s in stages),
        params=sum(s.params for s in stages),
        macs=sum(s.macs for s in stages),
        matmul_flops=matmul_flops,
        elementwise_flops=sum(s.elementwise_flops for s in stages),
        flops=flops,
        flops_per_token=flops // cfg.tokens,
        matmul_flops_per_token=matmul_flops // cfg.tokens,
        weight_bytes=weight_bytes,
        activation_bytes=sum(s.output_bytes for s in stages),
        peak_bytes=weight_bytes + peak.activation_bytes,
    )
    return FFNReport(cfg, stages, totals, peak)


def make_config(
    batch: int,
    seq_len: int,
    d_model: int,
    d_ff: str | int | None = None,
    **options: object,
) -> FFNConfig:
    """An FFNConfig from user-level inputs, `d_ff` as `--d-ff` takes it (None, N or Mx)."""
    check_size("D_MODEL", d_model)
    resolved = resolve_d_ff(d_model, d_ff)
    return FFNConfig(
        batch=batch,
        seq_len=seq_len,
        d_model=d_model,
        d_ff=resolved.value,
        d_ff_rule=resolved.rule,
        **options,  # type: ignore[arg-type]
    )
