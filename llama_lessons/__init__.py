"""llama_lessons: the lessons put to work. `from llama_lessons import Llama` is llama-cpp-python's API;
llama_lessons.engine is what run.py's chat, the API and the server share."""

__all__ = ["Llama"]


def __getattr__(name):  # imported on first use: run.py imports this package before numpy may be imported
    if name == "Llama":
        from llama_lessons.api import Llama

        return Llama
    raise AttributeError(f"module 'llama_lessons' has no attribute {name!r}")
