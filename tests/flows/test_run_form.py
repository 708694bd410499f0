"""The run form of every deployed flow, from the parameter schema Prefect generates.

``prefect deploy`` stores ``parameter_schema(flow)`` as the deployment's
``parameter_openapi_schema``; the UI's Run -> Custom run form is drawn from it.
"""

from __future__ import annotations

import pytest
import yaml
from prefect.flows import load_flow_from_entrypoint
from prefect.utilities.callables import parameter_schema

from tests.flows.test_deployments import ROOT

ENTRYPOINTS = sorted(
    d["entrypoint"] for d in yaml.safe_load((ROOT / "prefect.yaml").read_text())["deployments"]
)


def _properties(entrypoint: str) -> dict[str, dict]:
    flow = load_flow_from_entrypoint(str(ROOT / entrypoint))
    return parameter_schema(flow).model_dump()["properties"]


@pytest.mark.parametrize("entrypoint", ENTRYPOINTS)
def test_every_parameter_is_described(entrypoint):
    properties = _properties(entrypoint)
    assert properties
    assert {name: bool(p.get("description")) for name, p in properties.items()} == {
        name: True for name in properties
    }


@pytest.mark.parametrize("entrypoint", ENTRYPOINTS)
def test_no_field_is_a_choice_between_a_type_and_null(entrypoint):
    """``X | None`` renders as an "any of" picker; every optional field is one plain field."""
    properties = _properties(entrypoint)
    assert sorted(name for name, p in properties.items() if "anyOf" in p) == []


def test_as_of_is_a_plain_date_field():
    as_of = _properties("flows/bill_day.py:bill_day")["as_of"]
    assert {k: as_of[k] for k in ("type", "format")} == {"type": "string", "format": "date"}


@pytest.mark.parametrize(
    "entrypoint",
    [
        "flows/billing_daemon.py:billing",
        "flows/contract_change_process.py:contract_change_process",
        "flows/contract_item_renewal.py:contract_item_renewal",
        "flows/invoice_email_sender.py:invoice_email_sender",
        "flows/uti_schedule_generator.py:uti_schedule_generator",
    ],
)
def test_process_now_is_a_plain_date_time_field(entrypoint):
    process_now = _properties(entrypoint)["process_now"]
    assert (process_now["type"], process_now["format"]) == ("string", "date-time")


@pytest.mark.parametrize("entrypoint", ENTRYPOINTS)
def test_an_optional_field_left_empty_passes_the_forms_validation(entrypoint):
    """The UI's Custom run form sends null for an empty field and validates it the way the
    server's /ui/schemas/validate does. A ``"default": null`` in the schema makes that fail
    ("None is not of type 'string'"), so an empty as_of or accounts could not be submitted
    (seen in a browser); the optional fields carry no default, only their own value."""
    from prefect.utilities.schema_tools.validation import preprocess_schema, validate

    flow = load_flow_from_entrypoint(str(ROOT / entrypoint))
    schema = parameter_schema(flow).model_dump_for_openapi()
    empty = {
        name: None
        for name, p in schema["properties"].items()
        if name not in schema.get("required", []) and "default" not in p
    }
    required = {name: "A-1" for name in schema.get("required", [])}  # preview's account
    errors = validate(empty | required, preprocess_schema(schema), preprocess=False)
    assert [error.message for error in errors] == []
    nulls = {name: p["default"] for name, p in schema["properties"].items() if "default" in p}
    assert None not in nulls.values(), f"null defaults refused by the form: {nulls}"


def test_an_empty_field_means_not_given_in_the_flow():
    """MISSING (the optional fields' default) and null both reach the flow as "not given"."""
    from pydantic import MISSING

    from flows.runtime import given

    assert [given(MISSING), given(None), given(["A"])] == [None, None, ["A"]]
    assert given({"_name": "MISSING", "_repr": "MISSING", "__module__": "pydantic_core"}) is None
