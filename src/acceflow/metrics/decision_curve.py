"""Decision curve analysis: net benefit of a risk model across threshold probabilities.

A patient is treated (called positive) when the predicted probability is at or above the
threshold probability ``pt``. Net benefit counts true positives and penalises false positives by
the odds of the threshold, ``pt / (1 - pt)`` (Vickers & Elkin 2006).
"""

from __future__ import annotations

import numpy as np
import pandas as pd

from acceflow.metrics.discrimination import check_binary_outcome

__all__ = [
    "net_benefit",
    "net_benefit_treat_all",
    "decision_curve",
    "useful_threshold_range",
]


def _thresholds(thresholds):
    t = np.atleast_1d(np.asarray(thresholds, dtype=float))
    if t.ndim != 1 or t.size == 0:
        raise ValueError(f"thresholds must be a non-empty 1-D array; got shape {t.shape}")
    if not (np.isfinite(t).all() and (t > 0).all() and (t < 1).all()):
        raise ValueError(
            "thresholds must be probabilities strictly inside (0, 1) "
            "(pt/(1-pt) is undefined at 1); "
            f"got range [{np.nanmin(t)}, {np.nanmax(t)}]"
        )
    return t


def net_benefit(y_true, prob, thresholds):
    """Net benefit of treating patients whose predicted risk is >= each threshold.

    ``NB(pt) = TP/n - FP/n * pt / (1 - pt)``, with TP and FP counted among patients with
    ``prob >= pt``. Computed for all thresholds at once by binary search (O((n + T) log n)).

    Parameters
    ----------
    y_true : array-like, shape (n,)
        Outcome coded 0/1.
    prob : array-like, shape (n,)
        Predicted probabilities in [0, 1].
    thresholds : float or array-like, shape (T,)
        Threshold probabilities, each strictly inside (0, 1).

    Returns
    -------
    numpy.ndarray, shape (T,)
        Net benefit at each threshold, in units of true positives per patient (at most the
        prevalence).

    Raises
    ------
    ValueError
        On invalid outcome/probabilities or thresholds outside (0, 1).

    References
    ----------
    Vickers AJ, Elkin EB (2006). Decision curve analysis: a novel method for evaluating prediction
    models. Med Decis Making 26(6):565-574.

    Examples
    --------
    >>> net_benefit([0, 1, 1, 0], [0.1, 0.9, 0.6, 0.4], [0.2, 0.5]).round(4).tolist()
    [0.4375, 0.5]
    """
    y, p = check_binary_outcome(y_true, prob, "prob", probabilities=True, require_both=False)
    t = _thresholds(thresholds)
    pos, neg = np.sort(p[y == 1]), np.sort(p[y == 0])
    tp = pos.size - np.searchsorted(pos, t, side="left")  # cases with prob >= pt
    fp = neg.size - np.searchsorted(neg, t, side="left")
    n = y.size
    return tp / n - fp / n * t / (1 - t)


def net_benefit_treat_all(y_true, thresholds):
    """Net benefit of treating everyone: ``prevalence - (1 - prevalence) * pt / (1 - pt)``.

    Parameters
    ----------
    y_true : array-like, shape (n,)
        Outcome coded 0/1.
    thresholds : float or array-like, shape (T,)
        Threshold probabilities, each strictly inside (0, 1).

    Returns
    -------
    numpy.ndarray, shape (T,)
        Net benefit of the treat-all strategy at each threshold.

    Raises
    ------
    ValueError
        On an invalid outcome or thresholds outside (0, 1).

    References
    ----------
    Vickers AJ, Elkin EB (2006). Med Decis Making 26(6):565-574.

    Examples
    --------
    >>> net_benefit_treat_all([0, 1, 1, 0], [0.2, 0.5]).tolist()
    [0.375, 0.0]
    """
    y, _ = check_binary_outcome(y_true, require_both=False)
    t = _thresholds(thresholds)
    prev = y.mean()
    return prev - (1 - prev) * t / (1 - t)


