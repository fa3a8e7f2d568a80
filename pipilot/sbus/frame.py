"""What an S.Bus frame is: constants, the decoded `Frame`, and input checks.

Both codec twins (`_pack`, compiled, and `_pack_py`, pure Python) share this
module so that they raise the same errors and return the same type.
"""

from __future__ import annotations

import operator
from typing import TYPE_CHECKING, Any, NamedTuple

from pipilot.errors import ProtocolError

if TYPE_CHECKING:  # numpy is imported by the batch functions only: `fly` never loads it
    import numpy as np
    import numpy.typing as npt

FRAME_LEN = 25
START_BYTE = 0x0F
END_BYTE = 0x00
#: An end byte `b` is accepted when `b & END_MASK == 0`. This covers 0x00 and
#: the counter end bytes some receivers send (0x04, 0x14, 0x24, 0x34), exactly
#: the bytes the LibrePilot decoder accepts.
END_MASK = 0xCB
#: 8E2 at 100000 baud: 12 bit times per byte on the wire.
BYTE_TIME = 120e-6
NUM_CHANNELS = 16
VALUE_MAX = 2047

FLAG_CH17 = 0x01
FLAG_CH18 = 0x02
FLAG_FRAME_LOST = 0x04
FLAG_FAILSAFE = 0x08
FLAGS_MASK = 0x0F


class SbusError(ProtocolError, ValueError):
    """Channel values that cannot be encoded, or bytes that are not a frame.

    Also a ValueError, which is what callers caught before it existed.
    """


class Frame(NamedTuple):
    """One decoded frame: 16 analog channels (0..2047) and the flags byte."""

    channels: tuple[int, ...]
    ch17: bool = False
    ch18: bool = False
    frame_lost: bool = False
    failsafe: bool = False

    @property
    def flags(self) -> int:
        """The flags byte as it appears on the wire."""
        return (
            (FLAG_CH17 if self.ch17 else 0)
            | (FLAG_CH18 if self.ch18 else 0)
            | (FLAG_FRAME_LOST if self.frame_lost else 0)
            | (FLAG_FAILSAFE if self.failsafe else 0)
        )


#: Frame's four flag fields for every value of the flags byte's low nibble.
FLAG_FIELDS: tuple[tuple[bool, bool, bool, bool], ...] = tuple(
    (bool(f & FLAG_CH17), bool(f & FLAG_CH18), bool(f & FLAG_FRAME_LOST), bool(f & FLAG_FAILSAFE))
    for f in range(16)
)


def end_byte_ok(b: int) -> bool:
    """True for an end byte the flight controller accepts."""
    return b & END_MASK == 0


def channel_error(channels: Any) -> SbusError:
    """The error for a channel vector that cannot be encoded, naming the culprit.

    Called only once the fast path has refused `channels`, so it may be slow.
    """
    try:
        values = list(channels)
    except TypeError:
        return SbusError(f"channels must be a sequence of {NUM_CHANNELS} ints, "
                          f"got {type(channels).__name__}")
    for i, value in enumerate(values[:NUM_CHANNELS], start=1):
        try:
            v = operator.index(value)
        except TypeError:
            return SbusError(f"channel {i}: {value!r} is not an integer")
        if not 0 <= v <= VALUE_MAX:
            return SbusError(f"channel {i}: {v} is outside 0..{VALUE_MAX}")
    if len(values) != NUM_CHANNELS:
        return SbusError(f"expected {NUM_CHANNELS} channels, got {len(values)}")
    return SbusError(f"channels {values!r} cannot be encoded")


def frame_error(frame: Any) -> SbusError:
    """The error for bytes that are not one valid frame, saying what is wrong."""
    try:
        data = bytes(memoryview(frame))
    except TypeError:
        return SbusError(f"an S.Bus frame must be bytes, got {type(frame).__name__}")
    if len(data) != FRAME_LEN:
        return SbusError(f"an S.Bus frame is {FRAME_LEN} bytes, got {len(data)}")
    if data[0] != START_BYTE:
        return SbusError(f"bad S.Bus start byte 0x{data[0]:02X} (expected 0x{START_BYTE:02X})")
    if not end_byte_ok(data[-1]):
        return SbusError(f"bad S.Bus end byte 0x{data[-1]:02X}")
    return SbusError(f"bytes {data.hex()} are not an S.Bus frame")


def batch_arrays(
    array: npt.ArrayLike, flags: npt.ArrayLike | int | None, *, check: bool = True
) -> tuple[npt.NDArray[np.uint16], npt.NDArray[np.uint8] | None]:
    """Checked, C-contiguous (N, 16) uint16 channels and (N,) uint8 flags.

    `flags` is None (all clear), one int for every frame, or one per frame;
    each is a flags byte (bit0 ch17, bit1 ch18, bit2 frame lost, bit3 failsafe).
    A value out of range raises SbusError naming frame and channel; integer
    arrays of another dtype are range-checked before conversion so that
    nothing wraps around silently. With `check=False` a uint16 array is not
    range-checked here: the caller checks it while packing and then calls
    `batch_range_error`.
    """
    import numpy as np

    arr = np.asarray(array)
    if arr.ndim != 2 or arr.shape[1] != NUM_CHANNELS:
        raise SbusError(f"expected an (N, {NUM_CHANNELS}) array, got shape {arr.shape}")
    if arr.dtype != np.uint16:
        if arr.dtype.kind not in "iub":
            raise SbusError(f"channel values must be integers, got dtype {arr.dtype}")
        _check_batch_range(arr)
    elif check:
        _check_batch_range(arr)
    arr = np.ascontiguousarray(arr, dtype=np.uint16)
    n = arr.shape[0]
    if flags is None:
        return arr, None
    f = np.asarray(flags)
    if f.dtype.kind not in "iub":
        raise SbusError(f"flags must be integers, got dtype {f.dtype}")
    if f.ndim == 0:
        f = np.full(n, f)
    if f.shape != (n,):
        raise SbusError(f"expected {n} flags, got shape {f.shape}")
    bad = np.flatnonzero((f < 0) | (f > FLAGS_MASK))
    if bad.size:
        i = int(bad[0])
        raise SbusError(f"frame {i}: flags {int(f[i])} outside 0..{FLAGS_MASK}")
    return arr, np.ascontiguousarray(f, dtype=np.uint8)


def _check_batch_range(arr: npt.NDArray[Any]) -> None:
    import numpy as np

    if arr.size == 0:
        return
    if arr.dtype == np.uint16:
        if int(arr.max()) <= VALUE_MAX:
            return
    elif int(arr.min()) >= 0 and int(arr.max()) <= VALUE_MAX:
        return
    raise batch_range_error(arr)


def batch_range_error(arr: npt.NDArray[Any]) -> SbusError:
    """The error naming the first out-of-range value in an (N, 16) array."""
    import numpy as np

    row, col = np.argwhere((arr < 0) | (arr > VALUE_MAX))[0]
    return SbusError(f"frame {int(row)}, channel {int(col) + 1}: "
                     f"{int(arr[row, col])} is outside 0..{VALUE_MAX}")
