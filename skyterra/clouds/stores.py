"""Object stores (S3, GCS, Azure Blob): names, URLs, credentials and rclone remotes.

A store is what differs between the three bucket services: which URLs name
its buckets, which bucket names it accepts, which environment settings point
at an emulator (or LocalStack/MinIO) and hold credentials, and how rclone
reaches it -- from this machine, and from a node (with the node's cloud
identity, or with this machine's settings on the local cloud). The values of
a remote travel as RCLONE_CONFIG_<REMOTE>_<KEY> environment variables: never
in argv, never in a file left on disk.
"""

from __future__ import annotations

import base64
import dataclasses
import hashlib
import hmac
import ipaddress
import os
import re
import urllib.parse
from pathlib import Path

from skyterra.errors import ConfigError, TaskError


@dataclasses.dataclass(frozen=True)
class BucketRef:
    """Where a mount's objects are: store, bucket (container), sub-path, Azure account."""

    store: str
    bucket: str
    prefix: str = ""
    account: str = ""

    @property
    def path(self) -> str:
        """bucket[/prefix], as rclone's REMOTE:path wants it."""
        return f"{self.bucket}/{self.prefix}" if self.prefix else self.bucket

    def url(self) -> str:
        return STORES[self.store].url(self)


class Store:
    """One bucket service. Subclasses say what differs."""

    name = ""
    cloud = ""                 # the cloud whose nodes carry an identity for this store
    schemes: tuple[str, ...] = ()
    rclone_type = ""

    def url(self, ref: BucketRef) -> str:
        return f"{self.schemes[0]}://{ref.path}"

    def parse_url(self, url: str) -> BucketRef:
        rest = url.split("://", 1)[1]
        bucket, _, prefix = rest.partition("/")
        return BucketRef(self.name, bucket, prefix.strip("/"))

    def check_name(self, bucket: str, field: str) -> None:
        raise NotImplementedError

    def host_remote(self, ref: BucketRef) -> dict[str, str]:
        """rclone remote settings from this machine's environment (emulator or cloud)."""
        raise NotImplementedError

    def identity_remote(self, ref: BucketRef) -> dict[str, str]:
        """rclone remote settings for a node of `cloud` with its own cloud identity."""
        raise NotImplementedError

    def no_credentials(self) -> str:
        raise NotImplementedError

    # --- the Terraform module of a bucket skyterra creates (skyterra/bucketstate.py) ---
    def emulated(self) -> bool:
        """Do this machine's settings point at an emulator rather than the cloud?"""
        return False

    def module_template(self) -> str:
        """templates/<this>/ renders the bucket's module: the store's own resource, or
        `storage/rclone` (terraform_data + rclone) where no provider can be installed."""
        return RCLONE_MODULE if self.emulated() else f"storage/{self.name}"

    def module_context(self) -> dict[str, object]:
        """What the module's Jinja decides structure on (values go to tfvars only)."""
        return {"emulator": self.emulated()}

    def module_values(self, ref: BucketRef) -> dict[str, object]:
        """terraform.tfvars.json of the bucket's module (the store's own resource)."""
        raise NotImplementedError

    def rclone_module_values(self, ref: BucketRef) -> dict[str, object]:
        return {"bucket_name": ref.bucket, "store": self.name}


RCLONE_MODULE = "storage/rclone"
BUCKET_TAG = "skyterra-bucket"


def _label_value(text: str) -> str:
    """A GCS label value (lowercase letters, digits, '_' and '-', 63 at most)."""
    return re.sub(r"[^a-z0-9_-]", "-", text.lower())[:63]


def _dns_label_name(bucket: str, field: str, store: str, extra: str, pattern: str,
                    max_len: int = 63) -> None:
    if not (3 <= len(bucket) <= max_len) or not re.fullmatch(pattern, bucket):
        raise TaskError(f"{bucket!r} is not a valid {store} bucket name: {extra}",
                        field=field)


