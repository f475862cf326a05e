"""Sample masks of one scan (MC dropout or test-time augmentation): segmentation uncertainty readers."""
import torch

from acceflow.imaging.segment_model import load_model_with_card, planned_settings, sample_masks
from acceflow.io.images import read_image, write_image
from acceflow.runtime import log_to

with log_to(snakemake.log[0]):
    torch.set_num_threads(max(1, snakemake.threads))
    image = read_image(snakemake.input.image)
    model, card = load_model_with_card(snakemake.input.model)
    masks = sample_masks(model, image, planned_settings(snakemake.params.settings, card), seed=snakemake.params.seed,
                         label=snakemake.params.label)
    for mask, path in zip(masks, snakemake.output.samples):
        write_image(mask, path)
    print(f"{len(masks)} sample masks ({snakemake.params.settings['uncertainty']['method']})")
