"""Markdown, SVG and shell completion: numbers checked against the JSON, not the rendered text."""

from __future__ import annotations

import json
import re
import xml.etree.ElementTree as ET
from collections.abc import Callable
from pathlib import Path

import pytest
from helpers import Result

from ffn_calc.catalogue.gpus import GPUS
from ffn_calc.catalogue.presets import PRESETS
from ffn_calc.cli.options import complete_activation, complete_dtype, complete_gpu, complete_model
from ffn_calc.model.activations import ACTIVATIONS
from ffn_calc.model.dtypes import DTYPES

Cli = Callable[..., Result]
SHAPES = ("shapes", "1", "512", "-m", "bert-base")


def pipe_tables(markdown: str) -> list[list[list[str]]]:
    """The pipe tables of a Markdown text: each a list of rows (header first, the rule left out)."""
    tables: list[list[list[str]]] = []
    current: list[list[str]] = []
    for line in markdown.splitlines():
        if line.startswith("|"):
            cells = [c.strip().strip("*") for c in re.split(r"(?<!\\)\|", line)[1:-1]]
            if not all(re.fullmatch(r"-+:?", c) for c in cells):
                current.append(cells)
        elif current:
            tables.append(current)
            current = []
    if current:
        tables.append(current)
    return tables


def test_markdown_shapes_holds_every_exact_total(cli: Cli) -> None:
    _, out, _ = cli(*SHAPES, "-f", "json")
    doc = json.loads(out)
    code, md, err = cli(*SHAPES, "-f", "markdown", "--detail")
    assert code == 0 and err == ""
    text = " ".join(cell for table in pipe_tables(md) for row in table for cell in row)
    numbers = {int(x.replace(",", "")) for x in re.findall(r"(?<![\d.,])\d{1,3}(?:,\d{3})*(?![\d.,])", text)}
    # the model table shows the model's totals but its matmul FLOPs (render/shapes.py)
    model = {f"model.{k}": v for k, v in doc["model"].items() if k != "matmul_flops"}
    for key, value in {**doc["totals"], **model}.items():
        if isinstance(value, int):
            assert value in numbers, key
    for table in pipe_tables(md):  # a header and rows of its width
        assert len({len(row) for row in table}) == 1


def test_markdown_titles_are_bold_lines_and_prose_paragraphs(cli: Cli) -> None:
    _, md, _ = cli("train", "1", "512", "-m", "llama-2-7b", "-f", "markdown", "--detail")
    assert "**Memory of one step, one layer**" in md
    assert "**Model totals, 32 layers**" in md
    assert "```text\nFFN  batch 1 × seq_len 512" in md


@pytest.mark.parametrize(
    "args",
    [
        ["shapes", "3", "6", "8", "--d-ff", "32", "--chart"],
        ["shapes", "1", "64", "-m", "mixtral-8x7b", "-q"],
        ["train", "2", "8", "16"],
        ["roofline", "1", "512", "-m", "bert-base", "--gpu", "h100-sxm"],
        ["verify", "2", "4", "8", "--all"],
        ["models"],
        ["gpus"],
        ["sweep", "--seq-len", "8,16", "--d-model", "8"],
        ["sweep", "--seq-len", "8,16", "--d-model", "8", "--chart", "flops"],
    ],
)
def test_markdown_for_every_command(cli: Cli, args: list[str]) -> None:
    code, md, err = cli(*args, "-f", "markdown")
    assert code == 0, err
    assert pipe_tables(md), md
    assert "┃" not in md and "│" not in md  # no rich borders: tables are pipe tables


def test_markdown_explain_is_prose_with_its_numbers(cli: Cli) -> None:
    code, md, err = cli("explain", "1", "512", "-m", "bert-base", "-f", "markdown")
    assert code == 0, err
    assert "4,722,432" in md and "┃" not in md


def test_markdown_sweep_matches_its_csv(cli: Cli) -> None:
    args = ("sweep", "--batch", "1,8", "--seq-len", "128,512", "--d-model", "64")
    _, csv_text, _ = cli(*args, "-f", "csv")
    _, md, _ = cli(*args, "-f", "markdown")
    rows = [line.split(",") for line in csv_text.splitlines()]
    (table,) = pipe_tables(md)
    assert table[0] == rows[0]
    assert [[c.replace(",", "") for c in r] for r in table[1:]] == rows[1:]


