"""Cell-level benchmark: one marginal-mode cell in both sampling schemes, side by side in one run.

``independent`` is the per-time path (one streamed pass per time, fresh draws per t: the engine
before time sharing); ``shared`` is the whole time grid in one pass (:mod:`diffmem.engine.timeshare`).
Both run the same cell (same data, same statistics) interleaved, best of ``repeats``, after a small
warm-up cell (numba compiles, or loads its cache, once per process). The speed-up is the ratio of
wall times measured in the same run; absolute times move with the machine's load (recorded).

``diffmem bench --cells --json`` prints :func:`run_cell_benchmark`'s result.
"""

import os
import sys
import time
from dataclasses import asdict, dataclass, field

import numpy as np

from diffmem.spec import DEFAULT_RHO

__all__ = [
    "CellBenchConfig",
    "PAPER_CELL",
    "PLACEMENTS",
    "QUICK_CELL",
    "format_cell_report",
    "format_grid_report",
    "load_average",
    "run_cell_benchmark",
    "run_grid_benchmark",
]


@dataclass(frozen=True)
class CellBenchConfig:
    """One cell of the benchmark (keyword arguments of :func:`diffmem.engine.cell.run_cell`).

    The default is a paper cell (``config/paper.yaml``): hmm, normalized linear sigma, N = 128,
    alpha = 0.1 (P = 362,217), 48 log-spaced times from 0.002 to 3, 256 samples, 512 test points,
    32 basin samples on the 14 default radii, chunks of 8192 points.
    """

    N: int = 128
    alpha: float = 0.1
    alpha_D: float = 0.5
    nonlinearity: str = "linear"
    normalize: bool = True
    t_start: float = 0.002
    t_stop: float = 3.0
    t_num: int = 48
    samples: int = 256
    test_samples: int = 512
    basin_samples: int = 32
    rho: tuple = field(default=DEFAULT_RHO)
    chunk_size: int = 8192
    seed: int = 0
    repeats: int = 1

    def cell_kwargs(self):
        return dict(
            family="hmm",
            nonlinearity=self.nonlinearity,
            normalize=self.normalize,
            N=self.N,
            alpha=self.alpha,
            alpha_D=self.alpha_D,
            t=list(np.geomspace(self.t_start, self.t_stop, self.t_num)),
            samples=self.samples,
            test_samples=self.test_samples,
            basin_samples=self.basin_samples,
            rho=list(self.rho),
            chunk_size=self.chunk_size,
            seed=self.seed,
            backend="numpy",
        )


PAPER_CELL = CellBenchConfig()
QUICK_CELL = CellBenchConfig(N=24, alpha=0.3, t_num=8, samples=32, test_samples=32, basin_samples=8, chunk_size=1024)

SCHEMES = ("independent", "shared")
# The shared scheme's numerics, side by side in the same run (CellSpec keywords): the default
# exponential in float64, the opt-in mixed-precision exponential, float32 (float32 GEMMs and G) and
# the exact tile skipping.
VARIANTS = {
    "shared-mixed-f32": {"exponential": "mixed-f32"},
    "shared-float32": {"dtype": "float32"},
    "shared-skip": {"skip_tiles": True},
}
SE_FLOOR = 1e-9


def _queries_per_time(config):
    """Kernel queries one time costs in either scheme: planted, fresh, trap, basins, test, KDE."""
    return 3 * config.samples + len(config.rho) * config.basin_samples + 2 * config.test_samples


def load_average():
    """The 1-minute load average (NaN where the OS has none), recorded beside every timing."""
    try:
        return os.getloadavg()[0]
    except OSError:
        return float("nan")


def _progress(message):
    print(f"[bench --cells] {message}", file=sys.stderr, flush=True)


