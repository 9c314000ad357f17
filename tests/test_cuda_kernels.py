"""Every CUDA kernel version on a GPU against its lesson, parametrized over version, type and shape.

Skips without a GPU ("no CUDA device: ..."). Written before any GPU was available to its author: the same oracles
and bounds as tests/test_cuda_host.py (which runs the kernels' per-thread code on the CPU), plus what only a device
does: the launch geometry, warp shuffles, shared memory, device float rounding. The launches mirror
cpp_core/src/cuda/cuda_model.cpp's (grids, blocks, shared memory, argument lists).

Oracles: lessons.l12_quants.dequantize, l04 rmsnorm, l05 RoPE, l06 attention, l07 swiglu, numpy's float16 rounding."""
import numpy as np
import pytest

from cpp_core import _core, cuda
from lessons.l04_rmsnorm import rmsnorm
from lessons.l05_rope import apply_rope, rope_angles
from lessons.l06_attention import attention
from lessons.l07_swiglu import swiglu
from test_cuda_host import ALL_TYPES, NAMES, SHAPES, bound, q8_activations, weights

OK, WHY = cuda.cuda_status()
pytestmark = pytest.mark.skipif(not OK, reason=f"no CUDA device: {WHY}")
D = _core.cuda_dev


class Gpu:
    """The kernels of one compiled image, and the device memory a test allocates (freed at the end)."""

    def __init__(self):
        self.module = D.load_module(cuda.image_for_device())
        self.fns, self.owned = {}, []

    def put(self, a) -> int:
        a = np.ascontiguousarray(a)
        p = D.alloc(max(a.nbytes, 1))
        self.owned.append(p)
        D.upload(p, a.reshape(-1).view(np.uint8))
        return p

    def zeros(self, nbytes: int) -> int:
        p = D.alloc(nbytes)
        self.owned.append(p)
        return p

    def get(self, p: int, dtype, shape) -> np.ndarray:
        n = int(np.prod(shape)) * np.dtype(dtype).itemsize
        return np.frombuffer(D.download(p, n), dtype=dtype).reshape(shape).copy()

    def run(self, name, grid, block, args, shared=0):
        if name not in self.fns:
            self.fns[name] = D.function(self.module, name)
        grid, block = (tuple(grid) + (1, 1))[:3], (tuple(block) + (1, 1))[:3]
        D.launch(self.fns[name], list(grid), list(block), shared, args)

    def free(self):
        for p in self.owned:
            D.free(p)


@pytest.fixture(scope="module")
def gpu():
    g = Gpu()
    yield g
    g.free()


