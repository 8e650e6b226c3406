"""Claims: the verdict rule on hand-made results, the effect's sign, measurements, arm specs,
and the generated table."""

from __future__ import annotations

import math

import pytest

from harness.claims import ClaimSpec, decide, load_claims
from harness.claims.execute import ClaimResult, ClaimsState
from harness.claims.spec import evaluate
from harness.claims.table import claims_table
from harness.errors import SpecError

CLAIM = {
    "name": "c", "topic": "t", "statement": "L1 makes zeros", "study": "regularization",
    "arms": {"treatment": {"train.regularization": {"l1": 5e-3}}, "baseline": {"train.regularization": {"l2": 5e-3}}},
    "measure": "weights/zero_frac", "better": "higher",
}


def test_a_claim_that_holds_one_that_does_not_and_one_with_too_few_seeds() -> None:
    holds = decide([0.1, 0.2, 0.05, 0.3, 0.15])
    assert holds.verdict == "holds" and holds.p_holds == pytest.approx(1 / 32) and holds.ci_low > 0
    opposite = decide([-0.1, -0.2, -0.05, -0.3, -0.15, -0.01])
    assert opposite.verdict == "does not hold" and opposite.p_opposite < 0.05 and opposite.ci_high < 0
    few = decide([0.1, 0.2, 0.3])
    assert few.verdict == "inconclusive" and "too few seeds" in few.reason and few.n == 3
    mixed = decide([0.1, -0.2, 0.05, -0.3, 0.15])
    assert mixed.verdict == "inconclusive" and "neither way" in mixed.reason


def test_a_failed_arm_is_its_worst_outcome() -> None:
    claim = ClaimSpec.model_validate({**CLAIM, "better": "lower"})
    assert claim.effect(None, 1.0) == -math.inf and claim.effect(1.0, None) == math.inf
    assert claim.effect(None, None) is None
    assert decide([math.inf] * 5).verdict == "holds"  # the baseline failed every time
    assert decide([None, 0.1, 0.2, 0.3, 0.4, 0.5]).n == 5  # both arms failed: the seed is left out


def test_effects_are_signed_net_of_margin_or_threshold() -> None:
    higher = ClaimSpec.model_validate({**CLAIM, "margin": 0.05})
    assert higher.effect(0.5, 0.2) == pytest.approx(0.25)
    lower = ClaimSpec.model_validate({**CLAIM, "better": "lower"})
    assert lower.effect(0.1, 0.3) == pytest.approx(0.2)
    threshold = ClaimSpec.model_validate({**CLAIM, "arms": {"treatment": {}}, "threshold": 0.01, "better": "lower",
                                          "settings": {"train.regularization": {}}})
    assert threshold.effect(0.004) == pytest.approx(0.006)
    with pytest.raises(ValueError, match="baseline arm or a threshold"):
        ClaimSpec.model_validate({**CLAIM, "threshold": 0.1})


def test_measurements_read_trial_and_test_scores() -> None:
    trial, test = {"val/loss": 0.3, "val/snapshot_ensemble/loss": 0.25}, {"test/loss": 0.5}
    assert evaluate("val/loss - val/snapshot_ensemble/loss", trial, test) == pytest.approx(0.05)
    assert evaluate("test/loss - val/loss", trial, test) == pytest.approx(0.2)
    assert evaluate("val/acc", trial, test) is None  # missing: a failed trial's measure
    assert evaluate("|val/loss - test/loss|", trial, test) == pytest.approx(0.2)
    assert evaluate("test/loss / val/loss", trial, test) == pytest.approx(0.5 / 0.3)
    assert evaluate("test/loss / val/zero", {"val/zero": 0.0}, test) is None
    for bad in ("|val/loss|", "val/loss * 2", "val/loss -"):
        with pytest.raises(ValueError, match="a measure is"):
            ClaimSpec.model_validate({**CLAIM, "measure": bad})


def test_a_failed_treatment_counts_for_a_claim_that_training_fails() -> None:
    diverges = ClaimSpec.model_validate({**CLAIM, "failed": "for"})
    assert diverges.effect(None, 0.3) == math.inf and diverges.effect(0.9, 0.3) == pytest.approx(0.6)
    alone = ClaimSpec.model_validate({**CLAIM, "arms": {"treatment": {}}, "threshold": 1.0, "failed": "for",
                                      "settings": {"train.regularization": {}}})
    assert alone.effect(None) == math.inf
    result = ClaimResult("c", "r", {str(s): {"treatment": None, "baseline": 0.1} for s in range(5)})
    result.verdict = decide(result.effects(diverges)).__dict__
    row = claims_table([diverges], ClaimsState(False, 5, "sqlite://", {"c": result}), "harness claims").splitlines()[-1]
    assert "| holds |" in row and "a failed run counts for it" in row


def test_arms_pin_a_single_trial_and_a_searched_field_left_is_an_error() -> None:
    claim = ClaimSpec.model_validate(CLAIM)
    spec = claim.arm_spec("treatment", seed=3, quick=False)
    assert spec.seed == 3 and spec.search.space == {} and spec.search.num_trials == 1
    assert spec.train.regularization.l1 == 5e-3
    capacity = ClaimSpec.model_validate({**CLAIM, "study": "capacity", "arms": {"treatment": {}, "baseline": {}}})
    with pytest.raises(SpecError, match="still searches model.degree"):
        capacity.arm_spec("treatment", 0)


