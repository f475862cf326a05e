"""Cox partial-likelihood loss for survival outcomes (DeepSurv, Katzman et al. 2018).

The negative log partial likelihood of Cox (1972) with Breslow's (1974) handling of tied event
times: for each event i, ``log sum_{j: t_j >= t_i} exp(r_j) - r_i``, averaged over events.
Without tied event times it equals Efron's form, i.e. lifelines' ``CoxPHFitter`` partial
log-likelihood (tests/test_deep.py checks this).
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
