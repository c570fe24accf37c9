"""Every option of every command, declared once, as data (httpie's `ParserSpec` is the model).

An `Option` says everything about one option: its flags, the value it takes and how its text
becomes one, its help, its default, the commands that take it, whether `sweep` can take a list
of it (`Swept`: its list form and its place in the grid), and whether it describes the layer
(then it is a keyword of `ffn_calc.layer` and the key a JSON line gives it). Generated from
these specs: the Typer parameters of every command (`cli/options.py`), the sweep's axes and
the keys its JSON lines may hold (`sweep_executor.py`), and `options_reference()`, the table
the docs print. Standard library only: the API and the docs read it without the command line.

The order of SPECS is the order of `--help` within each group (`PANELS`, in their order). The
specs are named tuples, not dataclasses: every run of the command line builds them, and a named
tuple is the cheaper to make.
"""

from __future__ import annotations

from functools import cache
from typing import Any, NamedTuple

from ffn_calc.api.columns import DEFAULT_COLUMNS, DP_DEFAULT, LAYER_COLUMNS, PARALLEL_FROM, PP_DEFAULT, TRAINING_PREFIXES
from ffn_calc.inputs.resolve import KEYWORDS
from ffn_calc.inputs.values import Parser, count, memory, number, size, storage_dtype, writable_file
from ffn_calc.model.activations import ACTIVATIONS, GATED_FORMS, NONLINEARITIES
from ffn_calc.model.dtypes import ACTIVATION_DTYPES, DTYPES, WEIGHTS_ONLY
from ffn_calc.model.layer import NORM_PLACEMENTS
from ffn_calc.model.norms import NORM_TYPES
from ffn_calc.model.training_options import OPTIMIZERS, RECOMPUTE, SCHEDULES, ZERO_STAGES
from ffn_calc.model.weight_formats import WEIGHT_ALIASES, WEIGHT_FORMATS

# What an option is for: LAYER describes the layer (ffn_calc.layer's keywords, a sweep's JSON-line
# keys), TRAINING the training step (train and verify take the same), COMMAND the command's own.
LAYER, TRAINING, COMMAND = "layer", "training", "command"

# --help groups (Typer's rich_help_panel); PANELS is the order --help lists them in, after the arguments.
LAYER_PANEL = "Layer"
MODEL_PANEL = "Model (override a preset's or config file's values with flags)"
MOE_PANEL = "Mixture of experts"
SWEPT_PANEL = "Swept"
TRAINING_PANEL = "Training"
HARDWARE_PANEL = "Hardware"
MEASURE_PANEL = "Measured (instead of a datasheet)"
PARALLEL_PANEL = "Parallelism"
OUTPUT_PANEL = "Output"
PANELS = (LAYER_PANEL, MODEL_PANEL, MOE_PANEL, SWEPT_PANEL, TRAINING_PANEL, HARDWARE_PANEL, MEASURE_PANEL, PARALLEL_PANEL, OUTPUT_PANEL)

# How sweep reads a list of an option: names (a,b,c), sizes (1,8,32 or ranges 128:8192:x2), or
# widths (sizes, or d_ff rules: 4x, glu).
NAMES, SIZES, WIDTHS = "names", "sizes", "widths"

REQUIRED: Any = ...  # the default of an argument that must be given


class Swept(NamedTuple):
    """How `sweep` takes an option: a list of values, each a point of the grid. `axis` is its
    place in the grid's order (0 varies slowest); a list of names is an axis only when it has a
    comma, one name holds for every point."""

    axis: int
    values: str  # NAMES | SIZES | WIDTHS
    metavar: str
    help: str
    flags: tuple[str, ...] = ()  # an argument of the other commands is an option here: BATCH → --batch
    example: str = ""  # a list of names, for an error message


