"""The table of the measured error of the Gaussian-equivalent (GE) approximation (docs/theory.md#ge-error),
from the per-cell records of :func:`diffmem.bench.ge_error.measure` (the simulations and their protocol).

For a nonlinear sigma only t_c and f have an exact large-N theory; t_o, t_g and the basin radius exist
only in the GE approximation. :func:`summarize` turns the records into relative errors per
(sigma, alpha_D, N), with ``net`` the per-seed difference from the linear control (exact theory, same
feature matrix); :func:`markdown` writes them as the committed table. Nothing here simulates.
"""

import numpy as np

__all__ = ["OBSERVABLES", "summarize", "markdown"]

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
    return {"rel": float(v.mean()) if n else np.nan,
            "rel_se": float(v.std(ddof=1) / np.sqrt(n)) if n >= 2 else np.nan, "nseed": n}


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
        row = {"sigma": sigma, "alpha_D": alpha_D, "N": N, "D": group[0]["D"], "P": group[0]["P"],
               "theory_kind": group[0]["theory_kind"]}
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
        cells = [row["sigma"], f"{row['alpha_D']:g}", str(row["N"]), kind, _fmt(row.get("t_c_rs"), n_seeds),
                 _fmt(row["t_c"], n_seeds), _fmt(row["t_o"], n_seeds), _fmt(row["t_o"].get("net"), n_seeds),
                 _fmt(row["t_g"], n_seeds), _fmt(row["t_g"].get("net"), n_seeds),
                 _fmt(row["rho_b(t_c/2)"], n_seeds), _fmt(row["rho_b((t_c+t_o)/2)"], n_seeds)]
        if row["sigma"] == "linear":
            cells[4] = cells[7] = cells[9] = "-"
        lines.append("| " + " | ".join(cells) + " |")
    return "\n".join(lines)
