"""The audit of synthetic cases against real ones, at the level of the features a model sees.

Every function takes feature matrices (rows = cases, columns = features, in the features' own
units) and returns numbers; nothing here knows where the synthetic cases came from (a GAN's
lesions, SMOTE's interpolations). Three questions, after the taxonomy of Alaa et al. (2022,
"How faithful is your synthetic data?", ICML) and the metrics of SDMetrics / synthcity:

* **Fidelity** (are the synthetic cases distributed like the real ones?): per feature the
  two-sample Kolmogorov–Smirnov test (:func:`scipy.stats.ks_2samp`) with Benjamini–Hochberg
  q-values over features (Benjamini & Hochberg 1995, :func:`scipy.stats.false_discovery_control`),
  the 1-Wasserstein (earth mover's) distance in the feature's units and divided by the real
  feature's SD (:func:`scipy.stats.wasserstein_distance`), and the mutual information of each
  feature with the label in either set (Kraskov-type nearest-neighbour estimate of Ross 2014,
  :func:`sklearn.feature_selection.mutual_info_classif`) — :func:`fidelity_table`; the dependence
  between features as Spearman matrices (:func:`correlation_comparison`: mean absolute
  difference, and SDMetrics' CorrelationSimilarity ``1 - |rho_real - rho_syn| / 2`` averaged over
  pairs); a classifier telling real from synthetic (:func:`detection_auc`; 0.5 = indistinguishable,
  as SDMetrics' LogisticDetection); the Fréchet distance between Gaussians fitted to the z-scored
  features (:func:`frechet_distance`, Heusel et al. 2017's FID formula on radiomics features, as
  MONAI's ``FIDMetric`` computes it on feature matrices).
* **Diversity / mode collapse**: precision and recall of Kynkäänniemi et al. (2019, "Improved
  precision and recall metric for assessing generative models", NeurIPS), k = 5
  (:func:`precision_recall`).
* **Memorisation** (distance to closest record, DCR; Gen–Train vs Holdout–Train, Yale et al. 2020,
  Platzer & Reutterer 2021): :func:`memorisation`.
* **Label invariance**: per class, the share of features whose class-wise KS test rejects at
  q < 0.05 (:func:`label_invariance`), and the intensity range of synthetic lesions against real
  ones (:func:`intensity_range`, from each lesion's first-order minimum and maximum).

All functions raise :class:`ValueError` naming the problem (shape, missing values, too few cases).
"""

from __future__ import annotations

import numpy as np
import pandas as pd
from scipy import linalg, stats
from scipy.spatial.distance import cdist
from sklearn.feature_selection import mutual_info_classif
from sklearn.linear_model import LogisticRegression
from sklearn.metrics import roc_auc_score
from sklearn.model_selection import StratifiedKFold, cross_val_predict
from sklearn.pipeline import make_pipeline
from sklearn.preprocessing import StandardScaler

__all__ = ["fidelity_table", "bh_qvalues", "spearman_matrix", "correlation_comparison", "detection_auc",
           "zscore_by", "memorisation", "precision_recall", "frechet_distance", "label_invariance",
           "intensity_range"]


def _matrix(x, name: str, min_rows: int = 2) -> np.ndarray:
    a = np.asarray(x, dtype=float)
    if a.ndim == 1:
        a = a[:, None]
    if a.ndim != 2:
        raise ValueError(f"{name} must be a (n_cases, n_features) array; got shape {a.shape}")
    if len(a) < min_rows:
        raise ValueError(f"{name} has {len(a)} cases; this statistic needs at least {min_rows}")
    if not np.isfinite(a).all():
        raise ValueError(f"{name} holds missing or infinite values; impute or drop those cases / features first")
    return a


def _pair(real, synthetic, min_rows: int = 2) -> tuple[np.ndarray, np.ndarray]:
    r, s = _matrix(real, "real", min_rows), _matrix(synthetic, "synthetic", min_rows)
    if r.shape[1] != s.shape[1]:
        raise ValueError(f"real has {r.shape[1]} features and synthetic {s.shape[1]}; give both the same columns")
    return r, s


