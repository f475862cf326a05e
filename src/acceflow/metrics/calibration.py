"""Calibration of predicted probabilities for a binary outcome.

Follows the hierarchy of Van Calster et al. (2016): mean calibration (calibration-in-the-large),
weak calibration (calibration slope) and moderate calibration (the flexible calibration curve,
summarised by ICI / E50 / E90 / Emax after Austin & Steyerberg 2019). Intercept and slope are
fitted by unpenalised maximum likelihood with Wald confidence intervals (the slope by statsmodels
GLM, binomial family, logit link; the intercept, whose offset-only model statsmodels' IRLS fails on
extreme logits, by solving its one-dimensional score equation), as R's ``glm`` on ``qlogis(p)``;
the calibration curve is R's ``loess`` (span 0.75, degree 2, gaussian) through scikit-misc, which
wraps the same netlib code.
"""

from __future__ import annotations

import warnings

import numpy as np
import pandas as pd
import statsmodels.api as sm
from scipy import optimize, stats
from scipy.special import expit, logit
from skmisc.loess import loess
from statsmodels.stats.proportion import proportion_confint
from statsmodels.tools.sm_exceptions import PerfectSeparationError, PerfectSeparationWarning

from acceflow.metrics.discrimination import brier_score, check_binary_outcome

__all__ = [
    "finite_logit",
    "calibration_intercept_slope",
    "calibration_curve_loess",
    "calibration_errors",
    "spiegelhalter_z",
    "calibration_summary",
    "binned_calibration",
]

#: The probabilities nearest to 0 and 1 that double precision holds (5e-324 and 1 - 2**-53).
PROB_FLOOR, PROB_CEIL = float(np.nextafter(0.0, 1.0)), float(np.nextafter(1.0, 0.0))


def _inputs(y_true, prob):
    return check_binary_outcome(y_true, prob, "prob", probabilities=True, what="calibration")


def finite_logit(prob):
    """The logit of each probability as R's ``qlogis`` computes it, kept finite at exactly 0 and 1.

    No probability strictly inside (0, 1) is changed: ``log(p / (1 - p))`` of the float itself
    (:func:`scipy.special.logit`), so 0.9999999994 keeps its logit 21.234 (R's ``qlogis`` gives the
    same). Only a probability of exactly 0 or 1, whose logit is -inf / +inf (where R's ``glm``
    stops), is moved to the nearest representable probability, :data:`PROB_FLOOR` (5e-324,
    logit -744.4) or :data:`PROB_CEIL` (1 - 2**-53, logit 36.7), and counted.

    Parameters
    ----------
    prob : array-like, shape (n,)
        Probabilities in [0, 1].

    Returns
    -------
    logits : numpy.ndarray of float, shape (n,)
    n_at_bounds : int
        How many probabilities were exactly 0 or 1.

    Examples
    --------
    >>> lp, n = finite_logit([0.5, 0.9999999994, 1.0])
    >>> [round(float(v), 4) for v in lp], n
    ([0.0, 21.2341, 36.7368], 1)
    """
    p = np.asarray(prob, dtype=float)
    at_bounds = (p == 0.0) | (p == 1.0)
    p = np.where(p == 0.0, PROB_FLOOR, np.where(p == 1.0, PROB_CEIL, p))
    return logit(p), int(at_bounds.sum())


_SEPARATION = "the predictions separate the outcomes (no finite maximum-likelihood estimate)"


def _score_ok(y, X, fit) -> bool:
    params, bse = np.asarray(fit.params, float), np.asarray(fit.bse, float)
    score = X.T @ (y - np.asarray(fit.fittedvalues, float))
    return bool(np.isfinite(params).all() and np.isfinite(bse).all() and np.abs(score).max() <= 1e-6 * max(y.size, 1))


