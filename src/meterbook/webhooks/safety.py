"""Where webhooks may go (CONTRACT §7, "Safety"): public addresses only, unless the operator allows private ones.

An endpoint's URL is meterbook making requests on a tenant's behalf: without this, a tenant could make it
call the cloud's metadata service (169.254.169.254), the database, or anything else on the server's network.
The check runs when an endpoint is created or changed and again before every attempt (a name may resolve
elsewhere by then), and an attempt connects to the very address that was checked (``delivery.py``).
"""

from __future__ import annotations

import ipaddress
import socket

__all__ = ["Address", "is_ip_literal", "refusal", "resolve"]

Address = ipaddress.IPv4Address | ipaddress.IPv6Address


def is_ip_literal(host: str) -> bool:
    try:
        ipaddress.ip_address(host.strip("[]"))
    except ValueError:
        return False
    return True


def resolve(host: str, port: int) -> list[Address]:
    """The addresses ``host`` stands for, in the resolver's order; an ``OSError`` when it stands for none."""
    host = host.strip("[]")
    try:
        return [ipaddress.ip_address(host)]
    except ValueError:
        pass
    found: list[Address] = []
    for _family, _type, _proto, _name, sockaddr in socket.getaddrinfo(host, port, type=socket.SOCK_STREAM):
        address = ipaddress.ip_address(str(sockaddr[0]).split("%", 1)[0])
        if address not in found:
            found.append(address)
    if not found:
        raise OSError(f"{host} resolves to no address")
    return found


def _kind(address: Address) -> str | None:
    """Why an address is not public (None: it is)."""
    if isinstance(address, ipaddress.IPv6Address) and address.ipv4_mapped is not None:
        address = address.ipv4_mapped  # ::ffff:127.0.0.1 is 127.0.0.1
    if address.is_loopback:
        return "a loopback address"
    if address.is_link_local:
        return "a link-local address"
    if address.is_private:
        return "a private address"
    if address.is_unspecified or address.is_multicast or address.is_reserved or not address.is_global:
        return "not a public address"
    return None


def refusal(addresses: list[Address]) -> str | None:
    """What is wrong with sending to these addresses, or None when every one of them is public.

    Every address must be: a name that resolves to a public and a private address could be connected to
    either.
    """
    for address in addresses:
        kind = _kind(address)
        if kind is not None:
            return f"{address} is {kind}"
    return None
