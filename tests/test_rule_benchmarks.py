"""Every rule of the workflow has a ``benchmark:`` file under the results folder's ``benchmarks/``, so
the dossier's run-time table (Appendix A, from :func:`acceflow.report.provenance.benchmark_summary`)
covers every rule. Excepted: ``all`` (the target rule in the Snakefile, which runs nothing).

The rules are read from the ``.smk`` files (every rule, including those defined only when a study
turns segmentation or deep learning on); Snakemake's own ``--list-rules`` on the demo config checks
that the reader misses none."""
import re
import subprocess
from pathlib import Path

from conftest import REPO, SNAKEMAKE

#: Rules that run nothing and so have no run time to report.
NO_BENCHMARK = {"all"}

_HEAD = re.compile(r"^(\s*)(?:(?:rule|checkpoint)\s+(\w+)|use\s+rule\s+\w+\s+as\s+(\w+)\s+with)\s*:")


def rule_blocks(text: str) -> dict[str, str]:
    """Rule name -> the text of its body, for every ``rule``, ``checkpoint`` and ``use rule ... as ...
    with:`` of a Snakefile (a body ends at the first non-blank, non-comment line indented no deeper
    than the rule's header)."""
    lines = text.splitlines()
    out = {}
    for i, line in enumerate(lines):
        m = _HEAD.match(line)
        if not m:
            continue
        indent, body = len(m.group(1)), []
        for nxt in lines[i + 1:]:
            if nxt.strip() and not nxt.lstrip().startswith("#") and len(nxt) - len(nxt.lstrip()) <= indent:
                break
            body.append(nxt)
        out[m.group(2) or m.group(3)] = "\n".join(body)
    return out


def _workflow_rules() -> dict[str, tuple[Path, str]]:
    rules = {}
    for path in [REPO / "Snakefile", *sorted((REPO / "workflow" / "rules").glob("*.smk"))]:
        for name, body in rule_blocks(path.read_text(encoding="utf-8")).items():
            rules[name] = (path, body)
    return rules


def _benchmark(body: str) -> str | None:
    m = re.search(r"^\s*benchmark\s*:\s*\n\s*(.+)$", body, re.M)
    return m.group(1).strip() if m else None


def test_the_reader_finds_a_missing_benchmark():
    text = ("rule a:\n    output:\n        'x'\n    benchmark:\n        R(\"benchmarks/a.tsv\")\n    shell:\n"
            "        'touch x'\n\nif FLAG:\n\n    rule b:\n        output:\n            'y'\n        # benchmark:\n"
            "        shell:\n            'touch y'\n\nuse rule a as c with:\n    benchmark:\n"
            "        R(\"benchmarks/a/c.tsv\")\n")
    blocks = rule_blocks(text)
    assert set(blocks) == {"a", "b", "c"}
    assert _benchmark(blocks["a"]) == 'R("benchmarks/a.tsv")' and _benchmark(blocks["b"]) is None
    assert _benchmark(blocks["c"]) == 'R("benchmarks/a/c.tsv")'


def test_every_rule_has_a_benchmark_under_the_results_benchmarks_folder():
    rules = _workflow_rules()
    missing = sorted(f"{name} ({path.name})" for name, (path, body) in rules.items()
                     if name not in NO_BENCHMARK and _benchmark(body) is None)
    assert not missing, f"rules without benchmark: {missing}"
    outside = sorted(name for name, (_, body) in rules.items()
                     if name not in NO_BENCHMARK and not _benchmark(body).startswith('R("benchmarks/'))
    assert not outside, f"benchmark not under the results folder's benchmarks/: {outside}"


def test_snakemake_lists_no_rule_the_reader_missed():
    done = subprocess.run([*SNAKEMAKE, "--snakefile", str(REPO / "Snakefile"), "--directory", str(REPO),
                           "--list-rules", "--cores", "1"], capture_output=True, text=True, timeout=300)
    assert done.returncode == 0, done.stderr[-2000:]
    listed = {line.strip() for line in done.stdout.splitlines() if re.fullmatch(r"\w+", line.strip())}
    assert {"train", "dossier", "utility_figures"} <= listed
    assert listed <= set(_workflow_rules()), sorted(listed - set(_workflow_rules()))
