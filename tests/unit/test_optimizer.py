"""The optimizer ranks offers the way the provisioner should try them.

Most tests use the small fixture catalog in tests/fixtures/catalog (made-up
prices chosen so every rule shows); the seed tests at the end use the shipped
catalogs, because "the seed picks g6.12xlarge" is a promise about real prices.
"""

from __future__ import annotations

from pathlib import Path

import pytest

from skyterra import catalog, optimizer
from skyterra.clouds.base import Cloud
from skyterra.errors import TaskError
from skyterra.task import Task
from tests.paths import QUICKSTART

FIXTURES = Path(__file__).parents[1] / "fixtures" / "catalog"
SEED = QUICKSTART
ALL = ["aws", "gcp", "azure"]


class CatalogCloud(Cloud):
    """A cloud that answers from the catalog only (Cloud.offers' default)."""

    def __init__(self, name: str):
        self.name = name


def optimize(task: Task, clouds: list[str]):
    """Unit-test the optimizer and catalog alone: cloud modules may need SDKs or
    credentials to import, and their offers() default is the catalog anyway."""
    return optimizer.optimize(task, [CatalogCloud(name) for name in clouds])


@pytest.fixture
def fixture_catalog(monkeypatch):
    monkeypatch.setenv("SKYTERRA_CATALOG_DIR", str(FIXTURES))
    catalog.clear_cache()
    yield
    catalog.clear_cache()


@pytest.fixture
def shipped_catalog(monkeypatch):
    monkeypatch.setenv("SKYTERRA_CATALOG_DIR", str(catalog.SHIPPED_DIR))
    catalog.clear_cache()
    yield
    catalog.clear_cache()


def task(resources: dict | None = None, num_nodes: int | None = None) -> Task:
    config: dict = {"run": "true", "resources": resources or {}}
    if num_nodes:
        config["num_nodes"] = num_nodes
    return Task.from_yaml_config(config)


def first(resources: dict, clouds: list[str] = ALL, num_nodes: int | None = None):
    return optimize(task(resources, num_nodes), clouds)[0]


def names(candidates) -> list[str]:
    return [c.instance_type for c in candidates]


# --- single accelerator ---------------------------------------------------------------
@pytest.mark.usefixtures("fixture_catalog")
class TestSingleAccelerator:
    def test_picks_the_cheapest_machine_with_exactly_that_count(self):
        best = first({"accelerators": "L4:4"}, ["aws"])
        assert (best.instance_type, best.region, best.price) == ("g6.12xlarge", "us-east-1", 4.60)

    def test_every_candidate_has_the_asked_gpus(self):
        ranked = optimize(task({"accelerators": "L4:4"}), ALL)
        assert {(c.accelerator, c.accelerator_count) for c in ranked} == {("L4", 4)}

    def test_candidates_are_sorted_by_price_with_catalog_order_on_ties(self):
        ranked = optimize(task({"accelerators": "L4:4"}), ["aws"])
        assert [(c.instance_type, c.region) for c in ranked] == [
            ("g6.12xlarge", "us-east-1"), ("g6.12xlarge", "us-west-2"),
            ("g6.24xlarge", "us-east-1")]

    def test_across_clouds_the_cheapest_cloud_wins(self):
        assert first({"accelerators": "L4:4"}).cloud == "gcp"

    def test_mapping_form_and_lowercase_name_are_the_same_request(self):
        assert first({"accelerators": {"l4": 4}}, ["aws"]).instance_type == "g6.12xlarge"

    def test_candidate_remembers_the_resources_choice_it_satisfies(self):
        best = first({"accelerators": "L4:4", "disk_size": 500}, ["aws"])
        assert best.resources.disk_size == 500


