"""Distribution shift between sites: the maximum mean discrepancy (MMD) with an RBF kernel.

The MMD (Gretton, Borgwardt, Rasch, Schölkopf & Smola 2012, "A kernel two-sample test", JMLR
13:723) is the distance between the kernel mean embeddings of two distributions P and Q:

    MMD^2 = E k(x, x') + E k(y, y') - 2 E k(x, y),    x, x' ~ P,  y, y' ~ Q.

:func:`mmd2_unbiased` is its unbiased estimate ``MMD^2_u`` (Gretton 2012, Lemma 6, eq. 3): the
within-sample means leave out the diagonal, so the estimate is centred on 0 when P = Q and can be
slightly negative. The kernel is the Gaussian RBF ``k(a, b) = exp(-||a - b||^2 / (2 h^2))`` with
the bandwidth ``h`` from the median heuristic (Gretton 2012, section 8: ``h`` = the median
Euclidean distance between the points of the pooled sample). :func:`mmd_test` gives the
permutation p value (Gretton 2012, section 5; the site labels permuted over the pooled sample,
``p = (1 + #{MMD^2_perm >= MMD^2_obs}) / (1 + B)``, Phipson & Smyth 2010).

Closed form used by the tests: for P = N(mu_1, s^2 I_d), Q = N(mu_2, s^2 I_d) and bandwidth h,
``MMD^2 = 2 c (1 - exp(-||mu_1 - mu_2||^2 / (2 (h^2 + 2 s^2))))`` with
``c = (h^2 / (h^2 + 2 s^2))^(d/2)`` (:func:`gaussian_mmd2`).
"""

from __future__ import annotations

import numpy as np
from scipy.spatial.distance import cdist, pdist

__all__ = ["median_bandwidth", "rbf_kernel", "mmd2_unbiased", "mmd_test", "gaussian_mmd2"]


def _matrix(x, name: str) -> np.ndarray:
    a = np.asarray(x, dtype=float)
    if a.ndim == 1:
        a = a[:, None]
    if a.ndim != 2:
        raise ValueError(f"{name} must be a (n_samples, n_features) array; got shape {a.shape}")
    if not np.isfinite(a).all():
        raise ValueError(f"{name} holds missing or infinite values; impute or drop those cases / features first")
    return a


def median_bandwidth(Z) -> float:
    """The median heuristic bandwidth: the median Euclidean distance between distinct points of ``Z``.

    Parameters
    ----------
    Z : array (n, d), n >= 2

    Returns
    -------
    float
        ``h`` (in the units of ``Z``); 1.0 when every point is identical (median distance 0).
    """
    Z = _matrix(Z, "Z")
    if len(Z) < 2:
        raise ValueError("the median heuristic needs at least 2 points")
    h = float(np.median(pdist(Z)))
    return h if h > 0 else 1.0


def rbf_kernel(A, B, bandwidth: float) -> np.ndarray:
    """Gaussian RBF kernel matrix ``exp(-||a_i - b_j||^2 / (2 h^2))``, shape (len(A), len(B))."""
    if not bandwidth > 0:
        raise ValueError(f"the RBF bandwidth must be positive; got {bandwidth}")
    d2 = cdist(_matrix(A, "A"), _matrix(B, "B"), "sqeuclidean")
    return np.exp(-d2 / (2.0 * float(bandwidth) ** 2))


def _mmd2_from_kernel(K: np.ndarray, in_x: np.ndarray) -> float:
    """Unbiased MMD^2 from the pooled kernel matrix and a boolean mask of the first sample."""
    m, n = int(in_x.sum()), int((~in_x).sum())
    kxx = K[np.ix_(in_x, in_x)]
    kyy = K[np.ix_(~in_x, ~in_x)]
    kxy = K[np.ix_(in_x, ~in_x)]
    return float((kxx.sum() - np.trace(kxx)) / (m * (m - 1)) + (kyy.sum() - np.trace(kyy)) / (n * (n - 1))
                 - 2.0 * kxy.mean())


def _mmd2_many(K: np.ndarray, in_x: np.ndarray) -> np.ndarray:
    """:func:`_mmd2_from_kernel` for many label vectors at once (rows of the boolean ``in_x`` (B, n))."""
    a = in_x.astype(float)
    b = 1.0 - a
    m, n = a.sum(1), b.sum(1)
    diag = np.diag(K)
    Ka = a @ K
    sxx = np.einsum("ij,ij->i", Ka, a) - a @ diag
    sxy = np.einsum("ij,ij->i", Ka, b)
    syy = np.einsum("ij,ij->i", b @ K, b) - b @ diag
    return sxx / (m * (m - 1)) + syy / (n * (n - 1)) - 2.0 * sxy / (m * n)


