# --8<-- [start:intro]
"""Lesson 13b: choosing k-quant scales by weighted least squares (llama.cpp's search, no imatrix).

Rounding x / d to the nearest integer is only optimal if d is right. Given the integers
q_i, the best scale (and min) are a least-squares fit, and given the scale the best
integers are the rounded ones. llama.cpp alternates: try a few candidate scales around
the obvious one (max|x| / nmax), round with each, refit the scale by least squares,
and keep the candidate with the smallest *weighted* error sum_i w_i (d q_i + m - x_i)^2.

Three searches, each run on many groups at once. Arrays are laid out [n, G]: element
index first, G groups (sub-blocks) across, so that a sum over a group's elements is a
loop over n rows in order, exactly as llama.cpp's C loop adds them in float32 (that
order is what makes our blocks bit-identical to llama.cpp's).

- make_qx_quants: symmetric (x ~ d*q), q in -nmax..nmax-1, weights x^2, 19 candidates
  iscale = -(nmax + 0.1 k) / max for k = -9..9 (Q6_K).
- make_q3_quants: symmetric, weights x^2, then coordinate descent: change one q_i at a
  time if that raises (sum w x q)^2 / (sum w q^2) (= lowers the error at the best scale) (Q3_K).
- make_qkx2_quants: asymmetric (x ~ d*q - m), q in 0..nmax, candidates
  iscale = (nmax + rmin + rdelta k) / (max - min) for k = 0..nstep, each refit by 2-variable
  least squares for (d, m), error squared (Q4_K, Q5_K) or absolute (Q2_K).

Worked example of the least-squares refit (check by hand): x = [0.9, 2.1], q = [1, 2], w = 1:
d = sum(x q) / sum(q q) = (0.9 + 4.2) / 5 = 1.02, error = (1.02 - 0.9)^2 + (2.04 - 2.1)^2 = 0.018,
better than d = max/nmax = 2.1 / 2 = 1.05: error = 0.15^2 + 0 = 0.0225.
"""
# --8<-- [end:intro]
import numpy as np

GROUP_MAX_EPS = np.float32(1e-15)  # below this a group counts as all zeros


# ---- float32 arithmetic exactly as llama.cpp's C does it ----
# --8<-- [start:helpers]
def nearest_int(v):
    """Round to nearest (ties to even) with llama.cpp's trick: adding 1.5 * 2^23 pushes the
    fraction out of a float32's 23 mantissa bits, so the low mantissa bits are the rounded int.
    Exact like C even for huge inputs (they come out as garbage, as in C, then get clipped)."""
    bits = (np.asarray(v, dtype=np.float32) + np.float32(12582912.0)).view(np.int32)
    return ((bits & 0x007FFFFF) - 0x00400000).astype(np.float32)  # float32 holding an int


def round_small(v, out=None):
    """nearest_int for values known to be small (|v| < 2^22), where it equals rint: one numpy pass."""
    return np.rint(v, out=out)


def seq_sum(a):
    """[n, G] -> [G]: sum of each column in row order, in float32, like `s += a[i]` in C.
    (numpy's reduce over a non-contiguous axis adds row after row; over a contiguous one
    it would sum pairwise, and the last bits would differ.)"""
    return np.add.reduce(a, axis=0, dtype=np.float32)


def signed_absmax(x):
    """[n, G] -> [G]: the value of largest |x| with its sign, first one on ties."""
    i = np.abs(x).argmax(axis=0)[None, :]
    return np.take_along_axis(x, i, axis=0)[0]
# --8<-- [end:helpers]


# ---- symmetric: make_qx_quants (Q6_K) ----
# --8<-- [start:qx]
def make_qx_quants(x, nmax):
    """x [n, G] -> (scale [G], L [n, G] uint8 in 0..2*nmax-1); x ~ scale * (L - nmax)."""
    x = np.asarray(x, dtype=np.float32)
    top = signed_absmax(x)                                     # [G]
    zero = np.abs(top) < GROUP_MAX_EPS
    top = np.where(zero, np.float32(1), top)                   # (masked out at the end)
    w = x * x                                                  # [n, G] weights: big values matter more
    wx = w * x

    def try_scale(iscale):                                     # [G] -> (l [n, G], sum w x l, sum w l l)
        l = iscale * x                                         # [n, G], |l| <= nmax + 1
        l = np.clip(round_small(l, out=l), -nmax, nmax - 1, out=l)
        wl = w * l
        return l, seq_sum(wx * l), seq_sum(np.multiply(wl, l, out=wl))

    l, sumlx, suml2 = try_scale(np.float32(-nmax) / top)
    best_l = l
    scale = np.where(suml2 != 0, sumlx / np.where(suml2 != 0, suml2, 1), np.float32(0))
    best = scale * sumlx                                       # = (sum w x l)^2 / sum w l^2
    for k in [k for k in range(-9, 10) if k != 0]:
        iscale = -(np.float32(nmax) + np.float32(0.1) * np.float32(k)) / top
        l, sumlx, suml2 = try_scale(iscale)
        better = (suml2 > 0) & (sumlx * sumlx > best * suml2)
        new_scale = sumlx / np.where(suml2 > 0, suml2, 1)
        best_l = np.where(better, l, best_l)
        scale = np.where(better, new_scale, scale)
        best = np.where(better, scale * sumlx, best)
    L = np.where(zero, 0, best_l + nmax).astype(np.uint8)
    return np.where(zero, np.float32(0), scale), L
# --8<-- [end:qx]


