"""Conformance suite: what an existing SAP Open Connectors (Cloud Elements) client expects.

Every test names the public source of its expectation in its docstring (see
docs/compatibility.md for the full table). Tests of features relaybox lacks today are
marked ``xfail(strict=True, reason="issue 11: ...")``: remove the marker when the
feature lands.
"""
