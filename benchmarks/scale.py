"""Benchmark: how the demo DAG's cost grows with the cohort, and what Snakemake itself costs.

For each cohort size (cases in all; half train at site_A, a quarter at each external site, 10%
of the cases with a test-retest rescan) the whole DAG runs from nothing to the dossier on
``--cores`` cores and this prints:

* wall time, jobs, and seconds per case;
* peak memory: the largest sum of resident memory of the Snakemake process tree (sampled every
  0.2 s with psutil) and the largest single process;
* CPU seconds per case: user + system time of every process of the run (Snakemake and its jobs),
  which other load on a shared machine inflates far less than wall time;
* the time of a no-op re-run (``snakemake`` again on the finished results: "Nothing to be done"),
  and of ``snakemake -n`` on them.

The last line is ``scale: <s/case at the smallest size> <s/case at the largest size> noop <s>``
(the no-op re-run at the largest size): seconds per case roughly flat from 50 to 400 cases is
linear growth. Snakemake's own start-up is part of every figure; where slurm-client is installed
without a reachable controller, the SLURM executor plugin's ``scontrol show config`` (run when
Snakemake imports its plugins) waits ~9 s of it, which the ``snakemake --version`` line shows.

Then Snakemake's scheduling overhead per job: a DAG of ``--overhead-jobs`` jobs that do nothing
(``shell: "touch {output}"``), wall time divided by jobs, and the same for ``run:`` jobs.

    .venv/bin/python benchmarks/scale.py [--sizes 50 100 200 400] [--cores 2] [--keep DIR]

Measured 2026-12-02 (2 cores, load 5.5-7.7 from niced background work): 50 / 100 / 200 / 400 cases in
119.3 / 135.0 / 198.1 / 314.5 s (171 / 276 / 486 / 906 jobs), i.e. 0.31-0.63 s per added case over
~100 s of fixed work (training, explanations, dossier); peak memory of the process tree 1.38-1.41 GB
at every size; Snakemake's overhead 22 ms per job. Last line: ``scale: 2.39 0.79 noop 2.7``.
"""

from __future__ import annotations

import argparse
import os
import resource
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path

import psutil
import yaml

REPO = Path(__file__).resolve().parents[1]


def children_cpu() -> float:
    """User + system CPU seconds of every finished child process (and theirs, once waited for)."""
    usage = resource.getrusage(resource.RUSAGE_CHILDREN)
    return usage.ru_utime + usage.ru_stime


