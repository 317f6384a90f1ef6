"""Model selection by AICc and the rule for claiming a break.

Fits are compared within one series and method (same model, axis, fixed value, method).
- delta_aicc: AICc minus the lowest AICc of the comparison group; best: the form with delta 0.
  Fits without AICc or degenerate ones (parameters not determined) take no part: delta_aicc None.
- A break is claimed (break_in_range = True) only when both hold:
  1. the fitted break location (xc; D_c for the 2-D forms) lies inside [min x, max x] of the data;
  2. for a 1-D broken form, its AICc is lower than that of the best unbroken form (power,
     power_floor) by at least BREAK_MARGIN (2, the usual 'substantial support' threshold).
  A degenerate fit claims nothing. Otherwise break_in_range = False and break_reason says which
  test failed. Forms without a break have break_in_range = None.

Robust fits carry the AICc of every bootstrap replicate (shared by the forms of a series):
- selection_share: the share of replicates in which the form has the lowest AICc among the forms
  that take part (the shares of a series sum to 1; 0 for forms that take no part);
- law: True for the one form reported as *the* law: its share is at least SHARE_MAJORITY (60 %) and,
  for a broken form, its fitted break lies inside the data range. Otherwise no form is the law and
  `selection` (the same sentence on every fit of the series) names the forms the data cannot tell
  apart (share >= CANDIDATE_SHARE each).
"""

from __future__ import annotations

from collections import defaultdict

from .forms import BROKEN_FORMS, FORMS_2D, UNBROKEN_FORMS

BREAK_MARGIN = 2.0
SHARE_MAJORITY = 0.6
CANDIDATE_SHARE = 0.1


def group_key(fit: dict) -> tuple:
    return fit["model"], fit["axis"], tuple(sorted(fit["fixed"].items())), fit["method"]


def annotate(fits: list[dict]) -> list[dict]:
    """Adds delta_aicc, best, break_in_range and break_reason to every fit (in place); returns fits."""
    groups: dict[tuple, list[dict]] = defaultdict(list)
    for f in fits:
        groups[group_key(f)].append(f)
    for members in groups.values():
        scored = [f for f in members if f["aicc"] is not None and f["params"] and "degenerate" not in f["status"]]
        low = min((f["aicc"] for f in scored), default=None)
        unbroken = [f["aicc"] for f in scored if f["form"] in UNBROKEN_FORMS]
        scored_ids = {id(f) for f in scored}
        for f in members:
            f["delta_aicc"] = f["aicc"] - low if id(f) in scored_ids else None
            f["best"] = f["delta_aicc"] == 0.0
            f["break_in_range"], f["break_reason"] = _break_claim(f, min(unbroken, default=None))
        if members[0]["method"] == "robust":
            _select_by_share(members, scored)
    return fits


def break_outside(fit: dict) -> bool:
    """A broken form (1-D or 2-D) whose fitted break lies outside the observed x range."""
    if fit["form"] not in BROKEN_FORMS + FORMS_2D or not fit["params"]:
        return False
    loc = fit["params"]["D_c" if fit["axis"] == "ND" else "xc"]
    lo, hi = fit["x_range"]
    return loc is None or not lo <= loc <= hi


def shares(scored: list[dict]) -> dict[int, float]:
    """id(fit) -> share of the replicates in which it has the lowest AICc (replicates where no form
    has an AICc do not count)."""
    wins = {id(f): 0 for f in scored}
    n_rep = max((len(f.get("_rep_aicc") or []) for f in scored), default=0)
    counted = 0
    for r in range(n_rep):
        vals = [(f["_rep_aicc"][r], id(f)) for f in scored if r < len(f.get("_rep_aicc") or [])]
        vals = [v for v in vals if v[0] is not None]
        if vals:
            wins[min(vals)[1]] += 1
            counted += 1
    return {k: (v / counted if counted else 0.0) for k, v in wins.items()}


def verdict(ranked: list[tuple[str, float, bool]]) -> tuple[str | None, str]:
    """(law or None, sentence) from (form, share, break outside the data) sorted by share, highest first."""
    if not ranked:
        return None, "no form has bootstrap replicates: no law"
    top, share, outside = ranked[0]
    if share >= SHARE_MAJORITY and not outside:
        return top, f"law: {top} (best in {share:.0%} of bootstrap replicates, >= {SHARE_MAJORITY:.0%})"
    cands = [f"{n} ({s:.0%})" for n, s, _ in ranked if s >= CANDIDATE_SHARE]
    why = f"no form is best in >= {SHARE_MAJORITY:.0%} of bootstrap replicates"
    if share >= SHARE_MAJORITY:
        why = f"{top} is best in {share:.0%} of replicates but its break lies outside the data"
    return None, f"no law: {why}; the data cannot tell apart {', '.join(cands) or top}"


def _select_by_share(members: list[dict], scored: list[dict]) -> None:
    if not any(f.get("_rep_aicc") for f in scored):
        for f in members:
            f["selection_share"], f["law"], f["selection"] = None, False, "no bootstrap: no selection shares"
        return
    share = shares(scored)
    for f in members:
        f["selection_share"] = share.get(id(f), 0.0)
    ranked = sorted(((f["form"], f["selection_share"], break_outside(f)) for f in scored), key=lambda t: -t[1])
    law, sentence = verdict(ranked)
    for f in members:
        f["law"], f["selection"] = f["form"] == law, sentence


def _break_claim(fit: dict, unbroken_aicc: float | None) -> tuple[bool | None, str | None]:
    if fit["form"] not in BROKEN_FORMS + FORMS_2D:
        return None, None
    if fit["params"] is None:
        return False, "no fit"
    if "degenerate" in fit["status"] or "failed" in fit["status"]:
        return False, "degenerate fit"
    loc = fit["params"]["D_c" if fit["axis"] == "ND" else "xc"]
    lo, hi = fit["x_range"]
    if loc is None or not lo <= loc <= hi:
        return False, f"break at {loc:.4g} outside the data range [{lo:.4g}, {hi:.4g}]" if loc else "no break"
    if fit["form"] in FORMS_2D:
        return True, None
    if fit["aicc"] is None or unbroken_aicc is None:
        return False, "no AICc comparison with an unbroken power law"
    gain = unbroken_aicc - fit["aicc"]
    if gain < BREAK_MARGIN:
        return False, f"AICc gain over the best unbroken law {gain:.2f} < {BREAK_MARGIN}"
    return True, None


def aicc_table(fits: list[dict]) -> list[dict]:
    """One row per fit, grouped by series and method, each group sorted by AICc (undefined last)."""
    rows = sorted(
        fits,
        key=lambda f: (*map(str, group_key(f)), f["aicc"] is None, f["aicc"] if f["aicc"] is not None else 0.0),
    )
    return rows


def best_fits(fits: list[dict]) -> list[dict]:
    """The best form of every series and method."""
    return [f for f in fits if f.get("best")]
