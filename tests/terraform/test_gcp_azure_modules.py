"""The GCP and Azure modules, checked as far as a machine without their providers allows.

Every rendered variant is parsed (python-hcl2), formatted (`terraform fmt -check`),
cross-checked against its variables and tfvars, and inspected for the structure
that matters on a real cloud: GPU attachment, host maintenance, spot, placement,
firewall sources, labels, image. The seed YAMLs' renders are compared byte for
byte with golden copies (regenerate: `python tests/golden/update.py`).
`terraform validate` runs only where `terraform init` can install the google and
azurerm providers; elsewhere the test is skipped with the reason.
"""

from __future__ import annotations

import dataclasses
import importlib.util
import json
import re
import shutil
import subprocess
import sys
from pathlib import Path
from typing import Any

import hcl2
import pytest

from skyterra.catalog import Candidate
from skyterra.errors import TaskError
from skyterra.renderer import TFVARS_FILE, render
from skyterra.task import Task
from skyterra.terraform import provider_mirror
from tests.deployments import deployment_for

REPO = Path(__file__).resolve().parents[2]
_spec = importlib.util.spec_from_file_location("skyterra_golden_update",
                                               REPO / "tests" / "golden" / "update.py")
golden = importlib.util.module_from_spec(_spec)
sys.modules[_spec.name] = golden      # dataclasses look their module up there
_spec.loader.exec_module(golden)

CALLER = "203.0.113.7/32"
KEY = "ssh-ed25519 AAAAC3NzaC1lZDI1NTE5AAAAIAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA skyterra"
BASE_OPTIONS = {"ssh_cidrs": [CALLER], "gcp_project": "skyterra-test",
                "azure_subscription_id": "11111111-2222-3333-4444-555555555555"}
REQUIRED_OUTPUTS = {"node_ips", "node_private_ips", "ssh_user", "instance_ids"}
TERRAFORM = shutil.which("terraform")


def gcp(instance_type: str, accelerator: str | None, count: int, **kw: Any) -> Candidate:
    return Candidate(cloud="gcp", region=kw.pop("region", "us-central1"),
                     zone=kw.pop("zone", "us-central1-a"), instance_type=instance_type,
                     accelerator=accelerator, accelerator_count=count, vcpus=8, memory_gib=32,
                     price=1.0, **kw)


def azure(vm_size: str, accelerator: str | None, count: int, **kw: Any) -> Candidate:
    return Candidate(cloud="azure", region=kw.pop("region", "eastus"), zone=kw.pop("zone", None),
                     instance_type=vm_size, accelerator=accelerator, accelerator_count=count,
                     vcpus=24, memory_gib=220, price=3.0, **kw)


@dataclasses.dataclass(frozen=True)
class Variant:
    id: str
    candidate: Candidate
    num_nodes: int = 1
    resources: dict = dataclasses.field(default_factory=dict)
    options: dict = dataclasses.field(default_factory=dict)


