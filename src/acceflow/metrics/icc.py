"""Repeatability / reproducibility of features: ICC with full-precision CIs, wCV, Koo & Li bands.

Input is a long table with one row per (subject, repeat) and one column per feature, e.g. a
test-retest or multi-segmentation feature table. The ICC and its 95% confidence interval come from
:func:`pingouin.intraclass_corr`, which computes them as R's ``psych::ICC`` does; pingouin rounds the
CI to two decimals by default, so its ``round.column.CI95`` option is switched off (restored
afterwards). Which interval each form gets:

* ICC(1,1), ICC(3,1), ICC(1,k), ICC(3,k): the exact F-based intervals (Shrout & Fleiss 1979; McGraw
  & Wong 1996, Table 7).
* ICC(2,1): the approximate interval of Satterthwaite-type degrees of freedom ``v`` (Fleiss &
  Shrout 1978; Shrout & Fleiss 1979, eq. for case 2; McGraw & Wong 1996, Table 7, ICC(A,1)).
* ICC(2,k): the ICC(2,1) limits stepped up by the Spearman-Brown formula,
  ``L_k = k L / (1 + (k - 1) L)`` (same for U): the formula ``psych::ICC`` (Revelle; its source:
  ``L3k <- L3 * nj/(1 + L3 * (nj - 1))``) and pingouin compute. McGraw & Wong (1996, Table 7,
  ICC(A,k), with their correction in Psychol Methods 1(4):390) write the interval with its own
  ``v`` and ``F`` for the average measure; the two are the same numbers (they agree to 1e-10 in
  ``tests/test_icc.py``), so the interval is psych's and McGraw & Wong's alike.
"""

from __future__ import annotations

import warnings
from contextlib import contextmanager

import numpy as np
import pandas as pd
import pingouin

__all__ = ["icc_table", "within_subject_cv", "koo_li_band", "stable_features", "resolve_icc_form",
           "select_stable", "ICC_FORM_BY_DESIGN", "UNLINKED_DESIGNS", "icc_form_warning", "unlinked_repeats"]

#: The ICC form used for each reproducibility design when ``reproducibility.icc_form`` is ``auto``.
#: test-retest: Koo & Li (2016) advise a two-way model with *absolute agreement* for test-retest
#: reliability (a systematic shift between scan sessions is measurement error); the two-way mixed
#: and random absolute-agreement single-measure ICCs are computed identically (McGraw & Wong 1996,
#: ICC(A,1)), i.e. Shrout & Fleiss ICC(2,1). inter-reader: readers are a sample of the readers the
#: biomarker will meet and their differences count: ICC(2,1) (two-way random, absolute agreement).
#: perturbation: the perturbed images are exchangeable draws, not fixed "raters": ICC(1,1), one-way
#: random (Zwanenburg et al. 2019, Sci Rep 9:614). inter-reader-unlinked: each subject is read by
#: its own readers (LIDC-style: each nodule by any 4 of 12 radiologists), so no rater effect can be
#: separated from the error and only the one-way model holds: ICC(1,1) (Shrout & Fleiss 1979, case 1;
#: McGraw & Wong 1996, model 1; Koo & Li 2016).
ICC_FORM_BY_DESIGN = {"test-retest": "ICC(2,1)", "inter-reader": "ICC(2,1)",
                      "inter-reader-unlinked": "ICC(1,1)", "perturbation": "ICC(1,1)"}

#: Designs whose raters are not the same people across subjects: only ICC(1,1) / ICC(1,k) are valid.
UNLINKED_DESIGNS = frozenset({"inter-reader-unlinked"})

# canonical Shrout & Fleiss name -> pingouin Type names (>= 0.7 and older releases)
_FORMS = {
    "ICC(1,1)": ("ICC(1,1)", "ICC1"),
    "ICC(2,1)": ("ICC(A,1)", "ICC2"),
    "ICC(3,1)": ("ICC(C,1)", "ICC3"),
    "ICC(1,k)": ("ICC(1,k)", "ICC1k"),
    "ICC(2,k)": ("ICC(A,k)", "ICC2k"),
    "ICC(3,k)": ("ICC(C,k)", "ICC3k"),
}
_ALIASES = {alias.upper(): form for form, names in _FORMS.items() for alias in (form, *names)}
_COLUMNS = ["feature", "icc_form", "icc", "ci_low", "ci_high", "wcv", "n_subjects", "n_repeats",
            "stable", "koo_li_band"]


