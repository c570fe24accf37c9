"""The command line's shared arguments and options, declared once (Typer `Annotated` aliases),
their parsers, and `layer_command`, which gives every layer command the same layer options.
The error messages of the parsers name the argument and say what a good value looks like.

No `from __future__ import annotations` here or in app.py: Typer reads the annotations at run
time, and as strings they would be compiled again on every start (about 1 ms)."""

import functools
import inspect
import re
from collections.abc import Callable
from enum import Enum
from typing import Annotated, Any

import typer

from ffn_calc.errors import ConfigError
from ffn_calc.inputs.resolve import LAYER_FLAGS, layer_config
from ffn_calc.model import conventions as conv
from ffn_calc.model.activations import ACTIVATIONS, GATED_FORMS, NONLINEARITIES
from ffn_calc.model.dtypes import ACTIVATION_DTYPES, DTYPES, WEIGHTS_ONLY
from ffn_calc.model.layer import NORM_PLACEMENTS, FFNConfig, parse_size
from ffn_calc.model.norms import NORM_TYPES
from ffn_calc.model.weight_formats import WEIGHT_ALIASES, WEIGHT_FORMATS

Activation = Enum("Activation", {a: a for a in ACTIVATIONS}, type=str)  # type: ignore[misc]
Norm = Enum("Norm", {n: n for n in NORM_PLACEMENTS}, type=str)  # type: ignore[misc]
NormType = Enum("NormType", {n: n for n in NORM_TYPES}, type=str)  # type: ignore[misc]
Dtype = Enum("Dtype", {d: d for d in DTYPES}, type=str)  # type: ignore[misc]


class OutputFormat(str, Enum):
    table = "table"
    json = "json"
    csv = "csv"
    markdown = "markdown"


class SweepFormat(str, Enum):
    table = "table"
    csv = "csv"
    jsonl = "jsonl"
    markdown = "markdown"


# --- shell completion (--install-completion): names for a prefix; the registries are imported
# only when the shell asks, so that a normal run does not pay for them. A list option (the
# sweep's `--model a,b,c`) completes its last item.


def _complete(names: list[str], incomplete: str) -> list[str]:
    done, _, last = incomplete.rpartition(",")
    prefix = done + "," if done else ""
    return [prefix + name for name in names if name.startswith(last.lower())]


def complete_model(incomplete: str) -> list[str]:
    from ffn_calc.catalogue.presets import PRESETS

    return _complete(list(PRESETS), incomplete)


def complete_gpu(incomplete: str) -> list[str]:
    from ffn_calc.catalogue.gpus import GPUS

    return _complete(list(GPUS), incomplete)


def complete_activation(incomplete: str) -> list[str]:
    return _complete(list(ACTIVATIONS), incomplete)


def complete_dtype(incomplete: str) -> list[str]:
    return _complete(list(DTYPES), incomplete)


def _size(argument: str) -> Callable[[str], int]:
    def parse(text: str) -> int:  # its name is the type --help shows: INTEGER
        try:
            return parse_size(argument, text)
        except ConfigError as e:
            raise typer.BadParameter(e.message) from None

    parse.__name__ = "INTEGER"  # what --help shows as its type
    return parse


LAYER = "Layer"
OUTPUT = "Output"
CONVENTION_HELP = (
    f"Counting convention: {conv.CONVENTION_SUMMARY} "
    "Memory: weights and activations in --dtype; peak = weights + the tensors alive at the "
    "busiest moment of an out-of-place forward pass."
)


def number_parser(argument: str) -> Callable[[str], float]:
    def parse(text: str) -> float:
        try:
            value = float(text)
        except ValueError:
            raise typer.BadParameter(f"must be a number such as 1.25, got {text!r}") from None
        if not (value > 0 and value < 1e6):
            raise typer.BadParameter(f"must be a positive number such as 1.25, got {text}")
        return value

    parse.__name__ = "NUMBER"  # what --help shows as its type
    return parse


def count_parser(argument: str, minimum: int = 1) -> Callable[[str], int]:
    def parse(text: str) -> int:
        try:
            return parse_size(argument, text, minimum)
        except ConfigError as e:
            raise typer.BadParameter(e.message) from None

    parse.__name__ = "INTEGER"  # what --help shows as its type
    return parse


