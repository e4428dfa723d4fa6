"""Thread budgets of the CPU passes: how many workers a pass may use, and single-threaded BLAS inside them.

Both CPU passes split their work over the BLAS thread count of the process (what threadpoolctl reports:
dask's worker limits and the runner's ``threadpool_limits`` set it) and call single-threaded GEMMs in
each worker, so the exponentials and reductions run on every core and no GEMM splits its own
reduction differently with the thread count.
"""

import contextlib

__all__ = ["single_threaded_blas", "worker_count"]

_MIN_THREADED_WORK = 1 << 12  # M x block below which threads cost more than they save


def worker_count(M, first_rows):
    """Workers for M queries against blocks of ``first_rows`` points: the BLAS thread count, or 1."""
    if M * first_rows < _MIN_THREADED_WORK:
        return 1
    try:
        counts = [lib["num_threads"] for lib in _controller().info() if lib.get("user_api") == "blas"]
    except ImportError:
        return 1
    return max(1, min(counts)) if counts else 1


_CONTROLLER = None


def _controller():
    """One threadpoolctl controller per process (finding the libraries costs ~1 ms; querying does not)."""
    global _CONTROLLER
    from threadpoolctl import ThreadpoolController

    if _CONTROLLER is None:
        _CONTROLLER = ThreadpoolController()
    return _CONTROLLER


def single_threaded_blas():
    """Context manager limiting BLAS to one thread (a no-op without threadpoolctl)."""
    try:
        return _controller().limit(limits=1, user_api="blas")
    except ImportError:
        return contextlib.nullcontext()
