"""Statistics over seeds, checked against hand-computed values on small fixed inputs."""

from __future__ import annotations

import math

import numpy as np
import pandas as pd
import pytest
from scipy import stats as sps
from scipy.special import expit, logit
from statsmodels.stats.multitest import multipletests
from statsmodels.stats.power import TTestIndPower, TTestPower

from dropoutlab.errors import DropoutlabError
from dropoutlab.report.stats import (
    COMPARE_COLUMNS,
    SEEDS_SEARCH_LIMIT,
    NotComputable,
    accuracy_interval,
    adjust_family,
    compare,
    compare_values,
    default_baseline,
    holm,
    interaction_test,
    match_baseline,
    mean_ci,
    parse_baseline,
    power,
    resolve_baseline,
    seeds_for_power,
    seeds_needed,
    simultaneous_interval,
    student_t_interval,
    summarize,
)

T_975_2 = 4.302653  # Student t quantile 0.975 with 2 degrees of freedom, from tables


def make_runs(values: dict, seeds=None, extra: dict | None = None) -> pd.DataFrame:
    """Runs table from ``{(conv, dense): [test_acc per seed]}``; label like the store's."""
    rows = []
    for (conv, dense), accs in values.items():
        label = f"dropout.conv={conv},dropout.dense={dense}"
        for i, acc in enumerate(accs):
            seed = seeds[(conv, dense)][i] if isinstance(seeds, dict) else i
            row = {
                "config": label,
                "seed": seed,
                "status": "completed",
                "test_acc": acc,
                "test_loss": 1.0 - acc,
                "final_train_acc": acc + 0.05,
                "final_train_eval_acc": acc + 0.08,
                "final_val_acc": acc,
                "final_val_loss": 1.0 - acc,
                "final_train_loss": 0.9 - acc,
                "final_train_eval_loss": 0.85 - acc,
                "best_epoch": 4 + i,
                "dropout.conv": conv,
                "dropout.dense": dense,
            }
            row.update((extra or {}).get((conv, dense), {}))
            rows.append(row)
    runs = pd.DataFrame(rows)
    runs.attrs["params"] = ["dropout.conv", "dropout.dense"]
    return runs


def noisy_study(rng, effects: dict, n_seeds: int, seed_sd=0.01, noise_sd=0.005) -> pd.DataFrame:
    """Every configuration = 0.70 + effect + a shared per-seed offset + run noise."""
    seed_offset = rng.normal(0, seed_sd, n_seeds)
    values = {
        key: list(0.70 + effect + seed_offset + rng.normal(0, noise_sd, n_seeds))
        for key, effect in effects.items()
    }
    return make_runs(values)


# ---------------------------------------------------------------------------- mean_ci


def test_mean_ci_matches_hand_computed_t_interval():
    mean, low, high = mean_ci([0.80, 0.82, 0.84])
    half = T_975_2 * 0.02 / math.sqrt(3)  # sd 0.02, 3 values
    assert mean == pytest.approx(0.82)
    assert low == pytest.approx(0.82 - half, abs=1e-6)
    assert high == pytest.approx(0.82 + half, abs=1e-6)
    assert half == pytest.approx(0.049683, abs=1e-6)


def test_quantiles_from_scipy_special_equal_scipy_stats_exactly():
    rng = np.random.default_rng(0)
    for _ in range(200):
        x = rng.normal(0.8, 0.05, size=int(rng.integers(2, 30)))
        confidence = float(rng.choice([0.5, 0.9, 0.95, 0.99]))
        expected = sps.t.interval(confidence, x.size - 1, loc=x.mean(), scale=sps.sem(x))
        assert student_t_interval(x, confidence) == tuple(map(float, expected))
        df, q = x.size - 1.5, 1 - (1 - confidence) / 10
        diff, se = 0.01, 0.002
        assert simultaneous_interval(diff, se, df, confidence, m=5) == (
            diff - float(sps.t.ppf(q, df)) * se,
            diff + float(sps.t.ppf(q, df)) * se,
        )


def test_mean_ci_single_value_has_no_interval():
    mean, low, high = mean_ci([0.8, np.nan])
    assert mean == 0.8 and math.isnan(low) and math.isnan(high)


# ---------------------------------------------------------------------------- summarize


