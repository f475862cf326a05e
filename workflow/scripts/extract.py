"""pyradiomics extraction for one scan: one feature row, diagnostics kept apart.

The modality's discretisation and re-segmentation (extraction.discretisation / resegment /
outlier_sd) are merged into the parameter file's settings (acceflow.imaging.extract.scan_params);
pyradiomics records the settings used in the diagnostics' Configuration_Settings column.

With on_case_error: exclude, a failure writes the reason instead of features, so that the rest
of the cohort continues and the case is listed in features/extraction_qc.tsv.
"""
import pandas as pd

from acceflow.config import log_to
from acceflow.imaging.extract import extract_features, load_params, scan_params
from acceflow.io.images import read_image

with log_to(snakemake.log[0]):
    scan = snakemake.wildcards.scan
    try:
        label = snakemake.params.label
        image, mask = read_image(snakemake.input.image), read_image(snakemake.input.mask)
        params = scan_params(load_params(snakemake.input.params), image, mask, label, **snakemake.params.overrides)
        features, diagnostics = extract_features(image, mask, params, label=label)
        row, diag = {"scan_id": scan, "error": "", **features}, {"scan_id": scan, **diagnostics}
    except Exception as exc:  # noqa: BLE001 - any failure of one case is reported, not fatal
        if snakemake.params.on_error == "stop":
            raise
        print(f"extraction failed for {scan}: {exc!r}")
        row, diag = {"scan_id": scan, "error": f"feature extraction failed: {exc}"}, {"scan_id": scan}
    pd.DataFrame([row]).to_csv(snakemake.output.features, sep="\t", index=False)
    pd.DataFrame([diag]).to_csv(snakemake.output.diagnostics, sep="\t", index=False)
