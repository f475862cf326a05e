"""ComBat harmonisation as a scikit-learn transformer, and the site effect before / after it.

ComBat (Johnson, Li & Rabinovic 2007, Biostatistics 8:118; for radiomics Orlhac et al. 2018,
J Nucl Med 59:1321; Fortin et al. 2017/2018 for imaging) models feature g of case j at site i as
``y_ijg = alpha_g + gamma_ig + delta_ig * eps_ijg`` and removes the site's location ``gamma`` and
scale ``delta``, shrinking both by empirical Bayes towards the other features of the same site
(parametric priors: gamma ~ Normal, delta^2 ~ Inverse-Gamma, moments estimators of Johnson 2007).
No biological covariate is protected: the outcome must never enter it (that would leak the test
labels into the features), and the model's clinical covariates are left to the model.

Implementation notes (this module, checked against the formulas of Johnson 2007):

* ``fit`` estimates, per feature, ``alpha`` (the mean of the site means weighted by site size =
  the overall mean), the pooled variance ``sigma^2`` (mean squared residual after removing the
  site means), then on the standardised ``z = (y - alpha) / sigma`` the per-site ``gamma_hat``
  (mean) and ``delta_hat^2`` (variance, ddof=1), the priors, and the EB estimates
  ``gamma*``, ``delta*^2`` by the fixed-point iteration of Johnson 2007 (tolerance 1e-4).
* ``mean_only``: no scale is estimated (``delta = 1``) and the site mean is shrunk as neuroCombat
  (``find_parametric_adjustments``) and ``sva::ComBat(mean.only = TRUE)`` do, with the posterior
  mean of a single unit-variance observation, ``gamma* = (t2 gamma_hat + gamma_bar) / (t2 + 1)``
  (their ``postmean(gamma_hat, gamma_bar, 1, 1, t2)``), not with the site size ``n`` that the
  location/scale model uses; ``t2`` and ``gamma_bar`` are the variance (ddof=1) and mean of the
  site's ``gamma_hat`` over the features.
  Everything is frozen; ``transform`` applies ``alpha + sigma * (z - gamma*) / delta*``.
* Missing values are allowed (moments over the observed values; they stay missing).
* A site never seen in ``fit``: ``unseen="error"`` (default) raises; ``unseen="self"`` estimates
  that site's location and scale from the data being transformed (its own cases, never outcomes,
  at least ``min_cases``) with the same EB shrinkage and maps them onto the frozen training
  reference (``alpha``, ``sigma``). This is unsupervised and uses only the new site, but it
  does use the new site's feature distribution: predictions for its cases then depend on which
  other cases of that site are transformed with them. The sites handled this way are recorded
  in ``fallback_sites_`` after each ``transform``.
"""

from __future__ import annotations

import numpy as np
import pandas as pd
from scipy import stats
from sklearn.base import BaseEstimator, TransformerMixin

__all__ = ["ComBat", "site_effect", "site_effect_table", "SITE_EFFECT_COLUMNS"]

SITE_EFFECT_COLUMNS = ["feature", "n_sites", "kw_h_before", "kw_p_before", "kw_h_after", "kw_p_after"]


def _site_moments(z: np.ndarray):
    """Per-feature mean and variance (ddof=1) of one site's standardised values, NaN-aware."""
    n = np.sum(~np.isnan(z), axis=0)
    with np.errstate(invalid="ignore", divide="ignore"):
        mean = np.nanmean(z, axis=0) if z.shape[0] else np.full(z.shape[1], np.nan)
        var = np.nansum((z - mean) ** 2, axis=0) / np.maximum(n - 1, 1)
    return n, mean, var


