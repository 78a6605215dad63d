# The serial protocol between a sensor board and its gateway: one file for both ends.
#
# This module runs unchanged under MicroPython (on the board) and CPython (the agent imports it as
# firmware.streetfw.wire), so both ends share one implementation. It therefore keeps to the common
# subset of the two: no f-strings, no typing, positional int.from_bytes, struct, binascii.
#
# A frame on the wire is  COBS( type u8 | seq u16 LE | body | crc32 u32 LE ) 0x00
# where body is msgpack and the CRC-32 (IEEE, as zlib) covers type, seq and body. COBS leaves no 0x00
# inside a frame, so a receiver that lost its place (noise, a board reset mid-frame) resumes at the
# next 0x00. Framing costs 7 bytes of header and CRC, 1 COBS byte per 254 and the delimiter: 9 bytes
# for any frame up to 254 bytes.
import struct

try:
    from binascii import crc32 as _crc32
except ImportError:  # ports built without binascii.crc32
    _crc32 = None  # type: ignore[assignment]

PROTOCOL = 1
MAX_BODY = 1024  # msgpack body bytes; a file chunk of 768 bytes fits with room to spare
MAX_FRAME = MAX_BODY + 7  # decoded frame: header, body, CRC
MAX_ENCODED = MAX_FRAME + MAX_FRAME // 254 + 2  # COBS overhead and the delimiter
OVERHEAD = 7

# Frame types. Board -> gateway: HELLO, READING, ALARM, RESULT, PONG, LOG, ACK (of TIME and file data).
# Gateway -> board: HELLO (asks the board to introduce itself), ACK (of alarms), CMD, PING, TIME.
HELLO = 1
READING = 2
ALARM = 3
ACK = 4
CMD = 5
RESULT = 6
PING = 7
PONG = 8
TIME = 9
LOG = 10
FILE_OPEN = 11
FILE_DATA = 12
FILE_CLOSE = 13
NAMES = {
    HELLO: "HELLO",
    READING: "READING",
    ALARM: "ALARM",
    ACK: "ACK",
    CMD: "CMD",
    RESULT: "RESULT",
    PING: "PING",
    PONG: "PONG",
    TIME: "TIME",
    LOG: "LOG",
    FILE_OPEN: "FILE_OPEN",
    FILE_DATA: "FILE_DATA",
    FILE_CLOSE: "FILE_CLOSE",
}


class WireError(ValueError):
    """Bytes that are not a valid frame or msgpack body; the message says what is wrong."""


# -- CRC-32 ---------------------------------------------------------------------------------------------

_TABLE = None


def _crc_table():
    table = []
    for n in range(256):
        c = n
        for _ in range(8):
            c = (c >> 1) ^ 0xEDB88320 if c & 1 else c >> 1
        table.append(c)
    return table


def crc32(data, crc=0):
    """CRC-32 as zlib computes it (binascii.crc32 where the port has it)."""
    if _crc32 is not None:
        return _crc32(data, crc) & 0xFFFFFFFF
    global _TABLE
    if _TABLE is None:
        _TABLE = _crc_table()
    table = _TABLE
    c = crc ^ 0xFFFFFFFF
    for b in data:
        c = table[(c ^ b) & 0xFF] ^ (c >> 8)
    return c ^ 0xFFFFFFFF


# -- COBS -----------------------------------------------------------------------------------------------


