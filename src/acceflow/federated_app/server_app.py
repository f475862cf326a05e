"""The ServerApp the coordinator's SuperLink runs: pooled standardisation, then FedAvg / FedProx rounds.

It sees counts, sums and parameters only. Run config (``apps/federated/pyproject.toml``, or
``flwr run --run-config``): ``rounds``, ``local-epochs``, ``strategy`` (fedavg | fedprox),
``proximal-mu``, ``penalty`` (l1 | l2), ``C``, ``min-sites`` (SuperNodes to wait for, up to
``wait-seconds``), ``output`` (a JSON file the server writes: the
pooled standardisation, the final coefficients and the rounds table).
"""
from __future__ import annotations

import json
import time

import numpy as np
from flwr.app import ArrayRecord, ConfigRecord, Context, Message, RecordDict
from flwr.serverapp import Grid, ServerApp

from acceflow.federated_app.messages import QUERY_MOMENTS, arrays_to_moments
from acceflow.models.federated import (FederationError, aggregate_round, fit_config, make_strategy,
                                       pooled_standardisation, round_rows)

app = ServerApp()


def _ask(grid: Grid, nodes, content, message_type: str, group: str):
    msgs = [Message(content=content, dst_node_id=node, message_type=message_type, group_id=group) for node in nodes]
    replies = list(grid.send_and_receive(msgs))
    failed = [r for r in replies if r.has_error()]
    if failed or len(replies) != len(nodes):
        raise FederationError(f"{group}: {len(failed)} site(s) failed, {len(nodes) - len(replies)} did not answer: "
                              + "; ".join(r.error.reason for r in failed))
    return replies


@app.main()
def main(grid: Grid, context: Context) -> None:
    rc = context.run_config
    rounds, epochs = int(rc["rounds"]), int(rc["local-epochs"])
    strategy = make_strategy(str(rc["strategy"]), float(rc["proximal-mu"]))
    nodes, waited = sorted(grid.get_node_ids()), 0.0
    while len(nodes) < int(rc["min-sites"]) and waited < float(rc["wait-seconds"]):
        time.sleep(1.0)
        waited += 1.0
        nodes = sorted(grid.get_node_ids())
    if len(nodes) < int(rc["min-sites"]):
        raise FederationError(f"{len(nodes)} SuperNode(s) connected after {waited:.0f} s, min-sites is {rc['min-sites']}: "
                              f"start one SuperNode per site (flower-supernode --node-config \"table='...' site='...'\")")
    replies = _ask(grid, nodes, RecordDict(), f"query.{QUERY_MOMENTS}", "standardisation")
    moments = [arrays_to_moments(str(r.content["site"]["name"]), r.content["counts"]["n"], r.content["counts"]["n_events"],
                                 r.content["moments"].to_numpy_ndarrays()) for r in replies]
    std = pooled_standardisation(moments)
    p = len(std["mean"])
    params = [np.zeros(p), np.zeros(1)]
    config = {**fit_config(strategy, epochs), "penalty": str(rc["penalty"]), "C": float(rc["C"]),
              "n_total": int(std["n"]), "lipschitz": float(std["lipschitz"])}
    scaling = ArrayRecord([np.asarray(std["mean"]), np.asarray(std["scale"])])
    rows = []
    for r in range(1, rounds + 1):
        content = RecordDict({"arrays": ArrayRecord(params), "config": ConfigRecord(config),
                              "standardisation": scaling})
        replies = _ask(grid, nodes, content, "train", f"round {r}")
        updates = [(str(x.content["site"]["name"]), x.content["arrays"].to_numpy_ndarrays(),
                    int(x.content["metrics"]["num-examples"])) for x in replies]
        losses = {str(x.content["site"]["name"]): float(x.content["metrics"]["loss"]) for x in replies}
        new = aggregate_round(strategy, r, updates, losses)
        rows += round_rows(r, params, new, updates, losses)
        params = new
    if rc.get("output"):
        with open(str(rc["output"]), "w") as fh:
            json.dump({"standardisation": std, "coef": params[0].tolist(), "intercept": params[1].tolist(),
                       "rounds": rows}, fh, indent=2)
