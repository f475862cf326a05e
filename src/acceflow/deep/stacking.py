"""Late fusion of the deep biomarker: a separate model per source, combined by stacking.

Sources: one network per modality (an ``early`` network with that modality as its one channel,
:func:`acceflow.deep.train.fit`) and, with ``deep.clinical_covariates``, a clinical model
(unpenalised logistic regression, or unpenalised Cox regression for survival, on the covariates
imputed by the training median and standardised). A meta-learner (unpenalised logistic
regression on the sources' logits, or an unpenalised Cox model on their log-risks) combines them
and is fitted on **out-of-fold predictions only** (stacked generalisation, Wolpert 1992, Neural
Networks 5:241; Breiman 1996, Machine Learning 24:49):

* the sources' out-of-fold predictions Z of the training cohort come from ``cv_folds``-fold
  cross-validation by case (each source trained on the other folds);
* the final meta-learner is fitted on Z; the final sources are refitted on every training case
  and frozen (as scikit-learn's ``StackingClassifier`` does);
* the stack's own out-of-fold prediction of fold k applies a meta-learner fitted on the rows of Z
  outside fold k (cross-fitting), so no outcome of fold k enters the meta-learner that predicts
  it. The sources that produced those rows saw fold k's cases in training; a fully nested
  cross-validation would remove that too, at ``cv_folds`` times the cost in networks.

Survival: the stack's linear predictor is centred on its training rows and the risk of the event
by a horizon is read from Breslow's baseline of those rows (:mod:`acceflow.deep.cox`).
"""

from __future__ import annotations

import numpy as np

from acceflow.deep.cox import breslow_baseline, risk_at


def _logit(p):
    p = np.clip(np.asarray(p, dtype=np.float64), 1e-6, 1 - 1e-6)
    return np.log(p / (1 - p))


def meta_inputs(outputs: np.ndarray, survival: bool) -> np.ndarray:
    """The meta-learner's inputs from source outputs (N, S): logits of probabilities (binary), log-risks as they are (survival)."""
    outputs = np.asarray(outputs, dtype=np.float64)
    return outputs if survival else _logit(outputs)


def fit_linear(Z: np.ndarray, survival: bool, y=None, time=None, event=None) -> dict:
    """Unpenalised logistic (binary) or Cox (survival) regression on standardised columns of Z (N, S).

    Missing values (NaN) are imputed by the column median first. Returns plain numbers: ``median``,
    ``mean``, ``sd`` (per column), ``coef`` (per SD), ``intercept`` (0 for Cox), ``offset`` (Cox:
    the mean linear predictor of the fitting rows, subtracted so that it is centred), and for Cox
    the Breslow ``baseline`` (``time``, ``cumhaz``) of the centred linear predictor.
    """
    Z = np.asarray(Z, dtype=np.float64)
    median = np.nanmedian(Z, axis=0)
    filled = np.where(np.isnan(Z), median, Z)
    mean, sd = filled.mean(axis=0), filled.std(axis=0)
    sd = np.where(sd > 0, sd, 1.0)
    S = (filled - mean) / sd
    if survival:
        import pandas as pd

        from acceflow.models.cox import fit_cox

        cph = fit_cox(pd.DataFrame(S, columns=[f"s{j}" for j in range(S.shape[1])]), time, event, penalizer=0.0)
        coef = cph.params_.to_numpy(dtype=np.float64)
        lp = S @ coef
        offset = float(lp.mean())
        times, cumhaz = breslow_baseline(time, event, lp - offset)
        return {"median": median.tolist(), "mean": mean.tolist(), "sd": sd.tolist(), "coef": coef.tolist(),
                "intercept": 0.0, "offset": offset, "baseline": {"time": times.tolist(), "cumhaz": cumhaz.tolist()}}
    from sklearn.linear_model import LogisticRegression

    lr = LogisticRegression(C=np.inf, max_iter=1000).fit(S, np.asarray(y, dtype=int))  # C=inf: unpenalised
    return {"median": median.tolist(), "mean": mean.tolist(), "sd": sd.tolist(), "coef": lr.coef_[0].tolist(),
            "intercept": float(lr.intercept_[0]), "offset": 0.0, "baseline": None}


def apply_linear(fitted: dict, Z: np.ndarray, survival: bool) -> np.ndarray:
    """Apply :func:`fit_linear`: probability (binary) or centred linear predictor (survival), shape (N,)."""
    Z = np.asarray(Z, dtype=np.float64)
    Z = np.where(np.isnan(Z), np.asarray(fitted["median"]), Z)
    lp = ((Z - np.asarray(fitted["mean"])) / np.asarray(fitted["sd"])) @ np.asarray(fitted["coef"]) + fitted["intercept"]
    return lp - fitted["offset"] if survival else 1.0 / (1.0 + np.exp(-lp))


# the meta-learner is the same regression on the sources' outputs (names kept apart for the test's spies)
def fit_meta(Z, survival, y=None, time=None, event=None) -> dict:
    """The meta-learner (:func:`fit_linear`) on the sources' meta inputs (:func:`meta_inputs`)."""
    return fit_linear(Z, survival, y, time, event)


def apply_meta(meta, Z, survival) -> np.ndarray:
    """The stack's prediction from the sources' meta inputs (:func:`apply_linear`)."""
    return apply_linear(meta, Z, survival)


def stack(sources: dict, folds: list, survival: bool, y=None, time=None, event=None, horizon: float | None = None,
          log=print) -> dict:
    """Stacked generalisation of several sources, fitted on out-of-fold predictions only.

    Parameters
    ----------
    sources : dict
        Source name -> ``fit_predict(train_idx, test_idx)``: fits the source on the cases
        ``train_idx`` and returns its outputs (N_test,) for ``test_idx`` (probabilities for a
        binary outcome, log-risks for survival).
    folds : list of (train_idx, test_idx)
        The cross-validation folds by case (every case held out once).
    survival : bool
    y : array (N,), or time, event : arrays (N,)
    horizon : float, optional
        Survival: also the held-out risk of the event by ``horizon`` days.

    Returns
    -------
    dict
        ``Z`` (N, S): out-of-fold source outputs; ``oof`` (N,): the stack's cross-fitted
        out-of-fold prediction; ``oof_at_horizon`` (survival with ``horizon``); ``meta``: the final
        meta-learner (fitted on every row of Z); ``names``: the source order.
    """
    names = list(sources)
    n = len(y if y is not None else time)
    Z = np.full((n, len(names)), np.nan)
    for k, (tr, te) in enumerate(folds, 1):
        for j, name in enumerate(names):
            log(f"late fusion: fold {k}/{len(folds)}, source {name}: {len(tr)} training, {len(te)} held-out cases")
            Z[te, j] = sources[name](tr, te)
    M = meta_inputs(Z, survival)
    sub = (lambda idx: {"y": np.asarray(y)[idx]}) if not survival else \
        (lambda idx: {"time": np.asarray(time)[idx], "event": np.asarray(event)[idx]})
    oof, at_h = np.full(n, np.nan), np.full(n, np.nan)
    for tr, te in folds:
        meta = fit_meta(M[tr], survival, **sub(tr))
        oof[te] = apply_meta(meta, M[te], survival)
        if survival and horizon is not None:
            at_h[te] = risk_at(meta["baseline"]["time"], meta["baseline"]["cumhaz"], oof[te], horizon)
    meta = fit_meta(M, survival, **sub(np.arange(n)))
    out = {"Z": Z, "oof": oof, "meta": meta, "names": names}
    if survival and horizon is not None:
        out["oof_at_horizon"] = at_h
    return out
