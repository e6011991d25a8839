"""Templates kept apart from their parameters."""

from __future__ import annotations

import pytest

import sightline
from sightline.sdk._templates import (
    render_chat,
    render_content_templates,
    render_mustache,
    render_text,
    template_name,
    template_version,
)
from tests.fake_openai import FakeOpenAI
from tests.sdk.conftest import Capture, config

EMOJI = [{"role": "user", "content": "Show me an emoji for the sport: {sport}"}]


def test_render_text_replaces_placeholders_and_keeps_escaped_braces() -> None:
    assert render_text("{a} and {{literal}} {b}", {"a": 1, "b": "x"}) == "1 and {literal} x"
    assert render_text('JSON: {"k": 1}', {}) == 'JSON: {"k": 1}'


def test_a_missing_parameter_is_a_clear_error() -> None:
    with pytest.raises(ValueError, match=r"template parameter \{sport\} is not given"):
        render_text("Emoji for {sport}", {})


def test_chat_history_expands_to_the_messages_given() -> None:
    history = [{"role": "user", "content": "Hi {not_rendered}"}, {"role": "assistant", "content": "Hello"}]
    messages = render_chat(
        [
            {"role": "system", "content": "You are {persona}."},
            {"role": "chat_history", "content": "{prev_messages}"},
            {"role": "user", "content": "{question}"},
        ],
        {"persona": "kind", "prev_messages": history, "question": "How are you?"},
    )
    assert messages == [
        {"role": "system", "content": "You are kind."},
        *history,
        {"role": "user", "content": "How are you?"},
    ]


def test_the_role_ai_is_sent_as_assistant_and_the_messages_given_are_left_as_they_are() -> None:
    template = [{"role": "ai", "content": "Hello, I'm {name}!"}, {"role": "chat_history", "content": "{h}"}]
    history = [{"role": "ai", "content": "Earlier"}]
    sent = render_chat(template, {"name": "Bot", "h": history})
    assert sent == [
        {"role": "assistant", "content": "Hello, I'm Bot!"},
        {"role": "assistant", "content": "Earlier"},
    ]
    assert template[0]["role"] == "ai" and history == [{"role": "ai", "content": "Earlier"}]


def test_chat_history_needs_a_list() -> None:
    with pytest.raises(ValueError, match="must be a list of messages"):
        render_chat([{"role": "chat_history", "content": "{prev}"}], {"prev": "text"})


def test_text_parts_of_multimodal_content_are_rendered() -> None:
    image = {"type": "image_url", "image_url": {"url": "https://x.test/{a}.png"}}
    out = render_chat(
        [{"role": "user", "content": [{"type": "text", "text": "Look at {a}"}, image]}], {"a": "it"}
    )
    assert out[0]["content"] == [{"type": "text", "text": "Look at it"}, image]


def test_mustache() -> None:
    inputs = {"name": "Ann", "user": {"city": "Paris"}, "html": "<b>&</b>", "n": 3}
    text = "Hi {{ name }} from {{user.city}}{{! a comment }}: {{{html}}} {{& html}} {{html}} x{{n}}"
    assert render_mustache(text, inputs) == "Hi Ann from Paris: <b>&</b> <b>&</b> <b>&</b> x3"
    with pytest.raises(ValueError, match=r"\{\{ missing \}\} is not given"):
        render_mustache("{{ missing }}", inputs)
    with pytest.raises(ValueError, match="sections"):
        render_mustache("{{#items}}x{{/items}}", {"items": [1]})


def test_content_templates_render_and_keep_the_template() -> None:
    sent, template, params = render_content_templates(
        [
            {"role": "system", "content": "Be brief."},
            {"role": "user", "contentTemplate": "Hello {{ name }}!", "contentInputs": {"name": "Vivek"}},
        ]
    )
    assert sent[1] == {"role": "user", "content": "Hello Vivek!"}
    assert template[1] == {"role": "user", "content": "Hello {{ name }}!"}
    assert params == {"name": "Vivek"}


def test_version_is_a_hash_of_the_content() -> None:
    assert template_version(EMOJI, None) == template_version([dict(m) for m in EMOJI], None)
    assert template_version(EMOJI, None) != template_version([{"role": "user", "content": "Other {x}"}], None)
    assert template_version(None, "a") != template_version(None, "b")
    assert template_name(EMOJI, None).startswith("show-me-an-emoji-for-the-")