# ---- symmetric with coordinate descent: make_q3_quants (Q3_K) ----
# --8<-- [start:q3]
def make_q3_quants(x, nmax):
    """x [n, G] -> (scale [G], L [n, G] uint8 in 0..2*nmax-1); x ~ scale * (L - nmax)."""
    x = np.asarray(x, dtype=np.float32)
    top = signed_absmax(x)
    zero = np.abs(top) < GROUP_MAX_EPS
    top = np.where(zero, np.float32(1), top)
    l = np.clip(nearest_int((np.float32(-nmax) / top) * x), -nmax, nmax - 1)  # [n, G]
    w = x * x
    wx = w * x
    sumlx, suml2 = seq_sum(wx * l), seq_sum(w * l * l)         # [G]
    active = ~zero
    for _ in range(5):                                         # up to 5 sweeps over the elements
        changed = np.zeros_like(active)
        for i in range(x.shape[0]):                            # one element at a time, in order
            slx = sumlx - wx[i] * l[i]                         # the sums without element i
            sl2 = suml2 - w[i] * l[i] * l[i]
            new_l = np.clip(nearest_int(x[i] * sl2 / np.where(slx > 0, slx, 1)), -nmax, nmax - 1)
            new_slx = slx + wx[i] * new_l                      # ... and with its new value
            new_sl2 = sl2 + w[i] * new_l * new_l
            take = active & (slx > 0) & (new_l != l[i]) & (new_sl2 > 0) \
                & (new_slx * new_slx * suml2 > sumlx * sumlx * new_sl2)  # (sum w x l)^2 / sum w l^2 grows
            l[i] = np.where(take, new_l, l[i])
            sumlx = np.where(take, new_slx, sumlx)
            suml2 = np.where(take, new_sl2, suml2)
            changed |= take
        active &= changed
        if not active.any():
            break
    scale = np.where(suml2 > 0, sumlx / np.where(suml2 > 0, suml2, 1), np.float32(0))
    L = np.where(zero, 0, l + nmax).astype(np.uint8)
    return np.where(zero, np.float32(0), scale), L
# --8<-- [end:q3]


# ---- asymmetric: make_qkx2_quants (Q2_K, Q4_K, Q5_K) ----
# --8<-- [start:qkx2]
def make_qkx2_quants(x, w, nmax, rmin, rdelta, nstep, use_mad):
    """x, w [n, G] -> (scale [G], the_min [G], L [n, G] uint8 in 0..nmax); x ~ scale * L - the_min."""
    x, w = np.asarray(x, dtype=np.float32), np.asarray(w, dtype=np.float32)
    lo = np.minimum(x.min(axis=0), np.float32(0))             # [G]: the min is never above 0
    hi = x.max(axis=0)
    flat = hi == lo
    sum_w, sum_x = seq_sum(w), seq_sum(w * x)

    def round_clip(iscale, lo):                                # l = clamp(round(iscale * (x - lo)), 0, nmax)
        l = np.subtract(x, lo)                                 # [n, G]
        l *= iscale
        round_small(l, out=l)
        np.maximum(l, np.float32(0), out=l)
        return np.minimum(l, np.float32(nmax), out=l)

    def error(scale, the_lo, l):                               # weighted error of x ~ scale * l + the_lo
        diff = scale * l
        diff += the_lo
        diff -= x
        if use_mad:
            np.abs(diff, out=diff)
        else:
            diff *= diff
        diff *= w
        return seq_sum(diff)

    iscale = np.float32(nmax) / np.where(flat, np.float32(1), hi - lo)
    scale = np.float32(1) / iscale
    best_err = error(scale, lo, round_clip(iscale, lo))
    best_iscale, best_lo = iscale, lo                          # enough to rebuild the winning L at the end
    for k in range(nstep + 1 if nstep >= 1 else 0):            # (nstep 0 means: no search at all)
        # the candidates start from the best min found so far (llama.cpp updates `min` as it goes)
        iscale = (np.float32(rmin) + np.float32(rdelta) * np.float32(k) + np.float32(nmax)) \
            / np.where(flat, np.float32(1), hi - lo)
        l = round_clip(iscale, lo)                             # [n, G]
        wl = w * l
        sum_l, sum_xl = seq_sum(wl), seq_sum(np.multiply(wl, x))
        sum_l2 = seq_sum(np.multiply(wl, l, out=wl))
        D = sum_w * sum_l2 - sum_l * sum_l                     # 2x2 normal equations for (scale, min)
        safe_D = np.where(D > 0, D, 1)
        this_scale = (sum_w * sum_xl - sum_x * sum_l) / safe_D
        this_lo = (sum_l2 * sum_x - sum_l * sum_xl) / safe_D
        above = this_lo > 0                                    # a positive min is not allowed: refit with min = 0
        this_scale = np.where(above, sum_xl / np.where(sum_l2 > 0, sum_l2, 1), this_scale)
        this_lo = np.where(above, np.float32(0), this_lo)
        err = error(this_scale, this_lo, l)
        better = (D > 0) & (err < best_err) & ~flat
        best_iscale = np.where(better, iscale, best_iscale)
        best_lo = np.where(better, lo, best_lo)
        best_err = np.where(better, err, best_err)
        scale = np.where(better, this_scale, scale)
        lo = np.where(better, this_lo, lo)
    L = np.where(flat, 0, round_clip(best_iscale, best_lo)).astype(np.uint8)
    return np.where(flat, np.float32(0), scale), -lo, L
# --8<-- [end:qkx2]
