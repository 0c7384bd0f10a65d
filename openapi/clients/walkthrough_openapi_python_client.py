"""The README's walk-through, driven through a client openapi-python-client generated from
openapi/larder.json: an app from nothing to a member signing in, then what an admin does
after (overrides, an export, an erasure, a rename, a deletion).

Run by `larder-server`'s test suite (tests/api/clients.rs), which generates the client and
starts the server:

    LARDER_URL=http://127.0.0.1:8080 LARDER_OPERATOR_TOKEN=… CLIENT_DIR=<generated> \
    FIXTURE=crates/larder-testkit/fixtures/thrivecart/02-order-success-bump-and-upsell.json \
    python walkthrough_openapi_python_client.py
"""

import json
import os
import sys

sys.path.insert(0, os.environ["CLIENT_DIR"])

from larder_client import AuthenticatedClient, Client  # noqa: E402
from larder_client.api.access_levels import create_access_level  # noqa: E402
from larder_client.api.activity import get_activity, list_activity  # noqa: E402
from larder_client.api.apps import (  # noqa: E402
    create_api_key,
    create_app,
    delete_app,
    get_app,
    rename_app,
)
from larder_client.api.member import get_me, set_password, sign_in, sign_out  # noqa: E402
from larder_client.api.members import (  # noqa: E402
    create_grant,
    create_invitation,
    delete_access_override,
    delete_member,
    export_member,
    get_member,
    list_access_overrides,
    list_members,
    set_access_override,
)
from larder_client.api.operations import get_health, get_readiness  # noqa: E402
from larder_client.api.thrivecart import (  # noqa: E402
    create_mapping,
    disable_thrive_cart,
    enable_thrive_cart,
    list_mappings,
    list_unmapped_products,
    rotate_thrive_cart_webhook_token,
    update_thrive_cart,
)
from larder_client.api.webhooks import (  # noqa: E402
    check_thrive_cart_webhook,
    receive_thrive_cart_webhook,
    verify_thrive_cart_webhook,
)
from larder_client.models import (  # noqa: E402
    AccessLevelRequest,
    AccessOverrideStatus,
    CreateApiKeyRequest,
    CreateAppRequest,
    CreateGrantRequest,
    CreateMappingRequest,
    EnableRequest,
    ErrorBody,
    ReceiptStatus,
    RenameAppRequest,
    SetAccessOverrideRequest,
    SetPasswordRequest,
    SignInRequest,
    TestMode,
    ThriveCartDelivery,
    UpdateThriveCartRequest,
)

BASE = os.environ["LARDER_URL"]
SECRET_WORD = "K7QX2M9PLD4R"
EMAIL = "jordan.ellis@example.com"
PASSWORD = "correct horse battery"


def expect(answer, status):
    """The parsed answer, once its status is the one expected."""
    assert answer.status_code == status, (
        f"expected {status}, got {answer.status_code}: {answer.content!r}"
    )
    return answer.parsed


def token_of(url):
    return url.rsplit("/", 1)[-1]


operator = AuthenticatedClient(base_url=BASE, token=os.environ["LARDER_OPERATOR_TOKEN"])
anyone = Client(base_url=BASE)

assert expect(get_health.sync_detailed(client=anyone), 200).status.value == "ok"
assert expect(get_readiness.sync_detailed(client=anyone), 200).status.value == "ready"

# 1. An app, with the operator token.
app = expect(
    create_app.sync_detailed(client=operator, body=CreateAppRequest(name="Acme Academy")), 201
)
# 2. Its API key, shown once.
key = expect(
    create_api_key.sync_detailed(app.id, client=operator, body=CreateApiKeyRequest(name="setup")),
    201,
)
admin = AuthenticatedClient(base_url=BASE, token=key.key)
# 3. An access level, with the app's key.
gold = expect(
    create_access_level.sync_detailed(app.id, client=admin, body=AccessLevelRequest(name="Gold")),
    201,
)
# 4. ThriveCart, with the secret word; the webhook URL.
tc = expect(
    enable_thrive_cart.sync_detailed(
        app.id, client=admin, body=EnableRequest(secret_word="my-thrivecart-secret")
    ),
    200,
)
assert tc.enabled and tc.secret_word_set
url = tc.webhook_url
# 5. ThriveCart checks the URL before saving it.
expect(check_thrive_cart_webhook.sync_detailed(token_of(url), client=anyone), 200)
assert (
    expect(verify_thrive_cart_webhook.sync_detailed(token_of(url), client=anyone), 200).status.value
    == "enabled"
)
# 6. Product 7 maps to Gold.
mapping = expect(
    create_mapping.sync_detailed(
        app.id, client=admin, body=CreateMappingRequest(product="7", access_level_id=gold.id)
    ),
    201,
)
assert mapping.product == "product-7"
mappings = expect(list_mappings.sync_detailed(app.id, client=admin), 200)
assert [m.id for m in mappings.items] == [mapping.id] and mappings.next_cursor is None
# 7. A rotated token retires the old URL.
rotated = expect(rotate_thrive_cart_webhook_token.sync_detailed(app.id, client=admin), 200)
expect(check_thrive_cart_webhook.sync_detailed(token_of(url), client=anyone), 404)
expect(check_thrive_cart_webhook.sync_detailed(token_of(rotated.webhook_url), client=anyone), 200)
# 8. Disabled, the URL answers 404; enabled again with the fixtures' secret word.
expect(disable_thrive_cart.sync_detailed(app.id, client=admin), 200)
expect(check_thrive_cart_webhook.sync_detailed(token_of(rotated.webhook_url), client=anyone), 404)
tc = expect(
    enable_thrive_cart.sync_detailed(app.id, client=admin, body=EnableRequest(secret_word=SECRET_WORD)),
    200,
)
tc = expect(
    update_thrive_cart.sync_detailed(
        app.id, client=admin, body=UpdateThriveCartRequest(test_mode=TestMode.PROCESS)
    ),
    200,
)
assert tc.test_mode == TestMode.PROCESS

