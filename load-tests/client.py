"""The admin API, as the load-test scripts use it (the standard library only)."""

import json
import urllib.error
import urllib.request


class Admin:
    def __init__(self, base, operator):
        self.base = base.rstrip("/")
        self.operator = operator

    def call(self, method, path, token, body=None):
        data = None if body is None else json.dumps(body).encode()
        req = urllib.request.Request(self.base + path, data=data, method=method)
        req.add_header("authorization", f"Bearer {token}")
        if data is not None:
            req.add_header("content-type", "application/json")
        try:
            with urllib.request.urlopen(req, timeout=30) as resp:
                text = resp.read()
        except urllib.error.HTTPError as err:
            raise SystemExit(f"{method} {path}: {err.code} {err.read()[:300]!r}") from None
        return json.loads(text) if text else None

    def every(self, path, token):
        """Every item of a list, page after page."""
        items, cursor = [], None
        while True:
            sep = "&" if "?" in path else "?"
            page = self.call("GET", f"{path}{sep}limit=200" + (f"&cursor={cursor}" if cursor else ""), token)
            items.extend(page["items"])
            cursor = page.get("next_cursor")
            if not cursor:
                return items
