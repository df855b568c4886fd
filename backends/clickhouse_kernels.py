"""Vectorised conversions of the ClickHouse encodings Arrow has no kernel for: no Python loop over rows.

ClickHouse's ArrowStream output carries (U)Int128/256 and IPv6 as fixed-size binary, IPv4 as ``uint32``, intervals
as a bare count and BFloat16 as two bytes. Each function here turns one such column into the type clients see
with numpy over the column's buffers. Text is built as a matrix of ASCII codes, one row per value and 0 where a
position holds no character; dropping the zeros row by row leaves the values end to end, and the row lengths
give the offsets.
"""

from __future__ import annotations

import functools

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc


def _storage(array: pa.Array) -> pa.Array:
    return array.storage if isinstance(array.type, pa.BaseExtensionType) else array


def _validity(array: pa.Array) -> pa.Buffer | None:
    """The array's validity bitmap starting at its first value (None: no nulls)."""
    if not array.null_count:
        return None
    if array.offset == 0:
        return array.buffers()[0]
    return array.is_valid().buffers()[1]


def fixed_bytes(array: pa.Array, width: int) -> np.ndarray:
    """The values of a fixed-size binary column as an ``(n, width)`` matrix of bytes (no copy)."""
    storage = _storage(array)
    data = np.frombuffer(storage.buffers()[1], dtype=np.uint8)
    start = storage.offset * width
    return data[start : start + len(storage) * width].reshape(len(storage), width)


def _values(array: pa.Array, dtype: type) -> np.ndarray:
    """The values buffer of a primitive column (nulls hold whatever the buffer holds)."""
    data = np.frombuffer(array.buffers()[1], dtype=dtype)
    return data[array.offset : array.offset + len(array)]


def text_from_matrix(chars: np.ndarray, validity: pa.Buffer | None, null_count: int) -> pa.Array:
    """A utf8 column from an ``(n, width)`` matrix of ASCII codes; 0 marks an empty position."""
    present = chars != 0
    offsets = np.zeros(len(chars) + 1, dtype=np.int32)
    np.cumsum(present.sum(axis=1, dtype=np.int32), out=offsets[1:])
    data = chars[present]
    return pa.Array.from_buffers(
        pa.utf8(), len(chars), [validity, pa.py_buffer(offsets), pa.py_buffer(data)], null_count
    )


@functools.cache
def _decimal_digits() -> np.ndarray:
    """0…255 as up to three left-aligned ASCII digits."""
    return np.frombuffer(b"".join(str(i).encode().ljust(3, b"\0") for i in range(256)), np.uint8).reshape(256, 3)


@functools.cache
def _folding_masks() -> np.ndarray:
    """For each zero run (``start * 9 + length``), 1 where a byte of the 64 stays, 0 where ``::`` folds it."""
    masks = np.ones((72, 64), dtype=np.uint8)
    for start in range(8):
        for length in range(2, 9 - start):
            end = start + length - 1
            for k in range(start, end + 1):
                masks[start * 9 + length, 8 * k : 8 * k + 4] = 0
            for k in range(start, end):  # the colons inside the run; one on each side stays
                if not (start == 0 and k == 0) and not (end == 7 and k == 6):
                    masks[start * 9 + length, 8 * k + 4] = 0
    return masks


@functools.cache
def _hex_groups() -> np.ndarray:
    """0…0xffff as eight bytes each: the hex digits (lowercase, no leading zeros) in four, a colon, three zeros."""
    text = b"".join((b"%x" % i).ljust(4, b"\0") + b":\0\0\0" for i in range(65536))
    return np.frombuffer(text, np.uint64)


# -- integers wider than 64 bits -----------------------------------------------------------------------------


def wide_int_to_decimal(array: pa.Array, signed: bool) -> pa.Array:
    """Little-endian (U)Int128 as exact ``decimal256(39, 0)``: the 16 bytes sign-extended to Arrow's 32."""
    raw = fixed_bytes(array, 16)
    out = np.zeros((len(raw), 32), dtype=np.uint8)
    out[:, :16] = raw
    if signed:
        out[raw[:, 15] >= 0x80, 16:] = 0xFF
    return pa.Array.from_buffers(
        pa.decimal256(39, 0), len(raw), [_validity(array), pa.py_buffer(out)], array.null_count
    )


def wide_int_to_text(array: pa.Array, signed: bool) -> pa.Array:
    """Little-endian (U)Int256 as exact decimal text (77 or 78 digits exceed every Arrow decimal's precision).

    The 32 bytes are exactly ``decimal256``'s storage, and Arrow formats a decimal's whole 256-bit integer
    whatever its declared precision, so the column is read as ``decimal256(76, 0)`` and cast to text in C++.
    Only unsigned values of 2^255 and more (which that storage reads as negative) are formatted one by one.
    """
    storage = _storage(array)
    as_decimal = pa.Array.from_buffers(
        pa.decimal256(76, 0), len(storage), storage.buffers(), storage.null_count, storage.offset
    )
    text = pc.cast(as_decimal, pa.utf8())
    if not signed:
        raw = fixed_bytes(array, 32)
        high = raw[:, 31] >= 0x80
        if array.null_count:
            high &= array.is_valid().to_numpy(zero_copy_only=False)
        if high.any():
            values = [str(int.from_bytes(raw[i].tobytes(), "little")) for i in np.flatnonzero(high)]
            text = pc.replace_with_mask(text, pa.array(high), pa.array(values, pa.utf8()))
    return text