def _ml_slope(y, lp, alpha):
    """Logistic recalibration ``y ~ 1 + lp`` by unpenalised ML: (slope, ci_low, ci_high) or (None, why).

    statsmodels' IRLS may report convergence at a point that does not solve the likelihood
    equations (it overflows with extreme logits); the score ``X'(y - mu)`` is checked at the result
    and, when it does not vanish, the fit is redone by Newton-Raphson from the ideal calibration
    (intercept 0, slope 1). Under (quasi-)complete separation no finite estimate exists.
    """
    X = np.column_stack([np.ones(y.size), lp])
    model = sm.GLM(y, X, family=sm.families.Binomial())
    for kw in ({}, {"method": "newton", "start_params": np.array([0.0, 1.0]), "maxiter": 200}):
        with warnings.catch_warnings(record=True) as caught:
            warnings.simplefilter("always")
            try:
                fit = model.fit(**kw)
            except (PerfectSeparationError, np.linalg.LinAlgError):
                return None, _SEPARATION
        if any(issubclass(w.category, PerfectSeparationWarning) for w in caught):
            return None, _SEPARATION
        if _score_ok(y, X, fit):
            ci = np.asarray(fit.conf_int(alpha))[1]
            return (float(np.asarray(fit.params)[1]), float(ci[0]), float(ci[1])), ""
    return None, "the maximum-likelihood fit did not converge"


def _ml_intercept(y, lp, alpha):
    """Calibration-in-the-large ``y ~ offset(lp)``: (a, ci_low, ci_high) by solving the score equation.

    The one-parameter score ``sum(y - expit(a + lp))`` decreases monotonically in ``a`` from
    ``sum(y)`` to ``sum(y) - n``, so its root, the exact ML estimate, is found by bracketing
    (Brent's method); the Wald SE is ``1 / sqrt(sum(mu (1 - mu)))`` as in any GLM. Unlike IRLS this
    cannot diverge when some logits are extreme (e.g. -744 for a prediction of exactly 0).
    """
    def score(a):
        return float(np.sum(y - expit(a + lp)))

    lo, hi = -1.0, 1.0
    while score(lo) < 0:
        lo *= 2
    while score(hi) > 0:
        hi *= 2
    a = optimize.brentq(score, lo, hi, xtol=1e-13, rtol=4 * np.finfo(float).eps, maxiter=500)
    mu = expit(a + lp)
    se = 1.0 / np.sqrt(np.sum(mu * (1 - mu)))
    z = stats.norm.ppf(1 - alpha / 2)
    return (float(a), float(a - z * se), float(a + z * se)), ""


