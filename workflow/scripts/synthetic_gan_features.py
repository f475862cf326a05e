"""pyradiomics features of the synthetic lesion crops with the reference modality's settings
(acceflow.study.synthetic.crop_features: the extract_case rule's acceflow.imaging.extract.extract_scan)."""
import pandas as pd

from acceflow.deep.crops import load_crop
from acceflow.runtime import log_to
from acceflow.study.synthetic import crop_features, real_cases

with log_to(snakemake.log[0]):
    table = pd.read_csv(snakemake.input.features, sep="\t", dtype={"case_id": str})
    _, columns, _ = real_cases(table, snakemake.params.config)
    crops = load_crop(snakemake.input.crops)
    e = snakemake.params.extraction
    features, qc = crop_features(crops, float(crops["spacing_mm"]), snakemake.input.params, e["overrides"], e["label"],
                                 columns, snakemake.params.preprocessing, log=lambda line: print(line, flush=True))
    features.to_csv(snakemake.output.synthetic, sep="\t", index=False, float_format="%.10g")
    qc.to_csv(snakemake.output.qc, sep="\t", index=False)
    print(f"{len(features)} synthetic cases extracted ({e['modality']}, {snakemake.input.params}); "
          f"{int((qc['status'] == 'dropped').sum())} dropped", flush=True)
