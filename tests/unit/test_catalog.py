"""The shipped catalogs are well-formed, and the reader says where a bad row is.

These tests read the real CSVs (skyterra/catalog/*.csv), so a hand edit or a
refresh that breaks a row, misspells a GPU or inverts spot and on-demand
fails here rather than in a user's dryrun.
"""

from __future__ import annotations

import re
from collections import Counter
from pathlib import Path

import pytest

from skyterra import catalog
from skyterra.catalog import refresh
from skyterra.catalog.row import COLUMNS, CatalogRow, header_comment, read_csv, write_csv
from skyterra.errors import ConfigError
from skyterra.resources import ACCELERATORS, Resources

SHIPPED = sorted(catalog.SHIPPED_DIR.glob("*.csv"))
HEADLINE_GPUS = ("T4", "A10G", "L4", "L40S", "V100", "A100", "A100-80GB", "H100", "H200")


@pytest.fixture(params=[p.stem for p in SHIPPED])
def shipped(request) -> tuple[Path, list[CatalogRow]]:
    path = catalog.SHIPPED_DIR / f"{request.param}.csv"
    return path, read_csv(path)


def test_every_cloud_ships_a_catalog():
    assert [p.stem for p in SHIPPED] == ["aws", "azure", "gcp"]
    assert (catalog.SHIPPED_DIR / "SOURCES.md").is_file()


def test_every_row_parses_with_the_documented_columns(shipped):
    path, rows = shipped
    lines = [line for line in path.read_text().splitlines() if not line.startswith("#")]
    assert lines[0] == ",".join(COLUMNS)
    assert len(rows) == len(lines) - 1 > 20


def test_each_file_records_its_source_and_date(shipped):
    path, _ = shipped
    comment = header_comment(path)
    assert path.stem in comment and "2026-" in comment and "SOURCES.md" in comment


def test_accelerator_names_are_canonical(shipped):
    _, rows = shipped
    names = {r.accelerator_name for r in rows if r.accelerator_name}
    assert names <= set(ACCELERATORS)


def test_prices_are_positive_and_spot_is_not_above_on_demand(shipped):
    _, rows = shipped
    assert all(r.price > 0 for r in rows)
    assert all(0 < r.spot_price <= r.price for r in rows if r.spot_price is not None)


def test_machines_have_cpus_memory_and_gpu_memory(shipped):
    _, rows = shipped
    assert all(r.vcpus >= 1 and r.memory_gib >= 1 for r in rows)
    assert all(r.accelerator_memory_gib > 0 for r in rows if r.accelerator_name)


def test_no_duplicate_rows(shipped):
    _, rows = shipped
    duplicates = [k for k, n in Counter(r.key for r in rows).items() if n > 1]
    assert duplicates == []


def test_a_machine_has_the_same_shape_and_gpu_everywhere(shipped):
    _, rows = shipped
    shapes: dict[tuple, set] = {}
    for r in rows:
        shapes.setdefault((r.instance_type, r.accelerator_name, r.accelerator_count), set()).add(
            (r.vcpus, r.memory_gib, r.accelerator_memory_gib))
    assert {k: v for k, v in shapes.items() if len(v) > 1} == {}


def test_zones_belong_to_their_region(shipped):
    _, rows = shipped
    assert all(catalog.zone_in_region(r.zone, r.region) for r in rows if r.zone)


def test_every_cloud_has_cpu_only_machines(shipped):
    _, rows = shipped
    assert any(r.accelerator_name is None and r.vcpus >= 4 for r in rows)


# Azure's NC H100 v5 sizes carry the H100 NVL (94 GB), which SkyPilot's Azure catalog names
# "H100" like the 80 GB SXM part; the only name allowed two memory sizes.
SAME_NAME_TWO_MEMORIES = {"H100": {80.0, 94.0}}


def test_gpu_memory_is_the_same_for_a_gpu_on_every_cloud():
    memory: dict[str, set] = {}
    for path in SHIPPED:
        for r in read_csv(path):
            if r.accelerator_name:
                memory.setdefault(r.accelerator_name, set()).add(r.accelerator_memory_gib)
    assert {k: v for k, v in memory.items()
            if len(v) > 1 and v != SAME_NAME_TWO_MEMORIES.get(k)} == {}


def test_h100_2_resolves_on_azure_to_the_nc_h100_v5():
    found = catalog.offers("azure", Resources(accelerators="H100:2"))
    assert found[0].instance_type == "Standard_NC80adis_H100_v5"
    assert not catalog.offers("azure", Resources(accelerators="H100:2", use_spot=True))


def test_headline_gpus_are_offered_somewhere():
    offered = {r.accelerator_name for p in SHIPPED for r in read_csv(p)}
    assert set(HEADLINE_GPUS) <= offered


