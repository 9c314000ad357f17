"""llama_lessons: the lessons put to work. `from llama_lessons import Llama` is llama-cpp-python's API;
llama_lessons.engine is what run.py's chat, the API and the server share."""

from llama_lessons.api import Llama

__all__ = ["Llama"]
