"""Eigenvalue spectra of the data covariance, as quadrature rules (docs/theory.md#spectra).

Every linear-theory formula is an average ``<g> = (1/N) sum_i g(lam_i)`` over the N eigenvalues of the
covariance of one data point, counting the N - D zero eigenvalues of a rank-D manifold. A
:class:`Spectrum` stores that average as a rule ``<g> = sum_k weight_k g(lam_k)`` (weights sum to 1),
so the quenched spectrum of a given F, the Marchenko-Pastur limit and isotropic data are handled by
the same code.

The Marchenko-Pastur density has square-root edges and, for alpha_D -> 1, a 1/mu factor that blows up
at the lower edge. Substituting mu = centre + half_width cos(theta) turns the square roots into the
Chebyshev weight of the second kind, and subtracting g(0) removes the 1/mu factor:

    int p(mu) g(mu) dmu = g(0) + (2/pi) int_0^pi sin^2(theta) (g(mu) - g(0)) / mu dtheta,

which Gauss-Chebyshev (2nd kind) integrates spectrally for every g analytic on [0, mu_max] (all the
g's of the theory are: log(1 + s lam), s lam/(1 + s lam), ...). The g(0) term becomes a node at
lam = 0, merged with the N - D zero eigenvalues.
"""

from dataclasses import dataclass

import numpy as np

from diffmem.errors import ParameterError, check_range
from diffmem.seeding import feature_matrix

__all__ = [
    "Spectrum",
    "marchenko_pastur_spectrum",
    "quenched_spectrum",
    "spectrum_of_features",
    "isotropic_spectrum",
]

# Chebyshev nodes of the Marchenko-Pastur rule. The integrands log(1 + s lam), lam/(1 + 2 theta lam)
# have a singularity at lam = -1/s; convergence needs about 12 sqrt(s) nodes for 1e-10, so 1024 nodes
# cover s up to ~7000 (t down to ~1e-4) while a 200-point curve stays a few milliseconds.
DEFAULT_MP_NODES = 1024


@dataclass(frozen=True)
class Spectrum:
    """Quadrature rule for averages over the N eigenvalues of the data covariance.

    Attributes
    ----------
    lam : ndarray, shape (n_nodes,)
        Eigenvalue nodes (zero for the directions orthogonal to the manifold).
    weight : ndarray, shape (n_nodes,)
        Weights, summing to 1: ``<g> = weight @ g(lam)``.
    alpha_D : float
        Fraction of non-zero eigenvalues, D/N (1 for full-rank data).
    lam_max : float
        Largest eigenvalue (the upper support edge in the Marchenko-Pastur limit).
    kind : str
        ``"marchenko-pastur"``, ``"quenched"`` or ``"isotropic"`` (for provenance).
    """

    lam: np.ndarray
    weight: np.ndarray
    alpha_D: float
    lam_max: float
    kind: str

    def mean(self, values):
        """Average ``values`` (shape (..., n_nodes), values at ``lam``) over the spectrum."""
        return np.asarray(values) @ self.weight

    def scaled(self, scale, shift=0.0, kind=None):
        """The spectrum of ``scale * lam + shift`` (same weights), e.g. a per-class variance sigma^2."""
        return Spectrum(
            self.lam * scale + shift,
            self.weight,
            self.alpha_D if shift == 0 else 1.0,
            self.lam_max * scale + shift,
            kind or self.kind,
        )


def marchenko_pastur_spectrum(alpha_D, n_nodes=DEFAULT_MP_NODES):
    """N -> infinity spectrum of K = F^T F / D for F of shape (N, D), D/N = alpha_D in (0, 1].

    F^T F / N has the Marchenko-Pastur law of ratio c = alpha_D on [(1 - sqrt c)^2, (1 + sqrt c)^2]
    (density sqrt((b - mu)(mu - a)) / (2 pi c mu)); lam = mu / alpha_D; the N - D zero eigenvalues
    carry weight 1 - alpha_D (docs/theory.md#spectra).

    Parameters
    ----------
    alpha_D : float
        Latent ratio D/N, in (0, 1].
    n_nodes : int
        Chebyshev nodes (see module docstring for the accuracy).
    """
    c = check_range("alpha_D", alpha_D, low=0.0, high=1.0, low_open=True)
    centre, half_width = 1.0 + c, 2.0 * np.sqrt(c)
    theta = np.arange(1, n_nodes + 1) * np.pi / (n_nodes + 1)
    mu = centre + half_width * np.cos(theta)
    # (2/pi) * Gauss-Chebyshev-U weight pi/(n+1) sin^2, divided by mu from the g(0) subtraction.
    w_mu = 2.0 / (n_nodes + 1) * np.sin(theta) ** 2 / mu
    w_zero = 1.0 - w_mu.sum()
    lam = np.concatenate([[0.0], mu / c])
    weight = np.concatenate([[c * w_zero + (1.0 - c)], c * w_mu])
    lam_max = (1.0 + np.sqrt(c)) ** 2 / c
    return Spectrum(lam, weight, float(c), float(lam_max), "marchenko-pastur")


def spectrum_of_features(F):
    """Quenched spectrum of a feature matrix F of shape (N, D), D <= N: eigenvalues of F^T F / D.

    Each eigenvalue has weight 1/N; the N - D zero eigenvalues form one node of weight (N - D)/N.
    """
    F = np.asarray(F, dtype=float)
    if F.ndim != 2 or F.shape[1] > F.shape[0] or F.shape[1] < 1:
        raise ParameterError("F", f"must have shape (N, D) with 1 <= D <= N, got {F.shape}")
    N, D = F.shape
    eig = np.clip(np.linalg.eigvalsh(F.T @ F / D), 0.0, None)
    lam = np.concatenate([[0.0], eig])
    weight = np.concatenate([[(N - D) / N], np.full(D, 1.0 / N)])
    return Spectrum(lam, weight, D / N, float(eig.max()), "quenched")


def quenched_spectrum(N, D, seed):
    """Spectrum of F = ``diffmem.seeding.feature_matrix(N, D, seed)``: the F the simulation of that cell uses."""
    N = check_range("N", N, low=1, integer=True)
    D = check_range("D", D, low=1, high=N, integer=True)
    seed = check_range("seed", seed, low=0, integer=True)
    return spectrum_of_features(feature_matrix(N, D, seed))


def isotropic_spectrum(variance=1.0):
    """Isotropic data N(0, variance I): one eigenvalue ``variance`` with weight 1."""
    v = check_range("variance", variance, low=0.0, low_open=True)
    return Spectrum(np.array([float(v)]), np.array([1.0]), 1.0, float(v), "isotropic")