def test_main_regions_are_covered():
    regions = {p.stem: {r.region for r in read_csv(p)} for p in SHIPPED}
    assert {"us-east-1", "us-east-2", "us-west-2", "eu-west-1"} <= regions["aws"]
    assert {"us-central1", "us-east4", "europe-west4"} <= regions["gcp"]
    assert {"eastus", "westus2", "westus3", "westeurope"} <= regions["azure"]


# Regions added on 2026-12-01 (SOURCES.md says how each price there is derived).
AWS_WIDE = {"us-west-1", "ca-central-1", "sa-east-1", "eu-west-2", "eu-west-3", "eu-north-1",
            "ap-northeast-1", "ap-northeast-2", "ap-northeast-3", "ap-southeast-1",
            "ap-southeast-2", "ap-south-1"}


def _by_region(cloud: str, family: str) -> dict[str, float]:
    rows = read_csv(catalog.SHIPPED_DIR / f"{cloud}.csv")
    return {r.region: r.price for r in rows if r.instance_type == family}


@pytest.mark.parametrize("instance_type", ["m5.large", "c5.xlarge", "r5.large", "m6i.large",
                                           "c6i.large", "g4dn.xlarge"])
def test_aws_families_are_in_the_commercial_regions_that_sell_them(instance_type):
    prices = _by_region("aws", instance_type)
    assert AWS_WIDE <= set(prices), sorted(AWS_WIDE - set(prices))
    # derived prices are never cheaper than us-east-1
    assert all(p >= prices["us-east-1"] for p in prices.values())
    ratio = prices["ap-northeast-1"] / prices["us-east-1"]
    if instance_type.startswith("g4dn"):   # GPU family: its own observed ratio (0.71 / 0.526)
        assert ratio == pytest.approx(0.71 / 0.526, rel=1e-3)
    else:                                  # CPU family: m5.large's ratio
        assert ratio == pytest.approx(0.124 / 0.096, rel=1e-3)


def test_m5_c5_r5_are_in_every_region_of_the_catalog():
    regions = {r.region for r in read_csv(catalog.SHIPPED_DIR / "aws.csv")}
    for family in ("m5.large", "c5.large", "r5.large"):
        assert set(_by_region("aws", family)) == regions


def test_gcp_t4_and_l4_zones_in_the_added_regions_and_tier1_prices():
    rows = read_csv(catalog.SHIPPED_DIR / "gcp.csv")
    zones = {(r.accelerator_name, r.zone) for r in rows if r.accelerator_name}
    assert {("T4", "us-east1-c"), ("T4", "us-west1-b"), ("L4", "us-west1-a"),
            ("L4", "europe-west1-b")} <= zones
    price = {(r.instance_type, r.accelerator_name, r.accelerator_count, r.region): r.price
             for r in rows}
    central = price[("g2-standard-4", "L4", 1, "us-central1")]
    assert price[("g2-standard-4", "L4", 1, "us-east1")] == central  # same tier-1 price


def test_azure_general_purpose_sizes_in_more_regions():
    prices = _by_region("azure", "Standard_D4s_v5")
    assert {"northeurope", "uksouth", "japaneast", "southeastasia", "australiaeast",
            "centralus", "swedencentral"} <= set(prices)