def test_summarize_gives_a_hand_computed_logit_interval_per_configuration():
    runs = make_runs({(0.0, 0.0): [0.80, 0.82, 0.84], (0.2, 0.0): [0.70, 0.70, 0.73]})
    table = summarize(runs)
    row = table.set_index("config").loc["dropout.conv=0.0,dropout.dense=0.0"]
    z = np.log(np.array([0.80, 0.82, 0.84]) / (1 - np.array([0.80, 0.82, 0.84])))
    half = T_975_2 * z.std(ddof=1) / math.sqrt(3)
    assert row["n"] == 3
    assert row["test_acc_mean"] == pytest.approx(0.82)
    assert row["test_acc_std"] == pytest.approx(0.02)
    assert row["test_acc_interval"] == "logit t"
    assert row["test_acc_ci_low"] == pytest.approx(1 / (1 + math.exp(-(z.mean() - half))), abs=1e-6)
    assert row["test_acc_ci_high"] == pytest.approx(1 / (1 + math.exp(-(z.mean() + half))), abs=1e-6)
    assert (row["test_acc_min"], row["test_acc_max"]) == (0.80, 0.84)
    assert row["best_epoch_mean"] == pytest.approx(5.0)
    assert list(table.columns[:3]) == ["dropout.conv", "dropout.dense", "config"]
    for metric in ("test_acc", "val_acc", "train_acc", "train_eval_acc", "gap_acc", "gap_loss"):
        for stat in ("mean", "std", "ci_low", "ci_high"):
            assert f"{metric}_{stat}" in table.columns


def test_summarize_gap_uses_eval_mode_train_accuracy_where_measured_else_running():
    runs = make_runs({(0.0, 0.0): [0.80, 0.80], (0.5, 0.0): [0.60, 0.60]})
    # Eval-mode train accuracy not measured for the second configuration.
    runs.loc[runs["dropout.conv"] == 0.5, ["final_train_eval_acc", "final_train_eval_loss"]] = np.nan
    table = summarize(runs).set_index("dropout.conv")
    assert table.loc[0.0, "gap_acc_mean"] == pytest.approx(0.08)  # eval-mode: +8 points
    assert table.loc[0.5, "gap_acc_mean"] == pytest.approx(0.05)  # running: +5 points
    assert table.loc[0.0, "gap_loss_mean"] == pytest.approx((1 - 0.8) - (0.85 - 0.8))
    assert table.loc[0.5, "gap_loss_mean"] == pytest.approx((1 - 0.6) - (0.9 - 0.6))
    assert math.isnan(table.loc[0.5, "train_eval_acc_mean"])


def test_summarize_counts_diverged_and_failed_and_leaves_them_out():
    runs = make_runs({(0.0, 0.0): [0.80, 0.82, 0.84, 0.10, 0.10]})
    runs.loc[3, "status"] = "diverged"
    runs.loc[4, "status"] = "failed"
    row = summarize(runs).iloc[0]
    assert (row["n"], row["n_diverged"], row["n_failed"]) == (3, 1, 1)
    assert row["test_acc_mean"] == pytest.approx(0.82)


def test_summarize_takes_params_explicitly_when_attrs_are_lost():
    runs = make_runs({(0.0, 0.0): [0.8, 0.81], (0.1, 0.0): [0.82, 0.83]})
    plain = pd.DataFrame(runs.to_dict("list"))
    assert plain.attrs == {}
    table = summarize(plain, params=["dropout.conv"])
    assert list(table["dropout.conv"]) == [0.0, 0.1]
    assert "dropout.dense" not in table.columns


def test_summarize_unknown_param_is_a_user_error():
    runs = make_runs({(0.0, 0.0): [0.8]})
    with pytest.raises(DropoutlabError, match="optimizer.lr"):
        summarize(runs, params=["optimizer.lr"])


# ---------------------------------------------------------------------------- baseline


def test_default_baseline_is_the_configuration_without_any_dropout():
    runs = make_runs({(0.0, 0.0): [0.8], (0.1, 0.0): [0.8], (0.0, 0.2): [0.8]})
    assert default_baseline(runs) == "dropout.conv=0.0,dropout.dense=0.0"
    assert default_baseline(runs[runs["dropout.conv"] > 0]) is None


