"""scikit-learn-style estimators: the modelling pipeline and its search, selectors, ComBat, penalised Cox,
recalibration, explanations, and safe model files."""
