"""Regenerate tests/fixtures/chat_llama_cpp_python.json: llama-cpp-python's own `Llama` answering the calls
that tests/test_api.py then makes, unchanged, through `llama_lessons.Llama`.

    /work/venv-oracle/bin/python tools/make_chat_fixture.py [F32.gguf]   # from the repository root; needs llama_cpp

The model is the default model's weights in F32 (export.py, run by the project's .venv python, writes them
from the Q4_1 file unless a path is given): llama.cpp on F32
weights computes what the numpy backend computes on the dequantized Q4_1 file (docs: KL ~1e-7), so greedy
text must agree token for token. llama-cpp-python renders the chat with the GGUF's own template (its
Jinja2ChatFormatter), so the chat prompt is rendered independently of lesson 10b too.
"""
from __future__ import annotations

import json
import subprocess
import sys
import tempfile
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
OUT = REPO / "tests" / "fixtures" / "chat_llama_cpp_python.json"

CHATS = [
    [{"role": "user", "content": "What is the capital of France?"}],
    [{"role": "system", "content": "You are a terse assistant."}, {"role": "user", "content": "Name three colors."}],
    [{"role": "user", "content": "Hi!"}, {"role": "assistant", "content": "Hello! How can I help you today?"},
     {"role": "user", "content": "What is 2+2?"}],
]
COMPLETIONS = [
    dict(prompt="The capital of France is", max_tokens=16, stop=["."]),
    dict(prompt="Once upon a time", max_tokens=24),
    dict(prompt="The the the the", max_tokens=24, frequency_penalty=1.0, presence_penalty=0.5),
    dict(prompt="The the the the", max_tokens=24, repeat_penalty=1.3),
    dict(prompt="The capital of France is", max_tokens=8, logit_bias={"7042": -100.0, "260": 5.0}),
]
TOKENIZE = [b"<|im_start|>user\nHello, world!<|im_end|>", b" leading space and 123 numbers"]


def main() -> None:
    import llama_cpp

    with tempfile.TemporaryDirectory() as tmp:
        f32 = Path(sys.argv[1]) if len(sys.argv) > 1 else Path(tmp) / "smollm2-F32.gguf"
        if len(sys.argv) == 1:  # the project's python finds the default model and runs export.py
            python = str(REPO / ".venv" / "bin" / "python")
            src = subprocess.run([python, "-c", "from lessons.default_model import default_model_path as f; print(f())"],
                                 cwd=REPO, check=True, capture_output=True, text=True).stdout.strip()
            subprocess.run([python, "export.py", src, str(f32), "F32"], cwd=REPO, check=True, stdout=subprocess.DEVNULL)
        llm = llama_cpp.Llama(model_path=str(f32), n_ctx=512, n_threads=2, seed=0, verbose=False)
        chats = []
        for messages in CHATS:
            out = llm.create_chat_completion(messages=messages, temperature=0, max_tokens=32)
            chats.append({"messages": messages, "max_tokens": 32, "content": out["choices"][0]["message"]["content"],
                          "finish_reason": out["choices"][0]["finish_reason"], "usage": out["usage"]})
        completions = []
        for call in COMPLETIONS:
            out = llm(**call, temperature=0)
            completions.append({**call, "text": out["choices"][0]["text"],
                                "finish_reason": out["choices"][0]["finish_reason"], "usage": out["usage"]})
        # streams: the sequence of deltas / texts and finish reasons (ids and times differ from run to run)
        chunks = llm.create_chat_completion(messages=CHATS[0], temperature=0, max_tokens=32, stream=True)
        chat_stream = [{"delta": c["choices"][0]["delta"], "finish_reason": c["choices"][0]["finish_reason"],
                        "object": c["object"]} for c in chunks]
        chunks = llm(**COMPLETIONS[1], temperature=0, stream=True)
        completion_stream = [{"text": c["choices"][0]["text"], "finish_reason": c["choices"][0]["finish_reason"],
                              "object": c["object"]} for c in chunks]
        ids = llm.tokenize(TOKENIZE[0], add_bos=True, special=True)
        detokenize = [{"ids": ids, "special": special, "bytes": list(llm.detokenize(ids, special=special))}
                      for special in (False, True)]
        tokenize = [{"text": t.decode(), "special": special, "add_bos": add_bos,
                     "ids": llm.tokenize(t, add_bos=add_bos, special=special)}
                    for t in TOKENIZE for special in (False, True) for add_bos in (False, True)]
    OUT.write_text(json.dumps({"llama_cpp_python": llama_cpp.__version__, "model": "SmolLM2-135M-Instruct F32",
                               "chats": chats, "completions": completions, "tokenize": tokenize,
                               "chat_stream": chat_stream, "completion_stream": completion_stream,
                               "detokenize": detokenize}, indent=1) + "\n")
    print(f"wrote {OUT}")


if __name__ == "__main__":
    main()
