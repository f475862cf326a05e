"""Benchmark: radiomics extraction of the STS cohort (51 patients x MR + PET = 102 scans) through
the DAG against pyradiomics' own batch command line, on the same preprocessed images and masks with
the same parameter files, then the cost of adding one case.

1. Prepare: build the manifest from the STS layout, run ingest and preprocessing (not compared).
2. Alternate the two arms ``--repeats`` times (A B A B ...), so that machine load hits both alike:
   * DAG: delete ``features/`` and run ``snakemake --cores N <results>/features/features.tsv``
     (the ``extract`` job of every scan, then ``feature_table``);
   * pyradiomics batch: ``pyradiomics <csv> --jobs N --param <params> -o out.csv -f csv`` with
     the preprocessed ``Image,Mask`` of every scan, one call per parameter file (MR z-score, PET).
   Both arms' feature values are compared (they must agree to 1e-9 relative).
3. Add one case (STS_001's scans under a new case id in a copy of the manifest) and time the DAG
   re-run: it should cost about one case (its preprocessing and extraction), not the cohort.

Prints wall and CPU times, the DAG/batch ratio (target: <= 1.0), the per-job time from Snakemake's
benchmark files, the start-up cost of one extraction job, and the load average (``uptime``)
before each timed run: timings on a shared machine are only comparable under similar load.

    .venv/bin/python benchmarks/extraction_sts.py [--cores 2] [--repeats 2] [--keep DIR]

Measured for issue 3 (2 shared cores; alternated runs at load 2.5-3): batch 42.5 s, DAG 53.7 s
(ratio 1.26); the same DAG with pandas imported by the per-scan extract job, as before, 72.1 s (1.70).
The rest of the gap is one process per scan: interpreter, Snakemake's script preamble and the
SimpleITK/numpy/pyradiomics imports cost ~0.3 s per job against 0.3-0.6 s of extraction per STS
scan, while pyradiomics' batch imports once per worker. Snakemake ignores job groups in local runs,
and ``--scheduler greedy`` instead of the ILP scheduler made no difference (53.9 s). Under load 7-10
the ratio was 1.43-1.45: process start-ups suffer most on a busy machine.

Issue 21: extraction is one ``extract_case`` job per case (51 jobs instead of 102), and a job's
imports went from ~0.85 s to ~0.3 s of CPU (acceflow.runtime no longer imports pandas,
acceflow.io.images imports nibabel and pydicom only when it reads a NIfTI or DICOM file). The last
line is ``DAG/batch ratio: X.XX (median of N alternated repeats), load average A, B, C``: the
median of the per-repeat ratios.

Measured 2026-12-02 (3 alternated repeats, load 4-6 from niced background work): DAG 39.9 s, batch
38.3 s, ratio 1.02 (1.18 before Snakemake's scheduler kept one pending timer: common.smk); CPU
72.7 s against 74.1 s (0.96); one added case 10.9 s.

Then (same day, load 4-6 from niced background work): the config schema parsed once per process
with libyaml (it was parsed six times by every Snakemake start-up: a no-op run of this target went
from 2.25 to 1.65 s), ratio 1.02 (DAG 37.0 s, batch 36.3 s); and ``extract_case`` run as a plain
program (``shell:``) instead of ``script:``, whose preamble imports Snakemake in every job (~50 ms
of a ~0.3 s start-up): **ratio 0.97** (per repeat 0.97, 0.94, 1.06; DAG 36.6 s, batch 36.7 s), CPU
64.3 s against 71.1 s (0.89); one added case 7.8 s (its extract_case job 0.9 s). On the quiet machine at
the same code, 5 alternated repeats (load 2.3, the arms' own): **ratio 0.98** (0.98, 0.98, 0.94, 1.00,
0.91; DAG 36.5 s, batch 37.2 s), CPU 0.95; one job's start-up 0.26 s.
"""

from __future__ import annotations

import argparse
import os
import resource
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np
import pandas as pd
import yaml

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO / "src"))

from acceflow.io.manifest import build_manifest_from_layout  # noqa: E402


def children_cpu() -> float:
    """CPU seconds (user + system) of the finished child processes and all they waited for."""
    r = resource.getrusage(resource.RUSAGE_CHILDREN)
    return r.ru_utime + r.ru_stime


def load() -> str:
    """Load average over 1, 5 and 15 minutes, as ``uptime`` prints it."""
    return ", ".join(f"{x:.2f}" for x in os.getloadavg())


def snakemake(work: Path, config: Path, cores: int, *targets: str, extra: tuple = ()) -> float:
    # targets first: --configfile, --quiet and --until take several values
    cmd = [sys.executable, "-m", "snakemake", *targets, "--snakefile", str(REPO / "Snakefile"), "--directory", str(work),
           "--cores", str(cores), "--configfile", str(config), *extra, "--quiet"]
    start = time.perf_counter()
    proc = subprocess.run(cmd, capture_output=True, text=True)
    wall = time.perf_counter() - start
    if proc.returncode:
        sys.exit(f"snakemake failed:\n{proc.stderr[-4000:]}")
    return wall


