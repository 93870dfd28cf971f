"""templates/local with the real terraform binary: nodes are real sshd processes.

Every test works on its own copy of the module with its own terraform.tfvars.json,
a random loopback subnet (127.88.<random>.0/24) and its own nodes_dir. The
`local_cluster` fixture destroys whatever the test created and then asserts that
no process of the test's nodes is left (no sshd whose command line names the
nodes_dir, no process carrying a SKYTERRA_NODE_ID marker below it).
"""

from __future__ import annotations

import getpass
import json
import os
import random
import shutil
import socket
import subprocess
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.leaks import mounts_under

pytestmark = pytest.mark.terraform

MODULE_DIR = Path(__file__).resolve().parents[2] / "templates" / "local"
IS_ROOT = os.geteuid() == 0
SSH_PORT = 22 if IS_ROOT else 2222

if not (shutil.which("terraform") and shutil.which("ssh") and shutil.which("rsync")):
    pytest.skip("terraform, ssh and rsync are needed", allow_module_level=True)
if not any(Path(p).is_file() for p in ("/usr/sbin/sshd", "/usr/local/sbin/sshd")):
    pytest.skip("sshd (openssh-server) is needed", allow_module_level=True)


# --------------------------------------------------------------------------- helpers


def _proc_entries(name: str) -> Iterator[tuple[int, bytes]]:
    """(pid, content of /proc/<pid>/<name>) for every live, non-zombie process."""
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit():
            continue
        try:
            stat = (entry / "stat").read_text()
            if stat.rpartition(")")[2].split()[0] == "Z":
                continue
            yield int(entry.name), (entry / name).read_bytes()
        except OSError:
            continue


def leftover_processes(nodes_dir: Path) -> list[int]:
    """Processes that belong to nodes under nodes_dir (sshd by cmdline, anything by marker)."""
    needle = str(nodes_dir).encode() + b"/"
    found = {pid for pid, cmdline in _proc_entries("cmdline") if needle in cmdline}
    marker = b"SKYTERRA_NODE_ID=" + needle
    for pid, environ in _proc_entries("environ"):
        if any(var.startswith(marker) for var in environ.split(b"\0")):
            found.add(pid)
    return sorted(found)


def host_pid(node_dir: str, node_pid: int) -> int | None:
    """The host's pid of a node's process that the node calls `node_pid`.

    As root a node has its own PID namespace, so a pid printed on the node is
    the node's; the process's NSpid line lists its pids from the host's down.
    """
    marker = f"SKYTERRA_NODE_ID={node_dir}".encode()
    for pid, environ in _proc_entries("environ"):
        if marker not in environ.split(b"\0"):
            continue
        try:
            status = Path(f"/proc/{pid}/status").read_text()
        except OSError:
            continue
        nspid = [line.split()[1:] for line in status.splitlines() if line.startswith("NSpid:")]
        if nspid and int(nspid[0][-1]) == node_pid:
            return pid
    return None


def process_alive(pid: int) -> bool:
    try:
        stat = Path(f"/proc/{pid}/stat").read_text()
    except OSError:
        return False
    return stat.rpartition(")")[2].split()[0] != "Z"


def address_free(ip: str, port: int) -> bool:
    with socket.socket() as s:
        s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        try:
            s.bind((ip, port))
        except OSError:
            return False
    return True


def free_subnet(hosts: int = 4) -> str:
    """A random 127.88.X.0/24 whose first node addresses have SSH_PORT free."""
    for _ in range(50):
        third = random.randint(0, 255)
        if all(address_free(f"127.88.{third}.{k + 2}", SSH_PORT) for k in range(hosts)):
            return f"127.88.{third}.0/24"
    raise RuntimeError("no free 127.88.X.0/24 subnet found")


def flat(text: str) -> str:
    """Terraform wraps diagnostics at ~78 columns: compare with whitespace collapsed."""
    return " ".join(text.split())


