"""Lesson 11, exercise: how many tokens llama-perplexity scores."""


def n_scored(n_tokens, n_ctx):
    """Tokens scored over a text of n_tokens cut into chunks of n_ctx: n_ctx/2 - 1 per whole chunk."""
    return (n_tokens // n_ctx) * (n_ctx // 2 - 1)