def test_default_baseline_in_a_grid_with_weight_decay_is_no_regularization_at_all():
    rows = [
        {"config": f"c{rate}-{wd}", "seed": 0, "status": "completed", "test_acc": 0.7}
        | {"dropout.conv": rate, "optimizer.weight_decay": wd, "optimizer.lr": 0.01}
        for rate in (0.0, 0.3)
        for wd in (0.0, 1e-4)
    ]
    grid = pd.DataFrame(rows)
    grid.attrs["params"] = ["dropout.conv", "optimizer.weight_decay"]
    assert default_baseline(grid) == "c0.0-0.0"
    lr_sweep = grid[grid["optimizer.weight_decay"] == 0].copy()
    lr_sweep["optimizer.lr"] = [0.01, 0.1]
    lr_sweep["dropout.conv"] = 0.0
    lr_sweep.attrs["params"] = ["optimizer.lr"]
    assert default_baseline(lr_sweep) is None  # two no-dropout configs, neither stands out


def test_parse_baseline_reads_values_and_names_the_bad_part():
    assert parse_baseline("dropout.conv=0, optimizer.lr=0.01,model.preset=cnn") == {
        "dropout.conv": 0,
        "optimizer.lr": 0.01,
        "model.preset": "cnn",
    }
    with pytest.raises(DropoutlabError, match="'optimizer.lr'"):
        parse_baseline("dropout.conv=0,optimizer.lr")
    with pytest.raises(DropoutlabError, match="'=0.1'"):
        parse_baseline("=0.1")
    with pytest.raises(DropoutlabError, match="twice"):
        parse_baseline("dropout.conv=0,dropout.conv=0.1")


def test_match_baseline_lists_available_configs_when_none_or_several_match():
    runs = make_runs({(0.0, 0.0): [0.8], (0.1, 0.0): [0.8], (0.1, 0.2): [0.8]})
    assert match_baseline(runs, {"dropout.conv": 0}) == "dropout.conv=0.0,dropout.dense=0.0"
    with pytest.raises(DropoutlabError, match="matches no configuration.*dropout.conv=0.1"):
        match_baseline(runs, {"dropout.conv": 0.3})
    with pytest.raises(DropoutlabError, match="several"):
        match_baseline(runs, {"dropout.conv": 0.1})
    with pytest.raises(DropoutlabError, match="optimizer.lr"):
        match_baseline(runs, {"optimizer.lr": 0.1})


def test_resolve_baseline_accepts_label_selection_string_or_dict():
    runs = make_runs({(0.0, 0.0): [0.8], (0.1, 0.0): [0.8]})
    label = "dropout.conv=0.1,dropout.dense=0.0"
    assert resolve_baseline(runs, label) == label
    assert resolve_baseline(runs, "dropout.conv=0.1") == label
    assert resolve_baseline(runs, {"dropout.conv": 0.1}) == label


# ---------------------------------------------------------------------------- holm


def test_holm_matches_hand_computed_adjustment():
    np.testing.assert_allclose(holm([0.01, 0.04, 0.03]), [0.03, 0.06, 0.06])
    np.testing.assert_allclose(holm([0.6, 0.7]), [1.0, 1.0])
    adjusted = holm([0.01, np.nan, 0.04])  # NaN is not counted as a comparison
    assert adjusted[0] == pytest.approx(0.02) and adjusted[2] == pytest.approx(0.04)
    assert math.isnan(adjusted[1])


# ---------------------------------------------------------------------------- compare


def test_compare_pairs_by_seed_when_seed_sets_match_with_hand_computed_interval():
    runs = make_runs({(0.0, 0.0): [0.70, 0.75, 0.80], (0.2, 0.0): [0.71, 0.77, 0.83]})
    row = compare(runs).iloc[0]
    # Per-seed differences 0.01, 0.02, 0.03: mean 0.02, sd 0.01.
    half = T_975_2 * 0.01 / math.sqrt(3)
    assert row["test"] == "paired t"
    assert row["diff"] == pytest.approx(0.02)
    assert row["ci_low"] == pytest.approx(0.02 - half, abs=1e-6)
    assert row["ci_high"] == pytest.approx(0.02 + half, abs=1e-6)
    assert row["effect_size_kind"] == "d_z"
    assert row["effect_size"] == pytest.approx(2.0)
    t = 0.02 / (0.01 / math.sqrt(3))
    assert row["p_value"] == pytest.approx(2 * sps.t.sf(t, 2))
    assert row["p_adjusted"] == pytest.approx(row["p_value"])  # one comparison
    assert list(compare(runs).columns) == list(COMPARE_COLUMNS)


