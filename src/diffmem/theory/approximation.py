"""How a Gaussian-equivalent (GE) result is named and labelled, in one place (docs/theory.md#gaussian-equivalent).

For a nonlinear sigma the theory of record is replica-symmetric: the GLM entropy for f and t_c
(:mod:`diffmem.theory.nonlinear`) and the distance theory for t_o, t_g, t_L, rho_b and the loss
(:mod:`diffmem.theory.rs_distance`, docs/theory.md#rs-distance). The Gaussian-equivalent (GE)
approximation stays beside it for comparison (its error against simulation is measured in
docs/theory.md#ge-error). Every place that shows a GE value (``theory.zarr``, ``phase.zarr``, the
paper table, figure legends, ``diffmem theory``) takes its name and label from here, so that it is
never shown as if it were the theory:

- variables: ``<name>_ge`` (:func:`ge_name`), with attrs ``approximation: gaussian-equivalent`` and
  a long_name ending in "(Gaussian-equivalent approximation)" (:func:`ge_attrs`);
- figure legends: "GE approx." (:data:`GE_SHORT`);
- text: "APPROXIMATION=gaussian-equivalent" in the ``diffmem theory`` header and a note on every GE line;
  beside an RS result, each GE value is prefixed "GE approx.:".
"""

__all__ = ["GE", "GE_LABEL", "GE_SHORT", "GE_SUFFIX", "GE_NOTE", "ge_name", "ge_long_name", "ge_attrs", "is_ge"]

# The value of ``approximation=`` (predict, cell_theory, the accessor) and of the ``approximation`` attr.
GE = "gaussian-equivalent"
# Appended to long names: "... (Gaussian-equivalent approximation)".
GE_LABEL = "Gaussian-equivalent approximation"
# Figure legends and table cells.
GE_SHORT = "GE approx."
# Suffix of a GE variable or column next to the exact one (t_o_ge beside t_o).
GE_SUFFIX = "_ge"
# One line for text output: where the measured error of the approximation is documented.
GE_NOTE = "approximation: Gaussian-equivalent, not exact for nonlinear sigma; measured error in docs/theory.md#ge-error"


def ge_name(name):
    """Variable or column name of the GE value of ``name`` (``"t_o"`` -> ``"t_o_ge"``)."""
    return f"{name}{GE_SUFFIX}"


def ge_long_name(long_name):
    """``long_name`` marked as an approximation: ``"<long_name> (Gaussian-equivalent approximation)"``."""
    return f"{long_name} ({GE_LABEL})"


def ge_attrs(long_name, **attrs):
    """Attributes of a GE variable: its marked long name and ``approximation: gaussian-equivalent``."""
    return {**attrs, "long_name": ge_long_name(long_name), "approximation": GE}


def is_ge(attrs):
    """True when a variable's attributes mark it as a GE approximation."""
    return attrs.get("approximation") == GE
