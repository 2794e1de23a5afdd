"""Where a cloud datastore makes the server connect, and which of those places are off limits.

A datastore's custom endpoint (an S3 ``endpoint_url``, an Azure ``endpoint`` URL for an emulator
or a sovereign cloud) makes the *server* open connections there, and its content routes hand back
what comes back: a server-side request forgery (anchors BI-15; MLflow CVE-2023-6974, Ray
CVE-2023-48023). With ``endpoint_url: http://169.254.169.254`` and bucket ``latest``, reading
``meta-data/iam/security-credentials/<role>`` returned an AWS instance's credentials. So:

- cloud metadata services (link-local ``169.254.0.0/16``, ``fe80::/10``, AWS's ``fd00:ec2::254``,
  Alibaba's ``100.100.100.200``) are refused for everyone, when the datastore is created and again
  each time it is opened (a name that resolves there later is caught then);
- the server's own host (loopback, ``0.0.0.0``, ``localhost``) takes the admin right, as a
  ``local`` datastore does: an Azurite or MinIO beside the server is an admin's choice;
- private addresses (an in-house MinIO) are allowed: that is what self-hosting is for.

Names are resolved with the system resolver; a name that does not resolve is let through (the
connection fails anyway). A name that resolves to a public address when checked and to a private
one when connected (DNS rebinding) is not caught for loopback; see docs/security.md.
"""

from __future__ import annotations

import ipaddress
import socket
from collections.abc import Iterable
from typing import Any
from urllib.parse import urlsplit

from shoal.errors import PermissionDeniedError, UserError

IPAddress = ipaddress.IPv4Address | ipaddress.IPv6Address
METADATA_NETWORKS = tuple(
    ipaddress.ip_network(n) for n in ("169.254.0.0/16", "fe80::/10", "fd00:ec2::254/128", "100.100.100.200/32")
)
# Endpoints under these suffixes are the public clouds' own: not resolved (no DNS on every open).
CLOUD_SUFFIXES = (".core.windows.net", ".amazonaws.com", ".core.chinacloudapi.cn", ".core.usgovcloudapi.net")


def _addresses(host: str) -> list[IPAddress]:
    host = host.strip("[]")
    try:
        found = [ipaddress.ip_address(host)]
    except ValueError:
        if host.lower().endswith(CLOUD_SUFFIXES):
            return []
        try:
            infos = socket.getaddrinfo(host, None, proto=socket.IPPROTO_TCP)
        except (OSError, UnicodeError):
            return []
        found = [ipaddress.ip_address(info[4][0].split("%", 1)[0]) for info in infos]
    return [a.ipv4_mapped if isinstance(a, ipaddress.IPv6Address) and a.ipv4_mapped else a for a in found]


def classify(host: str) -> str | None:
    """ "metadata", "loopback" or None (anywhere else) for a host name or address."""
    if host.strip("[]").lower() in ("localhost", "localhost.localdomain") or host.lower().endswith(".localhost"):
        return "loopback"
    kinds = set()
    for address in _addresses(host):
        if any(address in net for net in METADATA_NETWORKS if net.version == address.version):
            kinds.add("metadata")
        elif address.is_loopback or address.is_unspecified:
            kinds.add("loopback")
    return "metadata" if "metadata" in kinds else "loopback" if kinds else None


def datastore_urls(ds_type: str, spec: dict[str, Any]) -> list[str]:
    """The custom endpoints a datastore of ``ds_type`` connects to (none for the clouds' own)."""
    if ds_type == "s3":
        return [str(spec["endpoint_url"])] if spec.get("endpoint_url") else []
    endpoint = str(spec.get("endpoint") or "").strip()
    if not endpoint:
        return []
    return [endpoint if "://" in endpoint else f"https://x.blob.{endpoint}"]


def _hosts(urls: Iterable[str]) -> list[str]:
    hosts = []
    for url in urls:
        try:
            host = urlsplit(url).hostname
        except ValueError as exc:
            raise UserError(f"invalid endpoint {url[:200]!r}: {exc}") from None
        if host:
            hosts.append(host)
    return hosts


def check_endpoints(ds_type: str, spec: dict[str, Any], *, allow_loopback: bool, label: str) -> None:
    """Refuse a datastore whose endpoint is a cloud metadata service (always) or the server's own
    host (unless ``allow_loopback``: the admin right)."""
    for host in _hosts(datastore_urls(ds_type, spec)):
        kind = classify(host)
        if kind == "metadata":
            raise UserError(
                f"{label}: the endpoint host {host!r} is a cloud metadata address (link-local); "
                "a datastore may not point there"
            )
        if kind == "loopback" and not allow_loopback:
            raise PermissionDeniedError(
                f"{label}: the endpoint host {host!r} is the server's own host; a datastore that points there "
                "needs the 'admin' permission (as a local datastore does)"
            )