def test_svg_is_written_as_valid_xml_with_the_numbers(cli: Cli, tmp_path: Path) -> None:
    path = tmp_path / "shapes.svg"
    code, out, err = cli(*SHAPES, "-q", "--svg", str(path))
    assert code == 0 and err == ""
    assert "4,722,432" in out  # the tables are still printed
    root = ET.parse(path).getroot()
    assert root.tag.endswith("svg")
    text = " ".join(t for t in root.itertext()).replace("\xa0", " ")
    assert "4,722,432" in text and "18,889,728" in text


@pytest.mark.parametrize("bad", ["missing-folder/x.svg", "."])
def test_svg_bad_path_is_one_line_exit_2(cli: Cli, tmp_path: Path, bad: str) -> None:
    code, out, err = cli(*SHAPES, "--svg", str(tmp_path / bad))
    assert code == 2 and out == ""
    assert err.count("\n") == 1 and "--svg" in err


def test_svg_refuses_a_machine_format(cli: Cli, tmp_path: Path) -> None:
    code, out, err = cli(*SHAPES, "-f", "json", "--svg", str(tmp_path / "x.svg"))
    assert code == 2 and out == "" and "--svg" in err


def test_completion_callbacks() -> None:
    assert complete_model("lla") == [n for n in PRESETS if n.startswith("lla")]
    assert "llama-3-8b" in complete_model("llama-3")
    assert complete_model("") == list(PRESETS)
    assert complete_gpu("h1") == [n for n in GPUS if n.startswith("h1")] and "h100-sxm" in complete_gpu("h1")
    assert complete_activation("sw") == [a for a in ACTIVATIONS if a.startswith("sw")] == ["swiglu", "swiglu_clamped"]
    assert complete_dtype("bf") == ["bfloat16"]
    assert set(complete_dtype("")) == set(DTYPES)
    assert complete_model("nope") == []
    # a list (the sweep's --model a,b) completes its last item
    assert complete_model("bert-base,gpt2-x") == ["bert-base,gpt2-xl"]


def test_completion_through_the_shell_protocol(cli_proc: Callable[..., Result]) -> None:
    env = {"_FFN_CALC_COMPLETE": "complete_bash", "COMP_WORDS": "ffn-calc shapes 1 1 -m lla", "COMP_CWORD": "5"}
    code, out, _ = cli_proc(env=env)
    assert code == 0
    assert out.split() == [n for n in PRESETS if n.startswith("lla")]
    env = {"_FFN_CALC_COMPLETE": "complete_bash", "COMP_WORDS": "ffn-calc roofline 1 1 --gpu h1", "COMP_CWORD": "5"}
    assert "h100-sxm" in cli_proc(env=env).out.split()


def test_completion_options_are_offered(cli: Cli) -> None:
    _, out, _ = cli("--help")
    assert "--install-completion" in out and "--show-completion" in out


def test_svg_on_a_full_disk_leaves_the_old_file_whole(cli: Cli, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    import errno
    import os

    path = tmp_path / "shapes.svg"
    path.write_text("<svg>the old picture</svg>", encoding="utf-8")
    real_fsync = os.fsync

    def full(fd: int) -> None:
        raise OSError(errno.ENOSPC, "No space left on device")

    monkeypatch.setattr(os, "fsync", full)
    code, _, err = cli(*SHAPES, "-q", "--svg", str(path))
    assert code == 1 and "No space left on device" in err and err.count("\n") == 1
    assert path.read_text(encoding="utf-8") == "<svg>the old picture</svg>"
    assert sorted(p.name for p in tmp_path.iterdir()) == ["shapes.svg"]  # no temporary file left behind
    monkeypatch.setattr(os, "fsync", real_fsync)
    assert cli(*SHAPES, "-q", "--svg", str(path)).code == 0
    ET.fromstring(path.read_text(encoding="utf-8"))


def test_three_runs_writing_one_svg_leave_one_whole_picture(tmp_path: Path) -> None:
    import subprocess

    from helpers import CLI, ENV, ROOT

    path = tmp_path / "same.svg"
    runs = [
        subprocess.Popen([*CLI, "shapes", "1", "2048", "-m", model, "--svg", str(path)], env=ENV, cwd=ROOT, stdout=subprocess.DEVNULL)
        for model in ("llama-3-8b", "mixtral-8x7b", "deepseek-v3")
    ]
    assert [r.wait(timeout=120) for r in runs] == [0, 0, 0]
    ET.fromstring(path.read_text(encoding="utf-8"))  # one run's picture, not a mix
    assert sorted(p.name for p in tmp_path.iterdir()) == ["same.svg"]
