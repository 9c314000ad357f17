#!/usr/bin/env python3
"""Write tests/fixtures/torch/: checkpoints that PyTorch itself wrote, and what PyTorch computed.

Run with a separate venv that has torch (never the project's):
    python3 -m venv /work/venv-torch
    /work/venv-torch/bin/pip install torch==2.13.0 transformers numpy safetensors sentencepiece
    /work/venv-torch/bin/python tools/make_torch_fixtures.py

It makes a tiny random LlamaForCausalLM (dim 64, 2 layers, 4 query heads sharing 2 KV heads, rope
theta 50000, untied output) and writes it twice:
  hf/    save_pretrained (model.safetensors, F32) + a byte-level BPE tokenizer trained here with
         SmolLM2's pre-tokenizer (digits one by one, then ByteLevel) + a chat template
  meta/  consolidated.00.pth by torch.save (BF16, Meta's names and Meta's Q/K row order) +
         params.json + a SentencePiece BPE tokenizer.model (byte fallback) trained here
and llama3_rope.npz: transformers' Llama 3.1 RoPE divisors for Llama 3.2 1B's settings; and
logits.npz: the token sequence, PyTorch's float32 logits for it from both models (the Meta one
is the same model with its weights rounded to bf16), and token ids the two tokenizers give for a
few strings. Weights are drawn larger than transformers' default init so the logits are peaked:
a wrong permutation or name then moves them far past the tests' KL bound.
"""
from __future__ import annotations

import json
import os
import shutil
import sys
import tempfile
from pathlib import Path

import numpy as np
import torch

ROOT = Path(__file__).resolve().parents[1]
OUT = ROOT / "tests" / "fixtures" / "torch"
TEXT = ROOT.parent / "shared" / "data" / "tinyshakespeare-40k.txt"
STRINGS = ["Hello world", "To be, or not to be: that is the question.", "In 1603, 42 kings!",
           "  spaces   and\nnewlines\n", "Café naïve 👍"]
N_VOCAB = 384


def train_bpe(text: str):
    from tokenizers import Tokenizer, decoders, models, pre_tokenizers, trainers
    tok = Tokenizer(models.BPE())
    tok.pre_tokenizer = pre_tokenizers.Sequence([pre_tokenizers.Digits(individual_digits=True),
                                                 pre_tokenizers.ByteLevel(add_prefix_space=False, use_regex=True)])
    tok.decoder = decoders.ByteLevel()
    trainer = trainers.BpeTrainer(vocab_size=N_VOCAB, special_tokens=["<|endoftext|>", "<|im_start|>", "<|im_end|>"],
                                  initial_alphabet=pre_tokenizers.ByteLevel.alphabet(), show_progress=False)
    tok.train_from_iterator([text], trainer)
    return tok


def train_spm(text: str, folder: Path) -> Path:
    import sentencepiece as spm
    src = folder / "text.txt"
    src.write_text(text)
    spm.SentencePieceTrainer.train(input=str(src), model_prefix=str(folder / "spm"), vocab_size=N_VOCAB,
                                   model_type="bpe", byte_fallback=True, character_coverage=1.0,
                                   bos_id=1, eos_id=2, unk_id=0, pad_id=-1, minloglevel=2,
                                   normalization_rule_name="identity",  # no 240 KB NFKC table
                                   remove_extra_whitespaces=False)  # as LLaMA's own, and as llama.cpp tokenizes
    return folder / "spm.model"


