"""Draw docs/img/checkpoint-layouts.png: where the bytes are in the three checkpoint formats.

Each bar is a real file from the test fixtures, drawn to scale from the offsets the lessons' own
readers find: a safetensors file (lesson 16), a torch.save .pth (lesson 17, written by tools/make_torch_fixtures.py), a llama2.c .bin
(lesson 18).

    .venv/bin/python tools/make_checkpoint_figures.py
"""
import json
import os
import struct
import sys
import zipfile

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402

ROOT = os.path.join(os.path.dirname(os.path.abspath(__file__)), "..")
sys.path.insert(0, ROOT)
from lessons.l18_llama2c import check_sizes, file_order, read_header  # noqa: E402

COLORS = {"header": "#d62728", "tensor": "#1f77b4", "tensor2": "#6baed6", "pickle": "#ff7f0e",
          "zip": "#7f7f7f", "table": "#2ca02c"}


def safetensors_spans(path):
    raw = open(path, "rb").read()
    n = struct.unpack("<Q", raw[:8])[0]
    header = json.loads(raw[8:8 + n])
    spans = [(0, 8 + n, "header", "length + JSON header")]
    entries = sorted((e["data_offsets"], k) for k, e in header.items() if k != "__metadata__")
    for i, ((b, e), name) in enumerate(entries):
        spans.append((8 + n + b, 8 + n + e, "tensor" if i % 2 else "tensor2", name))
    return spans, len(raw)


def pth_spans(path):
    size = os.path.getsize(path)
    spans = []
    with zipfile.ZipFile(path) as z:
        infos = sorted(z.infolist(), key=lambda i: i.header_offset)
    raw = open(path, "rb").read()
    for i, info in enumerate(infos):
        at = info.header_offset
        start = at + 30 + struct.unpack("<H", raw[at + 26:at + 28])[0] + struct.unpack("<H", raw[at + 28:at + 30])[0]
        spans.append((at, start, "zip", "local header"))
        kind = "pickle" if info.filename.endswith("data.pkl") else "tensor" if i % 2 else "tensor2"
        if "/data/" not in info.filename and kind != "pickle":
            kind = "zip"                                  # version, byteorder, ...: small records
        spans.append((start, start + info.file_size, kind, info.filename.split("/", 1)[1]))
    spans.append((max(e for _, e, _, _ in spans), size, "zip", "central directory"))
    return spans, size


def llama2c_spans(path):
    raw = open(path, "rb").read()
    config, pos, gs = read_header(raw, path)
    check_sizes(config, gs, len(raw) - pos, path)
    spans = [(0, pos, "header", "7 x int32")]
    for i, (name, shape) in enumerate(file_order(config)):
        n = 4
        for d in shape:
            n *= d
        kind = "table" if name.startswith("freq") else "tensor" if i % 2 else "tensor2"
        spans.append((pos, pos + n, kind, name))
        pos += n
    return spans, len(raw)


def main():
    rows = [("safetensors\n(tests/fixtures/torch/hf)", *safetensors_spans(
                os.path.join(ROOT, "tests/fixtures/torch/hf/model.safetensors"))),
            (".pth zip\n(tests/fixtures/torch/meta/consolidated.00.pth)",
             *pth_spans(os.path.join(ROOT, "tests/fixtures/torch/meta/consolidated.00.pth"))),
            ("llama2.c legacy .bin\n(tests/fixtures/fuzz/llama2c/v0.bin)",
             *llama2c_spans(os.path.join(ROOT, "tests/fixtures/fuzz/llama2c/v0.bin")))]
    fig, axes = plt.subplots(len(rows), 1, figsize=(11, 5.2))
    for ax, (title, spans, size) in zip(axes, rows):
        for b, e, kind, label in spans:
            ax.barh(0, max(e - b, size / 400), left=b, height=0.6, color=COLORS[kind], edgecolor="white", lw=0.3)
            if e - b > size / 9:
                ax.text((b + e) / 2, 0, label, ha="center", va="center", fontsize=7, color="white")
        ax.set_xlim(0, size)
        ax.set_yticks([])
        ax.set_title(f"{title}: {size} bytes", fontsize=9, loc="left")
        ax.tick_params(axis="x", labelsize=7)
    handles = [plt.Rectangle((0, 0), 1, 1, color=c) for c in COLORS.values()]
    fig.legend(handles, ["header", "tensor data", "tensor data (next)", "pickle (data.pkl)", "zip records",
                         "RoPE cos/sin tables"], loc="lower center", ncol=6, fontsize=8, frameon=False)
    axes[-1].set_xlabel("byte offset in the file", fontsize=8)
    fig.tight_layout(rect=(0, 0.06, 1, 1))
    out = os.path.join(ROOT, "docs", "img", "checkpoint-layouts.png")
    fig.savefig(out, dpi=110)
    print(f"wrote {out}", file=sys.stderr)


if __name__ == "__main__":
    main()
