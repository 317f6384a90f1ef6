"""The calibration benchmark: z-scores of the exponents over noise draws."""

from __future__ import annotations

from experiments.bench.fitting import calibration


def test_calibration_reports_z_scores_per_method_and_exponent():
    out = calibration(draws=2, noise=0.02, starts=2, bootstrap=10, seed=1)
    assert set(out) == {"power", "broken", "broken_amp"}
    assert set(out["broken"]["robust"]) == {"alpha1", "alpha2"}
    for form in out.values():
        for per in form.values():
            for stats in per.values():
                assert 0 <= stats["frac_abs_z_over_3"] <= 1 and stats["rms_z"] < 10
