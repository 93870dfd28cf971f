"""Refresh a price catalog from the cloud's own price list.

Usage (needs network; AWS and GCP also need credentials):

    python -m skyterra.catalog.refresh --cloud aws            # → ~/.skyterra/catalog/aws.csv
    python -m skyterra.catalog.refresh --cloud azure --dry-run
    python -m skyterra.catalog.refresh --cloud gcp --out skyterra/catalog   # the shipped file

What it does: the current catalog of the cloud is the list of machines and
places to track (which instance types, which regions or zones: that choice is
made by hand, so the catalog stays small and every row is something skyterra
can launch). For exactly those it asks today's on-demand and spot prices and
writes the same CSV format, with a first line recording the source and date.
skyterra reads ~/.skyterra/catalog/<cloud>.csv in preference to the shipped
file, so a refreshed catalog is used at once. A row whose price cannot be
found keeps its old price and is listed at the end: a partial outage or a
renamed price item never silently shrinks the catalog. Tests never run this.

Sources:
  aws    boto3: the Price List API (pricing:GetProducts; Linux, shared tenancy,
         on-demand) and EC2 DescribeSpotPriceHistory (current price, cheapest
         zone of the region).
  gcp    the Cloud Billing Catalog API (Compute Engine SKUs) with google-auth
         default credentials. A machine costs vCPUs x core SKU + GiB x RAM SKU
         + GPUs x GPU SKU of its family and region; families whose SKU names
         are not in GCP_FAMILY_SKUS keep their old price.
  azure  the public Retail Prices API (prices.azure.com), no credentials.
"""

from __future__ import annotations

import argparse
import datetime
import json
import sys
import urllib.parse
import urllib.request
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

from skyterra import catalog
from skyterra.catalog.row import CatalogRow, write_csv
from skyterra.paths import home

# (instance_type, accelerator_name, accelerator_count, region) → (on-demand, spot)
PriceKey = tuple[str, str | None, int, str]
Prices = dict[PriceKey, tuple[float | None, float | None]]

SOURCES = {
    "aws": "AWS Price List API (Linux, shared, on-demand) + EC2 spot price history",
    "gcp": "GCP Cloud Billing Catalog API (Compute Engine SKUs: core + RAM + GPU)",
    "azure": "Azure Retail Prices API (Linux pay-as-you-go and Spot)",
}


def price_key(row: CatalogRow) -> PriceKey:
    return (row.instance_type, row.accelerator_name, row.accelerator_count, row.region)


def apply_prices(rows: list[CatalogRow], prices: Prices
                 ) -> tuple[list[CatalogRow], list[CatalogRow]]:
    """New rows with fetched prices, and the rows whose on-demand price was not found.

    A found on-demand price replaces the old one; the spot price is replaced by
    what was found (None when the cloud has no spot offer). Spot above
    on-demand is dropped: it is not a saving and would confuse ranking.
    """
    updated, missing = [], []
    for row in rows:
        price, spot = prices.get(price_key(row), (None, None))
        if not price:
            missing.append(row)
            updated.append(row)
            continue
        spot = spot if spot and spot <= price else None
        updated.append(row._replace(price=price, spot_price=spot))
    return updated, missing


# --- AWS ------------------------------------------------------------------------------
def _aws_on_demand(pricing: Any, instance_type: str, region: str) -> float | None:
    filters = {"instanceType": instance_type, "regionCode": region, "operatingSystem": "Linux",
               "tenancy": "Shared", "preInstalledSw": "NA", "capacitystatus": "Used"}
    response = pricing.get_products(ServiceCode="AmazonEC2", MaxResults=20, Filters=[
        {"Type": "TERM_MATCH", "Field": k, "Value": v} for k, v in filters.items()])
    for item in response["PriceList"]:
        for term in json.loads(item)["terms"].get("OnDemand", {}).values():
            for dimension in term["priceDimensions"].values():
                usd = float(dimension["pricePerUnit"].get("USD", 0))
                if usd > 0:
                    return usd
    return None


def _aws_spot(ec2: Any, instance_type: str) -> float | None:
    response = ec2.describe_spot_price_history(
        InstanceTypes=[instance_type], ProductDescriptions=["Linux/UNIX"],
        StartTime=datetime.datetime.now(datetime.timezone.utc))
    found = [float(p["SpotPrice"]) for p in response["SpotPriceHistory"]]
    return min(found) if found else None


