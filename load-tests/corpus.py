#!/usr/bin/env python3
"""Makes a corpus of ThriveCart deliveries for the apps `setup.py` created, and what each
app should end up holding once all of them are applied.

Each customer of each app lives one storyline, built from the ThriveCart fixtures with
their own order, email and times: a single purchase, a bundle with a bump and an upsell,
renewals, a repeat buyer, a full refund, a refunded bump, a cancellation, a pause, a pause
and a resume, a failed rebill. One delivery in ten is form-encoded, as ThriveCart sends it
by default; the rest JSON. The corpus is shuffled: a burst delivers lifecycle events
before their purchases too, as retries do.

  corpus.py --apps apps.json --customers 25 --out corpus.jsonl --expected expected.json \
            [--repeats 0.05] [--wrong-secrets 0.01] [--seed 7] [--tag 0]

The corpus has one `{"path", "content_type", "body", "kind"}` object a line (kind: fresh,
repeat or wrong_secret); `expected.json` says, per app, how many deliveries of each kind
were made, the customers, and the state of every (email, order, product).
"""

import argparse
import copy
import json
import pathlib
import random
import urllib.parse

FIXTURES = pathlib.Path(__file__).resolve().parent.parent / "crates/larder-testkit/fixtures/thrivecart"
DAY = 86_400


def fixture(name):
    return json.loads((FIXTURES / f"{name}.json").read_text())


BASE = {
    "single": fixture("01-order-success-single-product"),
    "bundle": fixture("02-order-success-bump-and-upsell"),
    "repeat": fixture("12-order-success-repeat-customer-blank-name"),
    "renewal": fixture("03-order-subscription-payment"),
    "cancel": fixture("04-order-subscription-cancelled"),
    "pause": fixture("05-order-subscription-paused"),
    "resume": fixture("06-order-subscription-resumed"),
    "refund": fixture("07-order-refund-full"),
    "refund_bump": fixture("08-order-refund-bump-only"),
    "rebill_failed": fixture("09-order-rebill-failed"),
}
BUNDLE = ["product-7", "bump-7", "upsell-3"]

# name, weight, the deliveries (fixture, days after the purchase), the end state of each
# product of the order: (status, past_due).
STORYLINES = [
    ("single", 30, [("single", 0)], {"product-12": ("active", False)}),
    ("bundle", 20, [("bundle", 0)], {p: ("active", False) for p in BUNDLE}),
    (
        "renewing",
        15,
        [("bundle", 0), ("renewal", 31), ("renewal", 61)],
        {p: ("active", False) for p in BUNDLE},
    ),
    ("refund", 5, [("single", 0), ("refund", 6)], {"product-12": ("revoked", False)}),
    (
        "bump_refund",
        5,
        [("bundle", 0), ("refund_bump", 3)],
        {"product-7": ("active", False), "bump-7": ("revoked", False), "upsell-3": ("active", False)},
    ),
    (
        "cancelled",
        5,
        [("bundle", 0), ("cancel", 48)],
        {"product-7": ("revoked", False), "bump-7": ("active", False), "upsell-3": ("active", False)},
    ),
    (
        "paused",
        5,
        [("bundle", 0), ("pause", 38)],
        {"product-7": ("paused", False), "bump-7": ("active", False), "upsell-3": ("active", False)},
    ),
    (
        "resumed",
        5,
        [("bundle", 0), ("pause", 38), ("resume", 43)],
        {p: ("active", False) for p in BUNDLE},
    ),
    (
        "rebill_failed",
        5,
        [("bundle", 0), ("rebill_failed", 31)],
        {"product-7": ("active", True), "bump-7": ("active", False), "upsell-3": ("active", False)},
    ),
]


def flatten(value, prefix=""):
    """PHP bracket keys, as ThriveCart form-encodes a delivery."""
    if isinstance(value, dict):
        for k, v in value.items():
            yield from flatten(v, f"{prefix}[{k}]" if prefix else k)
    elif isinstance(value, list):
        for i, v in enumerate(value):
            yield from flatten(v, f"{prefix}[{i}]")
    else:
        yield prefix, "" if value is None else str(value)


