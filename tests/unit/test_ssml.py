"""SSML for Azure: always well-formed, hostile text escaped and round-tripped exactly."""

from __future__ import annotations

import xml.etree.ElementTree as ET

import pytest

from shared.ssml import build_ssml, rate_percent

NS = "{http://www.w3.org/2001/10/synthesis}"
MSTTS = "{https://www.w3.org/2001/mstts}"
XML_LANG = "{http://www.w3.org/XML/1998/namespace}lang"
HOSTILE = "a < b > c & d \"double\" 'single' ]]> <![CDATA[x]]> </speak> &amp; 👋🏽 café"


def parse(ssml: str) -> ET.Element:
    return ET.fromstring(ssml)


def test_structure_without_style() -> None:
    root = parse(build_ssml("Hello there.", voice_name="en-US-JennyNeural", language="en-US"))
    assert root.tag == f"{NS}speak" and root.get("version") == "1.0"
    assert root.get(XML_LANG) == "en-US"
    voice = root.find(f"{NS}voice")
    assert voice is not None and voice.get("name") == "en-US-JennyNeural"
    assert voice.find(f"{MSTTS}express-as") is None
    prosody = voice.find(f"{NS}prosody")
    assert prosody is not None
    assert (prosody.get("rate"), prosody.get("pitch"), prosody.text) == ("+0%", "+0%", "Hello there.")


def test_style_rate_and_pitch() -> None:
    ssml = build_ssml("Hi", voice_name="es-ES-ElviraNeural", language="es-ES", style="cheerful", rate=1.25, pitch=-10)
    root = parse(ssml)
    express = root.find(f"{NS}voice/{MSTTS}express-as")
    assert express is not None and express.get("style") == "cheerful"
    prosody = express.find(f"{NS}prosody")
    assert prosody is not None
    assert (prosody.get("rate"), prosody.get("pitch")) == ("+25%", "-10%")


@pytest.mark.parametrize(
    ("rate", "expected"), [(1.0, "+0%"), (1.25, "+25%"), (0.8, "-20%"), (0.5, "-50%"), (2.0, "+100%")]
)
def test_rate_percent(rate: float, expected: str) -> None:
    assert rate_percent(rate) == expected


def test_hostile_text_and_attributes_round_trip() -> None:
    ssml = build_ssml(HOSTILE, voice_name='x" evil="1', language='en"US<', style="a&b'\"<>")
    root = parse(ssml)
    assert root.get(XML_LANG) == 'en"US<'
    voice = root.find(f"{NS}voice")
    assert voice is not None and voice.get("name") == 'x" evil="1' and voice.get("evil") is None
    express = voice.find(f"{MSTTS}express-as")
    assert express is not None and express.get("style") == "a&b'\"<>"
    prosody = express.find(f"{NS}prosody")
    assert prosody is not None and prosody.text == HOSTILE and len(prosody) == 0


def test_invalid_xml_characters_are_dropped() -> None:
    root = parse(build_ssml("a\x00b\x07c\td", voice_name="v", language="en-US"))
    prosody = root.find(f"{NS}voice/{NS}prosody")
    assert prosody is not None and prosody.text == "abc\td"