class Option(NamedTuple):
    """One option (or positional argument), as every command that takes it takes it.

    `name` is its parameter: the API's keyword and, for a LAYER option, the key a sweep's JSON
    line gives it. `flags` are its spellings ("--bias/--no-bias" for an on/off pair); none for
    a positional argument. `type` is its value's Python type (bool: a flag), `choices` the
    values it takes, if a fixed set (case-insensitive), `parse` how its text becomes the value.
    `default` REQUIRED: the argument must be given; None: not given (its help says what then).
    `complete` names what completes it in the shell (model, gpu, activation, dtype)."""

    name: str
    flags: tuple[str, ...]
    help: str
    commands: tuple[str, ...]
    panel: str | None
    group: str = COMMAND
    type: Any = str
    metavar: str | None = None
    default: Any = None
    show_default: bool = True  # --help appends [default: …] (for a default other than None and False)
    parse: Parser | None = None
    choices: tuple[str, ...] = ()
    minimum: int | None = None  # a whole number of at least this (Typer's min; --help shows the range)
    complete: str | None = None
    swept: Swept | None = None
    needed_by: tuple[str, str] | None = None  # (commands, why): an argument with a default that these must be given

    @property
    def needed(self) -> tuple[str, ...]:
        return tuple(self.needed_by[0].split()) if self.needed_by else ()

    @property
    def argument(self) -> bool:
        """A positional argument (BATCH), not an option."""
        return not self.flags

    @property
    def label(self) -> str:
        """How an error names it: its first flag, or an argument's name (BATCH)."""
        return self.flags[0].split("/")[0] if self.flags else self.name.upper()

    @property
    def spellings(self) -> tuple[str, ...]:
        """Every flag: ("--bias", "--no-bias") for "--bias/--no-bias"."""
        return tuple(flag for f in self.flags for flag in f.split("/"))

    @property
    def line_key(self) -> str | None:
        """The key a sweep's JSON line gives it (a layer option's), else None."""
        return self.name if self.group == LAYER else None

    def for_command(self, command: str) -> Option:
        """The option as `command` takes it: sweep takes an option it can list as text, a list; a
        command that `needed_by` names must be given the argument, and its help says why."""
        if self.needed_by and command in self.needed:
            return self._replace(default=REQUIRED, show_default=False, help=f"{self.help} Needed here: {self.needed_by[1]}")
        if command != "sweep" or self.swept is None:
            return self
        s = self.swept
        listed = self._replace(flags=s.flags or self.flags, metavar=s.metavar, help=s.help, panel=SWEPT_PANEL)
        return listed._replace(type=str, default=None, parse=None, choices=(), show_default=False)  # text: the sweep reads the list


def _groups() -> str:
    rules = dict.fromkeys(f.group for f in WEIGHT_FORMATS.values() if f.group is not None)
    return "; ".join(f"{'/'.join(n for n, f in WEIGHT_FORMATS.items() if f.group == rule)}: {rule.what}, {rule.default}" for rule in rules)


def _norm_types() -> str:
    return ", ".join(f"{n.name} ({n.label}, {n.formula}, {n.params_per_element}·d_model params)" for n in NORM_TYPES.values())


COMMANDS = ("shapes", "verify", "explain", "sweep", "train", "roofline", "gpus", "models")  # in the order the app lists them
EVERY_LAYER = COMMANDS[:6]  # the commands that describe a layer
NOT_ROOFLINE = ("shapes", "verify", "explain", "sweep", "train")  # roofline takes one layer's GEMMs: no norm (nor its kind), stack or capacity
TRAINS = ("verify", "train")  # a training step: train counts it, verify --backward runs it
TRAINS_SWEPT = (*TRAINS, "sweep")  # and sweep lists it as an axis, with train's per-rank columns
TABLES = ("shapes", "verify", "explain", "train", "roofline", "gpus", "models")  # -f table|json|csv|markdown, --get

