"""encode_batch: the same bytes as encode, row by row, with checked input."""

from __future__ import annotations

from types import ModuleType

import numpy as np
import pytest
from hypothesis import given
from hypothesis import strategies as st
from hypothesis.extra import numpy as hnp
from sbus_twins import no_deadline

from pipilot.sbus import SbusError, _pack_py

batches = hnp.arrays(np.uint16, st.tuples(st.integers(0, 40), st.just(16)),
                     elements=st.integers(0, 2047))


def frames_one_by_one(arr: np.ndarray, flags: np.ndarray) -> bytes:
    return b"".join(
        _pack_py.encode(row.tolist(), ch17=bool(f & 1), ch18=bool(f & 2),
                        frame_lost=bool(f & 4), failsafe=bool(f & 8))
        for row, f in zip(arr, flags, strict=True)
    )


@no_deadline
@given(arr=batches, data=st.data())
def test_batch_matches_encode(impl: ModuleType, arr: np.ndarray, data: st.DataObject) -> None:
    flags = data.draw(hnp.arrays(np.uint8, arr.shape[0], elements=st.integers(0, 15)))
    out = impl.encode_batch(arr, flags)
    assert out.dtype == np.uint8 and out.shape == (arr.shape[0], 25)
    assert out.tobytes() == frames_one_by_one(arr, flags)
    plain = impl.encode_batch(arr)
    assert plain.tobytes() == frames_one_by_one(arr, np.zeros(arr.shape[0], np.uint8))


@no_deadline
@given(arr=batches)
def test_twins_batch_identically(twins: tuple[ModuleType, ModuleType], arr: np.ndarray) -> None:
    compiled, python = twins
    assert np.array_equal(compiled.encode_batch(arr, 9), python.encode_batch(arr, 9))


def test_scalar_flags_apply_to_every_frame(impl: ModuleType) -> None:
    out = impl.encode_batch(np.zeros((3, 16), np.uint16), 0x08)
    assert out[:, 23].tolist() == [8, 8, 8]


def test_other_layouts_and_dtypes(impl: ModuleType) -> None:
    rng = np.random.default_rng(1)
    arr = rng.integers(0, 2048, (10, 16)).astype(np.uint16)
    expected = impl.encode_batch(arr)
    wide = np.zeros((20, 16), np.uint16)
    wide[::2] = arr
    assert np.array_equal(impl.encode_batch(wide[::2]), expected)  # not contiguous
    fortran = np.asfortranarray(arr)
    assert np.array_equal(impl.encode_batch(fortran), expected)
    assert np.array_equal(impl.encode_batch(arr.astype(np.int64)), expected)
    assert np.array_equal(impl.encode_batch(arr.tolist()), expected)
    assert impl.encode_batch(np.zeros((0, 16), np.uint16)).shape == (0, 25)


@pytest.mark.parametrize(
    ("array", "flags", "message"),
    [
        (np.zeros((3, 15), np.uint16), None, r"expected an \(N, 16\) array"),
        (np.zeros(16, np.uint16), None, r"expected an \(N, 16\) array"),
        (np.zeros((2, 16), np.float64), None, "must be integers"),
        (np.zeros((2, 16), np.uint16), np.zeros(3), "flags must be integers"),
        (np.zeros((2, 16), np.uint16), np.zeros(3, np.uint8), "expected 2 flags"),
        (np.zeros((2, 16), np.uint16), np.array([0, 16]), "frame 1: flags 16 outside 0..15"),
        (np.zeros((2, 16), np.uint16), -1, "frame 0: flags -1 outside"),
    ],
)
def test_bad_batches(impl: ModuleType, array: np.ndarray, flags: object, message: str) -> None:
    with pytest.raises(SbusError, match=message):
        impl.encode_batch(array, flags)


@pytest.mark.parametrize("dtype", [np.uint16, np.int32, np.int64, np.uint64])
def test_out_of_range_named(impl: ModuleType, dtype: type) -> None:
    arr = np.zeros((5, 16), dtype)
    arr[3, 6] = 2048
    with pytest.raises(SbusError, match=r"frame 3, channel 7: 2048 is outside 0..2047"):
        impl.encode_batch(arr)


def test_negative_does_not_wrap(impl: ModuleType) -> None:
    arr = np.zeros((2, 16), np.int16)
    arr[1, 15] = -1
    with pytest.raises(SbusError, match=r"frame 1, channel 16: -1 is outside"):
        impl.encode_batch(arr)
