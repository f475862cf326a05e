"""SMOTE on a feature table: the simple baseline of synthetic augmentation (imbalanced-learn).

SMOTE (Chawla, Bowyer, Hall & Kegelmeyer 2002, JAIR 16:321) makes a synthetic case of class c on the
segment between a real case of class c and one of its k nearest class-c neighbours. Distances are
taken on features z-scored with the given cases' mean and SD (raw radiomics features span orders
of magnitude: a volume in mm³ would otherwise decide every neighbour), and the synthetic cases are
mapped back to the features' units; an interpolation stays one after the affine map. Missing
values are filled with the column median of the given cases first (as the model pipeline imputes).
"""

from __future__ import annotations

import numpy as np

__all__ = ["smote_samples", "smote_balance", "MIN_CASES_PER_CLASS"]

#: SMOTE needs k + 1 cases of a class to find k neighbours; with fewer it uses k = n − 1 down to this.
MIN_CASES_PER_CLASS = 2


def _prepare(X, y):
    X = np.asarray(X, dtype=float)
    y = np.asarray(y)
    if X.ndim != 2 or len(X) != len(y):
        raise ValueError(f"X must be (n_cases, n_features) with one label per case; got {X.shape} and {len(y)} labels")
    med = np.nanmedian(np.where(np.isfinite(X), X, np.nan), axis=0)
    med = np.where(np.isfinite(med), med, 0.0)
    X = np.where(np.isfinite(X), X, med)
    mu, sd = X.mean(axis=0), X.std(axis=0)
    sd = np.where(sd > 0, sd, 1.0)
    return X, y, mu, sd


def smote_samples(X, y, n_per_class: dict, k_neighbors: int = 5, seed: int = 0) -> tuple[np.ndarray, np.ndarray]:
    """New synthetic cases only, ``n_per_class[c]`` of each class ``c``.

    Parameters
    ----------
    X : array (n, p)
        Real cases in the features' units (NaN allowed: median-filled).
    y : array (n,)
        Class labels.
    n_per_class : dict label -> int
        How many synthetic cases of each class (0 allowed).
    k_neighbors : int
        SMOTE's k; lowered to (cases of the smallest generated class − 1) when that is smaller.
    seed : int

    Returns
    -------
    X_new : array (sum(n_per_class), p), in the features' units
    y_new : array (sum(n_per_class),)

    Raises
    ------
    ValueError
        When a class to generate has fewer than :data:`MIN_CASES_PER_CLASS` real cases (named).
    """
    from imblearn.over_sampling import SMOTE

    X, y, mu, sd = _prepare(X, y)
    counts = {c: int(np.sum(y == c)) for c in np.unique(y)}
    wanted = {c: int(n) for c, n in n_per_class.items() if int(n) > 0}
    for c in wanted:
        if counts.get(c, 0) < MIN_CASES_PER_CLASS:
            raise ValueError(f"SMOTE: class {c!r} has {counts.get(c, 0)} real cases; it needs at least "
                             f"{MIN_CASES_PER_CLASS} to interpolate between (add cases or do not generate this class)")
    if not wanted:
        return np.empty((0, X.shape[1])), np.empty(0, dtype=y.dtype)
    k = min(int(k_neighbors), min(counts[c] for c in wanted) - 1)
    strategy = {c: counts[c] + n for c, n in wanted.items()}
    Xr, yr = SMOTE(sampling_strategy=strategy, k_neighbors=k, random_state=seed).fit_resample((X - mu) / sd, y)
    return Xr[len(X):] * sd + mu, yr[len(X):]


def smote_balance(X, y, k_neighbors: int = 5, seed: int = 0):
    """Real cases plus SMOTE cases of the minority class up to the majority's count (SMOTE's
    ``sampling_strategy='auto'``): the augmentation a model's training fold gets. ``X`` keeps its
    type (a DataFrame stays one, same columns); missing values of the real cases come back
    median-filled."""
    import pandas as pd

    columns = X.columns if isinstance(X, pd.DataFrame) else None
    Xf, y_arr, _, _ = _prepare(X, y)
    labels, counts = np.unique(y_arr, return_counts=True)
    n_new = {c: int(counts.max() - n) for c, n in zip(labels, counts)}
    X_new, y_new = smote_samples(Xf, y_arr, n_new, k_neighbors, seed)
    Xa, ya = np.vstack([Xf, X_new]), np.r_[y_arr, y_new]
    return (pd.DataFrame(Xa, columns=columns) if columns is not None else Xa), ya
