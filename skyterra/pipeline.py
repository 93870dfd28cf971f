"""skyterra inside someone else's Terraform pipeline: render a module, attach its nodes.

`render_standalone` writes a module directory that plain `terraform init/plan/
apply` can use with no skyterra installed: the template files, the task's
values in terraform.tfvars.json, a generated SSH key under ssh/ and a README
listing the module's inputs and outputs. `attach_outputs` goes the other way:
from the outputs of nodes a pipeline created (`terraform output -json`) to a
cluster skyterra can run jobs on, recorded as owned by the pipeline
("external") so that `skyterra destroy` never touches that infrastructure.
"""

from __future__ import annotations

import dataclasses
import ipaddress
import json
import os
import re
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

from skyterra import config, state
from skyterra.backend import BACKEND_VALUES_FILE, backend_files_for
from skyterra.clouds import ClusterSpec, get_cloud
from skyterra.cluster import Cluster
from skyterra.errors import ConfigError, SkyterraError
from skyterra.optimizer import Candidate, optimize
from skyterra.task import Task

Output = Callable[[str], None]
README_FILE = "README.md"
OWNER_EXTERNAL = "external"


@dataclasses.dataclass
class RenderResult:
    """What `render` wrote: the module dir, the chosen candidate and the files."""

    cluster_name: str
    out_dir: Path
    candidate: Candidate
    files: list[Path]
    ssh_key: Path


# --- render --------------------------------------------------------------------------------
def render_standalone(task: Task, out_dir: Path | str, *, cloud: str | None = None,
                      cluster_name: str | None = None,
                      backend: dict[str, Any] | None = None) -> RenderResult:
    """Render the best candidate's module for `task` into `out_dir`, ready for terraform.

    `backend` (default: the `backend:` setting of the skyterra config, if any)
    adds backend.tf (a partial backend block) and backend.tfbackend (its values,
    with the state key skyterra/<cluster>/terraform.tfstate) for
    `terraform init -backend-config=backend.tfbackend`.
    """
    from skyterra.clouds.local import choose_slot, ssh_port_for
    from skyterra.renderer import render_module, write_if_changed

    task.check_required_envs()
    clouds = [cloud] if cloud else sorted({r.cloud for r in task.resources if r.cloud})
    if not clouds:
        raise ConfigError("say which cloud to render for: --cloud aws|gcp|azure|local "
                          "(or resources.cloud in the task).")
    name = state.check_cluster_name(_name_from_task(task) if cluster_name is None
                                    else cluster_name)
    directory = Path(out_dir).expanduser().resolve()
    if directory.exists() and (directory / "cluster.json").exists():
        raise ConfigError(f"{directory} is a skyterra cluster directory; render into a "
                          "directory of your pipeline instead.")
    settings = config.load()
    backend_files = backend_files_for(name, settings.get("backend") if backend is None
                                      else backend)
    candidates = optimize(task, clouds)
    best = candidates[0]
    directory.mkdir(parents=True, exist_ok=True)
    public_key, key = state.ensure_key(directory / "ssh" / "id_ed25519", f"skyterra-{name}")
    slot = _previous_slot(directory) or choose_slot(str(directory), state.used_slots())
    options = {**config.provision_options(settings), "ssh_port": ssh_port_for(slot)}
    spec = ClusterSpec(name=name, directory=directory, num_nodes=task.num_nodes,
                       public_key=public_key, private_key_path=key, slot=slot, options=options)
    target = get_cloud(best.cloud)
    render_module(target.template, directory, target.template_context(task, best, spec),
                  target.tfvars(task, best, spec), {**target.extra_files(spec), **backend_files})
    if BACKEND_VALUES_FILE not in backend_files:
        (directory / BACKEND_VALUES_FILE).unlink(missing_ok=True)
    extra = {README_FILE: module_readme(directory, name, best, task, bool(backend_files)),
             ".gitignore": _GITIGNORE}
    for file_name, text in extra.items():
        write_if_changed(directory / file_name, text)
    files = sorted(p for p in directory.rglob("*") if p.is_file()
                   and ".terraform" not in p.parts
                   and "nodes" not in p.relative_to(directory).parts)
    return RenderResult(name, directory, best, files, key)


def _name_from_task(task: Task) -> str:
    base = re.sub(r"[^a-z0-9-]+", "-", (task.name or "train").lower()).strip("-")
    base = re.sub(r"^[^a-z]+", "", base)[:35].rstrip("-")
    return base or "train"


def _previous_slot(directory: Path) -> int | None:
    """Re-rendering keeps the local subnet (so an applied module is not replaced)."""
    from skyterra.renderer import TFVARS_FILE

    path = directory / TFVARS_FILE
    try:
        cidr = json.loads(path.read_text()).get("subnet_cidr", "")
    except (OSError, ValueError, AttributeError):
        return None
    return _slot_of(str(cidr).split("/")[0]) if cidr else None


