"""The README's walk-through, driven through the Python client OpenAPI Generator (`-g python`)
makes from openapi/larder.json. Same steps as walkthrough_openapi_python_client.py.

Run by `larder-server`'s test suite (tests/api/clients.rs):

    LARDER_URL=… LARDER_OPERATOR_TOKEN=… CLIENT_DIR=<generated> FIXTURE=<02….json> \
    python walkthrough_openapi_generator.py
"""

import json
import os
import sys

sys.path.insert(0, os.environ["CLIENT_DIR"])

import larder_ogc  # noqa: E402
from larder_ogc.exceptions import ApiException  # noqa: E402
from larder_ogc.models import (  # noqa: E402
    AccessLevelRequest,
    AccessOverrideStatus,
    CreateApiKeyRequest,
    CreateAppRequest,
    CreateGrantRequest,
    CreateMappingRequest,
    EnableRequest,
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


def client(token=None):
    return larder_ogc.ApiClient(larder_ogc.Configuration(host=BASE, access_token=token))


def ok(call, status, *args, **kwargs):
    """The data of a `*_with_http_info` call, once its status is the one expected."""
    answer = call(*args, **kwargs)
    assert answer.status_code == status, f"expected {status}, got {answer.status_code}"
    return answer.data


def refused(call, status, *args, **kwargs):
    """The error body of a call the server refuses with `status`."""
    try:
        call(*args, **kwargs)
    except ApiException as err:
        assert err.status == status, f"expected {status}, got {err.status}: {err.body}"
        return json.loads(err.body) if err.body else None
    raise AssertionError(f"expected {status}, got a success")


def token_of(url):
    return url.rsplit("/", 1)[-1]


anyone = client()
operator = client(os.environ["LARDER_OPERATOR_TOKEN"])
ops = larder_ogc.OperationsApi(anyone)
hooks = larder_ogc.WebhooksApi(anyone)
member_api = larder_ogc.MemberApi(anyone)
assert ok(ops.get_health_with_http_info, 200).status.value == "ok"
assert ok(ops.get_readiness_with_http_info, 200).status.value == "ready"

apps_as_operator = larder_ogc.AppsApi(operator)
app = ok(apps_as_operator.create_app_with_http_info, 201, CreateAppRequest(name="Acme Academy"))
key = ok(
    apps_as_operator.create_api_key_with_http_info, 201, app.id, CreateApiKeyRequest(name="setup")
)
admin = client(key.key)
apps = larder_ogc.AppsApi(admin)
levels = larder_ogc.AccessLevelsApi(admin)
tc_api = larder_ogc.ThrivecartApi(admin)
members = larder_ogc.MembersApi(admin)
activity = larder_ogc.ActivityApi(admin)

gold = ok(levels.create_access_level_with_http_info, 201, app.id, AccessLevelRequest(name="Gold"))
tc = ok(
    tc_api.enable_thrive_cart_with_http_info,
    200,
    app.id,
    EnableRequest(secret_word="my-thrivecart-secret"),
)
assert tc.enabled and tc.secret_word_set
url = tc.webhook_url
ok(hooks.check_thrive_cart_webhook_with_http_info, 200, token_of(url))
assert ok(hooks.verify_thrive_cart_webhook_with_http_info, 200, token_of(url)).status.value == "enabled"
mapping = ok(
    tc_api.create_mapping_with_http_info,
    201,
    app.id,
    CreateMappingRequest(product="7", access_level_id=gold.id),
)
assert mapping.product == "product-7"
assert [m.id for m in ok(tc_api.list_mappings_with_http_info, 200, app.id).items] == [mapping.id]
rotated = ok(tc_api.rotate_thrive_cart_webhook_token_with_http_info, 200, app.id)
refused(hooks.check_thrive_cart_webhook_with_http_info, 404, token_of(url))
ok(hooks.check_thrive_cart_webhook_with_http_info, 200, token_of(rotated.webhook_url))
ok(tc_api.disable_thrive_cart_with_http_info, 200, app.id)
refused(hooks.check_thrive_cart_webhook_with_http_info, 404, token_of(rotated.webhook_url))
tc = ok(tc_api.enable_thrive_cart_with_http_info, 200, app.id, EnableRequest(secret_word=SECRET_WORD))
tc = ok(
    tc_api.update_thrive_cart_with_http_info,
    200,
    app.id,
    UpdateThriveCartRequest(test_mode=TestMode.PROCESS),
)
assert tc.test_mode == TestMode.PROCESS

with open(os.environ["FIXTURE"]) as f:
    fixture = json.load(f)
hook = token_of(tc.webhook_url)
delivery = ThriveCartDelivery.from_dict(fixture)
receipt = ok(hooks.receive_thrive_cart_webhook_with_http_info, 200, hook, delivery)
assert receipt.status == ReceiptStatus.APPLIED
again = ok(hooks.receive_thrive_cart_webhook_with_http_info, 200, hook, delivery)
assert again.status == ReceiptStatus.DUPLICATE
wrong = ThriveCartDelivery.from_dict({**fixture, "thrivecart_secret": "guess"})
body = refused(hooks.receive_thrive_cart_webhook_with_http_info, 401, hook, wrong)
assert body["code"] == "secret_mismatch"

entries = ok(activity.list_activity_with_http_info, 200, app.id, limit=5)
assert [e.status.value for e in entries.items][:3] == ["rejected", "duplicate", "applied"]
entry = ok(activity.get_activity_with_http_info, 200, app.id, receipt.delivery_id)
assert entry.payload["thrivecart_secret"] == "[redacted]"
unmapped = ok(tc_api.list_unmapped_products_with_http_info, 200, app.id)
assert {u.product for u in unmapped.items} == {"bump-7", "upsell-3"}

member = ok(members.list_members_with_http_info, 200, app.id, email=EMAIL).items[0]
assert [level.name for level in member.access_levels] == ["Gold"]
detail = ok(members.get_member_with_http_info, 200, app.id, member.id)
assert [g.source.value for g in detail.grants] == ["thrivecart"]
ok(members.create_grant_with_http_info, 201, app.id, member.id, CreateGrantRequest(access_level_id=gold.id))
invitation = ok(members.create_invitation_with_http_info, 201, app.id, member.id)
assert invitation.url.endswith("?token=" + invitation.token)

ok(
    member_api.set_password_with_http_info,
    204,
    app.id,
    SetPasswordRequest(token=invitation.token, password=PASSWORD),
)
body = refused(
    member_api.sign_in_with_http_info, 401, app.id, SignInRequest(email=EMAIL, password="nope")
)
assert body["code"] == "invalid_credentials"
session = ok(
    member_api.sign_in_with_http_info, 201, app.id, SignInRequest(email=EMAIL, password=PASSWORD)
)
signed_in = larder_ogc.MemberApi(client(session.token))
me = ok(signed_in.get_me_with_http_info, 200)
assert me.email == EMAIL and [level.name for level in me.access_levels] == ["Gold"]

override = ok(
    members.set_access_override_with_http_info,
    201,
    app.id,
    member.id,
    gold.id,
    SetAccessOverrideRequest(status=AccessOverrideStatus.REVOKED, reason="Chargeback."),
)
assert override.status == AccessOverrideStatus.REVOKED
assert ok(signed_in.get_me_with_http_info, 200).access_levels == []
overrides = ok(members.list_access_overrides_with_http_info, 200, app.id, member.id)
assert [o.access_level_id for o in overrides.items] == [gold.id]
ok(members.delete_access_override_with_http_info, 204, app.id, member.id, gold.id)
assert [level.name for level in ok(signed_in.get_me_with_http_info, 200).access_levels] == ["Gold"]
ok(signed_in.sign_out_with_http_info, 204)
refused(signed_in.get_me_with_http_info, 401)

export = ok(members.export_member_with_http_info, 200, app.id, member.id)
assert export.member.email == EMAIL
assert sorted(g.source.value for g in export.grants) == ["manual", "thrivecart"]
assert [e.id for e in export.activity][-1] == receipt.delivery_id
ok(members.delete_member_with_http_info, 204, app.id, member.id)
refused(members.get_member_with_http_info, 404, app.id, member.id)
entry = ok(activity.get_activity_with_http_info, 200, app.id, receipt.delivery_id)
assert entry.customer_email is None and "jordan" not in entry.to_json().lower()

assert ok(apps.rename_app_with_http_info, 200, app.id, RenameAppRequest(name="Acme EU")).name == "Acme EU"
assert refused(apps.delete_app_with_http_info, 403, app.id)["code"] == "forbidden"
ok(apps_as_operator.delete_app_with_http_info, 204, app.id)
refused(apps_as_operator.get_app_with_http_info, 404, app.id)
refused(hooks.check_thrive_cart_webhook_with_http_info, 404, hook)

print("walkthrough passed: openapi-generator python")