def mmd2_unbiased(X, Y, bandwidth: float | None = None) -> float:
    """Unbiased estimate of the squared MMD between the samples ``X`` and ``Y`` (Gretton et al. 2012, eq. 3).

    Parameters
    ----------
    X : array (m, d), m >= 2
    Y : array (n, d), n >= 2
        Samples of the two distributions, same features (columns) in the same units.
    bandwidth : float, optional
        RBF bandwidth ``h``; default the median heuristic on the pooled sample (:func:`median_bandwidth`).

    Returns
    -------
    float
        ``MMD^2_u`` (unitless, at most 2; about 0, possibly slightly negative, when X and Y come
        from one distribution).

    Raises
    ------
    ValueError
        Fewer than 2 cases in a sample, different feature counts, or missing values.
    """
    X, Y = _matrix(X, "X"), _matrix(Y, "Y")
    _check_pair(X, Y)
    Z = np.vstack([X, Y])
    h = median_bandwidth(Z) if bandwidth is None else float(bandwidth)
    return _mmd2_from_kernel(rbf_kernel(Z, Z, h), np.r_[np.ones(len(X), bool), np.zeros(len(Y), bool)])


def _check_pair(X, Y):
    if len(X) < 2 or len(Y) < 2:
        raise ValueError(f"the MMD needs at least 2 cases per sample; got {len(X)} and {len(Y)}")
    if X.shape[1] != Y.shape[1]:
        raise ValueError(f"the samples have different feature counts ({X.shape[1]} and {Y.shape[1]})")


def mmd_test(X, Y, n_permutations: int = 1000, seed: int = 0, bandwidth: float | None = None) -> dict:
    """Kernel two-sample test: unbiased MMD^2 with a permutation p value (Gretton et al. 2012).

    The kernel matrix of the pooled sample is computed once (the bandwidth fixed by the median
    heuristic on the pooled sample, which a permutation does not change); each permutation
    reassigns the ``len(X)`` "X" labels at random over the pooled cases.

    Parameters
    ----------
    X, Y : arrays (m, d) and (n, d)
    n_permutations : int
        Permutations B (0: no p value).
    seed : int
        Seed of the permutations (numpy ``default_rng``).
    bandwidth : float, optional
        As :func:`mmd2_unbiased`.

    Returns
    -------
    dict
        ``mmd2`` (float), ``p_value`` (``(1 + #{perm >= observed}) / (1 + B)``; NaN when B = 0),
        ``bandwidth`` (h), ``n_x``, ``n_y``, ``n_permutations``.
    """
    X, Y = _matrix(X, "X"), _matrix(Y, "Y")
    _check_pair(X, Y)
    Z = np.vstack([X, Y])
    h = median_bandwidth(Z) if bandwidth is None else float(bandwidth)
    K = rbf_kernel(Z, Z, h)
    in_x = np.r_[np.ones(len(X), bool), np.zeros(len(Y), bool)]
    observed = _mmd2_from_kernel(K, in_x)
    p = float("nan")
    if n_permutations > 0:
        rng = np.random.default_rng(seed)
        perm = np.array([rng.permutation(in_x) for _ in range(int(n_permutations))])
        p = (1 + int(np.sum(_mmd2_many(K, perm) >= observed - 1e-12))) / (1 + int(n_permutations))
    return {"mmd2": observed, "p_value": float(p), "bandwidth": h, "n_x": len(X), "n_y": len(Y),
            "n_permutations": int(n_permutations)}


def gaussian_mmd2(mu1, mu2, sd: float, bandwidth: float) -> float:
    """Population MMD^2 between N(mu1, sd^2 I) and N(mu2, sd^2 I) under the RBF kernel of ``bandwidth``.

    ``2 c (1 - exp(-||mu1 - mu2||^2 / (2 (h^2 + 2 sd^2))))``, ``c = (h^2 / (h^2 + 2 sd^2))^(d/2)``:
    the Gaussian integrals of E k(x, x') (x - x' ~ N(0, 2 sd^2 I)) and E k(x, y)
    (x - y ~ N(mu1 - mu2, 2 sd^2 I)). The known answer :func:`mmd2_unbiased` is tested against.
    """
    mu1, mu2 = np.atleast_1d(np.asarray(mu1, float)), np.atleast_1d(np.asarray(mu2, float))
    h2, s2, d = float(bandwidth) ** 2, float(sd) ** 2, mu1.size
    c = (h2 / (h2 + 2 * s2)) ** (d / 2)
    return float(2 * c * (1 - np.exp(-np.sum((mu1 - mu2) ** 2) / (2 * (h2 + 2 * s2)))))
