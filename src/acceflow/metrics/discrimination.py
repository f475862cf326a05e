"""Discrimination of a binary-outcome marker: ROC AUC with DeLong and bootstrap intervals.

The AUC is the Mann-Whitney probability ``P(score_case > score_control) + 0.5 P(tie)``, with
"case" meaning ``y_true == 1``. Unlike R's pROC (``direction = "auto"``) the direction is never
flipped: a marker that is lower in cases gets an AUC below 0.5.
"""

from __future__ import annotations

import os

import numpy as np
import pandas as pd
from scipy import stats
from sklearn.metrics import roc_curve

from acceflow.metrics._checks import check_alpha

__all__ = [
    "check_binary_outcome",
    "delong_roc_variance",
    "delong_ci",
    "delong_test",
    "bootstrap_auc_ci",
    "roc_curve_points",
    "brier_score",
    "log_loss",
]

_BOOT_CHUNK_ELEMENTS = 2_000_000  # bound on replicates x cases held in memory at once


def check_binary_outcome(
    y_true, values=None, name="y_score", *, probabilities=False, require_both=True, what="AUC"
):
    """Validate a binary outcome and (optionally) a matching vector of scores.

    Parameters
    ----------
    y_true : array-like, shape (n,)
        Outcome coded 0/1 (or bool).
    values : array-like, shape (n,), optional
        Scores or predicted probabilities for the same cases.
    name : str
        Name of ``values`` used in error messages.
    probabilities : bool
        If True, ``values`` must lie in [0, 1].
    require_both : bool
        If True, both outcomes must be present.
    what : str
        Name of the statistic that needs both outcomes (for the error message).

    Returns
    -------
    y : numpy.ndarray of int, shape (n,)
    values : numpy.ndarray of float, shape (n,), or None if ``values`` was None.

    Raises
    ------
    ValueError
        If the inputs are not 1-D, are empty, have different lengths, contain non-finite values or
        labels other than 0/1, probabilities outside [0, 1], or (``require_both``) a single class.

    Examples
    --------
    >>> y, s = check_binary_outcome([0, 1, 1], [0.2, 0.7, 0.9])
    >>> y.tolist(), s.tolist()
    ([0, 1, 1], [0.2, 0.7, 0.9])
    """
    y = np.asarray(y_true)
    if y.ndim != 1 or y.size == 0:
        raise ValueError(f"y_true must be a non-empty 1-D array; got shape {y.shape}")
    if y.dtype.kind not in "biuf":
        raise ValueError(f"y_true must be numeric 0/1 (or bool); got dtype {y.dtype}")
    labels = np.unique(y)
    if not np.isin(labels, [0, 1]).all():
        raise ValueError(f"y_true must contain only 0 and 1; got values {labels[:10].tolist()}")
    y = y.astype(int)
    if require_both and labels.size < 2:
        raise ValueError(
            f"y_true has a single class (all {int(labels[0])}): {what} is undefined; "
            "the cohort needs both outcomes"
        )
    if values is None:
        return y, None
    v = np.asarray(values, dtype=float)
    if v.shape != y.shape:
        raise ValueError(
            f"{name} must have the same shape as y_true {y.shape}; got {v.shape}"
        )
    if not np.isfinite(v).all():
        bad = int((~np.isfinite(v)).sum())
        raise ValueError(f"{name} must be finite; it contains {bad} NaN/inf values")
    if probabilities and (v.min() < 0 or v.max() > 1):
        raise ValueError(
            f"{name} must be probabilities in [0, 1]; got range [{v.min()}, {v.max()}]"
        )
    return y, v


