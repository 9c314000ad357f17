"""llama-lessons: LLaMA inference, one concept per numbered file.

Read them in order: l01_gguf (the model file), l02/l03 (tokenizers), l04-l08 (the forward pass),
l09-l11 (sampling, generation, perplexity), l12-l14 (quantization).
"""
