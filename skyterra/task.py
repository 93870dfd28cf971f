"""A task: what to run (setup, run, envs, files) and on what (resources, num_nodes).

Loaded from a SkyPilot task YAML or built in Python (`skyterra.Task(...)`),
validated the same way both times. Every error names the file and the field
path, so a user can find the line without reading a traceback.
"""

from __future__ import annotations

import dataclasses
import os
import re
import shlex
from pathlib import Path
from typing import Any

import yaml

from skyterra import clouds, spec, storage
from skyterra.errors import MissingValueError, NotSupportedError, TaskError
from skyterra.resources import (
    Resources,
    ignored_resource_keys,
    is_container_image,
    resources_from_config,
)

TASK_KEYS = spec.TASK_KEYS
# SkyPilot has no cap of its own (cloud quotas decide). 512 keeps a typo (num_nodes: 5000)
# from becoming a bill, and is what one client can drive: past the relay threshold
# (executor.relay_threshold) commands fan out through the head, so the client's cost stays
# flat; a cloud with a smaller limit (the local cloud: one /24 per cluster) says so itself.
MAX_NODES = 512
MAX_YAML_BYTES = 1 << 20          # a task file is a page of text, not a data set
MAX_YAML_NODES = 20_000           # guards against alias bombs ("billion laughs")
_ENV_KEY = re.compile(r"[A-Za-z_][A-Za-z0-9_]*")  # used with fullmatch (no '\n' at end)
# SkyPilot's cluster key on the user's machine; a file_mounts source naming it means the
# key every node of the cluster trusts (Task.mounts_cluster_key).
CLUSTER_KEY_SOURCE = "~/.ssh/sky-key"
_VAR_REF = re.compile(r"\$\{([A-Za-z_][A-Za-z0-9_]*)\}|\$([A-Za-z_][A-Za-z0-9_]*)")


class _StrictLoader(yaml.SafeLoader):
    """SafeLoader that refuses duplicate keys instead of keeping the last one.

    Merge keys (`<<: *base`) still work: keys written in the mapping override
    merged ones, as YAML says; only a key written twice is an error. Merged
    pairs count against one budget per file, so nested merges cannot blow up.
    """

    merged_pairs = 0

    def flatten_mapping(self, node: yaml.MappingNode) -> None:
        """PyYAML's merge-key expansion, with a size budget checked *before* each copy."""
        merge: list = []
        index = 0
        while index < len(node.value):
            key_node, value_node = node.value[index]
            if key_node.tag == "tag:yaml.org,2002:merge":
                del node.value[index]
                subnodes = value_node.value if isinstance(value_node, yaml.SequenceNode) \
                    else [value_node]
                for subnode in reversed(subnodes):  # the first mapping listed wins
                    if not isinstance(subnode, yaml.MappingNode):
                        raise yaml.constructor.ConstructorError(
                            "while constructing a mapping", node.start_mark,
                            "a merge key `<<:` takes a mapping or a list of mappings",
                            subnode.start_mark)
                    self.flatten_mapping(subnode)
                    self.merged_pairs += len(subnode.value)
                    if self.merged_pairs > MAX_YAML_NODES:
                        raise TaskError(f"the YAML expands to more than {MAX_YAML_NODES} "
                                        "values (merge keys `<<:`?); a task file should be "
                                        "small.")
                    merge.extend(subnode.value)
            else:
                if key_node.tag == "tag:yaml.org,2002:value":
                    key_node.tag = "tag:yaml.org,2002:str"
                index += 1
        if merge:
            node.value = merge + node.value
            node.merged_count = getattr(node, "merged_count", 0) + len(merge)


def _construct_mapping(loader: _StrictLoader, node: yaml.MappingNode) -> dict:
    loader.flatten_mapping(node)
    merged = getattr(node, "merged_count", 0)
    mapping: dict = {}
    explicit: set = set()
    for index, (key_node, value_node) in enumerate(node.value):
        key = loader.construct_object(key_node, deep=True)
        try:
            hash(key)
        except TypeError:
            raise TaskError(f"line {key_node.start_mark.line + 1}: a mapping key must be a "
                            "plain value, not a list or mapping.") from None
        if index >= merged:
            if key in explicit:
                raise TaskError(f"line {key_node.start_mark.line + 1}: key '{key}' appears "
                                "twice in the same mapping; keep one.")
            explicit.add(key)
        mapping[key] = loader.construct_object(value_node, deep=True)
    return mapping


