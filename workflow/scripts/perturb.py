"""N perturbed copies of one scan and their features (acceflow.imaging.perturb, Zwanenburg 2019)."""
import pandas as pd

from acceflow.imaging.extract import extract_features, load_params, scan_params
from acceflow.imaging.perturb import SETTING_KEYS, perturb_scan
from acceflow.io.images import read_image
from acceflow.runtime import log_to

with log_to(snakemake.log[0]):
    scan, s = snakemake.wildcards.scan, snakemake.params.settings
    image, mask = read_image(snakemake.input.image), read_image(snakemake.input.mask)
    params = load_params(snakemake.input.params)
    options = {k: s[k] for k in SETTING_KEYS}  # the schema-validated section: complete
    rows = []
    for i in range(1, s["n"] + 1):
        try:
            img, msk, draws = perturb_scan(image, mask, s["chain"], i, seed=snakemake.params.seed, scan_id=scan,
                                           label=snakemake.params.label, **options)
            # outlier filtering depends on the ROI's intensities: the settings are resolved per copy
            features, _ = extract_features(img, msk, scan_params(params, img, msk, 1, **snakemake.params.overrides),
                                           label=1)
        except Exception as exc:  # noqa: BLE001 - one failed copy is reported; the ICC drops the case
            if snakemake.params.on_error == "stop":
                raise
            print(f"perturbation {i} of {scan} failed: {exc!r}")
            continue
        print(f"perturbation {i}: {draws}")
        rows.append({"scan_id": scan, "perturbation": f"p{i:02d}", **features})
    pd.DataFrame(rows, columns=None if rows else ["scan_id", "perturbation"]).to_csv(
        snakemake.output.features, sep="\t", index=False)
