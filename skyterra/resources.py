"""What a task asks of one node: cloud/region/zone, accelerators, cpus, memory, disk…

Mirrors SkyPilot's `sky.Resources`: one Resources names at most one
accelerator type. A YAML `accelerators:` list or set, or `any_of`/`ordered`,
becomes several Resources on the Task (see task.py); the optimizer ranks them.
Validation happens here so the same checks guard YAML, SDK and CLI input.
"""

from __future__ import annotations

import dataclasses
import math
import re
from typing import Any

from skyterra import clouds
from skyterra.errors import NotSupportedError, TaskError, did_you_mean

# Canonical accelerator names (SkyPilot's spelling). Input is matched
# case-insensitively; the catalog only ever holds these spellings.
ACCELERATORS = (
    "T4", "T4g", "A10G", "A10", "L4", "L40", "L40S", "V100", "V100-32GB", "A100", "A100-80GB",
    "H100", "H100-MEGA", "H200", "B200", "GB200", "GH200", "P100", "P4", "K80", "M60",
    "MI300X", "Inferentia", "Inferentia2", "Trainium", "Trainium2",
    # Sold by clouds skyterra does not reach (RunPod, Lambda, Kubernetes nodes): known so
    # that a task asking for one gets "no cloud offers …", and a set drops them.
    "A40", "RTX4090", "RTX3090", "RTX3080", "RTX2060", "RTXA6000", "RTXA5000", "RTXA4000",
    "RTX6000-Ada", "MI300", "MI250X", "A6000", "RTX6000", "A5000", "A4500", "A4000",
    "RTXA4500", "RTX3070", "RTX4000-Ada", "RTX5090",
)
_CANONICAL = {name.lower(): name for name in ACCELERATORS}
# Other spellings seen in task files → the canonical name.
_CANONICAL.update({"a100-40gb": "A100", "h100-80gb": "H100", "a100-80g": "A100-80GB",
                   "inferentia1": "Inferentia", "trainium1": "Trainium",
                   "v100-16gb": "V100", "h200-141gb": "H200", "h100-sxm": "H100"})
_TPU = re.compile(r"^tpu-", re.IGNORECASE)

RESOURCE_KEYS = (
    "cloud", "infra", "region", "zone", "accelerators", "cpus", "memory", "instance_type",
    "use_spot", "disk_size", "disk_tier", "image_id", "ports", "labels", "any_of", "ordered",
    "autostop", "accelerator_args", "job_recovery", "network_tier", "spot_recovery",
    "ephemeral_storage", "max_hourly_cost", "container_image", "priority",
)
# Keys SkyPilot accepts that we reject loudly rather than ignore.
UNSUPPORTED_RESOURCE_KEYS: dict[str, str] = {}
# resources.container_image (SkyPilot's newer spelling of image_id: docker:<image>): a
# reference, or a mapping of these keys. Only `ref` names an image a node can pull.
CONTAINER_IMAGE_KEYS = ("ref", "release", "artifact_id", "distribution")
# Keys that only mean something on backends skyterra does not use: accepted with a
# warning that names them (see `ignored_resource_keys`).
IGNORED_RESOURCE_KEYS = {
    "ephemeral_storage": "only has an effect on Kubernetes pods",
    "accelerator_args": "only has an effect on TPUs",
    "priority": "only has an effect on SkyPilot's managed-jobs controller",
}
# resources.job_recovery (SkyPilot's spec): a strategy string, or a mapping of these keys.
RECOVERY_STRATEGIES = ("EAGER_NEXT_REGION", "FAILOVER")   # SkyPilot's default first
JOB_RECOVERY_KEYS = ("strategy", "max_restarts_on_errors", "recover_on_exit_codes")

_CPU_MEM = re.compile(r"^\s*(\d+(?:\.\d+)?)\s*(\+?)\s*$")
# memory / disk_size with SkyPilot's units (powers of 1024; GB is the default)
_SIZE = re.compile(r"^\s*(\d+(?:\.\d+)?)\s*([kmgtp]i?b?)?\s*(\+?)\s*$", re.IGNORECASE)
_UNIT_GB = {"k": 1 / 1024 ** 2, "m": 1 / 1024, "g": 1.0, "t": 1024.0, "p": 1024.0 ** 2}
_LABEL_KEY = re.compile(r"[a-z][a-z0-9_-]{0,62}")  # used with fullmatch (no '\n' at end)
_PORT = re.compile(r"^(\d{1,5})(?:-(\d{1,5}))?$")
DISK_TIERS = ("low", "medium", "high", "ultra", "best")
# SkyPilot's network_tier: `best` asks for the family's fast fabric (EFA, GPUDirect,
# InfiniBand), `standard` opts out; unset means best for multi-node GPU clusters.
NETWORK_TIERS = ("standard", "best")


