"""Security: private files, secrets nowhere but in the run's environment, pinned host
keys, SSH ingress only from the caller.

One 2-node local launch carries most checks; the SSH-ingress checks render the
seed YAML for AWS, GCP and Azure (`--dryrun`, nothing is created).
"""

from __future__ import annotations

import base64
import hashlib
import json
import re
import stat
import subprocess
import uuid
from pathlib import Path

import pytest
import yaml

from tests.e2e.helpers import SEED, skyterra, write_task
from tests.leaks import leftover_processes

pytestmark = pytest.mark.e2e

CLUSTER = "secure"


def _mode(path: Path) -> int:
    return stat.S_IMODE(path.stat().st_mode)


def _forms(value: str) -> list[bytes]:
    """The secret as it could sit in a file: raw, JSON-escaped, base64."""
    raw = value.encode()
    return [raw, json.dumps(value).encode()[1:-1], base64.b64encode(raw),
            base64.b64encode(raw.replace(b" ", b"x"))]


def _files_containing(root: Path, secrets: dict[str, str]) -> list[str]:
    found = []
    for path in sorted(root.rglob("*")):
        if path.is_symlink() or not path.is_file():
            continue
        try:
            data = path.read_bytes()
        except OSError:
            continue
        for name, value in secrets.items():
            if any(form in data for form in _forms(value)):
                found.append(f"{path.relative_to(root)}: {name}")
    return found


def test_secrets_stay_secret_files_are_private_and_host_keys_are_pinned(skyterra_home,
                                                                         tmp_path):
    secrets = {"YAML_TOKEN": f"yaml-{uuid.uuid4().hex} with spaces",
               "CLI_TOKEN": f"cli-{uuid.uuid4().hex}",
               "REQUIRED_TOKEN": f"req-{uuid.uuid4().hex}"}
    sha = {k: hashlib.sha256(v.encode()).hexdigest() for k, v in secrets.items()}
    show = "\n".join(f"printf '{{phase}}:%s:%s\\n' {k} \"$(printf '%s' \"${k}\" | sha256sum "
                     "| cut -d' ' -f1)\"" for k in secrets)
    workdir = tmp_path / "work"
    workdir.mkdir()
    (workdir / "hello.txt").write_text("hello\n")
    task = write_task(tmp_path, yaml.safe_dump({
        "name": "secure-job", "num_nodes": 2, "workdir": str(workdir),
        "envs": {"PLAIN": "not-a-secret"},
        "secrets": {"YAML_TOKEN": secrets["YAML_TOKEN"], "REQUIRED_TOKEN": None},
        "setup": show.format(phase="setup"),
        "run": show.format(phase="run") + "\ncat hello.txt\n"}))
    secret_flags = ["--secret", f"CLI_TOKEN={secrets['CLI_TOKEN']}",
                    "--secret", f"REQUIRED_TOKEN={secrets['REQUIRED_TOKEN']}"]
    outputs: dict[str, str] = {}

    def run(label: str, *args: str, check: bool = True) -> subprocess.CompletedProcess:
        result = skyterra(*args, check=check)
        outputs[label] = result.stdout + result.stderr
        return result

    # Dry runs print and render nothing secret either.
    run("dryrun", "launch", str(task), "--cloud", "local", "-c", CLUSTER, "--dryrun",
        *secret_flags)
    run("dryrun-json", "launch", str(task), "--cloud", "local", "-c", CLUSTER, "--dryrun",
        "--json", *secret_flags)
    for cloud in ("aws", "gcp"):
        run(f"dryrun-{cloud}", "launch", str(task), "--cloud", cloud, "-c", CLUSTER,
            "--dryrun", "--gpus", "L4:1", "--out", str(tmp_path / f"module-{cloud}"),
            *secret_flags)
        assert _files_containing(tmp_path / f"module-{cloud}", secrets) == []
    try:
        launched = run("launch", "launch", str(task), "--cloud", "local", "-c", CLUSTER, "-y",
                       *secret_flags)
        # The secrets did reach setup and run on both nodes, as environment variables.
        for label in ("(head, rank=0)", "(worker1, rank=1)"):
            for phase in ("setup", "run"):
                for key, digest in sha.items():
                    assert f"{label} {phase}:{key}:{digest}" in launched.stdout, (label, phase)

        run("status", "status")
        run("status-json", "status", "--json")
        run("queue", "queue", CLUSTER)
        run("queue-json", "queue", CLUSTER, "--json")
        run("logs", "logs", CLUSTER, "1", "--no-follow")
        run("logs-status", "logs", CLUSTER, "--status", check=False)
        executed = run("exec", "exec", CLUSTER, str(task), *secret_flags)
        assert f"(worker1, rank=1) run:CLI_TOKEN:{sha['CLI_TOKEN']}" in executed.stdout

        for label, text in outputs.items():
            for key, value in secrets.items():
                assert value not in text, f"secret {key} printed by `{label}`"

        # Nothing under SKYTERRA_HOME holds a secret: not the cluster record, the
        # tfvars, the state, job records, node homes, logs or scripts.
        assert _files_containing(skyterra_home, secrets) == []

        # Private files.
        cluster_dir = skyterra_home / "clusters" / CLUSTER
        assert _mode(skyterra_home) & 0o077 == 0
        assert _mode(cluster_dir) == 0o700
        private = [cluster_dir / "cluster.json", cluster_dir / "terraform.tfvars.json",
                   cluster_dir / "ssh" / "id_ed25519", cluster_dir / "ssh" / "known_hosts"]
        private += [p for p in (cluster_dir / "terraform.tfstate",
                                cluster_dir / "terraform.tfstate.backup",
                                cluster_dir / "plan.tfplan") if p.exists()]
        assert (cluster_dir / "terraform.tfstate").exists()
        for path in private:
            assert _mode(path) & 0o077 == 0, f"{path.name} is {oct(_mode(path))}"
        for directory in (cluster_dir / "ssh", cluster_dir / "jobs"):
            assert _mode(directory) & 0o077 == 0, f"{directory.name} is {oct(_mode(directory))}"
        for job in (cluster_dir / "jobs").glob("*.json"):
            assert _mode(job) & 0o077 == 0

        _host_keys_are_pinned(skyterra_home, task, workdir, tmp_path)
    finally:
        skyterra("destroy", CLUSTER, "-y", check=False)
    assert not (skyterra_home / "clusters" / CLUSTER).exists()
    assert leftover_processes(str(skyterra_home)) == []