# Where each family is sold, as listed (one row per zone offering it) in SkyPilot's public
# catalog built from the clouds' APIs (skypilot-org/skypilot-catalog, catalogs/v7/aws/vms.csv
# and catalogs/v7/gcp/vms.csv, read 2026-12-01). Our regions must include these; SkyPilot's
# fetcher skips a few AWS regions (e.g. sa-east-1), so ours may list more.
AWS_SOLD = {
    "g4dn.xlarge": {"ap-northeast-1", "ap-northeast-2", "ap-northeast-3", "ap-south-1",
                    "ap-southeast-1", "ap-southeast-2", "ca-central-1", "eu-central-1",
                    "eu-north-1", "eu-south-1", "eu-west-1", "eu-west-2", "eu-west-3",
                    "me-south-1", "us-east-1", "us-east-2", "us-west-1", "us-west-2"},
    "g5.12xlarge": {"ap-northeast-1", "ap-northeast-2", "ap-south-1", "ap-southeast-2",
                    "ap-southeast-3", "ca-central-1", "eu-central-1", "eu-north-1",
                    "eu-west-1", "eu-west-2", "me-central-1", "us-east-1", "us-east-2"},
    "g6.xlarge": {"ap-northeast-1", "ap-northeast-2", "ap-south-1", "ap-southeast-2",
                  "ca-central-1", "eu-central-1", "eu-north-1", "eu-west-2", "eu-west-3",
                  "me-central-1", "sa-east-1", "us-east-1", "us-east-2", "us-west-2"},
    "g6e.12xlarge": {"ap-northeast-1", "ap-northeast-2", "ap-northeast-3", "ap-south-1",
                     "eu-central-1", "eu-north-1", "me-central-1", "us-east-1", "us-east-2",
                     "us-west-2"},
    "inf1.xlarge": {"af-south-1", "ap-east-1", "ap-northeast-1", "ap-northeast-2", "ap-south-1",
                    "ap-southeast-1", "ap-southeast-2", "ca-central-1", "eu-central-1",
                    "eu-north-1", "eu-south-1", "eu-west-1", "eu-west-2", "eu-west-3",
                    "me-south-1", "us-east-1", "us-east-2", "us-west-1", "us-west-2"},
    "inf2.24xlarge": {"ap-northeast-1", "ap-south-1", "ap-southeast-1", "ap-southeast-2",
                      "eu-central-1", "eu-north-1", "eu-west-1", "eu-west-2", "eu-west-3",
                      "us-east-1", "us-east-2", "us-west-2"},
    "p3.8xlarge": {"ap-northeast-1", "ap-northeast-2", "ap-southeast-1", "ap-southeast-2",
                   "ca-central-1", "eu-central-1", "eu-west-1", "eu-west-2", "us-east-1",
                   "us-east-2", "us-west-2"},
    "p4d.24xlarge": {"ap-northeast-1", "ap-northeast-2", "ap-south-1", "ap-southeast-1",
                     "ap-southeast-2", "ca-central-1", "eu-central-1", "eu-north-1", "eu-west-1",
                     "eu-west-2", "sa-east-1", "us-east-1", "us-east-2", "us-west-2"},
    "p5.48xlarge": {"ap-northeast-1", "ap-northeast-2", "ap-south-1", "ap-southeast-2",
                    "ap-southeast-3", "ca-central-1", "eu-north-1", "eu-west-2", "sa-east-1",
                    "us-east-1", "us-east-2", "us-west-1", "us-west-2"},
    # instances.vantage.sh's price list (tsaol/aws-gpu data/p5_family_all.js, p4de_instances.js,
    # p6-b200_instances.js): every commercial region that lists an on-demand price
    "p5.4xlarge": {"ap-northeast-1", "ap-south-1", "ap-southeast-2", "ap-southeast-3",
                   "eu-west-2", "sa-east-1", "us-east-1", "us-east-2", "us-west-2"},
    "p4de.24xlarge": {"ap-northeast-1", "ap-southeast-1", "eu-central-1", "us-east-1",
                      "us-west-2"},
    "p6-b200.48xlarge": {"ap-south-1", "us-east-1", "us-east-2", "us-west-2"},
    "m7i.large": {"ap-northeast-1", "ap-northeast-2", "ap-south-1", "ap-southeast-1",
                  "ap-southeast-2", "ap-southeast-3", "ca-central-1", "eu-central-1",
                  "eu-north-1", "eu-west-1", "eu-west-2", "eu-west-3", "us-east-1", "us-east-2",
                  "us-west-1", "us-west-2"},
    "p5en.48xlarge": {"ap-northeast-1", "ap-northeast-2", "ap-south-1", "ap-southeast-3",
                      "eu-north-1", "me-central-1", "us-east-1", "us-east-2", "us-west-1",
                      "us-west-2"},
}
GCP_SOLD = {
    "a3-highgpu-2g": {"asia-east1-c", "asia-northeast1-b", "asia-south1-c", "asia-southeast1-b",
                      "asia-southeast1-c", "australia-southeast1-c", "europe-north1-c",
                      "europe-west1-b", "europe-west1-c", "europe-west3-c", "europe-west4-b",
                      "europe-west4-c", "europe-west8-c", "us-central1-a", "us-central1-b",
                      "us-central1-c", "us-east4-a", "us-east4-b", "us-east4-c", "us-east5-a",
                      "us-west1-a", "us-west1-b", "us-west4-a"},
    "a3-ultragpu-8g": {"asia-south1-b", "asia-south2-c", "europe-west1-b", "europe-west4-a",
                       "us-central1-b", "us-east4-b", "us-east5-a", "us-south1-b",
                       "us-west1-c"},
    "a2-highgpu-8g": {"asia-northeast1-a", "asia-northeast1-c", "asia-northeast3-a",
                      "asia-northeast3-b", "asia-southeast1-b", "asia-southeast1-c",
                      "europe-west4-a", "europe-west4-b", "me-west1-a", "me-west1-c",
                      "us-central1-a", "us-central1-b", "us-central1-c", "us-central1-f",
                      "us-east1-b", "us-west1-b", "us-west3-b", "us-west4-b"},
    # SkyPilot's catalogs/v9/gcp/vms.csv, the zones it prices at the on-demand $90.216
    "a4-highgpu-8g": {"europe-west4-b", "us-central1-b", "us-east1-b", "us-south1-b"},
    "a2-ultragpu-8g": {"asia-southeast1-c", "europe-west4-a", "us-central1-a", "us-central1-c",
                       "us-east4-c", "us-east5-a", "us-east5-b"},
    "c2-standard-16": {"asia-east1-a", "europe-west6-c", "me-central2-b",
                       "southamerica-west1-a", "us-west2-c", "us-east5-a"},
    "g2-standard-4": {"asia-east1-a", "asia-northeast3-b", "asia-south1-c", "europe-west2-a",
                      "europe-west6-c", "me-central2-a", "northamerica-northeast1-b",
                      "us-east4-c", "us-west4-a"},
    "e2-standard-8": {"africa-south1-a", "europe-north2-b", "europe-west12-c",
                      "northamerica-south1-a", "us-south1-c", "me-central1-b"},
    "n1-standard-1": {"europe-central2-a", "me-west1-b", "southamerica-east1-c", "us-west3-a"},
}
# ... and where SkyPilot's catalog lists no such machine (no row may claim it is sold there)
GCP_NOT_SOLD = {
    "n1-standard-1": {"us-east5-a", "me-central2-a", "southamerica-west1-a", "me-west1-a"},
    "g2-standard-4": {"us-east5-a", "us-east4-b", "europe-west1-d", "asia-northeast3-c"},
    "a3-highgpu-2g": {"us-central1-f", "europe-west4-a"},
}


