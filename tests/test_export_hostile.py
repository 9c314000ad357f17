"""export.py on hostile and broken checkpoints: one `error: ` line, exit 1, no output file and no
temporary file left, and nothing from the file executed.

Each case starts from a checkpoint that converts (checked first, so the error is the damage's),
then breaks one thing: safetensors headers and shards, .pth pickles and storages, llama2.c headers.
"""
from __future__ import annotations

import io
import json
import shutil
import struct
import subprocess
import sys
from contextlib import redirect_stderr
from pathlib import Path

import numpy as np
import pytest

import ckpt_hostile as H
import ckpt_llama2c as W
import export

ROOT = Path(__file__).resolve().parents[1]
TORCH = ROOT / "tests" / "fixtures" / "torch"


def run_export(src, out, *extra) -> tuple[int, str]:
    err = io.StringIO()
    with redirect_stderr(err):
        rc = export.main([str(src), str(out), "F32", *map(str, extra)])
    return rc, err.getvalue()


# ---- the sources, and how each is broken ---------------------------------------------------------

def st_parts(path: Path) -> tuple[dict, bytes]:
    raw = path.read_bytes()
    n = struct.unpack("<Q", raw[:8])[0]
    return json.loads(raw[8:8 + n]), raw[8 + n:]


def st_write(path: Path, header: dict, data: bytes, n: int | None = None) -> None:
    h = json.dumps(header).encode()
    path.write_bytes(struct.pack("<Q", len(h) if n is None else n) + h + data)


def shard(folder: Path) -> list[str]:
    """Split model.safetensors into two shards plus model.safetensors.index.json, bytes unchanged."""
    header, data = st_parts(folder / "model.safetensors")
    names = [k for k in header if k != "__metadata__"]
    files = ["model-00001-of-00002.safetensors", "model-00002-of-00002.safetensors"]
    weight_map = {}
    for i, fname in enumerate(files):
        part, blobs, at = {}, [], 0
        for name in names[i::2]:
            b, e = header[name]["data_offsets"]
            part[name] = dict(header[name], data_offsets=[at, at + e - b])
            blobs.append(data[b:e])
            at += e - b
            weight_map[name] = fname
        st_write(folder / fname, part, b"".join(blobs))
    (folder / "model.safetensors").unlink()
    (folder / "model.safetensors.index.json").write_text(json.dumps({"weight_map": weight_map}))
    return files


