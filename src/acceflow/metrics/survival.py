"""Survival outcomes: concordance (Harrell, Uno), time-dependent AUC, risk groups,
Kaplan-Meier summaries, the log-rank test and the hazard ratio per SD of a risk score.

Conventions used throughout
---------------------------
* ``time`` is the follow-up time in **days** (finite, > 0); ``event`` is 1 for an observed event
  and 0 for a censored follow-up. "Case index" in error messages is the 0-based position in the
  arrays (not a pandas index label).
* Risk scores are oriented so that a **higher score means a worse prognosis** (shorter survival),
  as a Cox linear predictor is.
* Comparable pairs and ties (all concordance measures here): a pair (i, j) is comparable when i
  has an event and j is known to outlive it, i.e. ``T_j > T_i``, or ``T_j == T_i`` with j censored
  (censored on the day of i's event, so still event-free that day). Two events on the same day are
  not comparable. A comparable pair with tied risk scores (exact equality) counts 1/2. These are
  Harrell's and lifelines' rules; Uno's C uses the same pairs and only changes the weights.
* Censoring distribution: ``G(t) = P(C > t)`` is the Kaplan-Meier estimate of the censoring times
  ("reverse" Kaplan-Meier), in which an event and a censoring on the same day are ordered event
  first (the subject with the event is not at risk of being censored that day), as in
  scikit-survival's ``CensoringDistributionEstimator``. ``G`` is estimated from the cohort being
  evaluated: it describes that cohort's follow-up, not a model parameter.
"""

from __future__ import annotations

import math
import numbers

import numpy as np
import pandas as pd
from lifelines import CoxPHFitter, KaplanMeierFitter
from lifelines.statistics import logrank_test as _lifelines_logrank_test
from lifelines.statistics import multivariate_logrank_test as _lifelines_multivariate_logrank_test
from lifelines.utils import concordance_index as _lifelines_concordance_index
from lifelines.utils import median_survival_times as _lifelines_median_survival_times

from acceflow.metrics._checks import check_alpha

__all__ = [
    "check_survival",
    "harrell_c",
    "uno_c",
    "c_index_ci",
    "c_index_difference",
    "time_dependent_auc",
    "risk_cutoffs",
    "assign_risk_groups",
    "risk_groups",
    "km_by_group",
    "logrank",
    "hazard_ratio_per_sd",
    "km_risk_at",
]

_CHUNK_ELEMENTS = 2_000_000  # bound on (rows x columns) of any pairwise block held in memory
_TIME_COL = "__acceflow_time__"
_EVENT_COL = "__acceflow_event__"


# --------------------------------------------------------------------------------------------
# validation helpers
# --------------------------------------------------------------------------------------------


def _first_bad(mask, values, what, requirement):
    bad = np.flatnonzero(mask)
    if bad.size:
        i = int(bad[0])
        more = f" ({bad.size} cases in all)" if bad.size > 1 else ""
        raise ValueError(f"{what} must be {requirement}; case index {i} has {what} {values[i]:g}{more}")


def check_survival(time, event):
    """Validate right-censored survival data.

    Parameters
    ----------
    time : array-like, shape (n,)
        Follow-up time of each case in days: time to the event, or to the last contact when
        censored. Must be finite and strictly positive.
    event : array-like, shape (n,)
        1 (or True) if the event was observed at ``time``, 0 (or False) if the follow-up was
        censored at ``time``.

    Returns
    -------
    time : numpy.ndarray of float, shape (n,)
        Follow-up times in days.
    event : numpy.ndarray of int, shape (n,)
        Event indicators coded 0/1.

    Raises
    ------
    ValueError
        If the arrays are not 1-D, are empty or differ in length; if ``time`` is non-numeric,
        non-finite or not positive (the message names the first offending case index); if
        ``event`` holds values other than 0/1; or if no case has an event.

    References
    ----------
    Kalbfleisch JD, Prentice RL. The Statistical Analysis of Failure Time Data, 2nd ed. Wiley; 2002.

    Examples
    --------
    >>> t, e = check_survival([120, 365.5, 30], [1, 0, True])
    >>> t.tolist(), e.tolist()
    ([120.0, 365.5, 30.0], [1, 0, 1])
    >>> check_survival([120, 0], [1, 0])
    Traceback (most recent call last):
    ...
    ValueError: time must be positive (days); case index 1 has time 0
    """
    t = np.asarray(time)
    e = np.asarray(event)
    if t.ndim != 1 or t.size == 0:
        raise ValueError(f"time must be a non-empty 1-D array of follow-up times (days); got shape {t.shape}")
    if e.shape != t.shape:
        raise ValueError(f"event must have the same shape as time {t.shape} (one entry per case); got {e.shape}")
    if t.dtype.kind not in "biuf":
        raise ValueError(f"time must be numeric (days); got dtype {t.dtype}")
    if e.dtype.kind not in "biuf":
        raise ValueError(f"event must be numeric 0/1 (or bool); got dtype {e.dtype}")
    t = t.astype(float)
    e = e.astype(float)
    _first_bad(~np.isfinite(t), t, "time", "finite (days)")
    _first_bad(t <= 0, t, "time", "positive (days)")
    _first_bad(~np.isin(e, (0.0, 1.0)), e, "event", "0 (censored) or 1 (event)")
    e = e.astype(int)
    if not e.any():
        raise ValueError(
            f"event has no 1: all {e.size} cases are censored; at least one observed event is needed"
        )
    return t, e


