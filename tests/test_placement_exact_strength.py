"""The exact placement search: known answers worked out by hand, tightly packed setups decided
within a small dead-end budget, and agreement with an independent brute force."""

from __future__ import annotations

import itertools
import random

import pytest

from routerwise.optimize import placement as pl
from routerwise.optimize.decomposition import MAX_DEAD_ENDS

S = pl.ShardDemand


def _valid(demands, placement, num_gpus, mem_gb, check_compute=True, check_memory=True):
    """Every shard on a distinct GPU of its model, no GPU over compute or memory."""
    assert len(placement) == len(demands)
    for d, gpus in zip(demands, placement):
        assert len(set(gpus)) == len(gpus) == d.tp
        assert all(0 <= g < num_gpus for g in gpus)
    comp, mem, _ = pl.gpu_usage(demands, placement, num_gpus)
    if check_compute:
        assert max(comp) <= 10
    if check_memory:
        assert max(mem) <= mem_gb + 1e-9
    return True


def _brute_force(demands, num_gpus, mem_gb, check_compute=True, check_memory=True):
    """Placeable? Tries every choice of tp distinct GPUs per model (no search order, no
    pruning, no memo): independent of the search under test."""
    choices = [list(itertools.combinations(range(num_gpus), d.tp)) for d in demands]
    for pick in itertools.product(*choices):
        comp, mem, _ = pl.gpu_usage(demands, pick, num_gpus)  # a tally, not the search
        if (not check_compute or max(comp) <= 10) and \
                (not check_memory or max(mem) <= mem_gb + 1e-9):
            return True
    return False


@pytest.fixture(autouse=True)
def _fresh_cache():
    pl._place_canonical.cache_clear()     # each test sees the search, not an earlier answer
    yield
    pl._place_canonical.cache_clear()


# Worked out by hand (GPUs of 80 GB, 10 compute tenths):
# - two tp-2 models of 5 tenths on 2 GPUs: each GPU takes one shard of each (10 tenths);
# - a tp-2 model of 5 and two tp-1 models of 5 on 2 GPUs: the tp-2 model on both, one tp-1
#   model on each;
# - three tp-1 models of 6 tenths on 2 GPUs: 18 <= 20 tenths in all, but two shards of more than
#   half a GPU cannot share one, so 3 such shards need 3 GPUs;
# - a tp-2 model of 4 tenths and 1 GB on 1 GPU: tensor-parallel ranks need distinct GPUs;
# - two tp-1 models of 50 GB and 1 tenth on 1 GPU: 100 > 80 GB;
# - a tp-3 model of 3 tenths on 3 GPUs leaves 7 on each: tp-1 models of 7, 7, 4 and 3 fill
#   them exactly (7 | 7 | 4 + 3; 30 tenths) -> placeable;
# - the tp-3 model of 3 with tp-1 models of 7, 5 and 2: 7 | 5 + 2 | - -> placeable;
# - the tp-3 model of 3 with tp-1 models of 7, 4, 4 and 4: 28 <= 30 tenths, but with 7 left
#   per GPU the 7 needs a GPU of its own and no two 4s share one (8 > 7): 4 GPUs needed
#   -> unplaceable.
HAND = [
    ("two tp-2 halves on 2 GPUs", [S(2, 5, 10.0), S(2, 5, 10.0)], 2, True),
    ("tp-2 half and two tp-1 halves", [S(2, 5, 10.0), S(1, 5, 10.0), S(1, 5, 10.0)], 2, True),
    ("three shards over half a GPU on 2", [S(1, 6, 1.0)] * 3, 2, False),
    ("tp-2 on one GPU", [S(2, 4, 1.0)], 1, False),
    ("memory over one GPU", [S(1, 1, 50.0), S(1, 1, 50.0)], 1, False),
    ("exactly full", [S(3, 3, 5.0), S(1, 7, 5.0), S(1, 7, 5.0), S(1, 4, 5.0), S(1, 3, 5.0)],
     3, True),
    ("7, 5, 2 beside a tp-3 of 3", [S(3, 3, 5.0), S(1, 7, 5.0), S(1, 5, 5.0), S(1, 2, 5.0)],
     3, True),
    ("7, 4, 4, 4 beside a tp-3 of 3",
     [S(3, 3, 5.0), S(1, 7, 5.0), S(1, 4, 5.0), S(1, 4, 5.0), S(1, 4, 5.0)], 3, False),
]


@pytest.mark.parametrize("name,demands,num_gpus,placeable", HAND, ids=[h[0] for h in HAND])
def test_hand_worked_answers(name, demands, num_gpus, placeable):
    got = pl.place_exact(demands, num_gpus, 80.0, max_dead_ends=MAX_DEAD_ENDS)
    assert (got is not None) == placeable
    if placeable:
        assert _valid(demands, got, num_gpus, 80.0)
    assert _brute_force(demands, num_gpus, 80.0) == placeable    # the hand answer, checked


# Seven tp-1 models of 6 tenths on 6 GPUs: two of them would share a GPU (12 > 10 tenths), so
# no placement exists, though the compute adds up to exactly 6 GPUs' (42 + 4 + 8 + 4 + 2 = 60).
# The previous search (models by tp, no capacity bounds) first spread the small tp-4 and tp-2
# models over the GPUs in every distinct way and met the contradiction only at the last
# models: it needed more than 1,000 dead ends here (decided with 100,000; measured), so with
# a small budget the setup stayed undecided. Largest shards first plus the bounds decide it
# within 10.
SEVEN_ON_SIX = [S(4, 1, 1.0), S(4, 2, 2.0), S(4, 1, 3.0), S(2, 1, 1.0)] + [S(1, 6, 1.0)] * 7


