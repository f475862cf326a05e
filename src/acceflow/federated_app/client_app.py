"""The ClientApp a hospital's SuperNode runs: shares its moments once, then fits locally each round."""
from __future__ import annotations

import numpy as np
from flwr.app import ArrayRecord, ConfigRecord, Context, Message, MetricRecord, RecordDict
from flwr.clientapp import ClientApp

from acceflow.federated_app.messages import QUERY_MOMENTS, moments_to_arrays, read_site_table
from acceflow.models.federated import LogisticSiteClient, site_moments, standardise

app = ClientApp()


def _site(context: Context):
    cfg = context.node_config
    features, X, y = read_site_table(str(cfg["table"]))
    return str(cfg.get("site", cfg["table"])), features, X, y


@app.query(QUERY_MOMENTS)
def moments(msg: Message, context: Context) -> Message:
    """Counts, sums and sums of squares of the site's columns (acceflow.models.federated.site_moments)."""
    site, features, X, y = _site(context)
    m = site_moments(X, y, site)
    content = RecordDict({"moments": ArrayRecord(moments_to_arrays(m)), "site": ConfigRecord({"name": site}),
                          "counts": MetricRecord({"n": m["n"], "n_events": m["n_events"], "p": len(features)})})
    return Message(content=content, reply_to=msg)


@app.train()
def train(msg: Message, context: Context) -> Message:
    """One round's local step: the NumPyClient's fit from the global parameters sent."""
    site, _, X, y = _site(context)
    cfg = msg.content["config"]
    std = msg.content["standardisation"].to_numpy_ndarrays()
    client = LogisticSiteClient(standardise(X, std[0], std[1]), y, site, str(cfg["penalty"]), float(cfg["C"]),
                                int(cfg["n_total"]), int(cfg["local_epochs"]), float(cfg["lipschitz"]))
    params, n, metrics = client.fit(msg.content["arrays"].to_numpy_ndarrays(),
                                    {"local_epochs": int(cfg["local_epochs"]),
                                     "proximal_mu": float(cfg.get("proximal_mu", 0.0))})
    content = RecordDict({"arrays": ArrayRecord([np.asarray(a) for a in params]), "site": ConfigRecord({"name": site}),
                          "metrics": MetricRecord({"num-examples": n, "loss": float(metrics["loss"])})})
    return Message(content=content, reply_to=msg)