def pyradiomics_batch(work: Path, groups: dict[str, pd.DataFrame], cores: int, tag: str) -> tuple[float, pd.DataFrame]:
    """One pyradiomics batch call per parameter file; returns the summed wall time and the features."""
    exe = Path(sys.executable).with_name("pyradiomics")
    wall, frames = 0.0, []
    for i, (params, rows) in enumerate(groups.items()):
        csv_in, csv_out = work / f"batch_{i}.csv", work / f"batch_{i}_{tag}.out.csv"
        rows[["Image", "Mask"]].to_csv(csv_in, index=False)
        csv_out.unlink(missing_ok=True)
        cmd = [str(exe), str(csv_in), "--jobs", str(cores), "--param", params, "-o", str(csv_out), "-f", "csv"]
        start = time.perf_counter()
        proc = subprocess.run(cmd, capture_output=True, text=True)
        wall += time.perf_counter() - start
        if proc.returncode:
            sys.exit(f"pyradiomics failed:\n{proc.stderr[-4000:]}")
        out = pd.read_csv(csv_out)
        out["scan_id"] = rows.set_index("Image").loc[out["Image"], "scan_id"].to_numpy()
        frames.append(out)
    return wall, pd.concat(frames, ignore_index=True)


def compare(results: Path, batch: pd.DataFrame) -> tuple[int, float]:
    """Number of values compared and their largest relative difference, DAG vs pyradiomics batch."""
    worst, n = 0.0, 0
    for f in (results / "features/cases").glob("*.tsv"):  # one file per case, one row per scan
        for _, ours in pd.read_csv(f, sep="\t").iterrows():
            theirs = batch.set_index("scan_id").loc[ours["scan_id"]]
            names = [c for c in ours.index if c not in ("scan_id", "error")]
            a, b = ours[names].to_numpy(float), theirs[names].to_numpy(float)
            worst = max(worst, float(np.max(np.abs(a - b) / np.maximum(np.abs(b), 1e-300))))
            n += len(names)
    return n, worst