@contextmanager
def _pingouin_full_precision():
    saved = dict(pingouin.options)
    pingouin.options["round"] = None
    pingouin.options["round.column.CI95"] = None
    try:
        yield
    finally:
        pingouin.options.clear()
        pingouin.options.update(saved)


def _canonical_form(form):
    key = str(form).replace(" ", "").upper()
    if key not in _ALIASES:
        raise ValueError(f"form must be one of {list(_FORMS)} (or pingouin's names); got {form!r}")
    return _ALIASES[key]


def _wide(long_df, features, subject, rater):
    """Validate and pivot to columns (feature, repeat); returns (wide, repeats)."""
    if not isinstance(long_df, pd.DataFrame):
        raise ValueError(f"long_df must be a pandas DataFrame; got {type(long_df).__name__}")
    missing = [c for c in [subject, rater, *features] if c not in long_df.columns]
    if missing:
        raise ValueError(f"long_df lacks columns {missing}; expected subject {subject!r}, "
                         f"rater {rater!r} and the feature columns")
    if not features:
        raise ValueError("feature_columns is empty; expected at least one feature column")
    not_numeric = [f for f in features if long_df[f].dtype.kind not in "biuf"]
    if not_numeric:
        raise ValueError(f"feature columns must be numeric; non-numeric: {not_numeric[:5]}")
    if long_df[[subject, rater]].isna().any().any():
        raise ValueError(f"{subject!r} and {rater!r} must not contain missing values")
    dup = long_df.duplicated([subject, rater])
    if dup.any():
        first = long_df.loc[dup, [subject, rater]].iloc[0].tolist()
        raise ValueError(f"each ({subject}, {rater}) pair must occur once; {first} is repeated")
    repeats = pd.unique(long_df[rater])
    if repeats.size < 2:
        raise ValueError(f"need at least 2 repeats in {rater!r}; got {repeats.size}")
    wide = long_df.pivot(index=subject, columns=rater, values=list(features))
    return wide, repeats


def _complete(wide, feature):
    """(n_complete_subjects, k) float array of subjects measured at every repeat."""
    return wide[feature].dropna(how="any").to_numpy(dtype=float)


def _wcv(values):
    if values.shape[0] == 0:
        return float("nan")
    mean = values.mean(axis=1)
    if np.any(mean == 0):
        return float("nan")
    sd = values.std(axis=1, ddof=1)
    return float(np.sqrt(np.mean((sd / mean) ** 2)))


def within_subject_cv(long_df, feature, subject="case_id", rater="repeat"):
    """Within-subject coefficient of variation by the root-mean-square method.

    ``wCV = sqrt(mean_i (SD_i / mean_i)^2)``, with ``SD_i`` (ddof=1) and ``mean_i`` over the
    repeats of subject i. Only subjects measured at every repeat are used.

    Parameters
    ----------
    long_df : pandas.DataFrame
        One row per (subject, repeat).
    feature : str
        Feature column.
    subject, rater : str
        Columns identifying the subject and the repeat / rater / segmentation.

    Returns
    -------
    float
        wCV as a fraction (multiply by 100 for %); NaN when no subject is complete or a subject's
        mean is 0 (the CV is undefined; it is sign-free otherwise).

    Raises
    ------
    ValueError
        If columns are missing or non-numeric, a (subject, repeat) pair is duplicated, or there
        are fewer than 2 repeats.

    References
    ----------
    Bland JM, Altman DG (1996). Measurement error proportional to the mean. BMJ 313:106.
    Hyslop NP, White WH (2009). Estimating precision using duplicate measurements.
    J Air Waste Manag Assoc 59:1032-1039.

    Examples
    --------
    >>> df = pd.DataFrame({"case_id": [1, 1, 2, 2], "repeat": [1, 2, 1, 2],
    ...                    "f": [9.0, 11.0, 18.0, 22.0]})
    >>> round(within_subject_cv(df, "f"), 6)  # both subjects have CV = sqrt(2)/10
    0.141421
    """
    wide, _ = _wide(long_df, [feature], subject, rater)
    return _wcv(_complete(wide, feature))