def test_compare_uses_welch_when_seed_sets_differ():
    values = {(0.0, 0.0): [0.60, 0.61, 0.62, 0.63], (0.2, 0.0): [0.70, 0.72, 0.74]}
    seeds = {(0.0, 0.0): [0, 1, 2, 3], (0.2, 0.0): [4, 5, 6]}
    row = compare(make_runs(values, seeds)).iloc[0]
    # Welch by hand: variances 1/6e-3 and 4e-4, df from Welch-Satterthwaite.
    se2a, se2b = 4e-4 / 3, (0.0005 / 3) / 4
    df = (se2a + se2b) ** 2 / (se2a**2 / 2 + se2b**2 / 3)
    half = sps.t.ppf(0.975, df) * math.sqrt(se2a + se2b)
    assert row["test"] == "Welch t"
    assert row["diff"] == pytest.approx(0.72 - 0.615)
    assert row["ci_low"] == pytest.approx(0.105 - half)
    assert row["ci_high"] == pytest.approx(0.105 + half)
    assert (row["n"], row["n_baseline"]) == (3, 4)
    assert row["effect_size_kind"] == "Hedges g"
    reference = sps.ttest_ind([0.70, 0.72, 0.74], [0.60, 0.61, 0.62, 0.63], equal_var=False)
    assert row["p_value"] == pytest.approx(reference.pvalue)


def test_pairing_by_seed_removes_shared_seed_noise():
    # A +1 point effect under large seed-to-seed swings that both configs share.
    offsets = np.array([-0.04, 0.03, -0.01, 0.05, -0.02])
    base = list(0.70 + offsets)
    better = list(0.71 + offsets + np.array([0.001, -0.001, 0.0005, -0.0005, 0.0]))
    paired = compare_values(pd.Series(better), pd.Series(base))
    unpaired = compare_values(pd.Series(better, index=range(5, 10)), pd.Series(base))
    assert paired["test"] == "paired t" and unpaired["test"] == "Welch t"
    assert paired["p_value"] < 0.001 < 0.5 < unpaired["p_value"]


def test_clear_effect_is_flagged_significant():
    rng = np.random.default_rng(1)
    runs = noisy_study(rng, {(0.0, 0.0): 0.0, (0.2, 0.0): 0.05, (0.8, 0.0): -0.08}, 3)
    table = compare(runs).set_index("config")
    up = table.loc["dropout.conv=0.2,dropout.dense=0.0"]
    down = table.loc["dropout.conv=0.8,dropout.dense=0.0"]
    assert up["significant"] and down["significant"]
    assert up["ci_low"] < 0.05 < up["ci_high"]
    assert down["diff"] < 0 and down["ci_high"] < 0
    np.testing.assert_allclose(table["p_adjusted"], holm(table["p_value"]))


def test_no_real_difference_is_not_flagged_in_one_study():
    rng = np.random.default_rng(7)
    effects = {(rate, 0.0): 0.0 for rate in (0.0, 0.05, 0.1, 0.2, 0.5, 0.8)}
    table = compare(noisy_study(rng, effects, 5))
    assert len(table) == 5
    assert not table["significant"].any()
    assert table["seeds_needed"].notna().all()
    assert (table["seeds_needed"] > 5).all()


def test_holm_keeps_false_alarms_rare_across_many_null_studies():
    """Family-wise false alarm rate with 6 look-alike configs stays near alpha, not 6 x alpha."""
    rng = np.random.default_rng(2024)
    effects = {(rate, 0.0): 0.0 for rate in (0.0, 0.05, 0.1, 0.2, 0.5, 0.8, 0.9)}
    studies = 150
    alarms = raw_alarms = 0
    for _ in range(studies):
        table = compare(noisy_study(rng, effects, 4))
        alarms += bool(table["significant"].any())
        raw_alarms += bool((table["p_value"] < 0.05).any())
    assert alarms / studies <= 0.09
    assert raw_alarms > alarms  # the adjustment matters at this many comparisons


def test_compare_single_seed_has_no_interval_and_is_never_significant():
    runs = make_runs({(0.0, 0.0): [0.70], (0.2, 0.0): [0.90]})
    row = compare(runs).iloc[0]
    assert row["diff"] == pytest.approx(0.2)
    assert math.isnan(row["p_value"]) and math.isnan(row["ci_low"])
    assert not row["significant"]