def _eb(z: np.ndarray, gamma_hat, delta_hat, n, empirical_bayes: bool, mean_only: bool, tol=1e-4, max_iter=1000):
    """Johnson (2007) parametric EB estimates for one site (features along axis 1)."""
    if mean_only:
        delta_hat = np.ones_like(delta_hat)
    ok = np.isfinite(gamma_hat) & np.isfinite(delta_hat) & (delta_hat > 0)
    if not empirical_bayes or ok.sum() < 3:
        return np.where(np.isfinite(gamma_hat), gamma_hat, 0.0), np.where(ok | mean_only, delta_hat, 1.0)
    g_bar, t2 = gamma_hat[ok].mean(), gamma_hat[ok].var(ddof=1)
    m, s2 = delta_hat[ok].mean(), delta_hat[ok].var(ddof=1)
    g_new, d_new = gamma_hat.copy(), delta_hat.copy()
    if mean_only:
        # as neuroCombat and sva::ComBat (mean.only): postmean(gamma.hat, gamma.bar, n = 1, d = 1, t2),
        # i.e. the site mean shrunk as if it were one observation of unit variance, whatever the site size
        g_new = (t2 * gamma_hat + g_bar) / (t2 + 1.0)
        return np.where(ok, g_new, 0.0), np.where(ok, delta_hat, 1.0)
    if s2 <= 0 or t2 <= 0:
        if t2 > 0:
            g_new = (t2 * n * gamma_hat + delta_hat * g_bar) / (t2 * n + delta_hat)
        return np.where(ok, g_new, 0.0), np.where(ok, delta_hat, 1.0)
    a, b = (2 * s2 + m ** 2) / s2, (m * s2 + m ** 3) / s2
    g_old, d_old = gamma_hat.copy(), delta_hat.copy()
    for _ in range(max_iter):
        g_new = (t2 * n * gamma_hat + d_old * g_bar) / (t2 * n + d_old)
        ssq = np.nansum((z - g_new) ** 2, axis=0)
        d_new = (b + 0.5 * ssq) / (n / 2.0 + a - 1.0)
        with np.errstate(invalid="ignore", divide="ignore"):
            change = max(np.nanmax(np.abs(g_new - g_old) / np.abs(g_old)), np.nanmax(np.abs(d_new - d_old) / d_old))
        g_old, d_old = g_new, d_new
        if change < tol:
            break
    return np.where(ok, g_new, 0.0), np.where(ok, d_new, 1.0)


class ComBat(TransformerMixin, BaseEstimator):
    """ComBat harmonisation (Johnson et al. 2007) that fits on training data and applies frozen.

    Parameters
    ----------
    batch : str
        Column of ``X`` (a DataFrame) naming the site / scanner; it is removed from the output.
    empirical_bayes : bool
        Shrink the site parameters by parametric empirical Bayes (True, as ComBat) or use the
        per-site estimates as they are (False, "L/S" harmonisation).
    mean_only : bool
        Adjust the location only (no scale), with neuroCombat's / sva's mean-only shrinkage (see the
        module docstring).
    unseen : {"error", "self"}
        What to do with a site that ``fit`` never saw (see the module docstring).
    min_cases : int
        Fewest cases a site needs to estimate its own location/scale (for ``unseen="self"``).

    Attributes
    ----------
    batches_ : list of str, the training sites
    features_ : list of str, the feature columns (output order)
    alpha_, sigma_ : arrays (n_features,), the frozen reference location and scale
    gamma_, delta_ : dict site -> array, the EB location and scale (delta is a variance)
    fallback_sites_ : list of str, sites handled by the ``self`` fallback in the last transform

    Examples
    --------
    >>> rng = np.random.default_rng(0)
    >>> X = pd.DataFrame({"site": ["a"] * 50 + ["b"] * 50, "f": np.r_[rng.normal(0, 1, 50), rng.normal(5, 3, 50)]})
    >>> out = ComBat(batch="site").fit_transform(X)
    >>> bool(abs(out["f"][:50].mean() - out["f"][50:].mean()) < 0.5)
    True
    """

    def __init__(self, batch: str = "cohort", empirical_bayes: bool = True, mean_only: bool = False,
                 unseen: str = "error", min_cases: int = 5):
        self.batch = batch
        self.empirical_bayes = empirical_bayes
        self.mean_only = mean_only
        self.unseen = unseen
        self.min_cases = min_cases

    def _split(self, X):
        if not isinstance(X, pd.DataFrame) or self.batch not in X:
            raise ValueError(f"ComBat needs a DataFrame with the site column {self.batch!r}")
        sites = X[self.batch].astype(str).to_numpy()
        feats = X.drop(columns=[self.batch])
        return sites, feats

    def _standardise(self, values):
        with np.errstate(invalid="ignore", divide="ignore"):
            return (values - self.alpha_) / self.sigma_

    def fit(self, X, y=None):
        if self.unseen not in ("error", "self"):
            raise ValueError(f"unseen must be 'error' or 'self'; got {self.unseen!r}")
        sites, feats = self._split(X)
        values = feats.apply(pd.to_numeric, errors="coerce").to_numpy(dtype=float)
        self.features_ = list(feats.columns)
        self.batches_ = sorted(set(sites))
        self.alpha_ = np.nanmean(values, axis=0)  # = size-weighted mean of the site means
        resid = values.copy()
        for s in self.batches_:
            rows = sites == s
            with np.errstate(invalid="ignore"):
                resid[rows] -= np.nanmean(values[rows], axis=0)
        var = np.nanmean(resid ** 2, axis=0)
        self.sigma_ = np.where(np.isfinite(var) & (var > 0), np.sqrt(var), 1.0)
        self.alpha_ = np.where(np.isfinite(self.alpha_), self.alpha_, 0.0)
        z = self._standardise(values)
        self.gamma_, self.delta_ = {}, {}
        for s in self.batches_:
            self.gamma_[s], self.delta_[s] = self._site_parameters(z[sites == s])
        return self

    def _site_parameters(self, z):
        n, gamma_hat, delta_hat = _site_moments(z)
        return _eb(z, gamma_hat, delta_hat, n, self.empirical_bayes, self.mean_only)

    def transform(self, X):
        sites, feats = self._split(X)
        if list(feats.columns) != self.features_:
            raise ValueError("ComBat.transform: the feature columns differ from those seen in fit")
        values = feats.apply(pd.to_numeric, errors="coerce").to_numpy(dtype=float)
        z = self._standardise(values)
        out = np.empty_like(z)
        self.fallback_sites_ = []
        for s in pd.unique(sites):
            rows = sites == s
            if s in self.gamma_:
                gamma, delta = self.gamma_[s], self.delta_[s]
            elif self.unseen == "self" and rows.sum() >= self.min_cases:
                gamma, delta = self._site_parameters(z[rows])
                self.fallback_sites_.append(s)
            elif self.unseen == "self":
                raise ValueError(f"ComBat: site {s!r} was not in the training data and has {int(rows.sum())} "
                                 f"case(s) here; the 'self' fallback needs at least {self.min_cases}")
            else:
                raise ValueError(f"ComBat: site {s!r} was not in the training data (sites seen: "
                                 f"{self.batches_}); set model.harmonisation_unseen: self to estimate its "
                                 "location/scale on its own cases, or harmonise without it")
            out[rows] = z[rows] - gamma
            if not self.mean_only:
                out[rows] /= np.sqrt(delta)
        return pd.DataFrame(self.alpha_ + self.sigma_ * out, columns=self.features_, index=X.index)

    def get_feature_names_out(self, input_features=None):
        return np.asarray(self.features_, dtype=object)