def cobs_encode(data):
    """Consistent Overhead Byte Stuffing: the result has no 0x00; the caller appends the delimiter."""
    out = bytearray(len(data) + len(data) // 254 + 2)
    code_at = 0
    code = 1
    j = 1
    for b in data:
        if b == 0:
            out[code_at] = code
            code_at = j
            j += 1
            code = 1
        else:
            out[j] = b
            j += 1
            code += 1
            if code == 0xFF:
                out[code_at] = code
                code_at = j
                j += 1
                code = 1
    out[code_at] = code
    return bytes(out[:j])


def cobs_decode(data):
    """Inverse of cobs_encode, for one frame without its delimiter; WireError if malformed."""
    n = len(data)
    out = bytearray(n)
    i = 0
    j = 0
    while i < n:
        code = data[i]
        if code == 0:
            raise WireError("COBS: zero byte inside a frame")
        i += 1
        end = i + code - 1
        if end > n:
            raise WireError("COBS: block runs past the end of the frame")
        while i < end:
            b = data[i]
            if b == 0:
                raise WireError("COBS: zero byte inside a frame")
            out[j] = b
            j += 1
            i += 1
        if code != 0xFF and i < n:
            out[j] = 0
            j += 1
    return bytes(out[:j])


# -- msgpack (the subset we use: nil, bool, int, float, str, bin, array, map) ---------------------------
#
# Byte-compatible with msgpack-python's packb(obj, use_bin_type=True) for these types, with one rule
# added: map keys are written in sorted order, because MicroPython's dict does not keep insertion
# order, and both ends must produce the same bytes for the same message.


def packb(obj):
    buf = bytearray()
    _pack(obj, buf, 0)
    return bytes(buf)


def _pack(obj, buf, depth):
    if depth > 16:
        raise WireError("msgpack: nested too deeply")
    if obj is None:
        buf.append(0xC0)
    elif obj is True:
        buf.append(0xC3)
    elif obj is False:
        buf.append(0xC2)
    elif isinstance(obj, int):
        _pack_int(obj, buf)
    elif isinstance(obj, float):
        buf.append(0xCB)
        buf.extend(struct.pack(">d", obj))
    elif isinstance(obj, str):
        data = obj.encode("utf-8")
        if len(data) < 32:
            buf.append(0xA0 | len(data))
        else:
            _pack_size(len(data), buf, 0xD9)
        buf.extend(data)
    elif isinstance(obj, (bytes, bytearray, memoryview)):
        _pack_size(len(obj), buf, 0xC4)
        buf.extend(obj)
    elif isinstance(obj, (list, tuple)):
        _pack_len(len(obj), buf, 0x90, 0xDC)
        for item in obj:
            _pack(item, buf, depth + 1)
    elif isinstance(obj, dict):
        _pack_map(obj, buf, depth)
    else:
        raise WireError("msgpack: cannot encode " + type(obj).__name__)


def _pack_map(obj, buf, depth):
    _pack_len(len(obj), buf, 0x80, 0xDE)
    try:
        keys = sorted(obj)
    except TypeError:
        raise WireError("msgpack: map keys must all be str or all be int") from None
    for key in keys:
        _pack(key, buf, depth + 1)
        _pack(obj[key], buf, depth + 1)


def _pack_size(n, buf, first):
    # str 8/16/32 (0xD9..0xDB) and bin 8/16/32 (0xC4..0xC6): three consecutive type bytes
    if n < 0x100:
        buf.append(first)
        buf.append(n)
    elif n < 0x10000:
        buf.append(first + 1)
        buf.extend(struct.pack(">H", n))
    else:
        buf.append(first + 2)
        buf.extend(struct.pack(">I", n))


def _pack_len(n, buf, fix, wide):
    if n < 16:
        buf.append(fix | n)
    elif n < 0x10000:
        buf.append(wide)
        buf.extend(struct.pack(">H", n))
    else:
        buf.append(wide + 1)
        buf.extend(struct.pack(">I", n))


def _pack_int(v, buf):
    if 0 <= v < 0x80:
        buf.append(v)
    elif -32 <= v < 0:
        buf.append(v & 0xFF)
    elif v >= 0:
        if v < 0x100:
            buf.append(0xCC)
            buf.append(v)
        elif v < 0x10000:
            buf.append(0xCD)
            buf.extend(struct.pack(">H", v))
        elif v < 0x100000000:
            buf.append(0xCE)
            buf.extend(struct.pack(">I", v))
        elif v < 0x10000000000000000:
            buf.append(0xCF)
            buf.extend(struct.pack(">Q", v))
        else:
            raise WireError("msgpack: integer too large")
    elif v >= -0x80:
        buf.append(0xD0)
        buf.extend(struct.pack(">b", v))
    elif v >= -0x8000:
        buf.append(0xD1)
        buf.extend(struct.pack(">h", v))
    elif v >= -0x80000000:
        buf.append(0xD2)
        buf.extend(struct.pack(">i", v))
    elif v >= -0x8000000000000000:
        buf.append(0xD3)
        buf.extend(struct.pack(">q", v))
    else:
        raise WireError("msgpack: integer too small")


def unpackb(data):
    """Decode exactly one msgpack object filling ``data``; WireError on anything else."""
    obj, i = _unpack(data, 0, 0)
    if i != len(data):
        raise WireError("msgpack: trailing bytes after the body")
    return obj


def _need(data, i, n):
    if i + n > len(data):
        raise WireError("msgpack: body ends inside a value")


def _unpack(data, i, depth):
    if depth > 16:
        raise WireError("msgpack: nested too deeply")
    _need(data, i, 1)
    b = data[i]
    i += 1
    if b < 0x80:
        return b, i
    if b >= 0xE0:
        return b - 0x100, i
    if 0xA0 <= b <= 0xBF:
        return _str(data, i, b & 0x1F)
    if 0x90 <= b <= 0x9F:
        return _array(data, i, b & 0x0F, depth)
    if 0x80 <= b <= 0x8F:
        return _map(data, i, b & 0x0F, depth)
    if b == 0xC0:
        return None, i
    if b == 0xC2:
        return False, i
    if b == 0xC3:
        return True, i
    if b in _FIXED:
        fmt, size = _FIXED[b]
        _need(data, i, size)
        return struct.unpack(fmt, data[i : i + size])[0], i + size
    if b in _LENGTHS:
        kind, fmt, size = _LENGTHS[b]
        _need(data, i, size)
        n = struct.unpack(fmt, data[i : i + size])[0]
        i += size
        if kind == 0:
            return _str(data, i, n)
        if kind == 1:
            _need(data, i, n)
            return bytes(data[i : i + n]), i + n
        if kind == 2:
            return _array(data, i, n, depth)
        return _map(data, i, n, depth)
    raise WireError("msgpack: unsupported type byte 0x%02x" % b)


_FIXED = {
    0xCA: (">f", 4),
    0xCB: (">d", 8),
    0xCC: (">B", 1),
    0xCD: (">H", 2),
    0xCE: (">I", 4),
    0xCF: (">Q", 8),
    0xD0: (">b", 1),
    0xD1: (">h", 2),
    0xD2: (">i", 4),
    0xD3: (">q", 8),
}
# kind 0 str, 1 bin, 2 array, 3 map
_LENGTHS = {
    0xD9: (0, ">B", 1),
    0xDA: (0, ">H", 2),
    0xDB: (0, ">I", 4),
    0xC4: (1, ">B", 1),
    0xC5: (1, ">H", 2),
    0xC6: (1, ">I", 4),
    0xDC: (2, ">H", 2),
    0xDD: (2, ">I", 4),
    0xDE: (3, ">H", 2),
    0xDF: (3, ">I", 4),
}


def _str(data, i, n):
    _need(data, i, n)
    try:
        return bytes(data[i : i + n]).decode("utf-8"), i + n
    except UnicodeError:
        raise WireError("msgpack: string is not UTF-8") from None


def _array(data, i, n, depth):
    if n > len(data) - i:  # each item takes at least one byte: a lie about n fails before allocating
        raise WireError("msgpack: array longer than the body")
    out = []
    for _ in range(n):
        item, i = _unpack(data, i, depth + 1)
        out.append(item)
    return out, i


def _map(data, i, n, depth):
    if 2 * n > len(data) - i:
        raise WireError("msgpack: map longer than the body")
    out = {}
    for _ in range(n):
        key, i = _unpack(data, i, depth + 1)
        if not isinstance(key, (str, int)):
            raise WireError("msgpack: map key must be str or int")
        value, i = _unpack(data, i, depth + 1)
        out[key] = value
    return out, i


# -- frames ---------------------------------------------------------------------------------------------


def encode_frame(ftype, seq, body):
    """One frame ready for the wire, delimiter included. ``body`` is any msgpack-able value."""
    payload = packb(body)
    if len(payload) > MAX_BODY:
        raise WireError("frame body of %d bytes exceeds %d" % (len(payload), MAX_BODY))
    raw = bytearray(3 + len(payload) + 4)
    raw[0] = ftype & 0xFF
    raw[1] = seq & 0xFF
    raw[2] = (seq >> 8) & 0xFF
    raw[3 : 3 + len(payload)] = payload
    crc = crc32(memoryview(raw)[: 3 + len(payload)])
    raw[-4:] = struct.pack("<I", crc)
    return cobs_encode(raw) + b"\x00"


def decode_frame(encoded):
    """(type, seq, body) from one frame's bytes without the delimiter; WireError if it is not valid."""
    if len(encoded) > MAX_ENCODED:
        raise WireError("frame of %d bytes exceeds the limit" % len(encoded))
    raw = cobs_decode(encoded)
    if len(raw) < OVERHEAD:
        raise WireError("frame of %d bytes is too short" % len(raw))
    (crc,) = struct.unpack("<I", raw[-4:])
    if crc32(memoryview(raw)[:-4]) != crc:
        raise WireError("CRC mismatch")
    ftype = raw[0]
    if ftype not in NAMES:
        raise WireError("unknown frame type %d" % ftype)
    seq = raw[1] | (raw[2] << 8)
    return ftype, seq, unpackb(memoryview(raw)[3:-4])


class Deframer:
    """Splits a byte stream into frames at 0x00 delimiters, with a bounded buffer.

    ``feed`` returns decoded frames; what fails to decode is counted, never returned. Bytes beyond
    the largest frame are dropped until the next delimiter, so noise cannot grow the buffer.
    """

    def __init__(self, limit=MAX_ENCODED):
        self.limit = limit
        self.buf = bytearray(limit)
        self.n = 0
        self.overflow = False
        self.good = 0
        self.corrupt = 0
        self.last_error = ""

    def feed(self, data):
        frames = []
        buf = self.buf
        for b in data:
            if b == 0:
                if self.overflow:
                    self.corrupt += 1
                    self.last_error = "frame longer than the limit"
                elif self.n:
                    try:
                        frames.append(decode_frame(memoryview(buf)[: self.n]))
                        self.good += 1
                    except WireError as exc:
                        self.corrupt += 1
                        self.last_error = str(exc)
                self.n = 0
                self.overflow = False
            elif self.overflow:
                continue
            elif self.n >= self.limit:
                self.overflow = True
            else:
                buf[self.n] = b
                self.n += 1
        return frames
