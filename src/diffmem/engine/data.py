"""Training, test and query data: the hidden manifold model and the reference families (docs/theory.md#data).

Every array derives from one integer seed through :func:`diffmem.seeding.generator`:

- the feature matrix F from stream ``FEATURES``;
- the training set in fixed generation blocks of :data:`BLOCK` points, block k from
  ``generator(seed, TRAIN, k)``: any block regenerates bit-identically on any worker, in any order,
  and the points do not depend on the compute chunk size;
- held-out and fresh points from stream ``TEST`` (same F, fresh latents).

Data are always generated with numpy in float64 and moved to the compute backend afterwards, so all
backends see the same training set.
"""

from dataclasses import dataclass, field
from math import sqrt

import numpy as np

from diffmem import nonlinearities
from diffmem.engine.kernels import AugmentedChunk
from diffmem.seeding import TRAIN, feature_matrix, generator

__all__ = [
    "BLOCK",
    "DataSpec",
    "sample_points",
    "training_block",
    "TrainingSet",
]

# Points per generation block of the training set. Never change it: the training set of a seed
# depends on it (stores and tests rely on regenerating the same points).
BLOCK = 4096


@dataclass(frozen=True)
class DataSpec:
    """Everything that defines a data set: family, sizes and seed (docs/theory.md#data).

    Attributes
    ----------
    family : {"hmm", "isotropic", "gaussian-mixture"}
    N : int
        Ambient dimension.
    D : int
        Latent dimension (hmm only; stored for every family).
    P : int
        Number of training points.
    seed : int
    nonlinearity : str
        Registered sigma (hmm only).
    normalize : bool
        Divide sigma by sqrt(E[sigma(g)^2]) (hmm only).
    m_tilde, sigma : float
        Gaussian mixture: centres +-m_tilde (1, ..., 1), per-class standard deviation sigma.
    """

    family: str
    N: int
    D: int
    P: int
    seed: int
    nonlinearity: str = "linear"
    normalize: bool = False
    m_tilde: float = 1.0
    sigma: float = 1.0
    _features: dict = field(default_factory=dict, compare=False, repr=False, hash=False)

    @classmethod
    def of(cls, cell):
        """The data set of a :class:`diffmem.spec.CellSpec` (its realized sizes)."""
        return cls(
            cell.family, cell.N, cell.D, cell.P, cell.seed, cell.nonlinearity, cell.normalize, cell.m_tilde, cell.sigma
        )

    @property
    def F(self):
        """Feature matrix (N, D), drawn once and kept (hmm only)."""
        if "F" not in self._features:
            self._features["F"] = feature_matrix(self.N, self.D, self.seed)
        return self._features["F"]

    @property
    def n_blocks(self):
        return -(-self.P // BLOCK)


def sample_points(spec, rng, n):
    """``n`` fresh points of the data distribution of ``spec``, shape (n, N), float64, drawn from ``rng``.

    The draw order inside ``rng`` is fixed per family (latents, then nothing else for the hmm; class
    signs then noise for the mixture), so a given generator always yields the same points.
    """
    N = spec.N
    if spec.family == "hmm":
        z = rng.standard_normal((n, spec.D))
        h = z @ spec.F.T / sqrt(spec.D)
        return np.asarray(nonlinearities.apply(spec.nonlinearity, h, spec.normalize), dtype=np.float64)
    if spec.family == "isotropic":
        return rng.standard_normal((n, N))
    if spec.family == "gaussian-mixture":
        signs = rng.integers(0, 2, size=n) * 2.0 - 1.0
        noise = rng.standard_normal((n, N))
        return signs[:, None] * spec.m_tilde + spec.sigma * noise
    raise ValueError(f"unknown family {spec.family!r}")


def block_rows(spec, k):
    """Index range [start, stop) of generation block ``k``."""
    start = k * BLOCK
    return start, min(start + BLOCK, spec.P)


def training_block(spec, k):
    """Generation block ``k`` of the training set, shape (rows, N), float64; bit-identical on regeneration."""
    start, stop = block_rows(spec, k)
    if not 0 <= start < spec.P:
        raise IndexError(f"block {k} out of range for P={spec.P}")
    return sample_points(spec, generator(spec.seed, TRAIN, k), stop - start)


def _numpy_result_dtype(device_put):
    """The numpy dtype ``device_put`` produces, or None when it produces another kind of array."""
    probe = device_put(np.zeros((1, 1)))
    return probe.dtype if type(probe) is np.ndarray else None


def default_memory_budget():
    """Bytes the training-set caches may use (host and device each): 2 GiB."""
    return 2 * 1024**3


class TrainingSet:
    """The P training points of ``spec``, served as compute chunks on an array backend.

    Chunks of ``chunk_size`` rows are cut from the fixed generation blocks, so the points never depend
    on ``chunk_size``. When the whole set fits under ``memory_budget`` bytes it is generated once and
    cached (host copy in float64 and device chunks with their squared norms), so that each kernel pass
    costs one GEMM sweep and nothing else; otherwise every pass regenerates the blocks (streaming).

    Parameters
    ----------
    spec : DataSpec
    xp : namespace
        Array namespace of the compute backend (numpy, cupy, array_api_strict).
    dtype : str
        "float64" or "float32" on the backend.
    chunk_size : int
        Rows per compute chunk.
    device_put : callable
        ``device_put(numpy_array) -> backend array`` in the compute dtype.
    """

    def __init__(self, spec, *, chunk_size, device_put, memory_budget=None):
        self.spec = spec
        self.chunk_size = int(chunk_size)
        self._put = device_put
        budget = default_memory_budget() if memory_budget is None else memory_budget
        self.cached = spec.P * spec.N * 8 <= budget
        self._host = None
        self._device_chunks = None
        # numpy backends get chunks that carry [A | 1 | |a|^2] for the kernel's fast path
        self._numpy_dtype = _numpy_result_dtype(device_put)
        self._last_block = (None, None)  # streaming: chunks smaller than BLOCK reuse the last block

    @property
    def P(self):
        return self.spec.P

    def host_points(self):
        """All P points as one numpy array (P, N) when cached; else None.

        On a float64 numpy backend the cache is stored augmented, (P, N + 2) = [a | 1 | |a|^2], and
        this is a view of its first N columns: the kernel's chunks are views of the same memory.
        """
        if self.cached and self._host is None:
            self._host = self._generate_host()
        return None if self._host is None else self._host[:, : self.spec.N]

    def _generate_host(self):
        """All blocks written into one preallocated array (no concatenation copy)."""
        N = self.spec.N
        augmented = self._numpy_dtype == np.float64
        host = np.empty((self.P, N + 2 if augmented else N))
        for k in range(self.spec.n_blocks):
            start, stop = block_rows(self.spec, k)
            block = training_block(self.spec, k)
            host[start:stop, :N] = block
            if augmented:
                host[start:stop, N] = 1.0
                host[start:stop, N + 1] = np.einsum("ij,ij->i", block, block)
        return host

    def _host_range(self, start, stop):
        host = self.host_points()
        if host is not None:
            return host[start:stop]
        first, last = start // BLOCK, (stop - 1) // BLOCK
        parts = [self._block(k) for k in range(first, last + 1)]
        joined = parts[0] if len(parts) == 1 else np.concatenate(parts)
        return joined[start - first * BLOCK : stop - first * BLOCK]

    def _block(self, k):
        if self._last_block[0] != k:
            self._last_block = (k, training_block(self.spec, k))
        return self._last_block[1]

    def rows(self, index):
        """Training points a^mu for integer array ``index`` (any shape (M,)), numpy float64 (M, N)."""
        index = np.asarray(index, dtype=np.int64)
        host = self.host_points()
        if host is not None:
            return host[index]
        out = np.empty((index.size, self.spec.N))
        blocks = index // BLOCK
        for k in np.unique(blocks):
            sel = blocks == k
            out[sel] = training_block(self.spec, int(k))[index[sel] - k * BLOCK]
        return out

    def _make_chunk(self, start):
        stop = min(start + self.chunk_size, self.P)
        if self._numpy_dtype is not None:
            host = self._host if self.host_points() is not None else None
            if host is not None and host.shape[1] == self.spec.N + 2:
                return AugmentedChunk(start, host[start:stop])
            return AugmentedChunk.from_points(start, self._host_range(start, stop), dtype=self._numpy_dtype)
        a = self._host_range(start, stop)
        return start, self._put(a), self._put(np.einsum("ij,ij->i", a, a))

    def chunks(self):
        """Iterate ``(start, A, sqnorm)``: A (rows, N) and |a|^2 (rows,) on the backend, in index order."""
        if self.cached:
            if self._device_chunks is None:
                self._device_chunks = [self._make_chunk(s) for s in range(0, self.P, self.chunk_size)]
            yield from self._device_chunks
        else:
            for start in range(0, self.P, self.chunk_size):
                yield self._make_chunk(start)