def _host_keys_are_pinned(skyterra_home: Path, task: Path, workdir: Path,
                          tmp_path: Path) -> None:
    """Swap the head's pinned key behind skyterra's back: every way in refuses, clearly."""
    known_hosts = skyterra_home / "clusters" / CLUSTER / "ssh" / "known_hosts"
    original = known_hosts.read_text()
    record = json.loads((skyterra_home / "clusters" / CLUSTER / "cluster.json").read_text())
    head_ip = record["nodes"][0]["ip"]
    lines = original.splitlines(keepends=True)
    head = [i for i, line in enumerate(lines) if re.match(rf"(\[)?{re.escape(head_ip)}\b", line)]
    assert len(head) == 1, original
    other = tmp_path / "other_host_key"
    subprocess.run(["ssh-keygen", "-q", "-t", "ed25519", "-N", "", "-f", str(other)],
                   check=True)
    host, _ = lines[head[0]].split(" ", 1)
    lines[head[0]] = f"{host} {other.with_suffix('.pub').read_text().split(' ')[0]} " \
                     f"{other.with_suffix('.pub').read_text().split(' ')[1]}\n"
    known_hosts.write_text("".join(lines))

    no_workdir = write_task(tmp_path / "plain", "num_nodes: 2\nrun: echo should-not-run\n")
    attempts = {
        "exec (rsync first)": ["exec", CLUSTER, str(task), "--secret", "CLI_TOKEN=x",
                               "--secret", "REQUIRED_TOKEN=y"],
        "exec (ssh)": ["exec", CLUSTER, str(no_workdir)],
        "logs": ["logs", CLUSTER, "1", "--no-follow"],
        "launch again": ["launch", str(no_workdir), "-c", CLUSTER, "-y"],  # last: marks FAILED
    }
    for label, args in attempts.items():
        result = skyterra(*args, check=False)
        assert result.returncode != 0, label
        assert "should-not-run" not in result.stdout, label
        err = result.stderr
        assert "Traceback" not in err and "paramiko" not in err, (label, err)
        assert f"head ({head_ip}:" in err, (label, err)
        assert "different SSH host key" in err and str(known_hosts) in err, (label, err)
        assert "skyterra refuses to connect" in err, (label, err)
    # `launch again` must not have "repaired" the head by replacing it, and no job
    # started on the worker whose key was fine.
    assert (skyterra_home / "clusters" / CLUSTER / "nodes" / f"{CLUSTER}-0").is_dir()
    worker_logs = list((skyterra_home / "clusters" / CLUSTER / "nodes").glob(
        f"{CLUSTER}-1/home/.skyterra/jobs/*/log"))
    assert worker_logs and not any("should-not-run" in p.read_text() for p in worker_logs)

    # A line that is missing is refused too: no trust on a later "first" use.
    del lines[head[0]]
    known_hosts.write_text("".join(lines))
    skyterra("launch", str(no_workdir), "--cloud", "local", "-c", CLUSTER, "-y")  # re-pins
    assert original.splitlines()[head[0]] in known_hosts.read_text()
    lines_now = known_hosts.read_text().splitlines(keepends=True)
    known_hosts.write_text("".join(line for line in lines_now
                                   if not line.startswith(host + " ")))
    missing = skyterra("exec", CLUSTER, str(no_workdir), check=False)
    assert missing.returncode != 0 and "no pinned SSH host key" in missing.stderr
    assert "should-not-run" not in missing.stdout and "Traceback" not in missing.stderr

    # With the real key back, everything works again.
    known_hosts.write_text(original)
    ok = skyterra("exec", CLUSTER, str(no_workdir))
    assert "(head, rank=0) should-not-run" in ok.stdout