def decision_curve(y_true, prob, thresholds=None):
    """Decision curve of a model against the treat-all and treat-none strategies.

    Parameters
    ----------
    y_true : array-like, shape (n,)
        Outcome coded 0/1; both classes.
    prob : array-like, shape (n,)
        Predicted probabilities in [0, 1].
    thresholds : array-like, shape (T,), optional
        Threshold probabilities strictly inside (0, 1); default 0.01, 0.02, ..., 0.99.

    Returns
    -------
    pandas.DataFrame, T rows
        ``threshold``, ``net_benefit_model``, ``net_benefit_all``, ``net_benefit_none`` (0),
        ``standardized_net_benefit_model`` (NB / prevalence, in [.., 1]) and
        ``net_interventions_avoided_per_100`` (``(NB_model - NB_all) / (pt / (1 - pt)) * 100``).

    Raises
    ------
    ValueError
        On invalid input, a single outcome class, or thresholds outside (0, 1).

    References
    ----------
    Vickers AJ, Elkin EB (2006). Med Decis Making 26(6):565-574.
    Kerr KF, Brown MD, Zhu K, Janes H (2016). Assessing the clinical impact of risk prediction
    models with decision curves: guidance for correct interpretation and appropriate use.
    J Clin Oncol 34(21):2534-2540 (standardized net benefit).
    Vickers AJ, Van Calster B, Steyerberg EW (2016). Net benefit approaches to the evaluation of
    prediction models, molecular markers, and diagnostic tests. BMJ 352:i6.

    Examples
    --------
    >>> dc = decision_curve([0, 1, 1, 0], [0.1, 0.9, 0.6, 0.4], [0.2, 0.5])
    >>> dc["net_interventions_avoided_per_100"].round(1).tolist()
    [25.0, 50.0]
    """
    y, p = check_binary_outcome(y_true, prob, "prob", probabilities=True,
                                what="the decision curve")
    t = _thresholds(np.round(np.arange(1, 100) / 100, 2) if thresholds is None else thresholds)
    nb_model = net_benefit(y, p, t)
    nb_all = net_benefit_treat_all(y, t)
    return pd.DataFrame({
        "threshold": t,
        "net_benefit_model": nb_model,
        "net_benefit_all": nb_all,
        "net_benefit_none": np.zeros_like(t),
        "standardized_net_benefit_model": nb_model / y.mean(),
        "net_interventions_avoided_per_100": (nb_model - nb_all) / (t / (1 - t)) * 100,
    })


def useful_threshold_range(curve, tol=1e-12):
    """Threshold range where the model beats both treat-all and treat-none.

    The model is "useful" at a threshold when its net benefit exceeds both the treat-all net
    benefit and 0 by more than ``tol`` (so floating-point equality, e.g. when the model treats
    everyone, does not count). The useful thresholds may form several runs of consecutive rows
    (sorted by threshold); the widest run in threshold units is reported, the lowest one on a tie.
    The bounds are grid points of ``curve``: the true boundary lies within one grid step.

    Parameters
    ----------
    curve : pandas.DataFrame
        Output of :func:`decision_curve` (columns ``threshold``, ``net_benefit_model``,
        ``net_benefit_all``).
    tol : float
        Margin by which the model's net benefit must exceed the alternatives.

    Returns
    -------
    (low, high) : tuple of float, or (None, None)
        First and last threshold of the widest useful run; ``(None, None)`` if the model is never
        useful.

    Raises
    ------
    ValueError
        If required columns are missing.

    References
    ----------
    Vickers AJ, Elkin EB (2006). Med Decis Making 26(6):565-574.

    Examples
    --------
    >>> dc = decision_curve([0, 1, 1, 0], [0.1, 0.9, 0.6, 0.4], [0.05, 0.2, 0.5, 0.95])
    >>> useful_threshold_range(dc)
    (0.2, 0.5)
    """
    missing = {"threshold", "net_benefit_model", "net_benefit_all"} - set(curve.columns)
    if missing:
        raise ValueError(
            f"curve must be a decision_curve() table; missing columns {sorted(missing)}"
        )
    c = curve.sort_values("threshold")
    t = c["threshold"].to_numpy(float)
    nb = c["net_benefit_model"].to_numpy(float)
    useful = (nb > c["net_benefit_all"].to_numpy(float) + tol) & (nb > tol)
    best, start = (None, None), None
    for i, ok in enumerate(np.append(useful, False)):  # sentinel closes the last run
        if ok and start is None:
            start = i
        elif not ok and start is not None:
            low, high = float(t[start]), float(t[i - 1])
            if best[0] is None or high - low > best[1] - best[0]:
                best = (low, high)
            start = None
    return best


