"""Random-effects meta-analysis of per-site performance (internal–external cross-validation).

Each site of a multi-site study gives one estimate of a performance measure with its sampling
variance; :func:`random_effects` pools them by the DerSimonian–Laird method of moments
(DerSimonian & Laird 1986) through statsmodels' :func:`statsmodels.stats.meta_analysis.combine_effects`,
and adds the heterogeneity statistics (Cochran's Q, τ², I²) and the approximate prediction
interval for the performance at a new site (Higgins, Thompson & Spiegelhalter 2009).

Discrimination is pooled on the logit scale (:func:`pool_auc`), where its sampling distribution is
closer to normal, with the delta-method variance var(logit AUC) = var(AUC) / (AUC (1 − AUC))²
(Snell et al. 2018; Debray et al. 2017), and back-transformed; the calibration slope and intercept
are pooled untransformed.

References
----------
DerSimonian R, Laird N (1986). Meta-analysis in clinical trials. Control Clin Trials 7:177-188.
Higgins JPT, Thompson SG (2002). Quantifying heterogeneity in a meta-analysis. Stat Med 21:1539-1558.
Higgins JPT, Thompson SG, Spiegelhalter DJ (2009). A re-evaluation of random-effects meta-analysis.
J R Stat Soc A 172:137-159.
Debray TPA, Damen JAAG, Snell KIE, et al. (2017). A guide to systematic review and meta-analysis of
prediction model performance. BMJ 356:i6460.
Snell KIE, Ensor J, Debray TPA, Moons KGM, Riley RD (2018). Meta-analysis of prediction model
performance across multiple studies: which scale helps ensure between-study normality for the
C-statistic and calibration measures? Stat Methods Med Res 27:3505-3522.
"""

from __future__ import annotations

import numpy as np
from scipy import stats
from statsmodels.stats.meta_analysis import combine_effects

from acceflow.metrics._checks import check_alpha

__all__ = ["METHOD", "random_effects", "logit_auc", "pool_auc"]

#: the between-site variance estimator (the name written to ``pooled.json``)
METHOD = "DerSimonian-Laird"


def _inputs(estimates, variances):
    y = np.asarray(estimates, dtype=float).ravel()
    v = np.asarray(variances, dtype=float).ravel()
    if y.shape != v.shape:
        raise ValueError(f"estimates ({y.size}) and variances ({v.size}) must have the same length")
    if not (np.isfinite(y).all() and np.isfinite(v).all()):
        raise ValueError("estimates and variances must be finite numbers (drop the sites without an estimate)")
    if (v <= 0).any():
        raise ValueError(f"variances must be positive; site(s) at positions {np.flatnonzero(v <= 0).tolist()} "
                         f"have {v[v <= 0].tolist()} (a site without sampling error cannot be weighted)")
    return y, v


def random_effects(estimates, variances, alpha: float = 0.05) -> dict:
    """DerSimonian–Laird random-effects pooling of ``k`` site estimates, with a prediction interval.

    Parameters
    ----------
    estimates : array-like, shape (k,)
        One estimate per site, on the scale to pool (e.g. logit AUC, calibration slope).
    variances : array-like, shape (k,)
        Their sampling variances (squared standard errors), > 0.
    alpha : float
        1 − confidence level of the interval for the mean and of the prediction interval.

    Returns
    -------
    dict
        ``estimate`` (random-effects mean μ̂), ``se``, ``ci_low``, ``ci_high`` (μ̂ ± z·SE, as
        R's ``metafor::rma(method = "DL")`` and Stata's ``metan``); ``pi_low``, ``pi_high``:
        the approximate prediction interval for the true value in a new site,
        μ̂ ± t_{k−2} · sqrt(τ² + SE²) (Higgins et al. 2009), NaN when k < 3, with ``pi_note``
        saying why; ``tau2`` (DerSimonian–Laird between-site variance, truncated at 0), ``tau``,
        ``q`` (Cochran's Q), ``q_df`` (k − 1), ``q_p_value`` (χ² test of homogeneity), ``i2``
        (max(0, (Q − df) / Q), a fraction; Higgins & Thompson 2002), ``k``, ``method``;
        ``estimate_fixed`` and ``se_fixed`` (inverse-variance fixed effect). Plain floats.
        With k = 1 there is nothing to pool: the site's estimate and its CI are returned, τ², I²,
        Q and the prediction interval are NaN and ``pi_note`` says so.

    Raises
    ------
    ValueError
        When the lengths differ, a value is not finite, a variance is not positive, no estimate
        is given, or ``alpha`` is outside (0, 1).

    Notes
    -----
    statsmodels' ``combine_effects(method_re="dl")`` (0.15) returns the untruncated moment
    estimate (Q − df)/c, negative when Q < df, which would give the sites *more* weight than the
    fixed-effect model; DerSimonian & Laird truncate at 0, where the random-effects model equals
    the fixed-effect one. This function applies that truncation (the fixed-effect mean and SE of
    the same statsmodels result), as ``metafor`` and ``metan`` do.

    References
    ----------
    DerSimonian & Laird (1986) Control Clin Trials 7:177-188; Higgins, Thompson & Spiegelhalter
    (2009) J R Stat Soc A 172:137-159; Higgins & Thompson (2002) Stat Med 21:1539-1558.
    """
    alpha = check_alpha(alpha)
    y, v = _inputs(estimates, variances)
    k = int(y.size)
    if k == 0:
        raise ValueError("no site estimate to pool")
    z = float(stats.norm.isf(alpha / 2))
    if k == 1:
        se = float(np.sqrt(v[0]))
        return {"estimate": float(y[0]), "se": se, "ci_low": float(y[0] - z * se), "ci_high": float(y[0] + z * se),
                "pi_low": float("nan"), "pi_high": float("nan"),
                "pi_note": "one site: nothing to pool, no heterogeneity or prediction interval",
                "tau2": float("nan"), "tau": float("nan"), "q": float("nan"), "q_df": 0, "q_p_value": float("nan"),
                "i2": float("nan"), "k": 1, "method": METHOD, "estimate_fixed": float(y[0]), "se_fixed": se}
    with np.errstate(invalid="ignore"):  # its random-effects SE is NaN when the raw tau2 < -min(v); not used then
        res = combine_effects(y, v, method_re="dl", alpha=alpha)
    q, df = max(0.0, float(res.q)), k - 1  # Q >= 0; rounding can leave -1e-16 for identical estimates
    if res.tau2 > 0:
        tau2, mu, se = float(res.tau2), float(res.mean_effect_re), float(res.sd_eff_w_re)
    else:  # truncated at 0: the random-effects model is the fixed-effect one
        tau2, mu, se = 0.0, float(res.mean_effect_fe), float(res.sd_eff_w_fe)
    out = {"estimate": mu, "se": se, "ci_low": mu - z * se, "ci_high": mu + z * se}
    if k >= 3:
        half = float(stats.t.isf(alpha / 2, k - 2)) * np.sqrt(tau2 + se ** 2)
        out.update(pi_low=float(mu - half), pi_high=float(mu + half), pi_note="")
    else:
        out.update(pi_low=float("nan"), pi_high=float("nan"),
                   pi_note="two sites: the prediction interval (t with k - 2 degrees of freedom; Higgins et al. "
                           "2009) needs at least three")
    out.update(tau2=tau2, tau=float(np.sqrt(tau2)), q=q, q_df=df, q_p_value=float(stats.chi2.sf(q, df)),
               i2=float(max(0.0, (q - df) / q)) if q > 0 else 0.0, k=k, method=METHOD,
               estimate_fixed=float(res.mean_effect_fe), se_fixed=float(res.sd_eff_w_fe))
    return out


