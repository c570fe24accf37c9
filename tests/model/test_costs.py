"""One cost table (model/conventions.py): every per-unit cost is one entry, the module's docstring
lists each, and no cost is written as a literal anywhere else in the package.

The search reads the package's source with `ast` and reports two shapes of a cost written in
place, wherever they occur:

- the MoE cost shape `a·k ± b` with integer literals a and b, k a top-k count (a name `k`,
  `top_k`, or an attribute `.top_k`): the combine's and renormalisation's 2·k − 1;
- an integer literal of 2 or more in a FLOP count: an operand of +, −, × or // in an
  arithmetic expression that names a FLOP or MAC quantity (an identifier containing "flop" or
  "mac": `conv.DROPOUT.flops`, `macs`) or whose value goes to one (assigned to, passed as, or
  returned from something so named: `bias_flops = …`, `elementwise_flops=…`, `rec.flops(…)`),
  or such a literal assigned to or passed as one on its own (`SIGMOID_FLOPS = 4`).

A FLOP count is an exact integer, so an expression with a true division (/) in it is a ratio or
a rate (a percentage, GFLOP/s) and is not searched; 0 and 1 are not reported (a cost of one
FLOP written as `n * d` has no literal to find). The tests below plant literals in a copy of
the package and check that the search finds each, so that an empty result means something.
"""

from __future__ import annotations

import ast
import re
import shutil
from dataclasses import dataclass
from pathlib import Path

import pytest

import ffn_calc
from ffn_calc.model import conventions as conv

PACKAGE = Path(ffn_calc.__file__).parent
FLOP_NAME = re.compile(r"flop|mac", re.IGNORECASE)
TOP_K_NAMES = {"k", "top_k"}
ARITHMETIC = (ast.Add, ast.Sub, ast.Mult, ast.FloorDiv)


@dataclass(frozen=True)
class Finding:
    path: str  # relative to the package's parent
    line: int
    code: str
    why: str


def _identifier(node: ast.AST) -> str:
    if isinstance(node, ast.Name):
        return node.id
    if isinstance(node, ast.Attribute):
        return node.attr
    return ""


def _is_int(node: ast.AST, least: int = 2) -> bool:
    return isinstance(node, ast.Constant) and type(node.value) is int and node.value >= least


def _is_top_k(node: ast.AST) -> bool:
    return (isinstance(node, ast.Name) and node.id in TOP_K_NAMES) or (isinstance(node, ast.Attribute) and node.attr == "top_k")


def _moe_shape(node: ast.AST) -> bool:
    """a·k ± b (either order of the product), a and b integer literals."""
    if not (isinstance(node, ast.BinOp) and isinstance(node.op, ast.Add | ast.Sub)):
        return False
    for product, constant in ((node.left, node.right), (node.right, node.left)):
        if isinstance(product, ast.BinOp) and isinstance(product.op, ast.Mult) and _is_int(constant, 0):
            if (_is_int(product.left, 1) and _is_top_k(product.right)) or (_is_int(product.right, 1) and _is_top_k(product.left)):
                return True
    return False


class _Search(ast.NodeVisitor):
    def __init__(self, path: str, lines: list[str]) -> None:
        self.path, self.lines = path, lines
        self.found: list[Finding] = []
        self.function: list[str] = []
        self.examined = 0  # FLOP expressions looked into

    def report(self, node: ast.AST, why: str) -> None:
        line = getattr(node, "lineno", 0)
        self.found.append(Finding(self.path, line, self.lines[line - 1].strip() if line else "", why))

    # --- where a value goes: FLOP-named targets -------------------------------------------------

    def visit_FunctionDef(self, node: ast.FunctionDef) -> None:
        self.function.append(node.name)
        self.generic_visit(node)
        self.function.pop()

    visit_AsyncFunctionDef = visit_FunctionDef  # type: ignore[assignment]

    def visit_Assign(self, node: ast.Assign) -> None:
        self._value(node.value, any(FLOP_NAME.search(_identifier(t)) for t in node.targets))
        self.generic_visit(node)

    def visit_AnnAssign(self, node: ast.AnnAssign) -> None:
        if node.value is not None:
            self._value(node.value, bool(FLOP_NAME.search(_identifier(node.target))))
        self.generic_visit(node)

    def visit_AugAssign(self, node: ast.AugAssign) -> None:
        self._value(node.value, bool(FLOP_NAME.search(_identifier(node.target))))
        self.generic_visit(node)

    def visit_Return(self, node: ast.Return) -> None:
        if node.value is not None:
            self._value(node.value, bool(self.function and FLOP_NAME.search(self.function[-1])))
        self.generic_visit(node)

    def visit_Call(self, node: ast.Call) -> None:
        named = bool(FLOP_NAME.search(_identifier(node.func)))
        for arg in node.args:
            self._value(arg, named)
        for kw in node.keywords:
            self._value(kw.value, named or bool(kw.arg and FLOP_NAME.search(kw.arg)))
        self.generic_visit(node)

    def visit_BinOp(self, node: ast.BinOp) -> None:
        if _moe_shape(node):
            self.report(node, "a·k ± b: a top-k cost written in place")
        self.generic_visit(node)

    def _value(self, value: ast.AST, flop_target: bool) -> None:
        """A value: on its own a literal to a FLOP-named target; else each arithmetic tree in it."""
        if flop_target and _is_int(value):
            self.report(value, "a literal FLOP count")
            return
        for tree in _arithmetic_trees(value):
            mentions = any(FLOP_NAME.search(_identifier(n)) for n in ast.walk(tree))
            if not (flop_target or mentions) or any(isinstance(n, ast.BinOp) and isinstance(n.op, ast.Div) for n in ast.walk(tree)):
                continue
            self.examined += 1
            for n in ast.walk(tree):
                if isinstance(n, ast.BinOp) and isinstance(n.op, ARITHMETIC) and (_is_int(n.left) or _is_int(n.right)):
                    self.report(n, "an integer literal in a FLOP count")