def bh_qvalues(p) -> np.ndarray:
    """Benjamini–Hochberg (1995) adjusted p values (q values) of a vector of p values; NaN kept as NaN."""
    p = np.asarray(p, dtype=float)
    q = np.full_like(p, np.nan)
    ok = np.isfinite(p)
    if ok.any():
        q[ok] = stats.false_discovery_control(p[ok], method="bh")
    return q


def fidelity_table(real, synthetic, features, y_real=None, y_synthetic=None, seed: int = 0) -> pd.DataFrame:
    """Per-feature fidelity of synthetic against real cases.

    Parameters
    ----------
    real : array (n_real, p)
    synthetic : array (n_synthetic, p)
        Same columns, in the features' own units.
    features : sequence of str, length p
    y_real, y_synthetic : arrays (n_real,), (n_synthetic,) of class labels, optional
        When given, the mutual information of each feature with the label in either set.
    seed : int
        Random state of the nearest-neighbour MI estimate (it adds tiny noise to break ties).

    Returns
    -------
    pandas.DataFrame
        One row per feature: ``feature``, ``n_real``, ``n_synthetic``, ``ks_statistic``,
        ``ks_pvalue``, ``ks_qvalue`` (BH over the features of this table), ``wasserstein`` (in the
        feature's units), ``wasserstein_std`` (divided by the real feature's SD, ddof 1; NaN when
        that SD is 0), ``mutual_information_real``, ``mutual_information_synthetic`` (nats; NaN
        without labels or with a single class).
    """
    r, s = _pair(real, synthetic)
    features = list(features)
    if len(features) != r.shape[1]:
        raise ValueError(f"{len(features)} feature names for {r.shape[1]} columns")
    ks = [stats.ks_2samp(r[:, j], s[:, j]) for j in range(r.shape[1])]
    w = np.array([stats.wasserstein_distance(r[:, j], s[:, j]) for j in range(r.shape[1])])
    sd = r.std(axis=0, ddof=1)
    table = pd.DataFrame({
        "feature": features, "n_real": len(r), "n_synthetic": len(s),
        "ks_statistic": [k.statistic for k in ks], "ks_pvalue": [k.pvalue for k in ks],
    })
    table["ks_qvalue"] = bh_qvalues(table["ks_pvalue"])
    table["wasserstein"] = w
    with np.errstate(divide="ignore", invalid="ignore"):
        table["wasserstein_std"] = np.where(sd > 0, w / np.where(sd > 0, sd, 1), np.nan)
    table["mutual_information_real"] = _mutual_information(r, y_real, seed)
    table["mutual_information_synthetic"] = _mutual_information(s, y_synthetic, seed)
    return table


def _mutual_information(X: np.ndarray, y, seed: int) -> np.ndarray:
    if y is None:
        return np.full(X.shape[1], np.nan)
    y = np.asarray(y)
    if len(y) != len(X):
        raise ValueError(f"{len(y)} labels for {len(X)} cases")
    _, counts = np.unique(y, return_counts=True)
    if len(counts) < 2 or counts.min() < 2:
        return np.full(X.shape[1], np.nan)
    return mutual_info_classif(X, y, n_neighbors=min(3, int(counts.min()) - 1), random_state=seed)


def spearman_matrix(X) -> np.ndarray:
    """Spearman rank correlation matrix (p, p) of the columns of ``X``; a constant column gives NaN."""
    X = _matrix(X, "X", 3)
    if X.shape[1] == 1:
        return np.ones((1, 1))
    with np.errstate(invalid="ignore", divide="ignore"):
        rho = np.asarray(stats.spearmanr(X).statistic, dtype=float)
    if rho.ndim == 0:  # two columns: scipy returns the one coefficient
        rho = np.array([[1.0, float(rho)], [float(rho), 1.0]])
    return rho