def site_effect(values, sites) -> tuple[float, float, int]:
    """Kruskal–Wallis H test of one feature across sites (Kruskal & Wallis 1952, JASA 47:583).

    Returns
    -------
    (H, p, n_sites) : NaN when fewer than 2 sites have a value or the feature is constant.
    """
    v = pd.Series(np.asarray(values, dtype=float))
    s = pd.Series(np.asarray(sites).astype(str))
    groups = [g.dropna().to_numpy() for _, g in v.groupby(s)]
    groups = [g for g in groups if g.size]
    if len(groups) < 2 or np.ptp(np.concatenate(groups)) == 0:
        return float("nan"), float("nan"), len(groups)
    h, p = stats.kruskal(*groups)
    return float(h), float(p), len(groups)


def site_effect_table(table: pd.DataFrame, features, site_column: str = "cohort", train_sites=None,
                      unseen: str = "self", **combat_kw) -> pd.DataFrame:
    """Site effect per feature before and after ComBat fitted on the training sites only.

    Parameters
    ----------
    table : pandas.DataFrame
        One row per case with the site column and the features.
    features : list of str
    site_column : str
    train_sites : list of str, optional
        Sites ComBat is fitted on (default: every site). Other sites are transformed with the
        frozen parameters and the ``unseen`` policy.
    unseen, **combat_kw
        Passed to :class:`ComBat`.

    Returns
    -------
    pandas.DataFrame with :data:`SITE_EFFECT_COLUMNS` (Kruskal–Wallis H and p across all sites,
    before and after).
    """
    features = list(features)
    data = table[[site_column, *features]].copy()
    data[site_column] = data[site_column].astype(str)
    train_sites = [str(s) for s in (train_sites or sorted(data[site_column].unique()))]
    combat = ComBat(batch=site_column, unseen=unseen, **combat_kw)
    combat.fit(data[data[site_column].isin(train_sites)])
    after = combat.transform(data)
    rows = []
    for f in features:
        hb, pb, k = site_effect(data[f], data[site_column])
        ha, pa, _ = site_effect(after[f], data[site_column])
        rows.append({"feature": f, "n_sites": k, "kw_h_before": hb, "kw_p_before": pb, "kw_h_after": ha,
                     "kw_p_after": pa})
    return pd.DataFrame(rows, columns=SITE_EFFECT_COLUMNS)
