"""verify at the floor (issue 20 part 4): weights drawn in parallel streams whose values do not
depend on the thread count, and ml_dtypes imported only for the dtypes that need it."""

from __future__ import annotations

import subprocess
import sys

import ml_dtypes
import numpy as np
import pytest

from ffn_calc.verifier import arrays
from ffn_calc.verifier.properties import FRACTION_BITS, eps


@pytest.mark.parametrize("dtype", [np.float32, np.float16, np.float64])
def test_random_arrays_do_not_depend_on_the_thread_count(monkeypatch: pytest.MonkeyPatch, dtype: type) -> None:
    shape = (3 * arrays.RANDOM_ELEMENTS // 1000 + 7, 1000)  # more than 3 blocks, the last one short
    drawn = []
    for threads in (1, 2, 4):
        monkeypatch.setattr(arrays, "THREADS", threads)
        arrays._close_pool()
        drawn.append(arrays.random_array(np.random.default_rng(5), shape, dtype, 0.5))
    arrays._close_pool()
    assert all(np.array_equal(drawn[0], d) for d in drawn[1:])
    assert abs(float(drawn[0].astype(np.float64).std()) - 0.5) < 0.01  # Normal(0, 0.5²)
    assert not np.array_equal(drawn[0][:1000].ravel(), drawn[0].ravel()[arrays.RANDOM_ELEMENTS : arrays.RANDOM_ELEMENTS + 1000])


def test_the_blocks_streams_differ_by_seed() -> None:
    a = arrays.random_array(np.random.default_rng(0), (64,), np.float32, 1.0)
    b = arrays.random_array(np.random.default_rng(1), (64,), np.float32, 1.0)
    assert not np.array_equal(a, b)


def test_fraction_bits_are_ml_dtypes() -> None:
    for name, bits in FRACTION_BITS.items():
        assert eps(name) == float(ml_dtypes.finfo(getattr(ml_dtypes, name)).eps), name  # type: ignore[no-untyped-call]
        assert bits == int(ml_dtypes.finfo(getattr(ml_dtypes, name)).nmant)  # type: ignore[no-untyped-call]


IMPORT_CASES = [("float32", False), ("float16", False), ("bfloat16", True)]


@pytest.fixture(scope="module")
def ml_dtypes_imported() -> dict[str, bool]:
    """One fresh interpreter verifies a layer in each dtype, in the order above (the two that must
    not import ml_dtypes first), and says after each whether ml_dtypes was imported by then."""
    code = "import sys\nfrom ffn_calc.model.layer import make_config\nfrom ffn_calc.verifier.run import verify\n" + "".join(
        f"assert verify(make_config(1, 4, 8, 16, activation='swiglu', dtype={dtype!r})).ok\nprint({dtype!r}, 'ml_dtypes' in sys.modules)\n"
        for dtype, _ in IMPORT_CASES
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True).stdout
    return {dtype: seen == "True" for dtype, seen in (line.split() for line in out.splitlines())}


@pytest.mark.parametrize(("dtype", "imported"), IMPORT_CASES)
def test_ml_dtypes_is_imported_only_when_needed(ml_dtypes_imported: dict[str, bool], dtype: str, imported: bool) -> None:
    assert ml_dtypes_imported[dtype] is imported