def canonical_accelerator(name: str, field: str = "resources.accelerators") -> str:
    """Map 'l4', 'a100-80gb' to the catalog's spelling, or raise with a hint."""
    canonical = _CANONICAL.get(str(name).strip().lower())
    if canonical is None and _TPU.match(str(name).strip()):
        raise NotSupportedError(
            f"TPUs ('{name}') are not supported: skyterra launches GPU and CPU virtual "
            "machines. Ask for a GPU instead, e.g. accelerators: A100:8 or H100:8.",
            field=field)
    if canonical is None:
        raise TaskError(
            f"unknown accelerator '{name}'.{did_you_mean(name, ACCELERATORS)} "
            f"Known accelerators: {', '.join(ACCELERATORS)}.", field=field)
    return canonical


def parse_accelerator(spec: Any, field: str = "resources.accelerators") -> tuple[str, int]:
    """'L4:4' | 'H100' | {'A100': 8} (one entry) → ('L4', 4)."""
    if isinstance(spec, dict):
        if len(spec) != 1:
            raise TaskError("a single accelerator mapping must have exactly one entry, "
                            "like {A100: 8}.", field=field)
        (name, count), = spec.items()
        if count is None and ":" in str(name):
            # YAML `{A100:8, H100:8}` (no space after ':') parses as {'A100:8': None, …}.
            return parse_accelerator(str(name), field)
        count = 1 if count is None else count
    elif isinstance(spec, str):
        if len(re.findall(r"[A-Za-z][\w-]*(?::\s*[\d.]+)?", spec)) > 1 and re.search(
                r"[\s,]", spec.strip()):
            raise TaskError(f"{spec!r} names several accelerators in one string; write a list "
                            "(tried in order), e.g. [A100:1, H100:1], or a set {A100:1, "
                            "H100:1} (cheapest first).", field=field)
        name, _, count_text = spec.partition(":")
        count = count_text.strip() if count_text else 1
    else:
        raise TaskError(f"expected an accelerator like 'L4:4', got {type(spec).__name__} "
                        f"{spec!r}.", field=field)
    try:
        if isinstance(count, bool):
            raise TypeError
        number = float(count)
    except (TypeError, ValueError, OverflowError):
        raise TaskError(f"accelerator count {count!r} is not a number; write it like 'L4:4'.",
                        field=field) from None
    if math.isfinite(number) and 0 < number < 1:
        # SkyPilot's fractional GPU (K80:0.5) shares one GPU between jobs of a cluster;
        # a skyterra job gets the whole GPU, so the machine is the same.
        number = 1
    if not math.isfinite(number) or number != int(number) or number < 1 or number > 64:
        raise TaskError(f"accelerator count must be a whole number from 1 to 64 (or a "
                        f"fraction below 1), got {count!r}.", field=field)
    return canonical_accelerator(name, field), int(number)


def parse_accelerator_choices(value: Any, field: str = "resources.accelerators"
                              ) -> tuple[list[tuple[str, int]], bool]:
    """All SkyPilot forms → (choices, ordered).

    'L4:4' / {A100: 8} → one choice; a list → ordered choices (try in order);
    a mapping with several keys (YAML `{A100:8, H100:8}`) → a set (cheapest first).
    """
    if isinstance(value, list):
        if not value:
            raise TaskError("the accelerator list is empty.", field=field)
        return [parse_accelerator(v, f"{field}[{i}]") for i, v in enumerate(value)], True
    if isinstance(value, (set, frozenset)):
        if not value:
            raise TaskError("the accelerator set is empty.", field=field)
        return [parse_accelerator(v, field) for v in sorted(value, key=str)], False
    if isinstance(value, dict) and len(value) > 1:
        return [parse_accelerator({k: v}, field) for k, v in value.items()], False
    if isinstance(value, dict) and len(value) == 1:
        # YAML `{L4:4}` (flow mapping without a space) parses as {'L4:4': None}.
        (key, count), = value.items()
        if count is None and ":" in str(key):
            return [parse_accelerator(str(key), field)], False
    return [parse_accelerator(value, field)], False