def koo_li_band(icc):
    """Koo & Li (2016) interpretation band of an ICC value.

    Parameters
    ----------
    icc : float
        ICC point estimate (Koo & Li advise applying the bands to the 95% CI as well).

    Returns
    -------
    str
        ``"poor"`` (< 0.5), ``"moderate"`` (0.5 to < 0.75), ``"good"`` (0.75 to 0.9),
        ``"excellent"`` (> 0.9), or ``"undefined"`` for NaN.

    Raises
    ------
    ValueError
        If ``icc`` is not a number.

    References
    ----------
    Koo TK, Li MY (2016). A guideline of selecting and reporting intraclass correlation
    coefficients for reliability research. J Chiropr Med 15(2):155-163.

    Examples
    --------
    >>> koo_li_band(0.8), koo_li_band(0.95), koo_li_band(float("nan"))
    ('good', 'excellent', 'undefined')
    """
    try:
        x = float(icc)
    except (TypeError, ValueError):
        raise ValueError(f"icc must be a number; got {icc!r}") from None
    if np.isnan(x):
        return "undefined"
    if x < 0.5:
        return "poor"
    if x < 0.75:
        return "moderate"
    if x <= 0.9:
        return "good"
    return "excellent"


def _icc_one(values, form):
    """ICC and full-precision 95% CI of an (n, k) complete array via pingouin."""
    n, k = values.shape
    if n < 2 or np.ptp(values) == 0:  # ICC undefined: too few subjects or zero variance
        return np.nan, np.nan, np.nan
    data = pd.DataFrame({"s": np.repeat(np.arange(n), k), "r": np.tile(np.arange(k), n),
                         "v": values.ravel()})
    with warnings.catch_warnings(), _pingouin_full_precision():
        warnings.simplefilter("ignore", RuntimeWarning)
        res = pingouin.intraclass_corr(data, targets="s", raters="r", ratings="v",
                                       nan_policy="omit")
    row = res[res["Type"].isin(_FORMS[form])].iloc[0]
    low, high = np.asarray(row["CI95"], dtype=float)
    return float(row["ICC"]), float(low), float(high)


def icc_table(long_df, feature_columns, subject="case_id", rater="repeat", form="ICC(2,1)",
              threshold=0.75):
    """ICC, 95% CI, wCV and stability of many features.

    Parameters
    ----------
    long_df : pandas.DataFrame
        One row per (subject, repeat), one numeric column per feature.
    feature_columns : list of str
        Features to assess (F of them).
    subject, rater : str
        Columns identifying the subject (target) and the repeat / rater / segmentation.
    form : str
        ``"ICC(1,1)"``, ``"ICC(2,1)"`` (two-way random, absolute agreement; default),
        ``"ICC(3,1)"`` (two-way mixed, consistency) or the average-measure ``"ICC(1,k)"``,
        ``"ICC(2,k)"``, ``"ICC(3,k)"``; pingouin's names (``"ICC2"``, ``"ICC(A,1)"``, ...) are
        accepted too.
    threshold : float
        A feature is ``stable`` when the lower 95% CI bound is >= ``threshold``.

    Returns
    -------
    pandas.DataFrame, F rows
        ``feature``, ``icc_form`` (canonical name), ``icc``, ``ci_low``, ``ci_high`` (95%, full
        precision), ``wcv`` (see :func:`within_subject_cv`), ``n_subjects`` (complete subjects
        used), ``n_repeats`` (k), ``stable`` (bool) and ``koo_li_band``. A feature with zero
        variance, or fewer than 2 complete subjects, gets NaN ICC/CI and ``stable = False``.

    Raises
    ------
    ValueError
        On missing or non-numeric columns, duplicated (subject, repeat) pairs, fewer than 2
        repeats, an unknown ``form`` or a non-finite ``threshold`` > 1.

    The CIs are those of R's ``psych::ICC`` (see the module docstring: for ICC(2,k) the
    Spearman-Brown step-up of the ICC(2,1) limits, which equals McGraw & Wong's ICC(A,k) interval).

    References
    ----------
    Shrout PE, Fleiss JL (1979). Intraclass correlations: uses in assessing rater reliability.
    Psychol Bull 86(2):420-428.
    Fleiss JL, Shrout PE (1978). Approximate interval estimation for a certain intraclass
    correlation coefficient. Psychometrika 43:259-262.
    McGraw KO, Wong SP (1996). Forming inferences about some intraclass correlation
    coefficients. Psychol Methods 1(1):30-46.
    Revelle W. psych: Procedures for Psychological, Psychometric, and Personality Research
    (``ICC``). R package, CRAN.
    Koo TK, Li MY (2016). J Chiropr Med 15(2):155-163.

    Examples
    --------
    >>> df = pd.DataFrame({"case_id": [1, 1, 2, 2, 3, 3], "repeat": [1, 2] * 3,
    ...                    "f": [1.0, 1.1, 2.0, 2.1, 3.0, 2.9]})
    >>> t = icc_table(df, ["f"])
    >>> t.loc[0, ["icc", "ci_low"]].astype(float).round(3).tolist(), t.loc[0, "koo_li_band"]
    ([0.994, 0.875], 'excellent')
    """
    form = _canonical_form(form)
    features = list(feature_columns)
    try:
        threshold = float(threshold)
    except (TypeError, ValueError):
        raise ValueError(f"threshold must be a number <= 1; got {threshold!r}") from None
    if not np.isfinite(threshold) or threshold > 1:
        raise ValueError(f"threshold must be a finite ICC value <= 1, e.g. 0.75; got {threshold}")
    wide, repeats = _wide(long_df, features, subject, rater)
    rows = []
    for feature in features:
        values = _complete(wide, feature)
        icc, low, high = _icc_one(values, form)
        rows.append({
            "feature": feature, "icc_form": form, "icc": icc, "ci_low": low, "ci_high": high,
            "wcv": _wcv(values), "n_subjects": int(values.shape[0]), "n_repeats": len(repeats),
            "stable": bool(low >= threshold), "koo_li_band": koo_li_band(icc),
        })
    return pd.DataFrame(rows, columns=_COLUMNS)