def _slot_of(ip: str) -> int | None:
    """Inverse of clouds.local.node_ip: 127.(100 + s // 256).(s % 256).x → s."""
    match = re.fullmatch(r"127\.(\d+)\.(\d+)\.\d+", ip)
    if not match or int(match.group(1)) < 100:
        return None
    slot = (int(match.group(1)) - 100) * 256 + int(match.group(2))
    return slot or None


_GITIGNORE = """\
# written by `skyterra render`: secrets and machine state stay out of git
ssh/
nodes/
.terraform/
*.tfstate
*.tfstate.backup
*.tfplan
"""

_BLOCK = re.compile(r'^(variable|output)\s+"([^"]+)"\s*\{', re.MULTILINE)


def _blocks(text: str, kind: str) -> list[dict[str, str]]:
    """variable/output blocks of a .tf file: name, type, description, default (best effort)."""
    found = []
    starts = [m for m in _BLOCK.finditer(text) if m.group(1) == kind]
    for match in starts:
        depth, end = 0, len(text)
        for index in range(match.end() - 1, len(text)):
            if text[index] == "{":
                depth += 1
            elif text[index] == "}":
                depth -= 1
                if depth == 0:
                    end = index
                    break
        body = text[match.end():end]
        top = "\n".join(line for line in body.splitlines()
                        if re.match(r"^  [a-z_]+\s*=", line))

        def attr(key: str, top: str = top) -> str:
            hit = re.search(rf"^  {key}\s*=\s*(.+)$", top, re.MULTILINE)
            return hit.group(1).strip() if hit else ""
        description = attr("description")
        if description.startswith('"'):
            try:
                description = json.loads(description)
            except ValueError:
                description = description.strip('"')
        found.append({"name": match.group(2), "type": attr("type"),
                      "description": description, "has_default": bool(attr("default"))})
    return found


def module_readme(directory: Path, name: str, candidate: Candidate, task: Task,
                  has_backend: bool = False) -> str:
    """README.md of a rendered module: what it creates, its inputs and its outputs."""
    from skyterra.renderer import TFVARS_FILE

    variables, outputs = [], []
    for path in sorted(directory.glob("*.tf")):
        text = path.read_text()
        variables += _blocks(text, "variable")
        outputs += _blocks(text, "output")
    variables.sort(key=lambda v: v["name"])
    outputs.sort(key=lambda v: v["name"])

    def cell(text: str) -> str:
        return text.replace("|", "\\|").replace("\n", " ")
    lines = [f"# {name}: a Terraform module rendered by skyterra", "",
             (f"Task `{cell(task.name or name)}` as {task.num_nodes} x "
              f"{cell(candidate.describe())}."), "",
             ("This directory needs no skyterra to apply. Values are in "
              f"`{TFVARS_FILE}` (the `.tf` files hold no task value); the SSH key the "
              "nodes trust is in `ssh/` (secret: keep it out of git)."), "",
             "## Use it on its own", "", "```sh",
             ("terraform init -backend-config=backend.tfbackend   # remote state: "
              "see backend.tf" if has_backend else "terraform init"),
             "terraform plan -out plan.tfplan",
             "terraform apply plan.tfplan", "terraform output -json > outputs.json",
             f"skyterra attach {name} --from-outputs outputs.json   # then skyterra exec/logs",
             "```", "",
             "## Use it as a child module", "",
             "A child module does not read its own tfvars file: pass the values in.", "",
             "```hcl", "locals {",
             f'  train_vars = jsondecode(file("${{path.module}}/{directory.name}/{TFVARS_FILE}"))',
             "}", "", 'module "train" {', f'  source = "./{directory.name}"']
    for variable in variables:
        lines.append(f"  {variable['name']} = local.train_vars[\"{variable['name']}\"]")
    lines += ["}", "```", "", "## Inputs", "", "| name | type | required | description |",
              "|---|---|---|---|"]
    for variable in variables:
        lines.append(f"| `{variable['name']}` | `{cell(variable['type']) or 'any'}` | "
                     f"{'no' if variable['has_default'] else 'yes'} | "
                     f"{cell(variable['description'])} |")
    lines += ["", "## Outputs", "", "| name | description |", "|---|---|"]
    for output in outputs:
        lines.append(f"| `{output['name']}` | {cell(output['description'])} |")
    lines += ["", ("`skyterra attach` needs `node_ips` (head first), `ssh_user` and either "
                   "`ssh_private_key_path` or `--ssh-key`; `node_private_ips` and `ssh_port` "
                   "are used when present."), ""]
    return "\n".join(lines)