_StrictLoader.add_constructor(yaml.resolver.BaseResolver.DEFAULT_MAPPING_TAG, _construct_mapping)


def _bounded_size(value: Any, limit: int) -> int:
    """Count nodes (with aliases expanded), stopping as soon as `limit` is passed."""
    count, stack = 0, [value]
    while stack and count <= limit:
        item = stack.pop()
        count += 1
        if isinstance(item, dict):
            stack.extend(item.keys())
            stack.extend(item.values())
        elif isinstance(item, list):
            stack.extend(item)
    return count


def load_yaml_text(text: str, source: str) -> Any:
    """Parse a one-document task YAML safely (see load_yaml_documents)."""
    documents = load_yaml_documents(text, source)
    if len(documents) > 1:
        raise TaskError(f"the file holds {len(documents)} YAML documents (a pipeline); run it "
                        "with `skyterra launch FILE` or load it with skyterra.Dag.from_yaml.",
                        source=source)
    return documents[0] if documents else None


def load_yaml_documents(text: str, source: str) -> list[Any]:
    """Parse task YAML safely: no duplicate keys, no alias bombs, clear syntax errors.

    Every `---`-separated document is returned (empty ones dropped); one budget of
    values covers the whole file.
    """
    if len(text.encode("utf-8", "surrogatepass")) > MAX_YAML_BYTES:
        raise TaskError(f"the file is larger than {MAX_YAML_BYTES // 1024} KiB; a task YAML "
                        "should be small (put data in file_mounts).", source=source)
    try:
        loader = _StrictLoader(text)
        try:
            config = []
            while loader.check_data():
                config.append(loader.get_data())
        finally:
            loader.dispose()
    except TaskError as error:
        raise TaskError(str(error), source=source) from None
    except yaml.YAMLError as error:
        mark = getattr(error, "problem_mark", None)
        where = f"line {mark.line + 1}, column {mark.column + 1}: " if mark else ""
        problem = getattr(error, "problem", None) or str(error).splitlines()[0]
        raise TaskError(f"{where}invalid YAML ({problem}). Check the indentation and quoting "
                        "there.", source=source) from None
    except RecursionError:
        raise TaskError("the YAML is nested too deeply to read; a task file should be "
                        "simple.", source=source) from None
    except (ValueError, OverflowError) as error:
        # e.g. an integer with thousands of digits, or a date like 2024-13-45
        detail = str(error).split(";")[0].strip() or type(error).__name__
        raise TaskError(f"the YAML has a value that cannot be read ({detail}).",
                        source=source) from None
    if _bounded_size(config, MAX_YAML_NODES) > MAX_YAML_NODES:
        raise TaskError(f"the YAML expands to more than {MAX_YAML_NODES} values (anchors and "
                        "aliases?); a task file should be small.", source=source)
    return [document for document in config if document is not None]


def _commands(value: Any, field: str) -> str | None:
    """setup/run: a string, or (SDK) a list of command lines joined into one script."""
    if value is None:
        return None
    if isinstance(value, list) and all(isinstance(v, str) for v in value):
        return "\n".join(value)
    if isinstance(value, str):
        return value
    if callable(value):
        raise NotSupportedError("a Python callable as run is not supported; give a string.",
                                field=field)
    raise TaskError(f"expected a string (or a list of strings), got {type(value).__name__} "
                    f"{value!r}.", field=field)


def _env_map(value: Any, field: str, allow_null: bool = True) -> dict[str, str | None]:
    if value is None:
        return {}
    if not isinstance(value, dict):
        raise TaskError(f"expected a mapping KEY: value, got {type(value).__name__}.",
                        field=field)
    out: dict[str, str | None] = {}
    for key, val in value.items():
        if not isinstance(key, str) or not _ENV_KEY.fullmatch(key):
            shown = key if isinstance(key, str) and key.isprintable() else repr(key)
            raise TaskError(f"'{shown}' is not a valid environment variable name (letters, "
                            "digits and '_', not starting with a digit).",
                            field=f"{field}.{shown}")
        if val is None and allow_null:
            out[key] = None
        elif isinstance(val, bool):
            out[key] = "true" if val else "false"
        elif isinstance(val, (str, int, float)):
            out[key] = str(val)
        else:
            raise TaskError(f"expected a string or number, got {type(val).__name__}.",
                            field=f"{field}.{key}")
    return out