def _structural_components(y, scores):
    """DeLong structural components by midranks (Sun & Xu 2014).

    ``scores`` has shape (k, N); returns ``auc`` (k,), ``v10`` (k, m cases) and ``v01``
    (k, n controls).
    """
    pos, neg = scores[:, y == 1], scores[:, y == 0]
    m, n = pos.shape[1], neg.shape[1]
    tx = stats.rankdata(pos, axis=1)
    ty = stats.rankdata(neg, axis=1)
    tz = stats.rankdata(np.hstack([pos, neg]), axis=1)
    auc = (tz[:, :m].sum(axis=1) - m * (m + 1) / 2) / (m * n)
    v10 = (tz[:, :m] - tx) / n  # per case: share of controls below it (ties count 1/2)
    v01 = 1.0 - (tz[:, m:] - ty) / m  # per control: share of cases above it (ties count 1/2)
    return auc, v10, v01


def _check_two_per_class(y):
    m, n = int(y.sum()), int((1 - y).sum())
    if m < 2 or n < 2:
        raise ValueError(
            f"the DeLong variance needs at least 2 cases and 2 controls; got {m} cases, {n} controls"
        )


def delong_roc_variance(y_true, y_score):
    """AUC and its DeLong variance, by the fast midrank algorithm.

    Parameters
    ----------
    y_true : array-like, shape (n,)
        Outcome coded 0/1; both classes, at least 2 of each.
    y_score : array-like, shape (n,)
        Marker value or predicted probability (any monotone scale); higher means "case".

    Returns
    -------
    auc : float
        Area under the ROC curve, in [0, 1].
    var : float
        DeLong estimate of var(AUC), ``S10/m + S01/n`` with ``S10``, ``S01`` the sample variances
        (ddof=1) of the structural components of the m cases and n controls.

    Raises
    ------
    ValueError
        On invalid input (see :func:`check_binary_outcome`) or fewer than 2 cases or controls.

    References
    ----------
    DeLong ER, DeLong DM, Clarke-Pearson DL (1988). Comparing the areas under two or more
    correlated receiver operating characteristic curves: a nonparametric approach.
    Biometrics 44(3):837-845.
    Sun X, Xu W (2014). Fast implementation of DeLong's algorithm for comparing the areas under
    correlated receiver operating characteristic curves. IEEE Signal Process Lett 21(11):1389-1393.

    Examples
    --------
    >>> delong_roc_variance([0, 0, 1, 1], [0.1, 0.4, 0.35, 0.8])
    (0.75, 0.125)
    """
    y, s = check_binary_outcome(y_true, y_score)
    _check_two_per_class(y)
    auc, v10, v01 = _structural_components(y, s[None, :])
    var = v10.var(axis=1, ddof=1) / v10.shape[1] + v01.var(axis=1, ddof=1) / v01.shape[1]
    return float(auc[0]), float(var[0])


def delong_ci(y_true, y_score, alpha=0.05):
    """AUC with a DeLong confidence interval, as R's pROC ``ci.auc(method = "delong")``.

    The interval is ``AUC +/- z_{1-alpha/2} * SE`` with the bounds truncated to [0, 1].

    Parameters
    ----------
    y_true : array-like, shape (n,)
        Outcome coded 0/1.
    y_score : array-like, shape (n,)
        Marker value; higher means "case".
    alpha : float
        1 - confidence level (0.05 gives a 95% CI).

    Returns
    -------
    auc, low, high : float
        AUC and the lower/upper confidence bounds, all in [0, 1].

    Raises
    ------
    ValueError
        On invalid input, ``alpha`` outside (0, 1), or fewer than 2 cases or controls.

    References
    ----------
    DeLong ER et al. (1988) Biometrics 44:837-845. Robin X et al. (2011) pROC: an open-source
    package for R and S+ to analyze and compare ROC curves. BMC Bioinformatics 12:77.

    Examples
    --------
    >>> auc, low, high = delong_ci([0, 0, 1, 1], [0.1, 0.4, 0.35, 0.8])
    >>> round(auc, 2), round(low, 3), high
    (0.75, 0.057, 1.0)
    """
    check_alpha(alpha)
    auc, var = delong_roc_variance(y_true, y_score)
    half = stats.norm.ppf(1 - alpha / 2) * np.sqrt(var)
    return auc, float(max(0.0, auc - half)), float(min(1.0, auc + half))