def calibration_intercept_slope(y_true, prob, alpha=0.05):
    """Calibration-in-the-large and calibration slope with Wald confidence intervals.

    * Calibration intercept: logistic GLM ``logit P(y=1) = a + offset(logit(prob))``; ``a = 0``
      when the mean prediction matches the observed rate (``a > 0``: predictions too low).
    * Calibration slope: logistic recalibration ``logit P(y=1) = a + b logit(prob)``; ``b = 1``
      ideally, ``b < 1`` means predictions too extreme (over-fitting), ``b > 1`` too modest.

    The logit is that of the probability itself (as R's ``qlogis``): no clipping, so the slope
    equals R's ``glm(y ~ qlogis(p), family = binomial)``. Probabilities of exactly 0 or 1 (logit
    -inf / +inf, where R's ``glm`` fails) are moved to the nearest representable probability
    (see :func:`finite_logit`) and counted in ``n_prob_at_bounds``: with any, the figures depend
    on that choice and should be read with care.

    When a fit has no trustworthy maximum (separation, or an IRLS run that does not solve the
    likelihood equations) its estimate and CI are NaN, ``calibration_note`` says why and a
    :class:`RuntimeWarning` is issued: a figure such as -1e15 is never returned.

    Parameters
    ----------
    y_true : array-like, shape (n,)
        Outcome coded 0/1; both classes.
    prob : array-like, shape (n,)
        Predicted probabilities in [0, 1].
    alpha : float
        1 - confidence level of the Wald intervals.

    Returns
    -------
    dict
        ``calibration_intercept``, ``calibration_intercept_ci_low``,
        ``calibration_intercept_ci_high``, ``calibration_slope``, ``calibration_slope_ci_low``,
        ``calibration_slope_ci_high``; plain floats on the logit scale (intercept) or unitless
        (slope); ``n_prob_at_bounds``: how many probabilities were exactly 0 or 1 (a float, as
        the other counts of :func:`calibration_summary`); ``calibration_note``: empty, or why an
        estimate is NaN.

    Raises
    ------
    ValueError
        On invalid input (see :func:`acceflow.metrics.discrimination.check_binary_outcome`) or
        ``alpha`` outside (0, 1).

    References
    ----------
    Cox DR (1958). Two further applications of a model for binary regression.
    Biometrika 45:562-565.
    Van Calster B, Nieboer D, Vergouwe Y, De Cock B, Pencina MJ, Steyerberg EW (2016). A calibration
    hierarchy for risk models was defined: from utopia to empirical data.
    J Clin Epidemiol 74:167-176.
    Steyerberg EW (2019). Clinical Prediction Models, 2nd ed., ch. 15. Springer.

    Examples
    --------
    >>> r = calibration_intercept_slope([0, 0, 1, 1, 0, 1], [0.2, 0.3, 0.6, 0.8, 0.55, 0.4])
    >>> round(r["calibration_intercept"], 3), round(r["calibration_slope"], 3)
    (0.119, 2.125)
    """
    y, p = _inputs(y_true, prob)
    if not 0 < alpha < 1:
        raise ValueError(f"alpha must be in (0, 1); got {alpha}")
    lp, n_bounds = finite_logit(p)
    y = y.astype(float)
    out, notes = {"n_prob_at_bounds": float(n_bounds)}, []
    for name, fit in (("calibration_intercept", _ml_intercept), ("calibration_slope", _ml_slope)):
        est, why = fit(y, lp, alpha)
        if est is None:
            notes.append(f"{name.replace('_', ' ')} not estimable: {why}")
            est = (float("nan"),) * 3
        out.update(dict(zip([name, f"{name}_ci_low", f"{name}_ci_high"], est)))
    out["calibration_note"] = "; ".join(notes)
    if notes:
        warnings.warn(out["calibration_note"], RuntimeWarning, stacklevel=2)
    return out


def calibration_curve_loess(y_true, prob, span=0.75, degree=2):
    """Flexible calibration curve: loess-smoothed observed outcome at each prediction.

    Equivalent to R's ``predict(loess(y ~ p, span = 0.75, degree = 2))`` (gaussian family,
    interpolated surface), computed with :class:`skmisc.loess.loess`.

    Parameters
    ----------
    y_true : array-like, shape (n,)
        Outcome coded 0/1; both classes.
    prob : array-like, shape (n,)
        Predicted probabilities in [0, 1].
    span : float
        Fraction of points in each local neighbourhood, in (0, 1].
    degree : int
        Degree of the local polynomials (0, 1 or 2).

    Returns
    -------
    numpy.ndarray, shape (n,)
        Smoothed observed probability at each ``prob`` (input order), clipped to [0, 1].

    Raises
    ------
    ValueError
        On invalid input, bad ``span``/``degree``, or when loess cannot fit (typically too few
        distinct predicted probabilities for a local quadratic fit).

    References
    ----------
    Cleveland WS, Grosse E, Shyu WM (1992). Local regression models. In: Chambers JM, Hastie TJ
    (eds) Statistical Models in S. Wadsworth.
    Austin PC, Steyerberg EW (2014). Graphical assessment of internal and external calibration of
    logistic regression models by using loess smoothers. Stat Med 33:517-535.

    Examples
    --------
    >>> rng = np.random.default_rng(0)
    >>> p = rng.uniform(0.05, 0.95, 300)
    >>> obs = calibration_curve_loess(rng.uniform(size=300) < p, p)
    >>> obs.shape, bool(((obs >= 0) & (obs <= 1)).all())
    ((300,), True)
    """
    y, p = _inputs(y_true, prob)
    if not 0 < span <= 1:
        raise ValueError(f"span must be in (0, 1]; got {span}")
    if degree not in (0, 1, 2):
        raise ValueError(f"degree must be 0, 1 or 2; got {degree}")
    try:
        fit = loess(p, y.astype(float), span=span, degree=degree, family="gaussian")
        fit.fit()
        smoothed = np.asarray(fit.predict(p).values, dtype=float)
    except ValueError as exc:  # netlib loess errors come back as ValueError(bytes)
        raise ValueError(
            f"loess calibration curve could not be fitted ({exc!s}); the predictions need enough "
            f"distinct values ({np.unique(p).size} here) for span={span}, degree={degree}"
        ) from exc
    return np.clip(smoothed, 0.0, 1.0)


