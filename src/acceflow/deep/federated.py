"""Federated training of the deep biomarker network with Flower: FedAvg (McMahan et al. 2017) and
FedProx (Li et al. 2020) on the network's state dict; batch normalisation averaged or kept local
(FedBN, Li et al. 2021).

Each site holds its own lesion crops (N_k, C, D, H, W) and outcomes and never shows them. It shares
once its case and event counts and, per channel, the voxel count, sum and sum of squares of its
crops (:func:`crop_moments`), from which the server computes the exact pooled channel mean and SD
that a central fit on the pooled crops would use (:func:`pooled_crop_statistics`). Then, round
after round, a site receives the global network's parameters, trains ``local_epochs`` epochs on its
own crops (:class:`NetworkSiteClient`, a Flower ``NumPyClient``) and returns its parameters and
its case count; the server averages them weighted by the counts with the same Flower strategy
objects as the logistic learner (:func:`acceflow.models.federated.aggregate_round`: ``FedAvg`` /
``FedProx`` ``aggregate_fit``). No protocol of our own.

Choices, stated where a reader checks them:

* **Optimiser.** AdamW with the ``deep`` section's learning rate and weight decay (as the central
  network). Its moment estimates are statistics of the site's own gradients: they stay at the site
  between rounds (the site's private state file), never go to the server. Hence FedAvg of **one**
  site for R rounds of E local epochs *is* central training for R·E epochs with the same seed and
  batch order (tests/test_federated_deep.py checks equality of every tensor).
* **Batch order and randomness.** Epoch ``t`` (counted over the whole federation, t = (round−1)·E
  + e) of site ``s`` draws its permutation, dropout masks and augmentation from
  ``SeedSequence([seed, crc32(s), t])``; nothing depends on how the epochs are cut into rounds. A
  last batch of one case is dropped (batch normalisation needs two).
* **Class balance.** Binary cross-entropy with the positive class weighted by the pooled
  n_negative / n_positive (from the shared counts), as the central network's ``class_weight``.
* **Batch normalisation** (``batch_norm``): ``average`` (plain FedAvg: every tensor of the state
  dict, BN affine parameters and running statistics included, averaged by case count) or
  ``local`` (FedBN, Li et al. 2021: a site trains with its own BN layers, which it keeps between
  rounds; the global network it receives supplies every other layer). A frozen network must
  predict unseen cohorts, so under ``local`` the final network's BN layers are the case-weighted
  average of the sites' last BN layers (the server averages them each round anyway; the sites
  ignore that average while training).
* **No early stopping**: the federation runs a fixed number of rounds (no site holds a validation
  split that the server could watch without seeing data); the last round's global network is the
  model.
* **Device**: ``deep.device`` (CUDA when present under ``auto``), always float32 (no mixed precision).
* **Aggregation in float64**: the strategy's weighted mean is computed on float64 copies, so that
  averaging one site (or identical sites) returns its float32 tensors bit for bit.

References
----------
McMahan B, Moore E, Ramage D, Hampson S, Agüera y Arcas B (2017). Communication-efficient learning
of deep networks from decentralized data. AISTATS, PMLR 54:1273-1282.
Li T, Sahu AK, Zaheer M, Sanjabi M, Talwalkar A, Smith V (2020). Federated optimization in
heterogeneous networks. MLSys 2:429-450.
Li X, Jiang M, Zhang X, Kamp M, Dou Q (2021). FedBN: federated learning on non-IID features via
local batch normalization. ICLR 2021.
"""

from __future__ import annotations

import zlib

import numpy as np
from flwr.client import NumPyClient

from acceflow.deep.networks import build_network
from acceflow.deep.train import augmentation_transform, normalise
from acceflow.models.federated import FederationError, aggregate_round, fit_config, make_strategy, round_rows

__all__ = ["BATCH_NORMS", "crop_moments", "pooled_crop_statistics", "initial_state", "batch_norm_keys",
           "state_arrays", "arrays_state", "NetworkSiteClient", "aggregate_states", "federated_network_fit",
           "central_network_fit", "fitted_network", "save_blob", "load_blob", "FederationError"]

BATCH_NORMS = ("average", "local")