def _arithmetic_trees(node: ast.AST) -> list[ast.BinOp]:
    """The outermost arithmetic expressions in `node` (an arithmetic expression's operands that
    are arithmetic belong to it; those nested in a call, subscript or comprehension do not)."""
    if isinstance(node, ast.BinOp):
        return [node]
    if isinstance(node, ast.Lambda | ast.FunctionDef):
        return []
    return [tree for child in ast.iter_child_nodes(node) for tree in _arithmetic_trees(child)]


def search(root: Path) -> tuple[list[Finding], dict[str, int]]:
    """Every cost written as a literal in the .py files under `root` (a package directory), and
    how many FLOP expressions each file had that the search looked into."""
    found: list[Finding] = []
    examined: dict[str, int] = {}
    for path in sorted(root.rglob("*.py")):
        source = path.read_text(encoding="utf-8")
        name = str(path.relative_to(root.parent))
        visitor = _Search(name, source.splitlines())
        visitor.visit(ast.parse(source, filename=str(path)))
        found.extend(visitor.found)
        examined[name] = visitor.examined
    return sorted(set(found), key=lambda f: (f.path, f.line)), examined


def cost_literals(root: Path) -> list[Finding]:
    return search(root)[0]


# --- the package ----------------------------------------------------------------------------------


@pytest.fixture(scope="module")
def package_search() -> tuple[list[Finding], dict[str, int]]:
    """The search of the package, run once for the checks of it below."""
    return search(PACKAGE)


def test_no_cost_is_written_outside_the_table(package_search: tuple[list[Finding], dict[str, int]]) -> None:
    found = package_search[0]
    assert found == [], "\n".join(f"{f.path}:{f.line}: {f.why}: {f.code}" for f in found)


def test_the_search_reads_the_counting_modules(package_search: tuple[list[Finding], dict[str, int]]) -> None:
    """Not vacuous by omission: every module that computes FLOPs has FLOP expressions the search
    looked into (the verifier's passes count through tallies, recorder.py, and have almost none)."""
    _, examined = package_search
    counting = ["model/forward.py", "model/training.py", "model/norms.py", "model/roofline.py", "verifier/training_step.py",
                "verifier/compare.py", "verifier/observe.py", "verifier/parallel.py"]  # fmt: skip
    assert {name: examined[f"ffn_calc/{name}"] for name in counting if not examined[f"ffn_calc/{name}"]} == {}
    assert sum(examined.values()) >= 50


def _copy(tmp_path: Path, file: str) -> Path:
    """A package directory holding a copy of `file` alone: the rest of the package is the
    package's own, which test_no_cost_is_written_outside_the_table finds clean."""
    root = tmp_path / "ffn_calc"
    (root / file).parent.mkdir(parents=True)
    shutil.copyfile(PACKAGE / file, root / file)
    return root


def _plant(root: Path, file: str, old: str, new: str) -> int:
    """Replace `old` (exactly once in `file`) by `new`; returns the line it is on."""
    path = root / file
    text = path.read_text(encoding="utf-8")
    assert text.count(old) == 1, f"{old!r} is not in {file} exactly once: the plant needs updating"
    path.write_text(text.replace(old, new), encoding="utf-8")
    return text[: text.index(old)].count("\n") + 1