# --- several choices: list, set, any_of, ordered --------------------------------------
@pytest.mark.usefixtures("fixture_catalog")
class TestChoices:
    def test_ordered_list_keeps_the_users_order_even_when_pricier(self):
        ranked = optimize(task({"accelerators": ["H100:8", "A100:8"]}), ALL)
        assert [c.accelerator for c in ranked[:3]] == ["H100", "H100", "H100"]
        assert ranked[3].accelerator == "A100"

    def test_ordered_list_is_cheapest_first_within_each_choice(self):
        ranked = optimize(task({"accelerators": ["H100:8", "A100:8"]}), ALL)
        h100 = [c.price for c in ranked if c.accelerator == "H100"]
        assert h100 == sorted(h100)

    def test_set_ranks_all_choices_by_price(self):
        ranked = optimize(task({"accelerators": {"H100": 8, "A100": 8}}), ALL)
        assert names(ranked[:3]) == ["p4d.24xlarge", "Standard_ND96asr_v4", "a2-highgpu-8g"]
        assert [c.price for c in ranked] == sorted(c.price for c in ranked)

    def test_any_of_ranks_by_price(self):
        config = {"any_of": [{"accelerators": "H100:8"}, {"accelerators": "A100:8"}]}
        assert first(config).instance_type == "p4d.24xlarge"

    def test_ordered_keeps_the_yaml_order(self):
        config = {"ordered": [{"accelerators": "H100:8"}, {"accelerators": "A100:8"}]}
        assert first(config).instance_type == "p5.48xlarge"

    def test_any_of_items_may_name_different_clouds(self):
        config = {"any_of": [{"cloud": "azure", "accelerators": "A100:8"},
                             {"cloud": "gcp", "accelerators": "H100:8"}]}
        ranked = optimize(task(config), ALL)
        assert [(c.cloud, c.instance_type) for c in ranked] == [
            ("azure", "Standard_ND96asr_v4"), ("gcp", "a3-highgpu-8g")]

    def test_identical_offers_from_two_choices_appear_once(self):
        config = {"ordered": [{"accelerators": "L4:4"}, {"accelerators": "L4:4", "cpus": "48"}]}
        ranked = optimize(task(config), ["aws"])
        keys = [(c.cloud, c.region, c.zone, c.instance_type) for c in ranked]
        assert len(keys) == len(set(keys)) == 3


# --- cpus, memory, instance type ------------------------------------------------------
@pytest.mark.usefixtures("fixture_catalog")
class TestShape:
    def test_cpus_plus_means_at_least(self):
        ranked = optimize(task({"accelerators": "L4:4", "cpus": "64+"}), ["aws"])
        assert names(ranked) == ["g6.24xlarge"]

    def test_cpus_without_plus_means_exactly(self):
        ranked = optimize(task({"accelerators": "L4:4", "cpus": 48}), ["aws"])
        assert set(names(ranked)) == {"g6.12xlarge"}

    def test_memory_plus_and_exact(self):
        assert first({"cpus": "4", "memory": "32"}, ["aws"]).instance_type == "r6i.xlarge"
        assert first({"accelerators": "L4:4", "memory": "300+"}, ["aws"]).instance_type == \
            "g6.24xlarge"

    def test_cpu_task_gets_a_cpu_machine_with_at_least_four_vcpus_by_default(self):
        best = first({}, ["aws"])
        assert (best.instance_type, best.accelerator) == ("m6i.xlarge", None)

    def test_cpu_task_with_explicit_cpus_may_be_small(self):
        assert first({"cpus": "2+"}, ["aws"]).instance_type == "m6i.large"

    def test_instance_type_pins_the_machine(self):
        ranked = optimize(task({"instance_type": "g6.24xlarge"}), ALL)
        assert [(c.cloud, c.instance_type, c.accelerator) for c in ranked] == [
            ("aws", "g6.24xlarge", "L4")]

    def test_instance_type_with_a_different_accelerator_explains_what_it_has(self):
        with pytest.raises(TaskError, match=r"g6\.12xlarge has L4:4, 48 vCPUs, 192 GiB"):
            optimize(task({"instance_type": "g6.12xlarge",
                                     "accelerators": "A100:8"}), ["aws"])

    def test_unknown_instance_type_gets_a_hint(self):
        with pytest.raises(TaskError, match="Did you mean 'g6.12xlarge'"):
            optimize(task({"instance_type": "g6.12xlarg"}), ["aws"])


