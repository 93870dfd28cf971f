"""GCP and Azure: error classes on real API texts, credential reports, rendering decisions.

The error texts are the messages Terraform prints when the google / azurerm
providers pass on a Compute Engine or Azure Resource Manager error; failover
(provision.py) acts on the kind: capacity and quota → try the next candidate,
auth and invalid → stop and tell the user.
"""

from __future__ import annotations

import sys
import types

import pytest

from skyterra.clouds import azure as azure_mod
from skyterra.clouds import gcp as gcp_mod
from skyterra.clouds import get_cloud
from skyterra.errors import ConfigError, TaskError
from skyterra.optimizer import Candidate
from skyterra.task import Task
from tests.deployments import deployment_for

GCP_ERRORS = [
    ("capacity", ("Error: Error waiting for instance to create: The zone "
                 "'projects/my-proj/zones/us-central1-a' does not have enough resources available "
                 "to fulfill the request.  Try a different zone, or try again later.")),
    ("capacity", ("Error: Error creating instance: googleapi: Error 503: "
                 "ZONE_RESOURCE_POOL_EXHAUSTED_WITH_DETAILS - The zone "
                 "'projects/p/zones/us-east4-c' does not have enough resources available to "
                 "fulfill the request. '(resource type:compute)'.")),
    ("capacity", ("code = ZONE_RESOURCE_POOL_EXHAUSTED, message = The zone 'projects/p/zones/"
                 "europe-west4-a' does not have enough resources available")),
    ("capacity", ("Error: Error creating instance: googleapi: Error 400: Invalid value for field "
                 "'resource.machineType': 'zones/us-west1-a/machineTypes/a3-highgpu-8g'. Machine "
                 "type with name 'a3-highgpu-8g' does not exist in zone 'us-west1-a'., invalid")),
    ("quota", ("Error: Error waiting for instance to create: Quota 'NVIDIA_L4_GPUS' exceeded.  "
              "Limit: 0.0 in region us-central1.")),
    ("quota", ("Error: Error creating instance: googleapi: Error 403: Quota 'GPUS_ALL_REGIONS' "
              "exceeded.  Limit: 0.0 globally., quotaExceeded")),
    ("quota", ("Error waiting for instance to create: QUOTA_EXCEEDED: Quota "
              "'PREEMPTIBLE_NVIDIA_A100_GPUS' exceeded. Limit: 16.0 in region us-central1.")),
    ("quota", ("googleapi: Error 403: Quota exceeded for quota metric 'Queries' and limit "
              "'Queries per minute' of service 'compute.googleapis.com', rateLimitExceeded")),
    ("auth", ("Error: Error creating instance: googleapi: Error 403: Required "
             "'compute.instances.create' permission for "
             "'projects/p/zones/us-central1-a/instances/mingpt-0', forbidden")),
    ("auth", ("Error: Attempted to load application default credentials since neither "
             "`credentials` nor `access_token` was set in the provider block.  No credentials "
             "loaded. To use your gcloud credentials, run 'gcloud auth application-default "
             "login'.  Original error: google: could not find default credentials. See "
             "https://cloud.google.com/docs/authentication/external/set-up-adc for more info")),
    ("auth", ("oauth2: cannot fetch token: 400 Bad Request Response: {\"error\": "
             "\"invalid_grant\", \"error_description\": \"reauth related error "
             "(invalid_rapt)\"}")),
    ("auth", ("googleapi: Error 403: Compute Engine API has not been used in project 1234 before "
             "or it is disabled. Enable it by visiting https://console.developers.google.com/"
             "apis/api/compute.googleapis.com/overview?project=1234, accessNotConfigured")),
    ("invalid", ("Error: Error creating instance: googleapi: Error 400: [nvidia-tesla-a100, "
                "n1-highmem-8] features are not compatible for creating instance., badRequest")),
    ("invalid", ("Error: Error resolving image name 'projects/deeplearning-platform-release/"
                "global/images/family/nope': Could not find image or family projects/"
                "deeplearning-platform-release/global/images/family/nope")),
    ("invalid", ("Error: Error creating Firewall: googleapi: Error 409: The resource "
                "'projects/p/global/firewalls/skyterra-mingpt-ssh' already exists, "
                "alreadyExists")),
    ("invalid", "Error: project: required field is not set"),
    ("other", ("Error: Post \"https://compute.googleapis.com/compute/v1/projects/p/zones/"
              "us-central1-a/instances\": net/http: TLS handshake timeout")),
]