def parse_cpus_memory(value: Any, field: str) -> str | None:
    """'4', '4+', 4, 8.5 → normalized string ('4', '4+'), validated."""
    if value is None:
        return None
    if isinstance(value, bool) or not isinstance(value, (str, int, float)):
        raise TaskError(f"expected a number like 4 or '4+', got {value!r}.", field=field)
    match = _CPU_MEM.match(str(value))
    if not match or float(match.group(1)) <= 0 or float(match.group(1)) > 100000:
        raise TaskError(f"expected a positive number like 4, or '4+' for at least 4; got "
                        f"{value!r}.", field=field)
    number = float(match.group(1))
    text = str(int(number)) if number == int(number) else str(number)
    return text + match.group(2)


def parse_memory(value: Any, field: str = "resources.memory") -> str | None:
    """Memory: 32, '32+', '64GB', '1TB+', '1024MB' → GB as '32', '32+', '64', '1024+'."""
    if isinstance(value, str):
        match = _SIZE.match(value)
        if match and match.group(2):
            gigabytes = float(match.group(1)) * _UNIT_GB[match.group(2)[0].lower()]
            if not 0 < gigabytes <= 100000:
                raise TaskError(f"memory is a size like 32, '32+' or '64GB' (at most 100000 "
                                f"GB); got {value!r}.", field=field)
            value = f"{gigabytes:g}{match.group(3)}"
    return parse_cpus_memory(value, field)


def parse_disk_size(value: Any, field: str = "resources.disk_size") -> int | None:
    """disk_size: 256, '256', '256GB', '1TB', '2048MB' → whole GB (floored, like SkyPilot)."""
    if value is None:
        return None
    match = _SIZE.match(str(value)) if isinstance(value, (str, int)) and \
        not isinstance(value, bool) else None
    if match is None or match.group(3):
        raise TaskError(f"disk_size is a size like 256 (GB), '256GB' or '1TB'; got "
                        f"{value!r}.", field=field)
    unit = (match.group(2) or "g")[0].lower()
    size = float(match.group(1)) * _UNIT_GB[unit]
    gigabytes = int(size) if math.isfinite(size) else 0
    if not 10 <= gigabytes <= 65536:
        raise TaskError(f"disk_size must be from 10 to 65536 GB (64 TB); got {value!r}.", field=field)
    return gigabytes


def cpus_memory_bounds(spec: str | None) -> tuple[float, bool]:
    """'4+' → (4.0, True) meaning "at least 4"; '4' → (4.0, False) meaning "exactly 4"."""
    if spec is None:
        return 0.0, True
    return float(spec.rstrip("+")), spec.endswith("+")


def parse_infra(value: str, field: str = "resources.infra"
                ) -> tuple[str | None, str | None, str | None]:
    """'aws/us-east-1/us-east-1a' → ('aws', 'us-east-1', 'us-east-1a'); '*' is any."""
    if not isinstance(value, str) or not value.strip():
        raise TaskError(f"expected 'cloud[/region[/zone]]', got {value!r}.", field=field)
    parts = value.strip().split("/")
    if len(parts) > 3 or any(not p for p in parts):
        raise TaskError(f"expected 'cloud[/region[/zone]]', got {value!r}.", field=field)
    parts = [None if p == "*" else p for p in parts] + [None, None]  # '*' = any (SkyPilot)
    cloud = check_cloud(parts[0], field) if parts[0] else None
    return cloud, parts[1], parts[2]


def check_cloud(value: Any, field: str = "resources.cloud") -> str:
    """A cloud name skyterra knows (lower-cased), or a TaskError naming `field`."""
    return clouds.check_name(value, field)


