"""Provenance of a run: what went in, what came out, with which code, on which machine.

:func:`collect_provenance` gathers the configuration as run, the seeds, SHA-256 checksums of
the input and output files, package versions, the acceflow git commit and the platform into
one dict; :func:`write_json` writes it (or any result) atomically as sorted, indented JSON
with NaN written as ``null``. Apart from ``created`` (UTC, ISO 8601) the record depends only on
the inputs, the code and the machine, so two runs of the same thing can be diffed.
"""

from __future__ import annotations

import csv
import datetime as _dt
import importlib.metadata
import importlib.util
import math
import os
import platform
import subprocess
import sys
from collections.abc import Iterable, Mapping
from pathlib import Path

import yaml

from acceflow.runtime import atomic_write_bytes, sha256_file, to_jsonable, write_json  # noqa: F401 (re-exported)

__all__ = [
    "DEFAULT_PACKAGES",
    "atomic_write_bytes",
    "benchmark_summary",
    "collect_provenance",
    "defaults_filled",
    "environment_versions",
    "git_commit",
    "package_versions",
    "platform_info",
    "sha256_file",
    "to_jsonable",
    "write_json",
]

#: Distributions whose versions are recorded by default.
DEFAULT_PACKAGES = (
    "snakemake",
    "acceflow",
    "numpy",
    "scipy",
    "pandas",
    "scikit-learn",
    "statsmodels",
    "SimpleITK",
    "pydicom",
    "highdicom",
    "pyradiomics",
    "pingouin",
    "lifelines",
    "torch",
    "monai",
    "matplotlib",
    "scikit-misc",
)


def package_versions(names: Iterable[str] | None = None) -> dict[str, str | None]:
    """Installed version of each distribution in ``names`` (default :data:`DEFAULT_PACKAGES`).

    A distribution that is not installed maps to ``None``.
    """
    out: dict[str, str | None] = {}
    for name in DEFAULT_PACKAGES if names is None else names:
        try:
            out[name] = importlib.metadata.version(name)
        except importlib.metadata.PackageNotFoundError:
            out[name] = None
    return out


def environment_versions() -> dict[str, str]:
    """Every distribution installed in the running Python environment: {name: version}, sorted."""
    out: dict[str, str] = {}
    for dist in importlib.metadata.distributions():
        name = dist.metadata["Name"] if dist.metadata else None
        if name:
            out.setdefault(str(name), str(dist.version))
    return dict(sorted(out.items(), key=lambda kv: kv[0].lower()))


def benchmark_summary(benchmark_dir: str | os.PathLike) -> dict[str, dict]:
    """Per-rule run times from Snakemake ``benchmark:`` files under ``benchmark_dir``.

    A rule's files are ``{benchmark_dir}/{rule}.tsv`` or ``{benchmark_dir}/{rule}/*.tsv`` (one per
    job; each has Snakemake's columns ``s``, ``max_rss``, ...; repeated benchmarks give several
    rows). Returns {rule: {"jobs", "total_s", "mean_s", "max_s", "max_rss_mb"}}, sorted by rule;
    an empty dict when the folder does not exist. Unreadable files are skipped.
    """
    root = Path(benchmark_dir)
    if not root.is_dir():
        return {}
    per: dict[str, list[tuple[float, float | None]]] = {}
    for f in sorted(root.rglob("*.tsv")):
        rel = f.relative_to(root)
        rule = rel.parts[0] if len(rel.parts) > 1 else f.stem
        try:
            with open(f, encoding="utf-8", newline="") as fh:
                rows = list(csv.DictReader(fh, delimiter="\t"))
        except (OSError, UnicodeDecodeError, csv.Error):
            continue
        for row in rows:
            try:
                s = float(row.get("s", "nan"))
            except (TypeError, ValueError):
                continue
            try:
                rss = float(row.get("max_rss", "nan"))
            except (TypeError, ValueError):
                rss = float("nan")
            if math.isfinite(s):
                per.setdefault(rule, []).append((s, rss if math.isfinite(rss) else None))
    out = {}
    for rule, vals in sorted(per.items()):
        secs = [s for s, _ in vals]
        rss = [r for _, r in vals if r is not None]
        out[rule] = {"jobs": len(secs), "total_s": round(sum(secs), 4), "mean_s": round(sum(secs) / len(secs), 4),
                     "max_s": round(max(secs), 4), "max_rss_mb": round(max(rss), 2) if rss else None}
    return out