class S3Store(Store):
    name, cloud, schemes, rclone_type = "s3", "aws", ("s3",), "s3"

    def check_name(self, bucket: str, field: str) -> None:
        rule = ("3-63 characters of lowercase letters, digits, '.' and '-', starting and "
                "ending with a letter or digit, not an IP address (AWS's rule).")
        _dns_label_name(bucket, field, "S3", rule, r"[a-z0-9][a-z0-9.-]*[a-z0-9]")
        bad = ".." in bucket or bucket.startswith(("xn--", "sthree-")) or bucket.endswith(
            ("-s3alias", "--ol-s3"))
        try:
            ipaddress.ip_address(bucket)
            bad = True
        except ValueError:
            pass
        if bad:
            raise TaskError(f"{bucket!r} is not a valid S3 bucket name: {rule}", field=field)

    def endpoint(self) -> str:
        return os.environ.get("AWS_ENDPOINT_URL_S3") or os.environ.get("AWS_ENDPOINT_URL", "")

    def host_remote(self, ref: BucketRef) -> dict[str, str]:
        remote = {"type": "s3", "env_auth": "true"}
        region = os.environ.get("AWS_REGION") or os.environ.get("AWS_DEFAULT_REGION")
        if region:
            remote["region"] = region
        if self.endpoint():
            remote.update(provider="Other", endpoint=self.endpoint(), force_path_style="true")
        else:
            remote["provider"] = "AWS"
        for key, name in (("access_key_id", "AWS_ACCESS_KEY_ID"),
                          ("secret_access_key", "AWS_SECRET_ACCESS_KEY"),
                          ("session_token", "AWS_SESSION_TOKEN")):
            if os.environ.get(name):
                remote[key] = os.environ[name]
        return remote

    def identity_remote(self, ref: BucketRef) -> dict[str, str]:
        return {"type": "s3", "provider": "AWS", "env_auth": "true"}  # the instance profile

    def emulated(self) -> bool:
        return bool(self.endpoint())

    def module_template(self) -> str:
        return "storage/s3"   # the real provider, against an emulator too (it is installed)

    def module_values(self, ref: BucketRef) -> dict[str, object]:
        region = (os.environ.get("AWS_REGION") or os.environ.get("AWS_DEFAULT_REGION")
                  or "us-east-1")
        values: dict[str, object] = {"bucket_name": ref.bucket, "region": region,
                                     "tags": {BUCKET_TAG: ref.bucket}, "force_destroy": True}
        if self.endpoint():
            values["s3_endpoint"] = self.endpoint()
        return values

    def has_credentials(self) -> bool:
        if os.environ.get("AWS_ACCESS_KEY_ID") or os.environ.get("AWS_PROFILE"):
            return True
        shared = os.environ.get("AWS_SHARED_CREDENTIALS_FILE") or "~/.aws/credentials"
        path = Path(shared).expanduser()
        return path.is_file() and path.stat().st_size > 0

    def no_credentials(self) -> str:
        return ("no AWS credentials found for S3: set AWS_ACCESS_KEY_ID and "
                "AWS_SECRET_ACCESS_KEY (or AWS_PROFILE), and AWS_ENDPOINT_URL_S3 for an "
                "emulator such as moto, LocalStack or MinIO")