def crop_moments(X, y, site: str) -> dict:
    """What one site shares for the pooled normalisation of its crops: counts, sums and sums of squares.

    Parameters
    ----------
    X : array of shape (n, C, D, H, W)
        The site's crops (raw intensities).
    y : array of shape (n,)
        Its binary outcomes 0/1.
    site : str

    Returns
    -------
    dict
        ``site``, ``n``, ``n_events``, ``in_channels``, ``crop_shape`` (D, H, W) and per channel
        ``count`` (voxels), ``sum``, ``sum_squares`` (float64 sums).

    Raises
    ------
    FederationError
        A site with no case or a single outcome class (named, with the fix).
    """
    X = np.asarray(X)
    y = np.asarray(y, dtype=float)
    n_pos, n_neg = int((y == 1).sum()), int((y == 0).sum())
    if len(y) == 0 or n_pos + n_neg != len(y) or min(n_pos, n_neg) < 1:
        raise FederationError(
            f"site {site}: {n_pos} positive and {n_neg} negative cases with a usable crop (of {len(y)}); a site of "
            f"federated training needs both outcome classes and 0/1 outcomes. Merge the site with another one, or "
            f"leave it out of cohorts.train")
    if X.ndim != 5 or len(X) != len(y):
        raise FederationError(f"site {site}: crops of shape {X.shape} for {len(y)} outcomes; expected (n, C, D, H, W)")
    flat = X.astype(np.float64).transpose(1, 0, 2, 3, 4).reshape(X.shape[1], -1)
    return {"site": site, "n": int(len(y)), "n_events": n_pos, "in_channels": int(X.shape[1]),
            "crop_shape": [int(v) for v in X.shape[2:]], "count": [int(flat.shape[1])] * X.shape[1],
            "sum": flat.sum(axis=1).tolist(), "sum_squares": (flat ** 2).sum(axis=1).tolist()}


def pooled_crop_statistics(moments: list[dict]) -> dict:
    """The pooled channel mean and SD (ddof 0, over every voxel of every training crop) and the class weight.

    What :func:`acceflow.deep.train.channel_stats` would compute on the pooled crops (up to the
    float32 summation order there); an SD of 0 becomes 1.

    Returns
    -------
    dict
        ``n``, ``n_events``, ``pos_weight`` (n_negative / n_positive), ``mean``, ``sd`` (lists (C,)),
        ``in_channels``, ``crop_shape``, ``sites`` ({site: n}).

    Raises
    ------
    FederationError
        When sites' crops differ in channels or shape.
    """
    first = moments[0]
    for m in moments[1:]:
        if m["in_channels"] != first["in_channels"] or m["crop_shape"] != first["crop_shape"]:
            raise FederationError(f"site {m['site']}: crops {m['in_channels']} x {m['crop_shape']}, site "
                                  f"{first['site']}: {first['in_channels']} x {first['crop_shape']}; every site must "
                                  f"crop with the same deep.crop_size and modalities")
    count = np.sum([m["count"] for m in moments], axis=0).astype(np.float64)
    mean = np.sum([m["sum"] for m in moments], axis=0) / count
    var = np.maximum(np.sum([m["sum_squares"] for m in moments], axis=0) / count - mean ** 2, 0.0)
    sd = np.sqrt(var)
    sd[sd == 0] = 1.0
    n = int(sum(m["n"] for m in moments))
    e = int(sum(m["n_events"] for m in moments))
    return {"n": n, "n_events": e, "pos_weight": (n - e) / e, "mean": mean.tolist(), "sd": sd.tolist(),
            "in_channels": int(first["in_channels"]), "crop_shape": list(first["crop_shape"]),
            "sites": {m["site"]: int(m["n"]) for m in moments}}


def _network(settings: dict, in_channels: int):
    return build_network(settings["network"], int(in_channels), settings["fusion"], 1, float(settings["dropout"]))


def initial_state(settings: dict, in_channels: int, seed: int) -> dict:
    """The round-0 global network: ``deep.network`` built after ``torch.manual_seed(seed)``; its state dict."""
    import torch  # heavy optional dependency: imported on first use

    torch.manual_seed(int(seed))
    return {k: v.detach().clone() for k, v in _network(settings, in_channels).state_dict().items()}


def batch_norm_keys(settings: dict, in_channels: int) -> list[str]:
    """The state-dict keys of the network's batch-normalisation layers (affine parameters and running statistics)."""
    import torch  # heavy optional dependency: imported on first use

    model = _network(settings, in_channels)
    keys = []
    for name, module in model.named_modules():
        if isinstance(module, torch.nn.modules.batchnorm._BatchNorm):
            keys += [f"{name}.{k}" for k in module.state_dict()]
    return keys