def defaults_filled(config: Mapping, given: Mapping, prefix: str = "") -> list[str]:
    """Dotted keys of ``config`` (as run) that ``given`` (the user's config files and overrides) did
    not set, i.e. the values the schema's defaults filled in. A mapping absent from ``given`` counts
    as one key."""
    out = []
    for key, value in config.items():
        path = f"{prefix}{key}"
        if not isinstance(given, Mapping) or key not in given:
            out.append(path)
        elif isinstance(value, Mapping) and isinstance(given[key], Mapping):
            out.extend(defaults_filled(value, given[key], path + "."))
    return out


def _merge(a: dict, b: Mapping) -> dict:
    for k, v in b.items():
        a[k] = _merge(dict(a[k]), v) if isinstance(v, Mapping) and isinstance(a.get(k), Mapping) else v
    return a


def _given_config(config_files: Iterable[str], overrides: Mapping | None) -> dict:
    given: dict = {}
    for f in config_files:
        try:
            with open(f, encoding="utf-8") as fh:
                given = _merge(given, yaml.safe_load(fh) or {})
        except (OSError, yaml.YAMLError):
            continue
    return _merge(given, overrides or {})


def _git(args: list[str], cwd: Path) -> str | None:
    try:
        res = subprocess.run(["git", "--no-optional-locks", *args], cwd=cwd, capture_output=True, text=True,
                             timeout=10, check=False)
    except (OSError, subprocess.SubprocessError):
        return None
    return res.stdout.strip() if res.returncode == 0 else None


def git_commit(path: str | os.PathLike | None = None) -> str | None:
    """Commit (``git rev-parse HEAD``) of the repository holding ``path``, ``-dirty`` if modified.

    ``path`` defaults to the acceflow source folder. "Dirty" means tracked files differ from the
    commit (untracked files are ignored). Returns ``None`` when git is not installed, the folder
    is not in a git work tree (e.g. acceflow installed from a wheel) or it has no commit yet.
    Git runs read-only (``--no-optional-locks``: the index is not refreshed).
    """
    if path is None:
        path = Path(__file__).resolve().parent
    path = Path(path)
    cwd = path if path.is_dir() else path.parent
    commit = _git(["rev-parse", "HEAD"], cwd)
    if not commit:
        return None
    status = _git(["status", "--porcelain", "--untracked-files=no"], cwd)
    return f"{commit}-dirty" if status else commit


def _cpu_model() -> str:
    try:
        with open("/proc/cpuinfo", encoding="utf-8") as fh:
            for line in fh:
                if line.lower().startswith("model name"):
                    return line.split(":", 1)[1].strip()
    except OSError:
        pass
    if sys.platform == "darwin":
        try:
            res = subprocess.run(["sysctl", "-n", "machdep.cpu.brand_string"], capture_output=True,
                                 text=True, timeout=5, check=False)
            if res.returncode == 0 and res.stdout.strip():
                return res.stdout.strip()
        except (OSError, subprocess.SubprocessError):
            pass
    return platform.processor() or platform.machine()


def _memory_bytes() -> int | None:
    try:
        return int(os.sysconf("SC_PAGE_SIZE") * os.sysconf("SC_PHYS_PAGES"))
    except (AttributeError, ValueError, OSError):
        return None


def _gpus() -> list[dict] | None:
    """GPUs seen by torch.cuda; ``None`` when torch is not installed or cannot be imported."""
    if "torch" not in sys.modules and importlib.util.find_spec("torch") is None:
        return None
    try:
        import torch  # heavy optional dependency: imported on first use

        if not torch.cuda.is_available():
            return []
        out = []
        for i in range(torch.cuda.device_count()):
            prop = torch.cuda.get_device_properties(i)
            out.append({"name": prop.name, "memory_bytes": int(prop.total_memory)})
        return out
    except Exception:  # noqa: BLE001 - provenance never fails a run
        return None


def platform_info() -> dict:
    """Python, OS, CPU model, logical cores, physical memory and GPUs (via torch.cuda, if installed)."""
    mem = _memory_bytes()
    return {
        "python": platform.python_version(),
        "python_implementation": platform.python_implementation(),
        "os": platform.platform(),
        "machine": platform.machine(),
        "cpu": _cpu_model(),
        "cpu_count": os.cpu_count(),
        "memory_gib": None if mem is None else round(mem / 2**30, 2),
        "gpus": _gpus(),
    }