class LocalCluster:
    """One copy of templates/local in a tmp dir, driven with the terraform CLI."""

    def __init__(self, root: Path, env: dict[str, str], key: Path, name: str, **tfvars):
        self.root = root
        self.module = root / "module"
        shutil.copytree(MODULE_DIR, self.module)
        self.nodes_dir = root / "nodes"
        self.key = key
        self.env = env
        self.known_hosts = root / "known_hosts"
        self.tfvars = {
            "cluster_name": name,
            "num_nodes": 2,
            "subnet_cidr": free_subnet(),
            "ssh_port": SSH_PORT,
            "ssh_user": getpass.getuser(),
            "ssh_public_key": key.with_suffix(".pub").read_text(),
            "ssh_private_key_path": str(key),
            "nodes_dir": str(self.nodes_dir),
            "node_path": os.environ["PATH"],
            "node_env": {"GLOO_SOCKET_IFNAME": "lo", "SKYTERRA_TEST_VALUE": "a b'\"$x `id`"},
        }
        self.tfvars.update(tfvars)
        self.write_tfvars()
        self.tf("init", check=True)

    def write_tfvars(self) -> None:
        text = json.dumps(self.tfvars, indent=2, sort_keys=True)
        (self.module / "terraform.tfvars.json").write_text(text)

    def set(self, **tfvars) -> None:
        self.tfvars.update(tfvars)
        self.write_tfvars()

    def tf(self, *args: str, check: bool = False) -> subprocess.CompletedProcess[str]:
        proc = subprocess.run(
            ["terraform", *args, *(() if args[0] == "output" else ("-input=false",)), "-no-color"],
            cwd=self.module,
            env=self.env,
            check=False,
            capture_output=True,
            text=True,
            timeout=120,
        )
        if check and proc.returncode != 0:
            raise AssertionError(
                f"terraform {' '.join(args)} exited {proc.returncode}\n"
                f"stdout:\n{proc.stdout}\nstderr:\n{proc.stderr}"
            )
        return proc

    def apply(self, check: bool = True) -> subprocess.CompletedProcess[str]:
        return self.tf("apply", "-auto-approve", check=check)

    def destroy(self, check: bool = True) -> subprocess.CompletedProcess[str]:
        return self.tf("destroy", "-auto-approve", check=check)

    def outputs(self) -> dict:
        proc = self.tf("output", "-json", check=True)
        return {k: v["value"] for k, v in json.loads(proc.stdout).items()}

    def sshd_pids(self) -> list[int]:
        return [int((Path(d) / "sshd.pid").read_text()) for d in self.outputs()["node_dirs"]]

    def ssh_args(self) -> list[str]:
        dirs = self.outputs()["node_dirs"]
        self.known_hosts.write_text(
            "".join((Path(d) / "known_hosts_line").read_text() for d in dirs)
        )
        return [
            "ssh", "-F", "/dev/null", "-i", str(self.key), "-p", str(self.tfvars["ssh_port"]),
            "-o", "IdentitiesOnly=yes", "-o", "BatchMode=yes", "-o", "ConnectTimeout=5",
            "-o", "StrictHostKeyChecking=yes", "-o", f"UserKnownHostsFile={self.known_hosts}",
            "-o", "GlobalKnownHostsFile=/dev/null", "-o", "LogLevel=ERROR",
        ]  # fmt: skip

    def ssh(self, ip: str, command: str) -> str:
        proc = subprocess.run(
            [*self.ssh_args(), f"{self.tfvars['ssh_user']}@{ip}", command],
            capture_output=True, text=True, timeout=30, stdin=subprocess.DEVNULL, check=False,
        )  # fmt: skip
        assert proc.returncode == 0, f"ssh {ip} {command!r}: {proc.returncode}\n{proc.stderr}"
        return proc.stdout


# --------------------------------------------------------------------------- fixtures


@pytest.fixture(scope="session")
def tf_env(tmp_path_factory: pytest.TempPathFactory) -> dict[str, str]:
    cli_config = tmp_path_factory.mktemp("tfrc") / "terraformrc"
    cli_config.write_text("")
    return {
        **os.environ,
        "TF_CLI_CONFIG_FILE": str(cli_config),
        "TF_IN_AUTOMATION": "1",
        "CHECKPOINT_DISABLE": "1",
    }


@pytest.fixture(scope="session")
def cluster_key(tmp_path_factory: pytest.TempPathFactory) -> Path:
    key = tmp_path_factory.mktemp("key") / "id_ed25519"
    subprocess.run(
        ["ssh-keygen", "-q", "-t", "ed25519", "-N", "", "-C", "skyterra-test", "-f", str(key)],
        check=True,
    )
    return key


@pytest.fixture
def local_cluster(tmp_path: Path, tf_env: dict[str, str], cluster_key: Path):
    """Factory of LocalClusters; destroys them all and checks nothing is left running."""
    made: list[LocalCluster] = []

    def make(**tfvars) -> LocalCluster:
        name = tfvars.pop("cluster_name", f"t{random.randrange(16**6):06x}")
        cluster = LocalCluster(tmp_path / f"c{len(made)}", tf_env, cluster_key, name, **tfvars)
        made.append(cluster)
        return cluster

    yield make

    problems = []
    for cluster in made:
        proc = cluster.destroy(check=False)
        if proc.returncode != 0:
            problems.append(f"destroy failed:\n{proc.stderr}")
        left = leftover_processes(cluster.nodes_dir)
        if left:
            problems.append(f"processes left for {cluster.nodes_dir}: {left}")
            for pid in left:  # do not leak them into other tests
                try:
                    os.kill(pid, 9)
                except OSError:
                    pass
        mounts = mounts_under(str(cluster.root))
        if mounts:  # a node mounts only inside its own namespace
            problems.append(f"mounts left on the host: {mounts}")
        if cluster.nodes_dir.exists() and any(cluster.nodes_dir.iterdir()):
            problems.append(f"node dirs left: {sorted(os.listdir(cluster.nodes_dir))}")
    assert not problems, "\n".join(problems)


