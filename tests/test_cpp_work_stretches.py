"""How the decoding team shares a step's rows (cpp_core/src/model/work_stretches.h).

Every thread owns a stretch of the units and takes pieces from its front, a quarter of what is left each
time; a thread done with its own stretch takes the back half of another's. Whatever the timing, every unit
must be computed exactly once, in whole multiples of `align`, or the logits would be wrong.
"""
import pytest

from cpp_core import _core


def quarter_pieces(begin: int, end: int, align: int) -> list[tuple[int, int]]:
    """The rule written out in Python: the owner's pieces of its stretch [begin, end) when nobody steals."""
    pieces = []
    while begin < end:
        want = -(-(end - begin) // 4)         # a quarter, rounded up
        stop = min(end, begin + -(-want // align) * align)  # in whole aligns
        pieces.append((begin, stop))
        begin = stop
    return pieces


def assert_each_unit_once(pieces, n: int, align: int):
    covered = sorted((b, e) for _t, b, e in pieces)
    assert all(b < e for b, e in covered)
    assert all(b % align == 0 and (e % align == 0 or e == n) for b, e in covered)
    at = 0
    for b, e in covered:  # sorted and touching: no gap, no overlap
        assert b == at
        at = e
    assert at == n


def test_one_thread_takes_quarters_of_what_is_left():
    got = [(b, e) for _t, b, e in _core.share_step(10, 1, 1)]
    assert got == quarter_pieces(0, 10, 1) == [(0, 3), (3, 5), (5, 7), (7, 8), (8, 9), (9, 10)]
    got = [(b, e) for _t, b, e in _core.share_step(576, 16, 1)]
    assert got == quarter_pieces(0, 576, 16)


@pytest.mark.parametrize("n, align, n_threads", [(15, 1, 2), (576, 16, 2), (1536, 16, 3), (49152, 64, 4), (5, 16, 3),
                                                  (0, 16, 2), (7, 1, 8)])
def test_every_unit_exactly_once(n, align, n_threads):
    for _ in range(20):  # the timing differs from run to run; the coverage may not
        assert_each_unit_once(_core.share_step(n, align, n_threads), n, align)


@pytest.mark.parametrize("n_threads", [2, 3])
def test_a_slow_thread_is_helped_not_waited_for(n_threads):
    # thread 0 sleeps 50 ms before each piece: the others finish their stretches and take the back halves
    # of its stretch, piece after piece, so it ends with at most one piece instead of its quarter-pieces
    n, align = 576, 16
    pieces = _core.share_step(n, align, n_threads, slow_thread=0, slow_us=50_000)
    assert_each_unit_once(pieces, n, align)
    assert sum(1 for t, _b, _e in pieces if t == 0) <= 1
    own = quarter_pieces(0, n // n_threads // align * align, align)
    assert len(own) > 1  # without the stealing, thread 0 would have taken several


def test_bad_arguments_raise():
    for kwargs in (dict(n=-1, align=16, n_threads=2), dict(n=1 << 31, align=16, n_threads=2),
                   dict(n=10, align=0, n_threads=2), dict(n=10, align=1, n_threads=0)):
        with pytest.raises(ValueError):
            _core.share_step(**kwargs)
