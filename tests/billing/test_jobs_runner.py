"""The in-process runner: one retry layer, side by side, bounded fan-out; and the Billing
daemon job run by it."""

from __future__ import annotations

import threading
import time
from datetime import date

import pytest
from sqlalchemy import select
from sqlalchemy.exc import OperationalError

from billing.jobs.billing_daemon import BillingJob, billing_daemon
from billing.jobs.runner import (
    NO_RETRY,
    Call,
    InProcessRunner,
    Retry,
    run_with_retry,
    transient_database_error,
)
from billing.store.db import unit_of_work
from billing.store.models import Bill
from tests import builders as b
from tests.billing.test_billday import population  # noqa: F401  (the hand-checked population)

FAST = Retry(attempts=3, first_delay=0.0)


def _lost_connection() -> OperationalError:
    return OperationalError("select 1", {}, Exception("server closed the connection"))


class Flaky:
    """Fails with ``error`` the first ``fails`` calls, then answers ``"ok"``."""

    def __init__(self, fails: int, error: Exception) -> None:
        self.fails, self.error, self.calls = fails, error, 0

    def __call__(self) -> str:
        self.calls += 1
        if self.calls <= self.fails:
            raise self.error
        return "ok"


def test_a_transient_error_is_retried_until_the_step_passes():
    flaky = Flaky(2, _lost_connection())
    assert InProcessRunner().step(Call("flaky", flaky, retry=FAST)) == "ok"
    assert flaky.calls == 3


def test_a_transient_error_on_every_run_is_raised_after_the_last_attempt():
    flaky = Flaky(10, _lost_connection())
    with pytest.raises(OperationalError):
        InProcessRunner().step(Call("flaky", flaky, retry=FAST))
    assert flaky.calls == 3


def test_an_error_that_is_not_transient_is_never_retried():
    flaky = Flaky(1, ValueError("no tax rate"))
    with pytest.raises(ValueError, match="no tax rate"):
        InProcessRunner().step(Call("flaky", flaky, retry=FAST))
    assert flaky.calls == 1


def test_no_retry_runs_once():
    flaky = Flaky(1, _lost_connection())
    with pytest.raises(OperationalError):
        InProcessRunner().step(Call("flaky", flaky, retry=NO_RETRY))
    assert flaky.calls == 1


def test_the_retry_waits_the_policys_delays():
    waits: list[float] = []
    flaky = Flaky(3, _lost_connection())
    run_with_retry(Call("flaky", flaky, retry=Retry(attempts=4, first_delay=0.5)), waits.append)
    assert waits == [0.5, 1.0, 2.0]


def test_exhausted_turns_the_last_transient_failure_into_a_result():
    class StillPending(OperationalError):
        pass

    error = StillPending("collect", {}, Exception("pending"))
    flaky = Flaky(10, error)
    retry = Retry(attempts=2, first_delay=0.0, exhausted=lambda e: f"reported {e is error}")
    assert InProcessRunner().step(Call("collect", flaky, retry=retry)) == "reported True"
    assert flaky.calls == 2
    # An error that is not transient is still raised, not reported.
    boom = Flaky(1, ValueError("bad config"))
    with pytest.raises(ValueError):
        InProcessRunner().step(Call("collect", boom, retry=retry))


def test_side_by_side_waits_for_every_step_then_raises_the_first_failure():
    finished: list[str] = []

    def slow(name: str) -> str:
        time.sleep(0.3)
        finished.append(name)
        return name

    def fails(message: str) -> None:
        raise RuntimeError(message)

    calls = [
        Call("first", fails, ("first failure",), retry=NO_RETRY),
        Call("slow", slow, ("slow",)),
        Call("second", fails, ("second failure",), retry=NO_RETRY),
    ]
    with pytest.raises(RuntimeError, match="first failure"):
        InProcessRunner().side_by_side(calls)
    assert finished == ["slow"]  # the slow step ran to its end before the error came out


def test_side_by_side_runs_at_the_same_time_and_returns_by_name():
    barrier = threading.Barrier(3, timeout=5)  # each step waits for the other two

    def meet(name: str) -> str:
        barrier.wait()
        return name.upper()

    calls = [Call(name, meet, (name,)) for name in ("a", "b", "c")]
    assert InProcessRunner().side_by_side(calls) == {"a": "A", "b": "B", "c": "C"}