def stable_features(icc_df):
    """Names of the features marked stable in an :func:`icc_table` result.

    Parameters
    ----------
    icc_df : pandas.DataFrame
        Output of :func:`icc_table` (columns ``feature`` and ``stable``).

    Returns
    -------
    list of str
        Features with ``stable`` True, in table order.

    Raises
    ------
    ValueError
        If the columns ``feature`` or ``stable`` are missing.

    References
    ----------
    Koo TK, Li MY (2016). J Chiropr Med 15(2):155-163.

    Examples
    --------
    >>> stable_features(pd.DataFrame({"feature": ["a", "b"], "stable": [True, False]}))
    ['a']
    """
    missing = {"feature", "stable"} - set(icc_df.columns)
    if missing:
        raise ValueError(f"icc_df must be an icc_table() result; missing columns {sorted(missing)}")
    return icc_df.loc[icc_df["stable"].astype(bool), "feature"].tolist()


def resolve_icc_form(form, design="test-retest"):
    """The ICC form to use: ``form`` itself, or the design's default when ``form`` is ``"auto"``.

    Parameters
    ----------
    form : str
        ``"auto"`` or one of the six Shrout & Fleiss forms (pingouin's names accepted).
    design : str
        ``"test-retest"``, ``"inter-reader"``, ``"inter-reader-unlinked"`` or ``"perturbation"`` (see
        :data:`ICC_FORM_BY_DESIGN`).

    Returns
    -------
    str : canonical form name, e.g. ``"ICC(2,1)"``.

    Examples
    --------
    >>> resolve_icc_form("auto", "perturbation"), resolve_icc_form("ICC3", "perturbation")
    ('ICC(1,1)', 'ICC(3,1)')
    """
    if str(form).strip().lower() == "auto":
        if design not in ICC_FORM_BY_DESIGN:
            raise ValueError(f"design must be one of {list(ICC_FORM_BY_DESIGN)}; got {design!r}")
        return ICC_FORM_BY_DESIGN[design]
    return _canonical_form(form)


def icc_form_warning(form, design):
    """Why ``form`` is invalid for ``design``, or ``""``: a two-way ICC asked for unlinked raters.

    With unlinked raters (:data:`UNLINKED_DESIGNS`) a rater effect cannot be estimated: the two-way
    ICC(2,·) / ICC(3,·) then treat "first reading", "second reading" as if they were the same
    readers, and their value has no meaning as a reliability (Shrout & Fleiss 1979, case 1). The
    form is still computed as asked; the message goes to the log and the dossier.

    Examples
    --------
    >>> icc_form_warning("ICC(2,1)", "inter-reader-unlinked")[:40]
    'ICC(2,1) was asked for, but the readers '
    >>> icc_form_warning("ICC(1,1)", "inter-reader-unlinked"), icc_form_warning("ICC(2,1)", "inter-reader")
    ('', '')
    """
    form = _canonical_form(form)
    if design not in UNLINKED_DESIGNS or form.startswith("ICC(1,"):
        return ""
    return (f"{form} was asked for, but the readers are not the same people across subjects "
            f"(reproducibility.design: {design}): a two-way ICC needs every subject read by the same "
            "readers, so only the one-way ICC(1,1) / ICC(1,k) is valid (Shrout & Fleiss 1979, case 1); "
            "set reproducibility.icc_form to auto or ICC(1,1)")


