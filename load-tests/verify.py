#!/usr/bin/env python3
"""Checks, through the admin API, that a load run lost nothing and applied nothing twice:
for every app, each fresh delivery is in the activity log once as a delivery that counted
(applied, ignored or unmapped), every other copy as a `duplicate`, every wrong secret as
`rejected`, nothing `failed` or `invalid`; its members are exactly the customers; and every
grant stands as its storyline says (status and past due), once.

  verify.py --base http://127.0.0.1:8080 --apps apps.json --expected expected.json \
            [--sent 2]   # how many times the whole corpus was sent

Exits 1, naming what differs, when anything does.
"""

import argparse
import collections
import concurrent.futures
import json
import sys

from client import Admin

COUNTED = {"applied", "ignored", "unmapped"}


def check_app(admin, app, want, sent):
    problems = []
    key = app["key"]
    base = f"/admin/v1/apps/{app['id']}"
    statuses = collections.Counter(e["status"] for e in admin.every(f"{base}/activity", key))
    copies = want["fresh"] + want["repeat"]
    expect = {
        "counted": want["fresh"],
        "duplicate": copies * sent - want["fresh"],
        "rejected": want["wrong_secret"] * sent,
    }
    got = {
        "counted": sum(n for s, n in statuses.items() if s in COUNTED),
        "duplicate": statuses.get("duplicate", 0),
        "rejected": statuses.get("rejected", 0),
    }
    if got != expect:
        problems.append(f"activity {dict(statuses)}: expected {expect}")
    for bad in ("failed", "invalid", "ping"):
        if statuses.get(bad):
            problems.append(f"{statuses[bad]} {bad} entries")
    members = admin.every(f"{base}/members", key)
    emails = sorted(m["email"].lower() for m in members)
    if emails != sorted(e.lower() for e in want["customers"]):
        problems.append(f"{len(emails)} members for {len(want['customers'])} customers")
    held = collections.Counter()
    for m in members:
        detail = admin.call("GET", f"{base}/members/{m['id']}", key)
        for g in detail["grants"]:
            held[(m["email"].lower(), g["order_id"], g["product"], g["status"], g["past_due"])] += 1
    wanted = collections.Counter(
        (email.lower(), order, product, status, past_due)
        for email, order, product, status, past_due in want["items"]
    )
    if held != wanted:
        missing = list((wanted - held).keys())[:3]
        extra = list((held - wanted).keys())[:3]
        problems.append(f"grants differ: missing {missing}, unexpected {extra}")
    return app["id"], problems, sum(statuses.values())


def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--base", default="http://127.0.0.1:8080")
    ap.add_argument("--apps", required=True)
    ap.add_argument("--expected", required=True)
    ap.add_argument("--sent", type=int, default=1)
    ap.add_argument("--workers", type=int, default=8)
    args = ap.parse_args()
    apps = json.load(open(args.apps))
    expected = json.load(open(args.expected))
    admin = Admin(args.base, None)
    with concurrent.futures.ThreadPoolExecutor(args.workers) as pool:
        results = list(pool.map(lambda a: check_app(admin, a, expected[a["id"]], args.sent), apps))
    failing = [(app, p) for app, p, _ in results if p]
    entries = sum(n for _, _, n in results)
    if failing:
        for app, problems in failing[:10]:
            print(f"verify: app {app}: " + "; ".join(problems), file=sys.stderr)
        print(f"verify: {len(failing)} of {len(apps)} apps differ", file=sys.stderr)
        sys.exit(1)
    print(f"verify: {len(apps)} apps, {entries} activity entries: nothing lost, nothing applied twice")


if __name__ == "__main__":
    main()