def substitute_env(text: str, envs: dict[str, str | None]) -> str:
    """Replace ${VAR} and $VAR that name task envs; leave the others as they are."""
    def replace(match: re.Match) -> str:
        name = match.group(1) or match.group(2)
        value = envs.get(name)
        return value if value is not None else match.group(0)
    return _VAR_REF.sub(replace, text)


@dataclasses.dataclass(frozen=True)
class GitSource:
    """workdir as a git repository: cloned into ~/sky_workdir on every node."""

    url: str
    ref: str | None = None

    def clone_script(self, destination: str) -> str:
        """Shell commands (every value quoted) that leave a fresh clone at `destination`."""
        tmp = f"{destination}.clone"
        lines = [f"rm -rf {tmp}", f"git clone --quiet -- {shlex.quote(self.url)} {tmp}"]
        if self.ref:
            lines.append(f"git -C {tmp} -c advice.detachedHead=false checkout --quiet "
                         f"{shlex.quote(self.ref)}")
        lines += [f"rm -rf {destination}", f"mv {tmp} {destination}"]
        return " && ".join(lines)


def _git_source(value: dict) -> GitSource:
    unknown = sorted(str(key) for key in set(value) - {"url", "ref"})  # keys may be 0, None
    if unknown:
        raise TaskError(f"unknown key '{unknown[0]}'; a git workdir has url and ref.",
                        field=f"workdir.{unknown[0]}")
    url, ref = value.get("url"), value.get("ref")
    if not isinstance(url, str) or not url.strip() or url.strip().startswith("-") \
            or any(c in url for c in "\n\r\x00"):
        raise TaskError(f"expected a git URL (https://…, ssh://…, git@host:repo, file://…), "
                        f"got {url!r}.", field="workdir.url")
    if ref is not None:
        ref = str(ref).strip() if isinstance(ref, (str, int)) and not isinstance(ref, bool) \
            else None
        if not ref or ref.startswith("-") or any(c in ref for c in " \t\n\r\x00~^:?*[\\"):
            raise TaskError(f"expected a branch, tag or commit, got {value.get('ref')!r}.",
                            field="workdir.ref")
    return GitSource(url.strip(), ref)


# Resources fields whose values only mean something on one cloud.
CLOUD_SPECIFIC_FIELDS = ("region", "zone", "instance_type", "image_id")
# SkyPilot's task name rule: alphanumeric runs joined by one or two of . _ -
TASK_NAME = re.compile(r"[a-zA-Z0-9]+(?:[._-]{1,2}[a-zA-Z0-9]+)*")


