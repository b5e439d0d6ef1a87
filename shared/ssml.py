"""SSML for Azure neural voices: one voice, an optional speaking style, relative rate and pitch.

Everything that comes from outside (text, voice name, language, style) is escaped, so the document is always
well-formed XML whatever the LLM wrote (``<``, ``&``, quotes, ``]]>``). Characters that XML 1.0 forbids
outright (most C0 control characters) are dropped, since no escaping can make them legal.
"""

from __future__ import annotations

import re
from xml.sax.saxutils import escape, quoteattr

SSML_NS = "http://www.w3.org/2001/10/synthesis"
MSTTS_NS = "https://www.w3.org/2001/mstts"

# not allowed anywhere in an XML 1.0 document, escaped or not
_INVALID_XML = re.compile("[\x00-\x08\x0b\x0c\x0e-\x1f\ufffe\uffff]")


def xml_safe(text: str) -> str:
    return _INVALID_XML.sub("", text)


def percent(value: float) -> str:
    """A signed whole percentage: 0 → "+0%", 25 → "+25%", -20 → "-20%"."""
    return f"{round(value):+d}%"


def rate_percent(rate: float) -> str:
    """A speaking-rate multiplier as SSML's relative change: 1.0 → "+0%", 1.25 → "+25%", 0.8 → "-20%"."""
    return percent((rate - 1.0) * 100)


def build_ssml(
    text: str,
    *,
    voice_name: str,
    language: str,
    style: str | None = None,
    rate: float = 1.0,
    pitch: float = 0.0,
) -> str:
    """``<speak>`` with one ``<voice>``, an ``<mstts:express-as>`` when ``style`` is given, and ``<prosody>``
    carrying ``rate`` (a multiplier) and ``pitch`` (a percentage)."""
    prosody = f"rate={quoteattr(rate_percent(rate))} pitch={quoteattr(percent(pitch))}"
    body = f"<prosody {prosody}>{escape(xml_safe(text))}</prosody>"
    if style:
        body = f"<mstts:express-as style={quoteattr(xml_safe(style))}>{body}</mstts:express-as>"
    return (
        f'<speak version="1.0" xmlns="{SSML_NS}" xmlns:mstts="{MSTTS_NS}" xml:lang={quoteattr(xml_safe(language))}>'
        f"<voice name={quoteattr(xml_safe(voice_name))}>{body}</voice></speak>"
    )
