"""Runs last (file order): no token used anywhere in this run may appear in a gateway log."""

from __future__ import annotations

import peers


def test_no_token_in_any_gateway_log(run_dir):
    files = sorted(set(run_dir.glob("gateway-*")) | {p for p in peers.GATEWAY_LOGS if p.exists()})
    assert files, "no gateway log was written in this run: nothing to check"
    blob = {f: f.read_bytes() for f in files}
    total = sum(len(b) for b in blob.values())
    assert total > 0, "gateway logs are all empty: the request log is missing"
    assert peers.TOKENS_USED, "no token was recorded"
    leaks = [(f.name, t[:8] + "...") for f, b in blob.items() for t in peers.TOKENS_USED if t.encode() in b]
    assert not leaks, f"tokens found in gateway logs: {leaks}"
