"""The bad-input table (tests/bad_inputs.py) offline: enough rows, each naming a field, and every row
the operator must refuse refused by the domain validation it runs (the integration test throws them
at a real API server, operator and plugin)."""

from __future__ import annotations

from kubectl_emqx.domain import spec, validation
from tests.bad_inputs import API, PLUGIN
from tests.unit.bad_crs import BAD_CRS

# Refused by Kubernetes when the operator applies what it built (the CRD keeps these fields opaque),
# or by what only the operator sees (a Secret's content).
BEYOND_VALIDATE = ("a pod label Kubernetes refuses (the CRD keeps labels opaque)",
                   "a probe Kubernetes refuses (opaque in the CRD)",
                   "an API key from a Secret that does not exist")


def test_the_table_holds_at_least_sixty_distinct_rows_each_naming_a_field() -> None:
    rows = API + PLUGIN
    assert len(rows) + len(BAD_CRS) >= 60
    assert len({row.what for row in rows}) == len(rows)
    for row in rows:
        assert row.field and row.refused_by in ("apiserver", "operator", "plugin"), row.what
        assert (row.body is not None) == (row.refused_by != "plugin") == (not row.argv), row.what


def test_rows_for_the_operator_are_refused_by_its_validation_naming_the_field() -> None:
    for row in API:
        if row.refused_by != "operator" or row.what in BEYOND_VALIDATE:
            continue
        assert row.body is not None
        body = {**row.body, "metadata": {"name": "bad", "namespace": "ns"}}
        problems = [str(p) for p in validation.validate(spec.normalize(body))]
        assert any(row.field in problem for problem in problems), (row.what, problems)
