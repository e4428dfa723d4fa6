"""The table of the measured error of the Gaussian-equivalent (GE) approximation (docs/theory.md#ge-error),
from the per-cell records of :func:`diffmem.bench.ge_error.measure` (the simulations and their protocol),
and the same comparison against the replica-symmetric (RS) theory (docs/theory.md#rs-error), from the
records of :func:`diffmem.bench.ge_error.measure_rs`: :func:`summarize_rs`, :func:`extrapolate_rs`,
:func:`markdown_rs`.

For a nonlinear sigma only t_c and f have an exact large-N theory; t_o, t_g and the basin radius exist
only in the GE approximation. :func:`summarize` turns the records into relative errors per
(sigma, alpha_D, N), with ``net`` the per-seed difference from the linear control (exact theory, same
feature matrix); :func:`markdown` writes them as the committed table. Nothing here simulates.
"""

import numpy as np

__all__ = [
    "OBSERVABLES",
    "RS_TIMES",
    "RS_TOLERANCE",
    "summarize",
    "markdown",
    "summarize_rs",
    "extrapolate_rs",
    "markdown_rs",
]

OBSERVABLES = {
    "t_c": "phi = 1/2 crossing",
    "t_o": "trap fraction = 1/2 crossing",
    "t_g": "argmin of the held-out loss L(t)",
    "rho_b(t_c/2)": "static basin radius at the grid time nearest t_c / 2 (condensed)",
    "rho_b((t_c+t_o)/2)": "static basin radius at the grid time nearest (t_c + t_o) / 2 (annealed)",
}


def _nan(value):
    return np.nan if value is None else float(value)


def _mean_se(values):
    v = np.asarray(values, dtype=float)
    v = v[np.isfinite(v)]
    n = len(v)
    return {
        "rel": float(v.mean()) if n else np.nan,
        "rel_se": float(v.std(ddof=1) / np.sqrt(n)) if n >= 2 else np.nan,
        "nseed": n,
    }


def summarize(records):
    """Relative errors per (sigma, alpha_D, N): measured / theory - 1, mean and standard error over seeds.

    Returns
    -------
    list of dict
        One per (sigma, alpha_D, N), with ``D``, ``P`` and per observable a dict ``theory`` (mean over
        seeds), ``rel``, ``rel_se``, ``nseed``, and for nonlinear sigma ``net`` (the same for the
        per-seed difference from the linear control, when the control is among ``records``);
        ``t_c_rs``: t_c against the exact replica-symmetric value (nonlinear sigma).
    """
    linear = {(r["alpha_D"], r["N"], r["seed"]): r for r in records if r["sigma"] == "linear"}

    def rel(r, name):
        return _nan(r["measured"][name]) / _nan(r["theory"][name]) - 1

    groups = {}
    for r in records:
        groups.setdefault((r["sigma"], r["alpha_D"], r["N"]), []).append(r)
    rows = []
    for (sigma, alpha_D, N), group in groups.items():
        row = {
            "sigma": sigma,
            "alpha_D": alpha_D,
            "N": N,
            "D": group[0]["D"],
            "P": group[0]["P"],
            "theory_kind": group[0]["theory_kind"],
        }
        for name in OBSERVABLES:
            entry = _mean_se([rel(r, name) for r in group])
            entry["theory"] = float(np.mean([_nan(r["theory"][name]) for r in group]))
            controls = [linear.get((r["alpha_D"], r["N"], r["seed"])) for r in group]
            if sigma != "linear" and all(c is not None for c in controls):
                entry["net"] = _mean_se([rel(r, name) - rel(c, name) for r, c in zip(group, controls)])
            row[name] = entry
        if sigma != "linear":
            row["t_c_rs"] = _mean_se([_nan(r["measured"]["t_c"]) / _nan(r["t_c_rs"]) - 1 for r in group])
            row["t_c_rs"]["theory"] = float(np.mean([_nan(r["t_c_rs"]) for r in group]))
        rows.append(row)
    return rows


def _fmt(entry, n_seeds):
    if entry is None or not np.isfinite(entry["rel"]):
        return "n/a"
    seeds = "" if entry["nseed"] == n_seeds else f" ({entry['nseed']} seeds)"
    return f"{entry['rel']:+.3f} +- {entry['rel_se']:.3f}{seeds}"


