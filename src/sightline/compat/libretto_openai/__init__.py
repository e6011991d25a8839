"""libretto-openai's documented API over the Sightline SDK: change ``from libretto_openai import ...`` to
``from sightline.compat.libretto_openai import ...`` and the calls are recorded in Sightline.

* ``Client`` / ``AsyncClient`` take openai's arguments and ``libretto=LibrettoConfig(...)``;
* ``chat.completions.create(...)`` / ``completions.create(...)`` take ``libretto=LibrettoCreateParams(...)``
  (template name, ``template_chat``/``template_text`` with ``template_params``, ``chat_id``, ``chain_id``,
  ``event_id``, ``feedback_key``; ``uuid.UUID`` objects where the documents pass them), and messages or a
  prompt given as ``TemplateChat`` / ``TemplateText``;
* responses carry ``model_extra["libretto_feedback_key"]``; ``client.send_feedback(feedback_key=,
  better_response=, rating=)`` and ``client.update_chain(chain_id, result)`` send what libretto's do.

Thin names over :mod:`sightline.sdk`, so there is one recording path: a ``LibrettoCreateParams`` becomes a
:class:`~sightline.CallParams`, a ``LibrettoConfig`` a :class:`~sightline.SightlineConfig`. The API key comes
from ``LibrettoConfig(api_key=...)``, else ``LIBRETTO_API_KEY``, else ``SIGHTLINE_API_KEY``; the server from
``SIGHTLINE_SERVER_URL``. Records are sent in the background and flushed at exit within a deadline, as the
Sightline SDK does.
"""

from __future__ import annotations

from sightline.sdk import TemplateChat, TemplateText

from ._client import AsyncClient, Client, LibrettoConfig, LibrettoCreateParamDict, LibrettoCreateParams

# The name libretto-openai 1.1's package gives it (its documents say TemplateText).
TemplateString = TemplateText

__all__ = [
    "AsyncClient",
    "Client",
    "LibrettoConfig",
    "LibrettoCreateParamDict",
    "LibrettoCreateParams",
    "TemplateChat",
    "TemplateString",
    "TemplateText",
]