def run_cell_benchmark(config=PAPER_CELL, progress=_progress, variants=True):
    """Time one cell in both schemes (and the shared scheme's :data:`VARIANTS`), interleaved; return a
    JSON-serializable dict.

    Returns
    -------
    dict
        ``config``, ``P``, ``element_times`` (queries x training points x times per cell),
        ``wall_s`` per scheme (best of ``repeats``), ``speedup`` (independent / shared),
        ``shared_ns_per_element_time`` (shared wall time per query, training point and time),
        ``max_phi_gap_in_se`` (largest |phi_shared - phi_independent| over the grid in combined
        standard errors, floored at 1e-9: a sanity check that both ran the same physics), the load
        average before and
        after, and numba's thread count. With ``variants``: ``variants`` maps each variant to its
        ``wall_s``, ``vs_shared`` (wall / the default shared wall, same run) and ``max_phi_gap_in_se``
        (against the default shared cell: the same draws, so a gap is the variant's numerical error).
    """
    from diffmem.engine.cell import run_cell

    kwargs = config.cell_kwargs()
    warm = dict(kwargs, N=8, alpha=0.5, t=kwargs["t"][:2], samples=4, test_samples=4, basin_samples=2, chunk_size=64)
    runs = {scheme: {"sampling": scheme} for scheme in SCHEMES}
    runs.update({name: {"sampling": "shared", **extra} for name, extra in (VARIANTS.items() if variants else ())})
    for extra in runs.values():
        run_cell(**{**warm, **extra})
    load_before = load_average()
    best, results = {}, {}
    for rep in range(config.repeats):
        for scheme, extra in runs.items():
            if progress:
                progress(f"{scheme} cell, repeat {rep + 1}/{config.repeats}")
            start = time.perf_counter()
            results[scheme] = run_cell(**{**kwargs, **extra})
            elapsed = time.perf_counter() - start
            best[scheme] = min(best.get(scheme, np.inf), elapsed)
            if progress:
                progress(f"{scheme}: {elapsed:.2f} s")
    P = results["shared"]["params"]["P"]
    elements = _queries_per_time(config) * P * config.t_num
    phi = {s: np.array(results[s]["phi"]) for s in SCHEMES}
    se = np.hypot(results["shared"]["phi_se"], results["independent"]["phi_se"])
    # floor: at the smallest t phi = 1 - O(1e-11) (one ulp of log Z ~ 5e4 in base 2) while its
    # sampling error can be 1e-14; differences below the floor are rounding, not statistics
    gap = np.abs(phi["shared"] - phi["independent"]) / np.maximum(se, SE_FLOOR)
    try:
        import numba

        threads = numba.get_num_threads()
    except ImportError:
        threads = None
    variant_report = {}
    for name in runs:
        if name in SCHEMES:
            continue
        diff = np.abs(np.array(results[name]["phi"]) - phi["shared"])
        variant_report[name] = {
            "wall_s": best[name],
            "vs_shared": best[name] / best["shared"],
            "max_phi_gap_in_se": float(np.nanmax(diff / np.maximum(results["shared"]["phi_se"], SE_FLOOR))),
            "max_abs_phi_gap": float(np.nanmax(diff)),
        }
    return {
        "variants": variant_report,
        "config": asdict(config),
        "P": P,
        "queries_per_time": _queries_per_time(config),
        "element_times": elements,
        "wall_s": {scheme: best[scheme] for scheme in SCHEMES},
        "speedup": best["independent"] / best["shared"],
        "shared_ns_per_element_time": best["shared"] / elements * 1e9,
        "independent_ns_per_element_time": best["independent"] / elements * 1e9,
        "max_phi_gap_in_se": float(np.nanmax(gap)) if np.isfinite(gap).any() else None,
        "load_before": load_before,
        "load_after": load_average(),
        "numba_threads": threads,
    }