def aws_prices(rows: list[CatalogRow]) -> Prices:
    import boto3

    pricing = boto3.client("pricing", region_name="us-east-1")
    prices: Prices = {}
    for region in sorted({r.region for r in rows}):
        ec2 = boto3.client("ec2", region_name=region)
        for row in {price_key(r): r for r in rows if r.region == region}.values():
            prices[price_key(row)] = (_aws_on_demand(pricing, row.instance_type, region),
                                      _aws_spot(ec2, row.instance_type))
    return prices


# --- GCP ------------------------------------------------------------------------------
GCP_COMPUTE_SERVICE = "services/6F81-5844-456A"
# machine series (or "series-shape" where a shape is billed apart) → SKU description prefix
# of its cores and RAM; the longest matching key wins (a3-megagpu before a3)
GCP_FAMILY_SKUS = {"n1": "N1 Predefined Instance", "n2": "N2 Instance", "e2": "E2 Instance",
                   "c2": "Compute optimized", "c3": "C3 Instance", "n2d": "N2D AMD Instance",
                   "c2d": "C2D AMD Instance", "g2": "G2 Instance", "a2": "A2 Instance",
                   "a3": "A3 Instance", "a3-megagpu": "A3Plus Instance"}
GCP_GPU_SKUS = {"T4": "Nvidia Tesla T4 GPU", "V100": "Nvidia Tesla V100 GPU",
                "P100": "Nvidia Tesla P100 GPU", "P4": "Nvidia Tesla P4 GPU",
                "L4": "Nvidia L4 GPU",
                "A100": "Nvidia Tesla A100 GPU", "A100-80GB": "Nvidia Tesla A100 80GB GPU",
                "H100": "Nvidia H100 80GB GPU", "H100-MEGA": "Nvidia H100 80GB Mega GPU",
                "H200": "Nvidia H200 141GB GPU"}
_SPOT_PREFIX = "Spot Preemptible "
# GPU spot SKUs are worded "Nvidia L4 GPU attached to Spot Preemptible VMs running in …"
_SPOT_GPU = " attached to Spot Preemptible VMs"


def _gcp_skus() -> Iterator[dict]:
    import google.auth
    from google.auth.transport.requests import AuthorizedSession

    credentials, _ = google.auth.default(
        scopes=["https://www.googleapis.com/auth/cloud-platform"])
    session = AuthorizedSession(credentials)
    url = f"https://cloudbilling.googleapis.com/v1/{GCP_COMPUTE_SERVICE}/skus"
    token = ""
    while True:
        page = session.get(url, params={"pageToken": token, "pageSize": 5000}, timeout=60)
        page.raise_for_status()
        body = page.json()
        yield from body.get("skus", [])
        token = body.get("nextPageToken", "")
        if not token:
            return


def _unit_price(sku: dict) -> float:
    rates = sku["pricingInfo"][0]["pricingExpression"]["tieredRates"]
    money = rates[-1]["unitPrice"]
    return int(money.get("units", 0)) + money.get("nanos", 0) / 1e9


def _gcp_rates(skus: Iterator[dict]) -> dict[tuple[str, str, bool], float]:
    """(description prefix + ' Core'/' Ram'/'', region, spot) → $ per core/GiB/GPU hour."""
    wanted = [f"{p} Core" for p in GCP_FAMILY_SKUS.values()] + \
             [f"{p} Ram" for p in GCP_FAMILY_SKUS.values()] + list(GCP_GPU_SKUS.values())
    rates: dict[tuple[str, str, bool], float] = {}
    for sku in skus:
        description = sku.get("description", "")
        spot = description.startswith(_SPOT_PREFIX) or _SPOT_GPU in description
        plain = description.removeprefix(_SPOT_PREFIX).replace(_SPOT_GPU, "")
        match = next((w for w in wanted if plain.startswith(w + " running in")), None)
        if match is None or "Commitment" in description:
            continue
        for region in sku.get("serviceRegions", []):
            rates.setdefault((match, region, spot), _unit_price(sku))
    return rates


def _gcp_family_sku(instance_type: str) -> str | None:
    parts = instance_type.split("-")
    return GCP_FAMILY_SKUS.get("-".join(parts[:2])) or GCP_FAMILY_SKUS.get(parts[0])


