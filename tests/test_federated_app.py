"""The federated learner as a Flower app (src/acceflow/federated_app, apps/federated): a SuperLink and one
SuperNode per site on localhost, the run submitted with `flwr run`; its coefficients are those of the
in-process federation (acceflow.models.federated.federated_fit) on the same site tables."""
import json
import os
import shutil
import socket
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from acceflow.models.federated import federated_fit

REPO = Path(__file__).resolve().parents[1]
BIN = Path(sys.executable).parent

pytestmark = [pytest.mark.slow, pytest.mark.integration]


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def test_flower_app_runs_end_to_end_on_localhost_superlink_and_supernodes(tmp_path):
    if not (BIN / "flower-superlink").exists():
        pytest.skip("flower-superlink not installed beside this Python")
    rng = np.random.default_rng(0)
    sites = {}
    for site, n in (("hospital_A", 80), ("hospital_B", 120)):
        X = rng.normal(size=(n, 3)) + (0.5 if site == "hospital_B" else 0.0)
        y = (rng.random(n) < 1 / (1 + np.exp(-(X @ [1.0, -1.0, 0.5])))).astype(int)
        pd.DataFrame({"case_id": [f"{site}_{i}" for i in range(n)], "outcome": y,
                      **{f"f{j}": X[:, j] for j in range(3)}}).to_csv(tmp_path / f"{site}.tsv", sep="\t", index=False)
        sites[site] = (X, y)
    home = tmp_path / "flwr_home"
    home.mkdir()
    link = _free_port()
    (home / "config.toml").write_text(f'[superlink]\ndefault = "local"\n\n[superlink.local]\n'
                                      f'address = "127.0.0.1:{link}"\ninsecure = true\n')
    env = {**os.environ, "FLWR_HOME": str(home), "PYTHONPATH": str(REPO / "src"),
           "PATH": f"{BIN}{os.pathsep}{os.environ.get('PATH', '')}"}
    procs = []
    try:
        procs.append(subprocess.Popen([str(BIN / "flower-superlink"), "--insecure", "--port", str(link),
                                       "--disable-runtime-dependency-installation"], env=env,
                                      stdout=open(tmp_path / "superlink.log", "w"), stderr=subprocess.STDOUT))
        for site in sites:
            procs.append(subprocess.Popen(
                [str(BIN / "flower-supernode"), "--insecure", "--superlink", f"127.0.0.1:{link}",
                 "--port", str(_free_port()), "--node-config", f"table='{tmp_path / site}.tsv' site='{site}'"],
                env=env, stdout=open(tmp_path / f"{site}.log", "w"), stderr=subprocess.STDOUT))
        app = tmp_path / "app"
        shutil.copytree(REPO / "apps" / "federated", app)
        out = tmp_path / "server.json"
        deadline = time.time() + 60
        while True:  # the SuperLink takes a few seconds to listen
            run = subprocess.run([str(BIN / "flwr"), "run", ".", "local", "--stream", "--run-config",
                                  f"rounds=3 local-epochs=5 output='{out}'"], cwd=app, env=env,
                                 capture_output=True, text=True, timeout=300)
            if "unavailable" not in run.stdout + run.stderr or time.time() > deadline:
                break
            time.sleep(2)
        assert out.exists(), run.stdout[-3000:] + run.stderr[-3000:]
    finally:
        for p in reversed(procs):
            p.terminate()
        for p in procs:
            try:
                p.wait(timeout=20)
            except subprocess.TimeoutExpired:
                p.kill()
    result = json.loads(out.read_text())
    std, params, history = federated_fit(sites, rounds=3, local_epochs=5)
    np.testing.assert_allclose(result["coef"], params[0], rtol=1e-10, atol=1e-12)
    np.testing.assert_allclose(result["intercept"], params[1], rtol=1e-10, atol=1e-12)
    assert result["standardisation"]["sites"] == {"hospital_A": 80, "hospital_B": 120}
    rounds = pd.DataFrame(result["rounds"])
    assert len(rounds) == 6 and set(rounds["site"]) == set(sites)
    np.testing.assert_allclose(rounds.sort_values(["round", "site"])["loss"].to_numpy(),
                               history.sort_values(["round", "site"])["loss"].to_numpy(), rtol=1e-9)