def format_cell_report(result):
    """Readable table of :func:`run_cell_benchmark`'s result."""
    c = result["config"]
    lines = [
        f"cell: hmm {c['nonlinearity']} N={c['N']} P={result['P']} alpha={c['alpha']} alpha_D={c['alpha_D']}, "
        f"{c['t_num']} times, samples={c['samples']} test={c['test_samples']} "
        f"basin={c['basin_samples']}x{len(c['rho'])}, chunk={c['chunk_size']}, best of {c['repeats']}, "
        f"load {result['load_before']:.2f} -> {result['load_after']:.2f}",
        f"{'scheme':>12} {'wall s':>10} {'ns / (query x point x time)':>28}",
        f"{'independent':>12} {result['wall_s']['independent']:>10.2f} "
        f"{result['independent_ns_per_element_time']:>28.3f}",
        f"{'shared':>12} {result['wall_s']['shared']:>10.2f} {result['shared_ns_per_element_time']:>28.3f}",
        f"speed-up (independent / shared, same run): {result['speedup']:.2f}x",
    ]
    if result["max_phi_gap_in_se"] is not None:
        lines.append(f"largest |phi gap| between the schemes: {result['max_phi_gap_in_se']:.2f} combined se")
    for name, v in result.get("variants", {}).items():
        lines.append(
            f"{name:>17}: {v['wall_s']:.2f} s, {v['vs_shared']:.3f} x shared; largest |phi - phi_shared| "
            f"{v['max_abs_phi_gap']:.2e} ({v['max_phi_gap_in_se']:.2e} se)"
        )
    return "\n".join(lines)


# -- fixed against placed time grids (issue 19 item 4; docs/benchmarks.md, "Placed grids") ---------------

# The placed scheme of the comparison: the fixed grid's 48 times subdivided 4x into a 189-point lattice
# (which holds the 48 fixed times), 8 background times, 7 times within a factor 1.4 of each prediction.
LATTICE_SUBDIVISION = 4
# "placed": config/paper.yaml's placement; "placed-lean": fewer times in narrower windows, whose
# spacing (ratio 1.14) is still finer than the fixed grid's 1.17.
PLACEMENTS = {
    "placed": {"background": 8, "points": 7, "width": 1.4},
    "placed-lean": {"background": 6, "points": 5, "width": 1.3},
}
GRID_SEEDS = (0, 1, 2, 3)
# A curve of each measurement group: its finite entries are the times the group was measured at.
GROUP_CURVES = {"collapse": "phi", "trap": "trap", "basin": "basin_static", "loss": "loss"}


def lattice(config, subdivision=LATTICE_SUBDIVISION):
    """The fixed grid of ``config`` with each interval cut into ``subdivision`` log-equal parts."""
    return np.geomspace(config.t_start, config.t_stop, (config.t_num - 1) * subdivision + 1)


def _precision(per_seed):
    """Seed mean, seed-scatter se, mean grid resolution and their combination, per time."""
    out = {}
    for name in ("t_c", "t_o", "t_g"):
        values = np.array([seed[name][0] for seed in per_seed])
        resolution = np.array([seed[name][1] for seed in per_seed])
        n = int(np.isfinite(values).sum())
        se = float(np.nanstd(values, ddof=1) / np.sqrt(n)) if n >= 2 else float("nan")
        res = float(np.nanmean(resolution)) if n else float("nan")
        out[name] = {
            "mean": float(np.nanmean(values)) if n else None,
            "se_seeds": se,
            "resolution": res,
            "se_total": float(np.hypot(se, res)),
            "seeds": n,
        }
    return out


