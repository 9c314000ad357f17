"""Lesson 6, exercise: grouped-query attention by repeating the KV heads, one head at a time."""
import numpy as np


def attention_repeat_kv(q, k, v, pos):
    """Same contract as lessons.l06_attention.attention: q [n, n_head, hd], k, v [n_head_kv, pos+n, hd]."""
    n, n_head, hd = q.shape
    group = n_head // k.shape[0]
    k = np.repeat(k.astype(np.float64), group, axis=0)  # [n_head, n_kv, hd]: head h reads KV head h // group
    v = np.repeat(v.astype(np.float64), group, axis=0)
    out = np.zeros((n, n_head, hd))
    for h in range(n_head):
        for i in range(n):
            seen = pos + i + 1  # keys 0 .. pos+i
            s = k[h, :seen] @ q[i, h].astype(np.float64) / np.sqrt(hd)
            p = np.exp(s - s.max())
            out[i, h] = (p / p.sum()) @ v[h, :seen]
    return out.reshape(n, n_head * hd).astype(np.float32)
