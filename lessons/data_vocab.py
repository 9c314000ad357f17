"""Data: llama.cpp's lists of names and special texts (used by lessons 2 and 2b).

Compatibility data, kept out of the lessons so they read as the idea: which tokenizer models exist,
which `tokenizer.ggml.pre` names share which pre-tokenizer regexes, and which token texts llama.cpp
treats as end of generation or as control tokens in any vocabulary, whatever the file says.
"""
from __future__ import annotations

KNOWN_MODELS = ("gpt2", "llama", "bert", "t5", "rwkv", "no_vocab", "none", "plamo2")
# Token texts llama.cpp treats as end-of-generation (and as control tokens) in any vocabulary.
EOG_TEXTS = {"<|eot_id|>", "<|im_end|>", "<|end|>", "<|return|>", "<|call|>", "<|flush|>", "<|calls|>",
             "<end_of_turn>", "<|endoftext|>", "</s>", "<|eom_id|>", "<EOT>", "_<EOT>", "[EOT]", "[EOS]",
             "<|end_of_text|>", "<end_of_utterance>", "<eos>", "<turn|>", "<|tool_response>",
             "<｜end▁of▁sentence｜>", "[e~["}
# Fill-in-the-middle pad/repo/file-separator tokens end generation too.
FIM_EOG_TEXTS = {"<|fim_pad|>", "<fim-pad>", "<fim_pad>", "<PAD>", "[PAD]", "<|fim_repo|>", "<|repo_name|>",
                 "<fim-repo>", "<REPO>", "<reponame>", "<|file_sep|>"}
# ... and the other fill-in-the-middle markers are made control tokens (not end of generation).
FIM_TEXTS = {"<|fim_prefix|>", "<fim-prefix>", "<fim_prefix>", "<｜fim▁begin｜>", "<PRE>", "<|fim_suffix|>",
             "<fim-suffix>", "<fim_suffix>", "<｜fim▁hole｜>", "<SUF>", "<|fim_middle|>", "<fim-middle>",
             "<fim_middle>", "<｜fim▁end｜>", "<MID>"}
EOG_ID_KEYS = ("eot", "eom", "fim_pad", "fim_rep", "fim_sep")


# GGUF `tokenizer.ggml.pre` names -> regex family (llama.cpp groups them the same way).
PRE_NAMES = {
    "default": "default",
    "gpt-2": "gpt2", "phi-2": "gpt2", "roberta-bpe": "gpt2", "mpt": "gpt2", "olmo": "gpt2", "jais": "gpt2",
    "smollm": "smollm", "starcoder": "smollm", "refact": "smollm", "command-r": "smollm",
    "codeshell": "smollm", "exaone": "smollm", "minerva-7b": "smollm",
    "llama3": "llama3", "llama-v3": "llama3", "llama-bpe": "llama3", "falcon3": "llama3", "falcon-h1": "llama3",
    "pixtral": "llama3", "dbrx": "llama3", "smaug-bpe": "llama3",
}
# Of those, Llama 3's own names also add BOS by default and take a pre-token whole when it is a token.
LLAMA3_NAMES = {"llama3", "llama-v3", "llama-bpe", "falcon3", "falcon-h1", "pixtral"}


def llama_cpp_special_texts(tokens: list[str]) -> tuple[set[int], set[int]]:
    """(ids that end generation, ids llama.cpp forces to be control tokens) found by their text."""
    eog = {i for i, t in enumerate(tokens) if t in EOG_TEXTS or t in FIM_EOG_TEXTS}
    control = eog | {i for i, t in enumerate(tokens) if t in FIM_TEXTS}
    return eog, control