def parse_job_recovery(value: Any, field: str = "resources.job_recovery"
                       ) -> dict[str, Any] | None:
    """SkyPilot's `job_recovery` (or the older `spot_recovery`) → a normalised mapping.

    `FAILOVER` | {strategy: FAILOVER, max_restarts_on_errors: 3, recover_on_exit_codes:
    [33, 34] or 33} → {"strategy": ..., "max_restarts_on_errors": int or None (not set),
    "recover_on_exit_codes": [int, ...]}. The strategy defaults to SkyPilot's
    (EAGER_NEXT_REGION) when the managed job runs; None here means "not set".
    """
    if value is None:
        return None
    if isinstance(value, str):
        value = {"strategy": value}
    strategy = value.get("strategy") if isinstance(value, dict) else None
    if isinstance(strategy, str) and strategy.strip().lower() == "none":
        return None   # SkyPilot drops the whole setting (restart limits included)
    if not isinstance(value, dict):
        raise TaskError(f"expected a strategy ({' or '.join(RECOVERY_STRATEGIES)}) or a "
                        f"mapping of {', '.join(JOB_RECOVERY_KEYS)}; got {value!r}.",
                        field=field)
    if str(value.get("strategy", "")).upper() == "DYNAMIC_NODE_SET":
        raise NotSupportedError(
            "strategy DYNAMIC_NODE_SET (an elastic node set that shrinks to min_nodes, "
            "SkyPilot's Kubernetes feature) is not supported: skyterra recovers the whole "
            f"cluster. Use {' or '.join(RECOVERY_STRATEGIES)} and drop min_nodes.",
            field=f"{field}.strategy")
    for key in value:
        if key not in JOB_RECOVERY_KEYS:
            raise TaskError(f"unknown key '{key}'.{did_you_mean(str(key), JOB_RECOVERY_KEYS)}"
                            f" Known keys: {', '.join(JOB_RECOVERY_KEYS)}.",
                            field=f"{field}.{key}")
    strategy = value.get("strategy")
    if strategy is not None:
        if not isinstance(strategy, str) or strategy.upper() not in RECOVERY_STRATEGIES:
            raise TaskError(f"unknown strategy {strategy!r}."
                            f"{did_you_mean(str(strategy).upper(), RECOVERY_STRATEGIES)} "
                            f"Choose {' or '.join(RECOVERY_STRATEGIES)}.",
                            field=f"{field}.strategy")
        strategy = strategy.upper()
    restarts = value.get("max_restarts_on_errors")   # None: not set (see managed/recovery)
    if restarts is not None and (isinstance(restarts, bool) or not isinstance(restarts, int)
                                 or restarts < 0):
        raise TaskError(f"expected a whole number >= 0, got {restarts!r}.",
                        field=f"{field}.max_restarts_on_errors")
    codes = value.get("recover_on_exit_codes")
    codes = [] if codes is None else codes if isinstance(codes, list) else [codes]
    for code in codes:
        if isinstance(code, bool) or not isinstance(code, int) or not 0 <= code <= 255:
            raise TaskError(f"exit codes are whole numbers from 0 to 255, got {code!r}.",
                            field=f"{field}.recover_on_exit_codes")
    return {"strategy": strategy, "max_restarts_on_errors": restarts,
            "recover_on_exit_codes": sorted(set(codes))}


def parse_ports(value: Any, field: str = "resources.ports") -> tuple[str, ...]:
    """8080 | '8080-8090' | [8080, '9000-9010'] → ('8080', '9000-9010')."""
    items = list(value) if isinstance(value, (list, tuple)) else [value]
    ports = []
    for item in items:
        match = _PORT.match(str(item).strip()) if not isinstance(item, bool) else None
        if not match:
            raise TaskError(f"bad port {item!r}; write 8080 or '8000-8010'.", field=field)
        low, high = int(match.group(1)), int(match.group(2) or match.group(1))
        if not (1 <= low <= high <= 65535):
            raise TaskError(f"port range {item!r} is outside 1-65535 or reversed.", field=field)
        ports.append(str(low) if low == high else f"{low}-{high}")
    return tuple(ports)