class GCSStore(Store):
    name, cloud, schemes, rclone_type = "gcs", "gcp", ("gs",), "google cloud storage"

    def check_name(self, bucket: str, field: str) -> None:
        rule = ("3-63 characters of lowercase letters, digits, '-', '_' and '.', starting and "
                "ending with a letter or digit, not starting with 'goog' nor containing "
                "'google' (Google's rule).")
        _dns_label_name(bucket, field, "GCS", rule, r"[a-z0-9][a-z0-9._-]*[a-z0-9]")
        if bucket.startswith("goog") or "google" in bucket or ".." in bucket:
            raise TaskError(f"{bucket!r} is not a valid GCS bucket name: {rule}", field=field)

    def host_remote(self, ref: BucketRef) -> dict[str, str]:
        emulator = os.environ.get("STORAGE_EMULATOR_HOST", "")
        if emulator:
            if "://" not in emulator:
                emulator = f"http://{emulator}"
            return {"type": self.rclone_type, "anonymous": "true", "endpoint": emulator,
                    "project_number": os.environ.get("GOOGLE_CLOUD_PROJECT", "skyterra")}
        remote = {"type": self.rclone_type, "env_auth": "true",
                  "bucket_policy_only": "true"}
        if os.environ.get("GOOGLE_APPLICATION_CREDENTIALS"):
            remote["service_account_file"] = os.environ["GOOGLE_APPLICATION_CREDENTIALS"]
        if os.environ.get("GOOGLE_CLOUD_PROJECT"):
            remote["project_number"] = os.environ["GOOGLE_CLOUD_PROJECT"]
        return remote

    def identity_remote(self, ref: BucketRef) -> dict[str, str]:
        # the node's service account, from the metadata server
        return {"type": self.rclone_type, "env_auth": "true", "bucket_policy_only": "true"}

    def emulated(self) -> bool:
        return bool(os.environ.get("STORAGE_EMULATOR_HOST"))

    def module_values(self, ref: BucketRef) -> dict[str, object]:
        values: dict[str, object] = {"bucket_name": ref.bucket, "force_destroy": True,
                                     "labels": {BUCKET_TAG: _label_value(ref.bucket)}}
        for key, name in (("project", "GOOGLE_CLOUD_PROJECT"),
                          ("location", "SKYTERRA_GCS_LOCATION")):
            if os.environ.get(name):
                values[key] = os.environ[name]
        return values

    def has_credentials(self) -> bool:
        adc = Path("~/.config/gcloud/application_default_credentials.json").expanduser()
        return bool(os.environ.get("STORAGE_EMULATOR_HOST")
                    or os.environ.get("GOOGLE_APPLICATION_CREDENTIALS") or adc.is_file())

    def no_credentials(self) -> str:
        return ("no Google credentials found for GCS: set GOOGLE_APPLICATION_CREDENTIALS "
                "(or run `gcloud auth application-default login`), or STORAGE_EMULATOR_HOST "
                "for an emulator")


# Azurite's documented development account (public, the same on every machine).
AZURITE_ACCOUNT = "devstoreaccount1"


