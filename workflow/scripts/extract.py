"""pyradiomics extraction for one scan: one feature row, diagnostics kept apart.

The modality's discretisation and re-segmentation (extraction.discretisation / resegment /
outlier_sd) are merged into the parameter file's settings (acceflow.imaging.extract.scan_params);
pyradiomics records the settings used in the diagnostics' Configuration_Settings column.

A failure, or a feature that comes out NaN/inf, makes the scan a failed extraction: with
on_case_error: exclude the reason is written instead of features, so that the rest of the cohort
continues and the scan is listed in features/extraction_qc.tsv; with stop the job fails.
The rows are written with the csv module (not pandas): this job runs once per scan, and its
start-up time is part of every extraction.
"""
import csv
import logging
from time import perf_counter

from acceflow.imaging.extract import extract_features, load_params, nonfinite_features, scan_params
from acceflow.io.images import describe_image, read_image
from acceflow.runtime import log_to

log = logging.getLogger("acceflow.extract")


def write_row(path, row):
    with open(path, "w", newline="") as fh:
        writer = csv.DictWriter(fh, fieldnames=list(row), delimiter="\t", lineterminator="\n")
        writer.writeheader()
        writer.writerow(row)


with log_to(snakemake.log[0]):
    scan, start = snakemake.wildcards.scan, perf_counter()
    try:
        label = snakemake.params.label
        image, mask = read_image(snakemake.input.image), read_image(snakemake.input.mask)
        log.info("scan %s: %s", scan, describe_image(image, mask, label))
        params = scan_params(load_params(snakemake.input.params), image, mask, label, **snakemake.params.overrides)
        features, diagnostics = extract_features(image, mask, params, label=label)
        bad = nonfinite_features(features)
        if bad:
            raise ValueError(f"pyradiomics returned NaN/inf for {len(bad)} feature(s): {', '.join(bad[:10])}"
                             + (", ..." if len(bad) > 10 else ""))
        row, diag = {"scan_id": scan, "error": "", **features}, {"scan_id": scan, **diagnostics}
        log.info("scan %s: %d features extracted with %s in %.1f s", scan, len(features), snakemake.input.params,
                 perf_counter() - start)
    except Exception as exc:  # noqa: BLE001 - any failure of one case is reported, not fatal
        if snakemake.params.on_error == "stop":
            raise
        print(f"extraction failed for {scan}: {exc!r}")
        row, diag = {"scan_id": scan, "error": f"feature extraction failed: {exc}"}, {"scan_id": scan}
    write_row(snakemake.output.features, row)
    write_row(snakemake.output.diagnostics, diag)
