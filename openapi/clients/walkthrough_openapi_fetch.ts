// The README's walk-through, driven through openapi-fetch with the types openapi-typescript
// generates from openapi/larder.json (`larder.d.ts` beside this file). Same steps as
// walkthrough_openapi_python_client.py; `tsc --strict` checks every call against the
// document before it runs.
//
// Run by `larder-server`'s test suite (tests/api/clients.rs):
//   LARDER_URL=… LARDER_OPERATOR_TOKEN=… FIXTURE=<02….json> node walkthrough_openapi_fetch.js

import { readFileSync } from "node:fs";
import createClient from "openapi-fetch";
import type { components, paths } from "./larder.js";

const BASE = process.env.LARDER_URL as string;
const SECRET_WORD = "K7QX2M9PLD4R";
const EMAIL = "jordan.ellis@example.com";
const PASSWORD = "correct horse battery";

const api = createClient<paths>({ baseUrl: BASE });
const bearer = (token: string) => ({ Authorization: `Bearer ${token}` });
const operator = bearer(process.env.LARDER_OPERATOR_TOKEN as string);

function check(condition: boolean, what: string): asserts condition {
  if (!condition) {
    throw new Error(`walkthrough failed: ${what}`);
  }
}

/** The data of an answer, once its status is the one expected. */
function expect<T>(answer: { data?: T; error?: unknown; response: Response }, status: number): T {
  check(
    answer.response.status === status,
    `expected ${status}, got ${answer.response.status}: ${JSON.stringify(answer.error)}`,
  );
  return answer.data as T;
}

/** The error body of an answer, once its status is the one expected. */
function refused<E>(answer: { error?: E; response: Response }, status: number): E {
  check(answer.response.status === status, `expected ${status}, got ${answer.response.status}`);
  return answer.error as E;
}

const tokenOf = (url: string) => url.slice(url.lastIndexOf("/") + 1);
const hookPath = (token: string) => ({ params: { path: { token } } });