VARIANTS = (
    Variant("gcp-g2-l4x4", gcp("g2-standard-48", "L4", 4), resources={"accelerators": "L4:4"}),
    Variant("gcp-g2-l4x4-2nodes", gcp("g2-standard-48", "L4", 4), num_nodes=2,
            resources={"accelerators": "L4:4"}),
    Variant("gcp-a2-a100x8-spot-2nodes", gcp("a2-highgpu-8g", "A100", 8, use_spot=True),
            num_nodes=2, resources={"accelerators": "A100:8", "use_spot": True}),
    Variant("gcp-a3-ultra-h200x8", gcp("a3-ultragpu-8g", "H200", 8),
            resources={"accelerators": "H200:8"}),
    Variant("gcp-a4-b200x8", gcp("a4-highgpu-8g", "B200", 8),
            resources={"accelerators": "B200:8"}),
    Variant("gcp-n1-t4x4-spot-ports-labels", gcp("n1-standard-16", "T4", 4, use_spot=True),
            resources={"accelerators": "T4:4", "use_spot": True, "ports": [8080, "9000-9010"],
                       "labels": {"team": "ml", "project": "mingpt"}, "disk_size": 512,
                       "image_id": "projects/my-proj/global/images/my-image"}),
    Variant("gcp-n1-v100x8-3nodes", gcp("n1-highmem-64", "V100", 8), num_nodes=3,
            resources={"accelerators": "V100:8"}),
    Variant("gcp-cpu-only", gcp("n2-standard-8", None, 0), resources={"cpus": "8"}),
    Variant("gcp-a3-high-h100x8-16nodes", gcp("a3-highgpu-8g", "H100", 8), num_nodes=16,
            resources={"accelerators": "H100:8"}),
    Variant("gcp-a3-mega-2nodes", gcp("a3-megagpu-8g", "H100-MEGA", 8), num_nodes=2,
            resources={"accelerators": "H100-MEGA:8"}),
    Variant("gcp-c2-cpu-16nodes", gcp("c2-standard-16", None, 0), num_nodes=16,
            resources={"cpus": "16"}),
    Variant("gcp-own-subnet", gcp("g2-standard-12", "L4", 1), resources={"accelerators": "L4"},
            options={"gcp_network": "ml-vpc", "gcp_subnetwork": "ml-subnet-us-central1",
                     "gcp_service_account": {"email": "trainer@p.iam.gserviceaccount.com"}}),
    Variant("azure-a100", azure("Standard_NC24ads_A100_v4", "A100-80GB", 1),
            resources={"accelerators": "A100-80GB:1"}),
    Variant("azure-nd-h100-spot-2nodes-ports",
            azure("Standard_ND96isr_H100_v5", "H100", 8, use_spot=True, zone="2"), num_nodes=2,
            resources={"accelerators": "H100:8", "use_spot": True, "ports": ["8888"],
                       "labels": {"team": "ml"}, "disk_size": 1024,
                       "network_tier": "standard"}),   # standalone VMs (no IB scale set)
    Variant("azure-t4-subnet-image-id", azure("Standard_NC4as_T4_v3", "T4", 1),
            resources={"accelerators": "T4:1", "image_id": "/subscriptions/11111111-2222-3333-"
                       "4444-555555555555/resourceGroups/img/providers/Microsoft.Compute/"
                       "galleries/g/images/trainer/versions/1.0.0"},
            options={"azure_subnet_id": "/subscriptions/11111111-2222-3333-4444-555555555555/"
                     "resourceGroups/net/providers/Microsoft.Network/virtualNetworks/vnet/"
                     "subnets/gpu"}),
    Variant("azure-a10-urn-image", azure("Standard_NV36ads_A10_v5", "A10", 1),
            resources={"accelerators": "A10:1",
                       "image_id": "microsoft-dsvm:ubuntu-hpc:2204:22.04.2025010101"}),
    Variant("azure-nd-a100-3nodes", azure("Standard_ND96asr_v4", "A100", 8), num_nodes=3,
            resources={"accelerators": "A100:8"}),
    Variant("azure-nd-h100-standard-2nodes", azure("Standard_ND96isr_H100_v5", "H100", 8),
            num_nodes=2, resources={"accelerators": "H100:8", "network_tier": "standard"}),
)
BY_ID = {v.id: v for v in VARIANTS}


# --- helpers ---------------------------------------------------------------------------
def make_task(variant: Variant) -> Task:
    config = {"name": "t", "run": "true", "num_nodes": variant.num_nodes,
              "resources": dict(variant.resources)}
    return Task.from_yaml_config(config)


def render_variant(variant: Variant, out_dir: Path, *, name: str = "mingpt",
                   key: str = KEY) -> Path:
    render(deployment_for(make_task(variant), variant.candidate, directory=out_dir, name=name,
                          public_key=key, private_key_path=Path("/x/id"),
                          options={**BASE_OPTIONS, **variant.options}))
    return out_dir


def terraform(*args: str, cwd: Path | None = None, timeout: int = 120):
    """Run the terraform binary; the caller looks at returncode and output."""
    return subprocess.run([TERRAFORM, *args], cwd=cwd, capture_output=True, text=True,
                          timeout=timeout, check=False)


def _unquote(text: str) -> str:
    return text[1:-1] if len(text) >= 2 and text[0] == text[-1] == '"' else text


def _clean(value: Any) -> Any:
    """python-hcl2's parse tree → plain data: no quote marks on names and literals."""
    if isinstance(value, dict):
        return {_unquote(k): _clean(v) for k, v in value.items() if not k.startswith("__")}
    if isinstance(value, list):
        return [_clean(v) for v in value]
    if isinstance(value, str):
        return _unquote(value)
    return value


@dataclasses.dataclass
class Module:
    directory: Path
    resources: dict[str, dict[str, dict]]
    variables: dict[str, dict]
    outputs: dict[str, dict]
    locals: dict[str, Any]
    providers: dict[str, dict]
    terraform: list[dict]
    tfvars: dict[str, Any]
    text: str                       # all .tf files, concatenated

    def resource(self, kind: str, name: str) -> dict:
        assert kind in self.resources and name in self.resources[kind], \
            f"{kind}.{name} missing; have {sorted(self.resources)}"
        return self.resources[kind][name]

    def has(self, kind: str, name: str | None = None) -> bool:
        return kind in self.resources and (name is None or name in self.resources[kind])


def load_module(directory: Path) -> Module:
    mod = Module(directory, {}, {}, {}, {}, {}, [], {}, "")
    for path in sorted(directory.glob("*.tf")):
        text = path.read_text()
        mod.text += text
        tree = _clean(hcl2.loads(text))
        for item in tree.get("resource", []):
            for kind, named in item.items():
                for name, body in named.items():
                    mod.resources.setdefault(kind, {})[name] = body
        for item in tree.get("variable", []):
            mod.variables.update(item)
        for item in tree.get("output", []):
            mod.outputs.update(item)
        for item in tree.get("locals", []):
            mod.locals.update(item)
        for item in tree.get("provider", []):
            mod.providers.update(item)
        mod.terraform.extend(tree.get("terraform", []))
    mod.tfvars = json.loads((directory / TFVARS_FILE).read_text())
    return mod


