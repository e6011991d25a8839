"""sightline.Client / AsyncClient: drop-in openai clients whose calls are recorded."""

from __future__ import annotations

import uuid

import openai
import pytest
from openai.types import Completion, CreateEmbeddingResponse
from openai.types.chat import ChatCompletion

import sightline
from sightline.schema import Generation
from tests.fake_openai import FakeOpenAI
from tests.sdk.conftest import CAPTURE_SIGNING_KEY, SIGHTLINE_KEY, USER, Capture, config


def test_chat_returns_what_openai_returns_and_is_recorded(client: sightline.Client, capture: Capture) -> None:
    response = client.chat.completions.create(
        model="gpt-4o-mini", messages=[USER], temperature=0.3, max_tokens=50, stop="\n", seed=7
    )

    assert type(response) is ChatCompletion
    assert response.choices[0].message.content == f"Fake reply to: {USER['content']}"
    body = capture.one()
    Generation.model_validate(body)  # what the server will accept
    assert body["id"] == str(uuid.UUID(body["id"]))
    assert body["model"] == {"id": "gpt-4o-mini", "version": "gpt-4o-mini"}
    assert body["input"]["content"] == [USER]
    assert body["output"] == {"type": "text", "content": response.choices[0].message.content, "tokens": 11}
    assert body["parameters"] == {"temperature": 0.3, "maxTokens": 50, "stopSequences": ["\n"], "seed": 7}
    assert body["usage"]["promptTokens"] == response.usage.prompt_tokens  # type: ignore[union-attr]
    assert body["usage"]["completionTokens"] == 11
    assert body["status"] == "ok"
    assert body["performance"]["latency"] > 0
    assert body["performance"]["tokensPerSecond"] > 0
    assert body["metadata"]["requestId"] == response._request_id


def test_response_carries_a_feedback_key_naming_the_generation(
    client: sightline.Client, capture: Capture
) -> None:
    from sightline.feedback_key import parse_feedback_key, verify_feedback_key

    response = client.chat.completions.create(model="gpt-4o-mini", messages=[USER])

    key = response.model_extra["sightline_feedback_key"]  # type: ignore[index]
    generation_id, _ = parse_feedback_key(key)
    assert generation_id == capture.one()["id"]
    assert verify_feedback_key(key, CAPTURE_SIGNING_KEY)
    assert "sightline_feedback_key" not in str(capture.one()["output"])


def test_completions_and_embeddings_are_recorded(client: sightline.Client, capture: Capture) -> None:
    completion = client.completions.create(model="gpt-3.5-turbo-instruct", prompt="Say hi", max_tokens=5)
    embedding = client.embeddings.create(model="text-embedding-3-small", input=["a b", "c"])

    assert type(completion) is Completion
    assert type(embedding) is CreateEmbeddingResponse
    first, second = capture.generations()
    assert first["input"] == {"type": "text", "content": "Say hi", "tokens": 2}
    assert first["output"]["content"] == "Fake reply to: Say hi"
    assert second["input"]["content"] == ["a b", "c"]
    assert second["output"] == {"type": "other", "content": {"embeddings": 2, "dimensions": 8}}
    assert second["usage"]["promptTokens"] == 3
    for body in (first, second):
        Generation.model_validate(body)


async def test_async_client_records_every_kind(aclient: sightline.AsyncClient, capture: Capture) -> None:
    chat = await aclient.chat.completions.create(model="gpt-4o-mini", messages=[USER])
    text = await aclient.completions.create(model="gpt-3.5-turbo-instruct", prompt="Hi")
    vectors = await aclient.embeddings.create(model="text-embedding-3-small", input="x")

    assert (type(chat), type(text), type(vectors)) == (ChatCompletion, Completion, CreateEmbeddingResponse)
    assert "sightline_feedback_key" in chat.model_extra  # type: ignore[operator]
    assert [g["model"]["id"] for g in capture.generations()] == [
        "gpt-4o-mini",
        "gpt-3.5-turbo-instruct",
        "text-embedding-3-small",
    ]


def test_upstream_error_is_recorded_and_reraised_unchanged(
    client: sightline.Client, capture: Capture
) -> None:
    plain = openai.OpenAI(api_key="k", base_url=str(client.base_url), max_retries=0)
    with pytest.raises(openai.RateLimitError) as expected:
        plain.chat.completions.create(
            model="gpt-4o-mini", messages=[USER], extra_headers={"x-fake-status": "429"}
        )

    with pytest.raises(openai.RateLimitError) as raised:
        client.with_options(max_retries=0).chat.completions.create(
            model="gpt-4o-mini", messages=[USER], extra_headers={"x-fake-status": "429"}
        )

    assert str(raised.value) == str(expected.value)
    assert raised.value.body == expected.value.body
    body = capture.one()
    assert body["status"] == "error"
    assert body["error"] == {
        "type": "RateLimitError",
        "message": raised.value.message,
        "statusCode": 429,
    }
    assert body["output"] == {}
    Generation.model_validate(body)