# -- addresses -----------------------------------------------------------------------------------------------


def _ipv4_matrix(octets: np.ndarray) -> np.ndarray:
    """``(n, 4)`` octets as ``(n, 15)`` dotted-quad characters."""
    digits = _decimal_digits()
    chars = np.zeros((len(octets), 15), dtype=np.uint8)
    for k in range(4):
        chars[:, 4 * k : 4 * k + 3] = digits[octets[:, k]]
        if k < 3:
            chars[:, 4 * k + 3] = ord(".")
    return chars


@functools.cache
def _octet_texts() -> pa.Array:
    return pa.array([str(i) for i in range(256)])


def ipv4_text(array: pa.Array) -> pa.Array:
    """IPv4 (``uint32``) as dotted-quad text: each octet's text taken from a table, joined by Arrow."""
    octets = _values(array, np.uint32).astype(">u4").view(np.uint8).reshape(-1, 4)
    nulls = array.is_null().to_numpy(zero_copy_only=False) if array.null_count else None
    texts = _octet_texts()
    parts = [texts.take(pa.array(octets[:, k], mask=nulls if k == 0 else None)) for k in range(4)]
    return pc.binary_join_element_wise(*parts, ".")


def ipv6_text(array: pa.Array) -> pa.Array:
    """IPv6 (16 bytes) as ClickHouse's own text: RFC 5952 groups, and the BSD ``inet_ntop`` rule for IPv4.

    The first longest run of two or more zero groups becomes ``::``; an address whose run is the first six
    groups, or the first five followed by ``ffff``, ends in dotted IPv4 (``::1.2.3.4``, ``::ffff:1.2.3.4``).
    """
    raw = fixed_bytes(array, 16)
    n = len(raw)
    groups = np.ascontiguousarray(raw).view(">u2").astype(np.uint16)
    chars = _hex_groups()[groups].view(np.uint8)  # (n, 64): eight bytes per group, its hex, a colon, zeros
    chars[:, 60] = 0  # no colon after the last group
    zero = groups == 0
    run = np.zeros((n, 8), dtype=np.int8)
    run[:, 0] = zero[:, 0]
    for k in range(1, 8):
        run[:, k] = (run[:, k - 1] + 1) * zero[:, k]
    length = run.max(axis=1)
    start = run.argmax(axis=1) - length + 1
    folded = length >= 2
    chars *= _folding_masks()[start * 9 + length]
    embedded = folded & (start == 0) & ((length == 6) | ((length == 5) & (groups[:, 5] == 0xFFFF)))
    if embedded.any():
        rows = np.flatnonzero(embedded)
        prefix = np.where(length[rows] == 6, 2, 7)
        chars[rows] = 0
        chars[rows, 0] = chars[rows, 1] = ord(":")
        mapped = rows[prefix == 7]
        chars[mapped, 2:7] = np.frombuffer(b"ffff:", np.uint8)
        quad = _ipv4_matrix(raw[rows, 12:])
        for offset in (2, 7):
            chosen = prefix == offset
            chars[rows[chosen], offset : offset + 15] = quad[chosen]
    return text_from_matrix(chars, _validity(array), array.null_count)


# -- intervals and half floats -------------------------------------------------------------------------------

_MONTH_DAY_NANO = np.dtype([("months", "<i4"), ("days", "<i4"), ("nanos", "<i8")])


def interval_from_count(array: pa.Array, months: int, days: int, nanos: int) -> pa.Array:
    """A count of one interval unit as ``month_day_nano_interval`` (16 bytes per value, built in place)."""
    counts = _values(array, np.int64)
    out = np.zeros(len(counts), dtype=_MONTH_DAY_NANO)
    if months:
        out["months"] = counts * months
    if days:
        out["days"] = counts * days
    if nanos:
        out["nanos"] = counts * nanos
    return pa.Array.from_buffers(
        pa.month_day_nano_interval(), len(counts), [_validity(array), pa.py_buffer(out)], array.null_count
    )


def bfloat16_to_float32(array: pa.Array) -> pa.Array:
    """BFloat16 (two little-endian bytes per value, sent as binary) as float32: the same bits, widened."""
    offsets = _values_offsets(array)
    buffer = array.buffers()[2]
    data = np.frombuffer(buffer, dtype=np.uint8) if buffer is not None and buffer.size >= 2 else np.zeros(2, np.uint8)
    starts = offsets[:-1]
    present = (offsets[1:] - starts) == 2
    low = np.where(present, data[np.where(present, starts, 0)], 0).astype(np.uint32)
    high = np.where(present, data[np.where(present, starts + 1, 0)], 0).astype(np.uint32)
    bits = (high << 24) | (low << 16)
    return pa.Array.from_buffers(
        pa.float32(), len(bits), [_validity(array), pa.py_buffer(bits.view(np.float32))], array.null_count
    )


def _values_offsets(array: pa.Array) -> np.ndarray:
    offsets = np.frombuffer(array.buffers()[1], dtype=np.int32)
    return offsets[array.offset : array.offset + len(array) + 1]