def hf_case(tmp_path: Path, case: str) -> Path:
    hf = shutil.copytree(TORCH / "hf", tmp_path / "hf")
    st = hf / "model.safetensors"
    if case == "valid":
        return hf
    if case == "header_2_62":
        header, data = st_parts(st)
        st_write(st, header, data, n=1 << 62)
    elif case == "overlapping_offsets":
        header, data = st_parts(st)
        a, b = [k for k in header if k != "__metadata__"][:2]
        size = header[b]["data_offsets"][1] - header[b]["data_offsets"][0]
        start = header[a]["data_offsets"][0]
        header[b]["data_offsets"] = [start, start + size]
        st_write(st, header, data)
    elif case == "offsets_past_file":
        st.write_bytes(st.read_bytes()[:-100])
    elif case == "truncated_shard":
        second = hf / shard(hf)[1]
        second.write_bytes(second.read_bytes()[: len(second.read_bytes()) // 2])
    elif case == "index_missing_file":
        (hf / shard(hf)[0]).unlink()
    elif case == "index_escapes_folder":
        shard(hf)
        index = json.loads((hf / "model.safetensors.index.json").read_text())
        index["weight_map"][next(iter(index["weight_map"]))] = "../hf/../../secret.safetensors"
        (hf / "model.safetensors.index.json").write_text(json.dumps(index))
    elif case == "unknown_dtype":
        header, data = st_parts(st)
        header[next(k for k in header if k != "__metadata__")]["dtype"] = "F128"
        st_write(st, header, data)
    return hf


class Evil:
    def __init__(self, marker):
        self.marker = marker

    def __reduce__(self):
        import os
        return os.system, (f"touch {self.marker}",)


def meta_case(tmp_path: Path, case: str, marker: Path) -> Path:
    meta = shutil.copytree(TORCH / "meta", tmp_path / "meta")
    pth = meta / "consolidated.00.pth"
    store = {"0": np.arange(16, dtype="<f4").tobytes()}
    import pickle
    pickles = {
        "os_system": pickle.dumps({"tok_embeddings.weight": Evil(marker)}, protocol=2),
        "nested_reduce": H.program(H.dict_(w=H.call(H.call(H.G("collections", "OrderedDict")), H.S("x")))),
        "getattr_chain": H.program(H.dict_(w=H.call(H.call(H.G("builtins", "getattr"), H.G("os", "system")),
                                                     H.S(f"touch {marker}")))),
        "stack_global": H.program(H.dict_(w=H.call(H.S("os") + H.S("system") + H.STACK_GLOBAL,
                                                    H.S(f"touch {marker}")))),
        "build_trick": H.program(H.dict_(w=H.tensor(size=(4,), numel=16) + H.dict_(shape=H.I(1)) + H.BUILD)),
        "storage_key_missing": H.program(H.dict_(w=H.tensor(key="9", numel=16))),
        "shape_past_storage": H.program(H.dict_(w=H.tensor(size=(5, 4), stride=(4, 1), numel=16))),
        "stride_past_storage": H.program(H.dict_(w=H.tensor(size=(4, 4), stride=(5, 1), numel=16))),
    }
    if case != "valid":
        H.write_pth(pth, pickles[case], store, top="consolidated.00")
    return meta


def llama2c_case(tmp_path: Path, case: str) -> Path:
    sizes = dict(dim=16, hidden=40, n_layers=2, n_heads=4, n_kv=2, vocab=32, seq_len=24)
    w = W.random_weights(16, 40, 2, 4, 2, 32, shared=True)
    path = tmp_path / "model.bin"
    W.write_llama2c(path, w, **sizes, version=0)
    pieces = [b"<unk>", b"<s>", b"</s>"] + [bytes([97 + i % 26]) * (1 + i // 26) for i in range(29)]
    W.write_tokenizer_bin(tmp_path / "tokenizer.bin", pieces, [0.0] * 3 + [-float(i) for i in range(29)])
    raw = bytearray(path.read_bytes())
    if case == "absurd_layers":
        struct.pack_into("<i", raw, 8, 10 ** 6)
    elif case == "absurd_dim":
        struct.pack_into("<ii", raw, 0, (1 << 31) - 1, (1 << 31) - 1)
    elif case == "truncated":
        raw = raw[: len(raw) // 2]
    elif case == "not_rope_tables":
        n = len(raw) - 2 * 4 * 24 * 2
        raw[n:] = bytes(len(raw) - n)
    path.write_bytes(bytes(raw))
    return path


HF = ["header_2_62", "overlapping_offsets", "offsets_past_file", "truncated_shard", "index_missing_file",
      "index_escapes_folder", "unknown_dtype"]
META = ["os_system", "nested_reduce", "getattr_chain", "stack_global", "build_trick", "storage_key_missing",
        "shape_past_storage", "stride_past_storage"]
L2C = ["absurd_layers", "absurd_dim", "truncated", "not_rope_tables"]


SAYS = {"header_2_62": "header length 4611686018427387904", "overlapping_offsets": "overlap",
        "offsets_past_file": "runs past the end", "truncated_shard": "runs past the end",
        "index_missing_file": "is missing", "index_escapes_folder": "bad shard", "unknown_dtype": "unknown dtype",
        "os_system": "posix.system", "nested_reduce": "REDUCE on OrderedDict", "getattr_chain": "builtins.getattr",
        "stack_global": "os.system", "build_trick": "BUILD", "storage_key_missing": "data/9 is missing",
        "shape_past_storage": "past its storage", "stride_past_storage": "past its storage",
        "absurd_layers": "layers 1000000", "absurd_dim": "dim 2147483647", "truncated": "the file holds",
        "not_rope_tables": "not RoPE tables"}


def source(tmp_path, kind, case, marker):
    return {"hf": lambda: hf_case(tmp_path, case), "meta": lambda: meta_case(tmp_path, case, marker),
            "llama2c": lambda: llama2c_case(tmp_path, case)}[kind]()


@pytest.mark.parametrize("kind", ["hf", "meta", "llama2c"])
def test_the_undamaged_sources_convert(tmp_path, kind):
    out = tmp_path / "out" / "o.gguf"
    out.parent.mkdir()
    rc, err = run_export(source(tmp_path, kind, "valid", tmp_path / "PWNED"), out)
    assert rc == 0, err
    assert out.is_file()


@pytest.mark.parametrize("kind, case", [("hf", c) for c in HF] + [("meta", c) for c in META]
                         + [("llama2c", c) for c in L2C])
def test_hostile_source_is_one_error_line_and_no_output(tmp_path, kind, case):
    marker = tmp_path / "PWNED"
    src = source(tmp_path, kind, case, marker)
    out_dir = tmp_path / "out"
    out_dir.mkdir()
    rc, err = run_export(src, out_dir / "o.gguf")
    assert rc == 1, err
    assert err.startswith("error: ") and err.count("\n") == 1, err
    assert "internal error" not in err and "Traceback" not in err and SAYS[case] in err
    assert list(out_dir.iterdir()) == []                      # no output, no temporary file
    assert not marker.exists()                                # nothing from the file ran


@pytest.mark.parametrize("kind, case", [("meta", "os_system"), ("hf", "header_2_62"), ("llama2c", "absurd_layers")])
def test_the_script_itself(tmp_path, kind, case):
    """The same through `python export.py`: stderr is exactly one line, exit status 1."""
    marker = tmp_path / "PWNED"
    src = source(tmp_path, kind, case, marker)
    out_dir = tmp_path / "out"
    out_dir.mkdir()
    proc = subprocess.run([sys.executable, str(ROOT / "export.py"), str(src), str(out_dir / "o.gguf"), "F32"],
                          capture_output=True, text=True, timeout=120, cwd=ROOT)
    assert proc.returncode == 1 and proc.stdout == ""
    assert proc.stderr.startswith("error: ") and proc.stderr.count("\n") == 1, proc.stderr
    assert list(out_dir.iterdir()) == [] and not marker.exists()


def test_a_fifo_as_source_does_not_block(tmp_path):
    """`export.py PIPE ...`: a named pipe would block open() forever; it is refused by its type."""
    import os
    os.mkfifo(tmp_path / "model.bin")
    out_dir = tmp_path / "out"
    out_dir.mkdir()
    rc, err = run_export(tmp_path / "model.bin", out_dir / "o.gguf")
    assert rc == 1 and err.startswith("error: ") and err.count("\n") == 1, err
    assert "not a regular file" in err and list(out_dir.iterdir()) == []