async def test_async_upstream_error_is_recorded_and_a_call_never_sent_is_not(
    aclient: sightline.AsyncClient, capture: Capture
) -> None:
    with pytest.raises(TypeError):
        await aclient.chat.completions.create(model="gpt-4o-mini", messages=[USER], nope=1)  # type: ignore[call-overload]
    with pytest.raises(openai.RateLimitError):
        await aclient.with_options(max_retries=0).chat.completions.create(
            model="gpt-4o-mini", messages=[USER], extra_headers={"x-fake-status": "429"}
        )
    body = capture.one()
    assert body["status"] == "error" and body["error"]["statusCode"] == 429


def test_connection_error_is_recorded(capture: Capture) -> None:
    client = sightline.Client(
        api_key="k", base_url="http://127.0.0.1:9/v1", max_retries=0, sightline=config()
    )
    with pytest.raises(openai.APIConnectionError):
        client.chat.completions.create(model="gpt-4o-mini", messages=[USER])
    body = capture.one()
    assert body["status"] == "error"
    assert body["error"]["type"] == "APIConnectionError"
    assert "statusCode" not in body["error"]


def test_messages_are_recorded_as_sent_even_if_the_caller_changes_them(
    client: sightline.Client, capture: Capture
) -> None:
    messages = [{"role": "system", "content": "Be brief."}, dict(USER)]
    response = client.chat.completions.create(model="gpt-4o-mini", messages=messages)  # type: ignore[arg-type]
    messages.append(response.choices[0].message)  # type: ignore[arg-type]
    messages[0]["content"] = "changed"  # type: ignore[index]

    assert capture.one()["input"]["content"] == [{"role": "system", "content": "Be brief."}, USER]


def test_previous_response_messages_are_recorded_without_the_feedback_key(
    client: sightline.Client, capture: Capture
) -> None:
    first = client.chat.completions.create(model="gpt-4o-mini", messages=[USER])
    client.chat.completions.create(
        model="gpt-4o-mini",
        messages=[USER, first.choices[0].message, {"role": "user", "content": "More"}],  # type: ignore[list-item]
    )
    second = capture.generations()[1]
    assert second["input"]["content"][1] == {"role": "assistant", "content": first.choices[0].message.content}


def test_call_params_name_the_generation_chat_and_user(client: sightline.Client, capture: Capture) -> None:
    event_id = str(uuid.uuid4())
    client.chat.completions.create(
        model="gpt-4o-mini",
        messages=[USER],
        sightline=sightline.CallParams(
            event_id=event_id,
            chat_id="chat-1",
            user_id="user-1",
            session_id="s-1",
            metadata={
                "plan": "pro",
                "beta": True,
                "docs": {"type": "url", "url": "https://x.test", "text": "x"},
            },
            tags=["a"],
        ),
    )
    body = capture.one()
    assert body["id"] == event_id
    assert body["chatId"] == "chat-1"
    assert body["metadata"]["userId"] == "user-1"
    assert body["metadata"]["sessionId"] == "s-1"
    assert body["metadata"]["tags"] == ["a"]
    assert body["metadata"]["plan"] == {"type": "string", "value": "pro"}
    assert body["metadata"]["beta"] == {"type": "boolean", "value": True}
    assert body["metadata"]["docs"] == {"type": "url", "url": "https://x.test", "text": "x"}


def test_call_params_as_a_dict_in_either_case(client: sightline.Client, capture: Capture) -> None:
    client.chat.completions.create(
        model="gpt-4o-mini", messages=[USER], sightline={"chatId": "c", "user_id": "u"}
    )
    body = capture.one()
    assert (body["chatId"], body["metadata"]["userId"]) == ("c", "u")


@pytest.mark.parametrize(
    ("params", "message"),
    [
        ({"metadata": {"bad": {"nested": 1}}}, "metadata key 'bad'"),
        ({"metadata": {"u": {"type": "url", "url": "https://x"}}}, "metadata key 'u'"),
        ({"event_id": "not-a-uuid"}, "event_id must be a UUID"),
        ({"colour": "red"}, "unknown key 'colour'"),
    ],
)
def test_bad_call_params_raise_a_clear_value_error_before_the_call(
    client: sightline.Client,
    capture: Capture,
    fake_openai: FakeOpenAI,
    params: dict[str, object],
    message: str,
) -> None:
    fake_openai.clear()
    with pytest.raises(ValueError, match=message):
        client.chat.completions.create(model="gpt-4o-mini", messages=[USER], sightline=params)
    assert fake_openai.requests() == []
    assert capture.generations() == []


def test_chain_id_groups_calls_into_a_run_that_owns_the_user(
    client: sightline.Client, capture: Capture
) -> None:
    for _ in range(2):
        client.chat.completions.create(
            model="gpt-4o-mini", messages=[USER], sightline={"chain_id": "chain-7", "user_id": "u9"}
        )
    generations = capture.generations()
    assert [g["runId"] for g in generations] == ["chain-7", "chain-7"]
    assert all("userId" not in g["metadata"] for g in generations)
    assert capture.of("run") == [
        {"id": "chain-7", "startedAt": capture.of("run")[0]["startedAt"], "status": "ok", "userId": "u9"}
    ]