def delong_test(y_true, score_a, score_b):
    """DeLong test for the difference of two correlated AUCs (same cases, two markers).

    The variance of ``AUC_a - AUC_b`` is taken from the differences of the two markers'
    structural components, which equals ``var_a + var_b - 2 cov_ab`` of DeLong et al.

    Parameters
    ----------
    y_true : array-like, shape (n,)
        Outcome coded 0/1.
    score_a, score_b : array-like, shape (n,)
        The two markers measured on the same n cases.

    Returns
    -------
    dict
        ``auc_a``, ``auc_b``, ``diff`` (``auc_a - auc_b``), ``se`` (of the difference), ``z`` and
        the two-sided ``p_value``; plain floats. When ``se == 0`` (e.g. identical markers) and
        ``diff == 0``, ``z = 0`` and ``p_value = 1``.

    Raises
    ------
    ValueError
        On invalid input or fewer than 2 cases or controls.

    References
    ----------
    DeLong ER et al. (1988) Biometrics 44:837-845. Sun X, Xu W (2014) IEEE Signal Process Lett
    21:1389-1393.

    Examples
    --------
    >>> r = delong_test([0, 0, 1, 1], [0.1, 0.4, 0.35, 0.8], [0.1, 0.4, 0.35, 0.8])
    >>> r["diff"], r["p_value"]
    (0.0, 1.0)
    """
    y, a = check_binary_outcome(y_true, score_a, "score_a")
    _, b = check_binary_outcome(y_true, score_b, "score_b")
    _check_two_per_class(y)
    auc, v10, v01 = _structural_components(y, np.vstack([a, b]))
    d10, d01 = v10[0] - v10[1], v01[0] - v01[1]
    var = d10.var(ddof=1) / d10.size + d01.var(ddof=1) / d01.size
    diff = float(auc[0] - auc[1])
    se = float(np.sqrt(max(var, 0.0)))
    if se > 0:
        z = diff / se
    else:
        z = 0.0 if diff == 0 else float(np.sign(diff) * np.inf)
    p = float(2 * stats.norm.sf(abs(z)))
    return {"auc_a": float(auc[0]), "auc_b": float(auc[1]), "diff": diff, "se": se, "z": float(z),
            "p_value": p}


def _auc_rows(labels, scores):
    """Rank-based AUC of each row; ``labels`` (B, N) or (N,) bool, ``scores`` (B, N).

    Rows with a single class get NaN.
    """
    labels = np.broadcast_to(labels, scores.shape)
    ranks = stats.rankdata(scores, axis=1)
    m = labels.sum(axis=1).astype(float)
    n = scores.shape[1] - m
    with np.errstate(invalid="ignore", divide="ignore"):
        auc = ((ranks * labels).sum(axis=1) - m * (m + 1) / 2) / (m * n)
    auc[(m == 0) | (n == 0)] = np.nan
    return auc


_SUBBLOCK_ELEMENTS = 100_000  # replicates x cases counted at once: keeps the counts in cache


def _draw_dtype(n):
    """Integer type of the index draws: int32 gives the same stream and values as int64 below 2**31.

    numpy's bounded integers use the buffered 32-bit Lemire method for every range below 2**32
    whatever the output type, so ``rng.integers(0, n, size, dtype=np.int32)`` consumes the
    generator exactly as the default int64 call does (tests/test_discrimination.py checks it).
    """
    return np.int32 if n < 2**31 else np.int64


def _counts(idx, n):
    """Per-row multiplicities of ``idx`` (B, k) with values in [0, n): int array (B, n)."""
    b = idx.shape[0]
    key = np.add(idx, (n * np.arange(b, dtype=np.intp))[:, None], dtype=np.intp)
    return np.bincount(key.ravel(), minlength=b * n).reshape(b, n)