@pytest.mark.parametrize("at_most", [1, 2, 3])
def test_fan_out_bounds_the_calls_in_flight_and_keeps_their_order(at_most):
    lock = threading.Lock()
    in_flight, most, made = [0], [0], []

    def work(n: int) -> int:
        with lock:
            in_flight[0] += 1
            most[0] = max(most[0], in_flight[0])
        time.sleep(0.05)
        with lock:
            in_flight[0] -= 1
        return n * 10

    def calls():
        for n in range(8):
            made.append(n)
            yield Call(f"batch-{n}", work, (n,))

    results = []
    for result in InProcessRunner().fan_out(calls(), at_most=at_most):
        # Calls are made lazily: never more than at_most ahead of the results taken.
        assert len(made) <= len(results) + at_most + 1
        results.append(result)
    assert results == [n * 10 for n in range(8)]
    assert most[0] == at_most


def test_fan_out_retries_a_batch_with_a_transient_error():
    flaky = Flaky(1, _lost_connection())
    calls = [Call("a", lambda: "a"), Call("b", flaky, retry=FAST)]
    assert list(InProcessRunner().fan_out(calls, at_most=2)) == ["a", "ok"]


def test_progress_goes_to_the_callback():
    seen = []
    runner = InProcessRunner(on_progress=lambda *args: seen.append(args))
    runner.progress("billing", 1, "done")
    assert seen == [("billing", 1, "done")]


# ---- the Billing daemon job ----


class CountingRunner(InProcessRunner):
    """The in-process runner, counting the batches in flight at once."""

    def __init__(self) -> None:
        super().__init__()
        self.lock = threading.Lock()
        self.in_flight = 0
        self.most = 0
        self.batches = 0

    def fan_out(self, calls, *, at_most):
        def counted(call: Call) -> Call:
            def run(*args):
                with self.lock:
                    self.in_flight += 1
                    self.batches += 1
                    self.most = max(self.most, self.in_flight)
                try:
                    time.sleep(0.2)  # long enough for the other batches to start beside it
                    return call.fn(*args)
                finally:
                    with self.lock:
                        self.in_flight -= 1

            return Call(call.name, run, call.args, call.kwargs, call.retry)

        return super().fan_out((counted(c) for c in calls), at_most=at_most)


@pytest.fixture
def many_due(population):  # noqa: F811
    """The hand-checked population and four more accounts due on Feb 1, one fee each."""
    with unit_of_work(population) as s:
        fee = b.plan(s, "BASIC", "recurring", price="10.00", timing="advance")
        for n in range(4):
            account = b.account(s, f"X{n}", created=date(2027, 1, 1), billing_day=1)
            contract = b.contract(s, account, f"CX{n}", date(2027, 1, 1))
            b.item(s, contract, f"X{n}-1", fee, "recurring", date(2027, 1, 1))
    return population


@pytest.mark.parametrize("children", [1, 3])
def test_the_billing_daemon_honours_children(many_due, children):
    runner = CountingRunner()
    job = BillingJob(many_due, date(2027, 2, 1), "daemon", per_batch=1, children=children)
    result = billing_daemon(runner, job)
    assert result.billing.bills == 6
    assert not result.billing.failed
    assert runner.batches == 6
    assert runner.most == children
    with unit_of_work(many_due) as s:
        numbers = s.scalars(select(Bill.number).order_by(Bill.number)).all()
    assert numbers == [1, 2, 3, 4, 5, 6]


def test_a_lost_connection_is_transient_however_the_driver_reports_it() -> None:
    """A cut seen on a rollback is an ``InterfaceError`` ("connection already closed") on a
    connection SQLAlchemy invalidated: retried like an ``OperationalError``. A constraint
    violation is not retried."""
    import psycopg2
    from sqlalchemy.exc import DBAPIError, IntegrityError, InterfaceError

    closed = InterfaceError(
        "ROLLBACK",
        None,
        psycopg2.InterfaceError("connection already closed"),
        connection_invalidated=True,
    )
    assert closed.connection_invalidated and transient_database_error(closed)
    assert not transient_database_error(InterfaceError("SELECT 1", None, Exception("x")))
    assert not transient_database_error(IntegrityError("INSERT", None, Exception("duplicate")))
    wrapped = DBAPIError.instance(
        "COPY", None, psycopg2.OperationalError("server closed the connection"), psycopg2.Error
    )
    assert transient_database_error(wrapped)