class Task:
    """A SkyPilot-compatible task. Same arguments as `sky.Task`."""

    def __init__(self, name: str | None = None, setup: str | list[str] | None = None,
                 run: str | list[str] | None = None, envs: dict | None = None,
                 secrets: dict | None = None, workdir: str | dict | GitSource | None = None,
                 num_nodes: int | None = None, resources: Any = None,
                 file_mounts: dict | None = None, *, source: str | None = None,
                 base_dir: str | Path | None = None):
        self.source = source
        self.base_dir = Path(base_dir) if base_dir else Path.cwd()
        # config.docker.run_options: added to the task container's `run` (container.py).
        self.container_run_options: tuple[str, ...] = ()
        # Fields accepted but not used (they only matter on other backends): told, not hidden.
        self.warnings: list[str] = []
        try:
            self._init(name, setup, run, envs, secrets, workdir, num_nodes, file_mounts)
            self.set_resources(resources)
        except TaskError as error:
            if source and not error.source:
                raise type(error)(str(error), source=source) from None
            raise

    def _init(self, name, setup, run, envs, secrets, workdir, num_nodes, file_mounts) -> None:
        if name is not None and (not isinstance(name, str) or not name.strip()):
            raise TaskError(f"expected a non-empty string, got {name!r}.", field="name")
        if name is not None and not TASK_NAME.fullmatch(name):
            raise TaskError(f"task name {name!r} is not valid: use ASCII letters, digits and "
                            "single or double '.', '_' or '-' between them, starting and "
                            "ending with a letter or digit (SkyPilot's rule), e.g. "
                            "'minGPT-ddp'.", field="name")
        self.name = name
        self.setup = _commands(setup, "setup")
        self.run = _commands(run, "run")
        self.envs = _env_map(envs, "envs")
        self.secrets = _env_map(secrets, "secrets")
        overlap = set(self.envs) & set(self.secrets)
        if overlap:
            raise TaskError(f"{min(overlap)!r} is both an env and a secret; keep one.",
                            field="secrets")
        if num_nodes is None:
            num_nodes = 1
        if isinstance(num_nodes, bool) or not isinstance(num_nodes, int) or not (
                1 <= num_nodes <= MAX_NODES):
            raise TaskError(f"num_nodes must be a whole number from 1 to {MAX_NODES}, got "
                            f"{num_nodes!r}.", field="num_nodes")
        self.num_nodes = num_nodes
        self.workdir_git: GitSource | None = None
        if isinstance(workdir, GitSource):
            self.workdir_git, workdir = workdir, None
        elif isinstance(workdir, dict):
            self.workdir_git, workdir = _git_source(workdir), None
        if workdir is not None and (not isinstance(workdir, str) or not workdir.strip()):
            raise TaskError(f"expected a local directory path, got {workdir!r}.",
                            field="workdir")
        if isinstance(workdir, str) and "://" in workdir:
            raise NotSupportedError("a URL as workdir is not supported; for a git repository "
                                    "write `workdir: {url: URL, ref: BRANCH}`, otherwise give "
                                    "a local directory.", field="workdir")
        self._workdir = workdir
        self.file_mounts = self._check_file_mounts(file_mounts)

    def _check_file_mounts(self, value: Any) -> dict[str, str]:
        """Local paths stay here; bucket mounts go to skyterra/storage.py (storage_mounts).
        Bucket mount points and their name/source/store take ${VAR} from envs, as in
        SkyPilot; a bucket named after a required env (null) is checked at launch."""
        self._raw_file_mounts = value
        self.incomplete: list[TaskError] = []  # placeholders left to fill in (launch refuses)
        self.storage_mounts: list[storage.StorageMount] = []
        self._storage_specs: dict[str, Any] = {}
        if value is None:
            return {}
        if not isinstance(value, dict):
            raise TaskError("expected a mapping of remote path: local path.",
                            field="file_mounts")
        mounts = {}
        for remote, local in value.items():
            field = f"file_mounts.{remote}"
            if not isinstance(remote, str) or not remote.strip():
                raise TaskError(f"remote path {remote!r} must be a non-empty string.",
                                field="file_mounts")
            if storage.is_bucket_mount(local):
                spec_value = self._substituted_bucket(local)
                self._storage_specs[remote] = local
                self.warnings.extend(w for w in storage.ignored_keys(remote, local)
                                     if w not in self.warnings)  # (re-checked on --env)
                try:
                    self.storage_mounts.append(storage.parse(
                        substitute_env(remote, self.envs), spec_value,
                        deferred=self._refers_to_required(local)))
                except MissingValueError as missing:
                    self.incomplete.append(missing)
                continue
            if not isinstance(local, str) or not local.strip():
                raise TaskError(f"expected a local path, got {local!r}.", field=field)
            if self._is_cluster_key(local):
                self.warnings.append(f"{field}: {CLUSTER_KEY_SOURCE} is SkyPilot's cluster key;"
                                     " it receives this cluster's own SSH key, which every "
                                     "node trusts.")
            mounts[remote] = local
        return mounts

    def _substituted_bucket(self, value: Any) -> Any:
        if isinstance(value, str):
            return substitute_env(value, self.envs)
        return {k: substitute_env(v, self.envs) if k in ("name", "source", "store")
                and isinstance(v, str) else v for k, v in value.items()}

    def _refers_to_required(self, value: Any) -> bool:
        """Does the bucket spec name an env that is required (null) and not given yet?"""
        texts = [value] if isinstance(value, str) else [
            v for k, v in value.items() if k in ("name", "source", "store") and isinstance(v, str)]
        required = {k for k, v in {**self.envs}.items() if v is None}
        return any((m.group(1) or m.group(2)) in required
                   for text in texts for m in _VAR_REF.finditer(text))

    # --- resources -----------------------------------------------------------------
    def set_resources(self, resources: Any) -> Task:
        """Resources, a list (ordered preference) or a set (cheapest of) of them."""
        ordered = False
        if resources is None:
            items = [Resources()]
        elif isinstance(resources, Resources):
            items = [resources]
        elif isinstance(resources, _ListAsSet):
            items = list(resources)
        elif isinstance(resources, (list, tuple)):
            items, ordered = list(resources), True
        elif isinstance(resources, (set, frozenset)):
            items = list(resources)
        else:
            raise TaskError(f"expected skyterra.Resources, got {type(resources).__name__}.",
                            field="resources")
        if not items or not all(isinstance(r, Resources) for r in items):
            raise TaskError("expected one or more skyterra.Resources.", field="resources")
        expanded: list[Resources] = []
        for item in items:
            choices, choices_ordered = item.choices()
            expanded.extend(choices)
            ordered = ordered or choices_ordered
        self.resources: list[Resources] = expanded
        self.resources_ordered = ordered
        return self

    def set_resources_override(self, **changes: Any) -> Task:
        """Apply CLI overrides (--cloud, --gpus, …) to every resources choice.

        A new cloud does not inherit what only means something on the task's own
        cloud (region, zone, instance_type, image_id): such a field is refused,
        never dropped, unless the override gives it too.
        """
        if "cloud" in changes:
            for resources in self.resources:
                self._check_cloud_override(resources, changes)
        self.resources = [r.copy(**changes) for r in self.resources]
        return self

    def _check_cloud_override(self, resources: Resources, changes: dict[str, Any]) -> None:
        cloud = changes["cloud"]
        if resources.cloud in (None, cloud):
            return
        for key in CLOUD_SPECIFIC_FIELDS:
            value = getattr(resources, key)
            if value is not None and key not in changes:
                raise TaskError(
                    f"--cloud {cloud} replaces the task's cloud {resources.cloud}, but the "
                    f"task also sets {key}: {value}, which belongs to {resources.cloud}. "
                    f"Remove {key} from the task, or launch on {resources.cloud}.",
                    source=self.source, field=f"resources.{key}")

    # --- envs ----------------------------------------------------------------------
    def update_envs(self, envs: dict[str, str]) -> Task:
        self.envs.update(_env_map(envs, "--env", allow_null=False))
        self.file_mounts = self._check_file_mounts(self._raw_file_mounts)  # ${VAR} again
        return self

    def update_secrets(self, secrets: dict[str, str]) -> Task:
        self.secrets.update(_env_map(secrets, "--secret", allow_null=False))
        return self

    def check_required_envs(self) -> None:
        """`KEY: null` in envs/secrets means the user must pass --env KEY=..."""
        missing = self.missing_required_envs()
        if missing:
            raise missing[0]

    def missing_required_envs(self) -> list[TaskError]:
        """One error per required env/secret without a value (a dry run lists them as
        notes; a launch refuses with the first)."""
        errors = []
        for kind, mapping in (("env", self.envs), ("secret", self.secrets)):
            flag = "--env" if kind == "env" else "--secret"
            for key in sorted(k for k, v in mapping.items() if v is None):
                errors.append(TaskError(
                    f"{kind} {key} is required (null in the YAML); pass {flag} {key}=VALUE, "
                    f"or {flag} {key} to copy it from your environment.",
                    source=self.source, field=f"{kind}s.{key}"))
        return errors + [type(e)(e.message, source=self.source, field=e.field)
                         for e in self.incomplete]

    @property
    def workdir(self) -> Path | None:
        """The local workdir, ${VAR} substituted, resolved against the YAML's folder."""
        if self._workdir is None:
            return None
        return self._local_path(self._workdir)

    def resolved_file_mounts(self, cluster_key: Path | None = None) -> dict[str, Path]:
        """remote path -> local path; SkyPilot's cluster key (`~/.ssh/sky-key`) is this
        cluster's own key when `cluster_key` is given (see `mounts_cluster_key`)."""
        return {substitute_env(remote, self.envs):
                cluster_key if cluster_key is not None and self._is_cluster_key(local)
                else self._local_path(local) for remote, local in self.file_mounts.items()}

    def _local_path(self, local: str) -> Path:
        return self.base_dir / os.path.expanduser(substitute_env(local, self.envs))

    def _is_cluster_key(self, local: str) -> bool:
        return substitute_env(local, self.envs) == CLUSTER_KEY_SOURCE

    def mounts_cluster_key(self) -> list[str]:
        """Remote paths that receive SkyPilot's cluster key, `~/.ssh/sky-key`.

        On SkyPilot that file is the key every node of a cluster trusts; task files copy it
        to `~/.ssh/id_rsa` so the nodes can SSH to each other (MPI, DeepSpeed's launcher).
        skyterra's clusters have a key of their own with the same role, so that key is
        what those paths receive, whatever ~/.ssh/sky-key holds on this machine."""
        return [substitute_env(remote, self.envs) for remote, local in self.file_mounts.items()
                if self._is_cluster_key(local)]

    def check_local_paths(self) -> None:
        """Before any cluster is created: do the workdir and file_mounts exist?

        A path built from a required env (`KEY: null`) is not known until the value is
        given at launch; the missing value is what a dry run reports then."""
        self.check_workdir()
        for remote, local in self.file_mounts.items():
            if self._is_cluster_key(local) or self._refers_to_required(local):
                continue
            if not self._local_path(local).exists():
                raise TaskError(f"local path {self._local_path(local)} does not exist.",
                                source=self.source,
                                field=f"file_mounts.{substitute_env(remote, self.envs)}")
        for mount in self.storage_mounts:
            source = mount.local_source(self.base_dir)
            if source is not None and not source.is_dir():
                raise TaskError(f"source {source} is not a local directory; fix the path "
                                "(relative to the task file's folder).", source=self.source,
                                field=f"{mount.field}.source")

    def check_workdir(self) -> None:
        """A missing workdir usually means the task runs from the wrong folder: even a dry
        run refuses it."""
        if self._workdir is not None and self._refers_to_required(self._workdir):
            return
        workdir = self.workdir
        if workdir is not None and not workdir.is_dir():
            raise TaskError(f"workdir {workdir} is not a directory; fix the path (relative "
                            "paths are relative to the task file's folder).",
                            source=self.source, field="workdir")

    @property
    def num_gpus_per_node(self) -> int:
        accel = self.resources[0].accelerator if len(self.resources) == 1 else None
        return accel[1] if accel else 0

    # --- YAML ----------------------------------------------------------------------
    @classmethod
    def from_yaml(cls, path: str | Path, env_overrides: dict[str, str] | None = None,
                  cloud_override: str | None = None) -> Task:
        path = Path(path)
        config = load_yaml_text(read_task_text(path), str(path))
        return cls.from_yaml_config(config, source=str(path), base_dir=path.resolve().parent,
                                    env_overrides=env_overrides, cloud_override=cloud_override)

    @classmethod
    def from_yaml_config(cls, config: Any, *, source: str | None = None,
                         base_dir: str | Path | None = None,
                         env_overrides: dict[str, str] | None = None,
                         cloud_override: str | None = None) -> Task:
        """`cloud_override`: the cloud of `--cloud`, which replaces a cloud skyterra does
        not reach (kubernetes, lambda…) before the resources are read."""
        if config is None:
            raise TaskError("the task is empty; it needs at least a `run:` command.",
                            source=source)
        if not isinstance(config, dict):
            raise TaskError(f"a task YAML is a mapping (name:, resources:, run: …), not a "
                            f"{type(config).__name__}.", source=source)
        spec.check_task_keys(config, source)
        warnings = spec.ignored_task_keys(config) + spec.config_warnings(config, source)
        try:
            resources = parse_resources_section(
                _replace_unreached_cloud(config.get("resources"), cloud_override, warnings),
                warnings)
        except TaskError as error:
            raise type(error)(str(error), source=source) from None
        task = cls(name=config.get("name"), setup=config.get("setup"), run=config.get("run"),
                   envs=config.get("envs"), secrets=config.get("secrets"),
                   workdir=config.get("workdir"), num_nodes=config.get("num_nodes"),
                   resources=resources, file_mounts=config.get("file_mounts"),
                   source=source, base_dir=base_dir)
        task.warnings = [*warnings, *task.warnings]
        task.container_run_options = spec.container_run_options(config, source)
        images = [i for r in task.resources for i in (
            r.image_id.values() if isinstance(r.image_id, dict) else [r.image_id])]
        if task.container_run_options and not any(map(is_container_image, images)):
            task.warnings.append("config.docker.run_options is ignored: the task runs in no "
                                 "container (that needs image_id: docker:<image>).")
        if env_overrides:
            task.update_envs(env_overrides)
        return task

    def to_yaml_config(self) -> dict[str, Any]:
        out: dict[str, Any] = {}
        if self.name:
            out["name"] = self.name
        if self._workdir:
            out["workdir"] = self._workdir
        elif self.workdir_git:
            out["workdir"] = {k: v for k, v in dataclasses.asdict(self.workdir_git).items()
                              if v is not None}
        if self.num_nodes != 1:
            out["num_nodes"] = self.num_nodes
        resources = [r.to_yaml_config() for r in self.resources]
        if len(resources) == 1:
            out["resources"] = resources[0]
        else:
            out["resources"] = {"ordered" if self.resources_ordered else "any_of": resources}
        for key in ("envs", "file_mounts"):
            if getattr(self, key):
                out[key] = dict(getattr(self, key))
        if self._storage_specs:
            out.setdefault("file_mounts", {}).update(self._storage_specs)
        if self.secrets:
            out["secrets"] = {k: None for k in self.secrets}  # never serialize secret values
        for key in ("setup", "run"):
            if getattr(self, key):
                out[key] = getattr(self, key)
        if self.container_run_options:
            out["config"] = {"docker": {"run_options": [
                shlex.join(self.container_run_options)]}}
        return out

    def __repr__(self) -> str:
        return f"Task(name={self.name!r}, num_nodes={self.num_nodes}, resources={self.resources})"