class _PairCounter:
    """Mann-Whitney counts of resampled case-control pairs from multiplicities, O(n) per replicate.

    Scores are sorted once (``pos`` cases, ``neg`` controls). For replicate multiplicities
    ``w`` (B, n1) of the cases and ``v`` (B, n0) of the controls, :meth:`twice_u` returns
    ``2 U`` with ``U = sum_i sum_j w_i v_j K(pos_i, neg_j)``, ``K = 1`` (case above), 1/2 (tie),
    0, as exact integers. The class with fewer members is cumulated: with the controls sorted,
    ``sum_j v_j K(pos_i, neg_j) = (C[lo_i] + C[hi_i]) / 2`` where ``C`` is the cumulative sum of
    the sorted control multiplicities and ``lo_i``/``hi_i`` the numbers of controls below and
    up to ``pos_i`` (found once by binary search); symmetrically with the cases cumulated,
    ``2 U = 2 W V - sum_j v_j (C[lo_j] + C[hi_j])``.
    """

    def __init__(self, pos, neg):
        self.swap = neg.size > pos.size  # cumulate the cases, look the controls up
        ref, other = (pos, neg) if self.swap else (neg, pos)
        self.order = np.argsort(ref, kind="stable")
        self.rank = np.empty(ref.size, np.intp)  # position of each ref member among the sorted ones
        self.rank[self.order] = np.arange(ref.size)
        ref_sorted = ref[self.order]
        self.lo = np.searchsorted(ref_sorted, other, side="left")
        self.hi = np.searchsorted(ref_sorted, other, side="right")
        self.ties = bool((self.lo != self.hi).any())
        self.tables = None  # rank, lo, hi as uint64 for the compiled kernels
        self.joint = None  # per-member look-up tables of the compiled non-stratified kernel

    def twice_u(self, w, v):
        ref, other = (w, v) if self.swap else (v, w)
        cum = np.zeros((ref.shape[0], ref.shape[1] + 1), np.int64)
        np.cumsum(ref[:, self.order], axis=1, out=cum[:, 1:])
        if self.ties:
            s = np.einsum("ij,ij->i", other, cum[:, self.lo] + cum[:, self.hi])
        else:
            s = 2 * np.einsum("ij,ij->i", other, cum[:, self.lo])
        if self.swap:
            s = 2 * w.sum(axis=1) * v.sum(axis=1) - s
        return s


