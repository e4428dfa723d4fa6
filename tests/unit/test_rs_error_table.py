"""The RS comparison table (diffmem.analysis.ge_error.summarize_rs, extrapolate_rs, markdown_rs) on
synthetic records: rel, net, the grid resolution in quadrature, and the N -> infinity fit. Fast."""

import numpy as np
import pytest

from diffmem.analysis import ge_error
from diffmem.analysis.finite_size import size_variable

NS = (48, 64, 96, 112)


def record(sigma, N, seed, offset, resolution=0.003):
    """A record whose measured times are theory * (1 + offset(N) + seed noise)."""
    theory = {"t_c": 0.8, "t_o": 1.1, "t_g": 0.3}
    noise = 0.002 * (seed - 1.5)
    measured = {k: v * (1 + offset(k, N) + noise) for k, v in theory.items()}
    return {
        "sigma": sigma,
        "N": N,
        "P": int(np.exp(0.1 * N)),
        "D": N // 4,
        "alpha_D": 0.25,
        "seed": seed,
        "measured": measured,
        "resolution": {k: resolution * v for k, v in theory.items()},
        "theory": theory,
        "theory_kind": "marchenko-pastur" if sigma == "linear" else "replica-symmetric",
    }


def records():
    # linear: offset 2 x(N) (x = log(N)/N), -> 0; tanh: the same plus a constant +0.01 for t_o, -0.03 for t_g
    x = {N: float(size_variable(N)) for N in NS}
    extra = {"t_c": 0.0, "t_o": 0.01, "t_g": -0.03}
    out = []
    for N in NS:
        for seed in range(4):
            out.append(record("linear", N, seed, lambda k, n: 2 * x[n]))
            out.append(record("tanh", N, seed, lambda k, n: 2 * x[n] + extra[k]))
    return out


def test_rel_net_and_resolution():
    rows = ge_error.summarize_rs(records())
    row = next(r for r in rows if r["sigma"] == "tanh" and r["N"] == 64)
    x = float(size_variable(64))
    assert row["t_o"]["rel"] == pytest.approx(2 * x + 0.01, abs=1e-12)
    assert row["t_o"]["net"]["rel"] == pytest.approx(0.01, abs=1e-12)
    # seed scatter 0.002 * sd(-1.5..1.5) * (1 + offset) / sqrt(4); resolution 0.003 of the theory
    assert row["t_o"]["resolution"] == pytest.approx(0.003)
    assert row["t_o"]["rel_se"] == pytest.approx(np.hypot(row["t_o"]["rel_se_seeds"], 0.003))
    # net: the noise cancels against the control's (same seed), the two resolutions add in quadrature
    assert row["t_o"]["net"]["resolution"] == pytest.approx(0.003 * np.sqrt(2))
    assert row["t_o"]["net"]["rel_se"] >= row["t_o"]["net"]["resolution"]
    assert [r["sigma"] for r in rows][: len(NS)] == ["linear"] * len(NS)  # the control first


def test_extrapolation_recovers_the_constant_and_the_verdict():
    rows = ge_error.summarize_rs(records())
    fits = {(f["sigma"], f["quantity"], f["of"]): f for f in ge_error.extrapolate_rs(rows)}
    assert ("tanh", "t_c", "net") not in fits  # t_c is not extrapolated
    assert fits["tanh", "t_o", "net"]["value"] == pytest.approx(0.01, abs=1e-9)
    assert fits["tanh", "t_g", "net"]["value"] == pytest.approx(-0.03, abs=1e-9)
    assert fits["tanh", "t_o", "rel"]["value"] == pytest.approx(0.01, abs=1e-6)
    assert fits["tanh", "t_o", "rel"]["slope"] == pytest.approx(2.0, rel=1e-3)
    assert fits["linear", "t_o", "rel"]["value"] == pytest.approx(0.0, abs=1e-6)
    assert fits["tanh", "t_o", "net"]["within"] and fits["tanh", "t_g", "net"]["within"]
    assert fits["tanh", "t_o", "net"]["dof"] == 2 and fits["tanh", "t_o", "net"]["Ns"] == list(NS)
    text = ge_error.markdown_rs(rows, ge_error.extrapolate_rs(rows))
    assert "| tanh | 0.25 | +0.010 +- " in text and "(rel)" in text
    assert text.count("\n|") == 2 * len(NS) + 1 + 2 + 2  # rows, header rule, second header and rule, 2 fits