@pytest.fixture
def rendered(tmp_path):
    def _render(variant_id: str, **kw: Any) -> Module:
        return load_module(render_variant(BY_ID[variant_id], tmp_path / variant_id, **kw))
    return _render


def one(blocks: list[dict]) -> dict:
    assert len(blocks) == 1, blocks
    return blocks[0]


# --- golden copies ---------------------------------------------------------------------
@pytest.mark.parametrize("case", golden.CASES, ids=lambda c: c.name)
def test_golden_copy_matches_a_fresh_render(case, tmp_path):
    fresh = tmp_path / case.name
    golden.render_case(case, fresh)
    problems = golden.tree_differences(golden.GOLDEN_DIR / case.name, fresh)
    assert not problems, (f"golden copy tests/golden/{case.name} is stale: {problems}; if the "
                          "change is intended run `python tests/golden/update.py` and review "
                          "the diff")


def test_golden_copies_are_the_seed_clusters():
    gcp_single = load_module(golden.GOLDEN_DIR / "gcp-train")
    assert gcp_single.tfvars["machine_type"] == "g2-standard-48"
    assert gcp_single.tfvars["num_nodes"] == 1
    assert gcp_single.tfvars["ssh_public_key"] == golden.FAKE_PUBLIC_KEY
    assert load_module(golden.GOLDEN_DIR / "gcp-train-multinode").tfvars["num_nodes"] == 2
    assert load_module(golden.GOLDEN_DIR / "azure-train-multinode").tfvars["num_nodes"] == 2


@pytest.mark.parametrize("variant", VARIANTS, ids=lambda v: v.id)
def test_rendering_is_deterministic(variant, tmp_path):
    first = render_variant(variant, tmp_path / "a")
    second = render_variant(variant, tmp_path / "b")
    assert golden.tree_differences(first, second) == []
    before = {p.name: p.stat().st_mtime_ns for p in first.iterdir()}
    render_variant(variant, first)   # same dir again: nothing rewritten
    assert {p.name: p.stat().st_mtime_ns for p in first.iterdir()} == before


# --- every variant: parse, format, declarations -------------------------------------------
@pytest.mark.parametrize("variant", VARIANTS, ids=lambda v: v.id)
def test_every_rendered_file_parses(variant, tmp_path):
    out = render_variant(variant, tmp_path / "m")
    files = sorted(out.glob("*.tf"))
    assert {f.name for f in files} >= {"main.tf", "variables.tf", "outputs.tf", "versions.tf"}
    for path in files:
        hcl2.loads(path.read_text())     # raises on a syntax error
    assert not list(out.glob("*.j2"))


@pytest.mark.terraform
@pytest.mark.parametrize("variant", VARIANTS, ids=lambda v: v.id)
def test_rendered_module_is_terraform_fmt_clean(variant, tmp_path):
    if not TERRAFORM:
        pytest.skip("terraform is not on PATH")
    out = render_variant(variant, tmp_path / "m")
    done = terraform("fmt", "-check", "-diff", "-no-color", str(out))
    assert done.returncode == 0, done.stdout + done.stderr


@pytest.mark.parametrize("variant", VARIANTS, ids=lambda v: v.id)
def test_variables_are_typed_described_and_match_the_tfvars(variant, rendered):
    mod = rendered(variant.id)
    for name, body in mod.variables.items():
        assert body.get("type"), f"variable {name} has no type"
        assert len(body.get("description", "")) > 10, f"variable {name} has no description"
    declared = set(mod.variables)
    assert set(mod.tfvars) <= declared, f"undeclared tfvars {set(mod.tfvars) - declared}"
    required = {name for name, body in mod.variables.items() if "default" not in body}
    assert required <= set(mod.tfvars), f"required variables missing {required - set(mod.tfvars)}"
    used = set(re.findall(r"\bvar\.([a-z_][a-z0-9_]*)", mod.text))
    assert used <= declared, f"undeclared variables used: {used - declared}"


@pytest.mark.parametrize("cloud", ["gcp", "azure"])
def test_every_variable_is_used_by_some_variant(cloud, tmp_path):
    used: set[str] = set()
    declared: set[str] = set()
    for variant in VARIANTS:
        if variant.candidate.cloud != cloud:
            continue
        mod = load_module(render_variant(variant, tmp_path / variant.id))
        declared |= set(mod.variables)
        for path in mod.directory.glob("*.tf"):
            if path.name != "variables.tf":
                used |= set(re.findall(r"\bvar\.([a-z_][a-z0-9_]*)", path.read_text()))
    assert declared - used == set(), f"variables no template uses: {declared - used}"