def calibration_errors(y_true, prob):
    """ICI, E50, E90 and Emax: summaries of |loess-smoothed observed - predicted|.

    Parameters
    ----------
    y_true : array-like, shape (n,)
        Outcome coded 0/1; both classes.
    prob : array-like, shape (n,)
        Predicted probabilities in [0, 1].

    Returns
    -------
    dict
        ``ici`` (mean), ``e50`` (median), ``e90`` (90th percentile, linear interpolation as R's
        ``quantile``) and ``emax`` (maximum) of the absolute differences, in probability units.

    Raises
    ------
    ValueError
        On invalid input or when loess cannot fit (see :func:`calibration_curve_loess`).

    References
    ----------
    Austin PC, Steyerberg EW (2019). The Integrated Calibration Index (ICI) and related metrics
    for quantifying the calibration of logistic regression models. Stat Med 38:4051-4065.

    Examples
    --------
    >>> rng = np.random.default_rng(0)
    >>> p = rng.uniform(0.05, 0.95, 500)
    >>> e = calibration_errors(rng.uniform(size=500) < p, p)
    >>> sorted(e), e["ici"] <= e["e90"] <= e["emax"]
    (['e50', 'e90', 'emax', 'ici'], True)
    """
    y, p = _inputs(y_true, prob)
    diff = np.abs(calibration_curve_loess(y, p) - p)
    return {
        "ici": float(diff.mean()),
        "e50": float(np.median(diff)),
        "e90": float(np.quantile(diff, 0.9)),
        "emax": float(diff.max()),
    }


def spiegelhalter_z(y_true, prob):
    """Spiegelhalter's z test of calibration.

    ``z = sum((y - p)(1 - 2p)) / sqrt(sum((1 - 2p)^2 p (1 - p)))``, standard normal under perfect
    calibration.

    Parameters
    ----------
    y_true : array-like, shape (n,)
        Outcome coded 0/1.
    prob : array-like, shape (n,)
        Predicted probabilities in [0, 1].

    Returns
    -------
    z : float
        The statistic (NaN when every prediction is 0, 1/2 or 1, so that the variance is 0).
    p_value : float
        Two-sided p-value.

    Raises
    ------
    ValueError
        On invalid input.

    References
    ----------
    Spiegelhalter DJ (1986). Probabilistic prediction in patient management and clinical trials.
    Stat Med 5:421-433.

    Examples
    --------
    >>> z, p = spiegelhalter_z([0, 1, 0, 1], [0.2, 0.8, 0.3, 0.6])
    >>> round(z, 3), round(p, 3)
    (-1.106, 0.269)
    """
    y, p = _inputs(y_true, prob)
    var = np.sum((1 - 2 * p) ** 2 * p * (1 - p))
    if var <= 0:
        return float("nan"), float("nan")
    z = np.sum((y - p) * (1 - 2 * p)) / np.sqrt(var)
    return float(z), float(2 * stats.norm.sf(abs(z)))