def parse_labels(value: Any, field: str = "resources.labels", cloud: str | None = None
                 ) -> dict[str, str]:
    """Label keys: the named cloud's rule (AWS tags take `Owner`, `team/project`…), else the
    one every cloud shares -- SkyPilot too checks labels against every cloud it may pick."""
    if not isinstance(value, dict):
        raise TaskError(f"expected a mapping of label: value, got {value!r}.", field=field)
    rule = clouds.get_cloud(cloud).label_key if cloud else None
    labels = {}
    for key, val in value.items():
        if rule is not None:
            if not isinstance(key, str) or not re.fullmatch(rule[0], key):
                raise TaskError(f"label key {key!r} is not a valid {cloud} tag key: use {rule[1]}.",
                                field=f"{field}.{key}")
        elif not isinstance(key, str) or not _LABEL_KEY.fullmatch(key):
            raise TaskError(f"label key {key!r} must be lowercase letters, digits, '-' or '_' "
                            "(max 63, starting with a letter): every cloud accepts that (name "
                            "the cloud to use its own tag rules).", field=f"{field}.{key}")
        if not isinstance(val, (str, int, float)) or isinstance(val, bool) or len(str(val)) > 63:
            raise TaskError(f"label value {val!r} must be a string of at most 63 characters.",
                            field=f"{field}.{key}")
        labels[key] = str(val)
    return labels


# SkyPilot's image tags (skypilot:gpu-ubuntu-2204, …): skyterra's default images are
# the same kind of machine (Ubuntu with NVIDIA drivers on GPU nodes), so a tag maps to them.
SKYPILOT_IMAGE_TAG = re.compile(r"^skypilot:[a-z0-9][a-z0-9.-]*$", re.IGNORECASE)


def _container_in_image_map(value: dict, field: str) -> dict | str:
    """SkyPilot's `image_id: {<region>: <machine image>, docker: <image>}`: the job runs in
    that container on every node. skyterra runs a container on its default machine image
    only, so the regions keep their pinning (their `skypilot:` tags are our default image)
    and a custom machine image next to a container is refused, not silently dropped."""
    key = next((k for k in value if isinstance(k, str) and k.strip().lower() == "docker"),
               None)
    if key is None:
        return value
    image = value[key]
    if not isinstance(image, str) or not image.strip():
        raise TaskError(f"expected a container image like 'ubuntu:22.04', got {image!r}.",
                        field=f"{field}.{key}")
    image = image.strip()
    container = image if is_container_image(image) else CONTAINER_PREFIX + image
    check_image_id(container, f"{field}.{key}")
    regions = {k: v for k, v in value.items() if k != key}
    for region, machine in regions.items():
        if isinstance(machine, str) and (is_container_image(machine)
                                         or SKYPILOT_IMAGE_TAG.match(machine.strip())):
            continue
        raise NotSupportedError(
            f"image_id names a machine image for {region} ({machine!r}) and a container "
            f"({image!r}); skyterra runs a container on its own default machine image only. "
            f"Drop the machine image (keep `{region}: skypilot:...` or no region at all) "
            f"to run in the container, or drop `{key}:` to boot the machine image.",
            field=f"{field}.{region}")
    if not regions:
        return container
    return {region: machine if is_container_image(machine) else container
            for region, machine in regions.items()}


def parse_image_id(value: Any, region: str | None = None, field: str = "resources.image_id"
                   ) -> str | dict[str, str] | None:
    """image_id: an image string, a {region: image} map, or a skypilot: tag (→ None: the
    cloud's default image). `docker:<image>` runs the task in that container (container.py)."""
    if value is None:
        return None
    if isinstance(value, dict):
        if not value:
            raise TaskError("expected a non-empty string, or a mapping of region: image; got "
                            "an empty mapping.", field=field)
        value = _container_in_image_map(value, field)
        if isinstance(value, str):
            return parse_image_id(value, region, field)
        images = {}
        for key, image in value.items():
            if not isinstance(key, str) or not key.strip():
                raise TaskError(f"region {key!r} must be a non-empty string.", field=field)
            if isinstance(image, dict):
                raise TaskError("expected an image string per region.", field=f"{field}.{key}")
            images[key.strip()] = parse_image_id(image, None, f"{field}.{key}")
        if region is not None:
            if region not in images:
                raise TaskError(f"region is {region} but image_id names images only for "
                                f"{', '.join(images)}; add {region} to the map or drop "
                                "region.", field=field)
            return images[region]
        return images  # expanded by Resources.choices(): each key pins its region
    if not isinstance(value, str) or not value.strip():
        raise TaskError(f"expected a non-empty string, got {value!r}.", field=field)
    value = value.strip()
    if is_container_image(value):  # a container per node (per region, inside a map)
        check_image_id(value, field)
        return value
    if SKYPILOT_IMAGE_TAG.match(value):
        return None
    return value


