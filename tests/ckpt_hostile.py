"""Test helper: hand-assemble pickles opcode by opcode and wrap them in a torch.save-like zip.

A pickle is a little stack machine; these helpers emit its opcodes by name so a test can build
exactly the (hostile or valid) program it means, with no torch and no importable globals needed.
"""
import struct
import zipfile

PROTO2, STOP = b"\x80\x02", b"."
MARK, TUPLE, EMPTY_TUPLE, EMPTY_DICT, EMPTY_LIST = b"(", b"t", b")", b"}", b"]"
SETITEMS, APPENDS, REDUCE, BUILD, BINPERSID = b"u", b"e", b"R", b"b", b"Q"
NONE, NEWFALSE, NEWTRUE = b"N", b"\x89", b"\x88"
STACK_GLOBAL, MEMOIZE = b"\x93", b"\x94"


def G(module: str, name: str) -> bytes:
    """GLOBAL: push module.name (the unpickler's find_class decides what that is)."""
    return b"c" + module.encode() + b"\n" + name.encode() + b"\n"


def S(s: str) -> bytes:
    """BINUNICODE: push a str."""
    b = s.encode()
    return b"X" + struct.pack("<I", len(b)) + b


def I(n: int) -> bytes:  # noqa: E743
    """BININT (signed 32-bit) or LONG1 for anything bigger: push an int."""
    if -(1 << 31) <= n < 1 << 31:
        return b"J" + struct.pack("<i", n)
    raw = n.to_bytes((n.bit_length() + 8) // 8, "little", signed=True)
    return b"\x8a" + bytes([len(raw)]) + raw


def F(x: float) -> bytes:
    return b"G" + struct.pack(">d", x)


def tup(*items: bytes) -> bytes:
    return MARK + b"".join(items) + TUPLE


def call(fn: bytes, *args: bytes) -> bytes:
    """REDUCE: fn(*args)."""
    return fn + tup(*args) + REDUCE


def storage(key="0", typ="FloatStorage", numel=4) -> bytes:
    """The persistent id torch.save writes for a storage: ('storage', type, key, 'cpu', numel)."""
    return tup(S("storage"), G("torch", typ), S(key), S("cpu"), I(numel)) + BINPERSID


def tensor(key="0", offset=0, size=(4,), stride=(1,), numel=4, typ="FloatStorage") -> bytes:
    """_rebuild_tensor_v2(storage, offset, size, stride, False, OrderedDict())."""
    return call(G("torch._utils", "_rebuild_tensor_v2"), storage(key, typ, numel), I(offset),
                tup(*map(I, size)), tup(*map(I, stride)), NEWFALSE, call(G("collections", "OrderedDict")))


def dict_(**items: bytes) -> bytes:
    return EMPTY_DICT + MARK + b"".join(S(k) + v for k, v in items.items()) + SETITEMS


def program(body: bytes) -> bytes:
    return PROTO2 + body + STOP


def write_pth(path, data_pkl: bytes, storages: dict | None = None, *, top="archive",
              compress=False, byteorder: bytes | None = b"little", extra: dict | None = None):
    """A zip laid out as torch.save lays it out: top/data.pkl, top/data/KEY, top/version, ..."""
    mode = zipfile.ZIP_DEFLATED if compress else zipfile.ZIP_STORED
    with zipfile.ZipFile(path, "w", mode) as z:
        z.writestr(f"{top}/data.pkl", data_pkl)
        if byteorder is not None:
            z.writestr(f"{top}/byteorder", byteorder)
        for key, raw in (storages or {}).items():
            z.writestr(f"{top}/data/{key}", raw)
        z.writestr(f"{top}/version", b"3\n")
        for name, raw in (extra or {}).items():
            z.writestr(name, raw)
    return path
