"""A stateful fuzz run from the OpenAPI document (issue 9): events and items generated from the
schema are ingested, folded by the real worker stages, trained on, then queried and erased.
Every response is checked against the schema, and none is a 5xx.

The request bodies come from the document (`schemathesis` strategies per operation), so the
run depends on the document saying what a valid event is (the event type enum, the bounds).
FUZZ_EXAMPLES raises the number of runs (the report's numbers came from FUZZ_EXAMPLES=200).
"""

from __future__ import annotations

import os
from collections import Counter
from typing import Any
from urllib.parse import quote

import schemathesis
from hypothesis import HealthCheck, settings
from hypothesis import strategies as st
from hypothesis.stateful import (
    RuleBasedStateMachine,
    initialize,
    invariant,
    precondition,
    rule,
    run_state_machine_as_test,
)
from schemathesis.specs.openapi.checks import positive_data_acceptance

from app.config import load_settings
from app.main import create_app
from app.model.cache import ModelCache
from app.model.trainer import Trainer
from app.profile.service import apply_pending
from tests.conftest import empty_tables

schema = schemathesis.openapi.from_dict(create_app(load_settings(api_keys={})).openapi())
EVENTS = schema["/v1/events"]["POST"]
ITEMS = schema["/v1/items"]["POST"]
ITEM = schema["/v1/items/{item_id}"]["PUT"]
CLUSTER = schema["/v1/users/{user_id}/cluster"]["GET"]
HISTORY = schema["/v1/users/{user_id}/cluster/history"]["GET"]
ERASE = schema["/v1/users/{user_id}"]["DELETE"]
STATS = schema["/v1/stats"]["GET"]
QUARANTINE = schema["/v1/quarantine"]["GET"]
EXAMPLES = int(os.environ.get("FUZZ_EXAMPLES", "12"))


def test_events_from_the_schema_are_accepted_folded_and_queried(
    db, make_client, make_settings, embedder
):
    tally: Counter[str] = Counter()
    worker_settings = make_settings(clusters=2, min_users_first_fit=2, batch_size=64)
    client = make_client(max_events_per_request=20)

    class Machine(RuleBasedStateMachine):
        def __init__(self) -> None:
            super().__init__()
            self.users: set[str] = set()
            self.trainer = Trainer(
                worker_settings, embedding_model=embedder.model_id, dim=embedder.dim
            )

        @initialize()
        def fresh_database(self) -> None:
            empty_tables(db)
            client.app.state.models = ModelCache()  # cached centres of a version number now gone

        def call(self, case: Any) -> Any:
            path = case.operation.path
            for name, value in (case.path_parameters or {}).items():
                path = path.replace("{" + name + "}", quote(str(value), safe=""))
            body = case.body if isinstance(case.body, dict) else None
            response = client.request(case.method, path, json=body, params=case.query)
            tally["requests"] += 1
            tally[f"status {response.status_code}"] += 1
            assert response.status_code < 500, response.text[:500]
            case.validate_response(response, excluded_checks=[positive_data_acceptance])
            return response

        @rule(case=EVENTS.as_strategy())
        def post_events(self, case: Any) -> None:
            response = self.call(case)
            if response.status_code == 202 and response.json()["accepted"]:
                tally["cases with an accepted event"] += 1
                tally["events accepted"] += response.json()["accepted"]
                self.users |= {e["user_id"] for e in case.body["events"]}
                # Events that name an item wait for its text: give them one.
                for item_id in {e.get("item_id") for e in case.body["events"]} - {None}:
                    put = ITEM.Case(path_parameters={"item_id": item_id}, body={"text": item_id})
                    assert self.call(put).status_code == 200

        @rule(case=ITEMS.as_strategy())
        def post_items(self, case: Any) -> None:
            self.call(case)

        @rule()
        def work(self) -> None:
            """One profile step and one train step, as the worker loop runs them."""
            tally["events folded"] += apply_pending(db, embedder, worker_settings).applied
            tally["profiles trained"] += self.trainer.step(db).rows

        @precondition(lambda self: self.users)
        @rule(data=st.data())
        def query_user(self, data: st.DataObject) -> None:
            self.work()  # what the user's events led to, folded and trained on
            user = data.draw(st.sampled_from(sorted(self.users)))
            for operation in (CLUSTER, HISTORY):
                response = self.call(operation.Case(path_parameters={"user_id": user}))
                assert response.status_code == 200, response.text[:300]
                assert response.json()["user_id"] == user
                if response.json().get("status") == "assigned":
                    tally["assigned answers"] += 1

        @precondition(lambda self: self.users)
        @rule(data=st.data())
        def erase_user(self, data: st.DataObject) -> None:
            user = data.draw(st.sampled_from(sorted(self.users)))
            assert self.call(ERASE.Case(path_parameters={"user_id": user})).status_code == 200
            self.users.discard(user)
            gone = self.call(CLUSTER.Case(path_parameters={"user_id": user}))
            assert gone.status_code == 404

        @invariant()
        def counts_add_up(self) -> None:
            events = self.call(STATS.Case()).json()["events"]
            assert events["received"] == (
                events["applied"] + events["pending"] + events["quarantined"]
            )
            assert self.call(QUARANTINE.Case()).json()["events"] == []  # valid events fold

    run_state_machine_as_test(
        Machine,
        settings=settings(
            max_examples=EXAMPLES,
            stateful_step_count=10,
            deadline=None,
            derandomize=True,
            suppress_health_check=list(HealthCheck),
        ),
    )
    print(dict(tally))  # shown with -s: the numbers the report quotes
    assert tally["cases with an accepted event"] > 0 and tally["events folded"] > 0
    assert tally["assigned answers"] > 0  # queried after a model placed them
    assert not any(key.startswith("status 5") for key in tally)