def _tf_without_egress(text: str) -> str:
    """HCL code minus comments, descriptions and `egress { ... }` blocks (outbound
    rules may be 0.0.0.0/0; prose may say "never 0.0.0.0/0")."""
    out, depth, skipping = [], 0, False
    for line in text.splitlines():
        if re.match(r"\s*(#|//|description\s*=)", line):
            continue
        if not skipping and re.match(r"\s*egress\s*\{", line):
            skipping, depth = True, 0
        if skipping:
            depth += line.count("{") - line.count("}")
            if depth <= 0:
                skipping = False
            continue
        out.append(line)
    return "\n".join(out)


@pytest.mark.parametrize("seed", ["train.yaml", "train-multinode.yaml"])
def test_ssh_ingress_is_the_callers_address_on_every_cloud(skyterra_home, ssh_cidrs, tmp_path,
                                                          seed):
    source = SEED / seed
    with_ports = tmp_path / "with-ports.yaml"
    config = yaml.safe_load(source.read_text())
    config["resources"]["ports"] = [8080]
    with_ports.write_text(yaml.safe_dump(config))
    rendered = 0
    for task in (source, with_ports):
        for cloud, gpus, key in (("aws", None, "ssh_cidrs"), ("gcp", None, "ssh_source_ranges"),
                                 ("azure", "A100:8", "ssh_source_ranges")):
            out = tmp_path / f"{task.stem}-{cloud}"
            args = ["launch", str(task), "--cloud", cloud, "-c", "ingress", "--dryrun",
                    "--out", str(out)] + (["--gpus", gpus] if gpus else [])
            skyterra(*args)
            tfvars = json.loads((out / "terraform.tfvars.json").read_text())
            assert tfvars[key] == ssh_cidrs, (cloud, tfvars[key])
            if task is with_ports:
                ports_from = tfvars.get("port_cidrs", tfvars.get("port_source_ranges"))
                assert ports_from in (None, ssh_cidrs), (cloud, ports_from)
            tfvars_text = (out / "terraform.tfvars.json").read_text()
            assert "0.0.0.0" not in tfvars_text and "::/0" not in tfvars_text
            tf = "\n".join(p.read_text() for p in sorted(out.glob("*.tf")))
            inbound = _tf_without_egress(tf)
            for wide in ("0.0.0.0/0", "::/0", '"Internet"', '"Any"'):
                assert wide not in inbound, (cloud, wide)
            assert f"var.{key}" in tf, cloud
            if cloud == "azure":
                sources = re.findall(r"source_address_prefix(?:es)?\s*=\s*(\S+)", tf)
                assert set(sources) <= {"var.ssh_source_ranges", "var.port_source_ranges",
                                        '"VirtualNetwork"'}, sources
            if cloud == "gcp":
                sources = re.findall(r"source_ranges\s*=\s*(\S+)", tf)
                assert set(sources) <= {"var.ssh_source_ranges", "var.port_source_ranges"}
            rendered += 1
    assert rendered == 6
