"""S.Bus frame codec (sans-IO): channel values <-> 25-byte frames.

`IMPLEMENTATION` says which twin runs: "cython" (the compiled `_pack`) or
"python" (`_pack_py`). PIPILOT_PURE_PYTHON=1 in the environment forces the
Python twin; without the compiled extension it is used anyway.
"""

from __future__ import annotations

import os

from .frame import BYTE_TIME, END_MASK, FRAME_LEN, START_BYTE, Frame, SbusError
from .scale import unit_to_value, us_to_value, value_to_unit, value_to_us

if os.environ.get("PIPILOT_PURE_PYTHON", "") not in ("", "0"):
    from ._pack_py import IMPLEMENTATION, decode, encode, encode_batch
else:
    try:
        from ._pack import IMPLEMENTATION, decode, encode, encode_batch
    except ImportError:
        from ._pack_py import IMPLEMENTATION, decode, encode, encode_batch

from .stream import FrameDecoder, SyncState  # after the codec: it needs decode above

__all__ = [
    "BYTE_TIME",
    "END_MASK",
    "FRAME_LEN",
    "IMPLEMENTATION",
    "START_BYTE",
    "Frame",
    "FrameDecoder",
    "SbusError",
    "SyncState",
    "decode",
    "encode",
    "encode_batch",
    "unit_to_value",
    "us_to_value",
    "value_to_unit",
    "value_to_us",
]
