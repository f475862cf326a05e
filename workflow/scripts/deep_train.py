"""Train the deep biomarker on the training cohorts (acceflow.study.deep.train_study)."""
import pandas as pd
import torch

from acceflow.deep.train import save_model
from acceflow.runtime import log_to
from acceflow.study.deep import case_crops, train_study

with log_to(snakemake.log[0]):
    torch.set_num_threads(snakemake.threads)
    config = snakemake.params.config
    table = pd.read_csv(snakemake.input.features, sep="\t", dtype={"case_id": str})
    scans = pd.read_csv(snakemake.input.scans, sep="\t", dtype=str, keep_default_na=False).set_index("scan_id")
    fitted, card, predictions, folds, history = train_study(table, case_crops(scans, list(snakemake.input.crops)),
                                                            config, log=lambda line: print(line, flush=True))
    card.model_file = "model.pt"
    card.model_sha256 = save_model(fitted, snakemake.output.model)
    card.write(snakemake.output.card)
    history.to_csv(snakemake.output.history, sep="\t", index=False, float_format="%.10g")
    predictions.to_csv(snakemake.output.predictions, sep="\t", index=False, float_format="%.10g")
    folds.to_csv(snakemake.output.folds, sep="\t", index=False, float_format="%.10g")
    stat = "c_index" if "cv_c_index_mean" in card else "auc"
    print(f"cv {stat} {card[f'cv_{stat}_mean']:.3f} (SD {card[f'cv_{stat}_sd']:.3f}); final network stopped at epoch "
          f"{card['final_model']['stopped_epoch']} (best {card['final_model']['best_epoch']})")