@dataclasses.dataclass(frozen=True)
class Resources:
    """One node's requirements. Construct from Python like `sky.Resources(...)`.

    `accelerators` accepts every SkyPilot form; if it names several choices
    use `Resources.choices()` (Task does this for you).
    """

    cloud: str | None = None
    region: str | None = None
    zone: str | None = None
    accelerators: Any = None
    cpus: Any = None
    memory: Any = None
    instance_type: str | None = None
    use_spot: bool = False
    disk_size: int | None = None
    disk_tier: str | None = None
    network_tier: str | None = None
    image_id: str | dict[str, str | None] | None = None
    ports: Any = None
    labels: Any = None
    infra: str | None = None
    job_recovery: Any = None          # managed jobs only (skyterra jobs launch)
    autostop: Any = None                 # autostop.parse forms; kept as its mapping
    max_hourly_cost: float | None = None  # $/h per node; dearer candidates are refused

    def __post_init__(self) -> None:
        set_ = lambda k, v: object.__setattr__(self, k, v)
        if self.infra is not None:
            cloud, region, zone = parse_infra(self.infra)
            if self.cloud and self.cloud != cloud:
                raise TaskError(f"infra says '{cloud}' but cloud says '{self.cloud}'.",
                                field="resources.infra")
            set_("cloud", cloud)
            set_("region", self.region or region)
            set_("zone", self.zone or zone)
            set_("infra", None)
        if self.cloud is not None:
            set_("cloud", check_cloud(self.cloud))
        for key in ("region", "zone", "instance_type"):
            value = getattr(self, key)
            if value is not None and (not isinstance(value, str) or not value.strip()):
                raise TaskError(f"expected a non-empty string, got {value!r}.",
                                field=f"resources.{key}")
        if is_container_image(self.image_id):  # docker:<image>: a container on every node
            check_image_id(self.image_id)
        else:
            set_("image_id", parse_image_id(self.image_id, self.region))
        if self.accelerators is not None:
            choices, _ = parse_accelerator_choices(self.accelerators)
            if len(choices) == 1:
                set_("accelerators", {choices[0][0]: choices[0][1]})
        set_("cpus", parse_cpus_memory(self.cpus, "resources.cpus"))
        set_("memory", parse_memory(self.memory, "resources.memory"))
        if not isinstance(self.use_spot, bool):
            raise TaskError(f"expected true or false, got {self.use_spot!r}.",
                            field="resources.use_spot")
        set_("disk_size", parse_disk_size(self.disk_size))
        if self.disk_tier is not None and self.disk_tier not in DISK_TIERS:
            raise TaskError(f"unknown disk_tier {self.disk_tier!r}."
                            f"{did_you_mean(str(self.disk_tier), DISK_TIERS)} Choose one of "
                            f"{', '.join(DISK_TIERS)}.",
                            field="resources.disk_tier")
        if self.network_tier is not None and self.network_tier not in NETWORK_TIERS:
            raise TaskError(f"unknown network_tier {self.network_tier!r}."
                            f"{did_you_mean(str(self.network_tier), NETWORK_TIERS)} Choose "
                            "standard or best (the fast inter-node fabric: EFA, GPUDirect, "
                            "InfiniBand).", field="resources.network_tier")
        set_("ports", parse_ports(self.ports) if self.ports is not None else ())
        set_("labels", parse_labels(self.labels, cloud=self.cloud)
             if self.labels is not None else {})
        set_("job_recovery", parse_job_recovery(self.job_recovery))
        if self.autostop is not None:
            from skyterra import autostop

            parsed = autostop.parse(self.autostop)
            set_("autostop", parsed.to_record() if parsed else None)
        if self.max_hourly_cost is not None:
            cost = self.max_hourly_cost
            if isinstance(cost, bool) or not isinstance(cost, (int, float)) or cost <= 0:
                raise TaskError(f"expected a positive number of dollars per hour, got "
                                f"{cost!r}.", field="resources.max_hourly_cost")
            set_("max_hourly_cost", float(cost))

    # --- what the optimizer and executor read -------------------------------------
    @property
    def accelerator(self) -> tuple[str, int] | None:
        """(name, count) of the single accelerator, or None for a CPU-only node."""
        if not self.accelerators:
            return None
        choices, _ = parse_accelerator_choices(self.accelerators)
        if len(choices) != 1:
            raise ValueError("Resources with several accelerator choices: call choices() first")
        return choices[0]

    def choices(self) -> tuple[list[Resources], bool]:
        """Expand an accelerator list/set, and a per-region image_id map, into one Resources
        each: (list, ordered). A region's image pins that choice to the region (SkyPilot:
        "failover only goes through the regions given as keys")."""
        if isinstance(self.image_id, dict):
            expanded: list[Resources] = []
            for region, image in self.image_id.items():
                one, ordered = dataclasses.replace(self, image_id=image, region=region).choices()
                expanded.extend(one)
            return expanded, False
        if self.accelerators is None:
            return [self], False
        choices, ordered = parse_accelerator_choices(self.accelerators)
        if len(choices) == 1:
            return [self], False
        return [dataclasses.replace(self, accelerators={n: c}) for n, c in choices], ordered

    def copy(self, **changes: Any) -> Resources:
        return dataclasses.replace(self, **changes)

    def to_yaml_config(self) -> dict[str, Any]:
        """The YAML mapping for this Resources (defaults omitted)."""
        out: dict[str, Any] = {}
        for field in dataclasses.fields(self):
            value = getattr(self, field.name)
            if value in (None, False, (), {}) or field.name == "infra":
                continue
            if field.name == "accelerators":
                value = ", ".join(f"{n}:{c}" for n, c in value.items()) if len(value) == 1 \
                    else dict(value)
            out[field.name] = list(value) if isinstance(value, tuple) else value
        return out

    def __str__(self) -> str:
        parts = []
        if self.cloud:
            parts.append("/".join(p for p in (self.cloud, self.region, self.zone) if p))
        if self.instance_type:
            parts.append(self.instance_type)
        if self.accelerators:
            parts.append(", ".join(f"{n}:{c}" for n, c in dict(self.accelerators).items()))
        if self.cpus:
            parts.append(f"cpus={self.cpus}")
        if self.memory:
            parts.append(f"memory={self.memory}")
        if self.use_spot:
            parts.append("spot")
        return " ".join(parts) or "any"