# Where a resources choice runs: a choice that names any of these replaces all of the
# base's (SkyPilot: "any duplicate fields inside any_of override the defaults"; a choice
# with `infra: gcp` must not inherit the base's `cloud: aws` or `region: us-east-1`).
_LOCATION_KEYS = ("cloud", "infra", "region", "zone")


def _merge_choice(base: dict, item: dict) -> dict:
    if set(_LOCATION_KEYS) & set(item):
        base = {k: v for k, v in base.items() if k not in _LOCATION_KEYS}
    if "instance_type" in item and "accelerators" not in item:
        base = {k: v for k, v in base.items() if k != "accelerators"}
    return {**base, **item}


def _replace_unreached_cloud(config: Any, cloud: str | None, warnings: list[str]) -> Any:
    """SkyPilot's `--cloud` override for a file written for a cloud skyterra does not reach:
    that choice's cloud/infra and its region/zone (the other cloud's places, or a
    Kubernetes context) give way to `cloud`. Choices on our clouds are left to the normal
    override, which refuses a region of one cloud on another."""
    if cloud is None or not isinstance(config, dict):
        return config

    def replaced(item: Any, field: str) -> Any:
        if not isinstance(item, dict):
            return item
        named = item.get("cloud") or str(item.get("infra") or "").split("/", 1)[0]
        if not clouds.is_unreached(named):
            return item
        dropped = [f"{k}: {item[k]}" for k in _LOCATION_KEYS if k in item]
        warnings.append(f"{field}: --cloud {cloud} replaces {', '.join(dropped)}.")
        return {**{k: v for k, v in item.items() if k not in _LOCATION_KEYS}, "cloud": cloud}

    config = replaced(config, "resources")
    for key in ("any_of", "ordered", *OLD_CHOICE_KEYS):
        if isinstance(config.get(key), list):
            config = {**config, key: [replaced(item, f"resources.{key}[{index}]")
                                      for index, item in enumerate(config[key])]}
    return config


