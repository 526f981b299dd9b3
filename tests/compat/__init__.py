"""Conformance suite: what an existing SAP Open Connectors (Cloud Elements) client expects.

Every test names the public source of its expectation in its docstring (see
docs/compatibility.md for the full table). A test of a feature relaybox lacks is marked
``xfail(strict=True, reason=...)`` until it lands; none is today.
"""
