"""Image work: IBSI preprocessing, segmentation (Otsu, MONAI), pyradiomics extraction, perturbations,
IBSI conformance."""