class AzureStore(Store):
    name, cloud, schemes, rclone_type = "azure", "azure", ("https", "az"), "azureblob"

    def url(self, ref: BucketRef) -> str:
        return f"https://{ref.account}.blob.core.windows.net/{ref.path}"

    def parse_url(self, url: str) -> BucketRef:
        parsed = urllib.parse.urlsplit(url)
        if parsed.scheme == "az":   # az://<container>/<path>: the account from the settings
            container, _, prefix = (parsed.netloc + parsed.path).partition("/")
            return BucketRef(self.name, container, prefix.strip("/"), self.settings_account())
        account = (parsed.hostname or "").split(".")[0]
        container, _, prefix = parsed.path.lstrip("/").partition("/")
        return BucketRef(self.name, container, prefix.strip("/"), account)

    def check_name(self, bucket: str, field: str) -> None:
        rule = ("3-63 characters of lowercase letters, digits and single '-', starting and "
                "ending with a letter or digit (Azure's container rule).")
        _dns_label_name(bucket, field, "Azure", rule, r"[a-z0-9](?:[a-z0-9]|-(?!-))*[a-z0-9]")

    @staticmethod
    def connection() -> dict[str, str]:
        text = os.environ.get("AZURE_STORAGE_CONNECTION_STRING", "")
        pairs = (part.split("=", 1) for part in text.split(";") if "=" in part)
        return {key.strip(): value.strip() for key, value in pairs}

    def settings_account(self) -> str:
        return (self.connection().get("AccountName") or os.environ.get("AZURE_STORAGE_ACCOUNT")
                or "")

    def host_remote(self, ref: BucketRef) -> dict[str, str]:
        conn = self.connection()
        key = conn.get("AccountKey") or os.environ.get("AZURE_STORAGE_KEY", "")
        account = ref.account or self.settings_account()
        endpoint = conn.get("BlobEndpoint", "")
        if endpoint and not endpoint.startswith("https://"):
            # An emulator (Azurite): rclone 1.60 builds https://<account>.<endpoint> from an
            # endpoint, so give it an account SAS URL on the emulator's own address.
            return {"type": "azureblob", "sas_url": account_sas_url(endpoint, account, key)}
        return {"type": "azureblob", "account": account, "key": key}

    def identity_remote(self, ref: BucketRef) -> dict[str, str]:
        # the node's user-assigned managed identity (its client id is in the node env)
        return {"type": "azureblob", "account": ref.account, "use_msi": "true"}

    def emulated(self) -> bool:
        endpoint = self.connection().get("BlobEndpoint", "")
        return bool(endpoint) and not endpoint.startswith("https://")

    def module_values(self, ref: BucketRef) -> dict[str, object]:
        values: dict[str, object] = {"bucket_name": ref.bucket,
                                     "account": ref.account or self.settings_account(),
                                     "metadata": {BUCKET_TAG.replace("-", "_"): ref.bucket}}
        if os.environ.get("ARM_SUBSCRIPTION_ID"):
            values["subscription_id"] = os.environ["ARM_SUBSCRIPTION_ID"]
        return values

    def has_credentials(self) -> bool:
        conn = self.connection()
        return bool(conn.get("AccountKey") or os.environ.get("AZURE_STORAGE_KEY"))

    def no_credentials(self) -> str:
        return ("no Azure storage credentials found: set AZURE_STORAGE_CONNECTION_STRING "
                "(Azurite's for the emulator), or AZURE_STORAGE_ACCOUNT and AZURE_STORAGE_KEY")


def account_sas_url(endpoint: str, account: str, key: str, expiry: str = "2099-01-01T00:00:00Z"
                    ) -> str:
    """An account SAS (blob service, all resource types) signed with the account key."""
    version, permissions, services, types, protocols = "2019-12-12", "rwdlacup", "b", "sco", \
        "https,http"
    to_sign = f"{account}\n{permissions}\n{services}\n{types}\n\n{expiry}\n\n{protocols}\n{version}\n"
    try:
        secret = base64.b64decode(key)
    except ValueError:
        raise ConfigError("AZURE_STORAGE_CONNECTION_STRING: AccountKey is not base64.") from None
    signature = base64.b64encode(hmac.new(secret, to_sign.encode(), hashlib.sha256).digest())
    query = urllib.parse.urlencode({"sv": version, "ss": services, "srt": types,
                                    "sp": permissions, "se": expiry, "spr": protocols,
                                    "sig": signature.decode()})
    return f"{endpoint.rstrip('/')}?{query}"


def remote_env(remote: str, values: dict[str, str]) -> dict[str, str]:
    """rclone's environment form of a remote's settings (no config file is read)."""
    env = {"RCLONE_CONFIG": "/dev/null"}
    for key, value in values.items():
        env[f"RCLONE_CONFIG_{remote}_{key.upper()}"] = value
    return env


STORES: dict[str, Store] = {store.name: store for store in (S3Store(), GCSStore(), AzureStore())}


def store_for_url(url: str) -> Store | None:
    """The store whose URL form `url` has, or None (not a bucket URL)."""
    scheme = url.split("://", 1)[0].lower()
    if scheme == "https":
        host = urllib.parse.urlsplit(url).hostname or ""
        return STORES["azure"] if host.endswith(".blob.core.windows.net") else None
    return next((s for s in STORES.values() if scheme in s.schemes), None)


def store_of_cloud(cloud: str) -> str | None:
    """The store whose buckets nodes of `cloud` reach with their own identity."""
    return next((s.name for s in STORES.values() if s.cloud == cloud), None)
