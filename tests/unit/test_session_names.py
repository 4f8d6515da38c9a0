"""The MQTT session names an installation uses by default, and the settings that override them."""

from __future__ import annotations

from adapters.mqtt.runner import SessionNames
from broker.settings import MqttSettings


def test_an_embedded_installation_names_its_session_and_group_after_itself() -> None:
    names = SessionNames.of(MqttSettings(), "3f9a1c2b7d4e")
    assert names == SessionNames("toshi-3f9a1c2b7d4e", "toshi-3f9a1c2b7d4e")


def test_two_installations_share_neither_the_client_id_nor_the_group() -> None:
    first = SessionNames.of(MqttSettings(), "3f9a1c2b7d4e")
    second = SessionNames.of(MqttSettings(), "0a1b2c3d4e5f")
    assert first.client_id != second.client_id and first.shared_group != second.shared_group


def test_replicas_of_a_shared_store_each_have_a_session_and_share_the_group() -> None:
    one = SessionNames.of(MqttSettings(), "3f9a1c2b7d4e", "toshi-0")
    other = SessionNames.of(MqttSettings(), "3f9a1c2b7d4e", "toshi-1")
    assert (one.client_id, other.client_id) == (
        "toshi-3f9a1c2b7d4e-toshi-0",
        "toshi-3f9a1c2b7d4e-toshi-1",
    )
    assert one.shared_group == other.shared_group == "toshi-3f9a1c2b7d4e"


def test_settings_win_and_an_empty_group_means_plain_subscriptions() -> None:
    chosen = MqttSettings(client_id="toshi-north", shared_group="north")
    assert SessionNames.of(chosen, "3f9a1c2b7d4e", "toshi-0") == SessionNames(
        "toshi-north", "north"
    )
    plain = SessionNames.of(MqttSettings(shared_group=""), "3f9a1c2b7d4e")
    assert plain.shared_group is None
