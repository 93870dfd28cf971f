"""`skyterra render` modules for pipelines, and attach's input checks (no nodes started)."""

from __future__ import annotations

import json
import shutil
import stat
import subprocess
from pathlib import Path

import pytest

import skyterra
from skyterra import pipeline
from skyterra.clouds.local import node_ip
from skyterra.errors import ConfigError
from skyterra.renderer import TFVARS_FILE
from skyterra.task import Task

TERRAFORM = shutil.which("terraform")
RUN = "echo run-marker-7f3a $SKYPILOT_NODE_RANK"


def _task(num_nodes: int = 2, accelerators: str | None = None) -> Task:
    config = {"name": "pipe-task", "num_nodes": num_nodes, "envs": {"SECRETISH": "env-9c1d"},
              "setup": "echo setup-marker-2b8e", "run": RUN}
    if accelerators:
        config["resources"] = {"accelerators": accelerators}
    return Task.from_yaml_config(config)


def _strings(value) -> list[str]:
    if isinstance(value, str):
        return [value]
    if isinstance(value, dict):
        return [s for v in value.values() for s in _strings(v)]
    if isinstance(value, list):
        return [s for v in value for s in _strings(v)]
    return []


def test_rendered_local_module_has_values_only_in_tfvars(skyterra_home, tmp_path):
    result = skyterra.render(_task(), cloud="local", out_dir=tmp_path / "train",
                             cluster_name="pipe-xq7z")
    out = tmp_path / "train"
    assert result.out_dir == out.resolve() and result.cluster_name == "pipe-xq7z"
    tfvars = json.loads((out / TFVARS_FILE).read_text())
    assert tfvars["cluster_name"] == "pipe-xq7z" and tfvars["num_nodes"] == 2
    assert tfvars["ssh_private_key_path"] == str(out / "ssh" / "id_ed25519")
    assert tfvars["nodes_dir"] == str(out / "nodes")
    assert tfvars["ssh_public_key"] == (out / "ssh" / "id_ed25519.pub").read_text().strip()
    module_text = "\n".join(p.read_text() for p in out.rglob("*")
                            if p.is_file() and p.suffix in (".tf", ".sh", ".hcl"))
    values = [s for s in _strings(tfvars) if len(s) > 8 and s != "local-a"]
    values += ["pipe-xq7z", "run-marker-7f3a", "setup-marker-2b8e", "env-9c1d",
               tfvars["subnet_cidr"]]
    leaked = [v for v in values if v in module_text]
    assert not leaked, f"task values pasted into the module: {leaked}"


def test_sky_render_stays_the_function_after_the_submodule_is_imported(tmp_path):
    # The module that renders is skyterra.renderer, so nothing can hide the function.
    code = ("import skyterra.renderer, skyterra.provision\nimport skyterra as sky\n"
            "assert callable(sky.render) and callable(sky.attach)\n"
            "import skyterra.renderer, skyterra.provision\n"
            "from skyterra.renderer import render_module\n"
            "assert callable(sky.render), sky.render\n")
    import sys

    done = subprocess.run([sys.executable, "-c", code], check=False, capture_output=True, text=True,
                          cwd=Path(__file__).resolve().parents[2], timeout=60)
    assert done.returncode == 0, done.stderr


def test_rendered_dir_has_key_readme_and_gitignore(skyterra_home, tmp_path):
    out = tmp_path / "mod"
    pipeline.render_standalone(_task(), out, cloud="local", cluster_name="pipe-readme")
    key = out / "ssh" / "id_ed25519"
    assert stat.S_IMODE(key.stat().st_mode) == 0o600
    assert stat.S_IMODE((out / TFVARS_FILE).stat().st_mode) == 0o600
    assert "ssh/" in (out / ".gitignore").read_text().splitlines()
    readme = (out / "README.md").read_text()
    for name in ("cluster_name", "num_nodes", "subnet_cidr", "ssh_public_key", "nodes_dir"):
        assert f"| `{name}` |" in readme
    for name in ("node_ips", "node_private_ips", "ssh_user", "ssh_private_key_path"):
        assert f"| `{name}` |" in readme
    assert "skyterra attach pipe-readme --from-outputs outputs.json" in readme
    # nothing registered: a rendered module is the pipeline's, not a skyterra cluster
    assert skyterra.status() == []


def test_rendering_again_is_byte_identical_and_keeps_the_subnet(skyterra_home, tmp_path):
    out = tmp_path / "again"
    first = pipeline.render_standalone(_task(), out, cloud="local", cluster_name="pipe-again")
    before = {p: p.read_bytes() for p in first.files}
    second = pipeline.render_standalone(_task(), out, cloud="local", cluster_name="pipe-again")
    assert {p: p.read_bytes() for p in second.files} == before


def test_default_cluster_name_comes_from_the_task(skyterra_home, tmp_path):
    result = pipeline.render_standalone(_task(), tmp_path / "n", cloud="local")
    assert result.cluster_name == "pipe-task"


def test_render_refuses_a_skyterra_cluster_dir(skyterra_home, tmp_path):
    out = tmp_path / "c"
    out.mkdir()
    (out / "cluster.json").write_text("{}")
    with pytest.raises(ConfigError, match="cluster directory"):
        pipeline.render_standalone(_task(), out, cloud="local")