def markdown(rows, n_seeds=4):
    """The table of docs/theory.md#ge-error (Markdown) from :func:`summarize`'s rows."""
    lines = [
        "| sigma | alpha_D | N | theory | t_c vs RS (exact) | t_c | t_o | t_o net | t_g | t_g net "
        "| rho_b at t_c/2 | rho_b at (t_c+t_o)/2 |",
        "|---|---|---|---|---|---|---|---|---|---|---|---|",
    ]
    for row in rows:
        kind = "exact" if row["sigma"] == "linear" else "GE approx."
        cells = [
            row["sigma"],
            f"{row['alpha_D']:g}",
            str(row["N"]),
            kind,
            _fmt(row.get("t_c_rs"), n_seeds),
            _fmt(row["t_c"], n_seeds),
            _fmt(row["t_o"], n_seeds),
            _fmt(row["t_o"].get("net"), n_seeds),
            _fmt(row["t_g"], n_seeds),
            _fmt(row["t_g"].get("net"), n_seeds),
            _fmt(row["rho_b(t_c/2)"], n_seeds),
            _fmt(row["rho_b((t_c+t_o)/2)"], n_seeds),
        ]
        if row["sigma"] == "linear":
            cells[4] = cells[7] = cells[9] = "-"
        lines.append("| " + " | ".join(cells) + " |")
    return "\n".join(lines)


# ---------------------------------------------------------------------------------------------
# against the replica-symmetric theory (docs/theory.md#rs-error)

RS_TIMES = ("t_c", "t_o", "t_g")
# The targets of the comparison: |N -> infinity net error| of t_o within 1.5 %, of t_g within 5 %.
RS_TOLERANCE = {"t_o": 0.015, "t_g": 0.05}


def _resolved(values, resolutions):
    """Seed mean of ``values`` with its seed standard error, the mean grid resolution and their combination."""
    from diffmem.analysis.estimators import combine_resolution

    v = np.asarray(values, dtype=float)
    r = np.asarray(resolutions, dtype=float)
    ok = np.isfinite(v)
    entry = _mean_se(v)
    entry["rel_se_seeds"] = entry["rel_se"]
    entry["resolution"] = float(np.mean(r[ok])) if ok.any() and np.isfinite(r[ok]).all() else np.nan
    entry["rel_se"] = float(combine_resolution(entry["rel_se_seeds"], entry["resolution"]))
    return entry


def summarize_rs(records):
    """Relative errors against RS per (sigma, alpha_D, N), resolution of the grids included.

    Per seed: ``rel`` = measured / theory - 1 (theory: RS at the realized point for a nonlinear sigma,
    the N -> infinity linear theory there for the control) and its resolution / theory; ``net`` = rel
    minus the linear control's rel at the same (alpha_D, N, seed), hence the same feature matrix, with
    the two resolutions in quadrature. Over seeds: mean, ``rel_se_seeds`` (scatter), ``resolution``
    (mean over seeds) and ``rel_se`` = sqrt(rel_se_seeds^2 + resolution^2).

    Returns
    -------
    list of dict
        One per (sigma, alpha_D, N), with ``D``, ``P``, ``theory_kind`` and per time in
        :data:`RS_TIMES` a dict ``theory`` (mean over seeds), ``rel``, ``rel_se``, ``rel_se_seeds``,
        ``resolution``, ``nseed`` and, for a nonlinear sigma with its control, ``net`` (the same keys).
    """
    linear = {(r["alpha_D"], r["N"], r["seed"]): r for r in records if r["sigma"] == "linear"}

    def rel(r, name):
        return _nan(r["measured"][name]) / _nan(r["theory"][name]) - 1

    def res(r, name):
        return _nan(r["resolution"][name]) / _nan(r["theory"][name])

    groups = {}
    for r in records:
        groups.setdefault((r["sigma"], r["alpha_D"], r["N"]), []).append(r)
    rows = []
    for (sigma, alpha_D, N), group in sorted(groups.items(), key=lambda kv: (kv[0][0] != "linear", kv[0])):
        group = sorted(group, key=lambda r: r["seed"])
        row = {
            "sigma": sigma,
            "alpha_D": alpha_D,
            "N": N,
            "D": group[0]["D"],
            "P": group[0]["P"],
            "theory_kind": group[0]["theory_kind"],
        }
        for name in RS_TIMES:
            entry = _resolved([rel(r, name) for r in group], [res(r, name) for r in group])
            entry["theory"] = float(np.mean([_nan(r["theory"][name]) for r in group]))
            controls = [linear.get((r["alpha_D"], r["N"], r["seed"])) for r in group]
            if sigma != "linear" and all(c is not None for c in controls):
                entry["net"] = _resolved(
                    [rel(r, name) - rel(c, name) for r, c in zip(group, controls)],
                    [np.hypot(res(r, name), res(c, name)) for r, c in zip(group, controls)],
                )
            row[name] = entry
        rows.append(row)
    return rows