# A ThriveCart delivery: applied once, a duplicate after.
with open(os.environ["FIXTURE"]) as f:
    delivery = ThriveCartDelivery.from_dict(json.load(f))
hook = token_of(tc.webhook_url)
receipt = expect(receive_thrive_cart_webhook.sync_detailed(hook, client=anyone, body=delivery), 200)
assert receipt.status == ReceiptStatus.APPLIED, receipt
again = expect(receive_thrive_cart_webhook.sync_detailed(hook, client=anyone, body=delivery), 200)
assert again.status == ReceiptStatus.DUPLICATE
wrong = ThriveCartDelivery.from_dict({**delivery.to_dict(), "thrivecart_secret": "guess"})
refused = expect(receive_thrive_cart_webhook.sync_detailed(hook, client=anyone, body=wrong), 401)
assert refused.code.value == "secret_mismatch"

# The activity log and the products no mapping covers.
activity = expect(list_activity.sync_detailed(app.id, client=admin, limit=5), 200)
assert [e.status.value for e in activity.items][:3] == ["rejected", "duplicate", "applied"]
entry = expect(get_activity.sync_detailed(app.id, receipt.delivery_id, client=admin), 200)
assert entry.payload["thrivecart_secret"] == "[redacted]"
assert {e.kind.value for e in entry.effects} == {"member_created", "granted"}
unmapped = expect(list_unmapped_products.sync_detailed(app.id, client=admin), 200)
assert {u.product for u in unmapped.items} == {"bump-7", "upsell-3"}

# The member, a manual grant, an invitation.
members = expect(list_members.sync_detailed(app.id, client=admin, email=EMAIL), 200)
member = members.items[0]
assert [level.name for level in member.access_levels] == ["Gold"]
detail = expect(get_member.sync_detailed(app.id, member.id, client=admin), 200)
assert [g.source.value for g in detail.grants] == ["thrivecart"]
expect(
    create_grant.sync_detailed(
        app.id, member.id, client=admin, body=CreateGrantRequest(access_level_id=gold.id)
    ),
    201,
)
invitation = expect(create_invitation.sync_detailed(app.id, member.id, client=admin), 201)
assert invitation.url.endswith("?token=" + invitation.token)

# The member sets a password and signs in.
expect(
    set_password.sync_detailed(
        app.id, client=anyone, body=SetPasswordRequest(token=invitation.token, password=PASSWORD)
    ),
    204,
)
wrong_password = expect(
    sign_in.sync_detailed(app.id, client=anyone, body=SignInRequest(email=EMAIL, password="nope")),
    401,
)
assert isinstance(wrong_password, ErrorBody) and wrong_password.code.value == "invalid_credentials"
session = expect(
    sign_in.sync_detailed(app.id, client=anyone, body=SignInRequest(email=EMAIL, password=PASSWORD)),
    201,
)
me_client = AuthenticatedClient(base_url=BASE, token=session.token)
me = expect(get_me.sync_detailed(client=me_client), 200)
assert me.email == EMAIL and [level.name for level in me.access_levels] == ["Gold"]

# An override takes Gold away, whatever the grants say, until it is lifted.
override = expect(
    set_access_override.sync_detailed(
        app.id,
        member.id,
        gold.id,
        client=admin,
        body=SetAccessOverrideRequest(status=AccessOverrideStatus.REVOKED, reason="Chargeback."),
    ),
    201,
)
assert override.status == AccessOverrideStatus.REVOKED
assert expect(get_me.sync_detailed(client=me_client), 200).access_levels == []
overrides = expect(list_access_overrides.sync_detailed(app.id, member.id, client=admin), 200)
assert [o.access_level_id for o in overrides.items] == [gold.id]
expect(delete_access_override.sync_detailed(app.id, member.id, gold.id, client=admin), 204)
assert [level.name for level in expect(get_me.sync_detailed(client=me_client), 200).access_levels] == [
    "Gold"
]
expect(sign_out.sync_detailed(client=me_client), 204)
expect(get_me.sync_detailed(client=me_client), 401)

# The member's data, exported, then erased.
export = expect(export_member.sync_detailed(app.id, member.id, client=admin), 200)
assert export.member.email == EMAIL
assert sorted(g.source.value for g in export.grants) == ["manual", "thrivecart"]
# Every delivery that named them: the purchase, its duplicate, the rejected copy.
assert [e.id for e in export.activity][-1] == receipt.delivery_id
assert len(export.activity) == 3
expect(delete_member.sync_detailed(app.id, member.id, client=admin), 204)
expect(get_member.sync_detailed(app.id, member.id, client=admin), 404)
entry = expect(get_activity.sync_detailed(app.id, receipt.delivery_id, client=admin), 200)
assert entry.customer_email is None and "jordan" not in json.dumps(entry.to_dict()).lower()

# The app, renamed, then deleted by the operator.
assert expect(
    rename_app.sync_detailed(app.id, client=admin, body=RenameAppRequest(name="Acme EU")), 200
).name == "Acme EU"
assert expect(delete_app.sync_detailed(app.id, client=admin), 403).code.value == "forbidden"
expect(delete_app.sync_detailed(app.id, client=operator), 204)
expect(get_app.sync_detailed(app.id, client=operator), 404)
expect(check_thrive_cart_webhook.sync_detailed(hook, client=anyone), 404)

print("walkthrough passed: openapi-python-client")
