# Loads and validates the config, and holds the input functions shared by the rules.
import functools
import os

import pandas as pd
from snakemake.utils import validate

from acceflow.config import check_config, put_on_pythonpath


if not config:
    configfile: "config/config.yaml"


validate(config, "../schemas/config.schema.yaml")
check_config(config)

RESULTS = config["results"].rstrip("/")
IMAGES = bool(config["input"]["images"])
EXTERNAL = list(config["cohorts"]["external"])
COHORTS = ["train"] + EXTERNAL
SOURCE = config["segmentation"]["source"]


def R(path):
    """A path inside the results folder."""
    return f"{RESULTS}/{path}"


wildcard_constraints:
    scan=r"[A-Za-z0-9._-]+",
    cohort="|".join(COHORTS),


@functools.lru_cache(maxsize=4)
def _read_scans(path, mtime):
    return pd.read_csv(path, sep="\t", dtype=str, keep_default_na=False).set_index("scan_id")


def scans_table():
    """The usable scans written by the ingest checkpoint (re-evaluates the DAG after it)."""
    path = checkpoints.ingest.get().output.scans
    return _read_scans(path, os.path.getmtime(path))


def scan_row(wildcards):
    return scans_table().loc[wildcards.scan]


def scan_inputs(wildcards):
    row = scan_row(wildcards)
    return {"image": row["image"], "mask": row["mask"]} if row["mask"] else {"image": row["image"]}


def segmentation_mask(wildcards):
    if SOURCE == "otsu":
        return R(f"segmentation/otsu/{wildcards.scan}/mask.nii.gz")
    return R(f"preprocessed/{wildcards.scan}/mask.nii.gz")


def extraction_params(wildcards):
    modality = scan_row(wildcards)["modality"]
    return config["extraction"]["modality_params"].get(modality, config["extraction"]["params"])


def scan_features(wildcards):
    return expand(R("features/scans/{scan}.tsv"), scan=scans_table().index)


DESIGN = config["reproducibility"]["design"]
PERTURB = IMAGES and DESIGN == "perturbation" and not config["input"]["repeats"]


def repeats_input(wildcards):
    """The long repeat table of the design: input.repeats, the perturbed copies, or the manifest's repeats."""
    if config["input"]["repeats"]:
        return config["input"]["repeats"]
    if PERTURB:
        return R("features/repeats_perturbation.tsv")
    return R("features/repeats.tsv") if IMAGES else []


def perturbed_scans():
    """Primary scans of the training cohorts (the first max_cases cases) for the perturbation design."""
    scans = scans_table()
    keep = scans[(scans["primary"] == "True") & scans["cohort"].isin(config["cohorts"]["train"])]
    cases = sorted(keep["case_id"].unique())
    limit = config["reproducibility"]["perturbation"]["max_cases"]
    if limit:
        keep = keep[keep["case_id"].isin(cases[:limit])]
    return list(keep.index)


def perturbation_features(wildcards):
    return expand(R("features/perturbations/{scan}.tsv"), scan=perturbed_scans())


def reader_pairs():
    """Scans that share an image with another scan of the same case (two masks of one image)."""
    scans = scans_table().reset_index()
    counts = scans.groupby(["case_id", "image"])["scan_id"].transform("count")
    return scans[counts >= 2]


def reader_masks(wildcards):
    return sorted(set(reader_pairs()["mask"]) - {""})


def input_files(wildcards):
    """Every input file of the study (for checksums): manifest or table, repeats, params."""
    files = [f for f in (config["input"]["images"], config["input"]["features"], config["input"]["repeats"]) if f]
    if IMAGES:
        files.append(config["extraction"]["params"])
        files.extend(sorted(set(config["extraction"]["modality_params"].values())))
    return files


# Scripts import acceflow from this checkout, also inside per-rule conda environments.
put_on_pythonpath(os.path.join(workflow.basedir, "src"))