# --------------------------------------------------------------------------- tests


def test_two_nodes_come_up_with_their_own_homes_and_go_away(local_cluster):
    cluster = local_cluster()
    cluster.apply()

    out = cluster.outputs()
    name = cluster.tfvars["cluster_name"]
    prefix = cluster.tfvars["subnet_cidr"].rsplit(".", 1)[0]
    assert out["node_ips"] == [f"{prefix}.2", f"{prefix}.3"]
    assert out["node_private_ips"] == out["node_ips"]
    assert out["node_names"] == [f"{name}-head", f"{name}-worker1"]
    assert out["instance_ids"] == [f"{name}-0", f"{name}-1"]
    assert out["node_dirs"] == [str(cluster.nodes_dir / f"{name}-{k}") for k in range(2)]
    assert out["ssh_user"] == getpass.getuser()
    assert out["ssh_port"] == SSH_PORT
    assert out["ssh_private_key_path"] == str(cluster.key)
    assert out["zone"] == "local-a"
    assert out["nodes_dir"] == str(cluster.nodes_dir)

    homes = []
    for ip, node_dir in zip(out["node_ips"], out["node_dirs"]):
        lines = cluster.ssh(
            ip,
            'echo $HOME; pwd; echo $SKYTERRA_NODE_ID; echo ~; echo "$PATH"; '
            'echo "$GLOO_SOCKET_IFNAME"; echo "$SKYTERRA_TEST_VALUE"',
        ).splitlines()
        home = f"{node_dir}/home"
        assert lines == [
            home, home, node_dir, home, f"{cluster.module}/bin:{os.environ['PATH']}", "lo",
            "a b'\"$x `id`",
        ]  # fmt: skip
        homes.append(home)
    assert len(set(homes)) == 2

    # rsync host:sky_workdir/ lands in <node home>/sky_workdir
    src = cluster.root / "workdir"
    (src / "pkg").mkdir(parents=True)
    (src / "pkg" / "train.py").write_text("print('hi')\n")
    worker_ip = out["node_ips"][1]
    ssh_cmd = " ".join(cluster.ssh_args())
    subprocess.run(
        ["rsync", "-a", "-e", ssh_cmd, f"{src}/", f"{cluster.tfvars['ssh_user']}@{worker_ip}:sky_workdir/"],
        check=True, capture_output=True, timeout=30,
    )  # fmt: skip
    synced = Path(out["node_dirs"][1]) / "home" / "sky_workdir" / "pkg" / "train.py"
    assert synced.read_text() == "print('hi')\n"
    assert cluster.ssh(worker_ip, "cat sky_workdir/pkg/train.py") == "print('hi')\n"

    # sftp starts in the node home too
    sftp_args = ["-P" if a == "-p" else a for a in cluster.ssh_args()[1:]]  # sftp spells it -P
    sftp = subprocess.run(
        ["sftp", "-b", "-", *sftp_args, f"{cluster.tfvars['ssh_user']}@{worker_ip}"],
        input="pwd\n", capture_output=True, text=True, timeout=30, check=False,
    )  # fmt: skip
    assert sftp.returncode == 0, sftp.stderr
    assert f"Remote working directory: {homes[1]}" in sftp.stdout

    # same tfvars again: nothing to do
    assert cluster.tf("plan", "-detailed-exitcode").returncode == 0

    cluster.destroy()
    assert leftover_processes(cluster.nodes_dir) == []
    assert not any(Path(d).exists() for d in out["node_dirs"])
    # destroying twice works
    cluster.destroy()


def test_destroy_kills_jobs_detached_on_a_node(local_cluster):
    cluster = local_cluster(num_nodes=1)
    cluster.apply()
    ip = cluster.outputs()["node_ips"][0]
    node_dir = cluster.outputs()["node_dirs"][0]
    out = cluster.ssh(ip, "setsid nohup sleep 1000 >/dev/null 2>&1 < /dev/null & echo $!")
    node_pid = int(out.split()[0])
    deadline = time.monotonic() + 5
    while True:
        pid = host_pid(node_dir, node_pid)
        if pid and process_alive(pid) and b"sleep" in Path(f"/proc/{pid}/cmdline").read_bytes():
            break
        assert time.monotonic() < deadline, "the detached job did not start"
        time.sleep(0.05)

    cluster.destroy()
    assert not process_alive(pid)
    assert leftover_processes(cluster.nodes_dir) == []


