"""Phone calls refused while calls are stopped hear the refusal in the language of the agent their number
reaches (Twilio ``<Say language>``, Telnyx ``speak``); a number no agent claims gets the default agent's
(English); ``TELEPHONY_REFUSAL_MESSAGE`` overrides the text. Agents are read through the API in their language."""

from __future__ import annotations

import json
import random
import re
import uuid
import xml.etree.ElementTree as ET

import httpx

from services.gateway.telephony.telnyx.api import encode_state
from shared.db.migrate import MIGRATIONS_DIR
from shared.texts import CATALOGUE
from tests.integration.test_telephony import (
    TelnyxSigner,
    create_agent,
    gateway_here,
    post_telnyx,
    post_twilio,
    provider_api,
    telnyx_action,
    telnyx_event,
)

__all__ = ["provider_api"]  # a fixture, used below


def spanish_number() -> str:
    return "+3491" + "".join(random.choices("0123456789", k=7))


async def test_twilio_refusal_speaks_the_called_agent_language(nats_url, database_url, provider_api) -> None:
    number = spanish_number()
    async with gateway_here(nats_url, database_url) as (app, host):
        await create_agent(host, f"tienda-{uuid.uuid4().hex[:6]}", language="es-ES", phone_numbers=[number])
        runtime = app.state.runtime
        runtime.accepting = False  # the same refusal path as the global stop (see runtime.refusal)
        try:
            form = {"CallSid": "CA" + uuid.uuid4().hex, "To": number}
            spanish = await post_twilio(host, "/twilio/voice", form, sign=False)
            english = await post_twilio(
                host, "/twilio/voice", {"CallSid": "CA" + uuid.uuid4().hex, "To": spanish_number()}, sign=False
            )
        finally:
            runtime.accepting = True
    for resp, locale, language in ((spanish, "es-ES", "es"), (english, "en-US", "en")):
        say = ET.fromstring(resp.text).find("Say")
        assert resp.status_code == 200 and say is not None
        assert (say.get("language"), say.text) == (locale, CATALOGUE[language]["telephony_refusal"])


async def test_telnyx_refusal_speaks_the_called_agent_language(nats_url, database_url, provider_api) -> None:
    signer, number, ccid = TelnyxSigner(), spanish_number(), "v3:" + uuid.uuid4().hex
    speak = telnyx_action(provider_api, ccid, "speak")
    settings = {"telnyx_api_key": "KEY-test", "telnyx_public_key": signer.public_b64}
    async with gateway_here(nats_url, database_url, **settings) as (_, host):
        await create_agent(host, f"clinica-{uuid.uuid4().hex[:6]}", language="es-MX", phone_numbers=[number])
        answered = telnyx_event("call.answered", ccid, to=number, client_state=encode_state({"refuse": True}))
        assert (await post_telnyx(host, answered, signer)).json() == {"status": "refusing"}
    sent = json.loads(speak.calls.last.request.content)
    assert (sent["language"], sent["payload"]) == ("es-MX", CATALOGUE["es"]["telephony_refusal"])


async def test_the_deployment_can_override_the_refusal_text(nats_url, database_url, provider_api) -> None:
    number = spanish_number()
    override = "Estamos cerrados por inventario."
    async with gateway_here(nats_url, database_url, telephony_refusal_message=override) as (app, host):
        await create_agent(host, f"cerrado-{uuid.uuid4().hex[:6]}", language="es-ES", phone_numbers=[number])
        app.state.runtime.accepting = False
        try:
            form = {"CallSid": "CA" + uuid.uuid4().hex, "To": number}
            resp = await post_twilio(host, "/twilio/voice", form, sign=False)
        finally:
            app.state.runtime.accepting = True
    say = ET.fromstring(resp.text).find("Say")
    assert say is not None and (say.get("language"), say.text) == ("es-ES", override)


def stored_default_agent() -> dict[str, object]:
    """The spec migration 0002 inserted for the `default` agent (explicit English texts)."""
    sql = (MIGRATIONS_DIR / "0002_agents.sql").read_text()
    stored = re.search(r"VALUES \('default', '(.*)'::jsonb\)", sql)
    assert stored is not None
    return dict(json.loads(stored.group(1).replace("''", "'")))


async def test_the_api_shows_an_agent_in_its_language(nats_url, database_url) -> None:
    async with gateway_here(nats_url, database_url) as (_, host):
        async with httpx.AsyncClient(base_url=f"http://{host}", trust_env=False, timeout=10) as client:
            es = (await client.get("/api/v1/agents/es")).json()  # the Spanish agent out of the box
            assert es["spec"]["language"] == "es-ES" and es["spec"]["first_message"] == CATALOGUE["es"]["first_message"]
            assert "first_message" in es["catalogue_texts"] and "system_prompt" in es["catalogue_texts"]
            # an agent stored before the catalogue, with explicit English texts (the `default` agent as 0002 wrote
            # it: other tests rewrite `default` itself, so a copy is made here)
            legacy = {"agent_id": f"antiguo-{uuid.uuid4().hex[:6]}", **stored_default_agent()}
            made = (await client.post("/api/v1/agents", json=legacy)).json()
            # (the texts that came after 0002 follow the catalogue too: the shutdown goodbye, agent actions' lines)
            assert made["catalogue_texts"] == [
                "shutdown_message",
                "tool_filler_message",
                "end_call_message",
                "transfer_message",
            ]
            assert made["spec"]["apology_message"] == CATALOGUE["en"]["apology_message"]
            # a text written back as null follows the agent's language; one written as text is kept
            agent_id = f"idioma-{uuid.uuid4().hex[:6]}"
            made = await client.post("/api/v1/agents", json={"agent_id": agent_id, "reprompt_message": "¿Hola?"})
            assert made.status_code == 201 and made.json()["spec"]["first_message"] == CATALOGUE["en"]["first_message"]
            spec = made.json()["spec"] | {"language": "es-ES", "first_message": None}
            put = (await client.put(f"/api/v1/agents/{agent_id}", json=spec)).json()
            assert put["spec"]["first_message"] == CATALOGUE["es"]["first_message"]
            assert put["spec"]["reprompt_message"] == "¿Hola?" and "first_message" in put["catalogue_texts"]
            assert "apology_message" not in put["catalogue_texts"]  # written back resolved: kept as text
