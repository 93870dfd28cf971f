"""templates/local as a normal user: a port above 1024 and the invoking user as login.

Needs root (to switch user) and an unprivileged account with a shell on the machine;
otherwise skipped with the reason.
"""

from __future__ import annotations

import json
import os
import pwd
import random
import shutil
import subprocess
import tempfile
from pathlib import Path

import pytest

from tests.leaks import leftover_processes

TEMPLATE = Path(__file__).resolve().parents[2] / "templates" / "local"
pytestmark = pytest.mark.terraform


def _unprivileged_user() -> pwd.struct_passwd | None:
    for entry in pwd.getpwall():
        if 1000 <= entry.pw_uid < 60000 and entry.pw_shell.endswith("sh"):
            return entry
    return None


def _as(user: str, *argv: str, cwd: Path, check: bool = True) -> subprocess.CompletedProcess:
    env = ["env", "-i", f"HOME={cwd}", "PATH=/usr/local/bin:/usr/bin:/bin:/usr/sbin:/sbin",
           "CHECKPOINT_DISABLE=1", "TF_CLI_CONFIG_FILE=/dev/null", "TF_IN_AUTOMATION=1"]
    done = subprocess.run(["runuser", "-u", user, "--", *env, *argv], cwd=cwd, text=True,
                          capture_output=True, timeout=120, check=False)
    if check:
        assert done.returncode == 0, f"{argv}: {done.stdout}\n{done.stderr}"
    return done


def test_nodes_run_as_a_normal_user_on_a_high_port():
    user = _unprivileged_user()
    if os.geteuid() != 0 or user is None or not shutil.which("runuser"):
        pytest.skip("needs root and an unprivileged account with a shell to switch to")
    if not shutil.which("terraform") or not shutil.which("sshd", path="/usr/sbin:/usr/bin"):
        pytest.skip("needs the terraform binary and sshd on PATH")
    work = Path(tempfile.mkdtemp(prefix="skyterra-nonroot-"))
    os.chmod(work, 0o755)
    module = work / "module"
    shutil.copytree(TEMPLATE, module)
    key = work / "id_ed25519"
    for path in (work, module, *module.rglob("*")):
        os.chown(path, user.pw_uid, user.pw_gid)
    name = user.pw_name
    applied = False
    try:
        _as(name, "ssh-keygen", "-q", "-t", "ed25519", "-N", "", "-f", str(key), cwd=work)
        subnet = f"127.89.{random.randint(1, 250)}.0/24"
        tfvars = {"cluster_name": "plain", "num_nodes": 2, "subnet_cidr": subnet,
                  "ssh_port": 2222, "ssh_user": name,
                  "ssh_public_key": key.with_suffix(".pub").read_text().strip(),
                  "ssh_private_key_path": str(key), "nodes_dir": str(work / "nodes"),
                  "node_path": "/usr/local/bin:/usr/bin:/bin"}
        (module / "terraform.tfvars.json").write_text(json.dumps(tfvars))
        os.chown(module / "terraform.tfvars.json", user.pw_uid, user.pw_gid)
        _as(name, "terraform", "init", "-input=false", "-no-color", cwd=module)
        applied = True
        _as(name, "terraform", "apply", "-auto-approve", "-input=false", "-no-color", cwd=module)
        outputs = json.loads(_as(name, "terraform", "output", "-json", cwd=module).stdout)
        assert outputs["ssh_user"]["value"] == name and outputs["ssh_port"]["value"] == 2222
        for ip in outputs["node_ips"]["value"]:
            who = _as(name, "ssh", "-i", str(key), "-p", "2222", "-o", "BatchMode=yes",
                      "-o", "StrictHostKeyChecking=no", "-o", "UserKnownHostsFile=/dev/null",
                      f"{name}@{ip}", "id -un; echo $HOME", cwd=work)
            login, home = who.stdout.split()
            assert login == name and home.startswith(str(work / "nodes"))
        sshd_owners = {Path(f"/proc/{line.split(':')[0]}").stat().st_uid
                       for line in leftover_processes(str(work)) if "sshd" in line}
        assert sshd_owners == {user.pw_uid}  # nothing of the cluster runs as root
    finally:
        if applied:
            _as(name, "terraform", "destroy", "-auto-approve", "-input=false", "-no-color",
                cwd=module, check=False)
        leaks = leftover_processes(str(work))
        shutil.rmtree(work, ignore_errors=True)
    assert leaks == []
