"""logitshift: the exact optimal shift of raw scores under binary cross-entropy.

>>> import logitshift
>>> result = logitshift.fit(y, offset=raw_scores)        # doctest: +SKIP
>>> result.shift, result.se, result.confint()            # doctest: +SKIP
"""

from ._api import (fit, fit_file, fit_frame, fit_groups, fit_groups_file, fit_groups_frame,
                   fit_slope, fit_slope_file, fit_slope_frame, validate, validate_file,
                   validate_frame)
from ._group_sketch import GroupSketch
from ._groups import GroupShiftFit
from ._report import CalibrationCurve, CalibrationReport, MillerTests
from ._losses import gradient, hessian, loss, sigmoid
from ._result import LRTest, ObservedExpected, ShiftFit
from ._slope import SlopeFit, SlopeIntervals
from ._sketch import Sketch
from ._validate import InputError

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
    "CalibrationReport",
    "CalibrationCurve",
    "MillerTests",
    "ShiftFit",
    "SlopeFit",
    "SlopeIntervals",
    "Sketch",
    "LRTest",
    "ObservedExpected",
    "InputError",
    "loss",
    "gradient",
    "hessian",
    "sigmoid",
    "__version__",
]