def parse_resources_section(config: Any, warnings: list[str] | None = None
                            ) -> list[Resources] | set | Resources:
    """`resources:` with optional any_of / ordered → what Task.set_resources takes.

    Keys that only matter on other backends add a line to `warnings`.
    """
    warnings = [] if warnings is None else warnings
    config = _old_choice_keys(config, warnings)
    warnings.extend(ignored_resource_keys(config))
    if not isinstance(config, dict) or not ({"any_of", "ordered"} & set(config)):
        return resources_from_config(config)
    if "any_of" in config and "ordered" in config:
        raise TaskError("use either any_of or ordered, not both.", field="resources")
    key = "any_of" if "any_of" in config else "ordered"
    items = config[key]
    if not isinstance(items, list) or not items:
        raise TaskError("expected a non-empty list of resource mappings.",
                        field=f"resources.{key}")
    base = {k: v for k, v in config.items() if k != key}
    parsed: list[Resources] = []
    skipped: list[NotSupportedError] = []
    for index, item in enumerate(items):
        if not isinstance(item, dict):
            raise TaskError("expected a mapping.", field=f"resources.{key}[{index}]")
        nested = {"any_of", "ordered"} & set(item)
        if nested:
            raise NotSupportedError(f"'{min(nested)}' inside {key} is not supported; "
                                    "list every choice at one level.",
                                    field=f"resources.{key}[{index}].{min(nested)}")
        warnings.extend(ignored_resource_keys(item, f"resources.{key}[{index}]"))
        try:
            parsed.append(resources_from_config(_merge_choice(base, item),
                                                f"resources.{key}[{index}]"))
        except NotSupportedError as error:
            if not _is_other_cloud(error) or len(items) == 1:
                raise
            skipped.append(error)
    if not parsed:
        raise skipped[0]
    warnings.extend(f"{e.field}: {e.message} That choice is skipped." for e in skipped)
    return parsed if key == "ordered" else _ListAsSet(parsed)