def run_measured(cmd: list[str], cwd: Path | None = None) -> tuple[float, int, int, subprocess.CompletedProcess]:
    """Run ``cmd``; return wall seconds, peak tree RSS and peak single-process RSS (bytes)."""
    start = time.perf_counter()
    proc = subprocess.Popen(cmd, cwd=cwd, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    peak = {"tree": 0, "single": 0}

    def sample():
        root = psutil.Process(proc.pid)
        while proc.poll() is None:
            try:
                procs = [root, *root.children(recursive=True)]
                rss = []
                for p in procs:
                    try:
                        rss.append(p.memory_info().rss)
                    except psutil.Error:
                        pass
                peak["tree"] = max(peak["tree"], sum(rss))
                peak["single"] = max(peak["single"], max(rss, default=0))
            except psutil.Error:
                pass
            time.sleep(0.2)

    sampler = threading.Thread(target=sample, daemon=True)
    sampler.start()
    out, err = proc.communicate()
    wall = time.perf_counter() - start
    sampler.join(timeout=2)
    return wall, peak["tree"], peak["single"], subprocess.CompletedProcess(cmd, proc.returncode, out, err)


def demo_config(results: Path, n_cases: int) -> dict:
    config = yaml.safe_load((REPO / "config/config.yaml").read_text())
    n_ext = max(n_cases // 4, 5)
    config["results"] = str(results)
    config["seed"] = 7  # with this seed every size has >= 10 training events and >= 3 per external site
    config["demo"] = {"enabled": True, "n_train": n_cases - 2 * n_ext, "n_external": [n_ext, n_ext],
                      "n_retest": n_cases // 10, "n_reader": 0}
    config["input"]["images"] = str(results / "demo/manifest.tsv")
    config["extraction"]["params"] = str(REPO / "config/radiomics/default.yaml")
    return config


def snakemake_cmd(work: Path, cores: int, *extra: str) -> list[str]:
    return [sys.executable, "-m", "snakemake", "--snakefile", str(REPO / "Snakefile"), "--directory", str(work),
            "--cores", str(cores), "--configfile", str(work / "config.yaml"), *extra]


def count_jobs(log: str) -> int:
    return sum(1 for line in log.splitlines() if line.startswith("Finished job"))


def overhead(work: Path, n_jobs: int, cores: int, kind: str) -> float:
    body = 'shell: "touch {output}"' if kind == "shell" else "run:\n        open(output[0], 'w').close()"
    (work / "Snakefile").write_text(
        f"rule all:\n    input: expand('out/{{i}}.txt', i=range({n_jobs}))\n\n"
        f"rule job:\n    output: 'out/{{i}}.txt'\n    {body}\n")
    wall, *_ = run_measured([sys.executable, "-m", "snakemake", "--cores", str(cores), "--quiet"], cwd=work)
    return wall / n_jobs


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--sizes", type=int, nargs="+", default=[50, 100, 200, 400])
    parser.add_argument("--cores", type=int, default=2)
    parser.add_argument("--overhead-jobs", type=int, default=200, help="0: skip the overhead measurement")
    parser.add_argument("--keep", help="work folder to keep (default: a temporary one)")
    args = parser.parse_args()
    root = Path(args.keep or tempfile.mkdtemp(prefix="acceflow_scale_"))
    root.mkdir(parents=True, exist_ok=True)
    print(f"demo DAG on --cores {args.cores}, {os.cpu_count()} CPUs seen, load average {os.getloadavg()[0]:.1f}")
    version, *_ = run_measured([sys.executable, "-m", "snakemake", "--version"])
    print(f"snakemake --version (interpreter, imports, executor plugins): {version:.1f} s")
    print(f"{'cases':>6} {'scans':>6} {'jobs':>5} {'wall s':>8} {'s/case':>7} {'CPU s/case':>10} {'peak tree MB':>13} "
          f"{'peak proc MB':>13} {'no-op re-run s':>15} {'-n s':>6}", flush=True)
    per_case, cpu_case, noop = {}, {}, None
    for n in args.sizes:
        work = root / f"n{n}"
        work.mkdir(exist_ok=True)
        config = demo_config(work / "results", n)
        (work / "config.yaml").write_text(yaml.safe_dump(config))
        cpu0 = children_cpu()
        wall, tree, single, proc = run_measured(snakemake_cmd(work, args.cores))
        cpu_case[n] = (children_cpu() - cpu0) / n
        if proc.returncode:
            print(proc.stderr[-3000:])
            return proc.returncode
        noop, *_, again = run_measured(snakemake_cmd(work, args.cores))
        if "Nothing to be done" not in again.stdout + again.stderr:
            print(f"the re-run at {n} cases was not a no-op:\n{again.stderr[-3000:]}")
            return 1
        dry, *_ = run_measured(snakemake_cmd(work, args.cores, "-n"))
        scans = sum(1 for _ in open(work / "results/ingest/scans.tsv")) - 1
        per_case[n] = wall / n
        print(f"{n:>6} {scans:>6} {count_jobs(proc.stderr):>5} {wall:>8.1f} {wall / n:>7.2f} {cpu_case[n]:>10.2f} "
              f"{tree / 2**20:>13.0f} {single / 2**20:>13.0f} {noop:>15.1f} {dry:>6.1f}  "
              f"(load {', '.join(f'{x:.2f}' for x in os.getloadavg())})", flush=True)
    for kind in ("shell", "run") if args.overhead_jobs else ():
        work = root / f"overhead_{kind}"
        work.mkdir(exist_ok=True)
        per_job = overhead(work, args.overhead_jobs, args.cores, kind)
        print(f"Snakemake overhead per job ({kind}: jobs that only touch their output, {args.overhead_jobs} jobs, "
              f"--cores {args.cores}): {per_job * 1000:.0f} ms", flush=True)
    print(f"work folders in {root}")
    small, large = min(per_case), max(per_case)
    print(f"CPU seconds per case (every process of the run; less sensitive to other load than wall time): "
          f"{cpu_case[small]:.2f} at {small}, {cpu_case[large]:.2f} at {large}")
    print(f"scale: {per_case[small]:.2f} {per_case[large]:.2f} noop {noop:.1f}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