SPECS: tuple[Option, ...] = (
    # --- the layer: arguments, then options (ffn_calc.layer's keywords) ---------------------------
    # One token by default: parameters, weights and per-token FLOPs do not depend on the tokens; roofline's
    # answer is the token counts (prefill against decode), so it must be given them.
    Option("batch", (), "Sequences per batch.", EVERY_LAYER, None, LAYER, type=int, metavar="BATCH", default=1,
           parse=size, swept=Swept(1, SIZES, "LIST", "Batch sizes: 1,8,32 or a range 1:64:x2. [default: 1]", ("--batch",)),
           needed_by=("roofline", "prefill is BATCH × SEQ_LEN tokens, decode BATCH.")),
    Option("seq_len", (), "Tokens per sequence.", EVERY_LAYER, None, LAYER, type=int, metavar="SEQ_LEN", default=1,
           parse=size, swept=Swept(2, SIZES, "LIST", "Sequence lengths, e.g. 128:8192:x2.", ("--seq-len",)),
           needed_by=("roofline", "prefill is BATCH × SEQ_LEN tokens.")),
    Option("d_model", (), "Embedding width d_model (optional with --model or --config).", EVERY_LAYER, None, LAYER, type=int,
           metavar="[D_MODEL]", show_default=False, parse=size,
           swept=Swept(3, SIZES, "LIST", "d_model values (optional with --model or --config).", ("--d-model",))),
    Option("d_ff", ("--d-ff",),
           "Hidden width (per expert for a MoE): a number (3072), a multiple of d_model (4x, 2.5x, 8/3x), "
           "or glu for the GLU width that keeps a 4× FFN's parameters, int(2·4·d_model/3). [default: 4x]",
           EVERY_LAYER, LAYER_PANEL, LAYER, metavar="N|Mx|glu",
           swept=Swept(4, WIDTHS, "LIST|Mx|glu", "d_ff values, or rules: 4x, glu, or several: 4x,glu.")),
    Option("activation", ("--activation", "-a"),
           f"Nonlinearity: {', '.join(NONLINEARITIES)}; or gated, act(x·W_gate) ⊙ x·W_up: {', '.join(GATED_FORMS)}. [default: relu]",
           EVERY_LAYER, LAYER_PANEL, LAYER, metavar="NAME", choices=ACTIVATIONS, complete="activation",
           swept=Swept(8, NAMES, "NAME,…", "Activation, or several to sweep: relu,swiglu.", example="relu,swiglu")),
    Option("bias", ("--bias/--no-bias",), "Biases on every linear. [default: the model's, else bias]", EVERY_LAYER, LAYER_PANEL, LAYER,
           type=bool),
    Option("fused", ("--fused",), "A GLU's gate and up as one (d_model, 2·d_ff) matrix, then a split.", EVERY_LAYER, LAYER_PANEL, LAYER,
           type=bool, default=False),
    Option("norm", ("--norm",),
           "Residual + norm: none (the bare FFN), pre (x + FFN(LN(x)), GPT-2 on), post (LN(x + FFN(x)), the original). "
           "The norm's kind: see --norm-type.",
           NOT_ROOFLINE, LAYER_PANEL, LAYER, default="none", choices=NORM_PLACEMENTS),
    Option("norm_type", ("--norm-type",), f"The norm --norm pre/post adds: {_norm_types()}. [default: the model's, else layer]",
           NOT_ROOFLINE, LAYER_PANEL, LAYER, metavar="layer|rms", choices=tuple(NORM_TYPES)),
    Option("dtype", ("--dtype",),
           f"Storage type of weights and activations: {', '.join(ACTIVATION_DTYPES)}. [default: the model's torch_dtype, else float32]",
           EVERY_LAYER, LAYER_PANEL, LAYER, metavar="DTYPE", choices=ACTIVATION_DTYPES, parse=storage_dtype, complete="dtype",
           swept=Swept(9, NAMES, "DTYPE,…", "Storage type, or several to sweep: float32,bfloat16.", example="float32,bfloat16")),
    Option("weight_dtype", ("--weight-dtype",),
           "Store the FFN's weight matrices as a checkpoint format does, each matrix the tensors its checkpoint holds: "
           f"{', '.join(WEIGHTS_ONLY)}; or a plain type such as float8_e4m3fn (no scales). "
           + ", ".join(f"{alias} is {name}" for alias, (name, _) in WEIGHT_ALIASES.items()) + ". "
           + ", ".join(n for n, f in WEIGHT_FORMATS.items() if f.computes_in)
           + " quantize each product's input too and compute in FP8 or FP4; the others compute in --dtype. Biases, norms, the router "
           "and activations stay in --dtype. [default: --dtype]",
           EVERY_LAYER, LAYER_PANEL, LAYER, metavar="DTYPE", choices=tuple(DTYPES)),
    Option("group_size", ("--group-size",), f"The weight format's group: {_groups()}. 0: one group over all of K (GPTQ's and AWQ's "
           "group_size -1). [default: the format's]",
           EVERY_LAYER, LAYER_PANEL, LAYER, type=int, metavar="G", parse=count(0)),
    Option("multiple_of", ("--multiple-of",), "With --d-ff glu: round d_ff up to a multiple of M (LLaMA's multiple_of).",
           EVERY_LAYER, LAYER_PANEL, LAYER, type=int, metavar="M", parse=count()),
    Option("ffn_dim_multiplier", ("--ffn-dim-multiplier",), "With --d-ff glu: scale d_ff by m before rounding (LLaMA's ffn_dim_multiplier).",
           EVERY_LAYER, LAYER_PANEL, LAYER, type=float, metavar="m", parse=number),
    Option("model", ("--model", "-m"), "A published model's FFN (see `ffn-calc models`).", EVERY_LAYER, MODEL_PANEL, LAYER, metavar="NAME",
           complete="model",
           swept=Swept(0, NAMES, "NAME,…", "A published model, or several to sweep: bert-base,gpt2-xl,llama-3-8b (a model column).",
                       example="bert-base,gpt2-xl")),
    Option("config", ("--config",), "A Hugging Face config.json, read offline.", EVERY_LAYER, MODEL_PANEL, LAYER, metavar="PATH"),
    Option("layers", ("--layers", "-L"),
           "Layers with this FFN (with --dense-layers, the MoE ones): model totals beside the per-layer figures. [default: the model's, else 1]",
           NOT_ROOFLINE, MODEL_PANEL, LAYER, type=int, metavar="L", parse=count(), swept=Swept(7, SIZES, "LIST", "Layer counts.")),
    Option("dense_layers", ("--dense-layers",),
           "A mixed stack: N more layers whose FFN is dense, of width --dense-d-ff, with this one's activation, biases "
           "and norm (DeepSeek's first_k_dense_replace); the model totals sum both groups. 0 drops a preset's. [default: the model's, else 0]",
           NOT_ROOFLINE, MODEL_PANEL, LAYER, type=int, metavar="N", parse=count(0)),
    Option("dense_d_ff", ("--dense-d-ff",), "The dense layers' hidden width (their intermediate_size). [default: the model's]",
           NOT_ROOFLINE, MODEL_PANEL, LAYER, type=int, metavar="F", parse=count()),
    Option("experts", ("--experts",), "Routed experts, each an FFN of width d_ff.", EVERY_LAYER, MOE_PANEL, LAYER, type=int, metavar="E",
           parse=count(), swept=Swept(5, SIZES, "LIST", "Expert counts.")),
    Option("top_k", ("--top-k",), "Experts that serve each token.", EVERY_LAYER, MOE_PANEL, LAYER, type=int, metavar="K", parse=count(),
           swept=Swept(6, SIZES, "LIST", "Experts per token.")),
    Option("shared_experts", ("--shared-experts",), "Experts every token goes through as well (DeepSeek).", EVERY_LAYER, MOE_PANEL, LAYER,
           type=int, metavar="S", parse=count(0)),
    Option("shared_expert_gate", ("--shared-expert-gate/--no-shared-expert-gate",),
           "Scale the shared experts' output by sigmoid(x·w_s), w_s of shape (d_model, 1), as Qwen2-MoE does. [default: the model's, else off]",
           EVERY_LAYER, MOE_PANEL, LAYER, type=bool),
    Option("capacity_factor", ("--capacity-factor",),
           "Pad each expert to ceil(C·tokens·K/E) rows, dropping overflow (GShard/Switch). [default: dropless]",
           NOT_ROOFLINE, MOE_PANEL, LAYER, type=float, metavar="C", parse=number),
    # --- the training step: train counts it, verify --backward runs it ----------------------------
    Option("backward", ("--backward",),
           "Also run the backward pass with explicit matmuls: its FLOPs and shapes against `train`, its gradients against finite "
           "differences; the training options (--recompute, --optimizer, --mixed-precision, --dropout, --no-input-grad) apply to it.",
           ("verify",), TRAINING_PANEL, COMMAND, type=bool, default=False),
    Option("recompute", ("--recompute",), "; ".join(f"{name} ({mode.help})" for name, mode in RECOMPUTE.items()) + ".",
           TRAINS, TRAINING_PANEL, TRAINING, default="none", choices=tuple(RECOMPUTE)),
    Option("optimizer", ("--optimizer",), "The optimizer: " + "; ".join(f"{name} ({o.help})" for name, o in OPTIMIZERS.items()) + ".",
           TRAINS, TRAINING_PANEL, TRAINING, default="adam", choices=tuple(OPTIMIZERS)),
    Option("mixed_precision", ("--mixed-precision/--no-mixed-precision",),
           "Mixed precision: 16-bit weights and gradients (--dtype bfloat16 or float16) with float32 master weights and optimizer "
           "states (16 bytes per parameter with Adam); --no-mixed-precision trains in pure 16-bit (no master weights, 16-bit states). "
           "[default: mixed for a 16-bit --dtype]",
           TRAINS, TRAINING_PANEL, TRAINING, type=bool),
    Option("dropout", ("--dropout",), "Dropout on the FFN output: a 1-byte mask per element is saved.", TRAINS, TRAINING_PANEL, TRAINING,
           type=bool, default=False),
    Option("no_input_grad", ("--no-input-grad",),
           "The layer's input needs no gradient (the first layer, or after a frozen embedding): "
           "the products that read it skip their input gradient, as autograd does.",
           TRAINS, TRAINING_PANEL, TRAINING, type=bool, default=False),
    # --- hardware and parallelism -------------------------------------------------------------------
    Option("gpu", ("--gpu",), "A GPU preset: its dense datasheet peak and bandwidth (`ffn-calc gpus` lists them).", ("roofline",),
           HARDWARE_PANEL, metavar="NAME", complete="gpu"),
    Option("peak_tflops", ("--peak-tflops",), "A custom peak, TFLOP/s (with --bandwidth-gbs).", ("roofline",), HARDWARE_PANEL,
           type=float, metavar="T", parse=number),
    Option("bandwidth_gbs", ("--bandwidth-gbs",), "A custom memory bandwidth, GB/s.", ("roofline",), HARDWARE_PANEL,
           type=float, metavar="B", parse=number),
    Option("gpu_file", ("--gpu-file",),
           "A device measured and saved with `roofline … --measure -f json > FILE`: its peak (for its dtype) and bandwidth.",
           ("roofline",), HARDWARE_PANEL, metavar="FILE"),
    # --- roofline --measure: this machine's peak and bandwidth instead of a datasheet (ffn_calc/measure/)
    Option("measure", ("--measure",),
           "Measure this machine: its best matmul rate for --dtype and its STREAM bandwidth, then time each GEMM "
           "beside its bound and sweep M across the crossover. Save it with -f json; reuse it with --gpu-file.",
           ("roofline",), MEASURE_PANEL, type=bool, default=False),
    Option("device", ("--device",),
           "With --measure: the CPU through NumPy's BLAS, or a CUDA device through PyTorch (if installed); auto takes CUDA when PyTorch sees it.",
           ("roofline",), MEASURE_PANEL, metavar="auto|cpu|cuda", default="auto", choices=("auto", "cpu", "cuda")),
    Option("measure_seconds", ("--measure-seconds",),
           "With --measure: the budget the repeats fit in; each GEMM still runs at least once. [default: 5]",
           ("roofline",), MEASURE_PANEL, type=float, metavar="S", parse=number),
    Option("tp", ("--tp",), "Tensor-parallel ranks (Megatron): figures are one rank's.", ("verify", "train", "roofline"), PARALLEL_PANEL,
           type=int, metavar="N", default=1, show_default=False, parse=count()),
    Option("sequence_parallel", ("--sequence-parallel",),
           "With --tp: all-gather and reduce-scatter instead of all-reduce; the layer input lives in sequence shards.",
           TRAINS, PARALLEL_PANEL, type=bool, default=False),
    Option("ep", ("--ep",),
           "Expert-parallel ranks: E/N experts per rank, the tokens split N ways, all-to-all dispatch and combine; figures are one rank's.",
           ("verify", "train", "roofline"), PARALLEL_PANEL, type=int, metavar="N", default=1, show_default=False, parse=count()),
    Option("dp", ("--dp",),
           "Data-parallel ranks (replicas of the layer, or of its --tp rank): each rank's weights, gradients, master weights, "
           "optimizer states and peak, sharded as --zero says, and the bytes it sends per step. With --ep E, N counts the expert-parallel "
           "ranks too (E must divide N, as Megatron and DeepSpeed-MoE count them): the experts are sharded over their N/E replicas. "
           "verify --backward runs each rank.",
           TRAINS_SWEPT, PARALLEL_PANEL, type=int, metavar="N", default=1, show_default=False, parse=count(),
           swept=Swept(10, SIZES, "LIST", "Data-parallel ranks, e.g. 8,64: train's per-rank columns (dp_…) for each.")),
    Option("zero", ("--zero",),
           "With --dp: what is sharded over the data-parallel ranks. ZeRO 0 (nothing), 1 (optimizer states and master weights), "
           "2 (+ gradients), 3 (+ weights: all-gathered in forward and backward); FSDP's names: no_shard = 0, shard_grad_op = 2, "
           "full_shard = 3, hybrid_shard = 3 within a node of --node-size ranks, replicated across nodes.",
           TRAINS_SWEPT, PARALLEL_PANEL, metavar="STAGE", default="0", choices=tuple(ZERO_STAGES),
           swept=Swept(11, NAMES, "STAGE,…", "ZeRO stage (or FSDP name), or several to sweep: 1,2,3.", example="1,2,3")),
    Option("node_size", ("--node-size",), "With --zero hybrid_shard: ranks per node, the group a shard is split over. [default: 8]",
           TRAINS, PARALLEL_PANEL, type=int, metavar="R", parse=count()),
    Option("pp", ("--pp",),
           "Pipeline stages: the stack's layers split over N stages (a mixed stack's dense layers first); per stage its layers, "
           "parameters, held activations and peak, the bubble and the point-to-point bytes between stages (verify: the stack run "
           "as that pipeline, microbatch by microbatch in the schedule's order).",
           TRAINS_SWEPT, PARALLEL_PANEL, type=int, metavar="N", default=1, show_default=False, parse=count(),
           swept=Swept(12, SIZES, "LIST", "Pipeline stages, e.g. 2,4,8: train's pipeline columns (pp_…) for each.")),
    Option("microbatches", ("--microbatches",), "With --pp: microbatches per step, each BATCH/M sequences. [default: 1]",
           TRAINS_SWEPT, PARALLEL_PANEL, type=int, metavar="M", parse=count(),
           swept=Swept(13, SIZES, "LIST", "Microbatches per step, e.g. 1:32:x2.")),
    Option("schedule", ("--schedule",),
           "With --pp: gpipe (every forward, then every backward: M microbatches held), 1f1b (one forward one backward: "
           "min(N − s, M) held on stage s), interleaved (1F1B over --chunks model chunks per stage, Narayanan et al. 2021). "
           "[default: 1f1b]",
           TRAINS_SWEPT, PARALLEL_PANEL, metavar="NAME", choices=SCHEDULES,
           swept=Swept(14, NAMES, "NAME,…", "Pipeline schedule, or several to sweep: gpipe,1f1b.", example="gpipe,1f1b")),
    Option("chunks", ("--chunks",), "With --schedule interleaved: model chunks v per stage. [default: 2]",
           TRAINS, PARALLEL_PANEL, type=int, metavar="V", parse=count()),
    # --- what a command prints, and how -----------------------------------------------------------------
    Option("seed", ("--seed",), "Seed of the random weights and input.", ("verify",), OUTPUT_PANEL, type=int, default=0, minimum=0),
    Option("max_memory", ("--max-memory",),
           "Memory verify may use (8GiB, 512MiB); past it the pass runs in chunks of tokens. [default: 80% of the memory available]",
           ("verify",), OUTPUT_PANEL, type=int, metavar="SIZE", parse=memory),
    Option("all", ("--all",), "List every check; by default only the verdict and any check that failed.", ("verify",), OUTPUT_PANEL,
           type=bool, default=False),
    Option("compare", ("--compare",),
           "Two layers side by side, B against A: two presets (--compare llama-2-7b mistral-7b), or two activations "
           "at equal parameters for this layer (--compare relu swiglu: relu at d_ff 4x, swiglu at LLaMA's GLU width, --d-ff glu).",
           ("explain",), OUTPUT_PANEL, type=tuple[str, str], metavar="A B"),
    Option("sizes", (), "BATCH SEQ_LEN [D_MODEL] in the other commands' places, each a number, a list (1,8,32) or a range "
           "(128:8192:x2); or give them as --batch, --seq-len, --d-model.", ("sweep",), None, type=list[str],
           metavar="[BATCH SEQ_LEN [D_MODEL]]", show_default=False),
    Option("stdin", ("--stdin",), 'Read configurations as JSON lines on stdin, e.g. {"batch": 8, "seq_len": 512, "model": "bert-base"}.',
           ("sweep",), OUTPUT_PANEL, type=bool, default=False),
    Option("columns", ("--columns", "-c"), f"Columns to print. Default: {', '.join(DEFAULT_COLUMNS)}; with --dp or --zero also "
           f"{', '.join(DP_DEFAULT)}; with --pp, --microbatches or --schedule also {', '.join(PP_DEFAULT)}. Any of: {', '.join(LAYER_COLUMNS)}; "
           f"and train's figures: {', '.join(p + '…' for p in TRAINING_PREFIXES)} (its totals, data_parallel and pipeline fields).",
           ("sweep",), OUTPUT_PANEL, metavar="A,B,…"),
    Option("chart", ("--chart",), "Draw COLUMN as bars against the swept values (table output).", ("sweep",), OUTPUT_PANEL, metavar="COLUMN"),
    Option("format", ("--format", "-f"), "table, csv, jsonl (one JSON object per line) or markdown (a pipe table, exact integers).",
           ("sweep",), OUTPUT_PANEL, default="table", choices=("table", "csv", "jsonl", "markdown")),
    Option("jobs", ("--jobs", "-j"), f"Worker processes for sweeps of {PARALLEL_FROM:,} combinations or more. Default: the CPUs.",
           ("sweep",), OUTPUT_PANEL, type=int, metavar="N", parse=count()),
    Option("chart", ("--chart",), "Bar charts of where the FLOPs and the memory go, by stage (table output).", ("shapes",), OUTPUT_PANEL,
           type=bool, default=False),
    Option("summary", ("--summary", "-q"),
           "Only the headline (table output): parameters, FLOPs per token, weight and peak memory; roofline: each phase's "
           "lower-bound time and what bounds it.",
           ("shapes", "train", "roofline", "explain"), OUTPUT_PANEL, type=bool, default=False),
    Option("detail", ("--detail",),
           "Every table in full (matmuls, MACs, weights, memory parts, sources, notes); by default a screenful (80 × 50) that "
           "ends with the headline. JSON and CSV always hold every figure.",
           ("shapes", "verify", "explain", "train", "roofline", "gpus", "models"), OUTPUT_PANEL, type=bool, default=False),
    Option("exact", ("--exact",),
           "Exact integers in every table (wide); by default a table too wide for the terminal shows units: 4.33 B, 705 MFLOP, 5.25 GiB.",
           ("shapes", "sweep", "train", "models"), OUTPUT_PANEL, type=bool, default=False),
    Option("format", ("--format", "-f"), "table for people; json or csv for scripts; markdown for documents (pipe tables, exact integers).",
           TABLES, OUTPUT_PANEL, metavar="FORMAT", default="table", choices=("table", "json", "csv", "markdown")),
    Option("get", ("--get",), "Print only this field of the JSON output, e.g. totals.params or model.active_params (for scripts).",
           TABLES, OUTPUT_PANEL, metavar="PATH"),
    Option("svg", ("--svg",), "Also save the tables as printed to FILE, an SVG picture (table output).", COMMANDS, OUTPUT_PANEL,
           metavar="FILE", parse=writable_file),
)  # fmt: skip