def correlation_comparison(real, synthetic) -> dict:
    """Dependence between features, real against synthetic (Spearman's rho).

    Returns
    -------
    dict
        ``real`` and ``synthetic`` (p, p) matrices; ``correlation_mae`` (mean of |rho_real − rho_syn|
        over the p(p−1)/2 pairs above the diagonal) and ``correlation_similarity`` (mean of
        1 − |rho_real − rho_syn| / 2 over the same pairs, SDMetrics' CorrelationSimilarity; 1 =
        identical dependence); pairs with a NaN correlation (a constant column) are left out and
        counted in ``n_pairs_undefined``.
    """
    r, s = _pair(real, synthetic, 3)
    a, b = spearman_matrix(r), spearman_matrix(s)
    iu = np.triu_indices(a.shape[0], k=1)
    diff = np.abs(a[iu] - b[iu])
    ok = np.isfinite(diff)
    mae = float(diff[ok].mean()) if ok.any() else float("nan")
    return {"real": a, "synthetic": b, "correlation_mae": mae,
            "correlation_similarity": float(np.mean(1 - diff[ok] / 2)) if ok.any() else float("nan"),
            "n_pairs": int(ok.sum()), "n_pairs_undefined": int((~ok).sum())}


def detection_auc(real, synthetic, folds: int = 5, seed: int = 0) -> float:
    """Cross-validated AUC of a classifier telling real from synthetic cases.

    An L2 logistic regression on standardised features (as SDMetrics' LogisticDetection), stratified
    ``folds``-fold cross-validation (scaler fitted per fold), AUC of the pooled out-of-fold
    probabilities. 0.5: indistinguishable; 1: every synthetic case recognisable. Needs at least
    ``folds`` cases of either kind.
    """
    r, s = _pair(real, synthetic, folds)
    X = np.vstack([r, s])
    y = np.r_[np.zeros(len(r)), np.ones(len(s))]
    model = make_pipeline(StandardScaler(), LogisticRegression(max_iter=2000))
    cv = StratifiedKFold(folds, shuffle=True, random_state=seed)
    p = cross_val_predict(model, X, y, cv=cv, method="predict_proba")[:, 1]
    return float(roc_auc_score(y, p))


def zscore_by(reference, *others) -> list[np.ndarray]:
    """``reference`` and ``others`` z-scored with the reference's mean and SD (ddof 1); a constant
    reference column is centred only (SD taken as 1)."""
    ref = _matrix(reference, "reference")
    mu, sd = ref.mean(axis=0), ref.std(axis=0, ddof=1)
    sd = np.where(sd > 0, sd, 1.0)
    return [(ref - mu) / sd, *[(_matrix(o, "other", 1) - mu) / sd for o in others]]


def memorisation(train, holdout, synthetic, too_close_quantile: float = 0.05) -> dict:
    """Distance to the closest record: synthetic → training against holdout → training.

    The generator was fitted on ``train``; ``holdout`` are real cases it never saw, drawn from the
    same cohorts. On features z-scored with the training mean and SD, the Euclidean distance of
    each synthetic case to its nearest training case is compared with that of each holdout case
    (Yale et al. 2020; Platzer & Reutterer 2021). A faithful, non-copying generator puts its cases
    as far from the training cases as new real cases are (ratio ≈ 1); a copying one at distance 0.

    Returns
    -------
    dict
        ``dcr_synthetic_median``, ``dcr_holdout_median`` (z units), ``memorisation_ratio``
        (synthetic / holdout median; < 1 closer to the training cases than new real cases are),
        ``too_close_threshold`` (the ``too_close_quantile`` quantile of the holdout distances),
        ``share_too_close`` (share of synthetic cases nearer than it: ≈ ``too_close_quantile`` for
        a generator that does not copy, 1 for one that does), ``n_exact_copies`` (distance < 1e-9),
        and the distances themselves (``dcr_synthetic``, ``dcr_holdout``, arrays).
    """
    t, h, s = zscore_by(train, _matrix(holdout, "holdout", 1), _matrix(synthetic, "synthetic", 1))
    if not (t.shape[1] == h.shape[1] == s.shape[1]):
        raise ValueError("train, holdout and synthetic must have the same feature columns")
    d_syn = cdist(s, t).min(axis=1)
    d_hold = cdist(h, t).min(axis=1)
    threshold = float(np.quantile(d_hold, too_close_quantile))
    med_h = float(np.median(d_hold))
    return {"dcr_synthetic_median": float(np.median(d_syn)), "dcr_holdout_median": med_h,
            "memorisation_ratio": float(np.median(d_syn) / med_h) if med_h > 0 else float("nan"),
            "too_close_quantile": float(too_close_quantile), "too_close_threshold": threshold,
            "share_too_close": float(np.mean(d_syn < threshold)) if threshold > 0 else float(np.mean(d_syn <= 0)),
            "n_exact_copies": int(np.sum(d_syn < 1e-9)), "dcr_synthetic": d_syn, "dcr_holdout": d_hold}