AZURE_ERRORS = [
    ("capacity", ("Error: creating Linux Virtual Machine (Subscription: \"0000\" Resource Group "
                 "Name: \"skyterra-mingpt\" Virtual Machine Name: \"mingpt-0\"): performing "
                 "CreateOrUpdate: unexpected status 409 (409 Conflict) with error: "
                 "SkuNotAvailable: The requested VM size for resource 'Following SKUs have "
                 "failed for Capacity Restrictions: Standard_NC24ads_A100_v4' is currently not "
                 "available in location 'eastus'. Please try another size or deploy to a "
                 "different location or different zone.")),
    ("capacity", ("Code=\"AllocationFailed\" Message=\"Allocation failed. We do not have "
                 "sufficient capacity for the requested VM size in this region. Read more about "
                 "improving likelihood of allocation success at http://aka.ms/allocation-guidance")),
    ("capacity", ("polling after CreateOrUpdate: Code=\"ZonalAllocationFailed\" Message="
                 "\"Allocation failed. We do not have sufficient capacity for the requested VM "
                 "size in this zone.\"")),
    ("capacity", ("OverconstrainedAllocationRequest: Allocation failed. VM(s) with the following "
                 "constraints cannot be allocated, because the condition is too restrictive. "
                 "Please remove some constraints and try again. Constraints applied are: - "
                 "Networking Constraints (such as Accelerated Networking or IPv6) - VM Size")),
    ("capacity", "Code=\"OverconstrainedZonalAllocationRequest\" Message=\"Allocation failed.\""),
    ("quota", ("unexpected status 409 (409 Conflict) with error: OperationNotAllowed: Operation "
              "could not be completed as it results in exceeding approved "
              "standardNCADSA100v4Family Cores quota. Additional details - Deployment Model: "
              "Resource Manager, Location: eastus, Current Limit: 0, Current Usage: 0, "
              "Additional Required: 24, (Minimum) New Limit Required: 24.")),
    ("quota", ("Code=\"QuotaExceeded\" Message=\"Operation could not be completed as it results "
              "in exceeding approved LowPriorityCores quota.\"")),
    ("quota", ("Code=\"OperationNotAllowed\" Message=\"Operation could not be completed as it "
              "results in exceeding approved Total Regional Cores quota.\"")),
    ("quota", ("PublicIPCountLimitReached: Cannot create more than 10 public IP addresses for "
              "this subscription in this region.")),
    ("auth", ("unexpected status 403 (403 Forbidden) with error: AuthorizationFailed: The client "
             "'user@example.com' with object id '1111' does not have authorization to perform "
             "action 'Microsoft.Resources/subscriptions/resourcegroups/write' over scope "
             "'/subscriptions/0000/resourcegroups/skyterra-mingpt' or the scope is invalid.")),
    ("auth", ("unexpected status 401 (401 Unauthorized) with error: InvalidAuthenticationToken: "
             "The access token is invalid.")),
    ("auth", ("Code=\"ExpiredAuthenticationToken\" Message=\"The access token expiry UTC time is "
             "earlier than current UTC time.\"")),
    ("auth", ("Error: building account: could not acquire access token to parse claims: running "
             "Azure CLI: exit status 1: ERROR: Please run 'az login' to setup account.")),
    ("auth", ("MissingSubscriptionRegistration: The subscription is not registered to use "
             "namespace 'Microsoft.Compute'.")),
    ("auth", ("Error: `subscription_id` is a required provider property when performing a "
             "plan/apply operation")),
    ("invalid", ("Code=\"InvalidParameter\" Message=\"The value of parameter imageReference.sku "
                "is invalid.\" Target=\"imageReference.sku\"")),
    ("invalid", ("Code=\"PlatformImageNotFound\" Message=\"The platform image "
                "'microsoft-dsvm:ubuntu-hpc:1804:latest' is not available.\"")),
    ("invalid", ("Code=\"VMSizeIsNotPermittedToEnableAcceleratedNetworking\" Message=\"VM size "
                "Standard_B2s is not compatible with enabling accelerated networking.\"")),
    ("other", ("Error: retrieving Linux Virtual Machine: dial tcp: lookup management.azure.com: "
              "no such host")),
]


@pytest.mark.parametrize("kind,text", GCP_ERRORS, ids=[f"{k}-{i}" for i, (k, _) in
                                                        enumerate(GCP_ERRORS)])
