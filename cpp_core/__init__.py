"""The fast twin of the lessons: a pybind11 C++ core (see cpp_core/src/).

`cpp_core._core` is compiled by `pip install -e .`; everything here is a thin, documented wrapper.
"""
from . import _core  # noqa: F401  (ImportError here means the package was not built: pip install -e .)

__all__ = ["_core"]
