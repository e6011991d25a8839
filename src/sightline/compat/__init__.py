"""Other tools' instrumentation, landing in Sightline unchanged.

* import-compatible modules: ``sightline.compat.libretto_openai`` and ``sightline.compat.gentrace`` run code
  written against those SDKs' documented APIs by changing its import line (thin names over ``sightline.sdk``:
  one recording path);
* pure translators from foreign payloads (libretto events and feedback, gentrace runs, OTLP spans) to the wire
  models of :mod:`sightline.schema`, used by the server's compatibility endpoints.

Nothing here imports the store or the server.
"""
