"""routerwise.uncertainty: the t half-width every measured mean's interval uses."""

from __future__ import annotations

import math

import pytest

from routerwise.uncertainty import half_width_95


def test_half_width_is_t_times_the_standard_error():
    # n = 3, sd = 10: t(0.975, 2) = 4.302652729911275
    assert half_width_95([10.0, 20.0, 30.0]) == pytest.approx(4.302652729911275 * 10 / math.sqrt(3))
    # n = 2, sd = sqrt(2): t(0.975, 1) = 12.706204736174698
    assert half_width_95([1.0, 3.0]) == pytest.approx(12.706204736174698 * math.sqrt(2) / math.sqrt(2))
    assert half_width_95([5.0, 5.0, 5.0]) == 0.0


@pytest.mark.parametrize("values", [[], [7.0]])
def test_fewer_than_two_means_say_nothing(values):
    assert math.isnan(half_width_95(values))