def extrapolate_rs(rows, form="logN/N"):
    """N -> infinity of the relative errors of :func:`summarize_rs`: weighted fit in x = log(N)/N.

    Per (sigma, alpha_D, time in t_o, t_g): the fit of ``net`` and of ``rel`` against x, weighted by
    1 / rel_se^2 (resolution included), covariance scaled by max(1, chi2/dof)
    (:func:`diffmem.analysis.finite_size.extrapolate`); for the linear control ``rel`` only. t_c is
    not fitted: read on the 48 times, its resolution (7.8 % of t) would make the fit meaningless.

    Returns
    -------
    list of dict
        ``sigma, alpha_D, quantity, of`` ("net" or "rel"), ``value``, ``se``, ``slope``, ``slope_se``,
        ``chi2``, ``dof``, ``Ns``, ``tolerance`` and ``within`` (|value| <= tolerance,
        :data:`RS_TOLERANCE`).
    """
    from diffmem.analysis import finite_size as fs

    groups = {}
    for row in rows:
        groups.setdefault((row["sigma"], row["alpha_D"]), []).append(row)
    fits = []
    for (sigma, alpha_D), group in groups.items():
        group = sorted(group, key=lambda r: r["N"])
        for name, tolerance in RS_TOLERANCE.items():
            for of in ("rel",) if sigma == "linear" else ("net", "rel"):
                entries = [r[name] if of == "rel" else r[name].get("net") for r in group]
                if any(e is None for e in entries):
                    continue
                Ns = np.array([r["N"] for r in group], dtype=float)
                y = np.array([e["rel"] for e in entries], dtype=float)
                se = np.array([e["rel_se"] for e in entries], dtype=float)
                fit = fs.extrapolate(Ns, y, se, form=form)
                fits.append(
                    {
                        "sigma": sigma,
                        "alpha_D": alpha_D,
                        "quantity": name,
                        "of": of,
                        "value": fit.value,
                        "se": fit.se,
                        "slope": fit.slope,
                        "slope_se": fit.slope_se,
                        "chi2": fit.chi2,
                        "dof": fit.dof,
                        "Ns": [int(n) for n in Ns],
                        "tolerance": tolerance,
                        "within": bool(abs(fit.value) <= tolerance),
                    }
                )
    return fits


def _fmt_rs(entry):
    if entry is None or not np.isfinite(entry["rel"]):
        return "n/a"
    return f"{entry['rel']:+.3f} +- {entry['rel_se']:.3f}"


def _fmt_fit(fit):
    if fit is None or not np.isfinite(fit["value"]):
        return "n/a"
    return f"{fit['value']:+.3f} +- {fit['se']:.3f}"


def markdown_rs(rows, fits, n_seeds=4):
    """The two tables of docs/theory.md#rs-error (Markdown): per size, then N -> infinity."""
    lines = [
        "| sigma | alpha_D | N | D | P | t_c | t_o | t_o net | t_o resolution | t_g | t_g net | t_g resolution |",
        "|---|---|---|---|---|---|---|---|---|---|---|---|",
    ]
    for row in rows:
        lin = row["sigma"] == "linear"
        cells = [
            row["sigma"],
            f"{row['alpha_D']:g}",
            str(row["N"]),
            str(row["D"]),
            str(row["P"]),
            _fmt_rs(row["t_c"]),
            _fmt_rs(row["t_o"]),
            "-" if lin else _fmt_rs(row["t_o"].get("net")),
            f"{row['t_o']['resolution']:.4f}",
            _fmt_rs(row["t_g"]),
            "-" if lin else _fmt_rs(row["t_g"].get("net")),
            f"{row['t_g']['resolution']:.4f}",
        ]
        lines.append("| " + " | ".join(cells) + " |")
    by = {(f["sigma"], f["alpha_D"], f["quantity"], f["of"]): f for f in fits}
    lines += [
        "",
        (
            "| sigma | alpha_D | t_o net, N -> inf | slope | chi2/dof | t_o rel, N -> inf | |net| <= 1.5 % "
            "| t_g net, N -> inf | slope | chi2/dof | t_g rel, N -> inf | |net| <= 5 % |"
        ),
        "|---|---|---|---|---|---|---|---|---|---|---|---|",
    ]
    for sigma, alpha_D in dict.fromkeys((f["sigma"], f["alpha_D"]) for f in fits):
        cells = [sigma, f"{alpha_D:g}"]
        for name in RS_TOLERANCE:
            rel = by.get((sigma, alpha_D, name, "rel"))
            net = by.get((sigma, alpha_D, name, "net")) if sigma != "linear" else rel
            if net is None:
                cells += ["n/a"] * 5
                continue
            cells += [
                (_fmt_fit(net) + (" (rel)" if sigma == "linear" else "")),
                f"{net['slope']:+.2f}",
                f"{net['chi2']:.1f}/{net['dof']}",
                _fmt_fit(rel),
                "yes" if net["within"] else "no",
            ]
        lines.append("| " + " | ".join(cells) + " |")
    return "\n".join(lines)