# --- spot -----------------------------------------------------------------------------
@pytest.mark.usefixtures("fixture_catalog")
class TestSpot:
    def test_use_spot_ranks_by_spot_price(self):
        best = first({"accelerators": "L4:4", "use_spot": True}, ["aws"])
        assert (best.region, best.price, best.use_spot) == ("us-west-2", 1.80, True)

    def test_rows_without_spot_price_are_not_spot_offers(self):
        ranked = optimize(task({"accelerators": "H100:8", "use_spot": True}), ALL)
        assert [(c.cloud, c.price) for c in ranked] == [("gcp", 21.00)]

    def test_no_spot_anywhere_says_so_and_shows_on_demand(self):
        with pytest.raises(TaskError, match=r"no spot price .* p5\.4xlarge H100:1 \(\$6\.88/h\)"):
            optimize(task({"accelerators": "H100:1", "use_spot": True}), ["aws"])


# --- where: cloud, region, zone, infra -----------------------------------------------
@pytest.mark.usefixtures("fixture_catalog")
class TestPlace:
    def test_region(self):
        ranked = optimize(task({"accelerators": "L4:4", "region": "us-west-2"}), ALL)
        assert [(c.cloud, c.region) for c in ranked] == [("aws", "us-west-2")]

    def test_zone_of_a_region_priced_cloud_is_kept_on_the_candidate(self):
        best = first({"accelerators": "L4:4", "zone": "us-west-2a"}, ["aws"])
        assert (best.region, best.zone) == ("us-west-2", "us-west-2a")

    def test_zone_of_a_zonal_cloud_must_match_a_row(self):
        ranked = optimize(task({"accelerators": "L4:4", "zone": "us-central1-b"}),
                                    ALL)
        assert [(c.cloud, c.zone) for c in ranked] == [("gcp", "us-central1-b")]

    def test_numbered_zone_works_in_any_region(self):
        best = first({"accelerators": "A100:8", "zone": "2"}, ["azure"])
        assert (best.region, best.zone) == ("eastus", "2")

    def test_infra_is_cloud_region_zone(self):
        ranked = optimize(
            task({"infra": "gcp/us-central1/us-central1-b", "accelerators": "L4:4"}), ALL)
        assert [c.where for c in ranked] == ["gcp/us-central1/us-central1-b"]

    def test_cloud_restricts_the_search(self):
        ranked = optimize(task({"cloud": "aws", "accelerators": "L4:4"}), ALL)
        assert {c.cloud for c in ranked} == {"aws"}

    def test_cloud_that_is_not_enabled_is_an_error(self):
        with pytest.raises(TaskError, match="asks for cloud 'azure', which is not enabled"):
            optimize(task({"cloud": "azure", "accelerators": "T4:4"}), ["aws"])

    def test_region_without_the_gpu_names_the_regions_that_have_it(self):
        with pytest.raises(TaskError, match=r"L4:4 is not offered on aws in eu-west-1; it is "
                                            r"offered in us-east-1, us-west-2"):
            optimize(task({"accelerators": "L4:4", "region": "eu-west-1"}), ["aws"])

    def test_instance_type_in_the_wrong_region_names_its_regions(self):
        with pytest.raises(TaskError, match=r"instance type g6\.24xlarge is not offered on aws "
                                            r"in us-west-2; it is offered in us-east-1"):
            optimize(task({"instance_type": "g6.24xlarge", "region": "us-west-2"}),
                               ["aws"])

    def test_no_enabled_cloud_is_an_error(self):
        with pytest.raises(TaskError, match="no cloud is enabled"):
            optimize(task({"accelerators": "L4:4"}), [])


# --- nodes ----------------------------------------------------------------------------
@pytest.mark.usefixtures("fixture_catalog")
class TestNodes:
    def test_candidates_carry_num_nodes_and_the_cluster_price(self):
        best = first({"accelerators": "L4:4"}, ["aws"], num_nodes=3)
        assert best.num_nodes == 3
        assert best.cluster_price == pytest.approx(3 * 4.60)

    def test_nodes_do_not_change_the_ranking(self):
        one = optimize(task({"accelerators": "L4:4"}), ALL)
        four = optimize(task({"accelerators": "L4:4"}, num_nodes=4), ALL)
        assert names(one) == names(four)