@pytest.mark.parametrize("variant", VARIANTS, ids=lambda v: v.id)
def test_outputs_list_nodes_head_first(variant, rendered):
    mod = rendered(variant.id)
    assert REQUIRED_OUTPUTS <= set(mod.outputs)
    for name in REQUIRED_OUTPUTS:
        assert mod.outputs[name].get("description")
    assert mod.outputs["ssh_user"]["value"] == "${var.ssh_user}"


@pytest.mark.parametrize("variant", VARIANTS, ids=lambda v: v.id)
def test_nothing_is_open_to_the_whole_internet(variant, tmp_path):
    out = render_variant(variant, tmp_path / "m")
    for path in out.iterdir():
        text = path.read_text()
        assert "0.0.0.0/0" not in text and "::/0" not in text, path.name


@pytest.mark.parametrize("cloud,source,version", [("gcp", "hashicorp/google", ">= 6.0, < 8.0"),
                                                  ("azure", "hashicorp/azurerm", ">= 4.0, < 5.0")])
def test_versions_pin_terraform_and_the_provider(cloud, source, version, rendered):
    mod = rendered("gcp-g2-l4x4" if cloud == "gcp" else "azure-a100")
    block = one(mod.terraform)
    assert block["required_version"] == ">= 1.5"
    (providers,) = block["required_providers"]
    (requirement,) = providers.values()
    assert requirement == {"source": source, "version": version}


# --- variable validations, evaluated by terraform itself (needs no provider) -----------------
def plan_variables(module_dir: Path, work: Path, overrides: dict | None = None):
    """`terraform plan` on the module's variables.tf + tfvars alone: runs every validation."""
    work.mkdir(parents=True, exist_ok=True)
    shutil.copy(module_dir / "variables.tf", work / "variables.tf")
    tfvars = json.loads((module_dir / TFVARS_FILE).read_text())
    tfvars.update(overrides or {})
    (work / TFVARS_FILE).write_text(json.dumps(tfvars))
    if not (work / ".terraform").exists():
        init = terraform("init", "-backend=false", "-input=false", "-no-color", cwd=work)
        assert init.returncode == 0, init.stdout + init.stderr
    return terraform("plan", "-input=false", "-lock=false", "-no-color", cwd=work)


@pytest.mark.terraform
@pytest.mark.parametrize("variant", VARIANTS, ids=lambda v: v.id)
def test_variable_validations_accept_every_rendered_variant(variant, tmp_path):
    if not TERRAFORM:
        pytest.skip("terraform is not on PATH")
    done = plan_variables(render_variant(variant, tmp_path / "m"), tmp_path / "vars")
    assert done.returncode == 0, done.stdout + done.stderr


BAD_VALUES = [
    ("gcp-g2-l4x4", {"cluster_name": "Bad_Name"}, "cluster_name must be"),
    ("gcp-g2-l4x4", {"ssh_source_ranges": []}, "ssh_source_ranges must list"),
    ("gcp-g2-l4x4", {"ssh_source_ranges": ["not-a-cidr"]}, "ssh_source_ranges must list"),
    ("gcp-g2-l4x4", {"ssh_public_key": "ssh-ed25519 AAAA\nssh-rsa BBBB"}, "ssh_public_key"),
    ("gcp-g2-l4x4", {"labels": {"team": "ML Team"}}, "GCP labels"),
    ("gcp-g2-l4x4", {"ports": ["80; rm -rf /"]}, "ports must be"),
    ("gcp-g2-l4x4", {"gpu_count": 3}, "gpu_count must be"),
    ("gcp-g2-l4x4", {"zone": "us-central1"}, "zone must be"),
    ("gcp-g2-l4x4", {"spot_termination_action": "KEEP"}, "spot_termination_action"),
    ("azure-a100", {"ssh_public_key": "ecdsa-sha2-nistp256 AAAA x"}, "ssh_public_key must be"),
    ("azure-a100", {"ssh_user": "admin"}, "ssh_user must be"),
    ("azure-a100", {"zone": "4"}, "zone must be"),
    ("azure-a100", {"vm_size": "NC24ads"}, "vm_size must be"),
    ("azure-a100", {"subscription_id": "my-subscription"}, "subscription_id must be"),
    ("azure-a100", {"subnet_id": "/subscriptions/x/resourceGroups/y"}, "subnet_id must be"),
    ("azure-a100", {"port_source_ranges": ["everyone"]}, "port_source_ranges must be"),
    ("azure-a100", {"tags": {"a/b": "c"}}, "Azure tags"),
]


@pytest.mark.terraform
@pytest.mark.parametrize("variant_id,overrides,message", BAD_VALUES,
                         ids=[f"{v}-{next(iter(o))}" for v, o, _ in BAD_VALUES])
