"""An in-memory Google Drive (API v3) and Google OAuth 2.0 for development, tests and demos.

A separate program that speaks Google: it imports nothing from the rest of relaybox but
itself and ``relaybox/sandbox_kit``, the plumbing it shares with ``relaybox/sandbox`` (the
Dropbox one, which imports nothing else either). Build it with
:func:`relaybox.gdrive_sandbox.app.create_app`; its paths mirror Google's hosts under one
base URL:

- ``/o/oauth2/v2/auth`` (accounts.google.com): the consent page;
- ``/token`` and ``/revoke`` (oauth2.googleapis.com);
- ``/drive/v3/...`` (www.googleapis.com): about, files, changes, channels;
- ``/_sandbox/...``: the control API and the files page (not Google's).

The official ``google-api-python-client`` reaches it with
``client_options={"api_endpoint": base + "/drive/v3/"}`` and ``google-auth`` credentials
whose ``token_uri`` is ``base + "/token"``.
"""
