"""Features of one scan from each sample mask (readers of segmentation uncertainty; acceflow.imaging.extract)."""
import pandas as pd

from acceflow.imaging.extract import extract_features, load_params, nonfinite_features, scan_params
from acceflow.io.images import read_image
from acceflow.runtime import log_to

with log_to(snakemake.log[0]):
    scan, label = snakemake.wildcards.scan, snakemake.params.label
    image = read_image(snakemake.input.image)
    params = load_params(snakemake.input.params)
    rows = []
    for i, path in enumerate(snakemake.input.samples, start=1):
        try:
            mask = read_image(path)
            features, _ = extract_features(image, mask, scan_params(params, image, mask, label,
                                                                    **snakemake.params.overrides), label=label)
            if nonfinite_features(features):
                raise ValueError("pyradiomics returned NaN/inf")
        except Exception as exc:  # noqa: BLE001 - a failed sample drops this case from the ICC only
            if snakemake.params.on_error == "stop":
                raise
            print(f"sample {i} of {scan} failed: {exc!r}")
            continue
        rows.append({"scan_id": scan, "perturbation": f"s{i:02d}", **features})
    pd.DataFrame(rows, columns=None if rows else ["scan_id", "perturbation"]).to_csv(
        snakemake.output.features, sep="\t", index=False)
