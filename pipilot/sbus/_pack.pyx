# cython: language_level=3, boundscheck=False, wraparound=False, cdivision=True, binding=False
# binding=False makes encode/decode plain builtins: a few ns less per call.
"""The compiled S.Bus codec twin; `_pack_py.py` is its pure-Python sibling.

Same functions, same errors (both build them in `frame.py`). The hot paths
read list/tuple items and bytes without intermediate objects, pack each half
frame (8 channels, 88 bits) in one 64-bit and one 24-bit word, and allocate
nothing but the result.
"""

from cpython.bytearray cimport PyByteArray_AS_STRING, PyByteArray_CheckExact
from cpython.bytes cimport PyBytes_AS_STRING, PyBytes_CheckExact, PyBytes_FromStringAndSize
from cpython.list cimport PyList_CheckExact
from cpython.object cimport PyObject
from cpython.ref cimport Py_INCREF
from cpython.sequence cimport PySequence_Fast_ITEMS
from cpython.tuple cimport PyTuple_CheckExact, PyTuple_New, PyTuple_SET_ITEM
from libc.stdint cimport uint8_t, uint16_t, uint64_t


from .frame import (
    Frame,
    batch_arrays,
    batch_range_error,
    channel_error,
    frame_error,
)

IMPLEMENTATION = "cython"

cdef enum:
    LEN = 25
    START = 0x0F
    END_MASK = 0xCB
    NCH = 16
    VMAX = 2047

cdef extern from "Python.h":
    Py_ssize_t PyList_GET_SIZE(object)
    Py_ssize_t PyTuple_GET_SIZE(object)
    Py_ssize_t PyBytes_GET_SIZE(object)
    Py_ssize_t PyByteArray_GET_SIZE(object)
    PyObject* PyTuple_GET_ITEM(object, Py_ssize_t)
    # Borrowed item pointers, so reading a channel costs no reference counting.
    bint PyLong_CheckExact(PyObject*)
    long PyLong_AsLongAndOverflow(PyObject*, int*)  # never raises for an int

# Every channel value as a ready int object, so decode allocates no ints.
cdef tuple _INTS = tuple(range(VMAX + 1))
cdef object _Frame = Frame
cdef object _tuple_new = tuple.__new__


cdef inline void _pack_half(const uint16_t* c, uint8_t* out) noexcept nogil:
    """Channels c[0..7] (11 bits each) into out[0..10], LSB first."""
    cdef uint64_t lo = (<uint64_t>c[0] | <uint64_t>c[1] << 11 | <uint64_t>c[2] << 22
                        | <uint64_t>c[3] << 33 | <uint64_t>c[4] << 44 | <uint64_t>c[5] << 55)
    cdef uint64_t hi = <uint64_t>c[5] >> 9 | <uint64_t>c[6] << 2 | <uint64_t>c[7] << 13
    cdef int k
    for k in range(8):
        out[k] = <uint8_t>(lo >> (8 * k))
    out[8] = <uint8_t>hi
    out[9] = <uint8_t>(hi >> 8)
    out[10] = <uint8_t>(hi >> 16)


cdef inline void _unpack_half(const uint8_t* s, uint16_t* c) noexcept nogil:
    """out[0..10] back into channels c[0..7]."""
    cdef uint64_t lo = 0
    cdef int k
    for k in range(8):
        lo |= <uint64_t>s[k] << (8 * k)
    cdef uint64_t hi = <uint64_t>s[8] | <uint64_t>s[9] << 8 | <uint64_t>s[10] << 16
    c[0] = lo & VMAX
    c[1] = (lo >> 11) & VMAX
    c[2] = (lo >> 22) & VMAX
    c[3] = (lo >> 33) & VMAX
    c[4] = (lo >> 44) & VMAX
    c[5] = ((lo >> 55) | (hi << 9)) & VMAX
    c[6] = (hi >> 2) & VMAX
    c[7] = (hi >> 13) & VMAX