# GPUs attached to N1 machines, by the zones SkyPilot's GCP catalog lists for each GPU
GCP_N1_GPU_ZONES = {
    "T4": {"asia-east2-a", "asia-southeast2-b", "europe-central2-c", "me-west1-b",
           "northamerica-northeast1-c", "southamerica-east1-a", "us-west3-b", "us-west4-b"},
    "V100": {"asia-east1-c", "europe-west4-b", "us-central1-f", "us-east1-c", "us-west1-a"},
    "P100": {"asia-east1-a", "australia-southeast1-b", "europe-west1-d", "us-east1-b"},
    "P4": {"asia-southeast1-b", "northamerica-northeast1-a", "us-east4-b", "us-west2-c"},
}


@pytest.mark.parametrize("gpu", sorted(GCP_N1_GPU_ZONES))
def test_gcp_n1_gpus_are_in_the_zones_that_sell_them(gpu):
    rows = [r for r in read_csv(catalog.SHIPPED_DIR / "gcp.csv") if r.accelerator_name == gpu]
    zones = {r.zone for r in rows}
    assert GCP_N1_GPU_ZONES[gpu] <= zones, sorted(GCP_N1_GPU_ZONES[gpu] - zones)
    assert all(r.instance_type.startswith("n1-") for r in rows)
    # the machine is the N1 host plus the GPUs: never cheaper than the host alone
    hosts = {(r.instance_type, r.zone): r.price for r in read_csv(catalog.SHIPPED_DIR / "gcp.csv")
             if r.accelerator_name is None}
    assert all(r.price > hosts[(r.instance_type, r.zone)] for r in rows
               if (r.instance_type, r.zone) in hosts)


@pytest.mark.parametrize("instance_type", sorted(AWS_SOLD))
def test_aws_gpu_families_are_in_every_region_that_sells_them(instance_type):
    regions = set(_by_region("aws", instance_type))
    assert AWS_SOLD[instance_type] <= regions, sorted(AWS_SOLD[instance_type] - regions)


@pytest.mark.parametrize("instance_type", sorted(GCP_SOLD))
def test_gcp_families_are_in_every_zone_that_sells_them(instance_type):
    rows = read_csv(catalog.SHIPPED_DIR / "gcp.csv")
    zones = {r.zone for r in rows if r.instance_type == instance_type}
    assert GCP_SOLD[instance_type] <= zones, sorted(GCP_SOLD[instance_type] - zones)
    assert not zones & GCP_NOT_SOLD.get(instance_type, set())
    assert all(catalog.zone_in_region(r.zone, r.region) for r in rows if r.zone)


def test_no_machine_is_listed_twice_at_one_place(shipped):
    _, rows = shipped
    twice = [key for key, n in Counter(r.key for r in rows).items() if n > 1]
    assert not twice, twice[:5]


def test_every_gcp_row_names_its_zone():
    assert all(r.zone for r in read_csv(catalog.SHIPPED_DIR / "gcp.csv"))