PLANTS = {
    "combine as 2·k − 1 in the model": ("model/forward.py", "COMBINE.at(k).flops * n * d", "(2 * k - 1) * n * d"),
    "renormalisation as 2·top_k − 1 in the verifier": ("verifier/forward.py", "conv.TOP_K_RENORM.at(k)",
                                                       "Cost('x', 'x', 2 * cfg.top_k - 1, 'token', '', '')"),
    "the router softmax's 3 per logit": ("model/forward.py", "ROUTER_SOFTMAX.flops * n * e", "3 * n * e"),
    "dropout's forward and backward as 2 ×": ("model/training.py", "(conv.DROPOUT.flops + conv.DROPOUT_BACKWARD.flops) * out_elements",
                                              "2 * conv.DROPOUT.flops * out_elements"),
    "a bias gradient's cost in a keyword": ("model/training.py", "elementwise_flops=conv.BIAS_GRAD.flops * m * n", "elementwise_flops=4 * m * n"),
    "a cost constant outside the table": ("model/training.py", "from ffn_calc.model import conventions as conv\n",
                                          "from ffn_calc.model import conventions as conv\nSIGMOID_FLOPS = 4\n"),
}  # fmt: skip


# The first plant runs in the fast loop, the rest with the slow tests.
@pytest.mark.parametrize(
    ("file", "old", "new"),
    [pytest.param(*plant, id=name, marks=() if i == 0 else pytest.mark.slow) for i, (name, plant) in enumerate(PLANTS.items())],
)
def test_a_planted_literal_is_found(tmp_path: Path, file: str, old: str, new: str) -> None:
    root = _copy(tmp_path, file)
    assert cost_literals(root) == []  # the copy is clean, as the package is
    line = _plant(root, file, old, new)
    found = cost_literals(root)
    assert sorted({f"{f.path}:{f.line}" for f in found}) in ([f"ffn_calc/{file}:{line}"], [f"ffn_calc/{file}:{line + 1}"]), found


def test_ratios_and_shapes_are_not_costs(tmp_path: Path) -> None:
    """What the search leaves alone: a percentage of FLOPs (a true division), a width that is
    not a FLOP count, a cost of 1 and 0."""
    root = tmp_path / "pkg"
    root.mkdir()
    (root / "m.py").write_text(
        "def share(part_flops, total_flops):\n    return 100 * part_flops / total_flops\n"
        "def width(d_ff):\n    return 2 * d_ff\n"
        "def f(n, bias_flops=0):\n    elementwise_flops = 1 * n\n    return elementwise_flops + 0\n",
        encoding="utf-8",
    )
    assert cost_literals(root) == []


# --- the table ------------------------------------------------------------------------------------


def test_the_docstring_lists_every_entry() -> None:
    doc = conv.__doc__ or ""
    for cost in conv.COSTS.values():
        line = rf"^\s+{re.escape(cost.label)}\s+{re.escape(cost.formula)} per {cost.unit}\s"
        assert re.search(line, doc, re.MULTILINE), f"the docstring has no line for {cost.label}: {cost.formula} per {cost.unit}"
    listed = re.findall(r"^    (\S.*?)\s{2,}(\d|\d·k − \d) per (\w+)\s", doc, re.MULTILINE)
    assert len(listed) == len(conv.COSTS), listed  # and nothing else is listed as a cost


def test_entries_are_unique_and_say_their_phase() -> None:
    with pytest.raises(ValueError, match="declared twice"):
        conv._cost("bias_add", "bias add", 1, "element", conv.FORWARD, "again")
    assert conv.COSTS["bias_add"].counts != "again"
    for cost in conv.COSTS.values():
        assert cost.phase in (conv.FORWARD, conv.BACKWARD, conv.BOTH) and cost.counts and cost.label
        assert cost.at(3).per_k == 0 and cost.at(3).flops == cost.flops + 3 * cost.per_k


def test_top_k_costs_by_hand() -> None:
    assert [conv.COMBINE.at(k).flops for k in (1, 2, 8)] == [1, 3, 15]  # k multiplies, k − 1 adds
    assert conv.TOP_K_RENORM.at(2).flops == 3 and conv.COMBINE.formula == "2·k − 1"
    assert conv.COMBINE.at(2).source == "conventions: MoE combine (2·k − 1) FLOPs per output element"  # as verify cites it
    assert conv.BIAS_ADD.source == "conventions.BIAS_ADD_FLOPS_PER_ELEMENT" and conv.MULTIPLY_ADD.key == "flops_per_mac"


def test_the_json_convention_reads_the_table() -> None:
    d = conv.conventions_dict()
    assert d["flops_per_mac"] == conv.MULTIPLY_ADD.flops == 2
    for cost in (conv.BIAS_ADD, conv.RESIDUAL_ADD, conv.GLU_MULTIPLY, conv.ROUTER_SOFTMAX, conv.GATE_SIGMOID, conv.GATE_SCALE):
        assert d[cost.key] == cost.flops


def test_a_glu_stage_costs_the_activation_and_the_multiply() -> None:
    assert conv.activation_flops("swiglu") == conv.activation_flops("silu") + conv.GLU_MULTIPLY.flops == 5
    assert conv.activation_backward_flops("swiglu") == 9 + 4 + conv.GLU_MULTIPLY_BACKWARD.flops == 15
    assert conv.activation_backward_flops("relu") == 1
