"""``make server``'s stack end to end: deploy, start bill-day with an as_of, check the bills."""

from __future__ import annotations

from decimal import Decimal

import httpx
import pytest
import yaml
from sqlalchemy import select

from billing.store.db import make_engine, unit_of_work
from billing.store.models import Bill
from tests.operations.conftest import AS_OF, ROOT, RUN_NAME

pytestmark = pytest.mark.slow
D = Decimal


def _post(stack, path: str, body: dict) -> list[dict]:
    response = httpx.post(
        f"{stack.api}{path}",
        json={"offset": 0, "limit": 200, **body},
        auth=stack.auth,
        timeout=30,
    )
    response.raise_for_status()
    return response.json()


def test_bill_day_deployment_run_bills_the_population(deployed, bill_day_run):
    assert bill_day_run.name == RUN_NAME
    log = (deployed.home / "logs" / "worker.log").read_text(errors="replace")[-6000:]
    assert bill_day_run.state.type.value == "COMPLETED", f"{bill_day_run.state}\n{log}"
    assert bill_day_run.parameters["as_of"] == AS_OF.isoformat()
    engine = make_engine(deployed.database_url)
    with unit_of_work(engine) as s:
        bills = s.execute(
            select(
                Bill.bill_key, Bill.bill_no, Bill.currency, Bill.net, Bill.tax, Bill.gross
            ).order_by(Bill.number)
        ).all()
    engine.dispose()
    assert [tuple(r) for r in bills] == [
        ("cyc:2:2027-01-31", "INV-00000001", "GBP", D("14.45"), D("2.89"), D("17.34")),
        ("cyc:1:2027-02-01", "INV-00000002", "EUR", D("101.50"), D("20.30"), D("121.80")),
    ]
    # Data Docs land in BillRunSettings.output_dir/<as_of>/<flow run id>/data_docs.
    run_dir = deployed.output_dir / AS_OF.isoformat() / str(bill_day_run.id)
    assert (run_dir / "data_docs" / "index.html").is_file()


def test_run_reports_its_summary_artifact(deployed, bill_day_run):
    [summary] = _post(
        deployed,
        "/artifacts/filter",
        {
            "artifacts": {
                "key": {"any_": ["bill-day-summary"]},
                "flow_run_id": {"any_": [str(bill_day_run.id)]},
            }
        },
    )
    assert '"measure": "bills", "value": "2"' in summary["data"]


def test_every_deployment_of_prefect_yaml_is_served_with_its_schedule(deployed):
    spec = yaml.safe_load((ROOT / "prefect.yaml").read_text())
    wanted = {d["entrypoint"]: d for d in spec["deployments"]}
    found = {d["entrypoint"]: d for d in _post(deployed, "/deployments/filter", {})}
    assert sorted(found) == sorted(wanted)
    for entrypoint, deployment in found.items():
        assert deployment["work_pool_name"] == "billing-pool"
        assert len(deployment["schedules"]) == len(wanted[entrypoint]["schedules"])
        assert all(s["active"] for s in deployment["schedules"])


def test_pool_has_an_online_worker_and_the_batch_limit_exists(deployed):
    workers = _post(deployed, "/work_pools/billing-pool/workers/filter", {})
    assert [w["status"] for w in workers] == ["ONLINE"]
    limit = httpx.get(
        f"{deployed.api}/v2/concurrency_limits/bill-day-batches", auth=deployed.auth, timeout=30
    )
    assert limit.json()["limit"] == 5  # BillRunSettings.children