@pytest.mark.skipif(TERRAFORM is None, reason="terraform is not installed")
def test_rendered_local_module_validates_with_plain_terraform(skyterra_home, tmp_path):
    out = tmp_path / "v"
    pipeline.render_standalone(_task(), out, cloud="local", cluster_name="pipe-valid")
    env = {"CHECKPOINT_DISABLE": "1", "TF_CLI_CONFIG_FILE": str(tmp_path / "none.tfrc"),
           "PATH": "/usr/local/bin:/usr/bin:/bin", "HOME": str(tmp_path)}
    (tmp_path / "none.tfrc").write_text("")
    for argv in (["init", "-backend=false", "-input=false"], ["validate"],
                 ["fmt", "-check", "-recursive"]):
        done = subprocess.run([TERRAFORM, *argv], check=False, cwd=out, env=env, capture_output=True,
                              text=True, timeout=120)
        assert done.returncode == 0, (argv, done.stdout, done.stderr)


@pytest.mark.skipif(TERRAFORM is None, reason="terraform is not installed")
@pytest.mark.parametrize("cloud", ["local", "aws", "gcp", "azure"])
def test_rendered_modules_of_every_cloud_pass_fmt_check(skyterra_home, ssh_cidrs, tmp_path,
                                                      cloud):
    # ssh_cidrs: the AWS render needs an ingress address until render leaves it to a
    # Terraform variable.
    (skyterra_home).mkdir(parents=True, exist_ok=True)
    (skyterra_home / "config.yaml").write_text(
        "provision:\n  gcp_project: skyterra-test\n"
        "  azure_subscription_id: 11111111-2222-3333-4444-555555555555\n")
    out = tmp_path / cloud
    pipeline.render_standalone(_task(accelerators={"local": None, "azure": "T4:1"}.get(cloud, "L4:1")), out,
                               cloud=cloud, cluster_name=f"pipe-{cloud}")
    assert (out / TFVARS_FILE).exists() and (out / "README.md").exists()
    done = subprocess.run([TERRAFORM, "fmt", "-check", "-recursive"], check=False, cwd=out,
                          capture_output=True, text=True, timeout=60,
                          env={"CHECKPOINT_DISABLE": "1", "PATH": "/usr/local/bin:/usr/bin:/bin"})
    assert done.returncode == 0, done.stdout + done.stderr


# --- attach: input checks that fail before any SSH ------------------------------------------
def _outputs(key: Path, **changes) -> dict:
    values = {"node_ips": ["10.0.0.5", "10.0.0.6"], "node_private_ips": ["10.1.0.5", "10.1.0.6"],
              "ssh_user": "ubuntu", "ssh_private_key_path": str(key), "ssh_port": 22}
    values.update(changes)
    return {k: {"value": v, "type": "string", "sensitive": False} for k, v in values.items()
            if v is not None}


def test_attach_needs_exactly_one_source(skyterra_home, tmp_path):
    with pytest.raises(ConfigError, match="exactly one"):
        skyterra.attach("ext", None)
    with pytest.raises(ConfigError, match="exactly one"):
        skyterra.attach("ext", {"node_ips": {"value": []}}, tf_dir=tmp_path)


def test_attach_names_a_missing_key_and_missing_outputs(skyterra_home, tmp_path):
    with pytest.raises(ConfigError, match="does not exist"):
        skyterra.attach("ext", _outputs(tmp_path / "nokey"))
    key = tmp_path / "id"
    key.write_text("x")
    with pytest.raises(ConfigError, match="node_ips"):
        skyterra.attach("ext", _outputs(key, node_ips=None))
    with pytest.raises(ConfigError, match="ssh_user"):
        skyterra.attach("ext", _outputs(key, ssh_user=None))
    bad = tmp_path / "outputs.json"
    bad.write_text("not json")
    with pytest.raises(ConfigError, match="terraform output -json"):
        skyterra.attach("ext", bad)
    assert skyterra.status() == []


def test_outputs_file_and_relative_key_resolve_next_to_it(tmp_path):
    key = tmp_path / "keys" / "id"
    key.parent.mkdir()
    key.write_text("x")
    path = tmp_path / "outputs.json"
    path.write_text(json.dumps(_outputs(Path("keys/id"))))
    values, base = pipeline.load_outputs(path)
    assert base == tmp_path and values["node_ips"] == ["10.0.0.5", "10.0.0.6"]
    assert values["ssh_private_key_path"] == "keys/id"


def test_local_slot_is_recovered_from_a_node_address():
    for slot in (1, 255, 256, 4097, 16383):
        assert pipeline._slot_of(node_ip(slot, 0)) == slot
    assert pipeline._slot_of("127.0.0.1") is None
    assert pipeline._slot_of("10.0.0.1") is None


def test_json_outputs_for_scripts(skyterra_home, tmp_path):
    from tests.e2e.helpers import skyterra as cli
    from tests.e2e.helpers import write_task

    task = write_task(tmp_path, "num_nodes: 2\nrun: echo hi\n")
    dry = json.loads(cli("launch", str(task), "--cloud", "local", "--dryrun", "--json",
                         "-c", "dry-json", "--out", str(tmp_path / "dry")).stdout)
    assert dry["cluster_name"] == "dry-json" and dry["candidates"][0]["cloud"] == "local"
    assert json.loads(cli("status", "--json").stdout) == []
    rendered = json.loads(cli("render", str(task), "--cloud", "local", "--out",
                              str(tmp_path / "r"), "--json").stdout)
    assert rendered["candidate"]["cloud"] == "local"
    assert str(tmp_path / "r" / "terraform.tfvars.json") in rendered["files"]
    missing = cli("queue", "nope", "--json", check=False)
    assert missing.returncode != 0 and "does not exist" in missing.stderr
