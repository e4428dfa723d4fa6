"""The one exception type raised for invalid user input.

Validation happens at the boundary (CLI, public API, config, store); the message always names the
parameter and its accepted range so that the CLI can print it as one line.
"""

from math import isfinite

import numpy as np

__all__ = ["ParameterError", "check_range", "check_times"]


class ParameterError(ValueError):
    """Invalid parameter value; ``str(err)`` is a one-line message naming the parameter."""

    def __init__(self, name, message):
        self.name = name
        super().__init__(f"{name}: {message}")


def check_range(name, value, *, low=None, high=None, low_open=False, high_open=False, integer=False):
    """Check ``low <= value <= high`` (or open bounds) and return the value.

    Raises
    ------
    ParameterError
        naming ``name`` and the accepted range.
    """
    if integer:
        if isinstance(value, bool) or int(value) != value:
            raise ParameterError(name, f"must be an integer, got {value!r}")
        value = int(value)
    try:
        v = float(value)
    except (TypeError, ValueError):
        raise ParameterError(name, f"must be a number, got {value!r}") from None
    if v != v:
        raise ParameterError(name, "must be a number, got NaN")
    lo_txt = "(" if low_open else "["
    hi_txt = ")" if high_open else "]"
    lo_txt = "(" if low is None else lo_txt
    hi_txt = ")" if high is None else hi_txt
    rng = f"{lo_txt}{'-inf' if low is None else low}, {'inf' if high is None else high}{hi_txt}"
    bad = (low is not None and (v <= low if low_open else v < low)) or (
        high is not None and (v >= high if high_open else v > high)
    )
    if bad:
        raise ParameterError(name, f"must lie in {rng}, got {value!r}")
    return value


def check_times(t):
    """Validate diffusion times: a non-empty sequence of finite numbers > 0, returned as floats.

    The order is kept (a cell's time grid need not be sorted).
    """
    values = np.atleast_1d(np.asarray(t, dtype=object)).ravel()
    if values.size == 0:
        raise ParameterError("t", "give at least one time t > 0")
    out = []
    for v in values:
        try:
            f = float(v)
        except (TypeError, ValueError):
            raise ParameterError("t", f"times must be numbers in (0, inf), got {v!r}") from None
        if not (isfinite(f) and f > 0):
            raise ParameterError("t", f"times must lie in (0, inf), got {v!r}")
        out.append(f)
    return out