def test_gcp_classifies_real_error_texts(kind, text):
    assert get_cloud("gcp").classify_error(text) == kind


@pytest.mark.parametrize("kind,text", AZURE_ERRORS, ids=[f"{k}-{i}" for i, (k, _) in
                                                          enumerate(AZURE_ERRORS)])
def test_azure_classifies_real_error_texts(kind, text):
    assert get_cloud("azure").classify_error(text) == kind


def test_registry_returns_the_classes():
    assert type(get_cloud("gcp")) is gcp_mod.GCP and get_cloud("gcp").template == "gcp"
    assert type(get_cloud("azure")) is azure_mod.Azure and get_cloud("azure").template == "azure"
    assert get_cloud("gcp").default_ssh_user == "gcpuser"
    assert get_cloud("azure").default_ssh_user == "azureuser"


# --- credentials: GCP ----------------------------------------------------------------------
def _clear_env(monkeypatch, names):
    for name in names:
        monkeypatch.delenv(name, raising=False)


def _fake_google_auth(monkeypatch, default):
    """Install a fake google.auth whose default() is `default`."""
    google = types.ModuleType("google")
    auth = types.ModuleType("google.auth")
    exceptions = types.ModuleType("google.auth.exceptions")

    class DefaultCredentialsError(Exception):
        pass

    exceptions.DefaultCredentialsError = DefaultCredentialsError
    auth.exceptions = exceptions
    auth.default = lambda scopes=None: default(DefaultCredentialsError)
    google.auth = auth
    monkeypatch.setitem(sys.modules, "google", google)
    monkeypatch.setitem(sys.modules, "google.auth", auth)
    monkeypatch.setitem(sys.modules, "google.auth.exceptions", exceptions)


class _Credentials:
    token = "ya29.SECRET-TOKEN"
    service_account_email = "trainer@my-proj.iam.gserviceaccount.com"


def test_gcp_without_google_auth_says_how_to_install(monkeypatch):
    monkeypatch.setitem(sys.modules, "google.auth", None)
    report = get_cloud("gcp").check_credentials()
    assert not report.ok
    assert report.detail == "not installed: pip install skyterra[gcp]"


def test_gcp_reports_account_and_project_but_no_secret(monkeypatch):
    _clear_env(monkeypatch, gcp_mod._PROJECT_ENV)
    _fake_google_auth(monkeypatch, lambda _error: (_Credentials(), "my-proj"))
    report = get_cloud("gcp").check_credentials()
    assert report.ok, report
    assert "my-proj" in report.detail and "trainer@my-proj" in report.detail
    assert "SECRET" not in report.detail + report.hint


def test_gcp_project_from_the_environment(monkeypatch):
    _clear_env(monkeypatch, gcp_mod._PROJECT_ENV)
    monkeypatch.setenv("GOOGLE_CLOUD_PROJECT", "env-proj")
    _fake_google_auth(monkeypatch, lambda _error: (_Credentials(), None))
    report = get_cloud("gcp").check_credentials()
    assert report.ok and "env-proj" in report.detail


def test_gcp_credentials_without_project_are_not_enough(monkeypatch):
    _clear_env(monkeypatch, gcp_mod._PROJECT_ENV)
    _fake_google_auth(monkeypatch, lambda _error: (_Credentials(), None))
    report = get_cloud("gcp").check_credentials()
    assert not report.ok and "GOOGLE_CLOUD_PROJECT" in report.hint


def test_gcp_missing_credentials_hint_at_adc_login(monkeypatch):
    def default(error_class):
        raise error_class("Your default credentials were not found.")
    _fake_google_auth(monkeypatch, default)
    report = get_cloud("gcp").check_credentials()
    assert not report.ok
    assert "application-default login" in report.hint


# --- credentials: Azure --------------------------------------------------------------------
SUBSCRIPTION = "12345678-aaaa-bbbb-cccc-1234567890ab"
AZ_ACCOUNT = {"id": SUBSCRIPTION, "name": "ML Research", "tenantId": "t",
              "user": {"name": "alice@example.com", "type": "user"}}
_AZURE_ENV = ("ARM_SUBSCRIPTION_ID", "AZURE_SUBSCRIPTION_ID", "ARM_CLIENT_ID", "AZURE_CLIENT_ID",
              *azure_mod._SP_ENV_SECRETS)


