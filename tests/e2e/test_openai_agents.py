"""The `openai-agents` default Agent (Responses API) with a function tool, through the real proxy."""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import openai
import pytest
from agents import Agent, Runner, function_tool, set_default_openai_client, set_tracing_disabled

from proxy.serving import ProxyHandle

CALLS: list[str] = []


@function_tool
def get_weather(city: str) -> str:
    """The weather in a city."""
    CALLS.append(city)
    return f"Sunny in {city}"


@pytest.fixture
def agent(guarded: ProxyHandle) -> Iterator[Agent[Any]]:
    set_tracing_disabled(True)  # the SDK would otherwise export traces to the vendor
    set_default_openai_client(openai.AsyncOpenAI(base_url=guarded.url, api_key="k", max_retries=0),
                              use_for_tracing=False)
    CALLS.clear()
    yield Agent(name="assistant", instructions="Answer briefly.", tools=[get_weather], model="sim-gpt")


def test_default_agent_runs_a_function_tool(agent: Agent[Any]) -> None:
    result = Runner.run_sync(agent, "Please call get_weather with city=Paris")
    assert CALLS == ["Paris"]
    # The tool's output reached the model spotlighted (the default pipeline's segregation stage).
    assert result.final_output.startswith("Tool result received: <<<DATA ")
    assert "Sunny in Paris" in result.final_output


def test_agent_continues_with_previous_response_id(agent: Agent[Any]) -> None:
    first = Runner.run_sync(agent, "Please call get_weather with city=Oslo")
    second = Runner.run_sync(agent, 'Thanks, now reply with "bye"', previous_response_id=first.last_response_id)
    assert CALLS == ["Oslo"] and second.final_output == "bye"


async def test_streamed_agent_run(agent: Agent[Any]) -> None:
    result = Runner.run_streamed(agent, "Please call get_weather with city=Rome")
    kinds = [event.type async for event in result.stream_events()]
    assert "raw_response_event" in kinds
    assert CALLS == ["Rome"] and "Sunny in Rome" in result.final_output