def test_compare_zero_variance_does_not_crash_or_claim_an_effect():
    runs = make_runs({(0.0, 0.0): [0.70, 0.70, 0.70], (0.2, 0.0): [0.72, 0.72, 0.72]})
    row = compare(runs).iloc[0]
    assert row["diff"] == pytest.approx(0.02)
    assert math.isnan(row["p_value"]) and not row["significant"]
    same = compare(make_runs({(0.0, 0.0): [0.7, 0.7], (0.2, 0.0): [0.7, 0.7]})).iloc[0]
    assert same["diff"] == 0 and not same["significant"]


def test_compare_without_baseline_returns_empty_table():
    runs = make_runs({(0.1, 0.0): [0.7, 0.71], (0.2, 0.0): [0.72, 0.73]})
    table = compare(runs)
    assert table.empty and list(table.columns) == list(COMPARE_COLUMNS)


def test_compare_other_baseline_and_metric():
    runs = make_runs({(0.0, 0.0): [0.70, 0.72], (0.2, 0.0): [0.75, 0.78]})
    table = compare(runs, baseline="dropout.conv=0.2", metric="val_acc")
    assert table.iloc[0]["config"] == "dropout.conv=0.0,dropout.dense=0.0"
    assert table.iloc[0]["diff"] == pytest.approx(-0.055)
    with pytest.raises(DropoutlabError, match="unknown metric"):
        compare(runs, metric="accuracy")


# ---------------------------------------------------------------------------- power


def test_seeds_for_power_matches_textbook_values():
    # Cohen's tables / G*Power: d = 0.5 two groups -> 64 each; paired d_z = 0.5 -> 34.
    assert seeds_for_power(0.5, paired=False) == 64
    assert seeds_for_power(0.8, paired=False) == 26
    assert seeds_for_power(0.5, paired=True) == 34


def test_seeds_for_power_falls_as_the_effect_grows():
    sizes = [0.2, 0.35, 0.5, 0.8, 1.2, 2.0, 4.0]
    needed = [seeds_for_power(d) for d in sizes]
    assert all(a >= b for a, b in zip(needed, needed[1:], strict=False))
    assert needed[0] > needed[-1] >= 2
    assert seeds_for_power(-0.8) == seeds_for_power(0.8)
    assert seeds_for_power(0.01) == pytest.approx(78_490, abs=5)  # no cap at 1000 seeds
    assert math.isinf(seeds_for_power(0.001))  # more than SEEDS_SEARCH_LIMIT
    assert math.isnan(seeds_for_power(0.0)) and math.isnan(seeds_for_power(math.nan))


def test_seeds_for_power_survives_large_effects_where_nct_cdf_is_nan():
    # Around d_z = 5 to 7, SciPy's nct.cdf returns NaN for the (negligible) lower tail.
    assert seeds_for_power(5.28, paired=True) == 3  # two seeds ~44% power, three ~98%
    assert all(seeds_for_power(d, paired=True) <= 3 for d in np.linspace(5, 8, 13))
    assert seeds_for_power(7.0, paired=True) == 3
    assert seeds_for_power(40.0, paired=True) == 2


# ---------------------------------------------------------------------------- interaction


def _grid(cells: dict, seeds: dict | None = None) -> pd.DataFrame:
    rows = []
    for (rate, wd), accs in cells.items():
        for i, acc in enumerate(accs):
            rows.append(
                {
                    "config": f"dropout.conv={rate},optimizer.weight_decay={wd}",
                    "seed": seeds[(rate, wd)][i] if seeds else i,
                    "status": "completed",
                    "test_acc": acc,
                    "dropout.conv": rate,
                    "optimizer.weight_decay": wd,
                }
            )
    runs = pd.DataFrame(rows)
    runs.attrs["params"] = ["dropout.conv", "optimizer.weight_decay"]
    return runs


