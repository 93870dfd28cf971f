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
    "T4", "A10G", "A10", "L4", "L40S", "V100", "V100-32GB", "A100", "A100-80GB",
    "H100", "H100-MEGA", "H200", "B200", "P100", "K80",
)
_CANONICAL = {name.lower(): name for name in ACCELERATORS}

RESOURCE_KEYS = (
    "cloud", "infra", "region", "zone", "accelerators", "cpus", "memory", "instance_type",
    "use_spot", "disk_size", "disk_tier", "image_id", "ports", "labels", "any_of", "ordered",
    "autostop", "accelerator_args", "job_recovery", "network_tier", "spot_recovery",
    "max_hourly_cost",
)
# Keys SkyPilot accepts that we reject loudly rather than ignore.
UNSUPPORTED_RESOURCE_KEYS = ("accelerator_args", "job_recovery", "network_tier",
                             "spot_recovery")

_CPU_MEM = re.compile(r"^\s*(\d+(?:\.\d+)?)\s*(\+?)\s*$")
_LABEL_KEY = re.compile(r"[a-z][a-z0-9_-]{0,62}")  # used with fullmatch (no '\n' at end)
_PORT = re.compile(r"^(\d{1,5})(?:-(\d{1,5}))?$")
DISK_TIERS = ("low", "medium", "high", "ultra", "best")


def canonical_accelerator(name: str, field: str = "resources.accelerators") -> str:
    """Map 'l4', 'a100-80gb' to the catalog's spelling, or raise with a hint."""
    canonical = _CANONICAL.get(str(name).strip().lower())
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
    if not math.isfinite(number) or number != int(number) or number < 1 or number > 64:
        raise TaskError(f"accelerator count must be a whole number from 1 to 64, got {count!r}.",
                        field=field)
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


def cpus_memory_bounds(spec: str | None) -> tuple[float, bool]:
    """'4+' → (4.0, True) meaning "at least 4"; '4' → (4.0, False) meaning "exactly 4"."""
    if spec is None:
        return 0.0, True
    return float(spec.rstrip("+")), spec.endswith("+")


def parse_infra(value: str, field: str = "resources.infra") -> tuple[str, str | None, str | None]:
    """'aws/us-east-1/us-east-1a' → ('aws', 'us-east-1', 'us-east-1a')."""
    if not isinstance(value, str) or not value.strip():
        raise TaskError(f"expected 'cloud[/region[/zone]]', got {value!r}.", field=field)
    parts = value.strip().split("/")
    if len(parts) > 3 or any(not p for p in parts):
        raise TaskError(f"expected 'cloud[/region[/zone]]', got {value!r}.", field=field)
    cloud = check_cloud(parts[0], field)
    return cloud, (parts[1] if len(parts) > 1 else None), (parts[2] if len(parts) > 2 else None)


def check_cloud(value: Any, field: str = "resources.cloud") -> str:
    """A cloud name skyterra knows (lower-cased), or a TaskError naming `field`."""
    return clouds.check_name(value, field)


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


def parse_labels(value: Any, field: str = "resources.labels") -> dict[str, str]:
    if not isinstance(value, dict):
        raise TaskError(f"expected a mapping of label: value, got {value!r}.", field=field)
    labels = {}
    for key, val in value.items():
        if not isinstance(key, str) or not _LABEL_KEY.fullmatch(key):
            raise TaskError(f"label key {key!r} must be lowercase letters, digits, '-' or '_' "
                            "(max 63, starting with a letter): every cloud accepts that.",
                            field=f"{field}.{key}")
        if not isinstance(val, (str, int, float)) or isinstance(val, bool) or len(str(val)) > 63:
            raise TaskError(f"label value {val!r} must be a string of at most 63 characters.",
                            field=f"{field}.{key}")
        labels[key] = str(val)
    return labels


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
    image_id: str | None = None
    ports: Any = None
    labels: Any = None
    infra: str | None = None
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
        for key in ("region", "zone", "instance_type", "image_id"):
            value = getattr(self, key)
            if value is not None and (not isinstance(value, str) or not value.strip()):
                raise TaskError(f"expected a non-empty string, got {value!r}.",
                                field=f"resources.{key}")
        if self.accelerators is not None:
            choices, _ = parse_accelerator_choices(self.accelerators)
            if len(choices) == 1:
                set_("accelerators", {choices[0][0]: choices[0][1]})
        set_("cpus", parse_cpus_memory(self.cpus, "resources.cpus"))
        set_("memory", parse_cpus_memory(self.memory, "resources.memory"))
        if not isinstance(self.use_spot, bool):
            raise TaskError(f"expected true or false, got {self.use_spot!r}.",
                            field="resources.use_spot")
        if self.disk_size is not None and (
                isinstance(self.disk_size, bool) or not isinstance(self.disk_size, int)
                or not 10 <= self.disk_size <= 65536):
            raise TaskError(f"disk_size is in GB, a whole number from 10 to 65536; got "
                            f"{self.disk_size!r}.", field="resources.disk_size")
        if self.disk_tier is not None and self.disk_tier not in DISK_TIERS:
            raise TaskError(f"unknown disk_tier {self.disk_tier!r}."
                            f"{did_you_mean(str(self.disk_tier), DISK_TIERS)} Choose one of "
                            f"{', '.join(DISK_TIERS)}.",
                            field="resources.disk_tier")
        set_("ports", parse_ports(self.ports) if self.ports is not None else ())
        set_("labels", parse_labels(self.labels) if self.labels is not None else {})
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
        """Expand an accelerator list/set into one Resources each: (list, ordered)."""
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
            raise NotSupportedError(f"'{key}' is not supported by skyterra yet; remove it.",
                                    field=f"{field}.{key}")
    known = {f.name for f in dataclasses.fields(Resources)}
    kwargs = {k: v for k, v in config.items() if k in known}
    try:
        return Resources(**kwargs)
    except TaskError as error:
        if error.field and not error.field.startswith(field):
            error_field = field + error.field[len("resources"):]
            raise type(error)(str(error).split(": ", 1)[-1], field=error_field) from None
        raise
