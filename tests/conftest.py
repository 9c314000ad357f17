"""Shared fixtures: the default model and llama.cpp's reference values, skipped when absent."""
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[1]
SHARED = REPO.parent / "shared"


@pytest.fixture(scope="session")
def default_model_path():
    from lessons.default_model import INSTALL_HINT, default_model_path as find
    path = find()
    if path is None:
        pytest.skip(f"default model not installed ({INSTALL_HINT})")
    return path


@pytest.fixture(scope="session")
def default_model(default_model_path):
    from lessons.l01_gguf import GGUFFile
    return GGUFFile(default_model_path)


@pytest.fixture(scope="session")
def reference_dir():
    path = SHARED / "reference"
    if not path.is_dir():
        pytest.skip("llama.cpp reference values (../shared/reference) not found")
    return path