def state_arrays(state: dict) -> list[np.ndarray]:
    """A state dict's tensors as float64 numpy arrays, in the dict's order (what a site sends)."""
    return [v.detach().cpu().numpy().astype(np.float64) for v in state.values()]


def arrays_state(arrays, template: dict) -> dict:
    """Arrays (in ``template``'s key order) back into tensors of ``template``'s dtypes and shapes.

    Integer buffers (BatchNorm's ``num_batches_tracked``) are rounded.
    """
    import torch  # heavy optional dependency: imported on first use

    if len(arrays) != len(template):
        raise FederationError(f"{len(arrays)} arrays for a network of {len(template)} tensors")
    out = {}
    for (k, t), a in zip(template.items(), arrays):
        a = np.asarray(a)
        if tuple(a.shape) != tuple(t.shape):
            raise FederationError(f"tensor {k}: shape {a.shape}, the network's is {tuple(t.shape)}")
        if not t.is_floating_point():
            a = np.rint(a)
        out[k] = torch.as_tensor(a).to(t.dtype)
    return out


def _epoch_seed(seed: int, site: str, epoch: int) -> int:
    return int(np.random.SeedSequence([int(seed), zlib.crc32(str(site).encode()), int(epoch)]).generate_state(1)[0])


class NetworkSiteClient(NumPyClient):
    """One site's local training of the federated network (a Flower NumPyClient).

    Parameters
    ----------
    X : array of shape (n_k, C, D, H, W)
        The site's crops, raw; normalised here by ``mean`` / ``sd`` (the pooled statistics).
    y : array of shape (n_k,)
        Outcomes 0/1.
    site : str
    settings : dict
        The complete ``deep`` section (network, fusion, dropout, batch_size, learning_rate,
        weight_decay, augmentation).
    template : dict
        A state dict of the network (keys, shapes and dtypes of the parameters exchanged).
    mean, sd : sequences (C,)
        Pooled channel statistics (:func:`pooled_crop_statistics`).
    pos_weight : float
        Pooled n_negative / n_positive.
    seed : int
    batch_norm : {"average", "local"}
    local : dict, optional
        The site's private state from its previous round (:attr:`local`): ``optimizer`` (AdamW's
        state dict) and ``batch_norm`` (the site's BN tensors, used under ``local``).

    ``fit(parameters, config)``: ``config`` holds ``local_epochs``, ``epoch_offset`` (epochs
    already run by the federation) and, for FedProx, ``proximal_mu``. Returns the site's new
    parameters (float64 arrays in ``template`` order), n_k and ``{"loss": mean training loss of
    the last local epoch}``; afterwards :attr:`local` holds the state the site keeps.
    """

    def __init__(self, X, y, site: str, settings: dict, template: dict, mean, sd, pos_weight: float, seed: int,
                 batch_norm: str = "average", local: dict | None = None):
        if batch_norm not in BATCH_NORMS:
            raise ValueError(f"federated.deep.batch_norm {batch_norm!r}: use one of {BATCH_NORMS}")
        self.X = normalise(np.asarray(X, dtype=np.float32), np.asarray(mean, np.float32), np.asarray(sd, np.float32))
        self.y = np.asarray(y, dtype=np.float32)
        self.site, self.settings, self.template = site, dict(settings), template
        self.pos_weight, self.seed, self.batch_norm = float(pos_weight), int(seed), batch_norm
        self.local = local or {}
        self.bn_keys = batch_norm_keys(settings, self.X.shape[1])

    def get_parameters(self, config):
        return state_arrays(self.template)

    def fit(self, parameters, config):
        import torch  # heavy optional dependency: imported on first use

        epochs = int(config.get("local_epochs", 1))
        offset = int(config.get("epoch_offset", 0))
        mu = float(config.get("proximal_mu", 0.0))
        state = arrays_state(parameters, self.template)
        if self.batch_norm == "local" and self.local.get("batch_norm"):
            state.update(self.local["batch_norm"])  # FedBN: the site's own BN layers
        from acceflow.device import select_device

        device = select_device(self.settings.get("device", "auto"))
        model = _network(self.settings, self.X.shape[1])
        model.load_state_dict(state)
        model.to(device)
        anchor = [p.detach().clone() for p in model.parameters()] if mu > 0 else None
        opt = torch.optim.AdamW(model.parameters(), lr=float(self.settings["learning_rate"]),
                                weight_decay=float(self.settings["weight_decay"]))
        if self.local.get("optimizer"):
            opt.load_state_dict(self.local["optimizer"])  # moved to the parameters' device by torch
        bce = torch.nn.BCEWithLogitsLoss(pos_weight=torch.tensor([self.pos_weight], device=device))
        batch = int(self.settings["batch_size"])
        loss_mean = float("nan")
        for epoch in range(offset, offset + epochs):
            s = _epoch_seed(self.seed, self.site, epoch)
            torch.manual_seed(s)  # dropout masks
            order = np.random.default_rng(s).permutation(len(self.y))
            augment = augmentation_transform(s) if self.settings.get("augmentation") else None
            model.train()
            total, count = 0.0, 0
            for start in range(0, len(order), batch):
                idx = order[start:start + batch]
                if len(idx) < 2:
                    continue  # a batch of one case breaks batch normalisation
                xs = self.X[idx]
                if augment is not None:
                    xs = np.stack([np.asarray(augment({"image": x})["image"]) for x in xs])
                xb, yb = torch.as_tensor(xs).to(device), torch.as_tensor(self.y[idx])[:, None].to(device)
                opt.zero_grad(set_to_none=True)
                loss = bce(model(xb)[:, :1], yb)
                if anchor is not None:  # FedProx: mu/2 ||w - w_global||^2
                    loss = loss + mu / 2 * sum(((p - a) ** 2).sum() for p, a in zip(model.parameters(), anchor))
                loss.backward()
                opt.step()
                total += float(loss.detach()) * len(idx)
                count += len(idx)
            loss_mean = total / max(count, 1)
        new = {k: v.detach().cpu().clone() for k, v in model.state_dict().items()}
        optimizer = opt.state_dict()
        for per_param in optimizer["state"].values():  # kept on CPU, so that any machine reads it
            for k, v in per_param.items():
                if torch.is_tensor(v):
                    per_param[k] = v.cpu()
        self.local = {"optimizer": optimizer, "batch_norm": {k: new[k] for k in self.bn_keys}}
        return state_arrays(new), int(len(self.y)), {"loss": float(loss_mean)}

    def evaluate(self, parameters, config):
        import torch  # heavy optional dependency: imported on first use

        model = _network(self.settings, self.X.shape[1])
        model.load_state_dict(arrays_state(parameters, self.template))
        model.eval()
        bce = torch.nn.BCEWithLogitsLoss(pos_weight=torch.tensor([self.pos_weight]))
        with torch.no_grad():
            loss = float(bce(model(torch.as_tensor(self.X))[:, :1], torch.as_tensor(self.y)[:, None]))
        return loss, int(len(self.y)), {}