# --- attach --------------------------------------------------------------------------------
def load_outputs(outputs: dict[str, Any] | str | Path | None = None, *,
                 tf_dir: str | Path | None = None) -> tuple[dict[str, Any], Path | None]:
    """Terraform output values (not the {"value": …} wrappers) and the dir they came from."""
    if (outputs is None) == (tf_dir is None):
        raise ConfigError("give exactly one of the outputs (a dict or an outputs.json path) "
                          "or a Terraform directory (tf_dir / --tf-dir).")
    base: Path | None = None
    if tf_dir is not None:
        from skyterra.terraform import Workspace

        base = Path(tf_dir).expanduser().resolve()
        if not base.is_dir():
            raise ConfigError(f"--tf-dir {base}: no such directory.")
        data: Any = Workspace(base).outputs()
    elif isinstance(outputs, (str, Path)):
        path = Path(outputs).expanduser().resolve()
        base = path.parent
        try:
            data = json.loads(path.read_text())
        except OSError as error:
            raise ConfigError(f"cannot read {path} ({error.strerror}); write it with "
                              "`terraform output -json > outputs.json`.") from None
        except ValueError as error:
            raise ConfigError(f"{path} is not JSON ({error}); write it with "
                              "`terraform output -json > outputs.json`.") from None
    else:
        data = outputs
    if not isinstance(data, dict):
        raise ConfigError("the Terraform outputs must be a JSON object (what `terraform "
                          "output -json` prints).")
    values = {k: (v["value"] if isinstance(v, dict) and "value" in v else v)
              for k, v in data.items()}
    return values, base


def _all_loopback(ips: list[str]) -> bool:
    try:
        return bool(ips) and all(ipaddress.ip_address(ip).is_loopback for ip in ips)
    except ValueError:
        return False


def attach_outputs(cluster_name: str, outputs: dict[str, Any] | str | Path | None = None, *,
                   tf_dir: str | Path | None = None, ssh_key: str | Path | None = None,
                   task: Task | None = None, progress: Output = print,
                   timeout: float | None = None) -> state.ClusterRecord:
    """Register nodes a pipeline created; skyterra runs jobs there but never destroys them."""
    from skyterra import executor, ssh_config
    from skyterra.clouds.local import Local

    name = state.check_cluster_name(cluster_name)
    values, base = load_outputs(outputs, tf_dir=tf_dir)
    key = ssh_key or values.get("ssh_private_key_path")
    if key:
        key_path = Path(key).expanduser()
        if not key_path.is_absolute() and base is not None:
            key_path = base / key_path
        if not key_path.is_file():
            raise ConfigError(f"SSH key {key_path} does not exist; give the private key that "
                              "logs in to the nodes with --ssh-key.")
        key = key_path.resolve()
    cluster_dir = state.ClusterDir(name)
    existing = cluster_dir.load() if cluster_dir.exists() else None
    if existing is not None and existing.owner != OWNER_EXTERNAL:
        raise SkyterraError(f"cluster '{name}' exists and was created by skyterra; choose "
                            "another name for the attached nodes.")
    ips = values.get("node_ips") or []
    loopback = _all_loopback(ips if isinstance(ips, list) else [])
    cloud_name = str(values.get("cloud") or ("local" if loopback else ""))
    node_env: dict[str, str] = {}
    slot = None
    if loopback:
        slot = _slot_of(ips[0])
        node_env = Local().node_env(ClusterSpec(name, cluster_dir.path, len(ips), "", Path(),
                                                slot=slot or 0))
        if slot is None:  # not a skyterra local subnet: torchrun's default port
            node_env.pop("SKYTERRA_MASTER_PORT", None)
    gpus = 0
    if task is not None and task.resources and task.resources[0].accelerators:
        try:
            gpus = (task.resources[0].accelerator or (None, 0))[1]
        except ValueError:
            gpus = 0
    cluster = Cluster.from_terraform_outputs(
        name, values, ssh_key=key, known_hosts=cluster_dir.known_hosts_path, cloud=cloud_name,
        region=values.get("region"), zone=values.get("zone"), num_gpus_per_node=gpus,
        node_env=node_env)
    state.ensure_home()
    with cluster_dir.lock("attach"):
        cluster_dir.known_hosts_path.unlink(missing_ok=True)  # nodes may be new: re-pin
        progress(f"waiting for {len(cluster.nodes)} node(s) to answer SSH")
        try:
            executor.pin_host_keys(cluster, timeout=timeout if timeout is not None else
                                   float(os.environ.get("SKYTERRA_SSH_TIMEOUT", "120")))
        except BaseException:
            if existing is None:
                state.remove_cluster_dir(cluster_dir)
            raise
        record = state.ClusterRecord(
            name=name, cloud=cloud_name, status=state.STATUS_UP, owner=OWNER_EXTERNAL,
            num_nodes=len(cluster.nodes), region=cluster.region, zone=cluster.zone,
            instance_type=str(values.get("instance_type") or ""),
            accelerator_count=gpus, slot=slot or 0, nodes=cluster.node_records(),
            ssh_user=cluster.ssh_user,
            ssh_port=cluster.ssh_port, ssh_key=str(cluster.ssh_key), node_env=node_env,
            task=task.to_yaml_config() if task is not None else {},
            created_at=existing.created_at if existing else time.time(),
            launched_at=time.time())
        cluster_dir.save(record)
        ssh_config.write(cluster)
    progress(f"attached cluster '{name}': {len(cluster.nodes)} node(s), head "
             f"{cluster.head.ip}; skyterra runs jobs there but does not own the nodes")
    return record
