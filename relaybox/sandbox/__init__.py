"""An in-memory Dropbox API v2 for development, tests and demos.

A separate program that speaks Dropbox: it imports nothing from the rest of
relaybox. Build it with :func:`relaybox.sandbox.app.create_app`.
"""
