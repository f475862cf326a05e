"""Pure statistics of arrays: discrimination, thresholds, calibration, decision curves, survival metrics,
ICC and agreement, segmentation overlap. No config, no files; each function cites its method."""