def shaped(kind, order, email, at, secret, payment_idx):
    doc = copy.deepcopy(BASE[kind])
    doc["thrivecart_secret"] = secret
    doc["order_id"] = order
    if isinstance(doc.get("order"), dict) and "id" in doc["order"]:
        doc["order"]["id"] = order
    doc["customer"]["email"] = email
    if "order_timestamp" in doc:
        doc["order_timestamp"] = str(at)
    if "date_unix" in doc:
        doc["date_unix"] = str(at)
    if kind in ("renewal", "rebill_failed"):
        doc["recurring_payment_idx"] = str(payment_idx)
        doc["invoice_id"] = f"{order}-{payment_idx}"
    if "event_id" in doc:
        doc["event_id"] = f"{order}{at}"
    return doc


def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--apps", required=True)
    ap.add_argument("--customers", type=int, default=25, help="customers per app")
    ap.add_argument("--out", required=True)
    ap.add_argument("--expected", required=True)
    ap.add_argument("--repeats", type=float, default=0.0, help="share of exact repeats added")
    ap.add_argument("--wrong-secrets", type=float, default=0.0, help="share of wrong secrets added")
    ap.add_argument("--seed", type=int, default=7)
    ap.add_argument("--tag", type=int, default=0, help="another tag, other customers and orders")
    args = ap.parse_args()
    rng = random.Random(args.seed)
    apps = json.loads(pathlib.Path(args.apps).read_text())
    names = [s[0] for s in STORYLINES]
    weights = [s[1] for s in STORYLINES]
    by_name = {s[0]: s for s in STORYLINES}
    t0 = 1_780_000_000
    lines, expected = [], {}
    for a, app in enumerate(apps):
        want = {"fresh": 0, "repeat": 0, "wrong_secret": 0, "customers": [], "items": []}
        fresh = []
        for c in range(args.customers):
            email = f"buyer{c}.app{a}.t{args.tag}@example.com"
            want["customers"].append(email)
            story = by_name[rng.choices(names, weights)[0]]
            order = f"{args.tag + 1}{a:05d}{c:06d}"
            start = t0 + rng.randrange(0, 30 * DAY)
            payments = 1
            for kind, days in story[2]:
                if kind in ("renewal", "rebill_failed"):
                    payments += 1
                doc = shaped(kind, order, email, start + days * DAY + 7, app["secret"], payments)
                fresh.append(doc)
            for product, (status, past_due) in story[3].items():
                want["items"].append([email, order, product, status, past_due])
            if rng.random() < 0.3:
                # A repeat buyer: a second order, the same person (the email in other case).
                second = f"{order}9"
                doc = shaped("repeat", second, email.upper(), start + 9 * DAY, app["secret"], 1)
                fresh.append(doc)
                want["items"].append([email, second, "product-7", "active", False])
        sent = []
        for doc in fresh:
            sent.append(("fresh", doc))
        for doc in fresh:
            if rng.random() < args.repeats:
                sent.append(("repeat", doc))
        for doc in fresh:
            if rng.random() < args.wrong_secrets:
                wrong = copy.deepcopy(doc)
                wrong["thrivecart_secret"] = "not-the-secret-word"
                sent.append(("wrong_secret", wrong))
        for kind, doc in sent:
            want[kind] += 1
            if rng.random() < 0.1:
                body = urllib.parse.urlencode(list(flatten(doc)))
                content_type = "application/x-www-form-urlencoded"
            else:
                body = json.dumps(doc, separators=(",", ":"))
                content_type = "application/json"
            lines.append({"path": app["path"], "content_type": content_type, "body": body, "kind": kind})
        expected[app["id"]] = want
    # Repeats and wrong secrets anywhere in the burst; lifecycle events before their
    # purchases too.
    rng.shuffle(lines)
    with open(args.out, "w") as f:
        for line in lines:
            f.write(json.dumps(line, separators=(",", ":")) + "\n")
    pathlib.Path(args.expected).write_text(json.dumps(expected))
    kinds = {k: sum(1 for l in lines if l["kind"] == k) for k in ("fresh", "repeat", "wrong_secret")}
    print(f"corpus: {len(lines)} deliveries to {len(apps)} apps {kinds}")


if __name__ == "__main__":
    main()