MODEL = "Model (override a preset's or config file's values with flags)"
MOE = "Mixture of experts"
BatchArg = Annotated[int, typer.Argument(parser=_size("BATCH"), metavar="BATCH", help="Sequences per batch.", show_default=False)]
SeqLenArg = Annotated[int, typer.Argument(parser=_size("SEQ_LEN"), metavar="SEQ_LEN", help="Tokens per sequence.", show_default=False)]
DModelArg = Annotated[
    int | None,
    typer.Argument(
        parser=_size("D_MODEL"), metavar="[D_MODEL]", help="Embedding width d_model (optional with --model or --config).", show_default=False
    ),
]
DffOpt = Annotated[
    str | None,
    typer.Option(
        "--d-ff",
        metavar="N|Mx|glu",
        help="Hidden width (per expert for a MoE): a number (3072), a multiple of d_model (4x, 2.5x, 8/3x), "
        "or glu for the GLU width that keeps a 4× FFN's parameters, int(2·4·d_model/3). [default: 4x]",
        rich_help_panel=LAYER,
        show_default=False,
    ),
]
MultipleOfOpt = Annotated[
    int | None,
    typer.Option(
        "--multiple-of",
        parser=count_parser("--multiple-of"),
        metavar="M",
        help="With --d-ff glu: round d_ff up to a multiple of M (LLaMA's multiple_of).",
        rich_help_panel=LAYER,
        show_default=False,
    ),
]
FfnMultOpt = Annotated[
    float | None,
    typer.Option(
        "--ffn-dim-multiplier",
        parser=number_parser("--ffn-dim-multiplier"),
        metavar="m",
        help="With --d-ff glu: scale d_ff by m before rounding (LLaMA's ffn_dim_multiplier).",
        rich_help_panel=LAYER,
        show_default=False,
    ),
]
ActivationOpt = Annotated[
    Activation | None,
    typer.Option(
        "--activation",
        "-a",
        metavar="NAME",
        help=f"Nonlinearity: {', '.join(NONLINEARITIES)}; or gated, act(x·W_gate) ⊙ x·W_up: {', '.join(GATED_FORMS)}. [default: relu]",
        case_sensitive=False,
        rich_help_panel=LAYER,
        show_default=False,
        autocompletion=complete_activation,
    ),
]
BiasOpt = Annotated[
    bool | None,
    typer.Option("--bias/--no-bias", help="Biases on every linear. [default: the model's, else bias]", rich_help_panel=LAYER, show_default=False),
]
FusedOpt = Annotated[bool, typer.Option("--fused", help="A GLU's gate and up as one (d_model, 2·d_ff) matrix, then a split.", rich_help_panel=LAYER)]
NormOpt = Annotated[
    Norm,
    typer.Option(
        "--norm",
        help="Residual + norm: none (the bare FFN), pre (x + FFN(LN(x)), GPT-2 on), post (LN(x + FFN(x)), the original). "
        "The norm's kind: see --norm-type.",
        case_sensitive=False,
        rich_help_panel=LAYER,
    ),
]
NormTypeOpt = Annotated[
    NormType | None,
    typer.Option(
        "--norm-type",
        help="The norm --norm pre/post adds: "
        + ", ".join(f"{n.name} ({n.label}, {n.formula}, {n.params_per_element}·d_model params)" for n in NORM_TYPES.values())
        + ". [default: the model's, else layer]",
        metavar="layer|rms",
        case_sensitive=False,
        rich_help_panel=LAYER,
        show_default=False,
    ),
]
DtypeOpt = Annotated[
    Dtype | None,
    typer.Option(
        "--dtype",
        help=f"Storage type of weights and activations: {', '.join(ACTIVATION_DTYPES)}. [default: the model's torch_dtype, else float32]",
        metavar="DTYPE",
        case_sensitive=False,
        rich_help_panel=LAYER,
        show_default=False,
        autocompletion=complete_dtype,
    ),
]
WeightDtypeOpt = Annotated[
    Dtype | None,
    typer.Option(
        "--weight-dtype",
        help=f"Store the FFN's weight matrices as a checkpoint format does, each matrix the tensors its checkpoint holds: "
        f"{', '.join(WEIGHTS_ONLY)}; or a plain type such as float8_e4m3fn (no scales). "
        + ", ".join(f"{alias} is {name}" for alias, (name, _) in WEIGHT_ALIASES.items())
        + ". "
        + ", ".join(n for n, f in WEIGHT_FORMATS.items() if f.computes_in)
        + " quantize each product's input too and compute in FP8 or FP4; the others compute in --dtype. Biases, norms, the router "
        "and activations stay in --dtype. [default: --dtype]",
        metavar="DTYPE",
        case_sensitive=False,
        rich_help_panel=LAYER,
        show_default=False,
    ),
]
GroupSizeOpt = Annotated[
    int | None,
    typer.Option(
        "--group-size",
        parser=count_parser("--group-size", 0),
        metavar="G",
        help="The weight format's group: "
        + "; ".join(
            f"{'/'.join(n for n, f in WEIGHT_FORMATS.items() if f.group == rule)}: {rule.what}, {rule.default}"
            for rule in dict.fromkeys(f.group for f in WEIGHT_FORMATS.values() if f.group is not None)
        )
        + ". 0: one group over all of K (GPTQ's and AWQ's group_size -1). [default: the format's]",
        rich_help_panel=LAYER,
        show_default=False,
    ),
]
LayersOpt = Annotated[
    int | None,
    typer.Option(
        "--layers",
        "-L",
        parser=count_parser("--layers"),
        metavar="L",
        help="Layers with this FFN (with --dense-layers, the MoE ones): model totals beside the per-layer figures. [default: the model's, else 1]",
        rich_help_panel=MODEL,
        show_default=False,
    ),
]
DenseLayersOpt = Annotated[
    int | None,
    typer.Option(
        "--dense-layers",
        parser=count_parser("--dense-layers", 0),
        metavar="N",
        help="A mixed stack: N more layers whose FFN is dense, of width --dense-d-ff, with this one's activation, biases "
        "and norm (DeepSeek's first_k_dense_replace); the model totals sum both groups. 0 drops a preset's. [default: the model's, else 0]",
        rich_help_panel=MODEL,
        show_default=False,
    ),
]
DenseDffOpt = Annotated[
    int | None,
    typer.Option(
        "--dense-d-ff",
        parser=count_parser("--dense-d-ff"),
        metavar="F",
        help="The dense layers' hidden width (their intermediate_size). [default: the model's]",
        rich_help_panel=MODEL,
        show_default=False,
    ),
]
ModelOpt = Annotated[
    str | None,
    typer.Option(
        "--model",
        "-m",
        metavar="NAME",
        help="A published model's FFN (see `ffn-calc models`).",
        rich_help_panel=MODEL,
        show_default=False,
        autocompletion=complete_model,
    ),
]
ConfigOpt = Annotated[
    str | None, typer.Option("--config", metavar="PATH", help="A Hugging Face config.json, read offline.", rich_help_panel=MODEL, show_default=False)
]
ExpertsOpt = Annotated[
    int | None,
    typer.Option(
        "--experts",
        parser=count_parser("--experts"),
        metavar="E",
        help="Routed experts, each an FFN of width d_ff.",
        rich_help_panel=MOE,
        show_default=False,
    ),
]
TopKOpt = Annotated[
    int | None,
    typer.Option(
        "--top-k", parser=count_parser("--top-k"), metavar="K", help="Experts that serve each token.", rich_help_panel=MOE, show_default=False
    ),
]
SharedOpt = Annotated[
    int | None,
    typer.Option(
        "--shared-experts",
        parser=count_parser("--shared-experts", 0),
        metavar="S",
        help="Experts every token goes through as well (DeepSeek).",
        rich_help_panel=MOE,
        show_default=False,
    ),
]
SharedGateOpt = Annotated[
    bool | None,
    typer.Option(
        "--shared-expert-gate/--no-shared-expert-gate",
        help="Scale the shared experts' output by sigmoid(x·w_s), w_s of shape (d_model, 1), as Qwen2-MoE does. [default: the model's, else off]",
        rich_help_panel=MOE,
        show_default=False,
    ),
]
CapacityOpt = Annotated[
    float | None,
    typer.Option(
        "--capacity-factor",
        parser=number_parser("--capacity-factor"),
        metavar="C",
        help="Pad each expert to ceil(C·tokens·K/E) rows, dropping overflow (GShard/Switch). [default: dropless]",
        rich_help_panel=MOE,
        show_default=False,
    ),
]
FormatOpt = Annotated[
    OutputFormat,
    typer.Option(
        "--format",
        "-f",
        metavar="FORMAT",
        help="table for people; json or csv for scripts; markdown for documents (pipe tables, exact integers).",
        case_sensitive=False,
        rich_help_panel=OUTPUT,
    ),
]