def test_a_fragmented_setup_is_decided_within_a_small_budget():
    assert pl.place_exact(SEVEN_ON_SIX, 6, 80.0, max_dead_ends=10) is None
    # one shard of 6 fewer fits: the six 6s take one GPU each, the small shards their 4s
    six = SEVEN_ON_SIX[:-1]
    got = pl.place_exact(six, 6, 80.0, max_dead_ends=10)
    assert got is not None and _valid(six, got, 6, 80.0)


def test_the_budget_still_stops_an_undecided_search():
    with pytest.raises(pl.PlacementUndecided):
        pl.place_exact(SEVEN_ON_SIX, 6, 80.0, max_dead_ends=0)


# A 12-model setup on 24 A100-80GB GPUs of the synthetic ladder's memory sizes (random, seed 0,
# compute 234 of 240 tenths). The previous search had not decided it after 300,000 dead ends
# (measured). Unplaceable on 24 and 25 GPUs, placeable on 26; the 24-GPU answer is checked
# against a MILP (one binary per model and GPU) solved by HiGHS.
LADDER_24 = [S(4, 10, 6.5), S(4, 5, 6.75), S(4, 5, 7.1), S(4, 10, 7.6), S(1, 4, 15.4),
             S(4, 8, 9.45), S(4, 1, 11.05), S(4, 7, 13.45), S(4, 5, 17.0), S(2, 4, 38.3),
             S(4, 2, 29.8), S(2, 5, 76.0)]


def _milp_placeable(demands, num_gpus, mem_gb) -> bool:
    import pulp
    lp = pulp.LpProblem("placement", pulp.LpMinimize)
    y = {(i, g): lp.add_variable(f"y_{i}_{g}", cat="Binary")
         for i in range(len(demands)) for g in range(num_gpus)}
    lp += pulp.lpSum([])
    for i, d in enumerate(demands):
        lp += pulp.lpSum(y[i, g] for g in range(num_gpus)) == d.tp
    for g in range(num_gpus):
        lp += pulp.lpSum(d.compute_tenths * y[i, g] for i, d in enumerate(demands)) <= 10
        lp += pulp.lpSum(d.mem_gb * y[i, g] for i, d in enumerate(demands)) <= mem_gb
    lp.solve(pulp.HiGHS(msg=False))
    assert pulp.LpStatus[lp.status] in ("Optimal", "Infeasible")
    return pulp.LpStatus[lp.status] == "Optimal"


def test_a_tightly_packed_ladder_setup_is_decided_within_the_decomposition_budget():
    assert sum(d.tp * d.compute_tenths for d in LADDER_24) == 234
    assert pl.place_exact(LADDER_24, 24, 80.0, max_dead_ends=MAX_DEAD_ENDS) is None
    assert pl.place_exact(LADDER_24, 25, 80.0, max_dead_ends=MAX_DEAD_ENDS) is None
    got = pl.place_exact(LADDER_24, 26, 80.0, max_dead_ends=MAX_DEAD_ENDS)
    assert got is not None and _valid(LADDER_24, got, 26, 80.0)
    assert not _milp_placeable(LADDER_24, 24, 80.0)


def _random_instance(rng):
    num_gpus = rng.randint(1, 4)
    demands = [S(rng.choice([t for t in (1, 2, 3, 4) if t <= num_gpus]), rng.randint(1, 10),
                 rng.choice([5.0, 10.0, 20.0, 30.0, 45.0]))
               for _ in range(rng.randint(1, 4))]
    return demands, num_gpus, rng.choice([40.0, 80.0])


@pytest.mark.parametrize("seed", range(4))
def test_agrees_with_brute_force_on_random_small_instances(seed):
    rng = random.Random(seed)
    counts = {True: 0, False: 0}
    for _ in range(150):
        demands, num_gpus, mem_gb = _random_instance(rng)
        check_compute, check_memory = rng.random() < 0.85, rng.random() < 0.85
        pl._place_canonical.cache_clear()
        got = pl.place_exact(demands, num_gpus, mem_gb, check_compute=check_compute,
                             check_memory=check_memory)
        want = _brute_force(demands, num_gpus, mem_gb, check_compute, check_memory)
        assert (got is not None) == want, (demands, num_gpus, mem_gb)
        if got is not None:
            assert _valid(demands, got, num_gpus, mem_gb, check_compute, check_memory)
        counts[want] += 1
    assert min(counts.values()) >= 20      # both answers are exercised


def test_agrees_with_brute_force_on_tightly_packed_instances():
    """Compute nearly full: the cases the capacity bounds prune."""
    rng = random.Random(7)
    counts = {True: 0, False: 0}
    tried = 0
    while tried < 120:
        num_gpus = rng.randint(3, 4)
        demands = [S(rng.choice((1, 2, 3)), rng.randint(2, 9), rng.choice((5.0, 10.0, 30.0)))
                   for _ in range(rng.randint(3, 4))]
        total = sum(d.tp * d.compute_tenths for d in demands)
        if not 0.8 * 10 * num_gpus <= total <= 10 * num_gpus:
            continue
        tried += 1
        pl._place_canonical.cache_clear()
        got = pl.place_exact(demands, num_gpus, 80.0)
        want = _brute_force(demands, num_gpus, 80.0)
        assert (got is not None) == want, (demands, num_gpus)
        counts[want] += 1
    assert min(counts.values()) >= 10