def _knn_radii(X: np.ndarray, k: int) -> np.ndarray:
    d = cdist(X, X)
    return np.sort(d, axis=1)[:, k]  # column 0 is the point itself


def precision_recall(real, synthetic, k: int = 5) -> dict:
    """Improved precision and recall of Kynkäänniemi et al. (2019), k-nearest-neighbour manifolds.

    The real manifold is the union of balls around each real case with radius its distance to its
    k-th nearest real neighbour; the synthetic manifold likewise. Precision: share of synthetic
    cases inside the real manifold (fidelity); recall: share of real cases inside the synthetic
    manifold (diversity; low recall = mode collapse). Computed on the given features (z-score them
    first, :func:`zscore_by`). Needs more than ``k`` cases of either kind.
    """
    r, s = _pair(real, synthetic, k + 1)
    r_rad, s_rad = _knn_radii(r, k), _knn_radii(s, k)
    d = cdist(s, r)  # (n_syn, n_real)
    precision = float(np.mean((d <= r_rad[None, :]).any(axis=1)))
    recall = float(np.mean((d.T <= s_rad[None, :]).any(axis=1)))
    return {"precision": precision, "recall": recall, "k": int(k)}


def frechet_distance(real, synthetic) -> float:
    """Fréchet distance between Gaussians fitted to two feature matrices (Heusel et al. 2017).

    ``||mu_r − mu_s||² + tr(S_r + S_s − 2 (S_r S_s)^{1/2})`` with unbiased covariances, the formula of
    MONAI's ``monai.metrics.fid.get_fid_score`` (checked against it in the tests); called on
    z-scored radiomics features (:func:`zscore_by`) it is the Fréchet radiomics distance. A near-
    singular product gets 1e-6 on the diagonals, as MONAI does.
    """
    r, s = _pair(real, synthetic)
    mu_r, mu_s = r.mean(axis=0), s.mean(axis=0)
    c_r, c_s = np.atleast_2d(np.cov(r, rowvar=False)), np.atleast_2d(np.cov(s, rowvar=False))
    covmean = linalg.sqrtm(c_r @ c_s)
    if not np.isfinite(covmean).all():
        eps = np.eye(len(c_r)) * 1e-6
        covmean = linalg.sqrtm((c_r + eps) @ (c_s + eps))
    covmean = np.real(covmean)
    diff = mu_r - mu_s
    return float(diff @ diff + np.trace(c_r) + np.trace(c_s) - 2 * np.trace(covmean))