def test_interaction_f_test_matches_hand_computed_two_by_two():
    cells = {(0.0, 0.0): [1, 2], (0.0, 1e-4): [3, 4], (0.5, 0.0): [5, 6], (0.5, 1e-4): [10, 11]}
    seeds = {key: [2 * i, 2 * i + 1] for i, key in enumerate(cells)}  # no shared seeds
    result = interaction_test(_grid(cells, seeds))
    # Interaction residuals are +-0.75 in all 4 cells (2 runs each): SS = 8 * 0.5625 = 4.5;
    # within-cell SS = 4 * 0.5 = 2 on 4 df; F = 4.5 / 0.5 = 9 on (1, 4).
    assert not result["blocked_by_seed"]
    assert (result["df_num"], result["df_den"]) == (1, 4)
    assert result["F"] == pytest.approx(9.0)
    assert result["p_value"] == pytest.approx(0.0399420, abs=1e-6)


def test_interaction_blocks_by_seed_when_cells_share_seeds():
    rng = np.random.default_rng(3)
    offsets = rng.normal(0, 0.03, 4)  # large shared seed effect
    cells = {}
    for rate in (0.0, 0.5):
        for wd in (0.0, 1e-4):
            crossed = 0.03 if (rate, wd) == (0.5, 1e-4) else 0.0
            cells[(rate, wd)] = list(0.7 + crossed + offsets + rng.normal(0, 0.002, 4))
    blocked = interaction_test(_grid(cells))
    assert blocked["blocked_by_seed"] and blocked["p_value"] < 0.01
    additive = {k: list(0.7 + 0.02 * k[0] + offsets + rng.normal(0, 0.002, 4)) for k in cells}
    assert interaction_test(_grid(additive))["p_value"] > 0.05


def test_interaction_needs_a_full_cross_product_and_says_which_cell_is_missing():
    cells = {(0.0, 0.0): [0.7, 0.71], (0.5, 0.0): [0.72, 0.73], (0.0, 1e-4): [0.7, 0.7]}
    runs = _grid(cells)
    with pytest.raises(NotComputable, match=r"not complete: no completed run for dropout.conv=0.5, "):
        interaction_test(runs, factors=("dropout.conv", "optimizer.weight_decay"))


# ---------------------------------------------------------------------------- bounded intervals


def test_accuracy_interval_stays_inside_zero_and_one_near_the_top():
    near_top = accuracy_interval([0.995, 0.999, 0.998])
    assert near_top.method == "logit t"
    assert 0.98 < near_top.low < near_top.mean < near_top.high < 1.0
    # The plain t interval of the same seeds would pass 100%.
    assert mean_ci([0.995, 0.999, 0.998])[2] > 1.0


def test_accuracy_interval_needs_three_seeds_and_spread():
    two = accuracy_interval([0.40, 0.47])
    assert two.method == "range" and math.isnan(two.low) and (two.min, two.max) == (0.40, 0.47)
    same = accuracy_interval([0.9, 0.9, 0.9])
    assert same.method == "same" and math.isnan(same.low) and math.isnan(same.high)
    boundary = accuracy_interval([0.98, 1.0, 0.99])
    assert boundary.method == "boundary" and math.isnan(boundary.high)
    z = logit(np.array([0.6, 0.7, 0.65, 0.66]))
    half = sps.t.ppf(0.95, 3) * sps.sem(z)
    interval = accuracy_interval([0.6, 0.7, 0.65, 0.66], confidence=0.9)
    assert interval.low == pytest.approx(expit(z.mean() - half), abs=1e-13)
    assert interval.high == pytest.approx(expit(z.mean() + half), abs=1e-13)


# ---------------------------------------------------------------------------- statsmodels cross-checks


def test_holm_agrees_with_statsmodels_multipletests():
    rng = np.random.default_rng(11)
    for size in (1, 2, 5, 12):
        p = rng.uniform(0, 0.2, size)
        reference = multipletests(p, alpha=0.05, method="holm")[1]
        np.testing.assert_allclose(holm(p), reference, rtol=0, atol=1e-13)


@pytest.mark.parametrize("alpha", [0.05, 0.01, 0.05 / 7])
def test_power_agrees_with_statsmodels_ttest_power(alpha):
    for d in (0.3, 0.8, 2.0):
        for n in (3, 7, 30):
            paired = TTestPower().power(effect_size=d, nobs=n, alpha=alpha)
            groups = TTestIndPower().power(effect_size=d, nobs1=n, alpha=alpha, ratio=1.0)
            for mine, reference in (
                (power(n, d, alpha, paired=True), paired),
                (power(n, d, alpha, paired=False), groups),
            ):
                if np.isnan(reference):  # statsmodels' nct.cdf gives NaN far in the tail; power is ~1 there
                    assert mine > 0.9999
                else:
                    assert mine == pytest.approx(reference, abs=1e-13)