def ignored_resource_keys(config: Any, field: str = "resources") -> list[str]:
    """Warnings for keys that only matter on backends skyterra does not use."""
    if not isinstance(config, dict):
        return []
    out = [f"{field}.{key} is ignored: it {IGNORED_RESOURCE_KEYS[key]}."
           for key in config if key in IGNORED_RESOURCE_KEYS and config[key] is not None]
    image = config.get("container_image")
    if isinstance(image, dict):
        out += [f"{field}.container_image.{key} is ignored: it only means something to "
                "SkyPilot's image catalog; the nodes pull `ref` from its registry."
                for key in ("release", "distribution") if image.get(key) is not None]
    return out


def _container_image_as_image_id(config: dict, field: str) -> dict:
    """`container_image: <ref>` (or `{ref: <ref>}`) is image_id `docker:<ref>`: the same
    container on every node, pulled straight from its registry."""
    if config.get("container_image") is None:
        return config
    value, where = config["container_image"], f"{field}.container_image"
    if isinstance(value, dict):
        unknown = [k for k in value if k not in CONTAINER_IMAGE_KEYS]
        if unknown:
            raise TaskError(f"unknown key '{unknown[0]}'."
                            f"{did_you_mean(str(unknown[0]), CONTAINER_IMAGE_KEYS)}",
                            field=f"{where}.{unknown[0]}")
        if value.get("ref") is None:
            raise NotSupportedError(
                "container_image without `ref:` names an image by SkyPilot's image catalog "
                "(release / artifact_id), which skyterra cannot look up; give the image "
                "reference as `ref:` (e.g. ghcr.io/org/model@sha256:...).", field=where)
        value, where = value["ref"], f"{where}.ref"
    if not isinstance(value, str) or not value.strip():
        raise TaskError(f"expected a container image reference, got {value!r}.", field=where)
    image_id = config.get("image_id")
    if image_id is not None:
        raise NotSupportedError(
            "container_image and image_id are both given; skyterra runs a container on its "
            "own default machine image only. Keep container_image (drop image_id), or keep "
            "image_id and drop container_image.", field=where)
    reference = value.strip().removeprefix(CONTAINER_PREFIX)
    check_image_id(CONTAINER_PREFIX + reference, where)
    return {**{k: v for k, v in config.items() if k != "container_image"},
            "image_id": CONTAINER_PREFIX + reference}


