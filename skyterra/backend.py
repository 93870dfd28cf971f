"""Shared Terraform state: backend blocks, and the cluster registry kept next to the state.

A team sets `backend:` in ~/.skyterra/config.yaml or .skyterra.yaml (s3, gcs,
azurerm or local). Every cluster's state then lives at
skyterra/<cluster>/terraform.tfstate in that backend, and skyterra keeps its own
record of the cluster (metadata and SSH key) *inside that state*, as the
sensitive output `skyterra_registry`: any machine that can read the state can
list, use and destroy the cluster, and Terraform's state lock keeps two
machines from applying at once.
"""

from __future__ import annotations

import json
import re
from pathlib import Path
from typing import Any

from skyterra.errors import ConfigError

BACKEND_FILE = "backend.tf"
BACKEND_VALUES_FILE = "backend.tfbackend"
_S3_OPTIONAL = ("dynamodb_table", "use_lockfile", "encrypt", "kms_key_id", "profile",
                "endpoints", "skip_credentials_validation", "skip_requesting_account_id",
                "skip_metadata_api_check", "skip_region_validation", "use_path_style",
                "access_key", "secret_key", "assume_role")
BACKENDS: dict[str, tuple[tuple[str, ...], tuple[str, ...]]] = {
    # type: (required keys, optional keys); the state key/prefix is always skyterra's
    "local": ((), ("path",)),
    "s3": (("bucket", "region"), _S3_OPTIONAL),
    "gcs": (("bucket",), ("credentials", "impersonate_service_account", "kms_encryption_key")),
    "azurerm": (("resource_group_name", "storage_account_name", "container_name"),
                ("subscription_id", "tenant_id", "use_azuread_auth", "use_oidc",
                 "environment")),
}


CLUSTERS_PREFIX = "skyterra"
BUCKETS_PREFIX = "skyterra-storage"   # a bucket's own module (skyterra/bucketstate.py)


def state_key(cluster_name: str, prefix: str = CLUSTERS_PREFIX) -> str:
    """Where a cluster's (or, with BUCKETS_PREFIX, a bucket's) state lives in a backend."""
    return f"{prefix}/{cluster_name}/terraform.tfstate"


def backend_files_for(cluster_name: str, backend: dict[str, Any] | None,
                      prefix: str = CLUSTERS_PREFIX) -> dict[str, str]:
    """backend.tf + backend.tfbackend for a `backend:` setting; {} when there is none."""
    import jinja2

    from skyterra.paths import state_templates_dir

    if not backend:
        return {}
    if not isinstance(backend, dict) or not isinstance(backend.get("type"), str):
        raise ConfigError("the `backend:` setting must be a mapping with a `type` (one of "
                          f"{', '.join(BACKENDS)}), e.g. {{type: s3, bucket: …, region: …}}.")
    kind = backend["type"]
    if kind not in BACKENDS:
        raise ConfigError(f"backend type {kind!r} is not supported; use one of "
                          f"{', '.join(BACKENDS)}.")
    required, optional = BACKENDS[kind]
    values = {k: v for k, v in backend.items() if k != "type" and v is not None}
    missing = [k for k in required if k not in values]
    unknown = sorted(set(values) - set(required) - set(optional))
    if missing:
        raise ConfigError(f"the {kind} backend needs {', '.join(missing)} in `backend:`.")
    if unknown:
        raise ConfigError(f"the {kind} backend does not take {', '.join(unknown)} (skyterra "
                          "sets the state key itself); known keys: "
                          f"{', '.join(required + optional)}.")
    if kind == "local":
        if "path" in values:
            values["path"] = str(Path(str(values["path"])).expanduser() /
                                 state_key(cluster_name, prefix))
    elif kind == "gcs":
        values["prefix"] = f"{prefix}/{cluster_name}"
    else:
        values["key"] = state_key(cluster_name, prefix)
    if kind == "s3":
        values.setdefault("encrypt", True)
    lock = ("dynamodb" if values.get("dynamodb_table") else
            "lockfile" if values.get("use_lockfile") else "")
    source = state_templates_dir() / "backends"
    env = jinja2.Environment(loader=jinja2.FileSystemLoader(str(source)),
                             undefined=jinja2.StrictUndefined, keep_trailing_newline=True,
                             autoescape=False)  # HCL: values never enter it
    block = env.get_template(f"{kind}.tf.j2").render(lock=lock)
    width = max((len(k) for k in values), default=0)
    lines = [f"{key.ljust(width)} = {_hcl(value)}" for key, value in sorted(values.items())]
    return {BACKEND_FILE: block, BACKEND_VALUES_FILE: "\n".join(lines) + "\n" if lines else ""}