def _seeds(config: Mapping, prefix: str = "") -> dict:
    """Every key named ``seed`` or ending in ``_seed`` in a nested config, by dotted path."""
    out = {}
    for key, value in config.items():
        path = f"{prefix}{key}"
        if isinstance(value, Mapping):
            out.update(_seeds(value, path + "."))
        elif str(key) == "seed" or str(key).endswith("_seed"):
            out[path] = value
    return out


def _checksums(paths: Iterable[str | os.PathLike]) -> dict[str, str | None]:
    """{path: sha256}; a folder contributes each file under it; a missing path maps to None."""
    out: dict[str, str | None] = {}
    for p in paths:
        p = Path(p)
        if p.is_dir():
            for f in sorted(q for q in p.rglob("*") if q.is_file()):
                out[str(f)] = sha256_file(f)
        elif p.is_file():
            out[str(p)] = sha256_file(p)
        else:
            out[str(p)] = None
    return out


def collect_provenance(
    config: Mapping,
    input_files: Iterable[str | os.PathLike],
    output_files: Iterable[str | os.PathLike] = (),
    *,
    results_dir: str | os.PathLike | None = None,
    run: Mapping | None = None,
) -> dict:
    """The provenance record of a run.

    Parameters
    ----------
    config : the configuration as run (after the schema filled in the defaults)
    input_files : files (or folders) the run read; each is checksummed with SHA-256
    output_files : files (or folders) the run wrote
    results_dir : the results folder; when given, output paths are recorded relative to it (so a
        moved results folder still verifies) and per-rule run times are read from its
        ``benchmarks/`` folder
    run : what the running workflow knows (``run_record`` in ``workflow/rules/common.smk``):
        ``workdir``, ``config_files``, ``config_overrides``, ``rulegraph_dot``, ``jobs_per_rule``

    Returns
    -------
    dict with keys ``created`` (UTC ISO 8601, the only time-dependent field), ``config``,
    ``seeds`` (dotted config path -> seed), ``inputs`` and ``outputs`` ({path: sha256 or None
    when missing}), ``versions`` (key packages -> version or None), ``environment`` (every
    installed distribution), ``commit`` (acceflow git commit or None) and ``platform``; with
    ``results_dir`` also ``results_dir`` and ``benchmarks`` (per rule: jobs, total / mean / max
    seconds, peak RSS); with ``run`` also ``workdir``, ``config_files`` ({path: sha256}),
    ``config_overrides``, ``defaults_filled`` (dotted keys the schema's defaults supplied) and
    ``rulegraph`` (``dot`` text and ``jobs_per_rule``).
    """
    outputs = _checksums(output_files)
    record = {
        "created": _dt.datetime.now(_dt.timezone.utc).replace(microsecond=0).isoformat().replace("+00:00", "Z"),
        "config": to_jsonable(dict(config)),
        "seeds": to_jsonable(_seeds(config)),
        "inputs": _checksums(input_files),
        "outputs": outputs,
        "versions": package_versions(),
        "environment": environment_versions(),
        "commit": git_commit(),
        "platform": platform_info(),
    }
    if results_dir is not None:
        root = Path(results_dir)
        record["results_dir"] = os.fspath(results_dir)
        record["outputs"] = {_relative(p, root): h for p, h in outputs.items()}
        record["benchmarks"] = benchmark_summary(root / "benchmarks")
    if run is not None:
        files = [str(f) for f in run.get("config_files") or []]
        overrides = to_jsonable(dict(run.get("config_overrides") or {}))
        record["workdir"] = run.get("workdir")
        record["config_files"] = _checksums(files)
        record["config_overrides"] = overrides
        record["defaults_filled"] = defaults_filled(config, _given_config(files, overrides))
        record["rulegraph"] = {"dot": run.get("rulegraph_dot"), "jobs_per_rule": dict(run.get("jobs_per_rule") or {})}
        if run.get("rulegraph_error"):
            record["rulegraph"]["error"] = run["rulegraph_error"]
    return record


def _relative(path: str, root: Path) -> str:
    """``path`` relative to ``root`` (POSIX separators) when it lies under it, else unchanged."""
    try:
        return Path(path).resolve().relative_to(root.resolve()).as_posix()
    except ValueError:
        return path


