"""Lesson 10b: the chat template, from a list of messages to one prompt string.

An Instruct model was fine-tuned on conversations written in one exact format, with special tokens
marking who speaks. Give it the same format and it answers; give it raw text and it rambles on.
The format ships inside the GGUF file: `tokenizer.chat_template` is a Jinja template (the one from
the model's tokenizer_config.json), and rendering it with the conversation gives the prompt:

    messages = [{"role": "user", "content": "Hi"}]          SmolLM2's template (ChatML) renders
                                                            (it adds a default system prompt):
    <|im_start|>system
    You are a helpful AI assistant named SmolLM, trained by Hugging Face<|im_end|>
    <|im_start|>user
    Hi<|im_end|>
    <|im_start|>assistant
                                                            <- add_generation_prompt=True opens the
                                                               assistant's turn; the model goes on.

The prompt is then tokenized with special tokens parsed, so "<|im_start|>" becomes token 1, not 7
tokens of punctuation; the model's reply ends when it samples "<|im_end|>", an end-of-generation id.

The template is code from the file, so it is rendered in jinja2's sandbox (no attribute access to
Python internals, no file system), immutable (a template cannot change the messages), with the
variables llama.cpp's --jinja gives it: messages, add_generation_prompt, bos_token, eos_token,
raise_exception(msg), strftime_now(fmt), and tools=None.
"""

from __future__ import annotations

from datetime import datetime

# --8<-- [start:render]
import jinja2
from jinja2.sandbox import ImmutableSandboxedEnvironment


class ChatTemplateError(ValueError):
    """A template that does not parse, raises, or is missing."""


def raise_exception(message: str):
    """Templates call this to refuse a conversation (e.g. roles that do not alternate)."""
    raise ChatTemplateError(f"the chat template refused the messages: {message}")


def strftime_now(fmt: str) -> str:
    return datetime.now().strftime(fmt)


def compile_template(source: str) -> jinja2.Template:
    # trim_blocks/lstrip_blocks: HF's apply_chat_template renders with these two options
    env = ImmutableSandboxedEnvironment(trim_blocks=True, lstrip_blocks=True)
    try:
        return env.from_string(source)
    except jinja2.TemplateError as e:
        raise ChatTemplateError(f"the chat template does not parse: {e}") from None


def render(template: jinja2.Template, messages: list[dict], add_generation_prompt: bool = True,
           bos_token: str = "", eos_token: str = "") -> str:
    """The prompt string for these messages [{"role": ..., "content": ...}, ...]."""
    try:
        return template.render(messages=messages, add_generation_prompt=add_generation_prompt,
                               bos_token=bos_token, eos_token=eos_token, raise_exception=raise_exception,
                               strftime_now=strftime_now, tools=None)
    except ChatTemplateError:
        raise
    except jinja2.TemplateError as e:  # includes the sandbox's SecurityError
        raise ChatTemplateError(f"the chat template failed: {e}") from None
    except (TypeError, ValueError, KeyError, AttributeError, IndexError) as e:
        raise ChatTemplateError(f"the chat template failed: {type(e).__name__}: {e}") from None
# --8<-- [end:render]


# --8<-- [start:from_gguf]
def template_source(metadata: dict, override: str | None = None) -> str:
    """The template text: an override (--chat-template-file) or the GGUF's tokenizer.chat_template."""
    if override is not None:
        return override
    source = metadata.get("tokenizer.chat_template")
    if not isinstance(source, str) or not source.strip():
        raise ChatTemplateError("this model has no chat template (tokenizer.chat_template); "
                                "give one with --chat-template-file FILE")
    return source
# --8<-- [end:from_gguf]


# --8<-- [start:validate]
def validate_messages(messages) -> list[dict]:
    """OpenAI-shaped messages: a non-empty list of {"role": str, "content": str}; extra keys are kept."""
    if not isinstance(messages, list) or not messages:
        raise ValueError("messages must be a non-empty list")
    out = []
    for i, m in enumerate(messages):
        if not isinstance(m, dict) or not isinstance(m.get("role"), str):
            raise ValueError(f"messages[{i}] must be an object with a string 'role'")
        content = m.get("content")
        if content is None:
            content = ""
        if isinstance(content, list):  # OpenAI's content parts: keep the text ones
            if not all(isinstance(p, dict) and p.get("type") == "text" and isinstance(p.get("text"), str)
                       for p in content):
                raise ValueError(f"messages[{i}].content: only text parts are supported")
            content = "".join(p["text"] for p in content)
        if not isinstance(content, str):
            raise ValueError(f"messages[{i}].content must be a string")
        out.append({**m, "content": content})
    return out
# --8<-- [end:validate]


if __name__ == "__main__":  # the worked example above, from the default model's own template
    from lessons.default_model import default_model_path
    from lessons.l01_gguf import GGUFFile
    from lessons.l02_tokenizer import Tokenizer

    gguf = GGUFFile(default_model_path())
    tok = Tokenizer.from_metadata(gguf.metadata)
    prompt = render(compile_template(template_source(gguf.metadata)), [{"role": "user", "content": "Hi"}])
    print(prompt)
    print(tok.encode(prompt)[:12], "...")
