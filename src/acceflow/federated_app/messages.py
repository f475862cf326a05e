"""What travels between the ServerApp and the ClientApps: arrays and numbers in Flower records."""
from __future__ import annotations

import numpy as np
import pandas as pd

QUERY_MOMENTS = "moments"


def read_site_table(path: str):
    """A site's table: feature names, X (n, p) and y (n,) (``case_id``, ``outcome`` and features)."""
    table = pd.read_csv(path, sep="\t", dtype={"case_id": str})
    features = [c for c in table.columns if c not in ("case_id", "outcome")]
    return features, table[features].to_numpy(dtype=float), table["outcome"].to_numpy(dtype=float)


def moments_to_arrays(moments: dict) -> list[np.ndarray]:
    return [np.asarray(moments[k], dtype=float) for k in ("count", "sum", "sum_squares")]


def arrays_to_moments(site: str, n: int, n_events: int, arrays) -> dict:
    count, total, squares = (np.asarray(a) for a in arrays)
    return {"site": site, "n": int(n), "n_events": int(n_events), "count": count.astype(int).tolist(),
            "sum": total.tolist(), "sum_squares": squares.tolist()}