def svg_path(text: str) -> str:
    """--svg FILE: a file that can be written, checked before anything is computed or printed
    (a missing folder, a folder given, no permission: exit 2, as any bad argument)."""
    import os

    path = os.path.abspath(os.path.expanduser(text))
    if os.path.isdir(path):
        raise typer.BadParameter(f"{text!r} is a folder; give a file name such as table.svg")
    folder = os.path.dirname(path)
    if not os.path.isdir(folder):
        raise typer.BadParameter(f"the folder of {text!r} does not exist")
    if not os.access(folder, os.W_OK) or (os.path.exists(path) and not os.access(path, os.W_OK)):
        raise typer.BadParameter(f"{text!r} cannot be written (permission denied)")
    return path


svg_path.__name__ = "FILE"
SvgOpt = Annotated[
    str | None,
    typer.Option(
        "--svg",
        parser=svg_path,
        metavar="FILE",
        help="Also save the tables as printed to FILE, an SVG picture (table output).",
        rich_help_panel=OUTPUT,
        show_default=False,
    ),
]
ChartOpt = Annotated[
    bool, typer.Option("--chart", help="Bar charts of where the FLOPs and the memory go, by stage (table output).", rich_help_panel=OUTPUT)
]


def _bytes_size(text: str | int) -> int:
    """A memory size: 2GiB, 512MiB, 1.5GB, 1000000 (bytes)."""
    if isinstance(text, int):
        return text
    match = re.fullmatch(r"\s*(\d+(?:\.\d+)?)\s*([KMGT]i?B|B)?\s*", text, re.IGNORECASE)
    if match is None:
        raise typer.BadParameter(f"expected a size such as 8GiB, 512MiB or 1000000000, got {text!r}")
    units = {"B": 1, "KB": 10**3, "MB": 10**6, "GB": 10**9, "TB": 10**12, "KIB": 2**10, "MIB": 2**20, "GIB": 2**30, "TIB": 2**40}
    value = int(float(match[1]) * units[(match[2] or "B").upper()])
    if value < 1:
        raise typer.BadParameter(f"must be at least 1 byte, got {text!r}")
    return value