def calibration_summary(y_true, prob):
    """All calibration measures of a set of predictions, as a JSON-ready dict.

    If loess cannot be fitted (too few distinct predictions) the loess-based measures are NaN
    and a :class:`RuntimeWarning` is issued, so that the other measures are still reported.

    Parameters
    ----------
    y_true : array-like, shape (n,)
        Outcome coded 0/1; both classes.
    prob : array-like, shape (n,)
        Predicted probabilities in [0, 1].

    Returns
    -------
    dict of str to float
        ``n``, ``n_events``, ``observed_rate``, ``mean_predicted``, ``brier``, ``brier_scaled``
        (``1 - brier / (prevalence (1 - prevalence))``), the keys of
        :func:`calibration_intercept_slope` and :func:`calibration_errors`, ``spiegelhalter_z``
        and ``spiegelhalter_p``. Every value is a plain Python float (counts too), except the text
        ``calibration_note`` (empty unless an estimate is NaN, see :func:`calibration_intercept_slope`).

    Raises
    ------
    ValueError
        On invalid input.

    References
    ----------
    Van Calster B et al. (2016) J Clin Epidemiol 74:167-176. Austin PC, Steyerberg EW (2019)
    Stat Med 38:4051-4065. Steyerberg EW et al. (2010). Assessing the performance of prediction
    models: a framework for traditional and novel measures. Epidemiology 21:128-138.

    Examples
    --------
    >>> rng = np.random.default_rng(0)
    >>> p = rng.uniform(0.05, 0.95, 500)
    >>> s = calibration_summary(rng.uniform(size=500) < p, p)
    >>> s["n"], abs(s["calibration_slope"] - 1) < 0.3
    (500.0, True)
    """
    y, p = _inputs(y_true, prob)
    prevalence = float(y.mean())
    brier = brier_score(y, p)
    out = {
        "n": float(y.size),
        "n_events": float(y.sum()),
        "observed_rate": prevalence,
        "mean_predicted": float(p.mean()),
        "brier": brier,
        "brier_scaled": float(1 - brier / (prevalence * (1 - prevalence))),
    }
    out.update(calibration_intercept_slope(y, p))
    try:
        out.update(calibration_errors(y, p))
    except ValueError as exc:
        warnings.warn(f"ICI/E50/E90/Emax set to NaN: {exc}", RuntimeWarning, stacklevel=2)
        out.update(dict.fromkeys(["ici", "e50", "e90", "emax"], float("nan")))
    out["spiegelhalter_z"], out["spiegelhalter_p"] = spiegelhalter_z(y, p)
    return out