def test_derived_regional_prices_follow_the_observed_ratio():
    # p4d.24xlarge in ap-northeast-1 is 44.92215 / 32.7726 times us-east-1 in SkyPilot's
    # catalog; ours keeps that ratio on top of our (newer) us-east-1 list price.
    prices = _by_region("aws", "p4d.24xlarge")
    ratio = prices["ap-northeast-1"] / prices["us-east-1"]
    assert ratio == pytest.approx(44.92215 / 32.7726, rel=1e-3)


def test_h100_2_resolves_to_gcp_a3_highgpu_2g():
    found = catalog.offers("gcp", Resources(accelerators="H100:2"))
    assert found[0].instance_type == "a3-highgpu-2g" and found[0].region == "us-central1"
    assert found[0].price == pytest.approx(88.2494 / 4, rel=1e-4)


def test_h100_mega_is_gcp_a3_megagpu():
    found = catalog.offers("gcp", Resources(accelerators="H100-MEGA:8"))
    assert found and {c.instance_type for c in found} == {"a3-megagpu-8g"}



def test_b200_8_on_gcp_is_a4_highgpu_in_a_zone_the_source_prices():
    found = catalog.offers("gcp", Resources(accelerators="B200:8"))
    assert found and {c.instance_type for c in found} == {"a4-highgpu-8g"}
    assert {c.zone for c in found} <= GCP_SOLD["a4-highgpu-8g"]
    assert found[0].price == pytest.approx(90.216)


def test_aws_gpu_rows_from_the_price_list_carry_its_listed_prices():
    # on-demand prices as instances.vantage.sh lists them, not derived by a ratio
    assert _by_region("aws", "p6-b200.48xlarge")["ap-south-1"] == pytest.approx(160.64525)
    assert _by_region("aws", "p5.4xlarge")["sa-east-1"] == pytest.approx(11.5584)
    assert _by_region("aws", "p4de.24xlarge")["ap-southeast-1"] == pytest.approx(32.93646)
    assert _by_region("aws", "p5.48xlarge")["ap-northeast-1"] == pytest.approx(68.80)
    assert _by_region("aws", "p5en.48xlarge")["eu-north-1"] == pytest.approx(67.72672)
    assert _by_region("aws", "g6e.48xlarge")["ap-northeast-3"] == pytest.approx(43.69912)


def test_h200_8_on_aws_is_p5en_because_p5e_has_no_on_demand_price():
    # p5e.48xlarge is sold through EC2 Capacity Blocks only: no on-demand row may claim it
    found = catalog.offers("aws", Resources(accelerators="H200:8"))
    assert found and {c.instance_type for c in found} == {"p5en.48xlarge"}
    assert "p5e.48xlarge" not in _by_region_types("aws")


def _by_region_types(cloud: str) -> set[str]:
    return {r.instance_type for r in read_csv(catalog.SHIPPED_DIR / f"{cloud}.csv")}

# SkyPilot's own examples/aws-neuron/inferentia.yaml asks for Inferentia:6. SkyPilot's AWS
# catalog (catalogs/v7/aws/vms.csv) names inf1 chips "Inferentia" (1, 4, 16 per machine) and
# inf2 chips "Inferentia2" (inf2.24xlarge: 6) with no alias between them, so the request is
# refused there too; we keep both names apart and point at the inf2 machine.
def test_inferentia_and_inferentia2_stay_apart_as_in_skypilot():
    assert catalog.offers("aws", Resources(accelerators="Inferentia2:6"))[0].instance_type \
        == "inf2.24xlarge"
    assert catalog.offers("aws", Resources(accelerators="Inferentia:4"))[0].instance_type \
        == "inf1.6xlarge"
    assert not catalog.offers("aws", Resources(accelerators="Inferentia:6"))


def test_the_skypilot_inferentia_example_is_refused_with_the_inf2_machine_named():
    message = catalog.explain("aws", Resources(accelerators="Inferentia:6"))
    assert "Inferentia machines there have 1, 4 or 16 GPUs" in message
    assert "Did you mean inf2.24xlarge Inferentia2:6" in message


def test_trainium_machines_include_trn1n_and_trn2():
    assert {c.instance_type for c in catalog.offers("aws", Resources(accelerators="Trainium:16"))} \
        == {"trn1.32xlarge", "trn1n.32xlarge"}
    (trn2,) = catalog.offers("aws", Resources(accelerators="Trainium2:16"))
    assert (trn2.instance_type, trn2.region) == ("trn2.48xlarge", "us-east-2")


def test_a_task_can_pin_an_added_region():
    found = catalog.offers("aws", Resources(cloud="aws", region="ap-northeast-1",
                                            accelerators="A10G:1"))
    assert found and {c.region for c in found} == {"ap-northeast-1"}