def test_variable_validations_reject_bad_values(variant_id, overrides, message, tmp_path):
    if not TERRAFORM:
        pytest.skip("terraform is not on PATH")
    done = plan_variables(render_variant(BY_ID[variant_id], tmp_path / "m"), tmp_path / "vars",
                          overrides)
    assert done.returncode != 0
    assert message in " ".join((done.stdout + done.stderr).split())


# --- GCP structure -----------------------------------------------------------------------
def test_gcp_fixed_gpu_machine_types_get_no_guest_accelerator(rendered):
    for variant_id, machine in [("gcp-g2-l4x4", "g2-standard-48"),
                                ("gcp-a2-a100x8-spot-2nodes", "a2-highgpu-8g"),
                                ("gcp-a3-ultra-h200x8", "a3-ultragpu-8g"),
                                ("gcp-a4-b200x8", "a4-highgpu-8g")]:
        mod = rendered(variant_id)
        node = mod.resource("google_compute_instance", "node")
        assert "guest_accelerator" not in node, variant_id
        assert node["machine_type"] == "${var.machine_type}"
        assert mod.tfvars["machine_type"] == machine
        assert mod.tfvars["gpu_type"] is None and mod.tfvars["gpu_count"] == 0


def test_gcp_n1_machine_types_get_their_gpus_attached(rendered):
    mod = rendered("gcp-n1-t4x4-spot-ports-labels")
    node = mod.resource("google_compute_instance", "node")
    assert one(node["guest_accelerator"]) == {"type": "${var.gpu_type}",
                                             "count": "${var.gpu_count}"}
    assert (mod.tfvars["gpu_type"], mod.tfvars["gpu_count"]) == ("nvidia-tesla-t4", 4)
    mod = rendered("gcp-n1-v100x8-3nodes")
    assert (mod.tfvars["gpu_type"], mod.tfvars["gpu_count"]) == ("nvidia-tesla-v100", 8)


def test_gcp_refuses_a_gpu_that_cannot_attach_to_the_machine_type(tmp_path):
    variant = Variant("bad", gcp("n1-standard-8", "L4", 1), resources={"accelerators": "L4"})
    with pytest.raises(TaskError, match="cannot be attached"):
        render_variant(variant, tmp_path / "m")


def test_gcp_gpu_nodes_terminate_on_host_maintenance(rendered):
    for variant_id in ("gcp-g2-l4x4", "gcp-n1-v100x8-3nodes", "gcp-a3-ultra-h200x8"):
        scheduling = one(rendered(variant_id).resource("google_compute_instance",
                                                       "node")["scheduling"])
        assert scheduling["on_host_maintenance"] == "TERMINATE", variant_id
        assert scheduling["automatic_restart"] is True
        assert "provisioning_model" not in scheduling and "preemptible" not in scheduling
    cpu = one(rendered("gcp-cpu-only").resource("google_compute_instance", "node")["scheduling"])
    assert cpu["on_host_maintenance"] == "MIGRATE"


def test_gcp_spot_nodes_are_spot_preemptible_and_never_restarted(rendered):
    mod = rendered("gcp-a2-a100x8-spot-2nodes")
    scheduling = one(mod.resource("google_compute_instance", "node")["scheduling"])
    assert scheduling == {"provisioning_model": "SPOT", "preemptible": True,
                          "automatic_restart": False,
                          "instance_termination_action": "${var.spot_termination_action}",
                          "on_host_maintenance": "TERMINATE"}
    assert mod.tfvars["spot_termination_action"] == "DELETE"


def test_gcp_firewall_admits_ssh_from_the_caller_and_the_cluster_to_itself(rendered):
    mod = rendered("gcp-g2-l4x4")
    ssh = mod.resource("google_compute_firewall", "ssh")
    assert ssh["source_ranges"] == "${var.ssh_source_ranges}"
    assert one(ssh["allow"]) == {"protocol": "tcp", "ports": ["22"]}
    assert ssh["target_tags"] == ["${local.network_tag}"]
    assert mod.tfvars["ssh_source_ranges"] == [CALLER]
    internal = mod.resource("google_compute_firewall", "internal")
    assert internal["source_tags"] == internal["target_tags"] == ["${local.network_tag}"]
    assert "source_ranges" not in internal
    assert one(internal["allow"]) == {"protocol": "all"}
    node = mod.resource("google_compute_instance", "node")
    assert node["tags"] == ["${local.network_tag}"]
    assert not mod.has("google_compute_firewall", "ports")


def test_gcp_task_ports_open_to_the_caller_only(rendered):
    mod = rendered("gcp-n1-t4x4-spot-ports-labels")
    ports = mod.resource("google_compute_firewall", "ports")
    assert one(ports["allow"]) == {"protocol": "tcp", "ports": "${var.ports}"}
    assert ports["source_ranges"] == "${var.port_source_ranges}"
    assert mod.tfvars["ports"] == ["8080", "9000-9010"]
    assert mod.tfvars["port_source_ranges"] == [CALLER]


