"""Claims of modern NN practice, each tested on real data over seeds with a verdict: a claim
names a shipped study, the settings it compares (arms), what it measures and the rule that
decides (docs/claims.md is generated from their runs)."""

from harness.claims.spec import CLAIMS_DIR, ClaimSpec, load_claims
from harness.claims.verdict import Verdict, decide

__all__ = ["CLAIMS_DIR", "ClaimSpec", "Verdict", "decide", "load_claims"]
