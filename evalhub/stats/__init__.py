"""EvalHub statistics: pure numpy/scipy, no Django and no app imports, usable by every app and by workers.

- bootstrap: `bootstrap_ci`, `paired_bootstrap_test`, `paired_permutation_test`, `by_slice`
- correlation: `rank_correlation` (Kendall tau-b / Spearman with bootstrap intervals)
- agreement: `krippendorff_alpha`, `cohen_kappa`, `pairwise_kappa`, `annotator_consensus_agreement`,
  `gold_accuracy`, `disagreement`
- Bradley-Terry arena ratings: `Votes`, `bt_fit`, `bt_bootstrap`, `win_probability`, `rating_difference`,
  `pair_decided`, `ranks_with_ties`, `battle_matrices`, `win_rate_matrix`, `predicted_win_matrix`,
  `position_bias`, `next_pair_uncertainty`, `identifiable`, `simulate_votes`

Missing values are nan (None accepted in lists). Intervals are returned as `Estimate(value, low, high, n)`.
"""

from evalhub.stats._types import Comparison, Estimate, ValuesLike
from evalhub.stats.agreement import (
    AnnotatorAgreement,
    Disagreement,
    KappaWeights,
    Level,
    annotator_consensus_agreement,
    cohen_kappa,
    disagreement,
    gold_accuracy,
    krippendorff_alpha,
    pairwise_kappa,
)
from evalhub.stats.bootstrap import bootstrap_ci, by_slice, paired_bootstrap_test, paired_permutation_test
from evalhub.stats.bradley_terry import (
    A_WINS,
    B_WINS,
    BOTH_BAD,
    TIE,
    BTBootstrap,
    BTFit,
    PositionBias,
    Votes,
    as_votes,
    battle_matrices,
    bt_bootstrap,
    bt_fit,
    identifiable,
    next_pair_uncertainty,
    pair_decided,
    position_bias,
    predicted_win_matrix,
    ranks_with_ties,
    rating_difference,
    simulate_votes,
    votes_to_arrays,
    win_probability,
    win_rate_matrix,
)
from evalhub.stats.correlation import CorrelationMethod, rank_correlation

__all__ = [
    "A_WINS",
    "BOTH_BAD",
    "B_WINS",
    "TIE",
    "AnnotatorAgreement",
    "BTBootstrap",
    "BTFit",
    "Comparison",
    "CorrelationMethod",
    "Disagreement",
    "Estimate",
    "KappaWeights",
    "Level",
    "PositionBias",
    "ValuesLike",
    "Votes",
    "annotator_consensus_agreement",
    "as_votes",
    "battle_matrices",
    "bootstrap_ci",
    "bt_bootstrap",
    "bt_fit",
    "by_slice",
    "cohen_kappa",
    "disagreement",
    "gold_accuracy",
    "identifiable",
    "krippendorff_alpha",
    "next_pair_uncertainty",
    "pair_decided",
    "paired_bootstrap_test",
    "paired_permutation_test",
    "pairwise_kappa",
    "position_bias",
    "predicted_win_matrix",
    "rank_correlation",
    "ranks_with_ties",
    "rating_difference",
    "simulate_votes",
    "votes_to_arrays",
    "win_probability",
    "win_rate_matrix",
]
