"""Redaction of personal data and secrets from records before they leave the process.

Detection is pattern first, then a check by a maintained library, so that random numbers are not
taken for identifiers: ``phonenumbers`` (Google's libphonenumber) finds phone numbers,
``python-stdnum`` validates IBANs, card numbers (Luhn) and national identity numbers, the standard
library's ``ipaddress`` validates IP addresses. Neither library downloads anything at run time.
They come with the ``pii`` extra (``pip install 'sightline[pii]'``) and are imported only when a
client is built with ``redact_pii=True``. Redaction runs on the exporter thread.

Each finding becomes a placeholder: ``<EMAIL>``, ``<PHONE>``, ``<CREDIT_CARD>``, ``<IBAN>``,
``<IP_ADDRESS>``, ``<NATIONAL_ID>``, ``<SECRET>``.
"""

from __future__ import annotations

import functools
import importlib
import ipaddress
import re
from collections.abc import Callable
from typing import Any

__all__ = ["Redactor", "redact_record", "redactor", "require_pii_extra"]

_SECRET_PATTERNS = [
    r"-----BEGIN [A-Z ]*PRIVATE KEY-----.*?-----END [A-Z ]*PRIVATE KEY-----",
    re.S,
    r"\bsk-(?:proj-|svcacct-|admin-|ant-)?[A-Za-z0-9_\-]{20,}",
    r"\b(?:AKIA|ASIA)[0-9A-Z]{16}\b",
    r"\b(?:ghp|gho|ghu|ghs|ghr)_[A-Za-z0-9]{30,}\b|\bgithub_pat_[A-Za-z0-9_]{22,}",
    r"\bxox[abposr]-[A-Za-z0-9-]{10,}",
    r"\bAIza[0-9A-Za-z_\-]{35}",
    r"\b(?:sk|rk|pk)_(?:live|test)_[0-9A-Za-z]{16,}",
    r"\bhf_[A-Za-z0-9]{30,}",
    r"\bsl_[A-Za-z0-9_\-]{16,}",
    r"\beyJ[A-Za-z0-9_-]{8,}\.eyJ[A-Za-z0-9_-]{8,}\.[A-Za-z0-9_-]{8,}",
]
# One scan for every secret format rather than one scan each, and none for text without any of
# the markers these formats start with.
_SECRETS = re.compile("|".join(f"(?:{p})" for p in _SECRET_PATTERNS), re.S)
_SECRET_MARKERS = (
    "PRIVATE KEY",
    "sk-",
    "AKIA",
    "ASIA",
    "gh",
    "github_pat_",
    "xox",
    "AIza",
    "_live_",
    "_test_",
    "hf_",
    "sl_",
    "eyJ",
)
_BEARER = re.compile(r"(?i)(\bbearer\s+)[A-Za-z0-9._~+/=-]{16,}")
_ASSIGNED = re.compile(
    r"(?i)(\b(?:api[_-]?key|secret(?:[_-]?key)?|access[_-]?token|auth[_-]?token|token|password|passwd|pwd)"
    r"\b[\"']?\s*[:=]\s*[\"']?)([^\s\"',;]{8,})"
)
_EMAIL = re.compile(r"[A-Za-z0-9._%+-]+@[A-Za-z0-9-]+(?:\.[A-Za-z0-9-]+)*\.[A-Za-z]{2,}")
_IBAN = re.compile(r"\b[A-Z]{2}\d{2}(?: ?[A-Z0-9]){11,30}\b")
_CARD = re.compile(
    r"(?<![\d-])(?:\d{4}([ -]?)\d{4}\1\d{4}\1\d{4}(?:\1?\d{1,3})?"
    r"|\d{4}[ -]?\d{6}[ -]?\d{5}|\d{13,19})(?![\d-])"
)
_IPV4 = re.compile(r"(?<![\d.])(?:\d{1,3}\.){3}\d{1,3}(?![\d.])")
_IPV6 = re.compile(r"(?<![\w:])(?=[0-9A-Fa-f:]*:[0-9A-Fa-f:]*:)[0-9A-Fa-f:]{2,39}(?![\w:])")
# Where a phone number may be: then libphonenumber decides (scanning the whole text with its matcher
# costs ten times more).
_DATE = re.compile(r"\d{4}[-/.]\d{1,2}[-/.]\d{1,2}|\d{1,2}[-/.]\d{1,2}[-/.]\d{2,4}")
_PHONE = re.compile(r"(?<![\w+])(?:\+|\(\d)?\d[\d \t().\-/]{5,22}\d(?![\w])")
# National identity numbers: (pattern, stdnum module that validates it; None when the shape suffices).
_NATIONAL = [
    (r"\b\d{3}-\d{2}-\d{4}\b", "stdnum.us.ssn"),
    (r"\b[A-CEGHJ-PR-TW-Z][A-CEGHJ-NPR-TW-Z] ?\d{2} ?\d{2} ?\d{2} ?[A-D]\b", None),
    (r"\b[12] ?\d{2} ?\d{2} ?(?:\d{2}|2A|2B) ?\d{3} ?\d{3} ?\d{2}\b", "stdnum.fr.nir"),
    (r"\b\d{8}-?[A-Z]\b", "stdnum.es.dni"),
    (r"\b[XYZ]-?\d{7}-?[A-Z]\b", "stdnum.es.nie"),
    (r"\b[A-Z]{6}\d{2}[A-Z]\d{2}[A-Z]\d{3}[A-Z]\b", "stdnum.it.codicefiscale"),
    (r"\b\d{3}\.\d{3}\.\d{3}-\d{2}\b", "stdnum.br.cpf"),
    (r"\b\d{3}[- ]\d{3}[- ]\d{3}\b", "stdnum.ca.sin"),
    (r"\b\d{17}[\dXx]\b", "stdnum.cn.ric"),
    (r"\b\d{4} ?\d{4} ?\d{4}\b", "stdnum.in_.aadhaar"),
    (r"\b\d{11}\b", "stdnum.pl.pesel"),
    (r"\b\d{2} ?\d{3} ?\d{3} ?\d{3}\b", "stdnum.de.idnr"),
    (r"\b\d{6}[-+]\d{4}\b", "stdnum.se.personnummer"),
    (r"\b\d{2}\.\d{2}\.\d{2}-\d{3}\.\d{2}\b", "stdnum.be.nn"),
]
# Top-level keys whose values are identifiers or measurements, never free text.
_KEEP = frozenset(
    {
        "id",
        "timestamp",
        "model",
        "usage",
        "performance",
        "runId",
        "chatId",
        "stepIndex",
        "status",
        "cacheHit",
        "generationId",
        "feedbackKey",
        "userId",
        "sessionId",
        "requestId",
        "startedAt",
        "endedAt",
        "pipelineSlug",
        "thumbs",
        "rating",
        "score",
    }
)
# Keys inside records (messages, steps, typed values) that hold structure, not text.
_KEEP_NESTED = frozenset(
    {
        "role",
        "type",
        "id",
        "tool_call_id",
        "index",
        "stepIndex",
        "startedAt",
        "endedAt",
        "status",
        "statusCode",
    }
)


