"""What the two provider sandboxes share: the plumbing of a fake provider, not its behaviour.

``relaybox/sandbox`` (Dropbox) and ``relaybox/gdrive_sandbox`` (Google Drive) are separate
programs that each speak one provider. Where their logic is the same (saving the state
file, the control API's plumbing, sending notifications over HTTP with retries, keeping
OAuth codes and tokens, the files page and the consent page's frame) it lives here once.
What a provider does its own way (error shapes, JSON rendering, token lifetimes, grant
rules, what a notification says and when it is retried) stays in that provider's sandbox.

The kit imports nothing of relaybox but itself, and each sandbox imports nothing of
relaybox but itself and this kit, so either sandbox still runs on its own.
"""