def aggregate_states(strategy, server_round: int, updates: list[tuple[str, dict, int]], previous: dict,
                     losses: dict[str, float] | None = None) -> tuple[dict, list[dict]]:
    """One round's aggregation of site state dicts with the Flower strategy's ``aggregate_fit``.

    Parameters
    ----------
    strategy : flwr.server.strategy.FedAvg or FedProx
        From :func:`acceflow.models.federated.make_strategy`.
    server_round : int
    updates : list of (site, state dict, n)
    previous : dict
        The global state dict the sites started from (the template of keys and dtypes).
    losses : dict, optional
        Site -> its training loss (for ``rounds.tsv``).

    Returns
    -------
    new : dict
        The case-weighted average state dict (float64 arithmetic, cast back to each tensor's dtype).
    rows : list of dict
        ``rounds.tsv`` rows: ``round, site, n, loss, update_norm, drift`` (Euclidean distances over
        every tensor of the state dict).

    Raises
    ------
    FederationError
        An update with NaN or infinite values (its site and the round named), or other tensors.
    """
    for site, state, _ in updates:
        if list(state) != list(previous):
            raise FederationError(f"round {server_round}: the update of site {site} holds other tensors than the "
                                  f"global network (another deep.network?); re-run the site's round")
    sites = [(site, state_arrays(state), n) for site, state, n in updates]
    new = arrays_state(aggregate_round(strategy, server_round, sites, losses or {}), previous)
    rows = round_rows(server_round, state_arrays(previous), state_arrays(new), sites, losses or {})
    return new, rows


