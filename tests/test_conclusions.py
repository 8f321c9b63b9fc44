"""Conclusion sentences follow the recorded numbers (never hand-written)."""

import pytest

from routerwise.errors import ValidationError
from routerwise.paper.conclusions import compare, text_for

SV = {"panels": 9, "variation_pct_max": 13.60224, "variation_pct_median": 5.940908,
      "score_min": 0.597357, "score_max": 0.730938, "equal-split_gap_pct_max": 2.759005,
      "size-proportional_gap_pct_max": 4.375108, "isolated_gap_pct_max": None}


@pytest.mark.parametrize("ours, word", [(10, "far smaller than"), (60, "smaller than"),
                                        (87, "about the same as"), (95, "about the same as"),
                                        (120, "larger than"), (200, "far larger than")])
def test_compare_words_follow_the_ratio(ours, word):
    assert compare(ours, 87) == word


def test_score_variation_states_the_recorded_numbers():
    t = text_for("03_score_variation", SV)
    assert "Across 9 panels" in t and "0.597 to 0.731" in t
    assert "13.6% (median 5.9%), far smaller than the paper's 87%" in t
    assert "2.8% (equal-split), 4.4% (size-proportional)" in t and "isolated" not in t
    assert "not the lever" in t          # the explanation comes with a smaller variation only


def test_score_variation_text_changes_with_the_numbers():
    t = text_for("score_variation", {**SV, "panels": 1, "variation_pct_max": 90.0,
                                     "score_min": 0.3})
    assert "Across 1 panel," in t and "90.0%" in t and "about the same as the paper's" in t
    assert "not the lever" not in t


def test_missing_numbers_are_named():
    with pytest.raises(ValidationError, match=r"\['variation_pct_median'\]"):
        text_for("score_variation", {k: v for k, v in SV.items() if k != "variation_pct_median"})
    with pytest.raises(ValidationError, match="no conclusions"):
        text_for("99_unknown", {})


def test_setup_space_says_whether_the_papers_counts_reproduce():
    n = {"utilization_3m_G4": 669, "paper_retained_3m_G4": 274, "ours_retained_3m_G4": 55}
    t = text_for("setup_space", n)
    assert "reproduces the paper's counts: 3 models at G = 4: 669 (paper 669)" in t
    assert "55 of 274 (20%)" in t
    assert "does not reproduce" in text_for("setup_space", {**n, "utilization_3m_G4": 670})


def test_exact_vs_dual_reports_optimality_as_recorded():
    n = {"dual_gap_pct_max": 0.82, "dual_gap_pct_median": 0.03, "default_gap_pct_max": 0.0,
         "milp_time_s_max": 4.04, "milp_all_optimal": True}
    t = text_for("exact_vs_dual", n)
    assert "proved every panel optimal (slowest 4.0 s" in t
    assert "0.03% below the optimum at the median and 0.82% at worst" in t
    assert "within 0.001% of" in t
    t = text_for("exact_vs_dual", {**n, "milp_all_optimal": False, "default_gap_pct_max": 0.5})
    assert "did NOT prove" in t and "0.500% from" in t


def test_beyond_the_paper_says_whether_the_replay_meets_the_slo():
    n = {"predicted_score_opt": 0.7068, "realized_score_opt": 0.6830, "replay_predicted_ms": 453.1,
         "replay_simulated_mean_ms": 892.0, "slo_ms": 600.0, "mix_shifts": 20,
         "mix_shift_slo_violations": 19, "mix_shifts_beyond_profiled_load": 15,
         "max_rate_factor_meeting_slo": 1.0, "consistent_score": 0.694, "consistent_verified": True}
    t = text_for("beyond_the_paper", n)
    assert "0.707" in t and "0.683 (-3.4%)" in t
    assert "892 ms against the 453 ms predicted (simulated, +97%)" in t
    assert "misses the 600 ms SLO" in t
    assert "19 of 20 random task-mix shifts" in t and "15 of them" in t
    assert "meets the 600 ms SLO" in text_for("beyond_the_paper",
                                             {**n, "replay_simulated_mean_ms": 80.0})


def test_latency_profiles_and_validation_and_bring_your_own():
    t = text_for("latency_profiles", {"curves": 110, "capacity_rps[m8,tp1]": 16.8,
                                      "capacity_rps[m8,tp2]": 30.2})
    assert "110 latency curves" in t and "tp 1: 16.8 req/s, tp 2: 30.2 req/s" in t
    assert "more GPUs carry more load" in t
    t = text_for("latency_profiles", {"curves": 2, "capacity_rps[m8,tp1]": 16.8,
                                      "capacity_rps[m8,tp2]": 10.0})
    assert "do NOT always" in t
    t = text_for("latency_validation", {"median_abs_err_pct_ttft_mean": 4.6,
                                        "median_abs_err_pct_tpot_mean": 7.8, "runs": 5,
                                        "margin_ttft": 1.12, "margin_tpot": 1.05})
    assert "On 5 measured runs" in t and "4.6% (mean TTFT), 7.8% (mean TPOT)" in t
    assert "1.12" in t
    t = text_for("bring_your_own", {"plan_score": 0.70, "plan_latency_ms": 590.0,
                                    "plan_replayed_ms": 650.0, "plan_replay_slo_met": False,
                                    "slo_ms": 600.0, "consistent_score": 0.686,
                                    "consistent_replayed_ms": 500.0, "consistent_verified": True})
    assert "misses the 600 ms SLO" in t and "0.686 (-2.0%)" in t and "verified" in t


CF = {"best_score": 0.7332, "fewest_gpus_best_score": 6, "unlimited_capacity_score": 0.7396,
      "gain_vs_equal-split_max_pts": 1.21, "gain_vs_size-proportional_max_pts": 0.77,
      "gain_vs_isolated_max_pts": 1.58, "quality_floor": 0.73, "gpus_to_floor_optimum": 6,
      "gpus_to_floor_equal-split": 7, "gpus_to_floor_size-proportional": 6,
      "gpus_to_floor_isolated": None}


def test_cost_frontier_states_the_recorded_numbers():
    t = text_for("11_cost_frontier", CF)
    assert "peaks at 0.7332 from 6 GPUs" in t and "costs 0.64 points" in t
    assert "equal-split 1.21, size-proportional 0.77, isolated 1.58" in t
    assert "takes 6 GPUs" in t and "equal-split 7" in t and "isolated never" in t
    t = text_for("cost_frontier", {**CF, "gpus_to_floor_optimum": None})
    assert "No size in range reaches the quality floor 0.73" in t


def test_scale_states_the_recorded_numbers():
    n = {"largest_models": 16, "largest_gpus": 32, "largest_gap_pct": 0.057, "largest_time_s": 116.7,
         "largest_method": "decomposition", "all_optimal": False, "gap_pct_max": 0.129,
         "methods": "exact decomposition"}
    t = text_for("10_scale", n)
    assert "16 models on 32 GPUs" in t and "116.7 s" in t and "0.057%" in t
    assert "largest proven gap is 0.129%" in t and "Every size" not in t
    assert "Every size ended proven optimal" in text_for("scale", {**n, "all_optimal": True})
