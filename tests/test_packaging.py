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


def _bound(requirement: str) -> str:
    """The version bound of a requirement, spaces and extras dropped: 'pandas >=2.1' -> '>=2.1'."""
    rest = re.sub(r"\[[^\]]*\]", "", requirement.strip())[len(_name(requirement)):]
    return rest.replace(" ", "")


def test_envs_match_pyproject():
    project = tomllib.loads((REPO / "pyproject.toml").read_text())["project"]
    bounds = {CONDA_NAME.get(_name(r), _name(r)): _bound(r) for r in project["dependencies"]}
    wanted = set(bounds) - NOT_IN_RULE_ENVS
    envs = sorted((REPO / "workflow" / "envs").glob("*.yaml"))
    assert envs, "no conda env in workflow/envs"
    listed = set()
    for env in envs:
        given = yaml.safe_load(env.read_text())["dependencies"]
        # conda packages, and the PyPI-only ones under `- pip:` (nnunetv2)
        deps = [d for d in given if isinstance(d, str)] + [
            d for entry in given if isinstance(entry, dict) for d in entry.get("pip", [])]
        names = {_name(d): d for d in deps}
        listed |= set(names) - {"python", "pip"}
        for name, dep in names.items():  # the same lower bound as pyproject (pinned alike)
            if name in bounds:
                assert _bound(dep) == bounds[name], f"{env.name}: '{dep}' but pyproject.toml says '{bounds[name]}'"
    assert listed == wanted, (f"in pyproject but in no env: {sorted(wanted - listed)}; "
                              f"in an env but not in pyproject: {sorted(listed - wanted)}")


def test_every_conda_directive_names_an_existing_env():
    for smk in (REPO / "workflow" / "rules").glob("*.smk"):
        for env in re.findall(r'conda:\s*\n\s*"([^"]+)"', smk.read_text()):
            assert (smk.parent / env).resolve().is_file(), f"{smk.name}: {env}"


def test_license_and_citation_match_pyproject():
    project = tomllib.loads((REPO / "pyproject.toml").read_text())["project"]
    assert project["license"] == "Apache-2.0"
    text = (REPO / "LICENSE").read_text()
    assert "Apache License" in text and "Version 2.0, January 2004" in text and "END OF TERMS AND CONDITIONS" in text
    cff = yaml.safe_load((REPO / "CITATION.cff").read_text())
    assert cff["cff-version"] == "1.2.0" and cff["title"] == project["name"]
    assert str(cff["version"]) == project["version"] and cff["license"] == project["license"]
    assert cff["message"] and cff["authors"]
