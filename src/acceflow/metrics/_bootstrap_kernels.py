"""Compiled (numba) kernels of the bootstrap AUC: one pass over each replicate's drawn indices.

Imported lazily by :func:`acceflow.metrics.discrimination.bootstrap_auc_ci`, only for problems
large enough to repay numba's start-up (importing numba and loading the compiled kernels from
numba's on-disk cache takes about 0.3-0.7 s per process; the first compilation about 1 s more).

Both kernels return, per replicate, ``S = sum_j (C[lo_j] + C[hi_j])`` over the drawn members ``j``
of the looked-up class, where ``C[k]`` is the number of drawn members of the cumulated ("ref")
class among the ``k`` lowest of that class (sorted scores) and ``lo_j``/``hi_j`` are the numbers
of ref members strictly below / up to member ``j``'s score. ``S`` is twice the Mann-Whitney count
(ties 1/2) of the (ref below looked-up) pairs, an exact integer; the caller turns it into the AUC.
Per replicate the work is one scatter of the ref draws into an (n_ref + 1)-vector of counts kept
in cache, one cumulative sum over it, and one gather per looked-up draw: O(n) with n the
replicate size, and no (replicates x n) intermediate array.
"""

from __future__ import annotations

import numpy as np
from numba import njit


def _jit(fn):
    """``numba.njit(nogil=True)`` with the on-disk cache where numba finds a writable place for it."""
    try:
        return njit(nogil=True, cache=True)(fn)
    except RuntimeError:  # no writable cache location (read-only install and home): compile per process
        return njit(nogil=True)(fn)


@_jit
def twice_u_stratified(idx_ref, idx_other, rank, lo, hi, ties, out):  # pragma: no cover - compiled
    """Stratified replicates: ``idx_ref`` (B, n_ref) and ``idx_other`` (B, n_other) index draws.

    Indices and tables are unsigned (no wrap-around test per look-up). ``rank`` (n_ref,) maps a ref member to its position among the sorted ref scores; ``lo``, ``hi``
    (n_other,) as in the module docstring; ``ties`` is ``(lo != hi).any()``. Writes ``S`` to
    ``out`` (B,) int64.
    """
    n_rows, n_ref = idx_ref.shape
    n_other = idx_other.shape[1]
    cum = np.empty(n_ref + 1, np.int64)
    for r in range(n_rows):
        cum[:] = 0
        for i in range(n_ref):
            cum[rank[idx_ref[r, i]] + 1] += 1
        for k in range(1, n_ref + 1):
            cum[k] += cum[k - 1]
        s = 0
        if ties:
            for j in range(n_other):
                t = idx_other[r, j]
                s += cum[lo[t]] + cum[hi[t]]
        else:
            for j in range(n_other):
                s += cum[lo[idx_other[r, j]]]
            s *= 2
        out[r] = s


@_jit
def twice_u_joint(idx, slot, lo, hi, n_ref, out, count_ref):  # pragma: no cover - compiled
    """Non-stratified replicates: ``idx`` (B, n) index draws into all n cases, without branches.

    ``slot`` (n,) is ``1 +`` a member's position among the sorted ref scores, or ``n_ref + 1``
    (``n_ref`` the size of the ref class) for a member of the looked-up class, whose draws are
    thus counted in a spare last cell; ``lo``, ``hi`` (n,) as in the module docstring for the
    looked-up members and 0 for the ref ones (``C[0] = 0``, so they add nothing). Writes ``S`` to
    ``out`` (B,) int64 and the number of drawn ref members to ``count_ref`` (B,) int64.
    """
    n_rows, n = idx.shape
    cum = np.empty(n_ref + 2, np.int64)
    for r in range(n_rows):
        cum[:] = 0
        for i in range(n):
            cum[slot[idx[r, i]]] += 1
        count_ref[r] = n - cum[n_ref + 1]
        for k in range(1, n_ref + 1):
            cum[k] += cum[k - 1]
        s = 0
        for j in range(n):
            t = idx[r, j]
            s += cum[lo[t]] + cum[hi[t]]
        out[r] = s