async function main() {
  check(expect(await api.GET("/healthz"), 200).status === "ok", "healthz");
  check(expect(await api.GET("/readyz"), 200).status === "ready", "readyz");

  const app = expect(
    await api.POST("/admin/v1/apps", { headers: operator, body: { name: "Acme Academy" } }),
    201,
  );
  const appPath = { path: { app_id: app.id } };
  const key = expect(
    await api.POST("/admin/v1/apps/{app_id}/api-keys", {
      params: appPath,
      headers: operator,
      body: { name: "setup" },
    }),
    201,
  );
  const admin = bearer(key.key);
  const gold = expect(
    await api.POST("/admin/v1/apps/{app_id}/access-levels", {
      params: appPath,
      headers: admin,
      body: { name: "Gold" },
    }),
    201,
  );
  let tc = expect(
    await api.POST("/admin/v1/apps/{app_id}/thrivecart/enable", {
      params: appPath,
      headers: admin,
      body: { secret_word: "my-thrivecart-secret" },
    }),
    200,
  );
  check(tc.enabled && tc.secret_word_set, "enabled with a secret word");
  const url = tc.webhook_url as string;
  expect(await api.HEAD("/webhooks/thrivecart/{token}", hookPath(tokenOf(url))), 200);
  const verified = expect(await api.GET("/webhooks/thrivecart/{token}", hookPath(tokenOf(url))), 200);
  check(verified.status === "enabled", "the URL is enabled");

  const mapping = expect(
    await api.POST("/admin/v1/apps/{app_id}/thrivecart/mappings", {
      params: appPath,
      headers: admin,
      body: { product: "7", access_level_id: gold.id },
    }),
    201,
  );
  check(mapping.product === "product-7", "the product key is typed");
  const mappings = expect(
    await api.GET("/admin/v1/apps/{app_id}/thrivecart/mappings", { params: appPath, headers: admin }),
    200,
  );
  check(mappings.items.length === 1 && mappings.next_cursor === null, "one mapping, one page");
  const rotated = expect(
    await api.POST("/admin/v1/apps/{app_id}/thrivecart/rotate-webhook-token", {
      params: appPath,
      headers: admin,
    }),
    200,
  );
  refused(await api.HEAD("/webhooks/thrivecart/{token}", hookPath(tokenOf(url))), 404);
  expect(
    await api.HEAD("/webhooks/thrivecart/{token}", hookPath(tokenOf(rotated.webhook_url as string))),
    200,
  );
  expect(
    await api.POST("/admin/v1/apps/{app_id}/thrivecart/disable", { params: appPath, headers: admin }),
    200,
  );
  tc = expect(
    await api.POST("/admin/v1/apps/{app_id}/thrivecart/enable", {
      params: appPath,
      headers: admin,
      body: { secret_word: SECRET_WORD },
    }),
    200,
  );
  tc = expect(
    await api.PATCH("/admin/v1/apps/{app_id}/thrivecart", {
      params: appPath,
      headers: admin,
      body: { test_mode: "process" },
    }),
    200,
  );
  check(tc.test_mode === "process", "test mode kept");

  const fixture = JSON.parse(readFileSync(process.env.FIXTURE as string, "utf8"));
  const hook = tokenOf(tc.webhook_url as string);
  const deliver = (body: components["schemas"]["ThriveCartDelivery"]) =>
    api.POST("/webhooks/thrivecart/{token}", { ...hookPath(hook), body });
  const receipt = expect(await deliver(fixture), 200);
  check(receipt.status === "applied", "the purchase is applied");
  check(expect(await deliver(fixture), 200).status === "duplicate", "a repeat is a duplicate");
  const wrong = refused(await deliver({ ...fixture, thrivecart_secret: "guess" }), 401);
  check(wrong?.code === "secret_mismatch", "a wrong secret word is refused");

  const activity = expect(
    await api.GET("/admin/v1/apps/{app_id}/activity", {
      params: { ...appPath, query: { limit: 5 } },
      headers: admin,
    }),
    200,
  );
  check(
    activity.items.slice(0, 3).map((e) => e.status).join() === "rejected,duplicate,applied",
    "the activity log, newest first",
  );
  const entry = expect(
    await api.GET("/admin/v1/apps/{app_id}/activity/{delivery_id}", {
      params: { path: { app_id: app.id, delivery_id: receipt.delivery_id } },
      headers: admin,
    }),
    200,
  );
  check(entry.payload?.thrivecart_secret === "[redacted]", "the secret word is redacted");
  const unmapped = expect(
    await api.GET("/admin/v1/apps/{app_id}/thrivecart/unmapped-products", {
      params: appPath,
      headers: admin,
    }),
    200,
  );
  check(unmapped.items.map((u) => u.product).sort().join() === "bump-7,upsell-3", "unmapped");

  const members = expect(
    await api.GET("/admin/v1/apps/{app_id}/members", {
      params: { ...appPath, query: { email: EMAIL } },
      headers: admin,
    }),
    200,
  );
  const member = members.items[0];
  check(member.access_levels.map((l) => l.name).join() === "Gold", "the member has Gold");
  const memberPath = { path: { app_id: app.id, member_id: member.id } };
  const detail = expect(
    await api.GET("/admin/v1/apps/{app_id}/members/{member_id}", { params: memberPath, headers: admin }),
    200,
  );
  check(detail.grants.map((g) => g.source).join() === "thrivecart", "one purchased grant");
  expect(
    await api.POST("/admin/v1/apps/{app_id}/members/{member_id}/grants", {
      params: memberPath,
      headers: admin,
      body: { access_level_id: gold.id },
    }),
    201,
  );
  const invitation = expect(
    await api.POST("/admin/v1/apps/{app_id}/members/{member_id}/invitations", {
      params: memberPath,
      headers: admin,
    }),
    201,
  );
  check(invitation.url.endsWith(`?token=${invitation.token}`), "the invitation's token");

  expect(
    await api.POST("/member/v1/apps/{app_id}/password", {
      params: appPath,
      body: { token: invitation.token, password: PASSWORD },
    }),
    204,
  );
  const badPassword = refused(
    await api.POST("/member/v1/apps/{app_id}/sessions", {
      params: appPath,
      body: { email: EMAIL, password: "nope" },
    }),
    401,
  );
  check(badPassword?.code === "invalid_credentials", "a wrong password is refused");
  const session = expect(
    await api.POST("/member/v1/apps/{app_id}/sessions", {
      params: appPath,
      body: { email: EMAIL, password: PASSWORD },
    }),
    201,
  );
  const me = bearer(session.token);
  const meNow = async () => expect(await api.GET("/member/v1/me", { headers: me }), 200);
  check((await meNow()).access_levels.map((l) => l.name).join() === "Gold", "me: Gold");

  const onGold = { path: { ...memberPath.path, access_level_id: gold.id } };
  const override = expect(
    await api.PUT("/admin/v1/apps/{app_id}/members/{member_id}/access-overrides/{access_level_id}", {
      params: onGold,
      headers: admin,
      body: { status: "revoked", reason: "Chargeback." },
    }),
    201,
  );
  check(override.status === "revoked", "the override stands");
  check((await meNow()).access_levels.length === 0, "me: Gold taken away");
  const overrides = expect(
    await api.GET("/admin/v1/apps/{app_id}/members/{member_id}/access-overrides", {
      params: memberPath,
      headers: admin,
    }),
    200,
  );
  check(overrides.items.length === 1, "one override");
  expect(
    await api.DELETE("/admin/v1/apps/{app_id}/members/{member_id}/access-overrides/{access_level_id}", {
      params: onGold,
      headers: admin,
    }),
    204,
  );
  check((await meNow()).access_levels.map((l) => l.name).join() === "Gold", "me: Gold back");
  expect(await api.DELETE("/member/v1/sessions/current", { headers: me }), 204);
  refused(await api.GET("/member/v1/me", { headers: me }), 401);

  const exported = expect(
    await api.GET("/admin/v1/apps/{app_id}/members/{member_id}/export", {
      params: memberPath,
      headers: admin,
    }),
    200,
  );
  check(exported.member.email === EMAIL, "the export's profile");
  check(exported.grants.map((g) => g.source).sort().join() === "manual,thrivecart", "its grants");
  expect(
    await api.DELETE("/admin/v1/apps/{app_id}/members/{member_id}", { params: memberPath, headers: admin }),
    204,
  );
  refused(
    await api.GET("/admin/v1/apps/{app_id}/members/{member_id}", { params: memberPath, headers: admin }),
    404,
  );
  const erased = expect(
    await api.GET("/admin/v1/apps/{app_id}/activity/{delivery_id}", {
      params: { path: { app_id: app.id, delivery_id: receipt.delivery_id } },
      headers: admin,
    }),
    200,
  );
  check(erased.customer_email === null, "the entry stays, without the email");
  check(!JSON.stringify(erased).toLowerCase().includes("jordan"), "nothing of Jordan is left");

  const renamed = expect(
    await api.PATCH("/admin/v1/apps/{app_id}", { params: appPath, headers: admin, body: { name: "Acme EU" } }),
    200,
  );
  check(renamed.name === "Acme EU", "renamed");
  const forbidden = refused(await api.DELETE("/admin/v1/apps/{app_id}", { params: appPath, headers: admin }), 403);
  check(forbidden?.code === "forbidden", "only the operator deletes apps");
  expect(await api.DELETE("/admin/v1/apps/{app_id}", { params: appPath, headers: operator }), 204);
  refused(await api.GET("/admin/v1/apps/{app_id}", { params: appPath, headers: operator }), 404);
  refused(await api.HEAD("/webhooks/thrivecart/{token}", hookPath(hook)), 404);

  console.log("walkthrough passed: openapi-typescript + openapi-fetch");
}

main().catch((err) => {
  console.error(err);
  process.exit(1);
});
