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