def binned_calibration(y_true, prob, n_bins=10):
    """Observed versus predicted risk in quantile groups of the predictions (e.g. deciles).

    Bins are ``pandas.qcut`` quantile groups; with ties in the predictions fewer than ``n_bins``
    groups may result (duplicate edges are dropped).

    Parameters
    ----------
    y_true : array-like, shape (n,)
        Outcome coded 0/1 (a single class is allowed).
    prob : array-like, shape (n,)
        Predicted probabilities in [0, 1].
    n_bins : int
        Requested number of quantile groups (>= 1).

    Returns
    -------
    pandas.DataFrame
        One row per bin, lowest risk first, with columns ``bin`` (0-based), ``n``, ``n_events``,
        ``prob_min``, ``prob_max``, ``mean_predicted``, ``observed_proportion`` and its Wilson
        95% interval ``observed_ci_low``, ``observed_ci_high``.

    Raises
    ------
    ValueError
        On invalid input or ``n_bins < 1``.

    References
    ----------
    Hosmer DW, Lemeshow S (1980). Goodness of fit tests for the multiple logistic regression
    model. Commun Stat Theory Methods 9:1043-1069.
    Wilson EB (1927). Probable inference, the law of succession, and statistical inference.
    J Am Stat Assoc 22:209-212.

    Examples
    --------
    >>> t = binned_calibration([0, 0, 1, 0, 1, 1], [0.1, 0.2, 0.3, 0.6, 0.7, 0.9], n_bins=2)
    >>> t[["n", "n_events", "observed_proportion"]].values.tolist()
    [[3.0, 1.0, 0.3333333333333333], [3.0, 2.0, 0.6666666666666666]]
    """
    y, p = check_binary_outcome(y_true, prob, "prob", probabilities=True, require_both=False)
    if int(n_bins) != n_bins or n_bins < 1:
        raise ValueError(f"n_bins must be a positive integer; got {n_bins}")
    codes = pd.qcut(p, int(n_bins), labels=False, duplicates="drop")
    codes = np.nan_to_num(np.asarray(codes, dtype=float), nan=0.0).astype(int)  # constant p
    df = pd.DataFrame({"bin": codes, "y": y, "p": p})
    t = df.groupby("bin").agg(
        n=("y", "size"), n_events=("y", "sum"), prob_min=("p", "min"), prob_max=("p", "max"),
        mean_predicted=("p", "mean"),
    ).reset_index()
    t[["n", "n_events"]] = t[["n", "n_events"]].astype(float)
    t["observed_proportion"] = t["n_events"] / t["n"]
    low, high = proportion_confint(t["n_events"], t["n"], alpha=0.05, method="wilson")
    t["observed_ci_low"], t["observed_ci_high"] = np.asarray(low), np.asarray(high)
    return t


def calibration_curve_band(y_true, prob, grid=None, n_boot=200, alpha=0.05, seed=0, span=0.75, degree=2):
    """Loess calibration curve on a grid of predicted probabilities with a bootstrap CI band.

    Parameters
    ----------
    y_true : array-like, shape (n,)
        Outcome coded 0/1.
    prob : array-like, shape (n,)
        Predicted probabilities.
    grid : array-like, shape (g,), optional
        Predicted probabilities at which the curve is evaluated (default: 50 points between the
        2.5th and 97.5th percentiles of ``prob``, where the curve is supported by data).
    n_boot : int
        Bootstrap replicates (cases resampled with replacement, curve refitted each time).
    alpha : float
        1 - confidence level of the pointwise percentile band.
    seed : int
        Seed of ``numpy.random.default_rng``.

    Returns
    -------
    pandas.DataFrame
        ``predicted, observed, observed_ci_low, observed_ci_high`` with g rows; replicates whose
        loess fit fails are skipped (their count is in the ``n_boot_used`` column). When the
        curve itself cannot be fitted (too few distinct predictions), every value is NaN and a
        RuntimeWarning says why.

    References
    ----------
    Austin PC, Steyerberg EW (2014). Graphical assessment of internal and external calibration of
    logistic regression models by using loess smoothers. Stat Med 33:517-535.
    """
    y, p = _inputs(y_true, prob)
    if grid is None:
        lo, hi = np.quantile(p, [0.025, 0.975])
        grid = np.linspace(lo, hi, 50)
    grid = np.asarray(grid, dtype=float)

    def curve(yy, pp):
        fit = loess(pp, yy.astype(float), span=span, degree=degree, family="gaussian")
        fit.fit()
        inside = (grid >= pp.min()) & (grid <= pp.max())
        out = np.full(grid.shape, np.nan)
        out[inside] = fit.predict(grid[inside]).values
        return np.clip(out, 0, 1)

    try:
        main = curve(y, p)
    except ValueError as exc:  # too few distinct predictions for a local quadratic fit
        warnings.warn(f"no calibration curve: {exc}", RuntimeWarning, stacklevel=2)
        nan = np.full(grid.shape, np.nan)
        return pd.DataFrame({"predicted": grid, "observed": nan, "observed_ci_low": nan, "observed_ci_high": nan,
                             "n_boot_used": 0})
    rng = np.random.default_rng(seed)
    reps = []
    for _ in range(int(n_boot)):
        idx = rng.integers(0, y.size, y.size)
        if y[idx].min() == y[idx].max():
            continue
        try:
            reps.append(curve(y[idx], p[idx]))
        except ValueError:
            continue
    reps = np.asarray(reps) if reps else np.full((1, grid.size), np.nan)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", RuntimeWarning)
        low, high = np.nanpercentile(reps, [100 * alpha / 2, 100 * (1 - alpha / 2)], axis=0)
    return pd.DataFrame({"predicted": grid, "observed": main, "observed_ci_low": low, "observed_ci_high": high,
                         "n_boot_used": len(reps)})


