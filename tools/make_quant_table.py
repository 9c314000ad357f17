#!/usr/bin/env python3
"""Write the measured tables of docs/15-export.md and docs/14-quant-dot.md, and the figure.

    python tools/make_quant_table.py                 # tables from the committed fixtures only
    python tools/make_quant_table.py --measure-l14   # first re-measure lesson 14 on the default model

docs/15: from tests/fixtures/export_presets.json (made by tools/make_export_fixtures.py with llama.cpp).
docs/14: from tests/fixtures/export_quant_dot_kl.json: the numpy model (lesson 8) run on llama.cpp's
two reference prompts with float32 activations and with lesson 14's Q8_1/Q8_0 activations, compared
with llama.cpp's logits for the F32 and the Q4_1 files (shared/reference/smollm2_logits.npz).
"""
from __future__ import annotations

import argparse
import json
import re
import sys
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

import export  # noqa: E402
from lessons.l01_gguf import GGML_BLOCK_INFO, GGMLType  # noqa: E402

PRESETS_FIXTURE = ROOT / "tests" / "fixtures" / "export_presets.json"
KL_FIXTURE = ROOT / "tests" / "fixtures" / "export_quant_dot_kl.json"
SHARED = ROOT.parent / "shared"


def replace_between(path: Path, marker: str, body: str) -> None:
    text = path.read_text()
    pattern = re.compile(rf"(<!-- {marker}:start -->\n).*?(<!-- {marker}:end -->)", re.S)
    if not pattern.search(text):
        raise SystemExit(f"{path}: no <!-- {marker}:start/end --> markers")
    path.write_text(pattern.sub(lambda m: m.group(1) + body + m.group(2), text))