def check(specs: tuple[Option, ...]) -> list[str]:
    """What is wrong with `specs`: a spec for a command that is not one, a layer option that is no
    keyword of ffn_calc.layer or a keyword without its option (both refused when this module
    loads), a name or flag twice in one command, two options on one place of the grid."""
    problems = [f"no command {c!r}" for c in sorted({c for s in specs for c in s.commands} - set(COMMANDS))]
    problems += [
        f"ffn_calc.layer and the layer options differ in {name!r}" for name in sorted({s.name for s in specs if s.group == LAYER} ^ set(KEYWORDS))
    ]
    for command in COMMANDS:
        words = [word for s in specs if command in s.commands for word in (s.name, *s.for_command(command).spellings)]
        problems += [f"{command}: {word!r} twice" for word in sorted({w for w in words if words.count(w) > 1})]
    axes = sorted(s.swept.axis for s in specs if s.swept)
    if axes != list(range(len(axes))):
        problems.append(f"the grid's axes are numbered {axes}, not 0, 1, 2, ...")
    return problems


if {c for s in SPECS for c in s.commands} - set(COMMANDS) or {s.name for s in SPECS if s.group == LAYER} != set(KEYWORDS):
    raise TypeError("option specs: " + "; ".join(check(SPECS)))


@cache
def options_of(command: str) -> tuple[Option, ...]:
    """The options of `command` as it takes them, in --help's order: arguments first, then by
    panel, each panel in SPECS' order (sweep's lists: the names, then the sizes, each in the
    order of the grid, the slowest first)."""
    if command not in COMMANDS:
        raise KeyError(f"no command {command!r}; the commands are {', '.join(COMMANDS)}")
    own = [spec.for_command(command) for spec in SPECS if command in spec.commands]

    def place(item: tuple[int, Option]) -> tuple[int, bool, int, int]:
        i, spec = item
        if spec.argument:
            return (-1, False, 0, i)
        listed = spec.swept if spec.panel == SWEPT_PANEL else None
        return (PANELS.index(spec.panel or ""), listed is not None and listed.values != NAMES, listed.axis if listed else 0, i)

    return tuple(spec for _, spec in sorted(enumerate(own), key=place))


