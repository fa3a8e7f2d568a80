"""Types of the compiled S.Bus codec (`_pack.pyx`): the same interface as `_pack_py`."""

from collections.abc import Sequence

import numpy as np
import numpy.typing as npt

from .frame import Frame

IMPLEMENTATION: str

def encode(channels: Sequence[int], *, ch17: bool = False, ch18: bool = False,
           frame_lost: bool = False, failsafe: bool = False) -> bytes: ...
def decode(frame: bytes | bytearray | memoryview) -> Frame: ...
def encode_batch(array: npt.ArrayLike,
                 flags: npt.ArrayLike | int | None = None) -> npt.NDArray[np.uint8]: ...