MaxMemoryOpt = Annotated[
    int | None,
    typer.Option(
        "--max-memory",
        parser=_bytes_size,
        metavar="SIZE",
        help="Memory verify may use (8GiB, 512MiB); past it the pass runs in chunks of tokens. [default: 80% of the memory available]",
        rich_help_panel=OUTPUT,
        show_default=False,
    ),
]
TpOpt = Annotated[
    int,
    typer.Option(
        "--tp",
        parser=count_parser("--tp"),
        metavar="N",
        help="Tensor-parallel ranks (Megatron): figures are one rank's.",
        rich_help_panel="Parallelism",
        show_default=False,
    ),
]
SpOpt = Annotated[
    bool,
    typer.Option(
        "--sequence-parallel",
        help="With --tp: all-gather and reduce-scatter instead of all-reduce; the layer input lives in sequence shards.",
        rich_help_panel="Parallelism",
    ),
]
EpOpt = Annotated[
    int,
    typer.Option(
        "--ep",
        parser=count_parser("--ep"),
        metavar="N",
        help="Expert-parallel ranks: E/N experts per rank, the tokens split N ways, all-to-all dispatch and combine; figures are one rank's.",
        rich_help_panel="Parallelism",
        show_default=False,
    ),
]
NoInputGradOpt = Annotated[
    bool,
    typer.Option(
        "--no-input-grad",
        help="The layer's input needs no gradient (the first layer, or after a frozen embedding): "
        "the products that read it skip their input gradient, as autograd does.",
        rich_help_panel="Training",
    ),
]
GetOpt = Annotated[
    str | None,
    typer.Option(
        "--get",
        metavar="PATH",
        help="Print only this field of the JSON output, e.g. totals.params or model.active_params (for scripts).",
        rich_help_panel=OUTPUT,
        show_default=False,
    ),
]
ExactOpt = Annotated[
    bool,
    typer.Option(
        "--exact",
        help="Exact integers in every table (wide); by default a table too wide for the terminal shows units: 4.33 B, 705 MFLOP, 5.25 GiB.",
        rich_help_panel=OUTPUT,
    ),
]
SummaryOpt = Annotated[
    bool,
    typer.Option(
        "--summary", "-q", help="Only the headline: parameters, FLOPs per token, weight and peak memory (table output).", rich_help_panel=OUTPUT
    ),
]
SeedOpt = Annotated[int, typer.Option("--seed", help="Seed of the random weights and input.", min=0, rich_help_panel=OUTPUT)]


