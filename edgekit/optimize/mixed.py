"""Mixed precision by search over the sensitivity ranking: the fewest float nodes that fit.

Keeping the k most sensitive nodes in float; quality grows (nearly) monotonically with k and
speed falls, so the smallest k within budget is wanted. Galloping (k = 1, 2, 4, ...) finds a
passing k in log2(N) builds while the cheap, fast recipes come first; bisection between the last
failing and the first passing k then narrows it down.
"""

from __future__ import annotations

from collections.abc import Callable


def smallest_k(n: int, passes: Callable[[int], bool | None]) -> tuple[int | None, list[int]]:
    """(smallest k in 1..n with passes(k) True, the ks tried in order). passes(k) may return
    None (the time budget ran out): the search stops with what it has."""
    tried: list[int] = []
    lo, hi = 0, None  # lo fails (k = 0 is plain int8), hi passes
    k = 1
    while k <= n:
        tried.append(k)
        ok = passes(k)
        if ok is None:
            return None, tried
        if ok:
            hi = k
            break
        lo = k
        if k == n:
            break
        k = min(2 * k, n)
    if hi is None:
        return None, tried
    while hi - lo > 1:
        mid = (lo + hi) // 2
        tried.append(mid)
        ok = passes(mid)
        if ok is None:
            break
        if ok:
            hi = mid
        else:
            lo = mid
    return hi, tried