def _check_vector(values, n, name):
    v = np.asarray(values)
    if v.ndim != 1 or v.shape[0] != n:
        raise ValueError(f"{name} must be a 1-D array with one value per case ({n}); got shape {v.shape}")
    if v.dtype.kind not in "biuf":
        raise ValueError(f"{name} must be numeric; got dtype {v.dtype}")
    v = v.astype(float)
    _first_bad(~np.isfinite(v), v, name, "finite")
    return v


def _check_survival_risk(time, event, risk, name="risk"):
    t, e = check_survival(time, event)
    return t, e, _check_vector(risk, t.size, name)


def _check_groups(groups, n):
    g = np.asarray(groups)
    if g.ndim != 1 or g.shape[0] != n:
        raise ValueError(f"groups must be a 1-D array with one label per case ({n}); got shape {g.shape}")
    if g.dtype.kind == "f":
        _first_bad(~np.isfinite(g), g, "groups", "a finite label")
    elif g.dtype.kind == "O":
        missing = pd.isna(g)
        if missing.any():
            i = int(np.flatnonzero(missing)[0])
            raise ValueError(f"groups must not be missing; case index {i} has no group label")
    return g


def _label(value):
    return value.item() if isinstance(value, np.generic) else value


# --------------------------------------------------------------------------------------------
# censoring distribution and weighted concordance (vectorised over bootstrap replicates)
# --------------------------------------------------------------------------------------------


def _censoring_km(time, event, counts):
    """Reverse Kaplan-Meier G(t) = P(C > t) with case multiplicities.

    ``counts`` has shape (B, n): how often each case enters each of B (bootstrap) samples.
    Returns ``inv`` (n,), the index of each case's time among the sorted unique times, and
    ``g_right`` / ``g_left`` (B, K): G at the unique times (after the drop) and just before them.
    Events precede censorings on the same day (those with an event are not at risk of censoring).
    """
    uniq, inv = np.unique(time, return_inverse=True)
    order = np.argsort(time, kind="stable")
    sorted_time = time[order]
    starts = np.flatnonzero(np.r_[True, sorted_time[1:] != sorted_time[:-1]])
    c = counts[:, order]
    total = np.add.reduceat(c, starts, axis=1)
    events = np.add.reduceat(c * event[order], starts, axis=1)
    censored = total - events
    at_risk = np.cumsum(total[:, ::-1], axis=1)[:, ::-1]
    ratio = np.divide(censored, at_risk - events, out=np.zeros_like(censored), where=censored > 0)
    g_right = np.cumprod(1.0 - ratio, axis=1)
    g_left = np.hstack([np.ones((counts.shape[0], 1)), g_right[:, :-1]])
    return inv, g_right, g_left


def _uno_weights(time, event, counts):
    """1 / G(T_i-)^2 per replicate and case; 0 where the case is not in the replicate."""
    inv, _, g_left = _censoring_km(time, event, counts)
    g = g_left[:, inv]
    ok = (counts > 0) & (g > 0)
    return np.divide(1.0, g * g, out=np.zeros_like(g), where=ok)


