#!/usr/bin/env python3
"""Creates apps ready to receive deliveries, through the admin API: each with an API key,
four access levels, ThriveCart enabled with a secret word of its own, and the fixtures'
products (product-12, product-7, bump-7, upsell-3) mapped; with --welcome-emails off, no
welcome email for new members. Writes what the other scripts need (each app's id, key,
webhook path and secret word) as JSON.

  setup.py --base http://127.0.0.1:8080 --operator lop_... --apps 200 --out apps.json
"""

import argparse
import concurrent.futures
import json
import secrets
import urllib.parse

from client import Admin

PRODUCTS = ["product-12", "product-7", "bump-7", "upsell-3"]


def make_app(admin, n, welcome_emails):
    app = admin.call("POST", "/admin/v1/apps", admin.operator, {"name": f"Load app {n}"})["id"]
    key = admin.call("POST", f"/admin/v1/apps/{app}/api-keys", admin.operator, {"name": "load"})["key"]
    secret = secrets.token_urlsafe(12)
    hook = admin.call(
        "POST", f"/admin/v1/apps/{app}/thrivecart/enable", key, {"secret_word": secret}
    )
    for product in PRODUCTS:
        level = admin.call("POST", f"/admin/v1/apps/{app}/access-levels", key, {"name": product})["id"]
        admin.call(
            "POST",
            f"/admin/v1/apps/{app}/thrivecart/mappings",
            key,
            {"product": product, "access_level_id": level},
        )
    if not welcome_emails:
        admin.call(
            "PATCH", f"/admin/v1/apps/{app}/member-settings", key, {"welcome_email": "off"}
        )
    path = urllib.parse.urlsplit(hook["webhook_url"]).path
    return {"id": app, "key": key, "path": path, "secret": secret}


def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--base", default="http://127.0.0.1:8080")
    ap.add_argument("--operator", required=True)
    ap.add_argument("--apps", type=int, default=200)
    ap.add_argument("--out", required=True)
    ap.add_argument("--workers", type=int, default=8)
    ap.add_argument("--welcome-emails", choices=["on", "off"], default="on")
    args = ap.parse_args()
    admin = Admin(args.base, args.operator)
    with concurrent.futures.ThreadPoolExecutor(args.workers) as pool:
        apps = list(pool.map(
            lambda n: make_app(admin, n, args.welcome_emails == "on"), range(args.apps)
        ))
    with open(args.out, "w") as f:
        json.dump(apps, f)
    print(f"setup: {len(apps)} apps")


if __name__ == "__main__":
    main()
