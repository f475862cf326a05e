"""The conda environments of the rules list the same packages as pyproject.toml."""
import re
import tomllib

import yaml

from conftest import REPO

# conda-forge names of PyPI distributions where they differ
CONDA_NAME = {"torch": "pytorch", "simpleitk": "simpleitk"}
NOT_IN_RULE_ENVS = {"snakemake"}  # runs the rules, is not needed inside them


def _name(requirement: str) -> str:
    return re.split(r"[ <>=!~\[;]", requirement.strip(), maxsplit=1)[0].lower()


def test_envs_match_pyproject():
    project = tomllib.loads((REPO / "pyproject.toml").read_text())["project"]
    wanted = {CONDA_NAME.get(_name(r), _name(r)) for r in project["dependencies"]} - NOT_IN_RULE_ENVS
    listed = set()
    for env in sorted((REPO / "envs").glob("*.yaml")):
        deps = yaml.safe_load(env.read_text())["dependencies"]
        listed |= {_name(d) for d in deps if isinstance(d, str)} - {"python", "pip"}
    assert listed == wanted, (f"in pyproject but in no env: {sorted(wanted - listed)}; "
                              f"in an env but not in pyproject: {sorted(listed - wanted)}")


def test_every_conda_directive_names_an_existing_env():
    for smk in (REPO / "workflow" / "rules").glob("*.smk"):
        for env in re.findall(r'conda:\s*\n\s*"([^"]+)"', smk.read_text()):
            assert (smk.parent / env).resolve().is_file(), f"{smk.name}: {env}"
