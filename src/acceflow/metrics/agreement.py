"""Agreement between repeated measurements: wSD, wCV, repeatability coefficient, Lin's CCC, Bland–Altman.

All functions take plain arrays (or, for :func:`agreement_table`, the long repeat table used by
:func:`acceflow.metrics.icc.icc_table`: one row per (subject, repeat)) and return floats or a
DataFrame. Only subjects measured at every repeat are used (listwise deletion).

Formulas and sources
--------------------
* Within-subject SD: ``wSD = sqrt(mean_i s_i^2)``, ``s_i^2`` the variance (ddof=1) of subject
  i's repeats (Bland & Altman 1996, BMJ 313:744; for two repeats ``s_i^2 = d_i^2 / 2``).
* Within-subject CV, root-mean-square method: ``wCV = sqrt(mean_i (s_i / m_i)^2)``
  (Bland & Altman 1996, BMJ 313:106; Hyslop & White 2009).
* Repeatability coefficient: ``RC = 1.96 * sqrt(2) * wSD`` (~ 2.77 wSD): the difference between
  two repeats of one subject is below RC for 95% of pairs (Bland & Altman 1986, Lancet i:307;
  QIBA, Raunig et al. 2015, Stat Methods Med Res 24:27).
* Lin's concordance correlation coefficient (Lin 1989, Biometrics 45:255; correction Lin 2000,
  Biometrics 56:324): ``rho_c = 2 s_xy / (s_x^2 + s_y^2 + (m_x - m_y)^2)`` with moments over n;
  95% CI by the Fisher z-transform with Lin's asymptotic variance of ``z = atanh(rho_c)``
  (as R's ``epiR::epi.ccc`` reports it, ``ci = "z-transform"``).
* Bland–Altman (Bland & Altman 1986, Lancet i:307): differences ``d = y2 - y1`` (second repeat
  minus first); bias ``mean(d)``; 95% limits of agreement ``bias ± 1.96 SD(d)`` (ddof=1).
"""

from __future__ import annotations

import numpy as np
import pandas as pd
from scipy import stats

from acceflow.metrics.icc import _wcv, _wide

__all__ = ["within_subject_sd", "repeatability_coefficient", "lins_ccc", "bland_altman", "agreement_table",
           "AGREEMENT_COLUMNS"]

AGREEMENT_COLUMNS = ["feature", "n_subjects", "n_repeats", "wsd", "wcv", "rc", "ccc", "ccc_ci_low", "ccc_ci_high",
                     "ba_bias", "ba_sd", "ba_loa_low", "ba_loa_high"]


def _matrix(values) -> np.ndarray:
    x = np.asarray(values, dtype=float)
    if x.ndim != 2 or x.shape[1] < 2:
        raise ValueError(f"expected an (n_subjects, k >= 2) array of repeats; got shape {x.shape}")
    return x[~np.isnan(x).any(axis=1)]


def within_subject_sd(values) -> float:
    """Within-subject SD ``sqrt(mean_i var_i)`` of an (n, k) array of repeats (Bland & Altman 1996).

    Parameters
    ----------
    values : array-like, shape (n_subjects, k)
        Row i holds subject i's k repeats; rows with a NaN are dropped.

    Returns
    -------
    float
        NaN when no complete subject remains.

    Examples
    --------
    >>> within_subject_sd([[1.0, 3.0], [2.0, 2.0]])  # variances 2 and 0
    1.0
    """
    x = _matrix(values)
    if x.shape[0] == 0:
        return float("nan")
    return float(np.sqrt(np.mean(x.var(axis=1, ddof=1))))


def repeatability_coefficient(values) -> float:
    """Repeatability coefficient ``RC = 1.96 * sqrt(2) * wSD`` (Bland & Altman 1986; QIBA 2015).

    95% of the absolute differences between two repeats of one subject are expected below RC.

    Examples
    --------
    >>> round(repeatability_coefficient([[1.0, 3.0], [2.0, 2.0]]), 4)
    2.7719
    """
    return float(1.96 * np.sqrt(2.0) * within_subject_sd(values))