def test_context_applies_to_calls_inside_the_block(client: sightline.Client, capture: Capture) -> None:
    with sightline.context(user_id="u1", session_id="s1", metadata={"team": "a"}):
        client.chat.completions.create(model="gpt-4o-mini", messages=[USER])
        client.chat.completions.create(model="gpt-4o-mini", messages=[USER], sightline={"user_id": "u2"})
    client.chat.completions.create(model="gpt-4o-mini", messages=[USER])
    inside, overridden, outside = capture.generations()
    assert inside["metadata"]["userId"] == "u1"
    assert inside["metadata"]["sessionId"] == "s1"
    assert inside["metadata"]["team"] == {"type": "string", "value": "a"}
    assert overridden["metadata"]["userId"] == "u2"
    assert "userId" not in outside["metadata"]


def test_with_options_and_raw_response_keep_recording(client: sightline.Client, capture: Capture) -> None:
    copy = client.with_options(timeout=30)
    assert isinstance(copy, sightline.Client)
    copy.chat.completions.create(model="gpt-4o-mini", messages=[USER])
    raw = client.chat.completions.with_raw_response.create(model="gpt-4o-mini", messages=[USER])
    parsed = raw.parse()
    assert "sightline_feedback_key" in parsed.model_extra  # type: ignore[operator]
    first, second = capture.generations()
    assert second["output"]["content"] == parsed.choices[0].message.content
    assert first["model"]["id"] == "gpt-4o-mini"


def test_without_a_key_the_client_is_plain_openai_and_warns_once(
    fake_openai: FakeOpenAI, capture: Capture, monkeypatch: pytest.MonkeyPatch
) -> None:
    from sightline.sdk import _client

    monkeypatch.setattr(_client, "_warned", type(_client._warned)())
    with pytest.warns(UserWarning, match="no API key"):
        first = sightline.Client(api_key="k", base_url=fake_openai.base_url)
    import warnings

    with warnings.catch_warnings():
        warnings.simplefilter("error")
        second = sightline.AsyncClient(api_key="k", base_url=fake_openai.base_url)
    response = first.chat.completions.create(
        model="gpt-4o-mini",
        messages=sightline.TemplateChat([{"role": "user", "content": "Hi {name}"}], {"name": "Ann"}),
    )
    assert response.choices[0].message.content == "Fake reply to: Hi Ann"
    assert response.model_extra == {}
    assert second.sightline_config.records is False
    assert capture.generations() == []


def test_configuration_comes_from_the_environment(
    fake_openai: FakeOpenAI, capture: Capture, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("SIGHTLINE_API_KEY", SIGHTLINE_KEY)
    monkeypatch.setenv("SIGHTLINE_SERVER_URL", "http://sightline.test/")
    client = sightline.Client(api_key="k", base_url=fake_openai.base_url)
    assert client.sightline_config.server_url == "http://sightline.test"
    client.chat.completions.create(model="gpt-4o-mini", messages=[USER])
    assert capture.one()["status"] == "ok"
    assert str(capture.requests[0].url) == "http://sightline.test/api/ingest"
    assert capture.requests[0].headers["authorization"] == f"Bearer {SIGHTLINE_KEY}"


def test_arguments_beat_the_environment(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("SIGHTLINE_API_KEY", "from-env")
    monkeypatch.setenv("SIGHTLINE_SERVER_URL", "http://env.test")
    resolved = sightline.SightlineConfig(api_key="from-arg").resolved()
    assert (resolved.api_key, resolved.server_url) == ("from-arg", "http://env.test")


def test_generation_ids_are_unique_across_calls(client: sightline.Client, capture: Capture) -> None:
    for _ in range(5):
        client.chat.completions.create(model="gpt-4o-mini", messages=[USER])
    assert len({g["id"] for g in capture.generations()}) == 5


def test_client_without_openai_key_fails_like_openai(
    capture: Capture, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.delenv("OPENAI_API_KEY", raising=False)
    with pytest.raises(openai.OpenAIError):
        sightline.Client(sightline=config())


def test_parse_is_recorded(client: sightline.Client, capture: Capture) -> None:
    from pydantic import BaseModel

    class Emoji(BaseModel):
        emoji: str

    parsed = client.chat.completions.parse(
        model="gpt-4o-mini",
        messages=[USER],
        response_format=Emoji,
        extra_headers={"x-fake-reply": '{"emoji": "ball"}'},
        sightline={"chat_id": "parsed"},
    )
    assert parsed.choices[0].message.parsed == Emoji(emoji="ball")
    body = capture.one()
    assert body["chatId"] == "parsed"
    assert body["output"]["content"] == '{"emoji": "ball"}'
    assert "response_format" in body["parameters"]
