"""logitshift: the exact optimal shift of raw scores under binary cross-entropy.

>>> import logitshift
>>> result = logitshift.fit(y, offset=raw_scores)        # doctest: +SKIP
>>> result.shift, result.se, result.confint()            # doctest: +SKIP
"""

from ._api import (calibration_curve, calibration_curve_file, calibration_curve_frame,
                   decision_curve, decision_curve_file, decision_curve_frame, fit, fit_file,
                   fit_frame, fit_groups, fit_groups_file, fit_groups_frame, fit_multiclass,
                   fit_multiclass_frame, fit_prior_shift, fit_prior_shift_frame, fit_slope,
                   fit_slope_file, fit_slope_frame, multiclass_metrics, validate,
                   validate_file, validate_frame)
from ._core.losses import gradient, hessian, loss, sigmoid
from ._core.validate import InputError
from ._estimators.curve import CurvePrediction, SmoothCalibrationCurve
from ._estimators.decision import DecisionCurve, NetBenefit
from ._estimators.groups import GroupShiftFit
from ._estimators.multiclass import (ClassObservedExpected, MulticlassFit, MulticlassLRTest,
                                     MulticlassMetrics)
from ._estimators.prior_shift import PriorShiftFit
from ._estimators.report import CalibrationCurve, CalibrationReport, MillerTests
from ._estimators.result import LRTest, ObservedExpected, ShiftFit
from ._estimators.slope import SlopeFit, SlopeIntervals
from ._summary.group_sketch import GroupSketch
from ._summary.sketch import Sketch

__version__ = "0.1.0"

__all__ = [
    "fit",
    "fit_frame",
    "fit_file",
    "fit_slope",
    "fit_slope_frame",
    "fit_slope_file",
    "fit_groups",
    "fit_groups_frame",
    "fit_groups_file",
    "GroupShiftFit",
    "GroupSketch",
    "validate",
    "validate_frame",
    "validate_file",
    "calibration_curve",
    "calibration_curve_frame",
    "calibration_curve_file",
    "SmoothCalibrationCurve",
    "CurvePrediction",
    "CalibrationReport",
    "CalibrationCurve",
    "MillerTests",
    "decision_curve",
    "decision_curve_frame",
    "decision_curve_file",
    "DecisionCurve",
    "NetBenefit",
    "ShiftFit",
    "SlopeFit",
    "SlopeIntervals",
    "Sketch",
    "LRTest",
    "ObservedExpected",
    "InputError",
    "fit_multiclass",
    "fit_multiclass_frame",
    "fit_prior_shift",
    "fit_prior_shift_frame",
    "multiclass_metrics",
    "MulticlassFit",
    "MulticlassMetrics",
    "MulticlassLRTest",
    "ClassObservedExpected",
    "PriorShiftFit",
    "loss",
    "gradient",
    "hessian",
    "sigmoid",
    "__version__",
]