def _auc_stratified(pairs, idx_pos, idx_neg):
    """AUC of stratified replicates (index draws (B, n1) and (B, n0)) without re-ranking."""
    n1, n0 = idx_pos.shape[1], idx_neg.shape[1]
    sub = max(1, _SUBBLOCK_ELEMENTS // (n1 + n0))
    out = np.empty(idx_pos.shape[0])
    for s in range(0, out.size, sub):
        e = min(out.size, s + sub)
        out[s:e] = pairs.twice_u(_counts(idx_pos[s:e], n1), _counts(idx_neg[s:e], n0)) / (2 * n1 * n0)
    return out


def _auc_joint(pairs, is_case, idx):
    """AUC of non-stratified replicates (index draws (B, n) into all cases); NaN for one class."""
    n = idx.shape[1]
    case_cols, control_cols = np.flatnonzero(is_case), np.flatnonzero(~is_case)
    sub = max(1, _SUBBLOCK_ELEMENTS // n)
    out = np.empty(idx.shape[0])
    for s in range(0, out.size, sub):
        e = min(out.size, s + sub)
        c = _counts(idx[s:e], n)
        w, v = c[:, case_cols], c[:, control_cols]
        pairs_n = (w.sum(axis=1) * v.sum(axis=1)).astype(float)
        with np.errstate(invalid="ignore", divide="ignore"):
            auc = pairs.twice_u(w, v) / (2 * pairs_n)
        auc[pairs_n == 0] = np.nan
        out[s:e] = auc
    return out


# replicates x cases from which bootstrap_auc_ci scores replicates with the compiled kernels of
# _bootstrap_kernels: below it numpy is faster than numba's start-up (about 0.3-0.7 s per process)
_KERNEL_MIN_ELEMENTS = 10_000_000


def _unsigned(idx):
    """The same non-negative indices viewed as unsigned integers (no copy)."""
    return idx.view(np.uint32 if idx.dtype.itemsize == 4 else np.uint64)


def _twice_u_compiled(pairs, is_case, idx_pos=None, idx_neg=None, idx=None):
    """``(2 U, W, V)`` per replicate, int64 (B,) each, by the numba kernels.

    ``U`` is the Mann-Whitney count of (case above control) pairs with ties 1/2, ``W`` and ``V``
    the numbers of cases and controls drawn; ``idx_pos``/``idx_neg`` (stratified draws) or ``idx``
    (joint draws into all cases, ``is_case`` (n,) bool their classes).
    """
    from acceflow.metrics import _bootstrap_kernels as kernels

    # unsigned indices and tables: numba then skips the negative-index wrap-around test of every
    # look-up (about 25% of the kernel's time); the draws are non-negative, so a view is exact
    if idx is None:
        idx_ref, idx_other = (idx_pos, idx_neg) if pairs.swap else (idx_neg, idx_pos)
        if pairs.tables is None:
            pairs.tables = tuple(a.astype(np.uint64) for a in (pairs.rank, pairs.lo, pairs.hi))
        s = np.empty(idx_ref.shape[0], np.int64)
        kernels.twice_u_stratified(_unsigned(idx_ref), _unsigned(idx_other), *pairs.tables, pairs.ties, s)
        w = np.full(s.size, idx_pos.shape[1], np.int64)
        v = np.full(s.size, idx_neg.shape[1], np.int64)
    else:
        n_ref = pairs.rank.size
        if pairs.joint is None:  # per member of all cases: count slot, lo, hi (see the kernel)
            is_ref = is_case if pairs.swap else ~is_case
            slot = np.full(is_case.size, n_ref + 1, np.uint64)
            slot[is_ref] = pairs.rank + 1
            lo, hi = np.zeros(is_case.size, np.uint64), np.zeros(is_case.size, np.uint64)
            lo[~is_ref], hi[~is_ref] = pairs.lo, pairs.hi
            pairs.joint = slot, lo, hi
        s, drawn_ref = np.empty(idx.shape[0], np.int64), np.empty(idx.shape[0], np.int64)
        kernels.twice_u_joint(_unsigned(idx), *pairs.joint, np.uint64(n_ref), s, drawn_ref)
        w = drawn_ref if pairs.swap else idx.shape[1] - drawn_ref
        v = idx.shape[1] - w
    if pairs.swap:
        s = 2 * w * v - s
    return s, w, v


_PREFETCH = True  # draw chunk k+1 in a worker thread while chunk k is scored (compiled path only)


def _overlap_draws():
    """Whether the draws may run in a second thread: prefetching on and more than one CPU usable."""
    if not _PREFETCH:
        return False
    try:
        return len(os.sched_getaffinity(0)) > 1  # the CPUs this process may run on (SLURM, taskset)
    except AttributeError:  # platforms without sched_getaffinity
        return (os.cpu_count() or 1) > 1


def _draws(rng, n_boot, chunk, n_pos, n_neg, stratified):
    """The index draws of the bootstrap, chunk by chunk, in their fixed order.

    Yields ``(idx_pos (b, n_pos), idx_neg (b, n_neg))`` (stratified) or ``(idx (b, n),)`` with
    ``b = min(chunk, replicates left)``; int32 where the range allows (same stream as int64).
    """
    n_all = n_pos + n_neg
    for start in range(0, n_boot, chunk):
        b = min(chunk, n_boot - start)
        if stratified:
            yield (rng.integers(0, n_pos, (b, n_pos), dtype=_draw_dtype(n_pos)),
                   rng.integers(0, n_neg, (b, n_neg), dtype=_draw_dtype(n_neg)))
        else:
            yield (rng.integers(0, n_all, (b, n_all), dtype=_draw_dtype(n_all)),)


def _prefetched(items):
    """Iterate ``items`` with the next one computed in a worker thread while the caller works.

    The draws of chunk k+1 (numpy releases the GIL while drawing) then overlap the scoring of chunk
    k (the numba kernels release it too); the items still come from one thread, in order.
    """
    from concurrent.futures import ThreadPoolExecutor

    done = object()
    with ThreadPoolExecutor(1, thread_name_prefix="acceflow-bootstrap-draws") as pool:
        ahead = pool.submit(next, items, done)
        while True:
            item = ahead.result()
            if item is done:
                return
            ahead = pool.submit(next, items, done)
            yield item


def _bootstrap_replicates(y, s, n_boot, seed, stratified, compiled=None):
    """AUC of each bootstrap replicate, (n_boot,) float, NaN for one-class (joint) replicates.

    ``y`` (n,) int 0/1 and ``s`` (n,) float are validated inputs. ``compiled`` chooses the engine
    (None: the numba kernels from ``_KERNEL_MIN_ELEMENTS`` replicate x case values on); both give
    the same floats.
    """
    rng = np.random.default_rng(seed)
    pos, neg = s[y == 1], s[y == 0]
    n_all = s.size
    pairs = _PairCounter(pos, neg)
    chunk = max(1, _BOOT_CHUNK_ELEMENTS // n_all)
    if compiled is None:
        compiled = n_boot * n_all >= _KERNEL_MIN_ELEMENTS
    is_case = y == 1
    draws = _draws(rng, n_boot, chunk, pos.size, neg.size, stratified)
    out = []
    for drawn in (_prefetched(draws) if compiled and _overlap_draws() else draws):
        if stratified:
            idx_pos, idx_neg = drawn
            if compiled:
                twice_u, w, v = _twice_u_compiled(pairs, is_case, idx_pos, idx_neg)
                out.append(twice_u / (2 * w * v))
            else:
                out.append(_auc_stratified(pairs, idx_pos, idx_neg))
        else:
            (idx,) = drawn
            if compiled:
                twice_u, w, v = _twice_u_compiled(pairs, is_case, idx=idx)
                pairs_n = (w * v).astype(float)
                with np.errstate(invalid="ignore", divide="ignore"):
                    auc = twice_u / (2 * pairs_n)
                auc[pairs_n == 0] = np.nan
                out.append(auc)
            else:
                out.append(_auc_joint(pairs, is_case, idx))
    return np.concatenate(out)


def bootstrap_auc_ci(y_true, y_score, n_boot=2000, alpha=0.05, seed=0, stratified=True):
    """AUC with a percentile bootstrap confidence interval.

    The replicates' indices are drawn with numpy (``default_rng(seed).integers``) in chunks of
    about 2 million (replicate, case) values, always in the same order, so a seed fixes the
    replicates whatever the engine below. No replicate is re-ranked: the scores are sorted once
    (O(n log n)); each replicate's Mann-Whitney count is then the sum, over the drawn members of
    the larger class, of the cumulative counts of the drawn members of the smaller class below
    (and, for ties, up to) their scores: O(n) per replicate, O(n_boot x n) in all, exact integer
    arithmetic (ties count 1/2), so the AUCs equal those of ranking each resample.

    Two engines compute the same integers. Below ``1e7`` replicate x case values (n = 5,000 at
    2,000 replicates) numpy does (bincounts of the multiplicities on sub-blocks that stay in cache,
    cumulative sums, a dot product). From there numba kernels (``_bootstrap_kernels``) do one pass
    over each replicate's draws with the counts in cache, about 2x faster, and the draws of the
    next chunk run in a worker thread while a chunk is scored when more than one CPU is usable.
    The draws are then most of the time (about 45 ms of 70 ms CPU at n = 10,000 and 2,000
    replicates; the first compiled call in a process adds about 0.3 s to import numba and load
    the kernels from its cache). ``benchmarks/bootstrap_auc.py`` measures both against a loop over
    scikit-learn on the same replicates.

    Parameters
    ----------
    y_true : array-like, shape (n,)
        Outcome coded 0/1.
    y_score : array-like, shape (n,)
        Marker value; higher means "case".
    n_boot : int
        Number of bootstrap replicates.
    alpha : float
        1 - confidence level.
    seed : int
        Seed of ``numpy.random.default_rng``; the result is deterministic for a given seed.
    stratified : bool
        If True (as pROC's default), cases and controls are resampled separately so every
        replicate keeps the observed numbers of each. If False, cases are resampled jointly and
        replicates that happen to contain a single class are discarded.

    Returns
    -------
    auc, low, high : float
        AUC of the original sample and the ``alpha/2`` and ``1 - alpha/2`` percentiles
        (numpy's linear interpolation, R's quantile type 7) of the replicate AUCs.

    Raises
    ------
    ValueError
        On invalid input, ``n_boot < 1`` or ``alpha`` outside (0, 1).

    References
    ----------
    Efron B, Tibshirani RJ (1993). An Introduction to the Bootstrap. Chapman & Hall.
    Carpenter J, Bithell J (2000). Bootstrap confidence intervals: when, which, what?
    Stat Med 19:1141-1164. Robin X et al. (2011) BMC Bioinformatics 12:77.

    Examples
    --------
    >>> auc, low, high = bootstrap_auc_ci([0, 0, 0, 1, 1, 1], [1, 2, 4, 3, 5, 6], n_boot=200)
    >>> round(auc, 3), low <= auc <= high
    (0.889, True)
    """
    y, s = check_binary_outcome(y_true, y_score)
    check_alpha(alpha)
    if int(n_boot) != n_boot or n_boot < 1:
        raise ValueError(f"n_boot must be a positive integer; got {n_boot}")
    n_boot = int(n_boot)
    boot = _bootstrap_replicates(y, s, n_boot, seed, stratified)
    boot = boot[np.isfinite(boot)]
    auc = float(_auc_rows(y.astype(bool), s[None, :])[0])
    if boot.size == 0:
        return auc, float("nan"), float("nan")
    low, high = np.percentile(boot, [100 * alpha / 2, 100 * (1 - alpha / 2)])
    return auc, float(low), float(high)


def roc_curve_points(y_true, y_score):
    """Points of the empirical ROC curve (wraps :func:`sklearn.metrics.roc_curve`).

    Parameters
    ----------
    y_true : array-like, shape (n,)
        Outcome coded 0/1.
    y_score : array-like, shape (n,)
        Marker value; higher means "case".

    Returns
    -------
    pandas.DataFrame
        Columns ``fpr`` (1 - specificity), ``tpr`` (sensitivity) and ``threshold`` (a case is
        called positive when ``y_score >= threshold``; the first row has ``threshold = inf``,
        the point (0, 0)). Collinear points are dropped (``drop_intermediate=True``).

    Raises
    ------
    ValueError
        On invalid input or a single class.

    References
    ----------
    Fawcett T (2006). An introduction to ROC analysis. Pattern Recogn Lett 27:861-874.

    Examples
    --------
    >>> roc_curve_points([0, 0, 1, 1], [0.1, 0.4, 0.35, 0.8])["tpr"].tolist()
    [0.0, 0.5, 0.5, 1.0, 1.0]
    """
    y, s = check_binary_outcome(y_true, y_score, what="the ROC curve")
    fpr, tpr, thr = roc_curve(y, s)
    return pd.DataFrame({"fpr": fpr, "tpr": tpr, "threshold": thr})


def brier_score(y_true, prob):
    """Brier score, the mean squared difference between predicted probability and outcome.

    Parameters
    ----------
    y_true : array-like, shape (n,)
        Outcome coded 0/1 (a single class is allowed).
    prob : array-like, shape (n,)
        Predicted probabilities in [0, 1].

    Returns
    -------
    float
        ``mean((prob - y_true)**2)``, in [0, 1]; lower is better.

    Raises
    ------
    ValueError
        On invalid input or probabilities outside [0, 1].

    References
    ----------
    Brier GW (1950). Verification of forecasts expressed in terms of probability.
    Mon Weather Rev 78(1):1-3.

    Examples
    --------
    >>> round(brier_score([0, 1], [0.2, 0.6]), 6)
    0.1
    """
    y, p = check_binary_outcome(y_true, prob, "prob", probabilities=True, require_both=False)
    return float(np.mean((p - y) ** 2))


def log_loss(y_true, prob, eps=1e-15):
    """Logarithmic loss (mean negative Bernoulli log-likelihood, natural log).

    Parameters
    ----------
    y_true : array-like, shape (n,)
        Outcome coded 0/1 (a single class is allowed).
    prob : array-like, shape (n,)
        Predicted probabilities in [0, 1]; clipped to ``[eps, 1 - eps]``.
    eps : float
        Clipping constant that keeps the loss finite for probabilities of exactly 0 or 1.

    Returns
    -------
    float
        ``-mean(y log p + (1 - y) log(1 - p))`` in nats; lower is better.

    Raises
    ------
    ValueError
        On invalid input or probabilities outside [0, 1].

    References
    ----------
    Good IJ (1952). Rational decisions. J R Stat Soc B 14(1):107-114.

    Examples
    --------
    >>> round(log_loss([0, 1], [0.5, 0.5]), 4)
    0.6931
    """
    y, p = check_binary_outcome(y_true, prob, "prob", probabilities=True, require_both=False)
    p = np.clip(p, eps, 1 - eps)
    return float(-np.mean(y * np.log(p) + (1 - y) * np.log1p(-p)))


def cohort_metrics(y_true, prob, alpha=0.05):
    """Discrimination and overall accuracy of one cohort's predicted probabilities.

    Parameters
    ----------
    y_true : array-like of shape (n_samples,)
        Observed outcome, 0/1.
    prob : array-like of shape (n_samples,)
        Predicted probability of the outcome.
    alpha : float
        1 - confidence level of the AUC interval.

    Returns
    -------
    dict
        ``n``, ``n_events``, ``prevalence``, ``auc``, ``auc_ci_low``, ``auc_ci_high`` (DeLong,
        Sun & Xu 2014 algorithm, truncated to [0, 1] as R's pROC reports it), ``auc_se``,
        ``auc_ci_method``, ``brier``, ``log_loss``, ``mean_probability``; plain Python numbers.

    Raises
    ------
    ValueError
        When the cohort has a single outcome class (AUC undefined).
    """
    y = np.asarray(y_true, dtype=float)
    p = np.asarray(prob, dtype=float)
    auc, low, high = delong_ci(y, p, alpha=alpha)
    _, var = delong_roc_variance(y, p)
    return {
        "n": int(len(y)),
        "n_events": int(y.sum()),
        "prevalence": float(y.mean()),
        "auc": float(auc),
        "auc_ci_low": float(low),
        "auc_ci_high": float(high),
        "auc_se": float(np.sqrt(var)),
        "auc_ci_method": f"DeLong {100 * (1 - alpha):g}% (Sun & Xu 2014)",
        "brier": float(brier_score(y, p)),
        "log_loss": float(log_loss(y, p)),
        "mean_probability": float(p.mean()),
    }