cdef int _read_channels(object channels, uint16_t* c) except -1:
    """Checked channel values into c[0..15]; raises the shared SbusError."""
    cdef PyObject** items
    cdef Py_ssize_t n, i
    cdef long v
    cdef int overflow
    cdef PyObject* item
    if PyList_CheckExact(channels):
        n = PyList_GET_SIZE(channels)
    elif PyTuple_CheckExact(channels):
        n = PyTuple_GET_SIZE(channels)
    else:
        return _read_slow(channels, c)
    if n != NCH:
        raise channel_error(channels)
    items = PySequence_Fast_ITEMS(channels)
    for i in range(NCH):
        item = items[i]
        if not PyLong_CheckExact(item):
            return _read_slow(channels, c)
        v = PyLong_AsLongAndOverflow(item, &overflow)
        if v < 0 or v > VMAX:  # overflow returns -1
            raise channel_error(channels)
        c[i] = <uint16_t>v
    return 0


cdef int _read_slow(object channels, uint16_t* c) except -1:
    """Any iterable of integer-likes (numpy ints, bool, ...)."""
    cdef long v
    cdef Py_ssize_t i
    try:
        values = tuple(channels)
    except TypeError:
        raise channel_error(channels) from None
    if len(values) != NCH:
        raise channel_error(values)
    for i in range(NCH):
        try:
            v = values[i].__index__()
        except (AttributeError, TypeError, OverflowError):
            raise channel_error(values) from None
        if v < 0 or v > VMAX:
            raise channel_error(values)
        c[i] = <uint16_t>v
    return 0


def encode(channels, *, bint ch17=False, bint ch18=False, bint frame_lost=False,
           bint failsafe=False):
    """A 25-byte frame from 16 ints in 0..2047; SbusError names a bad channel."""
    cdef uint16_t c[NCH]
    _read_channels(channels, c)
    cdef bytes frame = PyBytes_FromStringAndSize(NULL, LEN)
    cdef uint8_t* p = <uint8_t*>PyBytes_AS_STRING(frame)
    p[0] = START
    _pack_half(c, p + 1)
    _pack_half(c + 8, p + 12)
    p[23] = ch17 | ch18 << 1 | frame_lost << 2 | failsafe << 3
    p[24] = 0
    return frame


def decode(frame):
    """The `Frame` in 25 bytes; SbusError for a wrong length, start or end byte."""
    cdef const uint8_t* p
    if PyBytes_CheckExact(frame) and PyBytes_GET_SIZE(frame) == LEN:
        p = <const uint8_t*>PyBytes_AS_STRING(frame)
    elif PyByteArray_CheckExact(frame) and PyByteArray_GET_SIZE(frame) == LEN:
        p = <const uint8_t*>PyByteArray_AS_STRING(frame)
    else:
        try:
            data = bytes(memoryview(frame))
        except TypeError:
            raise frame_error(frame) from None
        if len(data) != LEN:
            raise frame_error(frame)
        return decode(data)
    if p[0] != START or p[24] & END_MASK:
        raise frame_error(frame)
    cdef uint16_t c[NCH]
    _unpack_half(p + 1, c)
    _unpack_half(p + 12, c + 8)
    cdef tuple channels = PyTuple_New(NCH)
    cdef object value
    cdef Py_ssize_t i
    for i in range(NCH):
        value = <object>PyTuple_GET_ITEM(_INTS, c[i])
        Py_INCREF(value)
        PyTuple_SET_ITEM(channels, i, value)
    cdef uint8_t f = p[23]
    return _tuple_new(_Frame, (channels, (f & 1) != 0, (f & 2) != 0, (f & 4) != 0, (f & 8) != 0))


def encode_batch(array, flags=None):
    """Frames for an (N, 16) array of channel values: an (N, 25) uint8 array.

    `flags` is None, one flags byte for all frames, or one per frame.
    """
    import numpy as np   # here, not at import: `fly` never loads numpy

    arr, flag_bytes = batch_arrays(array, flags, check=False)
    cdef Py_ssize_t n = arr.shape[0], i
    out = np.empty((n, LEN), dtype=np.uint8)
    if n == 0:
        return out
    cdef const uint16_t[:, ::1] ch = arr
    cdef uint8_t[:, ::1] o = out
    cdef const uint8_t[::1] fl
    cdef bint have_flags = flag_bytes is not None
    if have_flags:
        fl = flag_bytes
    cdef uint16_t over = 0
    cdef int k
    with nogil:
        for i in range(n):
            for k in range(NCH):
                over |= ch[i, k]
            o[i, 0] = START
            _pack_half(&ch[i, 0], &o[i, 1])
            _pack_half(&ch[i, 8], &o[i, 12])
            o[i, 23] = (fl[i] & 0x0F) if have_flags else 0
            o[i, 24] = 0
    if over > VMAX:
        raise batch_range_error(arr)
    return out
