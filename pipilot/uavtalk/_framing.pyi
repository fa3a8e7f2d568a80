"""Types of the compiled packet framing (`_framing.pyx`): the same as `_framing_py.scan`."""

from collections.abc import Callable
from typing import TypeVar

from pipilot.uavtalk._framing_py import ScanCounts

D = TypeVar("D")
P = TypeVar("P")

IMPLEMENTATION: str

def scan(buf: bytearray, sizes: dict[int, int], defs: dict[int, D], max_len: int,
         packet: Callable[[int, int, int, int | None, bytes, D | None], P],
         ) -> tuple[list[P], int, ScanCounts]: ...
