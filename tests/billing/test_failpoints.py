"""Failpoints: the spec's grammar, and an action attached in-process runs at each hit."""

from __future__ import annotations

import pytest

from billing import failpoints
from billing.failpoints import FailpointSpecError, failpoint, parse


def test_spec_names_points_and_the_hit_that_fires():
    assert parse("") == {}
    assert parse("a.b, c.d@3") == {"a.b": 1, "c.d": 3}


@pytest.mark.parametrize("spec", ["a@x", "a@0", "@2", "a@-1"])
def test_a_malformed_spec_is_refused(spec):
    with pytest.raises(FailpointSpecError):
        parse(spec)


def test_an_attached_action_runs_at_each_hit_and_only_inside_its_block():
    seen: list[int] = []
    with failpoints.on("unit.test", lambda: seen.append(failpoints.hits("unit.test"))):
        failpoint("unit.test")
        failpoint("other.point")
        failpoint("unit.test")
    failpoint("unit.test")
    assert seen == [1, 2]