def job_times(results: Path, rule: str) -> pd.Series:
    """Wall time (s) of each job of a rule, from Snakemake's benchmark files."""
    folder = results / "benchmarks" / rule
    files = sorted(folder.glob("*.tsv")) if folder.is_dir() else [folder.with_suffix(".tsv")]
    return pd.Series([pd.read_csv(f, sep="\t")["s"].iloc[0] for f in files])


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--cores", type=int, default=2)
    parser.add_argument("--repeats", type=int, default=3, help="timed runs per arm, alternated")
    parser.add_argument("--keep", help="work folder to keep (default: a temporary one)")
    args = parser.parse_args()
    work = Path(args.keep or tempfile.mkdtemp(prefix="acceflow_sts_bench_")).resolve()
    work.mkdir(parents=True, exist_ok=True)
    results = work / "results"

    study = yaml.safe_load((REPO / "config/studies/sts.yaml").read_text())
    layout = study["input"].pop("layout")
    manifest = build_manifest_from_layout(str((REPO / layout["root"]).resolve()), layout["images"], layout["masks"],
                                          cases=layout["cases"], clinical=str((REPO / layout["clinical"]).resolve()),
                                          clinical_id=layout["clinical_id"], cohort=layout["cohort"])
    manifest.to_csv(work / "manifest.tsv", sep="\t", index=False)
    study["results"] = str(results)
    study["input"]["images"] = str(work / "manifest.tsv")
    study["extraction"]["params"] = str(REPO / study["extraction"]["params"])
    study["extraction"]["modality_params"] = {m: str(REPO / p) for m, p in study["extraction"]["modality_params"].items()}
    config = work / "sts.yaml"
    config.write_text(yaml.safe_dump(study, sort_keys=False))
    target = str(results / "features/features.tsv")

    print(f"STS: {manifest['case_id'].nunique()} cases, {len(manifest)} scans; --cores {args.cores}; work {work}")
    t = snakemake(work, config, args.cores, str(results / "ingest/scans.tsv"))
    scans = pd.read_csv(results / "ingest/scans.tsv", sep="\t", dtype=str)
    t += snakemake(work, config, args.cores, *[str(results / f"preprocessed/{s}/{f}.nii.gz")
                                               for s in scans["scan_id"] for f in ("image", "mask")])
    print(f"prepare (ingest and preprocessing of {len(scans)} scans; not compared): {t:.1f} s")
    scans["Image"] = [str(results / f"preprocessed/{s}/image.nii.gz") for s in scans["scan_id"]]
    scans["Mask"] = [str(results / f"preprocessed/{s}/mask.nii.gz") for s in scans["scan_id"]]
    params = study["extraction"]["modality_params"]
    scans["params"] = [params.get(m, study["extraction"]["params"]) for m in scans["modality"]]
    groups = {p: rows for p, rows in scans.groupby("params")}

    dag, batch, batch_out, cpu = [], [], None, {"DAG": [], "batch": []}
    for r in range(args.repeats):
        shutil.rmtree(results / "features", ignore_errors=True)
        shutil.rmtree(results / "benchmarks/extract", ignore_errors=True)
        la, c0 = load(), children_cpu()
        dag.append(snakemake(work, config, args.cores, target))
        cpu["DAG"].append(children_cpu() - c0)
        print(f"  run {r + 1}: DAG {dag[-1]:7.1f} s, CPU {cpu['DAG'][-1]:7.1f} s (load before {la})")
        la, c0 = load(), children_cpu()
        wall, batch_out = pyradiomics_batch(work, groups, args.cores, str(r))
        batch.append(wall)
        cpu["batch"].append(children_cpu() - c0)
        print(f"  run {r + 1}: pyradiomics batch {batch[-1]:7.1f} s, CPU {cpu['batch'][-1]:7.1f} s (load before {la})")
    n, worst = compare(results, batch_out)
    feats = pd.read_csv(target, sep="\t")
    qc = pd.read_csv(results / "features/extraction_qc.tsv", sep="\t")
    print(f"feature table: {len(feats)} cases x {feats.shape[1]} columns; {int((qc.status == 'ok').sum())}/{len(qc)} "
          f"scans extracted; NaN cells {int(feats.isna().sum().sum())}")
    print(f"DAG vs batch: {n} values, max relative difference {worst:.1e}")
    d, b = statistics.median(dag), statistics.median(batch)
    ratio = statistics.median(x / y for x, y in zip(dag, batch))
    print(f"median wall: DAG {d:.1f} s, pyradiomics batch {b:.1f} s, ratio of medians {d / b:.3f} (target <= 1.0)")
    print(f"CPU seconds (user + system, every process), median: DAG {statistics.median(cpu['DAG']):.1f} s, batch "
          f"{statistics.median(cpu['batch']):.1f} s, ratio "
          f"{statistics.median(x / y for x, y in zip(cpu['DAG'], cpu['batch'])):.2f} (less sensitive to machine load "
          f"than wall time; wall ~ CPU / cores when both arms keep the cores busy)")
    ext = job_times(results, "extract")
    print(f"extract_case jobs (one per case): n={len(ext)}, sum {ext.sum():.1f} s, mean {ext.mean():.2f} s, "
          f"median {ext.median():.2f} s; feature_table {job_times(results, 'feature_table').sum():.1f} s")
    walls = []
    for _ in range(3):
        start = time.perf_counter()
        subprocess.run([sys.executable, "-m", "snakemake", "--version"], check=True, capture_output=True)
        walls.append(time.perf_counter() - start)
    print(f"Snakemake's own start-up (snakemake --version, median of 3), part of every DAG run: "
          f"{statistics.median(walls):.1f} s (includes the executor plugins' import: the SLURM plugin runs "
          f"'scontrol show config', which waits ~9 s where slurm-client is installed without a controller)")
    # what workflow/scripts/extract_case.py imports (a plain program: no Snakemake script preamble)
    job_imports = "import csv, json, SimpleITK, acceflow.imaging.extract, acceflow.io.images, radiomics.featureextractor"
    startup = {}
    for name, code in (("job", job_imports), ("job + pandas", job_imports + "; import pandas"),
                       ("job + preamble", job_imports + "; from snakemake import script")):
        walls = []
        for _ in range(5):
            start = time.perf_counter()
            subprocess.run([sys.executable, "-c", code], check=True, env={**os.environ, "PYTHONPATH": str(REPO / "src")})
            walls.append(time.perf_counter() - start)
        startup[name] = statistics.median(walls)
    print(f"start-up of one extraction job (interpreter and imports; median of 5): {startup['job']:.2f} s; importing "
          f"pandas in the job would add {startup['job + pandas'] - startup['job']:.2f} s, Snakemake's script: preamble "
          f"{startup['job + preamble'] - startup['job']:.2f} s")

    # one more case: STS_001's scans under a new case id
    first = manifest["case_id"].iloc[0]
    extra = manifest[manifest["case_id"] == first].assign(case_id=f"{first}copy")
    pd.concat([manifest, extra], ignore_index=True).to_csv(work / "manifest.tsv", sep="\t", index=False)
    la = load()
    rerun = snakemake(work, config, args.cores, target)
    new = [f"{first}copy__{m}" for m in extra["modality"]]
    per_new = {"preprocess": sum(pd.read_csv(results / f"benchmarks/preprocess/{s}.tsv", sep="\t")["s"].iloc[0]
                                 for s in new),
               "extract_case": pd.read_csv(results / f"benchmarks/extract/{first}copy.tsv", sep="\t")["s"].iloc[0]}
    print(f"re-run with one case added ({len(new)} scans): {rerun:.1f} s (load before {la}); its jobs: "
          + ", ".join(f"{k} {v:.1f} s" for k, v in per_new.items())
          + f"; ingest {job_times(results, 'ingest').sum():.1f} s; "
          f"cohort extraction {d:.1f} s")
    print(f"results in {results}")
    print(f"DAG/batch ratio: {ratio:.2f} (median of {len(dag)} alternated repeats), load average {load()}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
