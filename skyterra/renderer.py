"""A Deployment → a self-contained Terraform module directory: the one render path.

Launch, dry run, `skyterra render`, shared-backend fetch and destroy all call
`render`; what differs between them is data on the Deployment. Jinja decides
structure only (optional blocks); every value goes through
terraform.tfvars.json, so no user string is ever parsed as HCL. Output is
deterministic (sorted keys, stable file order, trailing newline) so that the
same task renders byte-identical files: golden tests and "nothing changed"
checks depend on it.
"""

from __future__ import annotations

import json
import os
from pathlib import Path
from typing import TYPE_CHECKING, Any

import jinja2

from skyterra import backend
from skyterra.paths import templates_dir

if TYPE_CHECKING:
    from skyterra.bucketstate import BucketModule
    from skyterra.deployment import Deployment

TFVARS_FILE = "terraform.tfvars.json"
# Template files that configure providers: a root module has them, a child module not
# (Terraform: a module with its own provider block cannot be used with count/for_each).
ROOT_ONLY_FILES = {"providers.tf"}


def render(deployment: Deployment) -> list[Path]:
    """Write the deployment's module (template, tfvars, root and backend files)."""
    cloud = deployment.cloud
    tfvars = cloud.tfvars(deployment)
    extra: dict[str, str] = {}
    if deployment.root:
        extra.update(cloud.root_files(deployment))
    if deployment.backend and deployment.root:  # Terraform reads backends of roots only
        extra.update(backend.backend_files_for(deployment.name, deployment.backend))
    if deployment.registry is not None:
        extra[backend.REGISTRY_FILE] = backend.REGISTRY_TF
        tfvars[backend.REGISTRY_VARIABLE] = backend.registry_value(
            deployment.registry, deployment.candidate, deployment.num_nodes)
    return _write_module(cloud.template, deployment.directory,
                         cloud.template_context(deployment), tfvars, extra,
                         root=deployment.root)


def render_bucket(module: BucketModule) -> list[Path]:
    """Write a bucket's own module (templates/storage/…) into SKYTERRA_HOME/storage/<name>/:
    the same writer as a cluster's, so the same rules (values only in tfvars) hold."""
    return _write_module(module.template, module.directory, module.context(),
                         module.tfvars(), module.extra_files(), root=True)


def _environment(template_root: Path) -> jinja2.Environment:
    return jinja2.Environment(
        loader=jinja2.FileSystemLoader(str(template_root)),
        undefined=jinja2.StrictUndefined,
        keep_trailing_newline=True,
        trim_blocks=True,
        lstrip_blocks=True,
        autoescape=False,
    )


def dump_json(value: Any) -> str:
    """The one JSON style for files we write: sorted, indented, newline-terminated."""
    return json.dumps(value, indent=2, sort_keys=True, ensure_ascii=False) + "\n"


def _write_module(template: str, out_dir: Path, context: dict[str, Any],
                  tfvars: dict[str, Any], extra_files: dict[str, str], root: bool) -> list[Path]:
    """Render templates/<template>/ into out_dir; return the files written (sorted).

    `*.j2` files are rendered with `context` and lose the suffix (one that renders
    empty is left out: an optional file); other files
    are copied as they are. Files from an earlier render that the template no
    longer has are removed; Terraform's own state and plugin dirs are kept.
    """
    source = templates_dir() / template
    if not source.is_dir():
        raise FileNotFoundError(f"no template folder {source}")
    out_dir.mkdir(parents=True, exist_ok=True)
    env = _environment(source)
    wanted: dict[Path, str | bytes] = {}
    executables: set[Path] = set()   # copied as they are, executable bit included
    for path in sorted(source.rglob("*")):
        if path.is_dir() or "__pycache__" in path.parts or path.name.startswith("."):
            continue
        relative = path.relative_to(source)
        if not root and relative.as_posix() in ROOT_ONLY_FILES:
            continue
        if path.suffix == ".j2":
            text = env.get_template(relative.as_posix()).render(**context)
            if text.strip():  # an optional file (all of it inside an `{% if %}`)
                wanted[relative.with_suffix("")] = text
        else:
            wanted[relative] = path.read_bytes()
            if os.access(path, os.X_OK):
                executables.add(relative)
    wanted[Path(TFVARS_FILE)] = dump_json(tfvars)
    for name, text in extra_files.items():
        wanted[Path(name)] = text
    _remove_stale(out_dir, set(wanted))
    written = []
    for relative, content in sorted(wanted.items()):
        target = out_dir / relative
        target.parent.mkdir(parents=True, exist_ok=True)
        write_if_changed(target, content, mode=0o600 if relative.name == TFVARS_FILE else None,
                         executable=relative.suffix == ".sh" or relative in executables)
        written.append(target)
    return written


def write_if_changed(path: Path, content: str | bytes, mode: int | None = None,
                     executable: bool = False) -> bool:
    """Write atomically, and only when the bytes differ (keeps mtimes for "no change")."""
    data = content.encode() if isinstance(content, str) else content
    if path.exists() and path.read_bytes() == data:
        return False
    tmp = path.with_name(f".{path.name}.tmp")
    fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, mode or 0o644)
    with os.fdopen(fd, "wb") as handle:
        handle.write(data)
    if executable:
        os.chmod(tmp, 0o755)
    elif mode is not None:
        os.chmod(tmp, mode)
    os.replace(tmp, path)
    return True


def _remove_stale(out_dir: Path, wanted: set[Path]) -> None:
    """Drop module files an earlier render wrote that this one does not.

    Only the top level and the folders the template itself has are looked
    at: everything else in a cluster dir (nodes/, ssh/, jobs/) is not ours.
    """
    module_dirs = {Path(".")} | {p.parent for p in wanted}
    for directory in sorted(module_dirs):
        folder = out_dir / directory
        if not folder.is_dir():
            continue
        for path in sorted(folder.iterdir()):
            relative = path.relative_to(out_dir)
            if (path.is_file() and relative not in wanted and relative.name not in _OWN_FILES
                    and not path.name.endswith("_override.tf")
                    and path.suffix in (".tf", ".json", ".sh")):
                path.unlink()


# Non-module files skyterra keeps in a cluster dir (see state.py); render leaves them alone.
_OWN_FILES = {"cluster.json", "record.json", "ssh", "jobs", "lock", "plan.tfplan", "terraformrc", "logs",
              "known_hosts", "outputs.json"}
