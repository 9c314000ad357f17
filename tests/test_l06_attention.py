import numpy as np
import pytest

from lessons.l06_attention import KVCache, attention, softmax


def attention_oracle(q, k, v, pos):
    """Per head, per query, in float64 loops: the definition with GQA as 'KV head = h // group'."""
    n, n_head, hd = q.shape
    n_head_kv = k.shape[0]
    out = np.zeros((n, n_head, hd))
    for h in range(n_head):
        kv = h // (n_head // n_head_kv)
        for i in range(n):
            visible = pos + i + 1
            s = k[kv, :visible].astype(np.float64) @ q[i, h] / np.sqrt(hd)
            p = np.exp(s - s.max())
            out[i, h] = (p / p.sum()) @ v[kv, :visible]
    return out.reshape(n, n_head * hd)


def test_softmax_of_equal_scores_is_uniform():
    np.testing.assert_allclose(softmax(np.array([2.0, 2.0, 2.0, 2.0])), [0.25] * 4)


def test_softmax_is_stable_for_huge_scores():
    p = softmax(np.array([[1000.0, 999.0, -np.inf]], np.float32))
    np.testing.assert_allclose(p, [[1 / (1 + np.exp(-1)), np.exp(-1) / (1 + np.exp(-1)), 0]], rtol=1e-6)


def test_first_token_sees_only_itself():
    rng = np.random.default_rng(0)
    q = rng.standard_normal((1, 4, 8)).astype(np.float32)
    k, v = rng.standard_normal((2, 1, 8)).astype(np.float32), rng.standard_normal((2, 1, 8)).astype(np.float32)
    out = attention(q, k, v, pos=0).reshape(4, 8)
    np.testing.assert_allclose(out, np.repeat(v[:, 0], 2, axis=0), rtol=1e-6)  # heads 0,1 -> kv 0; 2,3 -> kv 1


def test_equal_scores_average_the_values():
    q = np.zeros((1, 1, 4), np.float32)  # a zero query scores every key 0
    rng = np.random.default_rng(1)
    k, v = rng.standard_normal((1, 5, 4)).astype(np.float32), rng.standard_normal((1, 5, 4)).astype(np.float32)
    np.testing.assert_allclose(attention(q, k, v, pos=4)[0], v[0].mean(0), rtol=1e-5, atol=1e-6)


@pytest.mark.parametrize("n_head,n_head_kv", [(4, 4), (4, 2), (9, 3), (6, 1)])
@pytest.mark.parametrize("n,pos", [(1, 0), (5, 0), (1, 6), (4, 3)])
def test_matches_loop_oracle(n_head, n_head_kv, n, pos):
    rng = np.random.default_rng(n_head * 10 + n_head_kv)
    hd = 8
    q = rng.standard_normal((n, n_head, hd)).astype(np.float32)
    k = rng.standard_normal((n_head_kv, pos + n, hd)).astype(np.float32)
    v = rng.standard_normal((n_head_kv, pos + n, hd)).astype(np.float32)
    np.testing.assert_allclose(attention(q, k, v, pos), attention_oracle(q, k, v, pos), rtol=1e-5, atol=1e-5)


def test_gqa_equals_mha_with_repeated_kv_heads():
    rng = np.random.default_rng(2)
    q = rng.standard_normal((3, 6, 8)).astype(np.float32)
    k, v = rng.standard_normal((2, 3, 8)).astype(np.float32), rng.standard_normal((2, 3, 8)).astype(np.float32)
    mha = attention(q, np.repeat(k, 3, axis=0), np.repeat(v, 3, axis=0), 0)
    np.testing.assert_allclose(attention(q, k, v, 0), mha, rtol=1e-6)


def test_cached_decode_equals_batched_prefill():
    rng = np.random.default_rng(3)
    n, n_head, n_head_kv, hd = 6, 4, 2, 8
    q = rng.standard_normal((n, n_head, hd)).astype(np.float32)
    k = rng.standard_normal((n, n_head_kv, hd)).astype(np.float32)
    v = rng.standard_normal((n, n_head_kv, hd)).astype(np.float32)
    cache = KVCache(n_layer=2, n_ctx=16, n_head_kv=n_head_kv, head_dim=hd)
    cache.store(1, 0, k, v)
    batched = attention(q, cache.k[1, :, :n], cache.v[1, :, :n], 0)
    cache = KVCache(n_layer=2, n_ctx=16, n_head_kv=n_head_kv, head_dim=hd)
    steps = []
    for t in range(n):
        cache.store(1, t, k[t : t + 1], v[t : t + 1])
        steps.append(attention(q[t : t + 1], cache.k[1, :, : t + 1], cache.v[1, :, : t + 1], t))
    np.testing.assert_allclose(np.concatenate(steps), batched, rtol=1e-5, atol=1e-6)
    assert not cache.k[0].any()  # other layers untouched


def test_f16_cache_holds_float16_values_and_attends_like_the_oracle():
    """kv_type="f16": stored values are numpy's float16 rounding of k and v; attention over them equals the
    float64 loop oracle on those rounded values, and differs from the float32 cache's answer."""
    rng = np.random.default_rng(4)
    n, n_head, n_head_kv, hd = 5, 4, 2, 8
    q = rng.standard_normal((n, n_head, hd)).astype(np.float32)
    k = rng.standard_normal((n, n_head_kv, hd)).astype(np.float32)
    v = rng.standard_normal((n, n_head_kv, hd)).astype(np.float32)
    cache16 = KVCache(n_layer=1, n_ctx=8, n_head_kv=n_head_kv, head_dim=hd, kv_type="f16")
    cache16.store(0, 0, k, v)
    assert cache16.k.dtype == np.float16
    np.testing.assert_array_equal(cache16.k[0, :, :n], k.astype(np.float16).transpose(1, 0, 2))
    out16 = attention(q, cache16.k[0, :, :n], cache16.v[0, :, :n], 0)
    oracle = attention_oracle(q, k.astype(np.float16).transpose(1, 0, 2).astype(np.float64),
                              v.astype(np.float16).transpose(1, 0, 2).astype(np.float64), 0)
    np.testing.assert_allclose(out16, oracle, rtol=1e-5, atol=1e-6)
    out32 = attention(q, k.transpose(1, 0, 2), v.transpose(1, 0, 2), 0)
    assert np.abs(out16 - out32).max() > 1e-5  # the rounding is real


def test_unknown_kv_type_is_a_value_error():
    with pytest.raises(ValueError, match="KV cache type"):
        KVCache(n_layer=1, n_ctx=4, n_head_kv=1, head_dim=4, kv_type="q8_0")


def test_docstring_examples():
    import doctest

    import lessons.l06_attention as module

    result = doctest.testmod(module)
    assert result.attempted >= 1 and result.failed == 0
