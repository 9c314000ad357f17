"""export.py's presets against llama.cpp's, recorded on the default model by tools/make_export_fixtures.py.

The fixture holds, for SmolLM2-135M dequantized to F32: every tensor's name and shape, and for each
preset the type llama.cpp's quantizer gave every tensor, the file sizes and the perplexities of
llama.cpp's file and of ours (both evaluated by llama.cpp on the same text).
"""
from __future__ import annotations

import json
from pathlib import Path

import pytest

import export
from lessons.l01_gguf import GGML_BLOCK_INFO, GGMLType

FIXTURE = Path(__file__).resolve().parent / "fixtures" / "export_presets.json"
DATA = json.loads(FIXTURE.read_text())
PRESETS = sorted(DATA["presets"], key=list(export.PRESETS).index)


def test_fixture_covers_every_preset():
    assert set(DATA["presets"]) == set(export.PRESETS)
    assert all("lcpp" in DATA["presets"][p] for p in export.PRESETS)


@pytest.mark.parametrize("preset", PRESETS)
def test_per_tensor_types_match_llama_cpp(preset):
    """The recipe run on the recorded names and shapes picks what llama.cpp picked, tensor by tensor."""
    tensors = {name: (tuple(ne), GGMLType[t]) for name, ne, t in DATA["tensors"]}
    facts = export.ModelFacts.from_metadata(DATA["model"]["metadata"])
    order = export.llama_cpp_order(list(tensors))
    recipe = export.Recipe(preset, facts, order)
    ours = {name: recipe.choose(name, *tensors[name]) for name in order}
    theirs = dict(zip((name for name, *_ in DATA["tensors"]), DATA["presets"][preset]["lcpp"]["types"].split()))
    wrong = {n: (ours[n].name, theirs[n]) for n in tensors if ours[n].name != theirs[n]}
    assert not wrong, f"{len(wrong)} tensors differ (ours, llama.cpp): {dict(list(wrong.items())[:5])}"


@pytest.mark.parametrize("preset", PRESETS)
def test_our_file_is_no_larger_and_no_worse(preset):
    """Recorded by the tools script: size within 1% of llama.cpp's, perplexity no worse.
    When the two files are byte-identical, llama.cpp's evaluation of one is that of the other."""
    entry = DATA["presets"][preset]
    assert "ours" in entry, f"{preset}: no file of ours measured; rerun tools/make_export_fixtures.py"
    ours, theirs = entry["ours"], entry["lcpp"]
    assert ours["types"] == theirs["types"]
    assert ours["size"] <= theirs["size"] * 1.01
    if entry.get("identical_file"):
        assert ours["size"] == theirs["size"] and entry["identical_tensors"] == len(DATA["tensors"])
    else:
        assert "ppl" in ours and "ppl" in theirs, f"{preset}: the files differ and were not both evaluated"
    if "ppl" in ours and "ppl" in theirs:
        # the same evaluator (llama.cpp) on both files; 1e-4 relative allows for summation order only
        assert ours["ppl"] <= theirs["ppl"] * (1 + 1e-4), (ours["ppl"], theirs["ppl"])


def test_recorded_sizes_follow_from_the_recorded_types():
    """A cross-check of the fixture itself: the tensor bytes implied by the types are the file's bulk."""
    for preset in PRESETS:
        entry = DATA["presets"][preset]["lcpp"]
        data_bytes = 0
        for (name, ne, _), t in zip(DATA["tensors"], entry["types"].split()):
            blck, size = GGML_BLOCK_INFO[GGMLType[t]]
            rows = 1
            for d in ne[1:]:
                rows *= d
            data_bytes += rows * (ne[0] // blck) * size
        assert data_bytes < entry["size"] < data_bytes + 4 * 2**20  # + metadata (the vocabulary) and padding