@pytest.fixture
def azure_env(monkeypatch):
    _clear_env(monkeypatch, _AZURE_ENV)
    monkeypatch.setitem(sys.modules, "azure.identity", None)   # not installed
    monkeypatch.setattr(azure_mod, "_az_account_show", lambda: None)
    monkeypatch.setattr(azure_mod.shutil, "which", lambda name: None)
    return monkeypatch


def test_azure_with_nothing_installed_says_how_to_install(azure_env):
    report = get_cloud("azure").check_credentials()
    assert not report.ok
    assert report.detail == "not installed: pip install skyterra[azure]"


def test_azure_az_cli_login_is_enough(azure_env):
    azure_env.setattr(azure_mod, "_az_account_show", lambda: dict(AZ_ACCOUNT))
    report = get_cloud("azure").check_credentials()
    assert report.ok, report
    assert "alice@example.com" in report.detail and "ML Research" in report.detail
    assert SUBSCRIPTION not in report.detail and SUBSCRIPTION[-4:] in report.detail


def test_azure_service_principal_from_the_environment(azure_env):
    azure_env.setenv("ARM_SUBSCRIPTION_ID", SUBSCRIPTION)
    azure_env.setenv("ARM_CLIENT_ID", "app-id")
    azure_env.setenv("ARM_CLIENT_SECRET", "SUPER-SECRET-VALUE")
    report = get_cloud("azure").check_credentials()
    assert report.ok and "service principal" in report.detail
    assert "SUPER-SECRET" not in report.detail + report.hint


def test_azure_subscription_without_login(azure_env):
    azure_env.setenv("ARM_SUBSCRIPTION_ID", SUBSCRIPTION)
    report = get_cloud("azure").check_credentials()
    assert not report.ok and "az login" in report.hint


def test_azure_identity_without_a_usable_login(azure_env):
    azure_env.setenv("AZURE_SUBSCRIPTION_ID", SUBSCRIPTION)
    identity = types.ModuleType("azure.identity")

    class DefaultAzureCredential:
        def __init__(self, **kwargs):
            pass

        def get_token(self, *scopes):
            raise RuntimeError("DefaultAzureCredential failed to retrieve a token")

    identity.DefaultAzureCredential = DefaultAzureCredential
    azure_pkg = types.ModuleType("azure")
    azure_pkg.identity = identity
    azure_env.setitem(sys.modules, "azure", azure_pkg)
    azure_env.setitem(sys.modules, "azure.identity", identity)
    report = get_cloud("azure").check_credentials()
    assert not report.ok and "DefaultAzureCredential" in report.detail


# --- rendering decisions -------------------------------------------------------------------
KEY = "ssh-ed25519 AAAAC3NzaC1lZDI1NTE5AAAAIAAAA skyterra"


def _deploy(task, candidate, **options):
    return deployment_for(task, candidate, public_key=KEY + "\n",
                          options={"ssh_cidrs": ["203.0.113.7/32"], **options})


def _tfvars(task, candidate, **options):
    d = _deploy(task, candidate, **options)
    return d.cloud.tfvars(d)


def _task(num_nodes=1, **resources):
    return Task.from_yaml_config({"run": "true", "num_nodes": num_nodes,
                                  "resources": resources})


def _gcp(instance_type, accelerator, count, **kw):
    return Candidate(cloud="gcp", region="us-central1", zone=kw.pop("zone", "us-central1-a"),
                     instance_type=instance_type, accelerator=accelerator,
                     accelerator_count=count, vcpus=8, memory_gib=32, price=1.0, **kw)


def test_gcp_machine_type_helpers():
    assert gcp_mod.has_fixed_gpus("g2-standard-48") and gcp_mod.has_fixed_gpus("a3-megagpu-8g")
    assert not gcp_mod.has_fixed_gpus("n1-standard-8")
    assert gcp_mod.machine_series("custom-8-30720") == "n1"
    assert gcp_mod.machine_series("a2-ultragpu-8g") == "a2"


def test_gcp_context_is_structure_only():
    d = _deploy(_task(2, accelerators="L4:4"), _gcp("g2-standard-48", "L4", 4, num_nodes=2))
    context = d.cloud.template_context(d)
    assert context == {"gpu": True, "guest_accelerator": False, "spot": False,
                       "placement": True, "ports": False, "gpu_nics": False,
                       "storage": False, "autodown": False}
    assert all(isinstance(v, bool) for v in context.values())