def unlinked_repeats(long_df, subject="case_id", rater="repeat"):
    """The repeat table with each subject's readings numbered 1, 2, ... in their order of appearance.

    With unlinked raters the reader ids (e.g. 12 radiologists, any 4 per nodule) do not line up
    across subjects; the one-way model treats a subject's readings as exchangeable, so they are
    numbered within subject, giving the balanced (subject x reading) layout the ICC needs instead of
    a sparse (subject x reader) one that listwise deletion would empty. The original id is kept in
    ``<rater>_original``.

    Examples
    --------
    >>> df = pd.DataFrame({"case_id": [1, 1, 2, 2], "repeat": ["r3", "r7", "r1", "r9"], "f": [1., 2, 3, 4]})
    >>> unlinked_repeats(df)["repeat"].tolist()
    ['1', '2', '1', '2']
    """
    out = long_df.copy()
    out[f"{rater}_original"] = out[rater]
    out[rater] = (out.groupby(subject, sort=False).cumcount() + 1).astype(str)
    return out


def select_stable(icc_df, threshold=0.75, max_wcv=None):
    """Stable-feature selection with the reason for every dropped feature.

    A feature is kept when the lower bound of its ICC 95% CI reaches ``threshold`` (Koo & Li 2016
    apply the bands to the CI; Zwanenburg et al. 2019 select on the lower bound) and, when
    ``max_wcv`` is given, its within-subject CV does not exceed it.

    Parameters
    ----------
    icc_df : pandas.DataFrame
        :func:`icc_table` result (``feature``, ``icc``, ``ci_low``, ``wcv``).
    threshold : float
        Minimum lower 95% CI bound of the ICC.
    max_wcv : float or None
        Cap on the wCV (a fraction, 0.1 = 10%); None: no cap.

    Returns
    -------
    kept : list of str
        Stable features in table order.
    dropped : pandas.DataFrame
        ``feature, icc, ci_low, wcv, reason`` for every feature not kept.

    Examples
    --------
    >>> t = pd.DataFrame({"feature": ["a", "b", "c"], "icc": [0.95, 0.8, 0.99],
    ...                   "ci_low": [0.9, 0.6, 0.97], "wcv": [0.05, 0.1, 0.4]})
    >>> kept, dropped = select_stable(t, 0.75, max_wcv=0.2)
    >>> kept, dropped["reason"].tolist()
    (['a'], ['ICC 95% CI lower bound 0.6 < 0.75', 'wCV 0.4 > 0.2'])
    """
    missing = {"feature", "ci_low"} - set(icc_df.columns)
    if missing:
        raise ValueError(f"icc_df must be an icc_table() result; missing columns {sorted(missing)}")
    kept, dropped = [], []
    for _, row in icc_df.iterrows():
        low = float(row["ci_low"])
        wcv = float(row["wcv"]) if "wcv" in row and pd.notna(row["wcv"]) else float("nan")
        reasons = []
        if np.isnan(low):
            reasons.append("ICC undefined (constant feature or fewer than 2 complete subjects)")
        elif low < threshold:
            reasons.append(f"ICC 95% CI lower bound {low:.3g} < {threshold:g}")
        if max_wcv is not None:
            if np.isnan(wcv):
                reasons.append("wCV undefined (a subject's mean is 0)")
            elif wcv > max_wcv:
                reasons.append(f"wCV {wcv:.3g} > {max_wcv:g}")
        if reasons:
            dropped.append({"feature": row["feature"], "icc": row.get("icc", np.nan), "ci_low": low, "wcv": wcv,
                            "reason": "; ".join(reasons)})
        else:
            kept.append(row["feature"])
    return kept, pd.DataFrame(dropped, columns=["feature", "icc", "ci_low", "wcv", "reason"])