def decision_curve_ci(y_true, prob, thresholds, n_boot=1000, alpha=0.05, seed=0) -> pd.DataFrame:
    """Bootstrap percentile bands of the model's and treat-all net benefit, vectorised.

    Each replicate resamples the cases with replacement; with the cases sorted by predicted
    probability, true and false positives at every threshold are cumulative sums of the cases'
    multiplicities read at the threshold's position, so all replicates cost O(B·n).

    Parameters
    ----------
    y_true : array-like, shape (n,)
        Outcome 0/1.
    prob : array-like, shape (n,)
        Predicted probabilities.
    thresholds : array-like, shape (k,)
        Threshold probabilities in (0, 1).
    n_boot : int
        Bootstrap replicates.
    alpha : float
        1 - confidence level.
    seed : int
        Seed of ``numpy.random.default_rng``.

    Returns
    -------
    pandas.DataFrame
        ``threshold, net_benefit_model_ci_low, net_benefit_model_ci_high, net_benefit_all_ci_low,
        net_benefit_all_ci_high, net_benefit_difference_ci_low, net_benefit_difference_ci_high``
        (difference = model minus the better of treat-all and treat-none).

    References
    ----------
    Vickers AJ, Cronin AM, Elkin EB, Gonen M (2008). Extensions to decision curve analysis, a
    novel method for evaluating diagnostic tests, prediction models and molecular markers.
    BMC Med Inform Decis Mak 8:53.
    """
    y = np.asarray(y_true, float)
    p = np.asarray(prob, float)
    t = _thresholds(thresholds)
    n = y.size
    order = np.argsort(-p, kind="stable")
    p_sorted, y_sorted = p[order], y[order]
    # number of cases with p >= threshold, in descending order of p
    k = np.searchsorted(-p_sorted, -t, side="right")
    odds = t / (1 - t)
    rng = np.random.default_rng(seed)
    model, treat_all = [], []
    chunk = max(1, 2_000_000 // max(n, 1))
    for start in range(0, n_boot, chunk):
        b = min(chunk, n_boot - start)
        idx = rng.integers(0, n, (b, n))
        w = np.bincount((idx + n * np.arange(b)[:, None]).ravel(), minlength=b * n).reshape(b, n)[:, order]
        tp = np.zeros((b, n + 1))
        fp = np.zeros((b, n + 1))
        np.cumsum(w * y_sorted, axis=1, out=tp[:, 1:])
        np.cumsum(w * (1 - y_sorted), axis=1, out=fp[:, 1:])
        model.append(tp[:, k] / n - fp[:, k] / n * odds)
        prev = tp[:, -1:] / n
        treat_all.append(prev - (1 - prev) * odds)
    model, treat_all = np.vstack(model), np.vstack(treat_all)
    best_default = np.maximum(treat_all, 0.0)
    q = [100 * alpha / 2, 100 * (1 - alpha / 2)]
    m_lo, m_hi = np.percentile(model, q, axis=0)
    a_lo, a_hi = np.percentile(treat_all, q, axis=0)
    d_lo, d_hi = np.percentile(model - best_default, q, axis=0)
    return pd.DataFrame({"threshold": t, "net_benefit_model_ci_low": m_lo, "net_benefit_model_ci_high": m_hi,
                         "net_benefit_all_ci_low": a_lo, "net_benefit_all_ci_high": a_hi,
                         "net_benefit_difference_ci_low": d_lo, "net_benefit_difference_ci_high": d_hi})
