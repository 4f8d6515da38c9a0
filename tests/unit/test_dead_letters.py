"""Dead letters: bounded per tenant, newest last, payload excerpts, never-reset counts that
render as the Prometheus rejection counter."""

from __future__ import annotations

import base64

import pytest
from broker.prometheus import render
from broker.services.dead_letters import EXCERPT_BYTES, DeadLetter, DeadLetters

AT = "2025-03-14T06:30:00.000Z"
TOPIC = "/json/tA9flood/gauge-07/attrs"


def letter(reason: str = "malformed_json", payload: bytes = b"{oops", n: int = 0) -> DeadLetter:
    return DeadLetter.of(AT, TOPIC, reason, f"message {n}", payload)


def test_letters_are_kept_per_tenant_newest_last() -> None:
    letters = DeadLetters()
    letters.add("towna", letter(n=1))
    letters.add("townb", letter(n=2))
    letters.add("towna", letter(n=3))
    assert [item.detail for item in letters.for_tenant("towna")] == ["message 1", "message 3"]
    assert [item.detail for item in letters.for_tenant("townb")] == ["message 2"]
    assert letters.for_tenant("nobody") == []


def test_a_full_list_drops_its_oldest_letters_but_the_counts_keep_growing() -> None:
    letters = DeadLetters(capacity_per_tenant=3)
    for n in range(5):
        letters.add("towna", letter("out_of_range", n=n))
    letters.add("", letter("unknown_device", n=99))
    assert [item.detail for item in letters.for_tenant("towna")] == [
        "message 2",
        "message 3",
        "message 4",
    ]
    assert letters.counts() == {"out_of_range": 5, "unknown_device": 1}


def test_unattributable_messages_have_their_own_list() -> None:
    letters = DeadLetters()
    letters.add("", letter("unknown_device"))
    assert [item.reason for item in letters.for_tenant("")] == ["unknown_device"]
    assert letters.for_tenant("towna") == []


def test_the_counts_render_as_the_rejection_counter() -> None:
    letters = DeadLetters(capacity_per_tenant=1)
    for reason in ["out_of_range", "bad_name", "out_of_range"]:
        letters.add("towna", letter(reason))
    text = render(letters.metric_families())
    assert "# TYPE toshi_ingest_rejected_total counter" in text
    assert 'toshi_ingest_rejected_total{reason="out_of_range"} 2\n' in text
    assert 'toshi_ingest_rejected_total{reason="bad_name"} 1\n' in text


def test_no_rejections_yet_still_declares_the_counter() -> None:
    [family] = DeadLetters().metric_families()
    assert family.name == "toshi_ingest_rejected_total" and family.samples == []


def test_a_text_payload_is_kept_as_text_and_cut_at_one_kibibyte() -> None:
    small = letter(payload='{"temp": "12,3 °C"}'.encode())
    assert (small.payload_excerpt, small.payload_encoding) == ('{"temp": "12,3 °C"}', "utf-8")
    big = letter(payload=b"x" * 5000)
    assert big.payload_excerpt == "x" * EXCERPT_BYTES and big.payload_size == 5000


def test_a_character_cut_in_half_by_the_excerpt_does_not_make_it_binary() -> None:
    payload = b"a" * (EXCERPT_BYTES - 1) + "°C".encode()  # "°" straddles the 1 KiB mark
    kept = letter(payload=payload)
    assert kept.payload_encoding == "utf-8"
    assert kept.payload_excerpt == "a" * (EXCERPT_BYTES - 1)


def test_a_binary_payload_is_kept_in_base64() -> None:
    frame = bytes.fromhex("0167007B0388")
    kept = letter("truncated_payload", frame)
    assert kept.payload_encoding == "base64"
    assert base64.b64decode(kept.payload_excerpt) == frame
    assert kept.as_json() == {
        "at": AT,
        "topic": TOPIC,
        "reason": "truncated_payload",
        "detail": "message 0",
        "payloadExcerpt": "AWcAewOI",
        "payloadEncoding": "base64",
        "payloadSize": 6,
    }


def test_a_list_holds_at_least_one_letter() -> None:
    with pytest.raises(ValueError, match="at least 1"):
        DeadLetters(capacity_per_tenant=0)