def federated_network_fit(sites: dict, settings: dict, rounds: int, local_epochs: int, seed: int,
                          strategy: str = "fedavg", proximal_mu: float = 0.0, batch_norm: str = "average"):
    """Federated training of the network in one process (the DAG runs the same steps as separate jobs).

    Parameters
    ----------
    sites : dict of str -> (X (n_k, C, D, H, W), y (n_k,))
    settings : dict
        The complete ``deep`` section.

    Returns
    -------
    statistics : dict
        :func:`pooled_crop_statistics`.
    state : dict
        The last round's global state dict.
    rows : list of dict
        ``rounds.tsv`` rows of every round.
    """
    stats = pooled_crop_statistics([crop_moments(X, y, s) for s, (X, y) in sites.items()])
    state = initial_state(settings, stats["in_channels"], seed)
    clients = {s: NetworkSiteClient(X, y, s, settings, state, stats["mean"], stats["sd"], stats["pos_weight"], seed,
                                    batch_norm) for s, (X, y) in sites.items()}
    agg = make_strategy(strategy, proximal_mu)
    rows = []
    for r in range(1, int(rounds) + 1):
        config = {**fit_config(agg, local_epochs), "epoch_offset": (r - 1) * int(local_epochs)}
        updates, losses = [], {}
        for s, client in clients.items():
            arrays, n, metrics = client.fit(state_arrays(state), config)
            updates.append((s, arrays_state(arrays, state), n))
            losses[s] = metrics["loss"]
        state, new_rows = aggregate_states(agg, r, updates, state, losses)
        rows += new_rows
    return stats, state, rows


def central_network_fit(X, y, settings: dict, epochs: int, seed: int, site: str = "pool"):
    """The same training on pooled crops, ``epochs`` epochs in one run (the reference of the one-site identity).

    Returns ``(statistics, state dict)``.
    """
    stats = pooled_crop_statistics([crop_moments(X, y, site)])
    state = initial_state(settings, stats["in_channels"], seed)
    client = NetworkSiteClient(X, y, site, settings, state, stats["mean"], stats["sd"], stats["pos_weight"], seed)
    arrays, _, _ = client.fit(state_arrays(state), {"local_epochs": int(epochs), "epoch_offset": 0})
    return stats, arrays_state(arrays, state)


def fitted_network(state: dict, statistics: dict, settings: dict, device=None) -> dict:
    """The frozen federated network as :func:`acceflow.deep.train.predict` / ``save_model`` take it.

    Binary outcome, no clinical encoder; the crops are normalised by the pooled channel statistics.
    """
    from acceflow.device import select_device

    device = device or select_device(settings.get("device", "auto"))
    model = _network(settings, statistics["in_channels"])
    model.load_state_dict(state)
    model.to(device).eval()
    return {"model": model, "mean": np.asarray(statistics["mean"], dtype=np.float32),
            "sd": np.asarray(statistics["sd"], dtype=np.float32), "settings": dict(settings), "survival": False,
            "clinical": None, "risk_offset": 0.0, "baseline": None, "history": [], "n_train": int(statistics["n"])}


def save_blob(content: dict, path) -> str:
    """Write a federation file (state dicts, optimiser state, plain values) atomically with ``torch.save``;
    return its SHA-256. Readable by :func:`load_blob` with ``weights_only=True``."""
    import io

    import torch  # heavy optional dependency: imported on first use

    from acceflow.runtime import atomic_write_bytes, sha256_bytes

    buffer = io.BytesIO()
    torch.save(content, buffer)
    atomic_write_bytes(buffer.getvalue(), path)
    return sha256_bytes(buffer.getvalue())


def load_blob(path, kind: str) -> dict:
    """Read a federation file with ``torch.load(weights_only=True)``: tensors and plain containers only, no code.

    Raises
    ------
    FederationError
        When the file is not a weights-only file of this ``kind`` (``format`` entry), naming it and the fix.
    """
    import pickle

    import torch  # heavy optional dependency: imported on first use

    try:
        blob = torch.load(path, map_location="cpu", weights_only=True)
    except (pickle.UnpicklingError, RuntimeError, EOFError, ValueError) as exc:
        raise FederationError(f"{path}: refused: not a weights-only federation file ({type(exc).__name__}: {exc}); "
                              f"delete it and re-run its rule") from exc
    if not isinstance(blob, dict) or blob.get("format") != f"acceflow.federated_deep.{kind}/1":
        raise FederationError(f"{path}: not a federated network {kind} file; delete it and re-run its rule")
    return blob