def test_seeds_for_power_is_the_smallest_n_reaching_the_power_by_statsmodels():
    for d, alpha, paired in ((0.5, 0.05, True), (2.0, 0.05 / 6, True), (0.8, 0.01, False)):
        n = int(seeds_for_power(d, alpha, 0.8, paired))
        solver = TTestPower() if paired else TTestIndPower()
        kwargs = {"nobs": n} if paired else {"nobs1": n}
        fewer = {"nobs": n - 1} if paired else {"nobs1": n - 1}
        assert solver.power(effect_size=d, alpha=alpha, **kwargs) >= 0.8
        assert solver.power(effect_size=d, alpha=alpha, **fewer) < 0.8


def test_seeds_needed_uses_min_effect_and_the_corrected_level_not_the_observed_effect():
    # One point worth detecting, seed-to-seed SD of the paired differences 0.5 points: d_z = 2.
    assert seeds_needed(0.01, 0.005, alpha=0.05, m=1) == seeds_for_power(2.0, 0.05)
    corrected = seeds_needed(0.01, 0.005, alpha=0.05, m=6)
    assert corrected == seeds_for_power(2.0, 0.05 / 6) > seeds_for_power(2.0, 0.05)
    assert math.isnan(seeds_needed(0.01, 0.0)) and math.isnan(seeds_needed(0.01, math.nan))
    assert math.isinf(seeds_needed(1e-6, 0.5)) and SEEDS_SEARCH_LIMIT == 100_000


def test_t_intervals_agree_with_statsmodels():
    from statsmodels.stats.weightstats import DescrStatsW

    x = np.array([0.71, 0.74, 0.69, 0.73, 0.70])
    low, high = DescrStatsW(x).tconfint_mean(alpha=0.05)
    _, my_low, my_high = mean_ci(x)
    assert (my_low, my_high) == (pytest.approx(low, abs=1e-13), pytest.approx(high, abs=1e-13))


def test_simultaneous_interval_is_bonferroni():
    low, high = simultaneous_interval(0.01, 0.002, 4, confidence=0.95, m=5)
    half = sps.t.ppf(1 - 0.05 / 10, 4) * 0.002
    assert (low, high) == (pytest.approx(0.01 - half, abs=1e-15), pytest.approx(0.01 + half, abs=1e-15))


def _anova_reference(runs, blocked: bool):
    import statsmodels.formula.api as smf
    from statsmodels.stats.anova import anova_lm

    data = pd.DataFrame({"y": runs["test_acc"], "a": runs["dropout.conv"].astype(str),
                         "b": runs["optimizer.weight_decay"].astype(str), "s": runs["seed"].astype(str)})  # fmt: skip
    block = " + C(s)" if blocked else ""
    additive = smf.ols(f"y ~ C(a) + C(b){block}", data).fit()
    full = smf.ols(f"y ~ C(a) * C(b){block}", data).fit()
    return anova_lm(additive, full).iloc[1]


@pytest.mark.parametrize("drop_one", [False, True])
def test_interaction_f_test_agrees_with_statsmodels_anova_lm_and_keeps_the_seed_block(drop_one):
    rng = np.random.default_rng(5)
    offsets = rng.normal(0, 0.03, 4)
    cells = {
        (r, w): list(0.7 + 0.01 * r + offsets + rng.normal(0, 0.004, 4))
        for r in (0.0, 0.3, 0.6)
        for w in (0.0, 1e-4)
    }
    runs = _grid(cells)
    if drop_one:  # one run failed: the cells are unbalanced, the seed block stays
        runs.loc[runs.index[5], "status"] = "failed"
    result = interaction_test(runs)
    assert result["blocked_by_seed"]
    reference = _anova_reference(runs[runs["status"] == "completed"], blocked=True)
    assert result["F"] == pytest.approx(reference["F"], rel=1e-9)
    assert result["p_value"] == pytest.approx(reference["Pr(>F)"], abs=1e-12)
    assert (result["df_num"], result["df_den"]) == (int(reference["df_diff"]), int(reference["df_resid"]))