def calibration_level(summary: dict, band=None, ici_tolerance: float = 0.05) -> tuple[str, str]:
    """The highest level of the calibration hierarchy a cohort reaches, with the evidence.

    Levels after Van Calster et al. (2016): *mean* (calibration-in-the-large: the intercept's CI
    contains 0), *weak* (mean, and the slope's CI contains 1), *moderate* (weak, and the flexible
    calibration curve stays near the diagonal: its pointwise 95% bootstrap band contains the
    diagonal over at least 90% of the supported range of predictions, or — without a band — ICI below ``ici_tolerance``). *Strong* calibration
    (for every covariate pattern) cannot be shown from the data and is never claimed.

    Parameters
    ----------
    summary : dict
        Output of :func:`calibration_summary`.
    band : pandas.DataFrame, optional
        Output of :func:`calibration_curve_band`.
    ici_tolerance : float
        ICI below which the curve counts as near the diagonal when no band is given.

    Returns
    -------
    (level, evidence) : tuple of str
        ``level`` in {"none", "mean", "weak", "moderate"}; ``evidence`` a sentence with the numbers.

    References
    ----------
    Van Calster B, Nieboer D, Vergouwe Y, De Cock B, Pencina MJ, Steyerberg EW (2016). A
    calibration hierarchy for risk models was defined: from utopia to empirical data. J Clin
    Epidemiol 74:167-176.
    """
    g = summary.get
    a, a_lo, a_hi = g("calibration_intercept"), g("calibration_intercept_ci_low"), g("calibration_intercept_ci_high")
    b, b_lo, b_hi = g("calibration_slope"), g("calibration_slope_ci_low"), g("calibration_slope_ci_high")
    def shown(name, *values):
        est, lo, hi = (np.nan if v is None else float(v) for v in values)
        if not np.isfinite([est, lo, hi]).all():
            return f"{name} not estimable"
        return f"{name} {est:.3f} [{lo:.3f}, {hi:.3f}]"

    ev = [shown("intercept", a, a_lo, a_hi), shown("slope", b, b_lo, b_hi)]
    mean_ok = bool(a_lo <= 0 <= a_hi)  # False when not estimable (NaN)
    weak_ok = mean_ok and bool(b_lo <= 1 <= b_hi)
    if band is not None and len(band) and np.isfinite(band["observed_ci_low"]).any():
        ok = band.dropna(subset=["observed_ci_low", "observed_ci_high"])
        covered = float(((ok["observed_ci_low"] <= ok["predicted"]) & (ok["predicted"] <= ok["observed_ci_high"])).mean())
        near = covered >= 0.9
        ev.append(f"the curve's 95% band contains the diagonal at {100 * covered:.0f}% of the supported range")
    else:
        near = bool(np.isfinite(g("ici", np.nan)) and g("ici") < ici_tolerance)
        ev.append(f"ICI {g('ici', float('nan')):.3f}")
    level = "moderate" if weak_ok and near else "weak" if weak_ok else "mean" if mean_ok else "none"
    return level, "; ".join(ev)
