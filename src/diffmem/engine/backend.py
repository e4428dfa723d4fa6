"""Array backends: choose the namespace once (numpy, cupy, or array_api_strict for tests) and move data.

cupy is imported only when the cupy backend is requested (or probed by ``auto``). Data are generated
with numpy in float64 and moved with :meth:`Backend.put`; results come back with :meth:`Backend.get`.
"""

import functools
from dataclasses import dataclass

import numpy as np
from array_api_compat import is_cupy_array, to_device

from diffmem.errors import ParameterError

__all__ = ["BACKENDS", "DTYPES", "Backend", "resolve", "cupy_available", "platform_fingerprint", "to_numpy"]

BACKENDS = ("auto", "numpy", "cupy")
# Not offered on the command line: a strict array-API namespace that proves the kernels use only the
# standard (tests run the engine on it).
TEST_BACKENDS = ("array_api_strict",)
DTYPES = ("float64", "float32")


def cupy_available():
    """True when cupy imports and sees at least one CUDA device."""
    try:
        import cupy

        return cupy.cuda.runtime.getDeviceCount() > 0
    except Exception:  # noqa: BLE001 -- any failure (no module, no driver, no device) means "no"
        return False


@dataclass(frozen=True)
class Backend:
    """A resolved backend.

    Attributes
    ----------
    name : str
        "numpy", "cupy" or "array_api_strict".
    xp : module
        The array namespace.
    dtype : str
        Compute dtype name, "float64" or "float32".
    device : str
        Human-readable device description.
    """

    name: str
    xp: object
    dtype: str
    device: str

    @property
    def float_dtype(self):
        return getattr(self.xp, self.dtype)

    def put(self, array):
        """numpy array -> backend array in the compute dtype (integers keep int64)."""
        array = np.asarray(array)
        if array.dtype.kind in "iub":
            return self.xp.asarray(np.ascontiguousarray(array, dtype=np.int64))
        return self.xp.asarray(np.ascontiguousarray(array, dtype=self.dtype))

    def get(self, array):
        """backend array -> numpy array (float results are returned as float64)."""
        out = to_numpy(array)
        return out.astype(np.float64) if out.dtype.kind == "f" else out


def to_numpy(array):
    """Any backend array as a numpy array.

    numpy arrays pass through; a cupy array is copied to the host with array_api_compat's
    ``to_device(x, "cpu")`` (recognised by ``is_cupy_array``, without importing cupy); any other
    array-API array (array_api_strict) goes through DLPack, else ``np.asarray``.
    """
    if isinstance(array, np.ndarray):
        return array
    if is_cupy_array(array):
        return to_device(array, "cpu")
    try:
        return np.from_dlpack(array)
    except (TypeError, AttributeError, RuntimeError, BufferError):
        return np.asarray(array)


def resolve(name="auto", dtype="float64"):
    """The :class:`Backend` for ``name`` and ``dtype``; ParameterError for anything else.

    ``auto`` picks cupy when a CUDA GPU and cupy are available, else numpy.
    """
    if dtype not in DTYPES:
        raise ParameterError("dtype", f"must be one of {', '.join(DTYPES)}, got {dtype!r}")
    if name not in BACKENDS + TEST_BACKENDS:
        raise ParameterError("backend", f"must be one of {', '.join(BACKENDS)}, got {name!r}")
    if name == "auto":
        name = "cupy" if cupy_available() else "numpy"
    if name == "cupy":
        if not cupy_available():
            raise ParameterError("backend", "cupy requested but no CUDA GPU/cupy available; use numpy")
        import cupy

        dev = cupy.cuda.Device()
        props = cupy.cuda.runtime.getDeviceProperties(dev.id)
        label = props["name"].decode() if isinstance(props["name"], bytes) else str(props["name"])
        return Backend("cupy", cupy, dtype, f"cuda:{dev.id} {label}")
    if name == "array_api_strict":
        import array_api_strict

        return Backend(name, array_api_strict, dtype, "cpu (array_api_strict)")
    return Backend("numpy", np, dtype, "cpu")


@functools.cache
def platform_fingerprint():
    """What outside this package decides a cell's last bits on a CPU, as one line.

    The fused pass is bit-identical wherever it runs (explicit order, no fast-math; the FMA instruction
    or libm's correctly rounded fma). Two libraries pick their code by the CPU they find, and their bits
    can differ between CPU generations (never between runs, threads or processes on one machine):
    numpy's SIMD dispatch of exp, exp2 and log (the per-time kernels, the observables) and OpenBLAS's
    GEMM kernel (every logit block). Recorded per cell, so two stores that differ can be told apart
    by where they ran; same fingerprint, same bits. Computed once per process (it asks threadpoolctl
    for the loaded libraries, ~2 ms).
    """
    import platform

    from numpy.lib import introspect

    simd = introspect.opt_func_info(func_name="exp2", signature="float64")["exp2"]["dd"]["current"]
    try:
        from threadpoolctl import threadpool_info

        # sorted: the order threadpoolctl lists the libraries in follows the order they were loaded
        blas = sorted(
            {
                f"{lib['internal_api']} {lib['version']} {lib.get('architecture') or ''}".strip()
                for lib in threadpool_info()
                if lib.get("user_api") == "blas"
            }
        )
    except ImportError:
        blas = []
    return f"{platform.machine()}; numpy {np.__version__} simd {simd}; blas {', '.join(blas) or 'unknown'}"