def label_invariance(real, y_real, synthetic, y_synthetic, alpha: float = 0.05) -> pd.DataFrame:
    """Does each synthetic class look like the same real class?

    For each class: the KS test of every feature, real class-c cases against synthetic class-c
    cases, BH q-values over features; the share of features rejecting at q < ``alpha``. A
    generator that keeps its labels faithful rejects few; one whose labels are shuffled rejects
    every feature that separates the classes.

    Returns
    -------
    pandas.DataFrame
        One row per class: ``stratum`` (the class label as a string), ``n_real``, ``n_synthetic``,
        ``n_features``, ``n_rejected``, ``share_rejected`` (NaN, with ``note``, when a side has
        fewer than 2 cases of the class).
    """
    r, s = _pair(real, synthetic, 1)
    y_r, y_s = np.asarray(y_real), np.asarray(y_synthetic)
    rows = []
    for c in sorted(set(y_r.tolist()) | set(y_s.tolist())):
        a, b = r[y_r == c], s[y_s == c]
        row = {"stratum": str(c), "n_real": len(a), "n_synthetic": len(b), "n_features": r.shape[1]}
        if min(len(a), len(b)) < 2:
            rows.append({**row, "n_rejected": np.nan, "share_rejected": np.nan,
                         "note": f"class {c}: {len(a)} real and {len(b)} synthetic cases; the test needs 2 of each"})
            continue
        q = bh_qvalues([stats.ks_2samp(a[:, j], b[:, j]).pvalue for j in range(r.shape[1])])
        rows.append({**row, "n_rejected": int(np.sum(q < alpha)), "share_rejected": float(np.mean(q < alpha)),
                     "note": ""})
    return pd.DataFrame(rows)


def intensity_range(real_min, real_max, y_real, synthetic_min, synthetic_max, y_synthetic) -> pd.DataFrame:
    """The intensity range of synthetic lesions against real ones, per class and over all cases.

    Parameters
    ----------
    real_min, real_max : array (n_real,)
        Each real lesion's lowest and highest voxel intensity, in the image's units after the
        study's normalisation (HU, SUV, z-scores): pyradiomics' ``firstorder_Minimum`` /
        ``firstorder_Maximum`` of the lesion.
    y_real : array (n_real,)
        Their outcome classes.
    synthetic_min, synthetic_max, y_synthetic : the same for the synthetic lesions.

    Returns
    -------
    pandas.DataFrame
        One row per stratum (``all``, then each class as a string): ``real_low``, ``real_high``
        (the real lesions' lowest minimum and highest maximum), ``synthetic_low``, ``synthetic_high``,
        ``share_within`` (share of synthetic lesions whose whole range lies within the real
        stratum's range; 1 = no synthetic voxel is darker or brighter than any real lesion's),
        ``n_real``, ``n_synthetic``. A stratum without real or synthetic lesions gets NaN.

    Raises
    ------
    ValueError
        When the arrays' lengths differ or hold missing values.
    """
    arrays = [np.asarray(a, dtype=float).ravel() for a in (real_min, real_max, synthetic_min, synthetic_max)]
    y_r, y_s = np.asarray(y_real).ravel(), np.asarray(y_synthetic).ravel()
    if not (len(arrays[0]) == len(arrays[1]) == len(y_r)) or not (len(arrays[2]) == len(arrays[3]) == len(y_s)):
        raise ValueError("intensity_range: each set's minima, maxima and labels must have the same length")
    if not all(np.isfinite(a).all() for a in arrays):
        raise ValueError("intensity_range: lesion minima / maxima hold missing values; drop those lesions first")
    r_lo, r_hi, s_lo, s_hi = arrays
    rows = []
    for stratum, rm, sm in [("all", np.ones(len(y_r), bool), np.ones(len(y_s), bool))] + [
            (str(c), y_r == c, y_s == c) for c in sorted(set(y_r.tolist()) | set(y_s.tolist()))]:
        row = {"stratum": stratum, "n_real": int(rm.sum()), "n_synthetic": int(sm.sum()),
               "real_low": np.nan, "real_high": np.nan, "synthetic_low": np.nan, "synthetic_high": np.nan,
               "share_within": np.nan}
        if rm.any():
            row.update(real_low=float(r_lo[rm].min()), real_high=float(r_hi[rm].max()))
        if sm.any():
            row.update(synthetic_low=float(s_lo[sm].min()), synthetic_high=float(s_hi[sm].max()))
        if rm.any() and sm.any():
            row["share_within"] = float(np.mean((s_lo[sm] >= row["real_low"]) & (s_hi[sm] <= row["real_high"])))
        rows.append(row)
    return pd.DataFrame(rows)