def test_every_shipped_claim_loads_and_unknown_names_are_refused() -> None:
    claims = load_claims()
    assert len(claims) >= 15 and len({c.topic for c in claims}) >= 5
    assert [c.name for c in load_claims(["capacity"])] == [c.name for c in claims if c.topic == "capacity"]
    with pytest.raises(SpecError, match="no such claim or topic"):
        load_claims(["no_such_claim"])


def test_the_table_has_one_row_per_claim_with_its_verdict() -> None:
    claim = ClaimSpec.model_validate(CLAIM)
    result = ClaimResult("c", "r", {str(s): {"treatment": 0.3, "baseline": 0.1} for s in range(5)})
    result.verdict = decide(result.effects(claim)).__dict__
    text = claims_table([claim], ClaimsState(False, 5, "sqlite://", {"c": result}), "harness claims c")
    row = next(line for line in text.splitlines() if "`c`" in line)
    assert "| holds |" in row and "5 of 5" in row and "0.2" in row and "harness claims c" in text


def test_a_comparison_claim_runs_the_comparisons_execution_of_each_strategy() -> None:
    claim = ClaimSpec.model_validate({
        "name": "s", "topic": "search", "statement": "TPE beats random", "comparison": "compare_strategies",
        "arms": {"treatment": {"strategy": "tpe"}, "baseline": {"strategy": "random"}},
        "measure": "objective/regret", "better": "lower", "quick": {"search.budget_epochs": 15},
    })
    spec = claim.arm_spec("treatment", seed=4, quick=True)
    assert (spec.search.strategy, spec.seed, spec.search.budget_epochs) == ("tpe", 4, 15)
    assert claim.arm_spec("baseline", seed=4).search.budget_epochs == 90  # the comparison's own budget
    with pytest.raises(ValueError, match="strategy"):
        ClaimSpec.model_validate({**CLAIM, "study": None, "comparison": "compare_strategies"})
    # An arm may pin values of its own beside the strategy: here a third of the baseline's budget.
    fraction = ClaimSpec.model_validate({
        **claim.model_dump(), "arms": {"treatment": {"strategy": "asha", "search.budget_epochs": 30},
                                       "baseline": {"strategy": "random"}},
    })
    assert fraction.arm_spec("treatment", seed=0).search.budget_epochs == 30
    assert fraction.arm_spec("baseline", seed=0).search.budget_epochs == 90
    with pytest.raises(ValueError, match="study or a comparison"):
        ClaimSpec.model_validate({**CLAIM, "comparison": "compare_strategies"})


def test_a_contrast_claim_measures_both_arms_in_both_conditions() -> None:
    claim = ClaimSpec.model_validate({
        "name": "grows", "topic": "search", "statement": "BO's advantage grows with cost", "comparison": "compare_strategies",
        "arms": {"treatment": {"strategy": "gp"}, "baseline": {"strategy": "random"}},
        "settings": {"objective.cost_s": 0.5}, "contrast": {"objective.cost_s": 0.0},
        "measure": "objective/regret", "better": "lower",
    })
    assert claim.measured_arms == ["treatment", "baseline", "treatment/contrast", "baseline/contrast"]
    costs = {arm: claim.arm_spec(arm, 0).objective.cost_s for arm in claim.measured_arms}
    assert costs == {"treatment": 0.5, "baseline": 0.5, "treatment/contrast": 0.0, "baseline/contrast": 0.0}
    assert claim.arm_spec("treatment/contrast", 0).search.strategy == "gp"
    # Regret 0.1 against 0.5 when trials are costly, 0.2 against 0.3 when they are instant:
    # the advantage is 0.4 against 0.1, so it grew by 0.3.
    measured = {"treatment": 0.1, "baseline": 0.5, "treatment/contrast": 0.2, "baseline/contrast": 0.3}
    assert claim.effect_of(measured) == pytest.approx(0.3)
    assert claim.effect_of({**measured, "treatment": None}) == -math.inf  # BO failed where it should win
    assert claim.effect_of({**measured, "treatment": None, "baseline/contrast": None}) is None
    result = ClaimResult("grows", "r", {str(s): dict(measured) for s in range(5)})
    result.verdict = decide(result.effects(claim)).__dict__
    row = claims_table([claim], ClaimsState(False, 5, "sqlite://", {"grows": result}), "harness claims").splitlines()[-1]
    assert "| holds |" in row and "the same difference at `objective.cost_s=0.0`" in row
    with pytest.raises(ValueError, match="needs a baseline arm"):
        ClaimSpec.model_validate({**CLAIM, "arms": {"treatment": {}}, "threshold": 0.1, "contrast": {"seed": 1}})


def test_within_claims_hold_either_side_of_the_baseline() -> None:
    within = ClaimSpec.model_validate({**CLAIM, "better": "within", "margin": 0.05})
    assert within.effect(0.52, 0.5) == pytest.approx(0.03) and within.effect(0.48, 0.5) == pytest.approx(0.03)
    assert within.effect(0.6, 0.5) < 0 and within.effect(0.5, None) == -math.inf
    factor = ClaimSpec.model_validate({**CLAIM, "better": "within_factor", "margin": 10})
    assert factor.effect(0.3, 0.1) == pytest.approx(1 - math.log10(3)) and factor.effect(0.01, 0.3) < 0
    with pytest.raises(ValueError, match="needs a margin above 1"):
        ClaimSpec.model_validate({**CLAIM, "better": "within_factor", "margin": 0.5})
