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
import json
import os
import re
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

from skyterra import config, deployment, ssh_config, state
from skyterra.backend import BACKEND_VALUES_FILE
from skyterra.catalog import Candidate
from skyterra.clouds import all_clouds, get_cloud
from skyterra.cluster import Cluster
from skyterra.errors import ConfigError, SkyterraError
from skyterra.optimizer import optimize
from skyterra.renderer import TFVARS_FILE, render, write_if_changed
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
                      backend: dict[str, Any] | None = None,
                      provider: bool = True) -> RenderResult:
    """Render the best candidate's module for `task` into `out_dir`, ready for terraform.

    `backend` (default: the `backend:` setting of the skyterra config, if any)
    adds backend.tf (a partial backend block) and backend.tfbackend (its values,
    with the state key skyterra/<cluster>/terraform.tfstate) for
    `terraform init -backend-config=backend.tfbackend`. `provider=False` writes
    a pure child module: no provider configuration and no backend (a pipeline's
    root has both). The SSH ingress (`ssh_cidrs` / `ssh_source_ranges`) is set
    only when configured; otherwise the pipeline passes it at plan time.
    """
    task.check_required_envs()
    clouds = [cloud] if cloud else sorted({r.cloud for r in task.resources if r.cloud})
    if not clouds:
        raise ConfigError("say which cloud to render for: --cloud "
                          f"{'|'.join(c.name for c in all_clouds())} "
                          "(or resources.cloud in the task).")
    name = state.check_cluster_name(_name_from_task(task) if cluster_name is None
                                    else cluster_name)
    directory = Path(out_dir).expanduser().resolve()
    if directory.exists() and (directory / "cluster.json").exists():
        raise ConfigError(f"{directory} is a skyterra cluster directory; render into a "
                          "directory of your pipeline instead.")
    settings = config.load()
    shared = settings.get("backend") if backend is None else backend
    best = optimize(task, [get_cloud(c) for c in clouds])[0]
    directory.mkdir(parents=True, exist_ok=True)
    public_key, key = state.ensure_key(directory / "ssh" / "id_ed25519", f"skyterra-{name}")
    chosen = deployment.build(task, best, name=name, directory=directory,
                              public_key=public_key, private_key_path=key, settings=settings,
                              shared_backend=shared or None, root=provider)
    render(chosen)
    has_backend = (directory / BACKEND_VALUES_FILE).exists() and bool(shared) and provider
    if not has_backend:
        (directory / BACKEND_VALUES_FILE).unlink(missing_ok=True)
    extra = {README_FILE: module_readme(directory, name, best, task, has_backend, provider),
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
                  has_backend: bool = False, provider: bool = True) -> str:
    """README.md of a rendered module: what it creates, its inputs and its outputs."""
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
             ("A child module does not read its own tfvars file: pass the values in. "
              + ("Its provider configuration is in `providers.tf`: leave that file out (or "
                 "render with `--no-provider`) when the module is called with `count`, "
                 "`for_each` or `depends_on`, and configure the provider in your root."
                 if provider else "It has no provider configuration: your root has it.")),
             "",
             "```hcl", "locals {",
             f'  train_vars = jsondecode(file("${{path.module}}/{directory.name}/{TFVARS_FILE}"))',
             "}", "", 'module "train" {', f'  source = "./{directory.name}"']
    given = set(json.loads((directory / TFVARS_FILE).read_text()))
    for variable in variables:
        if variable["name"] in given:
            lines.append(f"  {variable['name']} = local.train_vars[\"{variable['name']}\"]")
        elif not variable["has_default"]:
            lines.append(f"  {variable['name']} = [\"203.0.113.7/32\"]  # required: who may SSH in")
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


def _attached_cloud(outputs: dict[str, Any]) -> tuple[str, dict[str, str]]:
    """(cloud name, node environment) of nodes a pipeline made: the `cloud` output if the
    module has one, else the cloud that recognises the outputs (loopback IPs: local)."""
    named = str(outputs.get("cloud") or "")
    for cloud in all_clouds():
        env = cloud.attached_node_env(outputs)
        if env is not None and named in ("", cloud.name):
            return cloud.name, env
    return named, {}


def attach_outputs(cluster_name: str, outputs: dict[str, Any] | str | Path | None = None, *,
                   tf_dir: str | Path | None = None, ssh_key: str | Path | None = None,
                   task: Task | None = None, progress: Output = print,
                   timeout: float | None = None) -> state.ClusterRecord:
    """Register nodes a pipeline created; skyterra runs jobs there but never destroys them."""
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
    cloud_name, node_env = _attached_cloud(values)
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
            from skyterra import executor  # only attach talks to nodes: render stays light

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
            accelerator_count=gpus, nodes=cluster.node_records(),
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