def lins_ccc(x, y, alpha: float = 0.05) -> tuple[float, float, float]:
    """Lin's concordance correlation coefficient with its z-transform confidence interval.

    Parameters
    ----------
    x, y : array-like, shape (n,)
        Paired measurements (first and second repeat); pairs with a NaN are dropped.
    alpha : float
        1 - confidence level.

    Returns
    -------
    (ccc, ci_low, ci_high) : tuple of float
        NaN when fewer than 3 pairs remain or both series are constant. The CI is NaN when
        ``|ccc| = 1`` (the z-transform is infinite).

    References
    ----------
    Lin LI-K (1989). A concordance correlation coefficient to evaluate reproducibility.
    Biometrics 45:255-268; and the correction, Biometrics 56:324-325 (2000).

    Examples
    --------
    >>> round(lins_ccc([1, 2, 3, 4], [1, 2, 3, 4])[0], 6)
    1.0
    >>> round(lins_ccc([1, 2, 3, 4], [2, 3, 4, 5])[0], 4)  # perfect correlation, shifted by 1
    0.7143
    """
    x, y = np.asarray(x, dtype=float), np.asarray(y, dtype=float)
    if x.shape != y.shape or x.ndim != 1:
        raise ValueError(f"x and y must be 1-d arrays of one length; got {x.shape} and {y.shape}")
    ok = ~(np.isnan(x) | np.isnan(y))
    x, y = x[ok], y[ok]
    n = x.size
    nan3 = (float("nan"),) * 3
    if n < 3:
        return nan3
    mx, my = x.mean(), y.mean()
    sx2, sy2 = x.var(), y.var()  # moments over n (Lin 1989)
    sxy = np.mean((x - mx) * (y - my))
    denom = sx2 + sy2 + (mx - my) ** 2
    if denom == 0 or sx2 == 0 or sy2 == 0:
        return nan3
    rc = 2.0 * sxy / denom
    if abs(rc) >= 1.0:
        return float(np.clip(rc, -1.0, 1.0)), float("nan"), float("nan")
    r = sxy / np.sqrt(sx2 * sy2)
    u = (mx - my) / (sx2 * sy2) ** 0.25
    var_z = ((1 - r ** 2) * rc ** 2 / ((1 - rc ** 2) * r ** 2)
             + 2 * rc ** 3 * (1 - rc) * u ** 2 / (r * (1 - rc ** 2) ** 2)
             - rc ** 4 * u ** 4 / (2 * r ** 2 * (1 - rc ** 2) ** 2)) / (n - 2)
    z, q = np.arctanh(rc), stats.norm.ppf(1 - alpha / 2)
    se = np.sqrt(var_z) if var_z > 0 else float("nan")
    return float(rc), float(np.tanh(z - q * se)), float(np.tanh(z + q * se))


def bland_altman(x, y, alpha: float = 0.05) -> dict:
    """Bland–Altman bias and limits of agreement of paired repeats (Bland & Altman 1986).

    Differences are ``y - x`` (second repeat minus first).

    Returns
    -------
    dict
        ``n``, ``bias`` (mean difference), ``sd`` (SD of the differences, ddof=1), ``loa_low`` and
        ``loa_high`` (``bias ∓ z_{1-alpha/2} * sd``, z = 1.96 for alpha 0.05); NaN with < 2 pairs.

    Examples
    --------
    >>> ba = bland_altman([1.0, 2.0, 3.0], [2.0, 2.0, 5.0])
    >>> ba["bias"], ba["sd"]
    (1.0, 1.0)
    """
    x, y = np.asarray(x, dtype=float), np.asarray(y, dtype=float)
    if x.shape != y.shape or x.ndim != 1:
        raise ValueError(f"x and y must be 1-d arrays of one length; got {x.shape} and {y.shape}")
    d = (y - x)[~(np.isnan(x) | np.isnan(y))]
    if d.size < 2:
        return {"n": int(d.size), "bias": float("nan"), "sd": float("nan"), "loa_low": float("nan"),
                "loa_high": float("nan")}
    bias, sd, q = float(d.mean()), float(d.std(ddof=1)), stats.norm.ppf(1 - alpha / 2)
    return {"n": int(d.size), "bias": bias, "sd": sd, "loa_low": bias - q * sd, "loa_high": bias + q * sd}


def agreement_table(long_df: pd.DataFrame, feature_columns, subject: str = "case_id", rater: str = "repeat",
                    alpha: float = 0.05) -> pd.DataFrame:
    """wSD, wCV, RC, Lin's CCC (with CI) and Bland–Altman per feature from a long repeat table.

    Parameters
    ----------
    long_df : pandas.DataFrame
        One row per (subject, repeat), one numeric column per feature (as for ``icc_table``).
    feature_columns : list of str
    subject, rater : str
        Columns naming the subject and the repeat; repeats are ordered by their sorted names, so
        Bland–Altman differences are the second minus the first (``scan2 - scan1``,
        ``reader2 - reader1``).
    alpha : float
        1 - confidence level of the CCC interval and the limits of agreement.

    Returns
    -------
    pandas.DataFrame with :data:`AGREEMENT_COLUMNS`, one row per feature. wSD, wCV and RC use every
    repeat; CCC and Bland–Altman are defined for two-repeat designs only (NaN otherwise).
    """
    features = list(feature_columns)
    wide, repeats = _wide(long_df, features, subject, rater)
    order = sorted(map(str, repeats))
    rows = []
    for f in features:
        block = wide[f]
        block = block[sorted(block.columns, key=lambda c: order.index(str(c)))].dropna(how="any")
        v = block.to_numpy(dtype=float)
        row = {"feature": f, "n_subjects": int(v.shape[0]), "n_repeats": len(order),
               "wsd": within_subject_sd(v) if v.shape[0] else float("nan"),
               "wcv": _wcv(v)}
        row["rc"] = 1.96 * np.sqrt(2.0) * row["wsd"]
        if len(order) == 2:
            row["ccc"], row["ccc_ci_low"], row["ccc_ci_high"] = lins_ccc(v[:, 0], v[:, 1], alpha)
            ba = bland_altman(v[:, 0], v[:, 1], alpha)
            row.update(ba_bias=ba["bias"], ba_sd=ba["sd"], ba_loa_low=ba["loa_low"], ba_loa_high=ba["loa_high"])
        rows.append(row)
    return pd.DataFrame(rows).reindex(columns=AGREEMENT_COLUMNS)
