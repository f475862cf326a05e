"""Cox partial-likelihood loss for survival outcomes (DeepSurv, Katzman et al. 2018).

The negative log partial likelihood of Cox (1972) with Breslow's (1974) handling of tied event
times: for each event i, ``log sum_{j: t_j >= t_i} exp(r_j) - r_i``, averaged over events.
Without tied event times it equals Efron's form, i.e. lifelines' ``CoxPHFitter`` partial
log-likelihood (tests/test_deep.py checks this).

The loss is invariant to adding a constant to every log-risk; the trainer therefore centres a
network's log-risks on the mean over its training cases, and reads survival at a horizon from
Breslow's baseline hazard of those centred log-risks (:func:`breslow_baseline`, :func:`risk_at`).
"""

from __future__ import annotations


def cox_partial_likelihood_loss(risk, time, event, reduction: str = "mean"):
    """Negative Cox log partial likelihood (Breslow ties).

    Parameters
    ----------
    risk : torch.Tensor, shape (N,) or (N, 1)
        Predicted log-risk (linear predictor) per case.
    time : torch.Tensor, shape (N,)
        Follow-up time (any unit, e.g. days).
    event : torch.Tensor, shape (N,)
        1 for an event, 0 for censoring.
    reduction : str
        ``mean`` (over events; default), ``sum`` (the negative log partial likelihood).

    Returns
    -------
    torch.Tensor, scalar
        0 when the batch has no event (no information; the gradient is zero).
    """
    import torch  # heavy optional dependency: imported on first use

    risk = risk.reshape(-1).float()
    time = time.reshape(-1).float()
    event = event.reshape(-1).float()
    # at-risk set of case i: cases j with t_j >= t_i (ties in time are at risk: Breslow)
    at_risk = (time.unsqueeze(0) >= time.unsqueeze(1)).float()  # [i, j]
    log_denominator = torch.logsumexp(risk.unsqueeze(0) + torch.log(at_risk), dim=1)
    terms = (log_denominator - risk) * event
    n_events = event.sum()
    if n_events == 0:
        return (risk * 0).sum()
    return terms.sum() if reduction == "sum" else terms.sum() / n_events


def breslow_baseline(time, event, risk) -> tuple:
    """Breslow's (1972) estimator of the baseline cumulative hazard for given log-risks.

    ``H0(t) = sum_{event times t_i <= t} d_i / sum_{j: t_j >= t_i} exp(r_j)`` (d_i: events at
    t_i; ties in the Breslow way, as the loss). A right-continuous step function, read as R's
    ``survfit.coxph`` reads it.

    Parameters
    ----------
    time, event, risk : arrays (N,)
        Follow-up (days), event 1/0, log-risk (linear predictor) of the training cases.

    Returns
    -------
    (numpy.ndarray, numpy.ndarray)
        The distinct event times (ascending) and H0 just after each.
    """
    import numpy as np

    time, event, risk = (np.asarray(a, dtype=float).reshape(-1) for a in (time, event, risk))
    times = np.unique(time[event == 1])
    w = np.exp(risk - risk.max())  # scaled for stability; undone below
    at_risk = np.array([w[time >= t].sum() for t in times])
    deaths = np.array([event[time == t].sum() for t in times])
    return times, np.cumsum(deaths / at_risk) * np.exp(-risk.max())


def risk_at(times, cumhaz, risk, t) -> "np.ndarray":
    """Predicted probability of the event by ``t``: ``1 - exp(-H0(t) exp(r))`` (H0 from :func:`breslow_baseline`)."""
    import numpy as np

    times, cumhaz = np.asarray(times, float), np.asarray(cumhaz, float)
    i = np.searchsorted(times, float(t), side="right") - 1
    h0 = cumhaz[i] if i >= 0 else 0.0
    return 1.0 - np.exp(-h0 * np.exp(np.asarray(risk, dtype=float)))