# SkyPilot's older names for any_of (its benchmark YAMLs and early examples).
OLD_CHOICE_KEYS = ("candidates", "options")


def _old_choice_keys(config: Any, warnings: list[str]) -> Any:
    """`resources.candidates` / `resources.options` are read as any_of, with a warning."""
    if not isinstance(config, dict):
        return config
    old = [k for k in OLD_CHOICE_KEYS if k in config]
    if not old or {"any_of", "ordered"} & set(config) or len(old) > 1:
        return config
    warnings.append(f"resources.{old[0]}: read as any_of (SkyPilot's current name for a set "
                    "of resource choices); rename it to any_of.")
    return {("any_of" if k == old[0] else k): v for k, v in config.items()}


def _is_other_cloud(error: NotSupportedError) -> bool:
    """A choice on a cloud skyterra does not reach (lambda, kubernetes, …)."""
    return bool(error.field) and error.field.rsplit(".", 1)[-1] in ("cloud", "infra")


class _ListAsSet(list):
    """any_of: a choice set that keeps YAML order for stable output (Resources is unhashable)."""


def read_task_text(path: Path) -> str:
    """A task file's text, or a TaskError that says why it cannot be read."""
    source = str(path)
    try:
        data = path.read_bytes()
    except FileNotFoundError:
        raise TaskError("file not found; check the path.", source=source) from None
    except IsADirectoryError:
        raise TaskError("is a directory; give the task YAML file.", source=source) from None
    except OSError as error:
        raise TaskError(f"cannot read the file ({error.strerror}).", source=source) from None
    except ValueError:  # from Python: a NUL byte in the path
        raise TaskError(f"{source!r} is not a valid file path (NUL byte).") from None
    if b"\x00" in data:
        raise TaskError("is a binary file, not a task YAML.", source=source)
    try:
        text = data.decode("utf-8")
    except UnicodeDecodeError:
        raise TaskError("is not UTF-8 text; save the task YAML as UTF-8.",
                        source=source) from None
    return text

