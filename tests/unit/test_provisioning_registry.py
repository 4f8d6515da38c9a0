"""The provisioning registry's LoRaWAN rules: one application, one tenant, one way to reach it."""

from __future__ import annotations

from typing import Any

import pytest
from broker.ngsild.errors import AlreadyExists
from broker.services.provisioning.model import Device, Group
from broker.services.provisioning.parse import parse_devices, parse_groups
from broker.services.provisioning.registry import Registry

TTN = {"host": "eu1.cloud.thethings.network", "provider": "TTN"}


def lorawan(server: dict[str, Any], application_id: str = "flood@ttn") -> dict[str, Any]:
    return {
        "internal_attributes": {
            "lorawan": {"application_server": server, "application_id": application_id}
        }
    }


def group(server: dict[str, Any], application_id: str = "flood@ttn") -> Group:
    doc = {"apikey": "", "resource": application_id, **lorawan(server, application_id)}
    return parse_groups({"groups": [doc]})[0]


def device(device_id: str, server: dict[str, Any], application_id: str = "flood@ttn") -> Device:
    doc = {"device_id": device_id, **lorawan(server, application_id)}
    return parse_devices({"devices": [doc]})[0]


def login(password: str, **changes: Any) -> dict[str, Any]:
    return {**TTN, "username": "flood@ttn", "password": password, **changes}


@pytest.mark.parametrize(
    "other",
    [
        pytest.param(login("NNSXS.OTHER"), id="another-password"),
        pytest.param(login("NNSXS.FIRST", username="someone"), id="another-user"),
        pytest.param(login("NNSXS.FIRST", provider="chirpstack"), id="another-provider"),
        pytest.param(TTN, id="no-login"),
    ],
)
def test_an_application_keeps_the_login_and_provider_it_was_provisioned_with(
    other: dict[str, Any],
) -> None:
    registry = Registry()
    first = group(login("NNSXS.FIRST"))
    registry.check_group("towna", first)
    registry.add_group("towna", first)

    with pytest.raises(AlreadyExists, match="'flood@ttn'") as in_tenant:
        registry.check_device("towna", device("ws-01", other))
    with pytest.raises(AlreadyExists, match="another tenant") as elsewhere:
        registry.check_group("townb", group(other))
    for refused in (in_tenant.value, elsewhere.value):
        assert "NNSXS" not in refused.detail and "towna" not in refused.detail


def test_the_same_login_on_another_port_or_for_another_application_is_no_conflict() -> None:
    registry = Registry()
    first = group(login("NNSXS.FIRST"))
    registry.add_group("towna", first)
    registry.check_device("towna", device("ws-01", login("NNSXS.FIRST")))
    registry.check_device("towna", device("ws-02", login("NNSXS.FIRST", port=8883)))
    registry.check_group("townb", group(login("NNSXS.B"), application_id="other@ttn"))


def test_devices_without_a_group_agree_on_the_login_and_a_later_group_must_too() -> None:
    registry = Registry()
    registry.add_device("towna", device("ws-01", login("NNSXS.FIRST")))
    with pytest.raises(AlreadyExists):
        registry.check_device("towna", device("ws-02", login("NNSXS.OTHER")))
    with pytest.raises(AlreadyExists):
        registry.check_group("towna", group(login("NNSXS.OTHER")))
    registry.check_group("towna", group(login("NNSXS.FIRST")))


def test_replacing_the_group_changes_the_login_its_devices_copied() -> None:
    registry = Registry()
    old = group(login("NNSXS.OLD"))
    registry.add_group("towna", old)
    registry.add_device("towna", device("ws-01", login("NNSXS.OLD")))
    new = group(login("NNSXS.NEW"))
    registry.replace_group("towna", old, new)
    (app,) = registry.apps.values()
    assert app.server.password == "NNSXS.NEW"
    with pytest.raises(AlreadyExists):
        registry.check_device("towna", device("ws-02", login("NNSXS.OLD")))
