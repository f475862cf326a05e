"""The study layer, the only one that reads settings: typed settings, the Task per outcome type, the
model card, every results path, training and the selections over scans and tables."""