# --- CPU size ladders (issue 18) ----------------------------------------------------------
# The sizes of each CPU family and each size's vCPUs / GiB, as the clouds publish them and
# SkyPilot's catalogs list them (skypilot-org/skypilot-catalog catalogs/v7/aws/vms.csv,
# catalogs/v7/gcp/vms.csv, catalogs/v6/azure/vms.csv; read 2026-12-01). Every size of a
# family we carry must be there, with these shapes, and nothing else under the family name.
AWS_SIZES = {"large": 2, "xlarge": 4, "2xlarge": 8, "4xlarge": 16, "8xlarge": 32,
             "9xlarge": 36, "12xlarge": 48, "16xlarge": 64, "18xlarge": 72, "24xlarge": 96,
             "32xlarge": 128, "48xlarge": 192}
_GEN5 = ("large", "xlarge", "2xlarge", "4xlarge", "8xlarge", "12xlarge", "16xlarge",
         "24xlarge")
_AWS_LADDERS = {  # family: (sizes, GiB per vCPU)
    "m5": (_GEN5, 4), "r5": (_GEN5, 8),
    "c5": (("large", "xlarge", "2xlarge", "4xlarge", "9xlarge", "12xlarge", "18xlarge",
            "24xlarge"), 2),
    "m6i": ((*_GEN5, "32xlarge"), 4), "c6i": ((*_GEN5, "32xlarge"), 2),
    "r6i": ((*_GEN5, "32xlarge"), 8),
    "m7i": ((*_GEN5, "48xlarge"), 4), "c7i": ((*_GEN5, "48xlarge"), 2),
    "r7i": ((*_GEN5, "48xlarge"), 8),
    "m6a": ((*_GEN5, "32xlarge", "48xlarge"), 4), "c6a": ((*_GEN5, "32xlarge", "48xlarge"), 2),
    "r6a": ((*_GEN5, "32xlarge", "48xlarge"), 8),
    "m6in": ((*_GEN5, "32xlarge"), 4), "m6idn": ((*_GEN5, "32xlarge"), 4),
}
_N2 = (2, 4, 8, 16, 32, 48, 64, 80, 96, 128)
_GCP_LADDERS = {  # family: (vCPU counts, GiB per vCPU)
    "n1-standard": ((1, 2, 4, 8, 16, 32, 64, 96), 3.75),
    "n2-standard": (_N2, 4), "n2-highmem": (_N2, 8), "n2-highcpu": (_N2[:-1], 1),
    "c2-standard": ((4, 8, 16, 30, 60), 4), "c3-standard": ((4, 8, 22, 44, 88, 176), 4),
    "e2-standard": ((2, 4, 8, 16, 32), 4), "e2-highmem": ((2, 4, 8, 16), 8),
    "e2-highcpu": ((2, 4, 8, 16, 32), 1),
}
LADDERS: dict[tuple[str, str], dict[str, tuple[float, float]]] = {
    **{("aws", f"{family}."): {f"{family}.{s}": (AWS_SIZES[s], AWS_SIZES[s] * gib)
                               for s in sizes}
       for family, (sizes, gib) in _AWS_LADDERS.items()},
    **{("gcp", f"{family}-"): {f"{family}-{k}": (k, k * gib) for k in ks}
       for family, (ks, gib) in _GCP_LADDERS.items()},
    ("azure", "Dsv5"): {f"Standard_D{k}s_v5": (k, 4 * k)
                        for k in (2, 4, 8, 16, 32, 48, 64, 96)},
    # E96s_v5 has 672 GiB, not 768
    ("azure", "Esv5"): {f"Standard_E{k}s_v5": (k, 8 * k if k < 96 else 672)
                        for k in (2, 4, 8, 16, 20, 32, 48, 64, 96)},
    # F72s_v2 has 144 GiB
    ("azure", "Fsv2"): {f"Standard_F{k}s_v2": (k, 2 * k) for k in (2, 4, 8, 16, 32, 48, 64, 72)},
}
_AZURE_FAMILY = {"Dsv5": re.compile(r"Standard_D\d+s_v5"), "Esv5": re.compile(r"Standard_E\d+s_v5"),
                 "Fsv2": re.compile(r"Standard_F\d+s_v2")}


def _cpu_rows(cloud: str, family: str) -> list[CatalogRow]:
    rows = [r for r in catalog.rows(cloud) if not r.accelerator_name]
    if cloud == "azure":
        return [r for r in rows if _AZURE_FAMILY[family].fullmatch(r.instance_type)]
    return [r for r in rows if r.instance_type.startswith(family)]