def _hcl(value: Any) -> str:
    """A literal HCL value: strings are JSON-quoted with template sequences escaped."""
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, (int, float)):
        return json.dumps(value)
    if isinstance(value, str):
        return json.dumps(value).replace("${", "$${").replace("%{", "%%{")
    if isinstance(value, list):
        return "[" + ", ".join(_hcl(v) for v in value) + "]"
    if isinstance(value, dict):
        for key in value:
            if not re.fullmatch(r"[A-Za-z_][A-Za-z0-9_-]*", str(key)):
                raise ConfigError(f"backend setting key {key!r} is not a plain name.")
        return "{ " + ", ".join(f"{k} = {_hcl(v)}" for k, v in sorted(value.items())) + " }"
    raise ConfigError(f"backend setting value {value!r} is not a string, number, bool, "
                      "list or mapping.")




# --- the cluster registry inside the state -------------------------------------------------
REGISTRY_FILE = "skyterra_registry.tf"
REGISTRY_VARIABLE = "skyterra_registry"
# Added to every module launched with a shared backend. The value is JSON (record +
# SSH key) from terraform.tfvars.json; `sensitive` keeps it out of plan output.
REGISTRY_TF = '''# skyterra's record of this cluster (metadata and SSH key, JSON), kept in the
# Terraform state so that every machine sharing the backend can use the cluster.
variable "skyterra_registry" {
  type        = string
  sensitive   = true
  default     = ""
  description = "skyterra's cluster record (JSON); written by skyterra, read back by other machines."
}

resource "terraform_data" "skyterra_registry" {
  input = var.skyterra_registry
}

output "skyterra_registry" {
  value     = terraform_data.skyterra_registry.output
  sensitive = true
}
'''


def shared_backend(settings: dict[str, Any]) -> dict[str, Any] | None:
    """The configured remote backend, or None for local state (type local without path)."""
    backend = settings.get("backend")
    if not backend:
        return None
    if isinstance(backend, dict) and backend.get("type") == "local" and not backend.get("path"):
        return None
    return backend


def is_path_backend(backend: dict[str, Any]) -> bool:
    """A `type: local` backend with a `path` (a shared folder): listable like s3."""
    return backend.get("type") == "local" and bool(backend.get("path"))


def list_cluster_names(backend: dict[str, Any]) -> list[str] | None:
    """Cluster names with a state in the backend; None when this backend cannot be listed.

    s3 (boto3, honouring `endpoints.s3`) and local paths can be listed; for gcs
    and azurerm, use a cluster by name (it is fetched from the state on first use).
    """
    kind = backend.get("type")
    pattern = re.compile(r"^skyterra/([a-z][-a-z0-9]*)/terraform\.tfstate$")
    if kind == "local":
        root = Path(str(backend["path"])).expanduser() / "skyterra"
        return sorted(p.parent.name for p in root.glob("*/terraform.tfstate"))
    if kind != "s3":
        return None
    try:
        import boto3  # noqa: F401 - checked here for a clear message
    except ImportError:
        raise ConfigError("listing clusters in an s3 backend needs boto3: pip install "
                          "'skyterra[aws]'.") from None
    client = s3_client(backend)
    names = []
    try:
        pages = client.get_paginator("list_objects_v2").paginate(
            Bucket=backend["bucket"], Prefix="skyterra/")
        for page in pages:
            for item in page.get("Contents", []):
                match = pattern.match(item["Key"])
                if match:
                    names.append(match.group(1))
    except Exception as error:  # noqa: BLE001 - botocore's many error types, one message
        raise ConfigError(f"cannot list the s3 backend bucket {backend['bucket']!r} "
                          f"({type(error).__name__}: {error}). Check the `backend:` setting "
                          "and your AWS credentials.") from None
    return sorted(set(names))


def registry_value(base: dict[str, Any], candidate: Any, num_nodes: int) -> str:
    """The JSON kept in the state: stable (sorted, no timestamps that change per launch)."""
    record = dict(base)
    record.update(cloud=candidate.cloud, region=candidate.region, zone=candidate.zone,
                  instance_type=candidate.instance_type, accelerator=candidate.accelerator,
                  accelerator_count=candidate.accelerator_count,
                  price=candidate.cluster_price, num_nodes=num_nodes)
    return json.dumps(record, sort_keys=True)


def s3_client(backend: dict[str, Any]):
    import boto3

    endpoint = (backend.get("endpoints") or {}).get("s3")
    return boto3.client("s3", region_name=backend.get("region"), endpoint_url=endpoint)


def delete_state(backend: dict[str, Any], cluster_name: str,
                 prefix: str = CLUSTERS_PREFIX) -> None:
    """After a destroy: remove the (now empty) state object so listings drop the cluster.

    Only for backends we can list (s3, local path); elsewhere the empty state
    stays and is skipped when read.
    """
    kind = backend.get("type")
    if kind == "local":
        (Path(str(backend["path"])).expanduser() / state_key(cluster_name, prefix)).unlink(
            missing_ok=True)
    elif kind == "s3":
        s3_client(backend).delete_object(Bucket=backend["bucket"],
                                         Key=state_key(cluster_name, prefix))
