# cython: language_level=3, boundscheck=False, wraparound=False, cdivision=True
"""Packet framing, compiled twin of ``_framing_py.py`` (same function, same results)."""

from cpython.bytearray cimport PyByteArray_AS_STRING, PyByteArray_GET_SIZE
from cpython.bytes cimport PyBytes_FromStringAndSize
from libc.string cimport memchr

IMPLEMENTATION = "cython"

cdef unsigned char CRC_TABLE[256]


cdef void _init_table():
    cdef int b, k
    cdef unsigned char crc
    for b in range(256):
        crc = b
        for k in range(8):
            if crc & 0x80:
                crc = ((crc << 1) ^ 0x07) & 0xFF
            else:
                crc = (crc << 1) & 0xFF
        CRC_TABLE[b] = crc


_init_table()


cdef inline bint _valid(unsigned char t):
    return (0x20 <= t <= 0x24) or t == 0xA0 or t == 0xA2


cdef inline bint _no_data(unsigned char t):
    return t == 0x21 or t == 0x23 or t == 0x24


def scan(bytearray buf, dict sizes, dict defs, Py_ssize_t max_len, object packet):
    """Returns (packets, consumed, (sync, type, length, size, crc, object_bytes, unknown))."""
    cdef list out = []
    cdef const unsigned char* p = <const unsigned char*>PyByteArray_AS_STRING(buf)
    cdef Py_ssize_t n = PyByteArray_GET_SIZE(buf)
    cdef Py_ssize_t pos = 0, i, end, k, length, hlen
    cdef Py_ssize_t sync_e = 0, type_e = 0, len_e = 0, size_e = 0, crc_e = 0
    cdef Py_ssize_t obj_bytes = 0, unknown = 0
    cdef unsigned char t, crc
    cdef unsigned int oid, inst
    cdef const unsigned char* q
    cdef object size, defn, ts
    while True:
        q = <const unsigned char*>memchr(p + pos, 0x3C, n - pos) if pos < n else NULL
        if q == NULL:
            sync_e += n - pos
            pos = n
            break
        i = q - p
        sync_e += i - pos
        pos = i
        if n - i < 4:
            break
        t = p[i + 1]
        if not _valid(t):
            type_e += 1
            pos = i + 1
            continue
        length = p[i + 2] | (p[i + 3] << 8)
        hlen = 12 if t & 0x80 else 10
        if length < hlen or length > max_len or (_no_data(t) and length != hlen):
            len_e += 1
            pos = i + 1
            continue
        if n - i < 8:
            break
        oid = p[i + 4] | (p[i + 5] << 8) | (p[i + 6] << 16) | (<unsigned int>p[i + 7] << 24)
        if not _no_data(t):
            size = sizes.get(oid)
            if size is not None and <Py_ssize_t>size != length - hlen:
                size_e += 1
                pos = i + 1
                continue
        end = i + length
        if end >= n:
            break
        crc = 0
        for k in range(i, end):
            crc = CRC_TABLE[crc ^ p[k]]
        if crc != p[end]:
            crc_e += 1
            pos = i + 1
            continue
        defn = defs.get(oid)
        if defn is None:
            unknown += 1
        obj_bytes += length - hlen
        inst = p[i + 8] | (p[i + 9] << 8)
        ts = (p[i + 10] | (p[i + 11] << 8)) if hlen == 12 else None
        out.append(packet(t, oid, inst, ts,
                          PyBytes_FromStringAndSize(<const char*>(p + i + hlen), length - hlen),
                          defn))
        pos = end + 1
    return out, pos, (sync_e, type_e, len_e, size_e, crc_e, obj_bytes, unknown)