def test_destroy_sends_jobs_term_while_the_node_is_still_up(local_cluster):
    """A job that handles TERM (a checkpoint, say) gets to run its handler before the node goes.

    The handler reports over loopback: the node's own files vanish with it.
    """
    cluster = local_cluster(num_nodes=1)
    cluster.apply()
    ip = cluster.outputs()["node_ips"][0]
    with socket.socket() as listener:
        listener.bind(("127.0.0.1", 0))
        listener.listen()
        listener.settimeout(30)
        port = listener.getsockname()[1]
        job = (f"trap 'sleep 0.3; echo saved >/dev/tcp/127.0.0.1/{port}; exit 0' TERM; "
               "echo started; while :; do sleep 0.05; done")
        cluster.ssh(ip, f"setsid nohup bash -c {json.dumps(job)} >job.log 2>&1 </dev/null &"
                    " until grep -q started job.log 2>/dev/null; do sleep 0.05; done")
        cluster.destroy()
        conn, _ = listener.accept()
        with conn:
            assert conn.makefile().read().strip() == "saved"
    assert leftover_processes(cluster.nodes_dir) == []


def test_unavailable_zone_fails_with_a_capacity_error_and_leaves_nothing(local_cluster):
    cluster = local_cluster(zone="local-b", unavailable_zones=["local-b"])
    proc = cluster.apply(check=False)
    assert proc.returncode != 0
    assert "InsufficientInstanceCapacity" in proc.stderr
    assert "zone local-b" in flat(proc.stderr)
    assert leftover_processes(cluster.nodes_dir) == []
    assert not cluster.nodes_dir.exists() or not any(cluster.nodes_dir.iterdir())
    cluster.destroy()  # the tainted resources go away without error


def test_bind_failure_fails_clearly_and_cleans_up_the_node(local_cluster):
    cluster = local_cluster()
    prefix = cluster.tfvars["subnet_cidr"].rsplit(".", 1)[0]
    busy_ip = f"{prefix}.3"  # node 1
    with socket.socket() as blocker:
        # SO_REUSEADDR: a TIME_WAIT connection must not make the blocker itself fail
        blocker.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        blocker.bind((busy_ip, SSH_PORT))
        blocker.listen()
        proc = cluster.apply(check=False)
    assert proc.returncode != 0
    err = flat(proc.stderr)
    assert f"{busy_ip}:{SSH_PORT}" in err
    assert "Address already in use" in err
    name = cluster.tfvars["cluster_name"]
    assert not (cluster.nodes_dir / f"{name}-1").exists()
    left = leftover_processes(cluster.nodes_dir)
    assert all(b"-1/" not in Path(f"/proc/{p}/cmdline").read_bytes() for p in left)
    cluster.destroy()  # node 0 came up; destroy removes it, the fixture checks
    assert leftover_processes(cluster.nodes_dir) == []


def test_scaling_from_two_to_three_nodes_keeps_the_first_two(local_cluster):
    cluster = local_cluster()
    cluster.apply()
    before = cluster.sshd_pids()

    cluster.set(num_nodes=3)
    proc = cluster.apply()
    assert "2 added, 0 changed, 0 destroyed" in proc.stdout  # node 2 and its power state
    after = cluster.sshd_pids()
    assert after[:2] == before
    assert len(after) == 3 and all(process_alive(p) for p in after)
    ip = cluster.outputs()["node_ips"][2]
    assert cluster.ssh(ip, "echo $SKYTERRA_NODE_ID").strip() == cluster.outputs()["node_dirs"][2]


BAD_VALUES = [
    ({"cluster_name": "Bad_Name"}, "cluster_name"),
    ({"num_nodes": 0}, "num_nodes"),
    ({"subnet_cidr": "10.0.0.0/24"}, "127.0.0.0/8"),
    ({"subnet_cidr": "127.88.1.0/30", "num_nodes": 2}, "too small"),
    ({"nodes_dir": "relative/dir"}, "absolute"),
    ({"nodes_dir": "/tmp/with space"}, "absolute"),
    ({"node_env": {"HOME": "/x"}}, "node_env"),
    ({"ssh_public_key": 'command="x" ssh-ed25519 AAAA'}, "ssh_public_key"),
]


def test_bad_values_are_rejected_at_plan_time(local_cluster):
    cluster = local_cluster()
    good = dict(cluster.tfvars)
    for tfvars, message in BAD_VALUES:
        cluster.set(**good)
        cluster.set(**tfvars)
        proc = cluster.tf("plan")
        assert proc.returncode != 0, tfvars
        assert "Invalid value for variable" in proc.stderr or "precondition" in proc.stderr
        assert message in flat(proc.stderr), (tfvars, proc.stderr)
    assert not cluster.nodes_dir.exists()