# --- nothing matches ------------------------------------------------------------------
@pytest.mark.usefixtures("fixture_catalog")
class TestNoMatch:
    def test_too_many_gpus_names_the_largest_machines(self):
        with pytest.raises(TaskError) as error:
            optimize(task({"accelerators": "L4:16"}), ["aws"])
        message = str(error.value)
        assert "L4:16 is not offered on aws; largest L4 machines: g6.48xlarge L4:8 " \
               "($13.35/h)" in message
        assert "field 'resources'" in message

    def test_every_cloud_explains_itself(self):
        with pytest.raises(TaskError) as error:
            optimize(task({"accelerators": "L4:16"}), ["aws", "gcp"])
        assert "g6.48xlarge L4:8" in str(error.value)
        assert "g2-standard-96 L4:8 ($8.00/h)" in str(error.value)

    def test_count_between_offers_lists_the_counts_that_exist(self):
        with pytest.raises(TaskError, match=r"L4 machines there have 1, 4 or 8 GPUs: "
                                            r"g6\.12xlarge L4:4"):
            optimize(task({"accelerators": "L4:3"}), ["aws"])

    def test_gpu_missing_from_a_cloud_names_same_size_machines_and_other_clouds(self):
        with pytest.raises(TaskError) as error:
            optimize(task({"accelerators": "L4:4"}), ["azure"])
        message = str(error.value)
        assert "L4:4 is not offered on azure: it has no L4 machines (L4 is offered on aws, " \
               "gcp)" in message
        assert "Standard_NC64as_T4_v3 T4:4 ($4.35/h)" in message

    def test_too_many_cpus_lists_the_nearest_machines_with_that_gpu(self):
        with pytest.raises(TaskError, match=r"L4:4 \(cpus 500\+\) is not offered on aws; "
                                            r"nearest L4:4 machines there: g6\.24xlarge "
                                            r"L4:4, 96 vCPUs"):
            optimize(task({"accelerators": "L4:4", "cpus": "500+"}), ["aws"])

    def test_message_names_the_task_file(self):
        t = Task.from_yaml_config({"run": "true", "resources": {"accelerators": "L4:16"}},
                                  source="train.yaml")
        with pytest.raises(TaskError, match=r"^train\.yaml: field 'resources'"):
            optimize(t, ["aws"])


# --- tables for the CLI ---------------------------------------------------------------
@pytest.mark.usefixtures("fixture_catalog")
class TestTables:
    def test_candidates_table_rows(self):
        ranked = optimize(task({"accelerators": "L4:4"}, num_nodes=2), ALL)
        columns, rows = optimizer.format_candidates_table(ranked, limit=2)
        assert columns == optimizer.CANDIDATE_COLUMNS
        assert rows == [
            ["gcp", "us-central1-a", "g2-standard-48", "L4:4", "48", "192 GiB", "4.00",
             "2 x 4.00 = 8.00", "no GPUDirect"],
            ["gcp", "us-central1-b", "g2-standard-48", "L4:4", "48", "192 GiB", "4.00",
             "2 x 4.00 = 8.00", "no GPUDirect"]]

    def test_candidates_table_marks_spot_and_spells_numbered_zones(self):
        ranked = optimize(task({"accelerators": "A100:8", "zone": "1",
                                          "use_spot": True}), ["azure"])
        _, rows = optimizer.format_candidates_table(ranked, limit=None)
        assert rows[0][1] == "eastus/1" and rows[0][6] == "11.00 (spot)"
        assert rows[0][3] == "A100:8"

    def test_show_gpus_summary(self):
        columns, rows = optimizer.show_gpus_rows()
        assert columns == optimizer.SHOW_GPUS_SUMMARY_COLUMNS
        assert ["L4", "1, 4, 8", "aws, gcp", "0.80"] in rows
        assert [r[0] for r in rows] == ["T4", "L4", "V100", "A100", "H100"]  # catalog order

    def test_show_gpus_for_one_accelerator_is_per_instance_type_at_its_cheapest_place(self):
        columns, rows = optimizer.show_gpus_rows("l4", cloud="aws")
        assert columns == optimizer.SHOW_GPUS_COLUMNS
        assert [r[3] for r in rows] == ["g6.xlarge", "g6.12xlarge", "g6.24xlarge", "g6.48xlarge"]
        assert rows[1] == ["L4", "4", "aws", "g6.12xlarge", "24 GiB", "48", "192 GiB", "4.60",
                           "1.80", "us-east-1"]

    def test_show_gpus_region_filter_and_unknown_name(self):
        _, rows = optimizer.show_gpus_rows("L4", region="us-west-2")
        assert [(r[2], r[3]) for r in rows] == [("aws", "g6.12xlarge")]
        with pytest.raises(TaskError, match="Did you mean 'H100'"):
            optimizer.show_gpus_rows("H10O")