def _config(args: dict[str, Any]) -> FFNConfig:
    """The layer from a command's arguments: flags over config file over preset."""
    given = {k: (v.value if isinstance(v, Enum) else v) for k, v in args.items() if k in LAYER_FLAGS}
    return layer_config(args["batch"], args["seq_len"], args["d_model"], model=args["model"], config=args["config"], **given)


def _layer_options(
    batch: BatchArg,
    seq_len: SeqLenArg,
    d_model: DModelArg = None,
    d_ff: DffOpt = None,
    activation: ActivationOpt = None,
    bias: BiasOpt = None,
    fused: FusedOpt = False,
    norm: NormOpt = Norm.none,  # type: ignore[attr-defined]
    norm_type: NormTypeOpt = None,
    dtype: DtypeOpt = None,
    weight_dtype: WeightDtypeOpt = None,
    group_size: GroupSizeOpt = None,
    multiple_of: MultipleOfOpt = None,
    ffn_dim_multiplier: FfnMultOpt = None,
    model: ModelOpt = None,
    config: ConfigOpt = None,
    layers: LayersOpt = None,
    dense_layers: DenseLayersOpt = None,
    dense_d_ff: DenseDffOpt = None,
    experts: ExpertsOpt = None,
    top_k: TopKOpt = None,
    shared_experts: SharedOpt = None,
    shared_expert_gate: SharedGateOpt = None,
    capacity_factor: CapacityOpt = None,
) -> None:
    """The arguments and options every layer command shares: a signature, not a command."""


LAYER_PARAMS = tuple(inspect.signature(_layer_options, eval_str=True).parameters.values())


def layer_command(exclude: tuple[str, ...] = (), resolve: bool = True, **defaults: Any) -> Callable[[Callable[..., None]], Callable[..., None]]:
    """Give a command the shared layer arguments and options, declared once above. The command
    is written as `def name(cfg: FFNConfig, <its own options>)` and receives the resolved
    layer (or, with resolve=False, the options given, as a dict: the sweep resolves many
    layers); Typer sees the shared parameters followed by the command's own."""

    def wrap(func: Callable[..., None]) -> Callable[..., None]:
        own = list(inspect.signature(func, eval_str=True).parameters.values())[1:]
        shared = [p.replace(default=defaults.get(p.name, p.default)) for p in LAYER_PARAMS if p.name not in exclude]
        names = {p.name for p in shared}

        @functools.wraps(func)
        def command(**kwargs: Any) -> None:
            layer = {k: kwargs.pop(k) for k in list(kwargs) if k in names}
            func(_config(layer) if resolve else layer, **kwargs)

        params = [*shared, *own]
        command.__signature__ = inspect.Signature(params)  # type: ignore[attr-defined]
        command.__annotations__ = {p.name: p.annotation for p in params}
        return command

    return wrap
