"""Lesson 1c, exercise: find the tensor a hostile file lies about."""
import re

from lessons.l01_gguf import GGUFError, GGUFFile


def first_bad_tensor(path):
    """None when the file loads; else the name of the tensor the reader's error names."""
    try:
        GGUFFile(path).close()
    except GGUFError as e:
        found = re.search(r"tensor '([^']*)'", str(e))
        return found.group(1) if found else None
    return None
