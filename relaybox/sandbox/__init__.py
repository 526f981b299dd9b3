"""An in-memory Dropbox API v2 for development, tests and demos.

A separate program that speaks Dropbox: it imports nothing from the rest of
relaybox but itself and ``relaybox/sandbox_kit``, the plumbing it shares with the
Google Drive sandbox (which imports nothing else of relaybox either). Build it
with :func:`relaybox.sandbox.app.create_app`.
"""