def test_gcp_compact_placement_only_for_several_nodes_of_a_supporting_series(rendered):
    assert not rendered("gcp-g2-l4x4").has("google_compute_resource_policy")
    for variant_id, nodes in [("gcp-g2-l4x4-2nodes", 2), ("gcp-a2-a100x8-spot-2nodes", 2)]:
        mod = rendered(variant_id)
        policy = one(mod.resource("google_compute_resource_policy",
                                  "placement")["group_placement_policy"])
        assert policy == {"collocation": "COLLOCATED"}   # no vm_count: see test_fabrics
        assert mod.tfvars["num_nodes"] == nodes
        node = mod.resource("google_compute_instance", "node")
        assert node["resource_policies"] == [
            "${google_compute_resource_policy.placement.self_link}"]
    n1 = rendered("gcp-n1-v100x8-3nodes")      # N1 does not support compact placement
    assert not n1.has("google_compute_resource_policy")
    assert "resource_policies" not in n1.resource("google_compute_instance", "node")


def test_gcp_labels_and_key_come_from_variables(rendered):
    mod = rendered("gcp-n1-t4x4-spot-ports-labels")
    node = mod.resource("google_compute_instance", "node")
    assert node["labels"] == "${local.labels}"
    assert one(one(node["boot_disk"])["initialize_params"])["labels"] == "${local.labels}"
    assert mod.locals["labels"].startswith("${merge(var.labels,")
    assert mod.tfvars["labels"] == {"team": "ml", "project": "mingpt"}
    metadata = node["metadata"]
    assert metadata["ssh-keys"] == "${var.ssh_user}:${trimspace(var.ssh_public_key)}"
    assert metadata["startup-script"] == "${var.startup_script}"
    assert (mod.tfvars["ssh_user"], mod.tfvars["ssh_public_key"]) == ("gcpuser", KEY)
    assert "uv" in mod.tfvars["startup_script"]


def test_gcp_image_disk_and_network(rendered):
    mod = rendered("gcp-g2-l4x4")
    node = mod.resource("google_compute_instance", "node")
    params = one(one(node["boot_disk"])["initialize_params"])
    assert params == {"image": "${var.image}", "size": "${var.disk_size_gb}",
                      "type": "${var.disk_type}", "labels": "${local.labels}"}
    assert mod.tfvars["image"].startswith(
        "projects/deeplearning-platform-release/global/images/family/")
    assert (mod.tfvars["disk_size_gb"], mod.tfvars["disk_type"]) == (256, "pd-balanced")
    nic = one(node["network_interface"])
    assert "access_config" in nic                        # public IP for SSH
    assert mod.tfvars["network"] == "default" and mod.tfvars["subnetwork"] is None
    custom = rendered("gcp-n1-t4x4-spot-ports-labels").tfvars
    assert custom["image"] == "projects/my-proj/global/images/my-image"
    assert custom["disk_size_gb"] == 512
    assert rendered("gcp-a3-ultra-h200x8").tfvars["disk_type"] == "hyperdisk-balanced"
    assert rendered("gcp-a4-b200x8").tfvars["disk_type"] == "hyperdisk-balanced"
    assert rendered("gcp-cpu-only").tfvars["image"].startswith("projects/ubuntu-os-cloud/")
    own = rendered("gcp-own-subnet")
    assert (own.tfvars["network"], own.tfvars["subnetwork"]) == ("ml-vpc",
                                                               "ml-subnet-us-central1")
    assert own.tfvars["service_account"] == {"email": "trainer@p.iam.gserviceaccount.com"}


def test_gcp_provider_takes_project_region_zone_from_variables(rendered):
    mod = rendered("gcp-g2-l4x4")
    assert mod.providers["google"] == {"project": "${var.project}", "region": "${var.region}",
                                       "zone": "${var.zone}"}
    assert (mod.tfvars["project"], mod.tfvars["region"], mod.tfvars["zone"]) == (
        "skyterra-test", "us-central1", "us-central1-a")


# --- Azure structure ---------------------------------------------------------------------
def test_azure_vm_size_key_image_and_disk(rendered):
    mod = rendered("azure-a100")
    vm = mod.resource("azurerm_linux_virtual_machine", "node")
    assert vm["count"] == "${var.num_nodes}" and vm["size"] == "${var.vm_size}"
    assert mod.tfvars["vm_size"] == "Standard_NC24ads_A100_v4"
    assert one(vm["admin_ssh_key"]) == {"username": "${var.ssh_user}",
                                        "public_key": "${trimspace(var.ssh_public_key)}"}
    assert vm["admin_username"] == "${var.ssh_user}" and mod.tfvars["ssh_user"] == "azureuser"
    assert vm["disable_password_authentication"] is True
    assert one(vm["source_image_reference"]) == {
        "publisher": "${var.image.publisher}", "offer": "${var.image.offer}",
        "sku": "${var.image.sku}", "version": "${var.image.version}"}
    assert "source_image_id" not in vm
    assert mod.tfvars["image"] == {"publisher": "microsoft-dsvm", "offer": "ubuntu-hpc",
                                   "sku": "2204", "version": "latest"}
    os_disk = one(vm["os_disk"])
    assert os_disk["disk_size_gb"] == "${var.os_disk_size_gb}"
    assert os_disk["storage_account_type"] == "${var.os_disk_type}"
    assert (mod.tfvars["os_disk_size_gb"], mod.tfvars["os_disk_type"]) == (256, "Premium_LRS")
    assert "priority" not in vm and "proximity_placement_group_id" not in vm
    assert vm["custom_data"] == '${var.custom_data == "" ? null : base64encode(var.custom_data)}'


