"""Benchmark: the whole demo DAG at its default size, from nothing to the dossier.

Prints the wall time, the number of jobs, the per-rule time from Snakemake's benchmark files,
and each external site's AUC beside the AUC of the generator's true probabilities on the same
cases. Target (issue 2): within 5 minutes on 2 cores.

    .venv/bin/python benchmarks/demo_dag.py [--cores 2] [--keep DIR]
"""

from __future__ import annotations

import argparse
import json
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import pandas as pd
import yaml
from sklearn.metrics import roc_auc_score

REPO = Path(__file__).resolve().parents[1]


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--cores", type=int, default=2)
    parser.add_argument("--keep", help="work folder to keep (default: a temporary one)")
    args = parser.parse_args()
    work = Path(args.keep or tempfile.mkdtemp(prefix="acceflow_bench_"))
    work.mkdir(parents=True, exist_ok=True)
    results = work / "results"
    config = yaml.safe_load((REPO / "config/config.yaml").read_text())
    config["results"] = str(results)
    config["input"]["images"] = str(results / "demo/manifest.tsv")
    config["extraction"]["params"] = str(REPO / "config/radiomics/default.yaml")
    (work / "config.yaml").write_text(yaml.safe_dump(config))
    cmd = [sys.executable, "-m", "snakemake", "--snakefile", str(REPO / "Snakefile"), "--directory", str(work),
           "--cores", str(args.cores), "--configfile", str(work / "config.yaml"), "--quiet", "all"]
    start = time.perf_counter()
    proc = subprocess.run(cmd, capture_output=True, text=True)
    wall = time.perf_counter() - start
    if proc.returncode:
        print(proc.stderr[-3000:])
        return proc.returncode
    bench = []
    for f in (results / "benchmarks").rglob("*.tsv"):
        row = pd.read_csv(f, sep="\t").iloc[0]
        bench.append({"rule": f.relative_to(results / "benchmarks").parts[0].removesuffix(".tsv"), "s": row["s"]})
    bench = pd.DataFrame(bench).groupby("rule")["s"].agg(["count", "sum", "mean"])
    print(f"demo DAG, default size, --cores {args.cores}: wall {wall:.1f} s")
    print(f"cases: {config['demo']['n_train']} train + {config['demo']['n_external']} external; "
          f"scans: {len(pd.read_csv(results / 'ingest/qc.tsv', sep=chr(9)))}")
    print("per-rule job time (s):")
    print(bench.round(2).to_string())
    truth = pd.read_csv(results / "demo/truth.tsv", sep="\t", dtype={"case_id": str})
    print("AUC: model (frozen, external) vs true probabilities on the same cases")
    for cohort in ["train", *config["cohorts"]["external"]]:
        preds = pd.read_csv(results / f"clinical/{cohort}/predictions.tsv", sep="\t", dtype={"case_id": str})
        both = preds.merge(truth, on="case_id")
        m = json.loads((results / f"clinical/{cohort}/metrics.json").read_text())
        print(f"  {cohort:7s} n={m['n']:4d} model {m['auc']:.3f} [{m['auc_ci_low']:.3f}, {m['auc_ci_high']:.3f}]  "
              f"truth {roc_auc_score(both['outcome'], both['true_probability']):.3f}")
    print(f"results in {results}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
