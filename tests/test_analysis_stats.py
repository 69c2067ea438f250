"""Arithmetic of the statistics and the capacity model on small hand-built inputs (labelled as
such: these check formulas, not measurements)."""
from __future__ import annotations

import math

import numpy as np
import pandas as pd
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from zcrxprof.analysis import capacity, stats
from zcrxprof.analysis.switches import histogram_quantile
from zcrxprof.analysis.verdict import confidence


def test_exact_permutation_test_on_complete_separation_hits_its_floor():
    r = stats.permutation_test([1.0, 2.0, 3.0], [4.0, 5.0, 6.0])
    assert r.exact
    assert r.p_value == pytest.approx(2 / 20)   # both extreme relabellings of C(6,3) = 20
    assert r.p_floor == pytest.approx(2 / 20)


def test_permutation_test_on_identical_groups_is_one():
    r = stats.permutation_test([5.0, 5.0, 5.0], [5.0, 5.0, 5.0])
    assert r.p_value == pytest.approx(1.0)


def test_permutation_test_samples_when_enumeration_is_too_large():
    rng = np.random.default_rng(3)
    a, b = rng.normal(0, 1, 40), rng.normal(3, 1, 40)
    r = stats.permutation_test(a, b, n_resamples=2000)
    assert not r.exact and r.p_value <= 2 / 2001


def test_cliffs_delta_and_hedges_g_directions():
    assert stats.cliffs_delta([4, 5, 6], [1, 2, 3]) == 1.0
    assert stats.cliffs_delta([1, 2, 3], [4, 5, 6]) == -1.0
    assert stats.cliffs_delta([1, 2], [1, 2]) == 0.0
    # (2 - 1) / pooled sd 1, times J = 1 - 3/(4*4-1) for 3 + 3 samples
    g = stats.hedges_g([1.0, 2.0, 3.0], [0.0, 1.0, 2.0])
    assert g == pytest.approx(1.0 * (1 - 3 / 15))
    assert stats.describe_delta(0.1) == "negligible" and stats.describe_delta(-0.9) == "large"


def test_bootstrap_median_interval_brackets_the_median_within_the_data():
    e = stats.bootstrap_median([10.0, 11.0, 12.0, 13.0, 50.0])
    assert e.value == 12.0 and e.n == 5
    assert 10.0 <= e.lo <= e.value <= e.hi <= 50.0
    assert math.isnan(stats.bootstrap_median([]).value)


def test_bootstrap_ratio_of_medians():
    e = stats.bootstrap_ratio([20.0, 20.0, 20.0], [10.0, 10.0, 10.0])
    assert (e.value, e.lo, e.hi) == (2.0, 2.0, 2.0)


@settings(max_examples=40, deadline=None)
@given(st.lists(st.floats(0.1, 100), min_size=2, max_size=5),
       st.lists(st.floats(0.1, 100), min_size=2, max_size=5))
def test_permutation_p_is_a_probability_above_its_floor_and_symmetric(a, b):
    r = stats.permutation_test(a, b)
    assert r.p_floor - 1e-12 <= r.p_value <= 1.0
    assert r.p_value == pytest.approx(stats.permutation_test(b, a).p_value)
    assert stats.cliffs_delta(a, b) == pytest.approx(-stats.cliffs_delta(b, a))


def test_confidence_words():
    assert confidence(1.2, 1.0, 0.1) == "clear"
    assert confidence(1.2, 0.5, 0.1) == "likely"
    assert confidence(1.2, 1.0, 0.01) == "significant"
    assert confidence(0.9, 1.0, 0.1) == "not distinguishable"
    assert confidence(1.2, 1.0, 0.33, n=2) == "too few runs"


def test_histogram_quantile_interpolates_inside_a_bucket():
    h = pd.DataFrame({"lo": [0, 2, 4], "hi": [1, 3, 7], "count": [0, 10, 10]})
    assert histogram_quantile(h, 0.5) == pytest.approx(3.0)
    assert histogram_quantile(h, 0.75) == pytest.approx(5.5)


# Capacity model on hand-built costs (ns/byte): formulas, not measurements.
COSTS = capacity.Costs(recv=0.1, work=0.9, softirq=0.2, tx=0.3, handoff=0.1, sync=0.05)


def test_single_ring_is_bound_by_its_own_thread():
    gbit, bound = capacity.predict(COSTS, "single", 1, cores=8)
    assert bound == "ring" and gbit == pytest.approx(8 / 1.0)


def test_shared_ifq_pays_sync_and_hits_the_cpu_bound_on_few_cores():
    gbit, bound = capacity.predict(COSTS, "shared-ifq", 4, cores=64)
    assert bound == "ring" and gbit == pytest.approx(4 / 1.05 * 8)
    gbit, bound = capacity.predict(COSTS, "shared-ifq", 4, cores=2)
    assert bound == "cpu" and gbit == pytest.approx(2 / (0.1 + 0.9 + 0.2 + 0.05 + 0.3) * 8)


def test_ifq_per_ring_is_limited_by_hardware_queues_and_the_line():
    gbit, _ = capacity.predict(COSTS, "ifq-per-ring", 8, cores=64, queues=2, local_sender=False)
    assert gbit == pytest.approx(2 / 1.0 * 8)
    gbit, bound = capacity.predict(COSTS, "ifq-per-ring", 8, cores=64, queues=8, line_rate_gbit_s=20,
                                   local_sender=False)
    assert (gbit, bound) == (pytest.approx(20), "line")


def test_workers_are_bound_by_the_receiver_or_the_workers():
    gbit, bound = capacity.predict(COSTS, "workers", 1, cores=64, local_sender=False)
    assert bound == "workers" and gbit == pytest.approx(1 / 1.0 * 8)
    # 20 workers: the receiver (1 / 0.1) is beyond the one queue's softirq (1 / 0.2)
    gbit, bound = capacity.predict(COSTS, "workers", 20, cores=64, local_sender=False)
    assert bound == "queue" and gbit == pytest.approx(1 / 0.2 * 8)
    no_softirq = capacity.Costs(recv=0.1, work=0.9, handoff=0.1)
    gbit, bound = capacity.predict(no_softirq, "workers", 20, cores=64, local_sender=False)
    assert bound == "ring" and gbit == pytest.approx(1 / 0.1 * 8)


def test_predict_rejects_nonsense():
    with pytest.raises(ValueError):
        capacity.predict(COSTS, "bogus", 1, 1)
    with pytest.raises(ValueError):
        capacity.predict(COSTS, "single", 0, 1)
