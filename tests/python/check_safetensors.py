#!/usr/bin/python3
"""Reads a .safetensors file written by tests/tools/write_state.cpp without sumi (numpy only; the standard
library's array module when numpy is absent) and checks every name, dtype, shape, value, the metadata and
the content checksum.

    check_safetensors.py FILE [--dtype F32|F64]

Exits non-zero with a message on the first difference.
"""
import json
import struct
import sys
import zlib

try:
    import numpy as np
except ImportError:  # the checks below need only flat lists of numbers
    np = None

DTYPES = {"F32": ("<f4", "f", 4), "F64": ("<f8", "d", 8), "I64": ("<i8", "q", 8)}


def fail(message):
    sys.exit("check_safetensors: " + message)


def read(path):
    with open(path, "rb") as f:
        data = f.read()
    if len(data) < 8:
        fail(f"{path}: shorter than 8 bytes")
    (n,) = struct.unpack("<Q", data[:8])
    if n % 8 != 0:
        fail(f"{path}: header length {n} is not a multiple of 8")
    header = json.loads(data[8:8 + n].decode("utf-8"))
    body = data[8 + n:]
    metadata = header.pop("__metadata__", {})
    # sumi's content checksum: CRC-32 of the header without it (keys sorted, no spaces), then of the data.
    recorded = metadata.pop("sumi.crc32", None)
    content = dict(header, **({"__metadata__": metadata} if metadata else {}))
    canonical = json.dumps(content, sort_keys=True, separators=(",", ":"), ensure_ascii=False).encode("utf-8")
    actual = format(zlib.crc32(canonical + body) & 0xFFFFFFFF, "08x")
    if recorded != actual:
        fail(f"{path}: metadata sumi.crc32 is {recorded!r}, the content's CRC-32 is {actual}")
    tensors = {}
    end = 0
    for name, info in sorted(header.items(), key=lambda kv: kv[1]["data_offsets"][0]):
        dtype, shape, (begin, stop) = info["dtype"], info["shape"], info["data_offsets"]
        if dtype not in DTYPES:
            fail(f"{name}: unknown dtype {dtype}")
        np_type, array_type, size = DTYPES[dtype]
        count = 1
        for d in shape:
            count *= d
        if begin != end:
            fail(f"{name}: data starts at {begin}, expected {end} (gap or overlap)")
        if stop - begin != count * size:
            fail(f"{name}: {stop - begin} bytes for shape {shape} and dtype {dtype}")
        if (8 + n + begin) % size != 0:
            fail(f"{name}: not aligned to its {size}-byte elements")
        raw = body[begin:stop]
        if np is not None:
            values = np.frombuffer(raw, dtype=np_type).reshape(shape).ravel().tolist()
        else:
            import array
            values = array.array(array_type)
            values.frombytes(raw)
            if sys.byteorder != "little":
                values.byteswap()
            values = list(values)
        tensors[name] = (dtype, shape, values)
        end = stop
    if end != len(body):
        fail(f"{path}: {len(body) - end} bytes after the last tensor")
    return metadata, tensors


def main():
    args = sys.argv[1:]
    if len(args) not in (1, 3) or (len(args) == 3 and args[1] != "--dtype"):
        fail("usage: check_safetensors.py FILE [--dtype F32|F64]")
    path, float_dtype = args[0], (args[2] if len(args) == 3 else "F32")
    metadata, tensors = read(path)

    expected = {
        "0.weight": (float_dtype, [2, 3], [-1.0, -0.5, 0.0, 0.5, 1.0, 1.5]),
        "0.bias": (float_dtype, [2], [0.25, -0.75]),
        "1.weight": (float_dtype, [2], [1.5, 2.0]),
        "1.bias": (float_dtype, [2], [0.0, -1.0]),
        "1.running_mean": (float_dtype, [2], [0.1, 0.2]),
        "1.running_var": (float_dtype, [2], [1.1, 1.2]),
        "1.num_batches_tracked": ("I64", [], [7]),
        "optimizer.0.step": ("I64", [], [3]),
        "optimizer.0.exp_avg": (float_dtype, [2, 3], [0.0, 0.125, 0.25, 0.375, 0.5, 0.625]),
    }
    if sorted(tensors) != sorted(expected):
        fail(f"names {sorted(tensors)} != {sorted(expected)}")
    for name, (dtype, shape, values) in expected.items():
        got_dtype, got_shape, got_values = tensors[name]
        if got_dtype != dtype:
            fail(f"{name}: dtype {got_dtype}, expected {dtype}")
        if got_shape != shape:
            fail(f"{name}: shape {got_shape}, expected {shape}")
        # 0.1 etc. are rounded to the file's precision once: compare with that rounding.
        if dtype == "F32":
            values = [struct.unpack("<f", struct.pack("<f", v))[0] for v in values]
        if got_values != values:
            fail(f"{name}: values {got_values}, expected {values}")
    want_meta = {"epoch": "5", "note": "known state", "format": "pt"}
    for key, value in want_meta.items():
        if metadata.get(key) != value:
            fail(f"metadata {key!r} = {metadata.get(key)!r}, expected {value!r}")
    extras = json.loads(metadata.get("sumi.extra_tensors", "null"))
    if sorted(extras or []) != ["optimizer.0.exp_avg", "optimizer.0.step"]:
        fail(f"metadata sumi.extra_tensors = {extras!r}")
    print(f"check_safetensors: {path}: {len(tensors)} tensors OK ({float_dtype})")


if __name__ == "__main__":
    main()