def run_grid_benchmark(config=PAPER_CELL, placements=None, seeds=GRID_SEEDS, progress=_progress):
    """The fixed grid against placed grids on one cell, seed by seed, interleaved, in one run.

    ``placements``: scheme name -> placement settings (default :data:`PLACEMENTS`), each on the
    :func:`lattice` of ``config``. Returns a JSON-serializable dict: per scheme the wall time of each
    seed's cell, the (group, time) pairs each seed measured, and per transition time the seed mean,
    the seed-scatter standard error, the mean grid resolution and their combination ``se_total``;
    then per placed scheme its wall time relative to the fixed grid's (``wall_ratio``) and, per time,
    its precision per CPU second relative to the fixed grid's, (se_fixed^2 wall_fixed) /
    (se_placed^2 wall_placed): how many times more inverse variance a CPU second buys.
    """
    from diffmem.analysis.placement import read_transitions, run_placed
    from diffmem.engine.cell import run_cell
    from diffmem.spec import CellSpec

    placements = dict(PLACEMENTS if placements is None else placements)
    fixed = CellSpec(**config.cell_kwargs())
    on_lattice = fixed.replace(t=tuple(lattice(config)))
    schemes = {"fixed": fixed}
    schemes.update({name: on_lattice.replace(placement=tuple(p.items())) for name, p in placements.items()})
    run_cell(fixed.replace(N=8, alpha=0.5, t=fixed.t[:2], samples=4, test_samples=4, basin_samples=2, chunk_size=64))
    load_before = load_average()
    walls = {name: [] for name in schemes}
    read = {name: [] for name in schemes}
    measured = {name: [] for name in schemes}
    for seed in seeds:
        for name, spec in schemes.items():
            start = time.perf_counter()
            result = run_placed(spec.replace(seed=seed))
            walls[name].append(time.perf_counter() - start)
            read[name].append(read_transitions(result))
            finite = {g: np.isfinite(result[v]).reshape(len(spec.t), -1).any(axis=1) for g, v in GROUP_CURVES.items()}
            measured[name].append({g: int(mask.sum()) for g, mask in finite.items()})
            if progress:
                progress(f"{name} grid, seed {seed}: {walls[name][-1]:.2f} s")
    report = {
        "config": asdict(config),
        "placements": placements,
        "lattice_points": len(on_lattice.t),
        "seeds": list(seeds),
        "schemes": {},
    }
    for name in schemes:
        report["schemes"][name] = {
            "wall_s": walls[name],
            "wall_s_total": float(np.sum(walls[name])),
            "group_times": measured[name],
            "times": _precision(read[name]),
        }
    base = report["schemes"]["fixed"]
    for name in placements:
        row = report["schemes"][name]
        row["wall_ratio"] = row["wall_s_total"] / base["wall_s_total"]
        row["precision_per_cpu_second_ratio"] = {
            q: (base["times"][q]["se_total"] ** 2 * base["wall_s_total"])
            / (row["times"][q]["se_total"] ** 2 * row["wall_s_total"])
            for q in ("t_c", "t_o", "t_g")
        }
    report["load_before"], report["load_after"] = load_before, load_average()
    return report


def format_grid_report(result):
    """Readable table of :func:`run_grid_benchmark`'s result."""
    c = result["config"]
    lines = [
        f"cell: hmm {c['nonlinearity']} N={c['N']} alpha={c['alpha']} alpha_D={c['alpha_D']}, seeds {result['seeds']}; "
        f"fixed: {c['t_num']} log times; placed: {result['lattice_points']}-point lattice",
        f"{'scheme':>12} {'wall s':>8} {'vs fixed':>8}   "
        + "   ".join(f"{q} (mean, se seeds, resolution, se total)" for q in ("t_c", "t_o", "t_g")),
    ]
    for name, row in result["schemes"].items():
        cells = "   ".join(
            f"{v['mean']:.4g}, {v['se_seeds']:.2g}, {v['resolution']:.2g}, {v['se_total']:.2g}"
            for v in row["times"].values()
        )
        lines.append(f"{name:>12} {row['wall_s_total']:>8.2f} {row.get('wall_ratio', 1.0):>8.3f}   {cells}")
    for name, settings in result["placements"].items():
        ratio = result["schemes"][name]["precision_per_cpu_second_ratio"]
        lines.append(
            f"{name} {settings}: precision per CPU second vs fixed "
            + ", ".join(f"{q} {v:.2f}x" for q, v in ratio.items())
        )
    return "\n".join(lines)