def test_azure_spot_nodes_are_deleted_on_eviction_without_a_price_cap(rendered):
    mod = rendered("azure-nd-h100-spot-2nodes-ports")
    vm = mod.resource("azurerm_linux_virtual_machine", "node")
    assert (vm["priority"], vm["eviction_policy"], vm["max_bid_price"]) == ("Spot", "Delete", -1)
    assert vm["zone"] == "${var.zone}" and mod.tfvars["zone"] == "2"
    assert mod.tfvars["os_disk_size_gb"] == 1024


def test_azure_nsg_admits_ssh_from_the_caller_and_the_vnet_to_itself(rendered):
    mod = rendered("azure-a100")
    rules = {r["name"]: r for r in mod.resource("azurerm_network_security_group",
                                                "cluster")["security_rule"]}
    assert set(rules) == {"ssh-from-caller", "intra-cluster"}
    ssh = rules["ssh-from-caller"]
    assert (ssh["direction"], ssh["access"], ssh["protocol"]) == ("Inbound", "Allow", "Tcp")
    assert ssh["destination_port_range"] == "22"
    assert ssh["source_address_prefixes"] == "${var.ssh_source_ranges}"
    assert mod.tfvars["ssh_source_ranges"] == [CALLER]
    intra = rules["intra-cluster"]
    assert intra["source_address_prefix"] == intra["destination_address_prefix"] == \
        "VirtualNetwork"
    assoc = mod.resource("azurerm_network_interface_security_group_association", "node")
    assert assoc["network_security_group_id"] == "${azurerm_network_security_group.cluster.id}"
    ports = rendered("azure-nd-h100-spot-2nodes-ports")
    rules = {r["name"]: r for r in ports.resource("azurerm_network_security_group",
                                                  "cluster")["security_rule"]}
    assert rules["task-ports"]["destination_port_ranges"] == "${var.ports}"
    assert rules["task-ports"]["source_address_prefixes"] == "${var.port_source_ranges}"
    assert ports.tfvars["ports"] == ["8888"] and ports.tfvars["port_source_ranges"] == [CALLER]
    priorities = [r["priority"] for r in rules.values()]
    assert len(set(priorities)) == len(priorities)


def test_azure_proximity_placement_only_for_several_nodes(rendered):
    assert not rendered("azure-a100").has("azurerm_proximity_placement_group")
    for variant_id in ("azure-nd-h100-spot-2nodes-ports", "azure-nd-h100-standard-2nodes"):
        mod = rendered(variant_id)
        assert mod.has("azurerm_proximity_placement_group", "cluster")
        vm = mod.resource("azurerm_linux_virtual_machine", "node")
        assert vm["proximity_placement_group_id"] == \
            "${azurerm_proximity_placement_group.cluster.id}"


def test_azure_each_node_has_a_public_ip_and_an_accelerated_nic(rendered):
    mod = rendered("azure-nd-h100-standard-2nodes")
    ip = mod.resource("azurerm_public_ip", "node")
    assert (ip["allocation_method"], ip["sku"], ip["count"]) == ("Static", "Standard",
                                                                 "${var.num_nodes}")
    nic = mod.resource("azurerm_network_interface", "node")
    assert nic["accelerated_networking_enabled"] == "${var.accelerated_networking}"
    assert mod.tfvars["accelerated_networking"] is True
    config = one(nic["ip_configuration"])
    assert config["public_ip_address_id"] == "${azurerm_public_ip.node[count.index].id}"
    assert config["subnet_id"] == "${azurerm_subnet.nodes.id}"
    assert mod.outputs["node_ips"]["value"] == "${local.node_public_ips}"
    assert mod.locals["node_public_ips"] == "${[for ip in azurerm_public_ip.node : ip.ip_address]}"


