"""redact_pii=True: personal data and secrets never leave the process."""

from __future__ import annotations

import pytest

import sightline
from sightline.sdk._redact import redact_record, redactor
from tests.fake_openai import FakeOpenAI
from tests.sdk.conftest import Capture, config


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("mail me at ann.lee+x@example.co.uk today", "mail me at <EMAIL> today"),
        ("call +1 415-555-2671 or (650) 253-0000", "call <PHONE> or <PHONE>"),
        ("call +44 20 7946 0958 in London", "call <PHONE> in London"),
        ("card 4111 1111 1111 1111 exp 12/29", "card <CREDIT_CARD> exp 12/29"),
        ("amex 3782-822463-10005", "amex <CREDIT_CARD>"),
        ("iban DE89 3704 0044 0532 0130 00 please", "iban <IBAN> please"),
        ("iban GB82WEST12345698765432", "iban <IBAN>"),
        ("from 192.168.10.23 and 2001:db8:85a3::8a2e:370:7334", "from <IP_ADDRESS> and <IP_ADDRESS>"),
        ("ssn 536-22-1234", "ssn <NATIONAL_ID>"),
        ("NINO AB 12 34 56 C", "NINO <NATIONAL_ID>"),
        ("DNI 12345678Z", "DNI <NATIONAL_ID>"),
        ("CPF 390.533.447-05", "CPF <NATIONAL_ID>"),
        ("key sk-proj-abcdefghijklmnopqrstuvwxyz0123", "key <SECRET>"),
        ("aws AKIAIOSFODNN7EXAMPLE", "aws <SECRET>"),
        ("token ghp_abcdefghijklmnopqrstuvwxyz0123456789", "token <SECRET>"),
        ("Authorization: Bearer abcdefghijklmnop1234", "Authorization: Bearer <SECRET>"),
        ('password="hunter2hunter2"', 'password="<SECRET>"'),
        ("sightline key sl_abcdefghijklmnopqrstuvwx", "sightline key <SECRET>"),
    ],
)
def test_finds_and_replaces(text: str, expected: str) -> None:
    assert redactor("US").text(text) == expected


@pytest.mark.parametrize(
    "text",
    [
        "Order 12345 shipped on 2024-05-01 at 10:30:00, version 1.2.3, 42 items",
        "The invoice total is 1234.56 EUR for 3 seats",
        "std::vector<int> v; x[::2]",
        "Show me an emoji for the sport: soccer",
    ],
)
def test_leaves_ordinary_text_alone(text: str) -> None:
    assert redactor("US").text(text) == text


def test_redacts_free_text_and_keeps_identifiers() -> None:
    body = {
        "id": "6c1f5a4e-3c55-4d55-9f4e-8e5f7c1e6a11",
        "timestamp": "2024-05-01T10:30:00+00:00",
        "model": {"id": "gpt-4o-mini"},
        "input": {"type": "text", "content": [{"role": "user", "content": "I am bob@example.com"}]},
        "output": {
            "type": "text",
            "content": "Hi bob@example.com",
            "alternatives": [{"content": "+1 415-555-2671"}],
        },
        "template": {"name": "t", "version": "v", "params": {"email": "bob@example.com"}},
        "metadata": {"userId": "bob@example.com", "note": {"type": "string", "value": "ip 10.0.0.1"}},
        "usage": {"promptTokens": 4},
        "error": {"type": "E", "message": "bad key sk-abcdefghijklmnopqrstuvwxyz"},
    }
    out = redact_record("generation", body)
    assert out["input"]["content"] == [{"role": "user", "content": "I am <EMAIL>"}]
    assert out["output"]["content"] == "Hi <EMAIL>"
    assert out["output"]["alternatives"] == [{"content": "<PHONE>"}]
    assert out["template"]["params"] == {"email": "<EMAIL>"}
    assert out["metadata"]["note"] == {"type": "string", "value": "ip <IP_ADDRESS>"}
    assert out["metadata"]["userId"] == "bob@example.com"  # an identifier, kept to filter by
    assert out["error"]["message"] == "bad key <SECRET>"
    for key in ("id", "timestamp", "model", "usage"):
        assert out[key] == body[key]
    assert body["output"]["content"] == "Hi bob@example.com"  # the caller's objects are not touched


def test_nothing_personal_leaves_the_process(fake_openai: FakeOpenAI, capture: Capture) -> None:
    client = sightline.Client(api_key="k", base_url=fake_openai.base_url, sightline=config(redact_pii=True))
    response = client.chat.completions.create(
        model="gpt-4o-mini",
        messages=sightline.TemplateChat(
            [{"role": "user", "content": "My card is {card}, mail {mail}"}],
            {"card": "4111111111111111", "mail": "eve@example.org"},
        ),
    )
    assert "4111111111111111" in response.choices[0].message.content  # type: ignore[operator]
    body = capture.one()
    sent = str(capture.items)
    assert "4111111111111111" not in sent and "eve@example.org" not in sent
    assert body["input"]["content"][0]["content"] == "My card is <CREDIT_CARD>, mail <EMAIL>"
    assert body["output"]["content"] == "Fake reply to: My card is <CREDIT_CARD>, mail <EMAIL>"
    assert body["template"]["params"] == {"card": "<CREDIT_CARD>", "mail": "<EMAIL>"}


def test_run_steps_and_feedback_are_redacted(fake_openai: FakeOpenAI, capture: Capture) -> None:
    client = sightline.Client(api_key="k", base_url=fake_openai.base_url, sightline=config(redact_pii=True))
    with sightline.Pipeline("p", client=client).start() as run:
        run.step("lookup", inputs={"email": "a@b.io"}, outputs="call 415-555-2671")
    import uuid

    client.send_feedback(generation_id=str(uuid.uuid4()), comment="I am a@b.io", better_response="x@y.io")
    sightline.flush(5)
    step = capture.of("run")[-1]["steps"][0]
    assert (step["inputs"], step["outputs"]) == ({"email": "<EMAIL>"}, "call <PHONE>")
    feedback = capture.of("feedback")[0]
    assert (feedback["comment"], feedback["betterResponse"]) == ("I am <EMAIL>", "<EMAIL>")