def cdiv(a, b):
    return -(-a // b)


def product(gpu, version, t, raw, x):
    """y [n_tok, n_rows] from one kernel version, launched as cuda_model.cpp launches it."""
    n_tok, n_cols = x.shape
    n_rows, rb = raw.shape
    w, xp = gpu.put(raw), gpu.put(x.astype(np.float32))
    y = gpu.zeros(4 * n_rows * n_tok)
    common = [("i", t), ("p", w), ("l", rb), ("p", xp)]
    if version == "matvec_v0":
        gpu.run("matvec_v0", [cdiv(n_rows, 128)], [128], common + [("p", y), ("i", n_rows), ("i", n_cols)])
    elif version == "matvec_v1":
        gpu.run("matvec_v1", [cdiv(n_rows, 4)], [32, 4], common + [("p", y), ("i", n_rows), ("i", n_cols)])
    elif version == "matvec_v2":
        units = n_cols // 32
        xq, xd, xs = gpu.zeros(n_cols), gpu.zeros(4 * units), gpu.zeros(8 * units)
        gpu.run("quantize_q8", [cdiv(units, 128)], [128], [("p", xp), ("p", xq), ("p", xd), ("p", xs), ("i", units)])
        gpu.run("matvec_v2", [cdiv(n_rows, 4)], [32, 4],
                common + [("p", xq), ("p", xd), ("p", xs), ("p", y), ("i", n_rows), ("i", n_cols)])
    elif version == "matmul_v0":
        gpu.run("matmul_v0", [cdiv(n_rows * n_tok, 128)], [128], common + [("p", y), ("i", n_rows), ("i", n_cols), ("i", n_tok)])
    elif version == "matmul_v1":
        gpu.run("matmul_v1", [cdiv(n_rows, 4), cdiv(n_tok, 8)], [32, 4],
                common + [("p", y), ("i", n_rows), ("i", n_cols), ("i", n_tok)])
    else:
        gpu.run("matmul_v2", [cdiv(n_rows, 64), cdiv(n_tok, 64)], [256],
                common + [("p", y), ("i", n_rows), ("i", n_cols), ("i", n_tok)])
    return gpu.get(y, np.float32, (n_tok, n_rows))


@pytest.mark.parametrize("shape", SHAPES + [(4099, 576, 1)], ids=str)
@pytest.mark.parametrize("t", ALL_TYPES, ids=NAMES.get)
@pytest.mark.parametrize("version", ["matvec_v0", "matvec_v1", "matvec_v2", "matmul_v0", "matmul_v1", "matmul_v2"])
def test_products(gpu, version, t, shape):
    n_rows, n_cols, n_tok = shape
    if n_cols % (256 if t >= 10 else 32):
        pytest.skip("k-quant rows are whole super-blocks of 256")
    if version.startswith("matvec") and n_tok > 1:
        n_tok = 1
    raw, w = weights(t, n_rows, n_cols, seed=n_cols)
    x = np.random.default_rng(2).standard_normal((n_tok, n_cols)).astype(np.float32)
    got = product(gpu, version, t, raw, x)
    xr = q8_activations(x) if version == "matvec_v2" and t not in (0, 1) else x.astype(np.float64)
    assert np.all(np.abs(got - xr @ w.T.astype(np.float64)) <= bound(x, w))


@pytest.mark.parametrize("version", ["rmsnorm_v0", "rmsnorm_v1"])
@pytest.mark.parametrize("n_rows, dim", [(1, 576), (7, 4096), (3, 100)])
def test_rmsnorm(gpu, version, n_rows, dim):
    rng = np.random.default_rng(4)
    x, w = rng.standard_normal((n_rows, dim)).astype(np.float32) * 3, rng.standard_normal(dim).astype(np.float32)
    xp, wp, out = gpu.put(x), gpu.put(w), gpu.zeros(x.nbytes)
    grid, block = ([cdiv(n_rows, 128)], [128]) if version == "rmsnorm_v0" else ([n_rows], [256])
    gpu.run(version, grid, block, [("p", xp), ("p", wp), ("p", out), ("i", n_rows), ("i", dim), ("f", 1e-5)])
    np.testing.assert_allclose(gpu.get(out, np.float32, x.shape), rmsnorm(x, w, 1e-5), rtol=2e-6, atol=1e-6)


@pytest.mark.parametrize("n_rows, dim", [(1, 576), (5, 4096)])
def test_add_rmsnorm(gpu, n_rows, dim):
    rng = np.random.default_rng(9)
    x, y, w = (rng.standard_normal(s).astype(np.float32) for s in ((n_rows, dim), (n_rows, dim), dim))
    xp, yp, wp, out = gpu.put(x), gpu.put(y), gpu.put(w), gpu.zeros(x.nbytes)
    gpu.run("add_rmsnorm_v2", [n_rows], [256], [("p", xp), ("p", yp), ("p", wp), ("p", out), ("i", n_rows), ("i", dim), ("f", 1e-5)])
    np.testing.assert_array_equal(gpu.get(xp, np.float32, x.shape), x + y)
    np.testing.assert_allclose(gpu.get(out, np.float32, x.shape), rmsnorm(x + y, w, 1e-5), rtol=2e-6, atol=1e-6)


@pytest.mark.parametrize("neox", [0, 1], ids=["normal", "neox"])
@pytest.mark.parametrize("n_rot", [64, 32], ids=["full", "partial"])
@pytest.mark.parametrize("pos", [0, 3000])
def test_rope(gpu, neox, n_rot, pos):
    rng = np.random.default_rng(5)
    n, n_head, hd = 5, 3, 64
    x = rng.standard_normal((n, n_head, hd)).astype(np.float32)
    xp, pp = gpu.put(x), gpu.put(np.array([pos], np.int32))
    gpu.run("rope_v0", [cdiv(n * n_head * n_rot // 2, 128)], [128],
            [("p", xp), ("i", n), ("i", n_head), ("i", hd), ("i", n_rot), ("f", 10000.0), ("i", neox), ("p", pp)])
    cos, sin = rope_angles(np.arange(pos, pos + n), n_rot, 10000.0)
    np.testing.assert_allclose(gpu.get(xp, np.float32, x.shape), apply_rope(x, cos, sin, neox=bool(neox)), rtol=1e-5, atol=1e-5)


def test_store_kv_rounds_like_numpy(gpu):
    """K or V of 3 tokens into a [n_head_kv][n_ctx][head_dim] float16 cache at positions 5..7, nearest-even rounding."""
    rng = np.random.default_rng(6)
    n, g, hd, n_ctx, pos = 3, 2, 64, 12, 5
    src = (rng.standard_normal((n, g * hd)) * 100).astype(np.float32)
    sp, cache, pp = gpu.put(src), gpu.zeros(2 * g * n_ctx * hd), gpu.put(np.array([pos], np.int32))
    gpu.run("store_kv_v0", [cdiv(n * g * hd, 256)], [256], [("p", sp), ("p", cache), ("i", n), ("i", g), ("i", hd), ("i", n_ctx), ("p", pp)])
    want = np.zeros((g, n_ctx, hd), np.float16)
    want[:, pos:pos + n] = src.reshape(n, g, hd).transpose(1, 0, 2).astype(np.float16)
    np.testing.assert_array_equal(gpu.get(cache, np.uint16, want.shape), want.view(np.uint16))


def test_swiglu_and_add(gpu):
    rng = np.random.default_rng(7)
    g, u = (rng.standard_normal(3000).astype(np.float32) * 6 for _ in range(2))
    gp, up = gpu.put(g), gpu.put(u)
    gpu.run("swiglu_v0", [cdiv(3000, 256)], [256], [("p", gp), ("p", up), ("p", gp), ("l", 3000)])
    np.testing.assert_allclose(gpu.get(gp, np.float32, (3000,)), swiglu(g, u), rtol=2e-6, atol=1e-7)
    xp = gpu.put(g)
    gpu.run("add_v0", [cdiv(3000, 256)], [256], [("p", xp), ("p", up), ("l", 3000)])
    np.testing.assert_array_equal(gpu.get(xp, np.float32, (3000,)), g + u)


@pytest.mark.parametrize("t", ALL_TYPES, ids=NAMES.get)
def test_embed(gpu, t):
    raw, w = weights(t, 50, 256)
    tokens = np.array([3, 49, 0, 3], np.int32)
    tp, rp, x = gpu.put(tokens), gpu.put(raw), gpu.zeros(4 * 4 * 256)
    gpu.run("embed_v0", [cdiv(4 * 256, 256)], [256], [("i", t), ("p", rp), ("l", raw.shape[1]), ("p", tp), ("p", x), ("i", 4), ("i", 256)])
    np.testing.assert_allclose(gpu.get(x, np.float32, (4, 256)), w[tokens], rtol=1e-6, atol=1e-9)


@pytest.mark.parametrize("version", ["attention_v0", "attention_v1"])
@pytest.mark.parametrize("n_tok, pos, n_head, n_kv, hd", [(1, 17, 6, 2, 32), (7, 0, 9, 3, 64), (3, 300, 32, 8, 128), (1, 1000, 32, 32, 128)])
def test_attention(gpu, version, n_tok, pos, n_head, n_kv, hd):
    rng = np.random.default_rng(8)
    n_ctx = pos + n_tok + 5
    q = rng.standard_normal((n_tok, n_head, hd)).astype(np.float32)
    k = rng.standard_normal((n_kv, n_ctx, hd)).astype(np.float16)
    v = rng.standard_normal((n_kv, n_ctx, hd)).astype(np.float16)
    k[:, pos + n_tok:], v[:, pos + n_tok:] = 1e4, np.nan  # past the last position: never read
    qp, kp, vp, pp = gpu.put(q), gpu.put(k), gpu.put(v), gpu.put(np.array([pos], np.int32))
    out, scratch = gpu.zeros(4 * n_tok * n_head * hd), gpu.zeros(4 * n_tok * n_head * n_ctx)
    args = [("p", qp), ("p", kp), ("p", vp), ("p", out), ("p", scratch), ("i", n_tok), ("i", n_head), ("i", n_kv), ("i", hd),
            ("i", n_ctx), ("p", pp)]
    if version == "attention_v0":
        gpu.run(version, [cdiv(n_tok * n_head, 64)], [64], args)
    else:
        gpu.run(version, [n_tok * n_head], [128], args, shared=4 * hd)
    want = attention(q, k[:, :pos + n_tok], v[:, :pos + n_tok], pos)
    np.testing.assert_allclose(gpu.get(out, np.float32, want.shape), want, rtol=1e-5, atol=2e-6)


def test_copy_bandwidth_is_measured(gpu):
    """The benchmark's bandwidth figure: a device-to-device copy, timed by events (read + write bytes per second)."""
    n = 256 << 20
    a, b = gpu.zeros(n), gpu.zeros(n)
    ms = D.time_copies(b, a, n, 10)
    gbps = 2 * n * 10 / (ms / 1e3) / 1e9
    assert 50 < gbps < 20000, gbps