def _concordance_sums(time, event, risk, counts, weights, tau=None):
    """Weighted concordance numerator and denominator for B replicates at once.

    ``counts`` and ``weights`` have shape (B, n). For replicate b:
    num_b = sum_ij m_bi m_bj w_bi comparable_ij [1(r_i > r_j) + 1/2 1(r_i == r_j)],
    den_b = sum_ij m_bi m_bj w_bi comparable_ij, with i restricted to events with T_i < tau.
    """
    rows = event == 1
    if tau is not None:
        rows &= time < tau
    rows = np.flatnonzero(rows)
    n_rep = counts.shape[0]
    num = np.zeros(n_rep)
    den = np.zeros(n_rep)
    censored = event == 0
    counts_t = counts.T
    step = max(1, _CHUNK_ELEMENTS // max(time.size, n_rep))
    for start in range(0, rows.size, step):
        r = rows[start : start + step]
        ti = time[r][:, None]
        ri = risk[r][:, None]
        comparable = (time[None, :] > ti) | ((time[None, :] == ti) & censored[None, :])
        score = np.where(risk[None, :] < ri, 1.0, np.where(risk[None, :] == ri, 0.5, 0.0))
        score *= comparable
        row_w = counts[:, r] * weights[:, r]
        num += np.einsum("br,rb->b", row_w, score @ counts_t)
        den += np.einsum("br,rb->b", row_w, comparable.astype(float) @ counts_t)
    return num, den


def _check_tau(tau, time):
    if tau is None:
        return None
    if not (isinstance(tau, numbers.Real) and math.isfinite(tau) and tau > 0):
        raise ValueError(f"tau must be a positive finite time in days (or None); got {tau!r}")
    if tau > time.max():
        raise ValueError(
            f"tau ({tau:g} days) exceeds the longest follow-up ({time.max():g} days): the censoring "
            f"survival G(tau) cannot be estimated there; choose tau <= {time.max():g}"
        )
    return float(tau)


# --------------------------------------------------------------------------------------------
# concordance
# --------------------------------------------------------------------------------------------


def harrell_c(time, event, risk):
    """Harrell's concordance index for a risk score (higher risk = shorter survival).

    Thin wrapper of ``lifelines.utils.concordance_index(time, -risk, event)``: lifelines expects
    scores that rise with survival time, so the risk score is negated.

    Tie handling (lifelines' rules): a pair is comparable when the shorter time is an event and the
    other case was followed longer, or was censored on the same day as the event; two events on the
    same day are not comparable; a comparable pair with exactly equal risk scores counts 1/2.

    Parameters
    ----------
    time : array-like, shape (n,)
        Follow-up times in days (> 0).
    event : array-like, shape (n,)
        1 = event observed, 0 = censored.
    risk : array-like, shape (n,)
        Risk score (e.g. a Cox linear predictor); higher means worse prognosis. Unitless.

    Returns
    -------
    float
        C in [0, 1]: the share of comparable pairs in which the case with the event had the higher
        risk. 0.5 = no discrimination.

    Raises
    ------
    ValueError
        If the survival data are invalid (see :func:`check_survival`), ``risk`` is not finite or of
        the wrong length, or no pair is comparable.

    References
    ----------
    Harrell FE, Califf RM, Pryor DB, Lee KL, Rosati RA. Evaluating the yield of medical tests.
    JAMA 1982;247(18):2543-2546.
    Harrell FE, Lee KL, Mark DB. Multivariable prognostic models: issues in developing models,
    evaluating assumptions and adequacy, and measuring and reducing errors. Stat Med
    1996;15(4):361-387.

    Examples
    --------
    >>> harrell_c([100, 200, 300, 400], [1, 1, 0, 1], [4.0, 1.0, 3.0, 2.0])
    0.6
    """
    t, e, r = _check_survival_risk(time, event, risk)
    try:
        return float(_lifelines_concordance_index(t, -r, e))
    except ZeroDivisionError:
        raise ValueError(
            "no comparable pair: every event is at or after the longest follow-up of the other cases"
        ) from None


def uno_c(time, event, risk, tau=None):
    """Uno's IPCW concordance statistic, truncated at ``tau``.

    .. math::

        C_\\tau = \\frac{\\sum_{i,j} \\Delta_i \\hat G(T_i-)^{-2} I(T_i < \\tau) P_{ij}
                     [I(r_i > r_j) + \\tfrac12 I(r_i = r_j)]}
                    {\\sum_{i,j} \\Delta_i \\hat G(T_i-)^{-2} I(T_i < \\tau) P_{ij}}

    where :math:`P_{ij}` marks comparable pairs (``T_j > T_i``, or ``T_j == T_i`` with j censored;
    see the module notes) and :math:`\\hat G` is the Kaplan-Meier estimate of the censoring
    survival function from the same data. :math:`\\hat G(T_i-) = \\hat P(C \\ge T_i)` is the
    probability that case i was still uncensored when its event happened, so the weights undo the
    over-representation of early events among comparable pairs and, unlike Harrell's C, the
    estimate does not depend on the censoring distribution (under independent censoring).
    scikit-survival's ``concordance_index_ipcw`` uses :math:`\\hat G(T_i)` instead; the two differ
    only when a censoring falls on the same day as an event.

    Parameters
    ----------
    time : array-like, shape (n,)
        Follow-up times in days (> 0).
    event : array-like, shape (n,)
        1 = event observed, 0 = censored.
    risk : array-like, shape (n,)
        Risk score; higher means worse prognosis. Unitless.
    tau : float, optional
        Truncation time in days: only events before ``tau`` enter the statistic. Uno et al. require
        ``G(tau) > 0`` (some follow-up must remain beyond ``tau``), so ``tau`` may not exceed the
        longest follow-up. ``None`` (default) means no truncation, i.e. tau = the longest follow-up;
        every weight :math:`\\hat G(T_i-)` is then positive, but late events can get large weights
        when little follow-up remains, so prefer a pre-specified clinical horizon (e.g. 5 years =
        1826 days) at which a fair share of cases is still followed.

    Returns
    -------
    float
        :math:`C_\\tau` in [0, 1]; 0.5 = no discrimination. Without censoring all weights are 1 and
        the untruncated value equals Harrell's C.

    Raises
    ------
    ValueError
        If the survival data or risk are invalid, ``tau`` is not positive or exceeds the longest
        follow-up, or no comparable pair has its event before ``tau``.

    References
    ----------
    Uno H, Cai T, Pencina MJ, D'Agostino RB, Wei LJ. On the C-statistics for evaluating overall
    adequacy of risk prediction procedures with censored survival data. Stat Med
    2011;30(10):1105-1117. doi:10.1002/sim.4154

    Examples
    --------
    >>> time = [1, 2, 3, 4, 5, 6]
    >>> event = [1, 0, 1, 1, 0, 1]
    >>> risk = [5, 3, 2, 4, 2, 0]
    >>> round(uno_c(time, event, risk), 6)      # Harrell's C is 0.85 here
    0.817073
    >>> round(uno_c(time, event, risk, tau=3.5), 6)
    0.758065
    """
    t, e, r = _check_survival_risk(time, event, risk)
    tau = _check_tau(tau, t)
    counts = np.ones((1, t.size))
    weights = _uno_weights(t, e, counts)
    num, den = _concordance_sums(t, e, r, counts, weights, tau)
    if den[0] <= 0:
        where = "" if tau is None else f" with the event before tau = {tau:g} days"
        raise ValueError(f"no comparable pair{where}: Uno's C is undefined")
    return float(num[0] / den[0])


def c_index_ci(time, event, risk, method="harrell", n_boot=1000, alpha=0.05, seed=0, tau=None, return_se=False):
    """Concordance index with a bootstrap percentile confidence interval.

    Cases are resampled with replacement ``n_boot`` times (seeded ``numpy.random.Generator``);
    for Uno's C the censoring distribution is re-estimated in every replicate. All replicates are
    evaluated at once from the case multiplicities (pairwise blocks times the count matrix), so the
    cost is O(n^2 * n_boot / BLAS speed) and memory stays bounded. Replicates without any
    comparable pair are dropped.

    Parameters
    ----------
    time : array-like, shape (n,)
        Follow-up times in days (> 0).
    event : array-like, shape (n,)
        1 = event observed, 0 = censored.
    risk : array-like, shape (n,)
        Risk score; higher means worse prognosis.
    method : {"harrell", "uno"}
        Harrell's C (:func:`harrell_c`) or Uno's C (:func:`uno_c`).
    n_boot : int
        Number of bootstrap replicates (>= 1; 1000 or more for reporting).
    alpha : float
        1 - confidence level of the two-sided interval.
    seed : int or None
        Seed of ``numpy.random.default_rng``.
    tau : float, optional
        Truncation time in days for ``method="uno"`` (see :func:`uno_c`); ignored for Harrell.
    return_se : bool
        Also return the bootstrap standard error (the SD, ddof 1, of the replicates), e.g. for
        pooling C across sites (:mod:`acceflow.metrics.meta_analysis`).

    Returns
    -------
    c : float
        Point estimate on the full data.
    low, high : float
        The ``alpha/2`` and ``1 - alpha/2`` percentiles of the bootstrap distribution.
    se : float
        Only with ``return_se``: the bootstrap standard error.

    Raises
    ------
    ValueError
        If ``method`` is unknown, ``n_boot`` < 1, ``alpha`` is not in (0, 1), the inputs are
        invalid, or no replicate yields a value.

    References
    ----------
    Efron B, Tibshirani RJ. An Introduction to the Bootstrap. Chapman & Hall; 1993 (percentile
    interval, ch. 13).
    Harrell FE, Lee KL, Mark DB. Stat Med 1996;15(4):361-387.
    Uno H, Cai T, Pencina MJ, D'Agostino RB, Wei LJ. Stat Med 2011;30(10):1105-1117.

    Examples
    --------
    >>> rng = np.random.default_rng(1)
    >>> risk = rng.normal(size=60)
    >>> time = rng.exponential(1000 * np.exp(-risk)) + 1
    >>> event = (rng.uniform(size=60) < 0.7).astype(int)
    >>> c, low, high = c_index_ci(time, event, risk, n_boot=200)
    >>> bool(low < c < high)
    True
    """
    if method not in ("harrell", "uno"):
        raise ValueError(f'method must be "harrell" or "uno"; got {method!r}')
    if not (isinstance(n_boot, numbers.Integral) and n_boot >= 1):
        raise ValueError(f"n_boot must be a positive integer (e.g. 1000); got {n_boot!r}")
    alpha = check_alpha(alpha)
    t, e, r = _check_survival_risk(time, event, risk)
    if method == "harrell":
        c = harrell_c(t, e, r)
        tau = None
    else:
        c = uno_c(t, e, r, tau=tau)
        tau = _check_tau(tau, t)
    stats = np.empty(n_boot)
    for start, counts in _resampled_counts(np.random.default_rng(seed), t.size, n_boot):
        b = counts.shape[0]
        weights = _uno_weights(t, e, counts) if method == "uno" else np.ones_like(counts)
        num, den = _concordance_sums(t, e, r, counts, weights, tau)
        stats[start : start + b] = np.divide(num, den, out=np.full(b, np.nan), where=den > 0)
    if np.isnan(stats).all():
        raise ValueError("no bootstrap replicate had a comparable pair; the cohort is too small")
    low, high = np.nanquantile(stats, [alpha / 2, 1 - alpha / 2])
    if return_se:
        return float(c), float(low), float(high), float(np.nanstd(stats, ddof=1))
    return float(c), float(low), float(high)


def _resampled_counts(rng, n: int, n_boot: int):
    """Case-resampling bootstrap as multiplicities: per chunk of replicates ``(start, counts)``, where
    ``counts[b, i]`` (float, shape (replicates in the chunk, n)) is how often case ``i`` is drawn in
    replicate ``start + b``; chunks hold at most ~``_CHUNK_ELEMENTS`` values."""
    chunk = max(1, _CHUNK_ELEMENTS // n)
    for start in range(0, n_boot, chunk):
        b = min(chunk, n_boot - start)
        idx = rng.integers(0, n, size=(b, n))
        yield start, np.bincount((np.arange(b)[:, None] * n + idx).ravel(), minlength=b * n).reshape(b, n).astype(float)


def c_index_difference(time, event, risk_a, risk_b, n_boot=1000, alpha=0.05, seed=0):
    """Harrell's C of two risk scores on the same cases, and their difference with a paired bootstrap.

    Each replicate resamples the cases once (with replacement, seeded ``numpy.random.Generator``,
    the same draws as :func:`c_index_ci` with this seed) and computes both concordances on it, so
    the interval of ``C_a - C_b`` keeps the correlation of two scores of the same patients
    (Efron & Tibshirani 1993, ch. 13, percentile interval). The two-sided p value is the
    bootstrap's ``2 * min(P*(D <= 0), P*(D >= 0))``, at most 1 (the percentile-interval inversion:
    the difference's CI excludes 0 at level alpha exactly when p < alpha, up to ties at 0).

    Parameters
    ----------
    time, event : array-like, shape (n,)
        Follow-up in days (> 0) and 1 = event / 0 = censored.
    risk_a, risk_b : array-like, shape (n,)
        Two risk scores of the same cases (higher = worse prognosis).
    n_boot : int
        Bootstrap replicates (>= 1).
    alpha : float
        1 - confidence level.
    seed : int or None

    Returns
    -------
    dict
        ``c_a``, ``c_b`` (Harrell's C on the full data, :func:`harrell_c`), ``difference``
        (``c_a - c_b``), ``ci_low``, ``ci_high`` (percentile interval of the difference),
        ``p_value``, ``n_boot`` (replicates with a comparable pair).

    Raises
    ------
    ValueError
        On invalid inputs (as :func:`c_index_ci`) or when no replicate has a comparable pair.

    References
    ----------
    Harrell FE, Lee KL, Mark DB. Stat Med 1996;15(4):361-387.
    Efron B, Tibshirani RJ. An Introduction to the Bootstrap. Chapman & Hall; 1993.
    Kang L, Chen W, Petrick NA, Gallas BD. Comparing two correlated C indices with right-censored
    survival outcome: a one-shot nonparametric approach. Stat Med 2015;34(4):685-703 (the
    U-statistic alternative to this bootstrap).
    """
    if not (isinstance(n_boot, numbers.Integral) and n_boot >= 1):
        raise ValueError(f"n_boot must be a positive integer (e.g. 1000); got {n_boot!r}")
    alpha = check_alpha(alpha)
    t, e, a = _check_survival_risk(time, event, risk_a, "risk_a")
    _, _, b = _check_survival_risk(time, event, risk_b, "risk_b")
    c_a, c_b = harrell_c(t, e, a), harrell_c(t, e, b)
    diffs = np.empty(n_boot)
    for start, counts in _resampled_counts(np.random.default_rng(seed), t.size, n_boot):
        k = counts.shape[0]
        ones = np.ones_like(counts)
        num_a, den = _concordance_sums(t, e, a, counts, ones)
        num_b, _ = _concordance_sums(t, e, b, counts, ones)
        diffs[start : start + k] = np.divide(num_a - num_b, den, out=np.full(k, np.nan), where=den > 0)
    diffs = diffs[~np.isnan(diffs)]
    if diffs.size == 0:
        raise ValueError("no bootstrap replicate had a comparable pair; the cohort is too small")
    low, high = np.quantile(diffs, [alpha / 2, 1 - alpha / 2])
    p = min(1.0, 2.0 * min(np.mean(diffs <= 0), np.mean(diffs >= 0)))
    return {"c_a": float(c_a), "c_b": float(c_b), "difference": float(c_a - c_b), "ci_low": float(low),
            "ci_high": float(high), "p_value": float(p), "n_boot": int(diffs.size)}


def time_dependent_auc(time, event, risk, horizons):
    """Cumulative/dynamic time-dependent AUC(t) with inverse probability of censoring weights.

    At each horizon t, *cases* are the cases with an event at or before t (``T_i <= t``, event) and
    *controls* those still followed after t (``T_j > t``). Cases censored before t are neither and
    are represented through the weights :math:`w_i = 1/\\hat G(T_i)` (Kaplan-Meier estimate of the
    censoring survival, evaluated right-continuously at the event time):

    .. math::

        \\widehat{AUC}(t) = \\frac{\\sum_i \\sum_j w_i I(T_i \\le t, \\Delta_i = 1) I(T_j > t)
                            [I(r_i > r_j) + \\tfrac12 I(r_i = r_j)]}
                           {\\sum_i w_i I(T_i \\le t, \\Delta_i = 1) \\cdot \\sum_j I(T_j > t)}

    This is the estimator of scikit-survival's ``cumulative_dynamic_auc`` with the censoring
    distribution estimated on the evaluated cohort. Without censoring it is the ordinary ROC AUC of
    the risk score for the outcome ``T <= t``.

    Parameters
    ----------
    time : array-like, shape (n,)
        Follow-up times in days (> 0).
    event : array-like, shape (n,)
        1 = event observed, 0 = censored.
    risk : array-like, shape (n,)
        Risk score; higher means worse prognosis. A time-specific predicted risk (e.g.
        ``1 - S(t | x)``) may be used; with a Cox model the linear predictor gives the same AUC.
    horizons : float or array-like, shape (k,)
        Horizons t in days. Each needs at least one case (an event at or before t) and one control
        (follow-up beyond t): ``earliest event time <= t < longest follow-up``.

    Returns
    -------
    numpy.ndarray of float, shape (k,)
        AUC(t) at each horizon, in the order given.

    Raises
    ------
    ValueError
        If the inputs are invalid or a horizon is not positive and finite, has no case or has no
        control (the message names the horizon).

    References
    ----------
    Uno H, Cai T, Tian L, Wei LJ. Evaluating prediction rules for t-year survivors with censored
    regression models. J Am Stat Assoc 2007;102(478):527-537.
    Hung H, Chiang CT. Estimation methods for time-dependent AUC models with survival data.
    Can J Stat 2010;38(1):8-26.

    Examples
    --------
    >>> time = [1, 2, 3, 4, 5, 6]
    >>> event = [1, 0, 1, 1, 0, 1]
    >>> risk = [5, 3, 2, 4, 2, 0]
    >>> time_dependent_auc(time, event, risk, [4]).round(6).tolist()
    [0.910714]
    """
    t, e, r = _check_survival_risk(time, event, risk)
    h = np.atleast_1d(np.asarray(horizons, dtype=float))
    if h.ndim != 1 or h.size == 0:
        raise ValueError(f"horizons must be a number or a non-empty 1-D array of days; got shape {h.shape}")
    _, g_right, _ = _censoring_km(t, e, np.ones((1, t.size)))
    inv = np.unique(t, return_inverse=True)[1]
    g_at_t = g_right[0, inv]
    first_event = t[e == 1].min()
    out = np.empty(h.size)
    for k, hz in enumerate(h):
        if not (np.isfinite(hz) and hz > 0):
            raise ValueError(f"horizons must be positive finite days; horizon {k} is {hz:g}")
        cases = (e == 1) & (t <= hz)
        controls = t > hz
        if not cases.any():
            raise ValueError(
                f"horizon {hz:g} days has no case (no event at or before it); the earliest event is "
                f"at {first_event:g} days"
            )
        if not controls.any():
            raise ValueError(
                f"horizon {hz:g} days has no control (nobody followed beyond it); the longest "
                f"follow-up is {t.max():g} days"
            )
        w = 1.0 / g_at_t[cases]
        ctrl = np.sort(r[controls])
        below = np.searchsorted(ctrl, r[cases], side="left")
        ties = np.searchsorted(ctrl, r[cases], side="right") - below
        out[k] = float(np.sum(w * (below + 0.5 * ties)) / (w.sum() * ctrl.size))
    return out


# --------------------------------------------------------------------------------------------
# risk groups, Kaplan-Meier, log-rank, hazard ratio
# --------------------------------------------------------------------------------------------


def risk_cutoffs(risk_train, quantiles=(0.5,)):
    """Risk-group cut-offs fixed on the training risk scores.

    Parameters
    ----------
    risk_train : array-like, shape (n_train,)
        Risk scores of the training (development) cohort.
    quantiles : sequence of float, shape (k,)
        Strictly increasing probabilities in (0, 1); (0.5,) = median split, (1/3, 2/3) = tertiles.

    Returns
    -------
    numpy.ndarray of float, shape (k,)
        Cut-offs on the risk scale (numpy's default linear-interpolation quantiles), to be stored
        with the frozen model and applied to new cohorts with :func:`assign_risk_groups`.

    Raises
    ------
    ValueError
        If the risk scores are not finite, the quantiles are not strictly increasing in (0, 1), or
        tied training scores make two cut-offs equal (an empty group).

    References
    ----------
    Royston P, Altman DG. External validation of a Cox prognostic model: principles and methods.
    BMC Med Res Methodol 2013;13:33.

    Examples
    --------
    >>> risk_cutoffs([1, 2, 3, 4, 5], quantiles=(0.5,)).tolist()
    [3.0]
    """
    r = np.asarray(risk_train)
    if r.ndim != 1 or r.size == 0:
        raise ValueError(f"risk_train must be a non-empty 1-D array; got shape {r.shape}")
    r = _check_vector(r, r.size, "risk_train")
    q = np.atleast_1d(np.asarray(quantiles, dtype=float))
    if q.ndim != 1 or q.size == 0 or not ((q > 0) & (q < 1)).all() or (np.diff(q) <= 0).any():
        raise ValueError(f"quantiles must be strictly increasing probabilities in (0, 1); got {q.tolist()}")
    cut = np.quantile(r, q)
    if (np.diff(cut) <= 0).any():
        raise ValueError(
            f"the training risk quantiles {q.tolist()} give tied cut-offs {cut.tolist()} (too many "
            "tied scores); use fewer groups"
        )
    return cut


def assign_risk_groups(risk, cutoffs):
    """Assign risk groups from fixed cut-offs.

    Parameters
    ----------
    risk : array-like, shape (n,)
        Risk scores of any cohort (higher = worse).
    cutoffs : array-like, shape (k,)
        Strictly increasing cut-offs, e.g. from :func:`risk_cutoffs` on the training cohort.

    Returns
    -------
    numpy.ndarray of int, shape (n,)
        Group index 0..k: the number of cut-offs strictly below the score (0 = lowest risk; a
        score equal to a cut-off goes to the lower group).

    Raises
    ------
    ValueError
        If scores or cut-offs are not finite, or the cut-offs are not strictly increasing.

    References
    ----------
    Royston P, Altman DG. BMC Med Res Methodol 2013;13:33.

    Examples
    --------
    >>> assign_risk_groups([0.1, 3.0, 7.5], [3.0, 5.0]).tolist()
    [0, 0, 2]
    """
    r = np.asarray(risk)
    if r.ndim != 1 or r.size == 0:
        raise ValueError(f"risk must be a non-empty 1-D array; got shape {r.shape}")
    r = _check_vector(r, r.size, "risk")
    cut = np.atleast_1d(np.asarray(cutoffs, dtype=float))
    if cut.ndim != 1 or cut.size == 0 or not np.isfinite(cut).all() or (np.diff(cut) <= 0).any():
        raise ValueError(f"cutoffs must be finite and strictly increasing; got {cut.tolist()}")
    return np.searchsorted(cut, r, side="left").astype(int)


def risk_groups(risk_train, risk, quantiles=(0.5,)):
    """Risk groups of new scores with cut-offs fixed at quantiles of the training scores.

    Shorthand for ``assign_risk_groups(risk, risk_cutoffs(risk_train, quantiles))``; keep the
    cut-offs from :func:`risk_cutoffs` with the model when the groups must be reproduced later.

    Parameters
    ----------
    risk_train : array-like, shape (n_train,)
        Risk scores of the training cohort (defines the cut-offs only).
    risk : array-like, shape (n,)
        Risk scores to group (may be the training scores themselves or an external cohort).
    quantiles : sequence of float, shape (k,)
        Strictly increasing probabilities in (0, 1).

    Returns
    -------
    numpy.ndarray of int, shape (n,)
        Group index 0..k (0 = lowest risk).

    Raises
    ------
    ValueError
        See :func:`risk_cutoffs` and :func:`assign_risk_groups`.

    References
    ----------
    Royston P, Altman DG. BMC Med Res Methodol 2013;13:33.
    Altman DG, Lausen B, Sauerbrei W, Schumacher M. Dangers of using "optimal" cutpoints in the
    evaluation of prognostic factors. J Natl Cancer Inst 1994;86(11):829-835.

    Examples
    --------
    >>> risk_groups([1, 2, 3, 4, 5], [0.5, 3.5, 10]).tolist()
    [0, 1, 1]
    """
    return assign_risk_groups(risk, risk_cutoffs(risk_train, quantiles))


def _median_or_none(value):
    value = float(value)
    return None if not math.isfinite(value) else value


def km_by_group(time, event, groups, alpha=0.05):
    """Kaplan-Meier estimates per group.

    Parameters
    ----------
    time : array-like, shape (n,)
        Follow-up times in days (> 0).
    event : array-like, shape (n,)
        1 = event observed, 0 = censored.
    groups : array-like, shape (n,)
        Group label of each case (e.g. from :func:`risk_groups`).
    alpha : float
        1 - confidence level of the pointwise intervals.

    Returns
    -------
    dict
        Keyed by group label (sorted), each value a dict with

        * ``n`` (int), ``events`` (int);
        * ``median`` (float, days, or None when the curve stays above 0.5: median not reached),
          ``median_ci_low`` / ``median_ci_high`` (days or None; times at which the confidence
          limits cross 0.5, Brookmeyer-Crowley type);
        * ``table`` (pandas.DataFrame, one row per distinct time starting at 0) with columns
          ``time`` (days), ``survival``, ``ci_lower``, ``ci_upper`` (lifelines' exponential
          Greenwood interval: Greenwood variance on the log(-log) scale), ``at_risk``, ``events``,
          ``censored``.

    Raises
    ------
    ValueError
        If the inputs are invalid or differ in length.

    References
    ----------
    Kaplan EL, Meier P. Nonparametric estimation from incomplete observations. J Am Stat Assoc
    1958;53(282):457-481.
    Greenwood M. The natural duration of cancer. Rep Public Health Med Subj 1926;33:1-26.
    Brookmeyer R, Crowley J. A confidence interval for the median survival time. Biometrics
    1982;38(1):29-41.

    Examples
    --------
    >>> km = km_by_group([10, 20, 30, 40], [1, 1, 0, 1], [0, 0, 1, 1])
    >>> km[0]["median"], km[1]["n"], km[0]["table"]["survival"].tolist()
    (10.0, 2, [1.0, 0.5, 0.0])
    """
    alpha = check_alpha(alpha)
    t, e = check_survival(time, event)
    g = _check_groups(groups, t.size)
    out = {}
    for label in np.unique(g):
        mask = g == label
        kmf = KaplanMeierFitter(alpha=alpha).fit(t[mask], e[mask])
        sf = kmf.survival_function_.iloc[:, 0]
        ci = kmf.confidence_interval_.reindex(sf.index)
        et = kmf.event_table.reindex(sf.index).fillna(0)
        med_ci = _lifelines_median_survival_times(kmf.confidence_interval_)
        table = pd.DataFrame(
            {
                "time": sf.index.to_numpy(dtype=float),
                "survival": sf.to_numpy(dtype=float),
                "ci_lower": ci.iloc[:, 0].to_numpy(dtype=float),
                "ci_upper": ci.iloc[:, 1].to_numpy(dtype=float),
                "at_risk": et["at_risk"].to_numpy(dtype=int),
                "events": et["observed"].to_numpy(dtype=int),
                "censored": et["censored"].to_numpy(dtype=int),
            }
        )
        out[_label(label)] = {
            "n": int(mask.sum()),
            "events": int(e[mask].sum()),
            "median": _median_or_none(kmf.median_survival_time_),
            "median_ci_low": _median_or_none(med_ci.iloc[0, 0]),
            "median_ci_high": _median_or_none(med_ci.iloc[0, 1]),
            "table": table,
        }
    return out


def logrank(time, event, groups):
    """Log-rank test of equal survival across groups.

    Two groups: ``lifelines.statistics.logrank_test``; three or more:
    ``lifelines.statistics.multivariate_logrank_test`` (the k-group chi-square test, k - 1 df).

    Parameters
    ----------
    time : array-like, shape (n,)
        Follow-up times in days (> 0).
    event : array-like, shape (n,)
        1 = event observed, 0 = censored.
    groups : array-like, shape (n,)
        Group label of each case; at least two distinct labels.

    Returns
    -------
    dict
        ``statistic`` (chi-square), ``p_value``, ``df`` (k - 1), ``test`` (name of the lifelines
        function used) and ``groups`` (the sorted labels).

    Raises
    ------
    ValueError
        If the inputs are invalid or there are fewer than two groups.

    References
    ----------
    Mantel N. Evaluation of survival data and two new rank order statistics arising in its
    consideration. Cancer Chemother Rep 1966;50(3):163-170.
    Peto R, Peto J. Asymptotically efficient rank invariant test procedures. J R Stat Soc A
    1972;135(2):185-207.

    Examples
    --------
    >>> res = logrank([5, 8, 12, 50, 60, 70], [1, 1, 1, 1, 0, 1], [1, 1, 1, 0, 0, 0])
    >>> res["test"], res["df"], bool(res["p_value"] < 0.05)
    ('logrank_test', 1, True)
    """
    t, e = check_survival(time, event)
    g = _check_groups(groups, t.size)
    labels = np.unique(g)
    if labels.size < 2:
        raise ValueError(f"the log-rank test needs at least two groups; got only {labels.tolist()}")
    if labels.size == 2:
        a, b = g == labels[0], g == labels[1]
        res = _lifelines_logrank_test(t[a], t[b], event_observed_A=e[a], event_observed_B=e[b])
        test = "logrank_test"
    else:
        res = _lifelines_multivariate_logrank_test(t, g, e)
        test = "multivariate_logrank_test"
    return {
        "statistic": float(res.test_statistic),
        "p_value": float(res.p_value),
        "df": int(labels.size - 1),
        "test": test,
        "groups": [_label(v) for v in labels],
    }


def hazard_ratio_per_sd(time, event, risk, alpha=0.05, sd=None):
    """Hazard ratio per standard deviation of a risk score (univariable Cox model).

    Fits an unpenalised Cox model (lifelines, Efron ties) of ``risk / sd``. For an external cohort
    pass the training SD as ``sd`` so that "per SD" means the same on both cohorts.

    Parameters
    ----------
    time : array-like, shape (n,)
        Follow-up times in days (> 0).
    event : array-like, shape (n,)
        1 = event observed, 0 = censored.
    risk : array-like, shape (n,)
        Risk score (higher = worse).
    alpha : float
        1 - confidence level of the Wald interval.
    sd : float, optional
        SD to scale by (e.g. of the training risk scores). Default: the sample SD (ddof=1) of
        ``risk``.

    Returns
    -------
    dict
        ``hr`` (hazard ratio per SD), ``ci_low``, ``ci_high`` (Wald interval), ``p_value`` (Wald
        test of HR = 1), ``sd`` (the SD used, in risk-score units), ``n``, ``events``.

    Raises
    ------
    ValueError
        If the inputs are invalid, ``sd`` is not positive and finite, or ``risk`` is constant.

    References
    ----------
    Cox DR. Regression models and life-tables. J R Stat Soc B 1972;34(2):187-220.
    Royston P, Altman DG. External validation of a Cox prognostic model: principles and methods.
    BMC Med Res Methodol 2013;13:33.

    Examples
    --------
    >>> res = hazard_ratio_per_sd([5, 8, 12, 50, 60, 70, 30, 40], [1, 1, 1, 1, 0, 1, 1, 0],
    ...                           [3.0, 0.5, 2.0, 2.5, 0.1, 0.0, 1.5, 1.0])
    >>> bool(res["hr"] > 1)
    True
    """
    alpha = check_alpha(alpha)
    t, e, r = _check_survival_risk(time, event, risk)
    if sd is None:
        if t.size < 2 or np.ptp(r) == 0:
            raise ValueError("risk is constant (or a single case): its SD is 0, no hazard ratio per SD")
        sd = float(np.std(r, ddof=1))
    elif not (isinstance(sd, numbers.Real) and math.isfinite(sd) and sd > 0):
        raise ValueError(f"sd must be a positive finite number (the training SD of the risk score); got {sd!r}")
    if np.ptp(r) == 0:
        raise ValueError("risk is constant: no hazard ratio can be estimated")
    df = pd.DataFrame({"risk_per_sd": r / float(sd), _TIME_COL: t, _EVENT_COL: e})
    cph = CoxPHFitter(alpha=alpha).fit(df, duration_col=_TIME_COL, event_col=_EVENT_COL)
    coef = float(cph.params_["risk_per_sd"])
    low, high = cph.confidence_intervals_.loc["risk_per_sd"].to_numpy(dtype=float)
    return {
        "hr": math.exp(coef),
        "ci_low": math.exp(low),
        "ci_high": math.exp(high),
        "p_value": float(cph.summary.loc["risk_per_sd", "p"]),
        "sd": float(sd),
        "n": int(t.size),
        "events": int(e.sum()),
    }


def km_risk_at(time, event, t, alpha=0.05):
    """Observed cumulative risk by ``t`` days, 1 - S_KM(t), with its confidence interval.

    Parameters
    ----------
    time : array-like, shape (n,)
        Follow-up times in days (> 0).
    event : array-like, shape (n,)
        1 = event observed, 0 = censored.
    t : float
        Horizon in days, 0 < t <= longest follow-up.
    alpha : float
        1 - confidence level.

    Returns
    -------
    risk : float
        1 - S(t) from the Kaplan-Meier step function (value at the last distinct time <= t).
    low, high : float
        1 - upper and 1 - lower limits of lifelines' pointwise interval for S(t) (Greenwood
        variance, log(-log) transform).

    Raises
    ------
    ValueError
        If the inputs are invalid or ``t`` is not positive or lies beyond the longest follow-up.

    References
    ----------
    Kaplan EL, Meier P. J Am Stat Assoc 1958;53(282):457-481.
    Greenwood M. Rep Public Health Med Subj 1926;33:1-26.
    Kalbfleisch JD, Prentice RL. The Statistical Analysis of Failure Time Data, 2nd ed. Wiley; 2002.

    Examples
    --------
    >>> risk, low, high = km_risk_at([100, 200, 300, 400], [1, 1, 0, 1], 250)
    >>> risk, bool(low < risk < high)
    (0.5, True)
    """
    alpha = check_alpha(alpha)
    tt, e = check_survival(time, event)
    if not (isinstance(t, numbers.Real) and math.isfinite(t) and t > 0):
        raise ValueError(f"t must be a positive finite horizon in days; got {t!r}")
    if t > tt.max():
        raise ValueError(
            f"t = {t:g} days lies beyond the longest follow-up ({tt.max():g} days); the Kaplan-Meier "
            "estimate is not defined there"
        )
    kmf = KaplanMeierFitter(alpha=alpha).fit(tt, e)
    timeline = kmf.survival_function_.index.to_numpy(dtype=float)
    i = int(np.searchsorted(timeline, t, side="right") - 1)
    s = float(kmf.survival_function_.iloc[i, 0])
    lower, upper = kmf.confidence_interval_.iloc[i].to_numpy(dtype=float)
    return 1.0 - s, 1.0 - upper, 1.0 - lower