CONTAINER_PREFIX = "docker:"
# [registry[:port]/]path[:tag][@sha256:digest], lower-case path components.
_IMAGE_REFERENCE = re.compile(
    r"^(?:(?P<registry>[A-Za-z0-9.-]+(?::[0-9]+)?)/)?"
    r"(?P<path>[a-z0-9]+(?:(?:[._]|__|-+)[a-z0-9]+)*(?:/[a-z0-9]+(?:(?:[._]|__|-+)[a-z0-9]+)*)*)"
    r"(?::(?P<tag>[A-Za-z0-9_][A-Za-z0-9_.-]{0,127}))?"
    r"(?:@(?P<digest>sha256:[0-9a-f]{64}))?$")


def is_container_image(image_id: Any) -> bool:
    """Is this image_id a container image (`docker:<image>`) rather than a machine image?"""
    return isinstance(image_id, str) and image_id.strip().startswith(CONTAINER_PREFIX)


def parse_container_image(image_id: str, field: str = "resources.image_id") -> str:
    """`docker:<image>` → the image reference; a malformed reference is a TaskError."""
    reference = image_id.strip()[len(CONTAINER_PREFIX):].strip()
    if not _IMAGE_REFERENCE.match(reference):
        raise TaskError(
            f"image_id {image_id!r} is not a valid container image reference. Write "
            "'docker:<image>[:tag]' or 'docker:<registry>/<path>[:tag][@sha256:…]' with a "
            "lower-case path, e.g. 'docker:ubuntu:22.04' or "
            "'docker:nvcr.io/nvidia/pytorch:24.05-py3'.", field=field)
    return reference


def registry_of(reference: str) -> str:
    """The registry host of an image reference ('' for Docker Hub)."""
    first, _, rest = reference.partition("/")
    if rest and ("." in first or ":" in first or first == "localhost"):
        return first
    return ""


def check_image_id(image_id: Any, field: str = "resources.image_id") -> None:
    """`docker:<image>` (a container on every node) must be a valid image reference;
    machine images are checked by each cloud."""
    if is_container_image(image_id):
        parse_container_image(image_id, field)


def machine_image(image_id: str | None) -> str | None:
    """The machine image a cloud boots: None (its default) when image_id names a
    container (`docker:`), which then runs on the default image."""
    return None if is_container_image(image_id) else image_id


def resources_from_config(config: Any, field: str = "resources") -> Resources:
    """A YAML `resources:` mapping (without any_of/ordered) → Resources, with field paths."""
    if config is None:
        return Resources()
    if not isinstance(config, dict):
        raise TaskError(f"expected a mapping, got {type(config).__name__} {config!r}.",
                        field=field)
    for key in config:
        if key not in RESOURCE_KEYS:
            raise TaskError(f"unknown key '{key}'.{did_you_mean(str(key), RESOURCE_KEYS)}",
                            field=f"{field}.{key}")
        if key in UNSUPPORTED_RESOURCE_KEYS:
            raise NotSupportedError(UNSUPPORTED_RESOURCE_KEYS[key], field=f"{field}.{key}")
    config = _container_image_as_image_id(config, field)
    known = {f.name for f in dataclasses.fields(Resources)}
    kwargs = {k: v for k, v in config.items() if k in known}
    if "spot_recovery" in config:  # SkyPilot's older name for job_recovery
        if "job_recovery" in config:
            raise TaskError("give job_recovery or spot_recovery (its older name), not both.",
                            field=f"{field}.spot_recovery")
        kwargs["job_recovery"] = config["spot_recovery"]
    try:
        return Resources(**kwargs)
    except TaskError as error:
        if error.field and not error.field.startswith(field):
            error_field = field + error.field[len("resources"):]
            raise type(error)(str(error).split(": ", 1)[-1], field=error_field) from None
        raise
