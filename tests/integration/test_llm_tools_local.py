"""The local multilingual model (Qwen2.5 0.5B, llama.cpp) calls a tool from the Hermes prompt: a Spanish caller
asking for sales gets ``transfer_call`` with the target, and none of the call's text is spoken. One generation
(seeded from the chat, so the same every run); skipped where the model's packages are not installed."""

from __future__ import annotations

import json

import pytest

from services.llm_worker.providers import LlmWorkerSettings
from services.llm_worker.providers.local_llama import LocalLlamaLlm
from shared.events import ChatMessage, ToolSpec
from shared.model_parts import QWEN_05B

TOOLS = [
    ToolSpec(
        name="end_call",
        description="Cuelga la llamada cuando el cliente se despide o pide colgar.",
        parameters={"type": "object", "properties": {"reason": {"type": "string"}}, "required": ["reason"]},
    ),
    ToolSpec(
        name="transfer_call",
        description="Pasa la llamada a una persona cuando el cliente lo pide.",
        parameters={
            "type": "object",
            "properties": {"target": {"type": "string", "enum": ["ventas", "soporte"]}},
            "required": ["target"],
        },
    ),
]


async def test_qwen_calls_transfer_in_spanish_without_speaking_the_call() -> None:
    pytest.importorskip("llama_cpp")
    for part in QWEN_05B.parts:
        pytest.importorskip(part.package)
    llm = LocalLlamaLlm(LlmWorkerSettings(llm_model_path="", llm_multilingual_model_path=""))
    messages = [
        ChatMessage(role="system", content="Eres el asistente telefónico de una clínica. Responde en español, breve."),
        ChatMessage(role="user", content="Quiero hablar con una persona de ventas, por favor."),
    ]
    deltas = [d async for d in llm.stream(messages, language="es", temperature=0.2, max_tokens=80, tools=TOOLS)]
    spoken = "".join(d.text for d in deltas)
    assert "{" not in spoken and "tool_call" not in spoken
    last = deltas[-1]
    assert last.finish_reason == "tool_calls", spoken
    assert [(c.name, json.loads(c.arguments)) for c in last.tool_calls] == [("transfer_call", {"target": "ventas"})]