def test_template_chat_is_rendered_and_recorded_apart(client: sightline.Client, capture: Capture) -> None:
    response = client.chat.completions.create(
        model="gpt-4o-mini",
        messages=sightline.TemplateChat(EMOJI, {"sport": "soccer"}),
        sightline={"prompt_template_name": "emoji"},
    )
    assert response.choices[0].message.content == "Fake reply to: Show me an emoji for the sport: soccer"
    body = capture.one()
    assert body["input"]["content"] == [{"role": "user", "content": "Show me an emoji for the sport: soccer"}]
    assert body["template"] == {
        "name": "emoji",
        "version": template_version(EMOJI, None),
        "chat": EMOJI,
        "params": {"sport": "soccer"},
    }


def test_template_text(client: sightline.Client, capture: Capture) -> None:
    client.completions.create(model="m", prompt=sightline.TemplateText("Translate {word}", {"word": "cat"}))
    body = capture.one()
    assert body["input"]["content"] == "Translate cat"
    assert body["template"]["text"] == "Translate {word}"
    assert body["template"]["params"] == {"word": "cat"}


def test_inline_template_params_record_without_changing_the_messages(
    client: sightline.Client, capture: Capture
) -> None:
    client.chat.completions.create(
        model="gpt-4o-mini",
        messages=[{"role": "user", "content": "Show me an emoji for the sport: golf"}],
        sightline=sightline.CallParams(template_chat=EMOJI, template_params={"sport": "golf"}),
    )
    body = capture.one()
    assert body["input"]["content"][0]["content"] == "Show me an emoji for the sport: golf"
    assert body["template"]["params"] == {"sport": "golf"}
    assert body["template"]["name"].startswith("show-me-an-emoji")


def test_inline_template_without_messages_is_rendered(client: sightline.Client, capture: Capture) -> None:
    client.chat.completions.create(
        model="gpt-4o-mini",
        sightline=sightline.CallParams(template_chat=EMOJI, template_params={"sport": "chess"}),
    )
    assert capture.one()["input"]["content"][0]["content"] == "Show me an emoji for the sport: chess"


def test_content_template_messages_are_rendered_before_sending(
    client: sightline.Client, capture: Capture, fake_openai: FakeOpenAI
) -> None:
    client.chat.completions.create(
        model="gpt-4o-mini",
        messages=[
            {"role": "user", "contentTemplate": "Hello {{ name }}!", "contentInputs": {"name": "Vivek"}}
        ],
    )
    assert fake_openai.requests()[-1]["body"]["messages"] == [{"role": "user", "content": "Hello Vivek!"}]
    body = capture.one()
    assert body["template"]["chat"] == [{"role": "user", "content": "Hello {{ name }}!"}]
    assert body["template"]["params"] == {"name": "Vivek"}


def test_config_gives_a_default_template_name(fake_openai: FakeOpenAI, capture: Capture) -> None:
    client = sightline.Client(
        api_key="k", base_url=fake_openai.base_url, sightline=config(prompt_template_name="default-name")
    )
    client.chat.completions.create(
        model="gpt-4o-mini", messages=sightline.TemplateChat(EMOJI, {"sport": "x"})
    )
    client.chat.completions.create(model="gpt-4o-mini", messages=[{"role": "user", "content": "plain"}])
    templated, plain = capture.generations()
    assert templated["template"]["name"] == plain["template"]["name"] == "default-name"
    # Plain messages are rendered content, not a template: the name only, no version from them.
    assert plain["template"] == {"name": "default-name"} and templated["template"]["version"]


def test_unnamed_calls_are_not_recorded_unless_allowed(fake_openai: FakeOpenAI, capture: Capture) -> None:
    strict = sightline.Client(
        api_key="k", base_url=fake_openai.base_url, sightline=config(allow_unnamed_prompts=False)
    )
    response = strict.chat.completions.create(
        model="gpt-4o-mini", messages=sightline.TemplateChat(EMOJI, {"sport": "x"})
    )
    assert response.choices[0].message.content.endswith("sport: x")  # type: ignore[union-attr]
    strict.chat.completions.create(
        model="gpt-4o-mini",
        messages=EMOJI,
        sightline={"prompt_template_name": "named"},  # type: ignore[arg-type]
    )
    assert [g["template"]["name"] for g in capture.generations()] == ["named"]


def test_plain_calls_without_a_name_carry_no_template(client: sightline.Client, capture: Capture) -> None:
    client.chat.completions.create(model="gpt-4o-mini", messages=[{"role": "user", "content": "hi"}])
    assert "template" not in capture.one()
