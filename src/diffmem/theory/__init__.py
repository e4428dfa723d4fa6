"""Large-N theory of memorization and generalization (docs/theory.md#theory).

:func:`predict` (:mod:`.predict`) is the entry point the engine, the figures and ``diffmem theory`` use; the formulas
live in :mod:`.spectra` (quadrature rules for eigenvalue spectra), :mod:`.linear` (REM formulas for a
spectrum), :mod:`.nonlinear` (replica-symmetric GLM mutual information for any registered sigma, and
the Gaussian-equivalent approximation), :mod:`.rs_distance` (replica-symmetric distance statistics of
a nonlinear manifold: t_o, t_g, t_L, the basin radius and the loss) and :mod:`.mixture` (closed forms
of the Gaussian mixture).
"""

from diffmem.spec import FAMILIES
from diffmem.theory import linear, mixture, nonlinear, rs_distance

from .approximation import GE, GE_LABEL, GE_NOTE, GE_SHORT, ge_attrs, ge_name
from .linear import (
    basin_radius,
    collapse_time,
    excess_entropy,
    generalization_time,
    loss,
    loss_condensation_time,
    loss_raw,
    nearest_distance,
    onset_time,
    rate_function,
    snr,
    voronoi_radius,
)
from .nonlinear import collapse_time_rs, excess_entropy_rs, gaussian_equivalent_spectrum
from .predict import APPROXIMATIONS, LARGE_D_MIN, RS_DISTANCE_NOTE, STABILITY, predict
from .rs_distance import (
    basin_radius_rs,
    cumulant_rs,
    generalization_time_rs,
    loss_rs,
    nearest_distance_rs,
    onset_time_rs,
)
from .spectra import (
    Spectrum,
    isotropic_spectrum,
    marchenko_pastur_spectrum,
    quenched_spectrum,
    spectrum_of_features,
)

__all__ = [
    "predict",
    "FAMILIES",
    "APPROXIMATIONS",
    "LARGE_D_MIN",
    "Spectrum",
    "marchenko_pastur_spectrum",
    "quenched_spectrum",
    "spectrum_of_features",
    "isotropic_spectrum",
    "snr",
    "excess_entropy",
    "collapse_time",
    "onset_time",
    "basin_radius",
    "voronoi_radius",
    "rate_function",
    "nearest_distance",
    "loss_condensation_time",
    "generalization_time",
    "loss",
    "loss_raw",
    "excess_entropy_rs",
    "collapse_time_rs",
    "gaussian_equivalent_spectrum",
    "cumulant_rs",
    "onset_time_rs",
    "nearest_distance_rs",
    "generalization_time_rs",
    "basin_radius_rs",
    "loss_rs",
    "STABILITY",
    "RS_DISTANCE_NOTE",
    "GE",
    "GE_LABEL",
    "GE_SHORT",
    "GE_NOTE",
    "ge_name",
    "ge_attrs",
    "linear",
    "nonlinear",
    "rs_distance",
    "mixture",
]