def test_optimizer_candidate_is_the_catalog_candidate():
    assert optimizer.Candidate is catalog.Candidate


# --- the seed and the headline GPUs on the shipped catalogs --------------------------
@pytest.mark.usefixtures("shipped_catalog")
class TestShippedCatalogPicks:
    @pytest.fixture
    def seed(self):
        return SEED

    @pytest.mark.parametrize("clouds, expected", [
        (["aws"], ("aws", "g6.12xlarge")),
        (["aws", "azure"], ("aws", "g6.12xlarge")),   # Azure has no L4
        (["gcp"], ("gcp", "g2-standard-48")),
        (ALL, ("gcp", "g2-standard-48")),             # GCP lists L4:4 cheaper than AWS
    ])
    def test_seed_train_yaml(self, seed, clouds, expected):
        best = optimize(Task.from_yaml(seed / "train.yaml"), clouds)[0]
        assert (best.cloud, best.instance_type) == expected

    def test_seed_multinode_prices_the_whole_cluster(self, seed):
        best = optimize(Task.from_yaml(seed / "train-multinode.yaml"), ["aws"])[0]
        assert (best.instance_type, best.num_nodes) == ("g6.12xlarge", 2)
        assert best.cluster_price == pytest.approx(2 * best.price)

    def test_seed_on_azure_names_the_nearest_offers(self, seed):
        with pytest.raises(TaskError, match=r"L4:4 is not offered on azure.*"
                                            r"Standard_NC64as_T4_v3 T4:4"):
            optimize(Task.from_yaml(seed / "train.yaml"), ["azure"])

    @pytest.mark.parametrize("accelerator, expected", [
        ("A100:8", {"aws": "p4d.24xlarge", "gcp": "a2-highgpu-8g",
                    "azure": "Standard_ND96asr_v4"}),
        ("H100:8", {"aws": "p5.48xlarge", "gcp": "a3-highgpu-8g",
                    "azure": "Standard_ND96isr_H100_v5"}),
    ])
    def test_eight_gpu_machines_per_cloud_and_by_price_across_clouds(self, accelerator,
                                                                      expected):
        picks = {cloud: first({"accelerators": accelerator}, [cloud]) for cloud in ALL}
        assert {cloud: c.instance_type for cloud, c in picks.items()} == expected
        cheapest = min(picks.values(), key=lambda c: c.price)
        assert first({"accelerators": accelerator}).instance_type == cheapest.instance_type

    def test_spot_uses_spot_prices(self):
        on_demand = first({"accelerators": "L4:4"}, ["aws"])
        spot = first({"accelerators": "L4:4", "use_spot": True}, ["aws"])
        assert spot.use_spot and spot.price < on_demand.price
        row = next(r for r in catalog.rows("aws") if (r.instance_type, r.region) ==
                   (spot.instance_type, spot.region))
        assert spot.price == row.spot_price


@pytest.mark.usefixtures("shipped_catalog")
def test_a_gpu_no_cloud_of_ours_sells_is_offered_gpus_not_aws_ml_chips():
    """A6000 (Lambda, RunPod) is a known name: no cloud of ours sells it, and the nearest
    offers are GPUs (inf1/trn1 have the same count but are not GPUs)."""
    with pytest.raises(TaskError) as error:
        optimize(task({"accelerators": "A6000:1"}), ["aws"])
    message = str(error.value)
    assert "A6000:1 is not offered on aws: it has no A6000 machines; nearest machines with " \
           "1 GPUs on aws: g4dn.xlarge T4:1" in message
    assert "Inferentia" not in message and "Trainium" not in message
