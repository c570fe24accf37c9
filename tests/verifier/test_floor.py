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


@pytest.mark.parametrize(("dtype", "imported"), [("float32", False), ("float16", False), ("bfloat16", True)])
def test_ml_dtypes_is_imported_only_when_needed(dtype: str, imported: bool) -> None:
    code = (
        "import sys\nfrom ffn_calc.model.layer import make_config\nfrom ffn_calc.verifier.run import verify\n"
        f"assert verify(make_config(1, 4, 8, 16, activation='swiglu', dtype={dtype!r})).ok\nprint('ml_dtypes' in sys.modules)"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True).stdout.strip()
    assert out == str(imported)
