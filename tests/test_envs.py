"""Every rule's conda environment holds what its script imports (``snakemake --sdm conda``).

Static analysis, no network and no conda: each rule in ``workflow/rules/*.smk`` is parsed for its
``conda:`` env file and its ``script:``; the imports of the script and of every acceflow module it
imports, transitively, are collected with :mod:`ast`; each third-party import is mapped to its
conda-forge name and must be listed in the rule's env file. acceflow itself is put on PYTHONPATH
by ``common.smk`` (never installed in the envs), so its own dependencies count.

Module-level imports count (those that run when the script, or a module it imports, is loaded);
lazy imports inside functions do not (see ``_imports``).
"""
from __future__ import annotations

import ast
import re
import sys
from functools import cache
from pathlib import Path

import pytest
import yaml
from conftest import REPO

RULES = REPO / "workflow" / "rules"
SRC = REPO / "src"

# import name -> conda-forge package name, where they differ
CONDA_NAME = {
    "SimpleITK": "simpleitk",
    "sklearn": "scikit-learn",
    "yaml": "pyyaml",
    "skmisc": "scikit-misc",
    "radiomics": "pyradiomics",
    "torch": "pytorch",
    "jinja2": "jinja2",
    "PIL": "pillow",
}
# import names that are conda-forge names as they stand
SAME_NAME = {"numpy", "scipy", "pandas", "pingouin", "statsmodels", "lifelines", "matplotlib", "jsonschema", "markupsafe",
             "monai", "pydicom", "highdicom", "nibabel", "joblib", "skops", "flwr", "nnunetv2", "weasyprint"}
# never needed inside a rule's env: the scripts get the `snakemake` object injected
NOT_IN_ENVS = {"snakemake"}

_RULE = re.compile(r"^\s*(?:rule|checkpoint)\s+(\w+)\s*:", re.M)
_DIRECTIVE = r"^\s*{}:\s*\n\s*\"([^\"]+)\""


def rules() -> list[tuple[str, str, Path, Path]]:
    """(smk file, rule, env file, script) of every rule with a ``script:``, or a ``shell:`` that runs a
    workflow script as a plain program (its input ``program``: ``os.path.join(SCRIPTS, "name.py")``)."""
    found = []
    for smk in sorted(RULES.glob("*.smk")):
        text = smk.read_text()
        heads = list(_RULE.finditer(text))
        for head, nxt in zip(heads, heads[1:] + [None]):
            block = text[head.end(): nxt.start() if nxt else len(text)]
            script = re.search(_DIRECTIVE.format("script"), block, re.M)
            conda = re.search(_DIRECTIVE.format("conda"), block, re.M)
            # a workflow script run as a plain program: input program=os.path.join(SCRIPTS, "name.py")
            program = re.search(r"program=os\.path\.join\(SCRIPTS, \"(\w+\.py)\"\)", block)
            if script or program:
                assert conda, f"{smk.name}: rule {head.group(1)} runs a script without a conda: env"
                path = smk.parent / script.group(1) if script else RULES.parent / "scripts" / program.group(1)
                found.append((smk.name, head.group(1), (smk.parent / conda.group(1)).resolve(), path.resolve()))
    return found


def _imports(path: Path) -> set[str]:
    """Absolute module names a file imports when it is loaded (run, for a script).

    Module-level imports only, also inside ``if`` / ``with`` / class bodies: an import inside a
    function runs when that function is called (lazy imports of optional or heavy packages, e.g.
    torch for recording GPU provenance), and one under ``try: ... except ImportError`` is optional.
    """
    tree = ast.parse(path.read_text(), filename=str(path))
    names: set[str] = set()

    def visit(node):
        if isinstance(node, (ast.FunctionDef, ast.AsyncFunctionDef, ast.Lambda)):
            return
        if isinstance(node, ast.Try) and any(_catches_import_error(h) for h in node.handlers):
            for child in node.handlers + node.orelse + node.finalbody:
                visit(child)
            return
        if isinstance(node, ast.Import):
            names.update(a.name for a in node.names)
        elif isinstance(node, ast.ImportFrom) and node.level == 0 and node.module:
            names.add(node.module)
            # `from acceflow.io import dicom` imports the submodule acceflow.io.dicom
            names.update(f"{node.module}.{a.name}" for a in node.names)
        for child in ast.iter_child_nodes(node):
            visit(child)

    visit(tree)
    return names


def _catches_import_error(handler: ast.ExceptHandler) -> bool:
    types = handler.type.elts if isinstance(handler.type, ast.Tuple) else [handler.type]
    return any(isinstance(t, ast.Name) and t.id in ("ImportError", "ModuleNotFoundError") for t in types)


def _module_file(name: str) -> Path | None:
    base = SRC.joinpath(*name.split("."))
    for candidate in (base.with_suffix(".py"), base / "__init__.py"):
        if candidate.is_file():
            return candidate
    return None


@cache
def third_party(path: Path) -> frozenset[str]:
    """Top-level third-party import names of a file and of the acceflow modules it imports."""
    seen, todo, found = set(), [path], set()
    while todo:
        current = todo.pop()
        if current in seen:
            continue
        seen.add(current)
        for name in _imports(current):
            top = name.split(".")[0]
            if top == "acceflow":
                parts = name.split(".")
                # the module and its parent packages (their __init__ runs too)
                for i in range(1, len(parts) + 1):
                    f = _module_file(".".join(parts[:i]))
                    if f:
                        todo.append(f)
            elif top not in sys.stdlib_module_names and top != "__future__":
                found.add(top)
    return frozenset(found)


def env_packages(env: Path) -> set[str]:
    deps = yaml.safe_load(env.read_text())["dependencies"]
    return {re.split(r"[ <>=!~\[;]", d.strip(), maxsplit=1)[0].lower() for d in deps if isinstance(d, str)}


RULE_LIST = rules()


def test_the_rules_are_found():
    names = {rule for _, rule, _, _ in RULE_LIST}
    assert {"ingest", "ingest_table", "train", "dossier", "deep_train", "extract_case"} <= names
    assert len(RULE_LIST) >= 40


def test_every_import_maps_to_a_conda_name():
    unknown = {(rule, name) for _, rule, _, script in RULE_LIST for name in third_party(script)
               if name not in CONDA_NAME and name not in SAME_NAME and name not in NOT_IN_ENVS}
    assert not unknown, f"imports without a conda-forge name in tests/test_envs.py: {sorted(unknown)}"


@pytest.mark.parametrize("smk, rule, env, script", RULE_LIST, ids=[r[1] for r in RULE_LIST])
def test_rule_env_holds_the_script_imports(smk, rule, env, script):
    assert env.is_file(), f"{smk}: rule {rule}: conda env {env} not found"
    assert script.is_file(), f"{smk}: rule {rule}: script {script} not found"
    needed = {CONDA_NAME.get(n, n).lower() for n in third_party(script)} - NOT_IN_ENVS
    missing = sorted(needed - env_packages(env))
    assert not missing, (f"{smk}: rule {rule} runs {script.name}, which imports {missing} (directly or through "
                         f"acceflow), but its env workflow/envs/{env.name} lacks them: add them there or "
                         f"give the rule another env")


def test_transitive_imports_are_followed(tmp_path):
    script = tmp_path / "s.py"
    script.write_text("from acceflow.study.tables import ingest_feature_table\n")
    assert "SimpleITK" in third_party(script)  # via acceflow.io.qc
