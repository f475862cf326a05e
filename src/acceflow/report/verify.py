"""Verify a results folder against its provenance record (``acceflow verify RESULTS_DIR``).

:func:`verify` reads ``RESULTS_DIR/report/provenance.json``, re-hashes (SHA-256) every file it
names (the inputs, the config files, the outputs and the report files) and says, per file,
whether it is ``unchanged``, ``changed`` or ``missing`` since the run. Output paths are recorded
relative to the results folder, so a moved or copied results folder still verifies; relative
input paths resolve against the folder Snakemake ran in (``workdir`` in the record), then the
current folder.
"""

from __future__ import annotations

import json
import os
from dataclasses import asdict, dataclass
from pathlib import Path

from acceflow.runtime import sha256_file

__all__ = ["FileCheck", "Verification", "verify", "format_verification"]

PROVENANCE = Path("report") / "provenance.json"


@dataclass(frozen=True)
class FileCheck:
    """One file named in the provenance record and what became of it."""

    kind: str  # input | config | output
    path: str  # as recorded
    location: str  # where it was looked for now
    status: str  # unchanged | changed | missing
    recorded_sha256: str | None
    current_sha256: str | None


@dataclass
class Verification:
    results_dir: str
    provenance: str
    created: str | None
    commit: str | None
    checks: list[FileCheck]
    error: str | None = None

    @property
    def changes(self) -> list[FileCheck]:
        """The files that are changed or missing."""
        return [c for c in self.checks if c.status != "unchanged"]

    @property
    def ok(self) -> bool:
        return self.error is None and not self.changes

    @property
    def exit_code(self) -> int:
        """0 when every file is as recorded, 1 when something changed or is missing, 2 without a record."""
        return 2 if self.error else (0 if self.ok else 1)

    def counts(self) -> dict[str, int]:
        out = {"unchanged": 0, "changed": 0, "missing": 0}
        for c in self.checks:
            out[c.status] += 1
        return out

    def to_dict(self) -> dict:
        return {"results_dir": self.results_dir, "provenance": self.provenance, "created": self.created,
                "commit": self.commit, "ok": self.ok, "error": self.error, "counts": self.counts(),
                "checks": [asdict(c) for c in self.checks]}


def _resolve_input(path: str, bases: list[Path]) -> Path:
    p = Path(path)
    if p.is_absolute():
        return p
    for base in bases:
        if (base / p).exists():
            return base / p
    return bases[0] / p if bases else p


def _check(kind: str, path: str, location: Path, recorded: str | None) -> FileCheck:
    current = sha256_file(location) if location.is_file() else None
    if current is None:
        status = "unchanged" if recorded is None else "missing"
    else:
        status = "unchanged" if current == recorded else "changed"
    return FileCheck(kind, path, os.fspath(location), status, recorded, current)


def verify(results_dir: str | os.PathLike) -> Verification:
    """Re-hash the files named in ``results_dir/report/provenance.json``; see the module docstring.

    A file recorded as missing at run time (``null``) that is still missing counts as unchanged;
    one that appeared since counts as changed.
    """
    root = Path(results_dir)
    prov_path = root / PROVENANCE
    if not prov_path.is_file():
        return Verification(os.fspath(root), os.fspath(prov_path), None, None, [],
                            error=f"no provenance record at {prov_path}")
    try:
        record = json.loads(prov_path.read_text(encoding="utf-8"))
    except (OSError, json.JSONDecodeError) as exc:
        return Verification(os.fspath(root), os.fspath(prov_path), None, None, [],
                            error=f"cannot read {prov_path}: {exc}")
    bases = [Path(record["workdir"])] if record.get("workdir") else []
    bases.append(Path.cwd())
    relative_outputs = "results_dir" in record
    checks = []
    for path, sha in sorted((record.get("inputs") or {}).items()):
        checks.append(_check("input", path, _resolve_input(path, bases), sha))
    for path, sha in sorted((record.get("config_files") or {}).items()):
        checks.append(_check("config", path, _resolve_input(path, bases), sha))
    for path, sha in sorted((record.get("outputs") or {}).items()):
        p = Path(path)
        loc = root / p if relative_outputs and not p.is_absolute() else _resolve_input(path, bases)
        checks.append(_check("output", path, loc, sha))
    return Verification(os.fspath(root), os.fspath(prov_path), record.get("created"), record.get("commit"), checks)


def format_verification(v: Verification) -> str:
    """A human-readable report: one line per changed or missing file, then the counts."""
    if v.error:
        return f"acceflow verify: {v.error}"
    lines = [f"Verifying {v.results_dir} against {v.provenance} (run {v.created}, acceflow {v.commit})"]
    for c in v.changes:
        if c.status == "missing":
            lines.append(f"  MISSING {c.kind}: {c.path} (looked for {c.location})")
        elif c.recorded_sha256 is None:
            lines.append(f"  CHANGED {c.kind}: {c.path} (missing at run time, present now)")
        else:
            lines.append(f"  CHANGED {c.kind}: {c.path} (sha256 {c.recorded_sha256[:12]}… at run time, "
                         f"{c.current_sha256[:12]}… now)")
    n = v.counts()
    verdict = "OK: every file is as recorded" if v.ok else "FAILED: files changed since the run"
    lines.append(f"{len(v.checks)} files checked: {n['unchanged']} unchanged, {n['changed']} changed, "
                 f"{n['missing']} missing. {verdict}.")
    return "\n".join(lines)
