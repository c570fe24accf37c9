"""Every command's JSON for a fixed set of configurations, byte for byte against tests/data/json_outputs.json.

    python benchmarks/json_identity.py           # compare: prints one line per differing case, exit 1 if any
    python benchmarks/json_identity.py --write   # record today's output as the reference

A restructure must leave these bytes alone; a change that means to move a number rewrites the file in
the same commit, and its diff shows which numbers moved. `verify`'s timings (seconds, rates, the memory
limit read from this machine) and its tracemalloc readings are the only fields dropped before comparing. tests/cli/test_json_identity.py
runs the same comparison in the suite.
"""

from __future__ import annotations

import io
import json
import sys
from contextlib import redirect_stderr, redirect_stdout
from pathlib import Path

REFERENCE = Path(__file__).resolve().parent.parent / "tests" / "data" / "json_outputs.json"
CONFIGS = Path(__file__).resolve().parent.parent / "tests" / "data"

CASES: tuple[str, ...] = (
    "shapes 3 6 8 --d-ff 32",
    "shapes 2 128 512 -a gelu --norm post",
    "shapes 1 64 256 -a swiglu --no-bias --norm pre --norm-type rms --dtype bfloat16",
    "shapes 1 2048 -m llama-3-8b",
    "shapes 1 512 -m bert-base --norm pre --fused -a geglu",
    "shapes 1 16 -m mixtral-8x7b",
    "shapes 1 16 -m deepseek-v3",
    "shapes 2 32 64 --experts 8 --top-k 2 -a swiglu --shared-experts 1 --capacity-factor 1.25",
    f"shapes 1 8 --config {CONFIGS}/t5-v1_1-base.config.json",
    f"shapes 1 8 --config {CONFIGS}/falcon-7b.config.json",
    f"shapes 1 8 --config {CONFIGS}/deepseek-v3.config.json",
    "shapes 1 4096 -m llama-2-7b --weight-dtype int4 --group-size 64",
    "train 1 512 -m llama-2-7b",
    "train 1 512 -m bert-base --recompute full --dropout --optimizer sgd",
    "train 2 64 128 -a geglu --norm pre --tp 2 --sequence-parallel --dtype bfloat16 --mixed-precision",
    "train 1 64 -m mixtral-8x7b --ep 8",
    "train 4 256 1024 -a relu --norm post --recompute selective",
    "roofline 32 2048 -m mixtral-8x7b --gpu h100-sxm",
    "roofline 1 4096 4096 --gpu a100-80gb --dtype bfloat16",
    "roofline 1 1 -m llama-3-8b --gpu h100-sxm --weight-dtype int4",
    "explain 3 6 8 --d-ff 32",
    "explain 1 512 -m llama-2-7b",
    "explain 1 16 -m mixtral-8x7b",
    "explain 2 16 64 --compare gelu swiglu",
    "sweep --seq-len 128,512 --model bert-base,llama-3-8b",
    "sweep --batch 1,2 --seq-len 8 --d-model 64 -a relu,swiglu --dtype float32,bfloat16 --norm pre",
    "models",
    "gpus",
    "verify 3 6 8 --d-ff 32",
    "verify 2 16 64 -a swiglu --norm pre --norm-type rms --dtype bfloat16 --backward",
    "verify 2 16 64 --experts 4 --top-k 2 -a swiglu --tp 2 --backward",
    "verify 2 8 32 --experts 8 --top-k 2 --ep 4",
)
# Read from the clock or the machine, not from the model: dropped before comparing.
VOLATILE = frozenset({"seconds", "gflops_per_s", "forward_seconds", "memory_limit_bytes"})


def _strip(value: object) -> object:
    if isinstance(value, dict):
        # A check read from tracemalloc observes the interpreter too: its prediction and verdict stay, its reading goes.
        measured = "tracemalloc" in str(value.get("name", ""))
        return {k: _strip(v) for k, v in value.items() if k not in VOLATILE and not (measured and k in ("observed", "detail"))}
    if isinstance(value, list):
        return [_strip(v) for v in value]
    return value


def run(case: str) -> str:
    """The command's JSON (with its volatile fields dropped), as canonical text; or its exit code and stderr."""
    from ffn_calc.cli.app import main

    fmt = ["-f", "jsonl"] if case.startswith("sweep") else ["-f", "json"]
    out, err = io.StringIO(), io.StringIO()
    with redirect_stdout(out), redirect_stderr(err):
        code = main([*case.split(), *fmt])
    if code != 0:
        return f"exit {code}: {err.getvalue().strip()}"
    text = out.getvalue()
    if case.startswith("sweep"):
        return "\n".join(json.dumps(_strip(json.loads(line)), ensure_ascii=False) for line in text.splitlines())
    # config.json's origin line names the file it read: relative, as in key(), so the record holds in any checkout.
    return key(json.dumps(_strip(json.loads(text)), ensure_ascii=False, indent=1))


def key(case: str) -> str:
    """The case (or its output) as stored: the config paths relative, so the file does not name this machine."""
    return case.replace(f"{CONFIGS}/", "tests/data/")


def record() -> dict[str, str]:
    return {key(case): run(case) for case in CASES}


def main(argv: list[str]) -> int:
    now = record()
    if argv[1:] == ["--write"]:
        REFERENCE.write_text(json.dumps(now, ensure_ascii=False, indent=1) + "\n", encoding="utf-8")
        print(f"wrote {len(now)} cases to {REFERENCE.name}")
        return 0
    before = json.loads(REFERENCE.read_text(encoding="utf-8"))
    differ = [case for case in now if before.get(case) != now[case]]
    for case in differ:
        print(f"differs: ffn-calc {case}")
    print(f"{len(now) - len(differ)} of {len(now)} cases byte-identical")
    return 1 if differ else 0


if __name__ == "__main__":
    sys.exit(main(sys.argv))