def _gcp_row_price(row: CatalogRow, rates: dict, spot: bool) -> float | None:
    family = _gcp_family_sku(row.instance_type)
    parts = [(f"{family} Core", row.vcpus), (f"{family} Ram", row.memory_gib)] if family else []
    if row.accelerator_name:
        parts.append((GCP_GPU_SKUS.get(row.accelerator_name, "?"), row.accelerator_count))
    if not parts or any((name, row.region, spot) not in rates for name, _ in parts):
        return None
    return round(sum(rates[(name, row.region, spot)] * amount for name, amount in parts), 5)


def gcp_prices(rows: list[CatalogRow]) -> Prices:
    rates = _gcp_rates(_gcp_skus())
    return {price_key(r): (_gcp_row_price(r, rates, False), _gcp_row_price(r, rates, True))
            for r in rows}


# --- Azure ----------------------------------------------------------------------------
AZURE_PRICES_URL = "https://prices.azure.com/api/retail/prices"


def _azure_items(sku: str, region: str) -> Iterator[dict]:
    query = (f"serviceName eq 'Virtual Machines' and armSkuName eq '{sku}' and "
             f"armRegionName eq '{region}' and priceType eq 'Consumption'")
    url = f"{AZURE_PRICES_URL}?{urllib.parse.urlencode({'$filter': query})}"
    while url:
        with urllib.request.urlopen(url, timeout=60) as response:
            body = json.load(response)
        yield from body.get("Items", [])
        url = body.get("NextPageLink")


def _azure_sku_prices(items: Iterator[dict]) -> tuple[float | None, float | None]:
    """(pay-as-you-go, spot) Linux $/hour from Retail Prices items of one SKU and region."""
    on_demand = spot = None
    for item in items:
        name = f"{item.get('skuName', '')} {item.get('meterName', '')}"
        if "Windows" in item.get("productName", "") or "Low Priority" in name:
            continue
        price = float(item["retailPrice"])
        if "Spot" in name:
            spot = price if spot is None else min(spot, price)
        else:
            on_demand = price if on_demand is None else min(on_demand, price)
    return on_demand, spot


def azure_prices(rows: list[CatalogRow]) -> Prices:
    return {price_key(r): _azure_sku_prices(_azure_items(r.instance_type, r.region))
            for r in {price_key(r): r for r in rows}.values()}


FETCHERS: dict[str, Callable[[list[CatalogRow]], Prices]] = {
    "aws": aws_prices, "gcp": gcp_prices, "azure": azure_prices}


# --- command line ---------------------------------------------------------------------
def _report(old: list[CatalogRow], new: list[CatalogRow], missing: list[CatalogRow]) -> None:
    moved = [(a, b) for a, b in zip(old, new) if abs(b.price - a.price) > 0.1 * a.price]
    print(f"{len(new)} rows, {len(new) - len(missing)} priced, {len(moved)} changed by >10%")
    for a, b in moved[:20]:
        print(f"  {a.instance_type} {a.region}: ${a.price:.4f} → ${b.price:.4f}")
    for row in missing:
        print(f"  no price found, kept the old one: {row.instance_type} {row.gpus} "
              f"{row.zone or row.region}", file=sys.stderr)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m skyterra.catalog.refresh",
                                     description=__doc__.split("\n\n")[0])
    parser.add_argument("--cloud", required=True, choices=sorted(FETCHERS))
    parser.add_argument("--out", type=Path, default=home() / "catalog",
                        help="directory to write <cloud>.csv into (default: %(default)s)")
    parser.add_argument("--dry-run", action="store_true", help="report, do not write")
    args = parser.parse_args(argv)
    rows = catalog.rows(args.cloud)
    if not rows:
        parser.error(f"no catalog for {args.cloud} to take the machine list from")
    updated, missing = apply_prices(rows, FETCHERS[args.cloud](rows))
    _report(rows, updated, missing)
    if not args.dry_run:
        today = datetime.date.today().isoformat()
        path = args.out / f"{args.cloud}.csv"
        write_csv(path, updated, f"skyterra catalog: {args.cloud} USD/hour from "
                                 f"{SOURCES[args.cloud]}; refreshed {today}")
        print(f"wrote {path}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
