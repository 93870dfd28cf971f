"""Our corpus of SkyPilot task files: each is accepted with the expected pick, or refused
with a one-paragraph message (tests/fixtures/skypilot/expected.yaml says which).

Runs `--dryrun` in process (skyterra.api.dryrun_dag: parse, optimize, render), so the
whole corpus takes about a second. The rendered modules are validated by
tests/terraform/test_corpus_modules.py.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest
import yaml

from skyterra import api
from skyterra.dag import Dag
from skyterra.errors import SkyterraError

CORPUS = Path(__file__).resolve().parents[1] / "fixtures" / "skypilot"
EXPECTED: list[dict[str, Any]] = yaml.safe_load((CORPUS / "expected.yaml").read_text())
CLOUDS = ["aws", "gcp", "azure"]
CLUSTER = "corpus"


def entry_id(entry: dict[str, Any]) -> str:
    extra = "+env" if entry.get("env") or entry.get("secrets") else ""
    return entry["file"].removesuffix(".yaml") + extra


def dryrun(entry: dict[str, Any], out_dir: Path) -> list[api.LaunchResult]:
    """`skyterra launch FILE --dryrun [--env K=V] [--secret K=V]` in process."""
    dag = Dag.from_yaml(CORPUS / entry["file"])
    for task in dag.tasks:
        if entry.get("env"):
            task.update_envs(entry["env"])
        if entry.get("secrets"):
            task.update_secrets(entry["secrets"])
    return api.dryrun_dag(dag, CLUSTER, CLOUDS, out_dir)


def picks(entry: dict[str, Any]) -> list[dict[str, Any]]:
    return entry.get("tasks") or [{"pick": entry["pick"], "cluster": ""}]


def check_pick(result: api.LaunchResult, expected: dict[str, Any]) -> None:
    cloud, instance_type, *place = expected["pick"]
    chosen = result.candidate
    assert (chosen.cloud, chosen.instance_type) == (cloud, instance_type), chosen.describe()
    if place:
        assert chosen.region == place[0], chosen.describe()
    if len(place) > 1:
        assert chosen.zone == place[1], chosen.describe()
    assert result.cluster_name == CLUSTER + expected["cluster"]
    assert (result.rendered_dir / "terraform.tfvars.json").is_file()


@pytest.fixture(autouse=True)
def _home(tmp_path, monkeypatch):
    monkeypatch.setenv("SKYTERRA_HOME", str(tmp_path / "home"))
    monkeypatch.delenv("SKYTERRA_CATALOG_DIR", raising=False)


def test_the_corpus_covers_sixty_files_and_every_file_has_an_expectation():
    files = {p.name for p in CORPUS.glob("*.yaml")} - {"expected.yaml"}
    assert len(files) >= 60
    assert files == {entry["file"] for entry in EXPECTED}


@pytest.mark.parametrize("entry", EXPECTED, ids=entry_id)
def test_dryrun_of_each_corpus_file(entry, tmp_path):
    if entry.get("outcome") == "refused":
        with pytest.raises(SkyterraError) as info:
            dryrun(entry, tmp_path / "out")
        message = str(info.value)
        assert "\n" not in message and "Traceback" not in message, message
        assert message.startswith(str(CORPUS / entry["file"])), message  # names the file
        for fragment in entry["message"]:
            assert fragment in message, message
        return
    results = dryrun(entry, tmp_path / "out")
    expected = picks(entry)
    assert len(results) == len(expected)
    assert len({r.rendered_dir for r in results}) == len(results)  # one module per task
    for result, one in zip(results, expected):
        check_pick(result, one)
    notes = " ".join(results[0].notes)
    for fragment in entry.get("notes", []):
        assert fragment in notes, notes


def test_entries_owned_by_other_issues_are_refusals_to_flip_later():
    owned = [e for e in EXPECTED if "owner_issue" in e]
    assert {e["owner_issue"] for e in owned} <= {13, 14, 15, 16, 17}  # shrinks as they land
    assert all(e["outcome"] == "refused" for e in owned)