def test_paired_t_and_welch_agree_with_scipy_to_1e_13():
    a = pd.Series([0.71, 0.74, 0.69, 0.73])
    b = pd.Series([0.70, 0.72, 0.69, 0.70])
    paired = compare_values(a, b)
    assert paired["p_value"] == pytest.approx(sps.ttest_rel(a, b).pvalue, abs=1e-13)
    welch = compare_values(a, pd.Series([0.60, 0.64, 0.61], index=[7, 8, 9]))
    reference = sps.ttest_ind(a, [0.60, 0.64, 0.61], equal_var=False)
    assert welch["test"] == "Welch t"
    assert welch["p_value"] == pytest.approx(reference.pvalue, abs=1e-13)


# ---------------------------------------------------------------------------- failed runs


def test_one_failed_baseline_run_keeps_the_pairing_on_the_shared_seeds():
    offsets = np.array([-0.04, 0.03, -0.01, 0.05, -0.02])
    values = {
        (0.0, 0.0): list(0.70 + offsets),
        (0.2, 0.0): list(0.71 + offsets + [0.001, -0.001, 0.0005, -0.0005, 0.0]),
    }
    runs = make_runs(values)
    runs.loc[(runs["dropout.conv"] == 0.0) & (runs["seed"] == 2), "status"] = "failed"
    row = compare(runs).iloc[0]
    assert row["test"] == "paired t" and (row["n"], row["n_baseline"]) == (4, 4)
    assert tuple(row["seeds_left_out"]) == (2,)
    shared = [0, 1, 3, 4]
    reference = sps.ttest_rel(np.array(values[(0.2, 0.0)])[shared], np.array(values[(0.0, 0.0)])[shared])
    assert row["p_value"] == pytest.approx(reference.pvalue, abs=1e-13)
    assert row["p_value"] < 0.001  # Welch on the unpaired values would say p ~ 0.7


def test_a_holm_claim_at_a_later_step_has_a_step_interval_excluding_zero_where_bonferroni_does_not():
    from scipy import stats as sps

    from dropoutlab.report.model import Levels

    # Three tests, p = 0.001, 0.02, 0.024: Holm rejects all three (0.003, 0.04, 0.04), but the
    # simultaneous (Bonferroni) interval of the third, at 1 - 0.05 / 3, contains 0 (3 x 0.024 > 0.05).
    df, se = 10.0, 0.01
    rows = pd.DataFrame(
        [{"diff": sps.t.isf(p / 2, df) * se, "se": se, "df": df, "p_value": p, "sd": se * np.sqrt(11),
          "test": "paired t", "n": 11, "n_baseline": 11, "ci_low": np.nan, "ci_high": np.nan}
         for p in (0.024, 0.001, 0.02)]
    )  # fmt: skip
    out = adjust_family(rows, Levels(alpha=0.05, confidence=0.95))
    assert out["significant"].all()
    assert list(out["holm_step"]) == [1, 3, 2]
    third = out.iloc[0]
    assert third["ci_low"] < 0 < third["ci_low_step"]  # the contradiction the step interval removes
    assert (out["ci_low_step"] > 0).all()
    # the step interval of the k-th test is the plain t interval at 1 - 0.05 / k
    half = sps.t.isf(0.05 / 2 / 2, df) * se
    assert out.iloc[2]["ci_low_step"] == pytest.approx(out.iloc[2]["diff"] - half, rel=1e-12)


def test_seeds_needed_planned_with_the_upper_bound_keep_their_power_after_a_three_seed_pilot():
    from scipy import stats as sps

    from dropoutlab.report.stats import PLANNING_CONFIDENCE, sd_upper_bound

    rng = np.random.default_rng(11)
    sd, min_effect, m, df = 0.007, 0.01, 3, 2
    planned, naive = [], []
    for _ in range(2000):
        s = sd * np.sqrt(rng.chisquare(df) / df)  # the spread a 3-seed pilot shows
        for spread, out in ((sd_upper_bound(s, df), planned), (s, naive)):
            n = seeds_needed(min_effect, spread, 0.05, m)
            out.append(power(n, min_effect / sd, 0.05 / m))
    assert PLANNING_CONFIDENCE == 0.8
    assert np.mean(planned) >= 0.8 and np.mean(np.array(planned) >= 0.8) >= 0.75
    assert np.mean(naive) < 0.7  # the measured spread taken as the truth falls short of 80%
    assert sd_upper_bound(0.01, 2) == pytest.approx(0.01 * np.sqrt(2 / sps.chi2.ppf(0.2, 2)), rel=1e-12)