@pytest.mark.parametrize("cloud,family", sorted(LADDERS))
def test_each_cpu_family_has_its_whole_ladder_with_the_published_shapes(cloud, family):
    ladder = LADDERS[(cloud, family)]
    rows = _cpu_rows(cloud, family)
    assert {r.instance_type for r in rows} == set(ladder)
    assert {r.instance_type: (r.vcpus, r.memory_gib) for r in rows} == ladder
    # every size is sold wherever the family is (the ladders were completed per place)
    places: dict[str, set] = {}
    for r in rows:
        places.setdefault(r.instance_type, set()).add((r.region, r.zone))
    assert len({frozenset(p) for p in places.values()}) == 1, family


@pytest.mark.parametrize("cloud,family", sorted(LADDERS))
def test_price_per_vcpu_is_the_same_for_every_size_of_a_family_at_a_place(cloud, family):
    """On-demand Linux prices are linear in size within these families (checked on
    SkyPilot's AWS catalog: m6idn.large $0.15912, .32xlarge $10.18368 = 64 x; m7a.12xlarge
    $2.78208, .32xlarge $7.41888), and the sizes we added rely on it."""
    per_place: dict[tuple, list[tuple[float, float | None]]] = {}
    for r in _cpu_rows(cloud, family):
        per_place.setdefault((r.region, r.zone), []).append(
            (r.price / r.vcpus, r.spot_price / r.vcpus if r.spot_price else None))
    assert per_place
    for place, rates in per_place.items():
        on_demand = [p for p, _ in rates]
        assert max(on_demand) == pytest.approx(min(on_demand), rel=5e-3), (family, place)
        spot = [s for _, s in rates]
        if None not in spot:
            assert max(spot) == pytest.approx(min(spot), rel=1e-2), (family, place)


def test_a_named_big_gcp_machine_resolves_with_its_shape():
    found = catalog.offers("gcp", Resources(instance_type="n2-standard-64"))
    assert found and {(c.vcpus, c.memory_gib) for c in found} == {(64, 256)}
    cheapest = found[0]
    assert cheapest.region == "us-central1"
    assert cheapest.price == pytest.approx(32 * 0.09712, rel=1e-3)   # 32 x n2-standard-2


def test_the_public_m6idn_32xlarge_resolves_at_the_listed_price():
    found = catalog.offers("aws", Resources(instance_type="m6idn.32xlarge"))
    assert (found[0].vcpus, found[0].memory_gib) == (128, 512)
    assert (found[0].region, found[0].price) == ("us-east-1", pytest.approx(10.18368))


def test_cpus_96_plus_on_aws_is_a_real_96_vcpu_machine():
    best = catalog.offers("aws", Resources(cpus="96+"))[0]
    assert (best.instance_type, best.vcpus, best.memory_gib) == ("m6a.24xlarge", 96, 384)
    assert best.instance_type in LADDERS[("aws", "m6a.")]


def test_memory_512_plus_picks_the_cheapest_machine_with_that_memory():
    best = catalog.offers("aws", Resources(memory="512+"))[0]
    assert (best.instance_type, best.memory_gib) == ("r6a.16xlarge", 512)
    gcp = catalog.offers("gcp", Resources(memory="512+"))[0]
    assert gcp.instance_type == "n2-highmem-64"


def test_a_cpu_task_without_memory_gets_4_gib_per_vcpu_where_the_cloud_has_it():
    # SkyPilot's default memory for CPU tasks is 4x the vCPUs; e2-highcpu-4 (4 GiB) is
    # cheaper than e2-standard-4 but is not what a plain task gets.
    assert catalog.offers("gcp", Resources())[0].instance_type == "e2-standard-4"
    assert catalog.offers("gcp", Resources(cpus="8"))[0].memory_gib >= 32
    # asked for explicitly, the high-CPU shape is the cheapest fit
    assert catalog.offers("gcp", Resources(cpus="8", memory="8"))[0].instance_type \
        == "e2-highcpu-8"
    # no 1-vCPU machine with 4 GiB: the default gives way (n1-standard-1 has 3.75)
    assert catalog.offers("gcp", Resources(cpus="1"))[0].instance_type == "n1-standard-1"


# --- the reader -----------------------------------------------------------------------
HEADER = ",".join(COLUMNS)


def test_comments_and_blank_lines_are_skipped(tmp_path):
    path = tmp_path / "aws.csv"
    path.write_text(f"# source: test\n# date: today\n{HEADER}\n\n"
                    "g6.12xlarge,L4,4,24,48,192,4.6,,us-east-1,\n")
    (row,) = read_csv(path)
    assert (row.cloud, row.gpus, row.spot_price, row.zone) == ("aws", "L4:4", None, None)
    assert header_comment(path) == "source: test date: today"


