"""`python -m skyterra.catalog.refresh` end to end, offline.

The clouds' price APIs cannot be reached here, so each test feeds the fetcher
answers in the shape those APIs document (hand-made, in tests/fixtures/refresh/)
at the one place the network is used, then checks what refresh writes for the
machine families added to the catalog (Inferentia2, C3, P100, Esv5).
"""

from __future__ import annotations

import io
import json
from pathlib import Path

import pytest

from skyterra import catalog
from skyterra.catalog import refresh
from skyterra.catalog.row import read_csv

FIXTURES = Path(__file__).resolve().parents[1] / "fixtures" / "refresh"


def _fixture(name: str) -> dict:
    return json.loads((FIXTURES / name).read_text())


def _rows(cloud: str, instance_type: str, region: str, accelerator: str | None = None):
    found = [r for r in read_csv(catalog.SHIPPED_DIR / f"{cloud}.csv")
             if r.instance_type == instance_type and r.region == region
             and (accelerator is None or r.accelerator_name == accelerator)]
    assert found, f"{instance_type} in {region} is not in the shipped {cloud} catalog"
    return found


class _AwsClient:
    """boto3's pricing/ec2 clients, answering from the fixtures."""

    def get_products(self, **kwargs):
        filters = {f["Field"]: f["Value"] for f in kwargs["Filters"]}
        assert filters["instanceType"] == "inf2.xlarge" and filters["tenancy"] == "Shared"
        return _fixture("aws_get_products_inf2.json")

    def describe_spot_price_history(self, **kwargs):
        assert kwargs["InstanceTypes"] == ["inf2.xlarge"]
        return _fixture("aws_spot_history_inf2.json")


def test_aws_prices_inferentia2_from_price_list_and_spot_history(monkeypatch):
    import boto3

    monkeypatch.setattr(boto3, "client", lambda service, region_name=None: _AwsClient())
    rows = _rows("aws", "inf2.xlarge", "us-east-1")
    updated, missing = refresh.apply_prices(rows, refresh.aws_prices(rows))
    assert missing == []
    assert (updated[0].price, updated[0].spot_price) == (0.7582, 0.2511)  # cheapest zone


def test_gcp_prices_c3_and_p100_from_billing_skus(monkeypatch, tmp_path):
    monkeypatch.setattr(refresh, "_gcp_skus", lambda: iter(_fixture("gcp_skus_c3_p100.json")
                                                            ["skus"]))
    assert refresh.main(["--cloud", "gcp", "--out", str(tmp_path)]) == 0
    written = read_csv(tmp_path / "gcp.csv", "gcp")
    c3 = next(r for r in written if r.instance_type == "c3-standard-4"
              and r.zone == "us-central1-a")
    assert c3.price == pytest.approx(4 * 0.03398 + 16 * 0.00455)
    assert c3.spot_price == pytest.approx(4 * 0.01122 + 16 * 0.0015)
    p100 = next(r for r in written if r.accelerator_name == "P100"
                and r.instance_type == "n1-standard-4")
    assert p100.price == pytest.approx(4 * 0.031611 + 15 * 0.004237 + 1.46, abs=1e-4)
    assert p100.spot_price is None  # no spot SKU in the answer: no spot offer
    # rows the answer does not price keep their old price (nothing silently dropped)
    assert len(written) == len(catalog.rows("gcp"))
    assert "refreshed" in (tmp_path / "gcp.csv").read_text().splitlines()[0]


def test_azure_prices_esv5_from_retail_prices(monkeypatch):
    answers = []

    def urlopen(url, timeout):
        answers.append(url)
        return io.BytesIO(json.dumps(_fixture("azure_items_e8s_v5.json")).encode())

    monkeypatch.setattr(refresh.urllib.request, "urlopen", urlopen)
    rows = _rows("azure", "Standard_E8s_v5", "eastus")
    updated, missing = refresh.apply_prices(rows, refresh.azure_prices(rows))
    assert missing == [] and (updated[0].price, updated[0].spot_price) == (0.504, 0.0992)
    assert "armSkuName+eq+%27Standard_E8s_v5%27" in answers[0]


def _sku(description: str, dollars: float, region: str = "us-central1") -> dict:
    """One Cloud Billing Catalog SKU in the documented shape (unitPrice as units + nanos)."""
    units, nanos = int(dollars), round((dollars - int(dollars)) * 1e9)
    return {"description": description, "serviceRegions": [region],
            "pricingInfo": [{"pricingExpression": {"tieredRates": [
                {"unitPrice": {"units": str(units), "nanos": nanos}}]}}]}


def test_gcp_prices_a3_mega_from_its_own_skus(monkeypatch):
    # A3 Mega is billed as "A3Plus" cores/RAM plus "H100 80GB Mega" GPUs; GPU spot SKUs say
    # "attached to Spot Preemptible VMs" instead of starting with "Spot Preemptible".
    skus = [_sku("A3Plus Instance Core running in Americas", 0.03),
            _sku("A3Plus Instance Ram running in Americas", 0.004),
            _sku("Spot Preemptible A3Plus Instance Core running in Americas", 0.01),
            _sku("Spot Preemptible A3Plus Instance Ram running in Americas", 0.001),
            _sku("Nvidia H100 80GB Mega GPU running in Americas", 11.0),
            _sku("Nvidia H100 80GB Mega GPU attached to Spot Preemptible VMs running in "
                 "Americas", 2.5),
            _sku("Nvidia H100 80GB GPU running in Americas", 10.0)]
    monkeypatch.setattr(refresh, "_gcp_skus", lambda: iter(skus))
    rows = _rows("gcp", "a3-megagpu-8g", "us-central1")
    prices = refresh.gcp_prices(rows)
    on_demand, spot = prices[refresh.price_key(rows[0])]
    assert on_demand == pytest.approx(208 * 0.03 + 1872 * 0.004 + 8 * 11.0)
    assert spot == pytest.approx(208 * 0.01 + 1872 * 0.001 + 8 * 2.5)
    # the a3-highgpu shapes still use the A3 core SKUs (absent here: price not found)
    high = _rows("gcp", "a3-highgpu-2g", "us-central1")
    assert refresh.gcp_prices(high)[refresh.price_key(high[0])] == (None, None)