def test_azure_given_subnet_and_image_id_replace_the_defaults(rendered):
    mod = rendered("azure-t4-subnet-image-id")
    assert not mod.has("azurerm_virtual_network") and not mod.has("azurerm_subnet")
    nic = mod.resource("azurerm_network_interface", "node")
    assert one(nic["ip_configuration"])["subnet_id"] == "${var.subnet_id}"
    assert mod.tfvars["subnet_id"].endswith("/subnets/gpu")
    vm = mod.resource("azurerm_linux_virtual_machine", "node")
    assert vm["source_image_id"] == "${var.image_id}"
    assert "source_image_reference" not in vm
    assert mod.tfvars["image_id"].endswith("/versions/1.0.0")


def test_azure_marketplace_urn_becomes_an_image_reference(rendered):
    mod = rendered("azure-a10-urn-image")
    assert "source_image_reference" in mod.resource("azurerm_linux_virtual_machine", "node")
    assert mod.tfvars["image"] == {"publisher": "microsoft-dsvm", "offer": "ubuntu-hpc",
                                   "sku": "2204", "version": "22.04.2025010101"}
    assert mod.tfvars["image_id"] is None


def test_azure_provider_has_features_and_subscription(rendered):
    mod = rendered("azure-a100")
    provider = mod.providers["azurerm"]
    assert provider["features"] == [{}]
    assert provider["subscription_id"] == "${var.subscription_id}"
    assert mod.tfvars["subscription_id"] == "11111111-2222-3333-4444-555555555555"


def test_azure_tags_come_from_variables(rendered):
    mod = rendered("azure-nd-h100-spot-2nodes-ports")
    assert mod.locals["tags"].startswith("${merge(var.tags,")
    for kind in ("azurerm_resource_group", "azurerm_linux_virtual_machine",
                 "azurerm_network_interface", "azurerm_public_ip",
                 "azurerm_network_security_group", "azurerm_proximity_placement_group"):
        (body,) = mod.resources[kind].values()
        assert body["tags"] == "${local.tags}", kind
    assert mod.tfvars["tags"] == {"team": "ml"}


# --- injection ---------------------------------------------------------------------------
HOSTILE = '${file("/etc/passwd")}"\n} resource "x" "y" { %{ if true }'


@pytest.mark.parametrize("base_id,benign_resources,hostile_resources", [
    ("gcp-n1-t4x4-spot-ports-labels", {}, {"image_id": HOSTILE}),
    ("azure-nd-h100-spot-2nodes-ports",
     {"image_id": "/subscriptions/0/resourceGroups/g/providers/Microsoft.Compute/images/i"},
     {"labels": {"team": HOSTILE[:60]}, "image_id": "/" + HOSTILE}),
])
def test_user_strings_reach_only_the_tfvars(base_id, benign_resources, hostile_resources,
                                            tmp_path):
    base = BY_ID[base_id]
    base = dataclasses.replace(base, resources={**base.resources, **benign_resources})
    benign = render_variant(base, tmp_path / "benign")
    hostile_variant = dataclasses.replace(base, resources={**base.resources, **hostile_resources})
    hostile = render_variant(hostile_variant, tmp_path / "hostile",
                             key=KEY.replace("skyterra", "${path.root} %{if}"))
    for path in sorted(benign.glob("*.tf")):        # structure identical, values elsewhere
        assert (hostile / path.name).read_text() == path.read_text(), path.name
    tfvars = json.loads((hostile / TFVARS_FILE).read_text())
    assert "${path.root} %{if}" in tfvars["ssh_public_key"]
    values = json.dumps(tfvars, ensure_ascii=False)
    assert json.dumps(HOSTILE[:40])[1:-1] in values     # the user's text arrived, as data


# --- with the real providers (only where they can be installed) ---------------------------
@pytest.mark.terraform
@pytest.mark.parametrize("variant_id", ["gcp-g2-l4x4-2nodes", "gcp-n1-t4x4-spot-ports-labels",
                                        "azure-nd-h100-spot-2nodes-ports",
                                        "azure-t4-subnet-image-id"])
def test_terraform_validate_with_the_real_provider(variant_id, tmp_path):
    if not TERRAFORM:
        pytest.skip("terraform is not on PATH")
    provider = "google" if variant_id.startswith("gcp") else "azurerm"
    mirror = provider_mirror()
    if not mirror or not (mirror / "registry.terraform.io" / "hashicorp" / provider).is_dir():
        # Tests only talk to loopback: never let terraform reach for the public registry.
        pytest.skip(f"no local mirror holds hashicorp/{provider} (set SKYTERRA_PROVIDER_MIRROR "
                    "to a filesystem mirror that has it to run this check)")
    out = render_variant(BY_ID[variant_id], tmp_path / "m")
    init = terraform("init", "-backend=false", "-input=false", "-no-color", cwd=out, timeout=300)
    if init.returncode != 0:
        output = " ".join((init.stderr + init.stdout).split())
        reason = output[output.find("Error:"):][:300] if "Error:" in output else output[-300:]
        pytest.skip(f"terraform init cannot install the provider here: {reason}")
    done = terraform("validate", "-no-color", cwd=out, timeout=300)
    assert done.returncode == 0, done.stdout + done.stderr