# The sweep's axes in the grid's order, slowest first: the options sweep takes a list of.
SWEPT = tuple(sorted((s for s in SPECS if s.swept is not None), key=lambda s: s.swept.axis if s.swept else 0))
SIZE_AXES = tuple(s.name for s in SWEPT if s.swept and s.swept.values != NAMES)  # numbers (d_ff: or rules): batch, seq_len, ...
# The training step's axes (train's options, not the layer's): a row with one of them, or a training column, trains.
TRAINING_AXES = tuple(s.name for s in SWEPT if s.group != LAYER)
# What a sweep's JSON line may say: the layer options, by name.
LINE_KEYS = frozenset(s.line_key for s in SPECS if s.line_key)


def options_reference() -> dict[str, list[dict[str, Any]]]:
    """Every command's options, for the docs to print: per command (in the app's order), its
    arguments and options in --help's order, each as a dict with

        name      the parameter (the API's keyword; a JSON line's key for a layer option)
        flags     its spellings, e.g. ["--activation", "-a"] (["--bias", "--no-bias"] for a pair);
                  [] for a positional argument
        metavar   what its value looks like (BATCH, N|Mx|glu), or None for a flag
        choices   the values it takes, if a fixed set, else []
        help      the help text, as --help shows it
        default   its default (None: not given, and the help says what then); required: True
                  for an argument that must be given
        group     the --help group (Layer, Training, Output, ...); None for an argument
        list      True when sweep takes a list of it (an axis of the grid)

    JSON-serialisable; the same data builds the command line, so the docs cannot drift from it."""
    return {
        command: [
            {
                "name": spec.name,
                "flags": list(spec.spellings),
                "metavar": spec.metavar,
                "choices": list(spec.choices),
                "help": spec.help,
                "default": None if spec.default is REQUIRED else spec.default,
                "required": spec.default is REQUIRED,
                "group": spec.panel,
                "list": command == "sweep" and spec.swept is not None,
            }
            for spec in options_of(command)
        ]
        for command in COMMANDS
    }
