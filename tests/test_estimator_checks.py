"""scikit-learn's common estimator checks on acceflow's own estimators.

ComBat (a DataFrame with a site column in, by design) and PenalizedCox (a structured survival
``y``) take inputs the common checks cannot generate; their behaviour is tested in
test_analytical.py and test_survival.py.
"""
from sklearn.utils.estimator_checks import parametrize_with_checks

from acceflow.models.pipeline import CorrelationFilter, MRMRSelector


@parametrize_with_checks([CorrelationFilter(threshold=0.9), MRMRSelector(k=2)])
def test_sklearn_compatible_estimator(estimator, check):
    check(estimator)
