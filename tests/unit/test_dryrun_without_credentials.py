"""A dry run needs no account: with no credentials for any cloud it chooses among all of
them and says so; a launch still refuses."""

from __future__ import annotations

import pytest

from skyterra import planning
from skyterra.clouds import all_clouds
from skyterra.clouds.base import CredentialReport
from skyterra.errors import TaskError
from skyterra.task import Task


@pytest.fixture
def no_credentials(monkeypatch):
    monkeypatch.delenv("SKYTERRA_CLOUDS", raising=False)
    for cloud in all_clouds():
        monkeypatch.setattr(type(cloud), "check_credentials",
                            lambda self, *a, **k: CredentialReport(self.name, False, "none"))
        monkeypatch.setattr(type(cloud), "has_local_credentials", lambda self: False)


def test_a_dry_run_with_no_credentials_considers_every_cloud(no_credentials, skyterra_home,
                                                             tmp_path):
    task = Task.from_yaml_config({"run": "x", "resources": {"accelerators": "A100:8"}},
                                 base_dir=tmp_path)
    auto = [c.name for c in all_clouds() if c.auto_enabled]
    assert planning.clouds_for(task, None, dry=True) == auto
    result = planning.dryrun(task, "dry", out_dir=tmp_path / "out")
    assert any("the dry run chose among all clouds" in n for n in result.notes), result.notes
    with pytest.raises(TaskError, match="no cloud has credentials here"):
        planning.clouds_for(task, None)


@pytest.fixture
def bare_machine(monkeypatch, tmp_path):
    """No credential variable and an empty home: only what a test puts there exists."""
    import os
    for name in list(os.environ):
        if name.startswith(("AWS_", "GOOGLE_", "CLOUDSDK_", "ARM_", "AZURE_")):
            monkeypatch.delenv(name)
    monkeypatch.setenv("HOME", str(tmp_path / "home"))
    return tmp_path / "home"


def test_a_dry_run_picks_clouds_from_local_credentials_without_asking_an_sdk(
        bare_machine, monkeypatch, skyterra_home, tmp_path):
    # An SDK's full lookup may ask the metadata service (a network call): a dry run never
    # does, so check_credentials must not be reached at all.
    monkeypatch.delenv("SKYTERRA_CLOUDS", raising=False)
    for cloud in all_clouds():
        monkeypatch.setattr(type(cloud), "check_credentials",
                            lambda self, *a, **k: pytest.fail("an SDK lookup in a dry run"))
    task = Task.from_yaml_config({"run": "x", "resources": {"cpus": "2+"}}, base_dir=tmp_path)
    auto = [c.name for c in all_clouds() if c.auto_enabled]
    assert planning.clouds_for(task, None, dry=True) == auto      # nothing here: all of them
    monkeypatch.setenv("AWS_PROFILE", "team")
    assert planning.clouds_for(task, None, dry=True) == ["aws"]
    monkeypatch.delenv("AWS_PROFILE")
    adc = bare_machine / ".config" / "gcloud" / "application_default_credentials.json"
    adc.parent.mkdir(parents=True)
    adc.write_text("{}")
    (bare_machine / ".azure").mkdir()
    (bare_machine / ".azure" / "azureProfile.json").write_text("{}")
    assert planning.clouds_for(task, None, dry=True) == ["gcp", "azure"]
    result = planning.dryrun(task, "dry", out_dir=tmp_path / "out")
    assert result.candidate.cloud in ("gcp", "azure")
    assert not any("chose among all clouds" in n for n in result.notes), result.notes