def logit_auc(auc, se):
    """The logit of AUCs (or C-statistics) and the delta-method variance of that logit.

    Parameters
    ----------
    auc : array-like, shape (k,)
        AUC / C-statistic per site, strictly inside (0, 1).
    se : array-like, shape (k,)
        Its standard error (e.g. DeLong), > 0.

    Returns
    -------
    logit : numpy.ndarray, shape (k,)
        log(AUC / (1 − AUC)).
    variance : numpy.ndarray, shape (k,)
        var(logit AUC) = SE² / (AUC (1 − AUC))² (delta method; Snell et al. 2018).

    Raises
    ------
    ValueError
        When an AUC is 0 or 1 (logit infinite: perfect separation in a site; pool it on another
        scale or leave the site out) or outside [0, 1], or an SE is not positive.

    Examples
    --------
    >>> lg, var = logit_auc([0.8], [0.05])
    >>> round(float(lg[0]), 4), round(float(var[0]), 4)
    (1.3863, 0.0977)
    """
    a = np.asarray(auc, dtype=float).ravel()
    s = np.asarray(se, dtype=float).ravel()
    if a.shape != s.shape:
        raise ValueError(f"auc ({a.size}) and se ({s.size}) must have the same length")
    bad = ~((a > 0) & (a < 1))
    if bad.any():
        raise ValueError(f"AUC {a[bad].tolist()} at position(s) {np.flatnonzero(bad).tolist()}: the logit needs "
                         f"0 < AUC < 1 (an AUC of 1 is perfect separation, whose logit is infinite)")
    if not (np.isfinite(s) & (s > 0)).all():
        raise ValueError(f"standard errors must be positive; got {s.tolist()}")
    return np.log(a / (1 - a)), s ** 2 / (a * (1 - a)) ** 2


def _expit(x):
    return float(1 / (1 + np.exp(-x))) if np.isfinite(x) else float("nan")


def pool_auc(auc, se, alpha: float = 0.05) -> dict:
    """Random-effects pooled AUC (or C-statistic) across sites, on the logit scale, back-transformed.

    Parameters
    ----------
    auc, se : array-like, shape (k,)
        Per-site AUC in (0, 1) and its standard error (DeLong for the AUC).
    alpha : float
        1 − confidence level.

    Returns
    -------
    dict
        :func:`random_effects` of the logit AUCs (``estimate``, ``ci_*``, ``pi_*``, ``tau2``, ``i2``,
        ``q``, ... all on the logit scale, τ² in logit units²) plus ``pooled``, ``pooled_ci_low``,
        ``pooled_ci_high``, ``pooled_pi_low``, ``pooled_pi_high``: the mean, its CI and the
        prediction interval back-transformed to the AUC scale (expit), and ``scale``: ``"logit"``.

    Raises
    ------
    ValueError
        As :func:`logit_auc` and :func:`random_effects`.

    References
    ----------
    Snell et al. (2018) Stat Methods Med Res 27:3505-3522; Debray et al. (2017) BMJ 356:i6460.
    """
    lg, var = logit_auc(auc, se)
    out = random_effects(lg, var, alpha=alpha)
    out.update(pooled=_expit(out["estimate"]), pooled_ci_low=_expit(out["ci_low"]),
               pooled_ci_high=_expit(out["ci_high"]), pooled_pi_low=_expit(out["pi_low"]),
               pooled_pi_high=_expit(out["pi_high"]), scale="logit")
    return out
