#!/usr/bin/env python3
"""Rebuilds the seed corpus in fuzz/corpus/ from the repository's fixtures.

Run from anywhere: `python3 fuzz/make-corpus.py`. It rewrites only the `seed-*` and `event-*`
files it makes; inputs added by hand (crash reproducers, `crash-*`) are left alone.

Webhook seeds use the layout of fuzz/src/lib.rs (`name: value` header lines, a blank line, then
the body) and are signed with the test secrets of scripts/run-local.sh, so each one starts the
fuzzer on the verified path.
"""

import base64
import hashlib
import hmac
import json
import pathlib
import re

ROOT = pathlib.Path(__file__).resolve().parent.parent
CORPUS = ROOT / "fuzz" / "corpus"
FIXTURES = ROOT / "shared" / "tests" / "fixtures"

ZENDESK_SECRET = b"dGhpc19zZWNyZXRfaXNfZm9yX3Rlc3Rpbmdfb25seQ=="
INTERCOM_SECRET = b"deskbridge-test-intercom-secret"
GORGIAS_TOKEN = "deskbridge-test-gorgias-token"
SIGNED_AT = "2025-01-08T10:04:00Z"

# Headers of the events/ deliveries that the connector reads.
KEEP = {
    "content-type",
    "authorization",
    "x-hub-signature",
    "x-zendesk-webhook-signature",
    "x-zendesk-webhook-signature-timestamp",
    "x-zendesk-webhook-invocation-id",
}


def request(headers, body: bytes) -> bytes:
    head = "\n".join(f"{k}: {v}" for k, v in headers.items())
    return head.encode() + b"\n\n" + body


def signed(source: str, body: bytes) -> bytes:
    headers = {"content-type": "application/json"}
    if source == "zendesk":
        mac = hmac.new(ZENDESK_SECRET, SIGNED_AT.encode() + body, hashlib.sha256).digest()
        headers["x-zendesk-webhook-signature"] = base64.b64encode(mac).decode()
        headers["x-zendesk-webhook-signature-timestamp"] = SIGNED_AT
    elif source == "intercom":
        mac = hmac.new(INTERCOM_SECRET, body, hashlib.sha1).hexdigest()
        headers["x-hub-signature"] = f"sha1={mac}"
    else:
        headers["authorization"] = f"Bearer {GORGIAS_TOKEN}"
    return request(headers, body)


def write(target: str, name: str, data: bytes) -> None:
    d = CORPUS / target
    d.mkdir(parents=True, exist_ok=True)
    (d / name).write_bytes(data)


def main() -> None:
    for target in CORPUS.glob("*"):
        for old in list(target.glob("seed-*")) + list(target.glob("event-*")):
            old.unlink()

    for source in ("zendesk", "intercom", "gorgias"):
        target = f"{source}_webhook"
        for fixture in sorted((FIXTURES / source).glob("*.json")):
            if fixture.name.startswith("api-"):
                continue  # API objects, not webhook bodies
            write(target, f"seed-{fixture.stem}.http", signed(source, fixture.read_bytes()))
        for event in sorted((ROOT / "events").glob(f"webhook-{source}-*.json")):
            ev = json.loads(event.read_text())
            body = ev["body"].encode()
            headers = {k: v for k, v in ev["headers"].items() if k in KEEP}
            name = event.stem.removeprefix(f"webhook-{source}-")
            write(target, f"event-{name}.http", request(headers, body))
        # Small edge cases: no headers, empty body, deep nesting just past the limit.
        write(target, "seed-empty.http", b"")
        write(target, "seed-no-headers.http", b"{}")
        write(target, "seed-too-deep.http", signed(source, b"[" * 65 + b"]" * 65))

    # signatures: raw bytes that arbitrary splits into secret, header values and body.
    for event in sorted((ROOT / "events").glob("webhook-*.json")):
        ev = json.loads(event.read_text())
        parts = [ev["headers"].get(k, "") for k in sorted(KEEP)]
        data = "\x00".join(parts).encode() + ev["body"].encode()[:200]
        write("signatures", f"event-{event.stem.removeprefix('webhook-')}.bin", data)

    # config_file: the annotated example and the shapes the unit tests load.
    example = (ROOT / "examples" / "deskbridge.yaml").read_bytes()
    write("config_file", "seed-example.yaml", example)
    cinnox = (ROOT / "examples" / "cinnox-zapier.yaml").read_bytes()
    write("config_file", "seed-cinnox-zapier.yaml", cinnox)
    source = (ROOT / "shared" / "src" / "config" / "file" / "tests.rs").read_text()
    m = re.search(r'const GORGIAS_SEED: &str = r#"\n(.*?)"#;', source, re.S)
    if m:
        write("config_file", "seed-gorgias.yaml", m.group(1).encode())
    small = {
        "empty": "",
        "null": "~\n",
        "intercom": "connectors:\n  intercom:\n    lists: { all_users: 35 }\n"
        "    field_mapping:\n      email: email\n      name: FULLNAME\n"
        "      custom_attributes.plan_tier: PLAN_TIER\n",
        "generic": "default_region: NO\nconnectors:\n  generic:cinnox:\n"
        "    tag_lists: { 2024: 7 }\n"
        "    event_mapping: { ticket.created: CINNOX_ENQUIRY_NEW }\n",
        "streams": "connectors:\n  zendesk:\n    sync: { tickets: false }\n",
        "bad-flow": "connectors:\n  gorgias: { enabled: true\n",
        "list": "- just\n- a list\n",
        "unknown": "historical_events: maybe\nfoo: 1\n",
        "anchors": "a: &x { enabled: true }\nconnectors:\n  zendesk: *x\n  gorgias: *x\n",
        "transform": "connectors:\n  gorgias:\n    field_mapping:\n"
        "      id: GORGIAS_ID\n      name: { attribute: FIRSTNAME, transform: split_name }\n",
    }
    for name, text in small.items():
        write("config_file", f"seed-{name}.yaml", text.encode())


if __name__ == "__main__":
    main()
