"""Lesson 8, exercise: count a model's parameters from its hyper-parameters alone."""


def count_parameters(config) -> int:
    """Weights of a LLaMA model described by a LlamaConfig (lesson 8b), tied embeddings counted once."""
    c = config
    per_layer = (2 * c.n_embd                                   # two norms
                 + c.n_embd * c.n_head * c.head_dim * 2          # W_q and W_o
                 + c.n_embd * c.n_head_kv * c.head_dim * 2       # W_k and W_v
                 + 3 * c.n_embd * c.n_ff)                        # gate, up, down
    embeddings = c.n_vocab * c.n_embd * (1 if c.tied_embeddings else 2)
    return c.n_layer * per_layer + embeddings + c.n_embd      # + the output norm