def test_gcp_tfvars_strip_the_key_and_take_the_caller_cidr(monkeypatch):
    _clear_env(monkeypatch, gcp_mod._PROJECT_ENV)
    values = _tfvars(_task(accelerators="T4:2", use_spot=True),
                     _gcp("n1-standard-8", "T4", 2, use_spot=True))
    assert values["ssh_public_key"] == KEY
    assert values["ssh_source_ranges"] == ["203.0.113.7/32"]
    assert (values["gpu_type"], values["gpu_count"]) == ("nvidia-tesla-t4", 2)
    assert values["project"] is None


def test_gcp_never_defaults_ssh_to_the_internet():
    d = deployment_for(_task(accelerators="L4"), _gcp("g2-standard-4", "L4", 1))
    values = d.cloud.tfvars(d)
    assert "ssh_source_ranges" not in values  # the module's required variable asks for it


def test_gcp_rejects_label_values_gcp_cannot_store():
    with pytest.raises(TaskError, match="lowercase"):
        _tfvars(_task(accelerators="L4", labels={"team": "ML Team"}),
                _gcp("g2-standard-4", "L4", 1))


def test_gcp_needs_a_zone():
    with pytest.raises(ConfigError, match="zone"):
        _tfvars(_task(accelerators="L4"), _gcp("g2-standard-4", "L4", 1, zone=None))


def test_gcp_warns_when_placement_is_impossible():
    d = _deploy(_task(2, accelerators="V100:8"), _gcp("n1-highmem-64", "V100", 8, num_nodes=2))
    warnings = d.cloud.warnings(d)
    assert warnings and "compact placement" in warnings[0]


def test_azure_image_sources():
    assert azure_mod.image_source(None) == (azure_mod.DEFAULT_IMAGE, None)
    assert azure_mod.image_source("Canonical:ubuntu-24_04-lts:server:latest") == (
        {"publisher": "Canonical", "offer": "ubuntu-24_04-lts", "sku": "server",
         "version": "latest"}, None)
    image_id = "/subscriptions/0/resourceGroups/g/providers/Microsoft.Compute/images/i"
    assert azure_mod.image_source(image_id) == (None, image_id)
    with pytest.raises(TaskError, match="URN"):
        azure_mod.image_source("ubuntu-2204")


def test_azure_premium_storage_by_size_name():
    for size in ("Standard_NC24ads_A100_v4", "Standard_ND96asr_v4", "Standard_ND96isr_H100_v5",
                 "Standard_NC4as_T4_v3", "Standard_NV36ads_A10_v5"):
        assert azure_mod.premium_storage(size), size
    assert not azure_mod.premium_storage("Standard_NC6")
    assert not azure_mod.premium_storage("Standard_D4_v5")


def test_azure_says_which_gpu_stands_in():
    candidate = Candidate(cloud="azure", region="eastus", zone=None,
                          instance_type="Standard_NC64as_T4_v3", accelerator="T4",
                          accelerator_count=4, vcpus=64, memory_gib=440, price=4.4)
    d = _deploy(_task(accelerators="L4:4"), candidate)
    warnings = d.cloud.warnings(d)
    assert any("no L4" in w for w in warnings)


def test_azure_subscription_from_options_beats_the_environment(monkeypatch):
    monkeypatch.setenv("ARM_SUBSCRIPTION_ID", SUBSCRIPTION)
    candidate = Candidate(cloud="azure", region="westus3", zone="1",
                          instance_type="Standard_NC24ads_A100_v4", accelerator="A100-80GB",
                          accelerator_count=1, vcpus=24, memory_gib=220, price=3.7)
    task = _task(accelerators="A100-80GB:1")
    assert _tfvars(task, candidate)["subscription_id"] == SUBSCRIPTION
    chosen = "99999999-aaaa-bbbb-cccc-1234567890ab"
    values = _tfvars(task, candidate, azure_subscription_id=chosen)
    assert values["subscription_id"] == chosen
    assert (values["location"], values["zone"]) == ("westus3", "1")


def test_gcp_p4_attaches_to_n1_as_its_accelerator_type(monkeypatch):
    # GCP's P4 is an N1-attached GPU like T4 (SkyPilot's GCP catalog lists it in 16 zones)
    _clear_env(monkeypatch, gcp_mod._PROJECT_ENV)
    values = _tfvars(_task(accelerators="P4:2"), _gcp("n1-standard-16", "P4", 2))
    assert (values["gpu_type"], values["gpu_count"]) == ("nvidia-tesla-p4", 2)
