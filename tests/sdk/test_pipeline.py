"""Multi-step runs: pipeline.start → steps → submit."""

from __future__ import annotations

import pytest

import sightline
from sightline.schema import Generation, Run
from tests.sdk.conftest import USER, Capture


def test_a_run_records_its_steps_user_and_metadata(client: sightline.Client, capture: Capture) -> None:
    pipeline = sightline.Pipeline("compose", client=client)
    run = pipeline.start(user_id="user-1", metadata={"plan": "pro"})
    run.step("retrieve", inputs={"q": "x"}, outputs=["doc"], metadata={"source": "wiki"})
    response = run.openai.chat.completions.create(
        model="gpt-4o-mini", messages=[USER], sightline={"metadata": {"plan": "team"}}
    )
    assert response.choices[0].message.content
    assert run.submit() == run.id

    generations = capture.generations()
    assert len(generations) == 1
    step = generations[0]
    assert step["runId"] == run.id
    assert step["stepIndex"] == 1
    assert "userId" not in step["metadata"]  # the run owns it
    assert step["metadata"]["plan"] == {"type": "string", "value": "team"}
    Generation.model_validate(step)
    start, final = capture.of("run")
    assert start["status"] == "running"
    assert start["userId"] == "user-1"
    assert final["status"] == "ok"
    assert final["pipelineSlug"] == "compose"
    assert final["metadata"] == {
        "plan": {"type": "string", "value": "team"},  # latest write per key wins
        "source": {"type": "string", "value": "wiki"},
    }
    assert [(s["name"], s["stepIndex"]) for s in final["steps"]] == [("retrieve", 0)]
    assert final["steps"][0]["outputs"] == ["doc"]
    Run.model_validate(final)


def test_the_seed_dict_form(client: sightline.Client, capture: Capture) -> None:
    run = sightline.Pipeline("compose", client=client).start({"userId": "u7", "metadata": {"k": "v"}})
    run.submit()
    sightline.flush(5)
    final = capture.of("run")[-1]
    assert (final["userId"], final["metadata"]) == ("u7", {"k": {"type": "string", "value": "v"}})


def test_a_step_cannot_set_the_user(client: sightline.Client, capture: Capture) -> None:
    run = sightline.Pipeline("compose", client=client).start(user_id="u1")
    with pytest.raises(ValueError, match="belongs to the run"):
        run.step("tool", user_id="u2")
    with pytest.raises(ValueError, match="belongs to the run"):
        run.openai.chat.completions.create(model="gpt-4o-mini", messages=[USER], sightline={"user_id": "u2"})


def test_with_block_submits_and_records_errors(client: sightline.Client, capture: Capture) -> None:
    with pytest.raises(RuntimeError), sightline.Pipeline("compose", client=client).start() as run:
        run.openai.chat.completions.create(model="gpt-4o-mini", messages=[USER])
        raise RuntimeError("boom")
    sightline.flush(5)
    final = capture.of("run")[-1]
    assert final["id"] == run.id
    assert final["status"] == "error"
    assert final["error"] == {"type": "RuntimeError", "message": "boom"}
    assert "endedAt" in final


def test_measure_records_a_step_with_inputs_and_output(client: sightline.Client, capture: Capture) -> None:
    with sightline.Pipeline("compose", client=client).start() as run:
        assert run.measure(lambda a, b: a + b, 2, b=3, step_name="add") == 5
    final = (sightline.flush(5), capture.of("run")[-1])[1]
    assert final["steps"][0]["name"] == "add"
    assert final["steps"][0]["inputs"] == {"args": [2], "b": 3}
    assert final["steps"][0]["outputs"] == 5


def test_context_user_becomes_the_run_user(client: sightline.Client, capture: Capture) -> None:
    with sightline.context(user_id="ctx-user"):
        run = sightline.Pipeline("compose", client=client).start()
        run.openai.chat.completions.create(model="gpt-4o-mini", messages=[USER])
    run.submit()
    assert "userId" not in capture.one()["metadata"]
    assert capture.of("run")[-1]["userId"] == "ctx-user"


async def test_async_client_runs(aclient: sightline.AsyncClient, capture: Capture) -> None:
    async with sightline.Pipeline("compose", client=aclient).start(user_id="u") as run:
        assert isinstance(run.openai, sightline.AsyncClient)
        await run.openai.chat.completions.create(model="gpt-4o-mini", messages=[USER])
        await run.openai.chat.completions.create(model="gpt-4o-mini", messages=[USER])
    assert [g["stepIndex"] for g in capture.generations()] == [0, 1]
    assert capture.of("run")[-1]["status"] == "ok"


def test_pipeline_needs_a_sightline_client() -> None:
    import openai

    with pytest.raises(TypeError, match=r"sightline\.Client"):
        sightline.Pipeline("x", client=openai.OpenAI(api_key="k"))  # type: ignore[arg-type]
    with pytest.raises(ValueError, match="slug"):
        sightline.Pipeline("")
