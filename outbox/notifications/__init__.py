"""The notification API: the reference application built on the library, which the library never imports.

``notification`` (what a client sends, and its validation), ``accept`` (a notification through the
library's accept use case), ``api`` (the HTTP API, problem+json answers), ``errors`` (its HTTP
errors) and ``delivery`` (the consumer's reference delivery). ``outbox dev`` and ``outbox demo`` run
it locally; its Lambda entry point is ``worker/api.py``'s.
"""