@pytest.mark.parametrize("line, problem", [
    ("g6.12xlarge,L4,4,24,48,192,abc,,us-east-1,", "could not convert"),
    ("g6.12xlarge,L4,0,24,48,192,4.6,,us-east-1,", "accelerator_count"),
    ("g6.12xlarge,L4,4,24,48,192,-1,,us-east-1,", "price must be a number >= 0"),
    ("g6.12xlarge,L4,4,24,48,192,4.6,,,", "region must not be empty"),
    ("g6.12xlarge,L4,4", "missing column"),
])
def test_a_bad_row_names_file_and_line(tmp_path, line, problem):
    path = tmp_path / "gcp.csv"
    path.write_text(f"# comment\n{HEADER}\nn2-standard-4,,,,4,16,0.19,,us-central1,\n{line}\n")
    with pytest.raises(ConfigError, match=rf"gcp\.csv:4: bad catalog row \(.*{problem}"):
        read_csv(path)


def test_write_then_read_round_trips(tmp_path):
    rows = read_csv(catalog.SHIPPED_DIR / "gcp.csv")[:30]
    path = tmp_path / "gcp.csv"
    write_csv(path, rows, "refreshed today\nsecond line")
    assert read_csv(path) == rows
    assert header_comment(path) == "refreshed today second line"


def test_catalog_dir_override_and_cache(tmp_path, monkeypatch):
    (tmp_path / "aws.csv").write_text(f"{HEADER}\nm6i.xlarge,,,,4,16,0.2,,us-east-1,\n")
    monkeypatch.setenv("SKYTERRA_CATALOG_DIR", str(tmp_path))
    catalog.clear_cache()
    try:
        assert catalog.available_clouds() == ["aws"]
        assert [r.instance_type for r in catalog.rows("aws")] == ["m6i.xlarge"]
        assert catalog.rows("gcp") == [] and catalog.catalog_path("gcp") is None
        assert catalog.rows("aws") is catalog.rows("aws")   # loaded once
        offers = catalog.offers("aws", Resources(cpus="4"), num_nodes=2)
        assert [(c.instance_type, c.num_nodes) for c in offers] == [("m6i.xlarge", 2)]
        assert catalog.offers("aws", Resources(cloud="gcp", cpus="4")) == []
    finally:
        catalog.clear_cache()


# --- refresh (no network: only its pure part) -----------------------------------------
def test_refresh_applies_found_prices_and_keeps_rows_it_cannot_price():
    rows = read_csv(catalog.SHIPPED_DIR / "aws.csv")[:3]
    prices = {refresh.price_key(rows[0]): (1.0, 0.5),     # both found
              refresh.price_key(rows[1]): (1.0, 2.0)}     # spot above on-demand: dropped
    updated, missing = refresh.apply_prices(rows, prices)
    assert (updated[0].price, updated[0].spot_price) == (1.0, 0.5)
    assert (updated[1].price, updated[1].spot_price) == (1.0, None)
    assert updated[2] == rows[2] and missing == [rows[2]]


def test_refresh_knows_every_shipped_cloud():
    assert set(refresh.FETCHERS) == {p.stem for p in SHIPPED}
    assert set(refresh.SOURCES) == set(refresh.FETCHERS)


def test_refresh_azure_item_parsing():
    items = [{"productName": "Virtual Machines NCasT4_v3 Series", "skuName": "NC4as T4 v3",
              "meterName": "NC4as T4 v3", "retailPrice": 0.526},
             {"productName": "Virtual Machines NCasT4_v3 Series", "skuName": "NC4as T4 v3 Spot",
              "meterName": "NC4as T4 v3 Spot", "retailPrice": 0.16},
             {"productName": "Virtual Machines NCasT4_v3 Series Windows",
              "skuName": "NC4as T4 v3", "meterName": "NC4as T4 v3", "retailPrice": 0.9},
             {"productName": "Virtual Machines NCasT4_v3 Series",
              "skuName": "NC4as T4 v3 Low Priority", "meterName": "x", "retailPrice": 0.1}]
    assert refresh._azure_sku_prices(iter(items)) == (0.526, 0.16)


def test_refresh_gcp_price_is_cores_plus_ram_plus_gpus():
    row = read_csv(catalog.SHIPPED_DIR / "gcp.csv")[0]._replace(
        instance_type="g2-standard-48", accelerator_name="L4", accelerator_count=4, vcpus=48,
        memory_gib=192, region="us-central1")
    rates = {("G2 Instance Core", "us-central1", False): 0.02,
             ("G2 Instance Ram", "us-central1", False): 0.002,
             ("Nvidia L4 GPU", "us-central1", False): 0.5}
    assert refresh._gcp_row_price(row, rates, spot=False) == pytest.approx(
        48 * 0.02 + 192 * 0.002 + 4 * 0.5)
    assert refresh._gcp_row_price(row, rates, spot=True) is None