# ---- docs/15: the preset table ----
def tensor_bytes(tensors, types: list[str]) -> tuple[int, int]:
    total, n_elements = 0, 0
    for (name, ne, _), t in zip(tensors, types):
        blck, size = GGML_BLOCK_INFO[GGMLType[t]]
        rows = int(np.prod(ne[1:], dtype=np.int64)) if len(ne) > 1 else 1
        total += rows * (ne[0] // blck) * size
        n_elements += rows * ne[0]
    return total, n_elements


def preset_table(data: dict) -> str:
    """One row per preset. Where our file is byte-identical to llama.cpp's, one set of numbers
    describes both; otherwise each cell shows llama.cpp's / ours."""
    f32 = data.get("f32") or {}
    lines = ["| preset | bits/weight | file MiB | byte-identical to llama.cpp's | PPL | PPL vs F32 | "
             "KL vs F32 | same top token as F32 |", "| --- | --- | --- | --- | --- | --- | --- | --- |"]
    if f32:
        lines.append(f"| (F32 model) | 32.00 | {f32['size'] / 2**20:.1f} | | {f32['ppl']:.3f} | | 0 | 100% |")

    def cell(e, key, fmt):
        vals = [format(e[who][key], fmt) if key in e.get(who, {}) else "n/a" for who in ("lcpp", "ours")]
        return vals[0] if e.get("identical_file") else " / ".join(vals)

    for p in export.PRESETS:
        e = data["presets"].get(p)
        if not e or "lcpp" not in e:
            continue
        lc = e["lcpp"]
        nbytes, n = tensor_bytes(data["tensors"], lc["types"].split())
        same = "yes" if e.get("identical_file") else f"no ({e.get('identical_tensors', '?')}/{len(data['tensors'])} tensors)"
        for who in ("lcpp", "ours"):
            if "ppl" in e.get(who, {}) and f32:
                e[who]["dppl"] = e[who]["ppl"] - f32["ppl"]
                e[who]["top"] = 100 * e[who]["same_top"]
        lines.append(f"| {p} | {8 * nbytes / n:.2f} | {lc['size'] / 2**20:.1f} | {same} | {cell(e, 'ppl', '.3f')} | "
                     f"{cell(e, 'dppl', '+.3f')} | {cell(e, 'kl_mean', '.2e')} | {cell(e, 'top', '.1f')}% |")
    scope = (f"the first {f32['chunks']} chunks of 512 tokens, {f32['scored']} scored positions" if f32 else "")
    return ("Bits per weight counts tensor data only (as llama-quantize reports it); file sizes include the "
            "49152-token vocabulary. PPL and KL: llama.cpp's evaluation of each file on "
            f"{scope} (KL: the mean over those positions, in nats).\n\n" + "\n".join(lines) + "\n")


def preset_figure(data: dict, out: Path) -> None:
    import matplotlib
    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    fig, ax = plt.subplots(figsize=(7, 4))
    for who, marker in (("lcpp", "o"), ("ours", "x")):
        pts = []
        for p, e in data["presets"].items():
            if who in e and "ppl" in e[who] and p not in ("F32",):
                nbytes, n = tensor_bytes(data["tensors"], e[who]["types"].split())
                pts.append((8 * nbytes / n, e[who]["ppl"], p))
        if pts:
            ax.scatter([x for x, _, _ in pts], [y for _, y, _ in pts], marker=marker,
                       label={"lcpp": "llama.cpp's file", "ours": "export.py's file"}[who])
            if who == "lcpp":  # one label per point: presets that made the same tensors share it
                labels: dict = {}
                for x, y, p in pts:
                    labels.setdefault((round(x, 2), round(y, 1)), []).append(p)
                for (x, y), names in labels.items():
                    ax.annotate(" = ".join(names), (x, y), textcoords="offset points", xytext=(4, 4), fontsize=7)
    if data.get("f32"):
        ax.axhline(data["f32"]["ppl"], color="gray", linestyle=":", label="F32")
    ax.set_xlabel("bits per weight (tensor data)")
    ax.set_ylabel("perplexity (llama.cpp), tinyshakespeare 8 x 512")
    ax.set_title("SmolLM2-135M: every preset, llama.cpp's quantizer and ours")
    ax.legend()
    fig.tight_layout()
    out.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(out, dpi=110)


# ---- docs/14: what 8-bit activations cost ----
def kl_rows(p_logits: np.ndarray, q_logits: np.ndarray) -> np.ndarray:
    lp = p_logits - np.logaddexp.reduce(p_logits.astype(np.float64), axis=-1, keepdims=True)
    lq = q_logits - np.logaddexp.reduce(q_logits.astype(np.float64), axis=-1, keepdims=True)
    return (np.exp(lp) * (lp - lq)).sum(-1)


def q8_0_c_reference(x: np.ndarray):
    """Lesson 14's quantize_q8_0 with ggml's C reference rounding instead of its x86 one:
    multiply by 1/d (not 127/max) and round halves away from zero (not to even)."""
    from lessons.l14_quant_dot import QK, fp16
    blocks = np.asarray(x, dtype=np.float32).reshape(*x.shape[:-1], -1, QK)
    d = np.abs(blocks).max(axis=-1) / np.float32(127)
    inv = np.divide(np.float32(1), d, out=np.zeros_like(d), where=d > 0)
    v = blocks * inv[..., None]
    return fp16(d), (np.sign(v) * np.floor(np.abs(v) + np.float32(0.5))).astype(np.int8)


def measure_l14() -> dict:
    import lessons.l14_quant_dot as L
    from lessons.default_model import default_model_path
    from lessons.l01_gguf import GGUFFile
    from lessons.l08_transformer import NumpyLlama
    ref = np.load(SHARED / "reference" / "smollm2_logits.npz")
    gen = json.loads((SHARED / "reference" / "smollm2_generation.json").read_text())
    prompts = [k for k in gen if not k.startswith("_")]

    def run(model):
        out = []
        for p in prompts:
            model.reset()
            out.append(model.forward(np.array(gen[p]["prompt_ids"], np.int32), 0))
        return out

    with GGUFFile(default_model_path()) as f:
        model = NumpyLlama(f, 64)
        quantized = L.with_quantized_activations(model, f)
        runs = {"numpy, f32 activations": run(model), "numpy, Q8 activations (lesson 14)": run(quantized)}
        x86 = L.quantize_q8_0
        L.quantize_q8_0 = q8_0_c_reference
        try:
            runs["numpy, Q8 activations, C-reference rounding"] = run(quantized)
        finally:
            L.quantize_q8_0 = x86
    runs["llama.cpp, Q4_1 file"] = [ref[f"q4_1_p{i}_logits"] for i in range(len(prompts))]
    out = {"prompts": prompts, "rows": []}
    for label, logits in runs.items():
        row = {"run": label}
        for vs in ("f32", "q4_1"):
            kls = np.concatenate([kl_rows(ref[f"{vs}_p{i}_logits"], y) for i, y in enumerate(logits)])
            last = [float(kl_rows(ref[f"{vs}_p{i}_logits"][-1:], y[-1:])[0]) for i, y in enumerate(logits)]
            row[f"kl_mean_vs_{vs}"], row[f"kl_last_vs_{vs}"] = float(kls.mean()), last
        out["rows"].append(row)
    a, b = runs["numpy, Q8 activations (lesson 14)"], runs["numpy, Q8 activations, C-reference rounding"]
    per_pos = np.concatenate([kl_rows(x, y) for x, y in zip(a, b)])
    out["rounding_only"] = {"kl_mean": float(per_pos.mean()), "kl_max": float(per_pos.max()),
                            "identical_positions": int((per_pos == 0).sum()), "positions": int(per_pos.size)}
    return out


def kl_table(data: dict) -> str:
    lines = ["| run | KL vs llama.cpp F32, mean | at the last position (2 prompts) | "
             "KL vs llama.cpp Q4_1, mean | at the last position |", "| --- | --- | --- | --- | --- |"]
    for r in data["rows"]:
        lines.append(f"| {r['run']} | {r['kl_mean_vs_f32']:.2e} | {', '.join(f'{v:.1e}' for v in r['kl_last_vs_f32'])} | "
                     f"{r['kl_mean_vs_q4_1']:.2e} | {', '.join(f'{v:.1e}' for v in r['kl_last_vs_q4_1'])} |")
    r = data["rounding_only"]
    return ("Measured by `tools/make_quant_table.py --measure-l14` on llama.cpp's two reference prompts "
            "(every prompt position), weights from the Q4_1 file.\n\n" + "\n".join(lines) + "\n\n"
            f"Between the two numpy Q8 runs, which differ only in how a value exactly or nearly halfway "
            f"between two 8-bit steps is rounded: KL {r['kl_mean']:.2e} on average, up to {r['kl_max']:.1e}; "
            f"{r['identical_positions']} of {r['positions']} positions bit-identical.\n")


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--measure-l14", action="store_true")
    args = ap.parse_args()
    if args.measure_l14:
        KL_FIXTURE.write_text(json.dumps(measure_l14(), indent=1) + "\n")
    if KL_FIXTURE.exists():
        replace_between(ROOT / "docs" / "14-quant-dot.md", "kl-table", kl_table(json.loads(KL_FIXTURE.read_text())))
    if PRESETS_FIXTURE.exists():
        data = json.loads(PRESETS_FIXTURE.read_text())
        replace_between(ROOT / "docs" / "15-export.md", "preset-table", preset_table(data))
        preset_figure(data, ROOT / "docs" / "img" / "export-presets.png")
    return 0


if __name__ == "__main__":
    sys.exit(main())