def require_pii_extra() -> None:
    """Import the redaction libraries now, or explain how to install them."""
    try:
        importlib.import_module("phonenumbers")
        importlib.import_module("stdnum.luhn")
    except ImportError as exc:
        raise ImportError("redact_pii=True needs the 'pii' extra: pip install 'sightline[pii]'") from exc


def _is_card(digits: str) -> bool:
    from stdnum import luhn

    return 13 <= len(digits) <= 19 and digits[0] in "23456" and luhn.is_valid(digits)


class Redactor:
    """Finds and replaces personal data and secrets in text (one per phone region)."""

    def __init__(self, region: str = "US") -> None:
        import phonenumbers
        from stdnum import iban

        self._phonenumbers = phonenumbers
        self._iban = iban
        self._region = region
        self._national: list[tuple[re.Pattern[str], Callable[[str], bool] | None]] = [
            (re.compile(pattern), importlib.import_module(module).is_valid if module else None)
            for pattern, module in _NATIONAL
        ]
        # One scan finds every candidate; each is then checked against every shape it fits.
        self._national_any = re.compile("|".join(f"(?:{pattern})" for pattern, _ in _NATIONAL))

    def text(self, text: str) -> str:
        """``text`` with every finding replaced by its placeholder."""
        if len(text) < 6:
            return text
        if any(marker in text for marker in _SECRET_MARKERS):
            text = _SECRETS.sub("<SECRET>", text)
        text = _BEARER.sub(r"\1<SECRET>", text)
        text = _ASSIGNED.sub(r"\1<SECRET>", text)
        if "@" in text:
            text = _EMAIL.sub("<EMAIL>", text)
        text = _IBAN.sub(self._iban_match, text)
        has_digits = any(c.isdigit() for c in text)
        if not has_digits:
            return text
        text = _CARD.sub(
            lambda m: "<CREDIT_CARD>" if _is_card(re.sub(r"\D", "", m.group(0))) else m.group(0), text
        )
        text = self._national_any.sub(self._national_match, text)
        text = _IPV4.sub(lambda m: "<IP_ADDRESS>" if _is_ip(m.group(0)) else m.group(0), text)
        if ":" in text:
            text = _IPV6.sub(lambda m: "<IP_ADDRESS>" if _is_ipv6(m.group(0)) else m.group(0), text)
        text = _PHONE.sub(self._phone_match, text)
        return text

    def _national_match(self, match: re.Match[str]) -> str:
        candidate = match.group(0)
        for pattern, valid in self._national:
            if pattern.fullmatch(candidate) and (valid is None or valid(candidate)):
                return "<NATIONAL_ID>"
        return candidate

    def _iban_match(self, match: re.Match[str]) -> str:
        candidate = match.group(0)
        while len(candidate.replace(" ", "")) >= 15:
            if self._iban.is_valid(candidate):
                return "<IBAN>" + match.group(0)[len(candidate) :]
            if " " not in candidate:
                break
            candidate = candidate.rsplit(" ", 1)[0]
        return match.group(0)

    def _phone_match(self, match: re.Match[str]) -> str:
        candidate = match.group(0)
        pn = self._phonenumbers
        digits = sum(c.isdigit() for c in candidate)
        if digits < 7 or _DATE.fullmatch(candidate.strip()):
            return candidate
        if digits <= 15:
            try:
                number = pn.parse(candidate, self._region)
            except pn.NumberParseException:
                return candidate
            return "<PHONE>" if pn.is_valid_number(number) else candidate
        # Several numbers in a row: let libphonenumber's matcher split them.
        spans = [
            (m.start, m.end)
            for m in pn.PhoneNumberMatcher(candidate, self._region, leniency=pn.Leniency.VALID)
        ]
        for start, end in reversed(spans):
            candidate = candidate[:start] + "<PHONE>" + candidate[end:]
        return candidate

    def value(self, value: Any) -> Any:
        """Every string inside ``value`` (dicts, lists) redacted, identifiers kept."""
        if isinstance(value, str):
            return self.text(value)
        if isinstance(value, dict):
            return {k: v if k in _KEEP_NESTED else self.value(v) for k, v in value.items()}
        if isinstance(value, list):
            return [self.value(v) for v in value]
        return value


def _is_ip(text: str) -> bool:
    try:
        ipaddress.ip_address(text)
    except ValueError:
        return False
    return True


def _is_ipv6(text: str) -> bool:
    return sum(1 for group in text.split(":") if group) >= 2 and _is_ip(text)


@functools.lru_cache(maxsize=8)
def redactor(region: str = "US") -> Redactor:
    """The redactor for a phone region (built once; its patterns are compiled once)."""
    return Redactor(region)


def redact_record(kind: str, body: dict[str, Any], region: str = "US") -> dict[str, Any]:
    """A wire body with its free text redacted; ids, model, usage and timings kept as they are."""
    r = redactor(region)
    out = dict(body)
    for key, value in body.items():
        if key == "metadata" and isinstance(value, dict):
            out[key] = {k: v if k in _KEEP else r.value(v) for k, v in value.items()}
        elif key == "template" and isinstance(value, dict):
            out[key] = {k: v if k in ("name", "version") else r.value(v) for k, v in value.items()}
        elif key not in _KEEP:
            out[key] = r.value(value)
    return out