def meta_rows(w: torch.Tensor, n_head: int) -> torch.Tensor:
    """HF's rotate_half row order -> Meta's neighbour pairs (undoing Meta's HF converter)."""
    hd = w.shape[0] // n_head
    return w.reshape(n_head, 2, hd // 2, w.shape[1]).transpose(1, 2).reshape(w.shape)


LLAMA3_ROPE = {"rope_type": "llama3", "rope_theta": 500000.0, "factor": 32.0, "low_freq_factor": 1.0,
               "high_freq_factor": 4.0, "original_max_position_embeddings": 8192}  # Llama 3.2 1B's


def llama3_rope_divisors() -> dict:
    """transformers' Llama 3.1 RoPE: per pair, how much slower than plain RoPE it turns
    (default inv_freq / llama3 inv_freq), which is what llama.cpp stores as rope_freqs.weight."""
    from transformers import LlamaConfig
    from transformers.modeling_rope_utils import ROPE_INIT_FUNCTIONS
    cfg = LlamaConfig(hidden_size=2048, num_attention_heads=32, max_position_embeddings=131072,
                      rope_parameters=dict(LLAMA3_ROPE))
    scaled, _ = ROPE_INIT_FUNCTIONS["llama3"](cfg, "cpu")
    head_dim = 2048 // 32
    plain = 1.0 / (LLAMA3_ROPE["rope_theta"] ** (torch.arange(0, head_dim, 2, dtype=torch.int64).float() / head_dim))
    return {"config": np.array(json.dumps(LLAMA3_ROPE)), "head_dim": np.int32(head_dim),
            "divisors": (plain / scaled).float().numpy()}


def main() -> int:
    from transformers import LlamaConfig, LlamaForCausalLM, PreTrainedTokenizerFast
    torch.manual_seed(0)
    text = TEXT.read_text()
    shutil.rmtree(OUT, ignore_errors=True)
    (OUT / "hf").mkdir(parents=True)
    (OUT / "meta").mkdir()

    config = LlamaConfig(vocab_size=N_VOCAB, hidden_size=64, intermediate_size=128, num_hidden_layers=2,
                         num_attention_heads=4, num_key_value_heads=2, max_position_embeddings=256,
                         rms_norm_eps=1e-5, rope_theta=50000.0, tie_word_embeddings=False,
                         bos_token_id=1, eos_token_id=2)
    model = LlamaForCausalLM(config).eval()
    with torch.no_grad():
        for name, p in model.named_parameters():
            if p.ndim == 1:
                p.copy_(1.0 + 0.2 * torch.randn_like(p))
            else:
                p.copy_(torch.randn_like(p) * (2.0 / p.shape[1] ** 0.5))
    model.save_pretrained(OUT / "hf")

    bpe = train_bpe(text)
    fast = PreTrainedTokenizerFast(tokenizer_object=bpe, bos_token="<|im_start|>", eos_token="<|im_end|>",
                                   unk_token="<|endoftext|>", pad_token="<|im_end|>")
    fast.chat_template = ("{% for m in messages %}{{ '<|im_start|>' + m['role'] + '\n' + m['content'] + "
                          "'<|im_end|>\n' }}{% endfor %}{% if add_generation_prompt %}{{ '<|im_start|>assistant\n' }}{% endif %}")
    fast.save_pretrained(OUT / "hf")

    tokens = torch.tensor([fast.encode(text[:200])[:24]])
    with torch.no_grad():
        hf_logits = model(tokens).logits[0].float().numpy()                       # [24, N_VOCAB]

    # Meta: same model, Meta's names and row order, stored as bf16 by torch.save
    n_head, n_kv = config.num_attention_heads, config.num_key_value_heads
    names = {"input_layernorm": "attention_norm", "self_attn.q_proj": "attention.wq",
             "self_attn.k_proj": "attention.wk", "self_attn.v_proj": "attention.wv",
             "self_attn.o_proj": "attention.wo", "post_attention_layernorm": "ffn_norm",
             "mlp.gate_proj": "feed_forward.w1", "mlp.down_proj": "feed_forward.w2", "mlp.up_proj": "feed_forward.w3"}
    sd = {}
    for name, p in model.state_dict().items():
        if name == "model.embed_tokens.weight":
            new = "tok_embeddings.weight"
        elif name == "model.norm.weight":
            new = "norm.weight"
        elif name == "lm_head.weight":
            new = "output.weight"
        else:
            i, rest = name[len("model.layers."):].split(".", 1)
            new = f"layers.{i}.{names[rest.rsplit('.', 1)[0]]}.weight"
        if "q_proj" in name:
            p = meta_rows(p, n_head)
        elif "k_proj" in name:
            p = meta_rows(p, n_kv)
        sd[new] = p.to(torch.bfloat16).clone()
    torch.save(sd, OUT / "meta" / "consolidated.00.pth")
    (OUT / "meta" / "params.json").write_text(json.dumps(
        {"dim": 64, "n_layers": 2, "n_heads": n_head, "n_kv_heads": n_kv, "vocab_size": N_VOCAB,
         "multiple_of": 32, "ffn_dim_multiplier": 0.75, "norm_eps": 1e-5, "rope_theta": 50000.0, "max_seq_len": 256}))
    with tempfile.TemporaryDirectory() as tmp:
        shutil.copy(train_spm(text, Path(tmp)), OUT / "meta" / "tokenizer.model")
    import sentencepiece as spm
    sp = spm.SentencePieceProcessor(model_file=str(OUT / "meta" / "tokenizer.model"))

    with torch.no_grad():
        for p in model.parameters():
            p.copy_(p.to(torch.bfloat16).float())
        meta_logits = model(tokens).logits[0].float().numpy()

    np.savez_compressed(
        OUT / "logits.npz", tokens=tokens[0].numpy().astype(np.int32), hf_logits=hf_logits, meta_logits=meta_logits,
        strings=np.array(STRINGS), bpe_ids=np.array([json.dumps(fast.encode(s)) for s in STRINGS]),
        spm_ids=np.array([json.dumps(sp.encode(s)) for s in STRINGS]),
        spm_pieces=np.array([sp.id_to_piece(i) for i in range(sp.get_piece_size())]),
        spm_scores=np.array([sp.get_score(i) for i in range(sp.get_piece_size())], dtype=np.float32),
        spm_types=np.array([2 if sp.is_unknown(i) else 3 if sp.is_control(i) else 5 if sp.is_unused(i)
                            else 6 if sp.is_byte(i) else 1 for i in range(sp.get_piece_size())], dtype=np.int32))
    np.savez(OUT / "llama3_rope.npz", **llama3_rope_divisors())
    total = sum(f.stat().st_size for f in OUT.rglob("*") if f.is_file())
    print(f"wrote {OUT} ({total / 1024:.0f} KiB); logits spread {hf_logits.std():.2f}, "
          f"bf16 changed them by {np.abs(meta_logits - hf_logits).max():.3g}", file=sys.stderr)
    return 0


if __name__ == "__main__":
    sys.exit(main())
