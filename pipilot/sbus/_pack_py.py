"""The pure-Python S.Bus codec twin; `_pack.pyx` is its compiled sibling.

Encoding reads the 16 channels as one 256-bit integer of 16-bit lanes and
squeezes the lanes to 11 bits in four mask-and-shift steps (pairs of lanes,
then pairs of pairs, ...): 16 big-integer operations instead of one shift
and one OR per channel. Decoding runs the same steps backwards.
"""

from __future__ import annotations

import struct
from collections.abc import Sequence
from typing import TYPE_CHECKING

if TYPE_CHECKING:  # numpy is imported by encode_batch only: `fly` never loads it
    import numpy as np
    import numpy.typing as npt

from .frame import (
    END_MASK,
    FLAG_CH17,
    FLAG_CH18,
    FLAG_FAILSAFE,
    FLAG_FIELDS,
    FLAG_FRAME_LOST,
    FLAGS_MASK,
    FRAME_LEN,
    START_BYTE,
    Frame,
    batch_arrays,
    channel_error,
    frame_error,
)

IMPLEMENTATION = "python"


def _mask(lane: int, lo: int, hi: int) -> int:
    """Bits lo..hi-1 of every `lane`-bit lane of a 256-bit integer."""
    field = ((1 << (hi - lo)) - 1) << lo
    return sum(field << base for base in range(0, 256, lane))


# Step k joins pairs of (11 * 2**k)-bit fields that sit (16 * 2**k) bits apart.
_STEPS = tuple(
    (_mask(32 << k, 0, 11 << k), _mask(32 << k, 11 << k, 22 << k), 5 << k) for k in range(4)
)
(_M0, _N0, _S0), (_M1, _N1, _S1), (_M2, _N2, _S2), (_M3, _N3, _S3) = _STEPS
_OVER = _mask(16, 11, 16)  # any bit above the 11 a channel may use
_U16 = struct.Struct("<16H")
_pack16 = _U16.pack
_unpack16 = _U16.unpack
_from_bytes = int.from_bytes
_tuple_new = tuple.__new__
_FAST_TYPES = (list, tuple)


def encode(
    channels: Sequence[int],
    *,
    ch17: bool = False,
    ch18: bool = False,
    frame_lost: bool = False,
    failsafe: bool = False,
) -> bytes:
    """A 25-byte frame from 16 ints in 0..2047; SbusError names a bad channel."""
    try:
        if type(channels) not in _FAST_TYPES:
            channels = tuple(channels)
        x = _from_bytes(_pack16(*channels), "little")
    except (struct.error, TypeError, OverflowError):
        raise channel_error(channels) from None
    if x & _OVER:
        raise channel_error(channels)
    x = x & _M0 | (x >> _S0) & _N0
    x = x & _M1 | (x >> _S1) & _N1
    x = x & _M2 | (x >> _S2) & _N2
    x = (x & _M3 | (x >> _S3) & _N3) << 8 | START_BYTE
    if ch17 or ch18 or frame_lost or failsafe:
        flags = (
            (FLAG_CH17 if ch17 else 0)
            | (FLAG_CH18 if ch18 else 0)
            | (FLAG_FRAME_LOST if frame_lost else 0)
            | (FLAG_FAILSAFE if failsafe else 0)
        )
        x |= flags << 184
    return x.to_bytes(FRAME_LEN, "little")


def decode(frame: bytes | bytearray | memoryview) -> Frame:
    """The `Frame` in 25 bytes; SbusError for a wrong length, start or end byte."""
    if frame.__class__ is not bytes:
        try:
            frame = bytes(memoryview(frame))
        except TypeError:
            raise frame_error(frame) from None
    if len(frame) != FRAME_LEN or frame[0] != START_BYTE or frame[24] & END_MASK:
        raise frame_error(frame)
    x = _from_bytes(frame[1:23], "little")
    x = x & _M3 | (x & _N3) << _S3
    x = x & _M2 | (x & _N2) << _S2
    x = x & _M1 | (x & _N1) << _S1
    x = x & _M0 | (x & _N0) << _S0
    return _tuple_new(Frame, (_unpack16(x.to_bytes(32, "little")), *FLAG_FIELDS[frame[23] & 15]))


def encode_batch(
    array: npt.ArrayLike, flags: npt.ArrayLike | int | None = None
) -> npt.NDArray[np.uint8]:
    """Frames for an (N, 16) array of channel values: an (N, 25) uint8 array.

    `flags` is None, one flags byte for all frames, or one per frame.
    """
    import numpy as np

    arr, flag_bytes = batch_arrays(array, flags)
    ch = arr.astype(np.uint32)
    out = np.zeros((arr.shape[0], FRAME_LEN), dtype=np.uint8)
    out[:, 0] = START_BYTE
    # Output byte 1 + k holds bits 8k..8k+7 of the 176-bit channel field; up to
    # three channels overlap it, each shifted into place.
    for k in range(22):
        acc = np.zeros(arr.shape[0], dtype=np.uint32)
        for i in range((8 * k) // 11, min((8 * k + 7) // 11, 15) + 1):
            shift = 11 * i - 8 * k
            acc |= ch[:, i] << shift if shift >= 0 else ch[:, i] >> -shift
        out[:, 1 + k] = acc & 0xFF
    if flag_bytes is not None:
        out[:, 23] = flag_bytes & FLAGS_MASK
    return out

