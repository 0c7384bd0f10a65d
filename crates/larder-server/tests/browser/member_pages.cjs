// Drives Debian's Chromium (headless, through playwright-core) through Larder's hosted
// member pages, one scene per run, for crates/larder-server/tests/api/browser.rs.
//
//   node member_pages.cjs <scene> <json args>
//
// Every field is found by its label, as a screen reader would; a page that breaks its own
// Content-Security-Policy or logs an error fails the scene. A screenshot of each page is
// written to args.shots. What the pages showed is printed as one JSON object.

const path = require('path');
const { chromium } = require(path.join(process.env.LARDER_TOOLS_NODE, 'node_modules', 'playwright-core'));

const [scene, raw] = process.argv.slice(2);
const args = JSON.parse(raw);
const seen = { scene, pages: [], problems: [] };

async function look(page, name) {
  await page.screenshot({ path: path.join(args.shots, `${scene}-${name}.png`), fullPage: true });
  const view = {
    name,
    url: page.url(),
    title: await page.title(),
    header: (await page.locator('header').innerText()).trim(),
    h1: (await page.locator('h1').innerText()).trim(),
    alerts: await page.locator('[role=alert]').allInnerTexts(),
    notices: await page.locator('[role=status]').allInnerTexts(),
    items: await page.locator('main li').allInnerTexts(),
  };
  seen.pages.push(view);
  return view;
}

async function signOut(page) {
  await page.getByRole('button', { name: 'Sign out' }).click();
  await page.waitForURL(/\/sign-in$/);
}

async function signInWithPassword(page, email, password) {
  await page.getByLabel('Email address', { exact: true }).first().fill(email);
  await page.getByLabel('Password', { exact: true }).fill(password);
  await page.getByRole('button', { name: 'Sign in' }).click();
  await page.waitForURL(/\/members\/[^/]+\/$/);
}

const scenes = {
  // The welcome email's link: set a password, land signed in, sign out, sign in again.
  async welcome(page) {
    await page.goto(args.link);
    await look(page, 'set-password');
    await page.getByLabel('New password').fill(args.password);
    await page.getByRole('button', { name: 'Set password and sign in' }).click();
    await page.waitForURL(/\/members\/[^/]+\/$/);
    await look(page, 'signed-in');
    await signOut(page);
    await look(page, 'sign-in');
    await signInWithPassword(page, args.email, args.password);
    await look(page, 'signed-in-again');
    // The used link does not work twice.
    await page.goto(args.link);
    await look(page, 'used-link');
  },
  // Ask for a magic link on the sign-in page.
  async 'ask-magic'(page) {
    await page.goto(`${args.base}/members/${args.app}/sign-in`);
    await page.locator('#magic-email').fill(args.email);
    await page.getByRole('button', { name: 'Email me a sign-in link' }).click();
    await look(page, 'check-email');
  },
  // Open the magic link, confirm, land signed in.
  async magic(page) {
    await page.goto(args.link);
    await look(page, 'confirm');
    await page.getByRole('button', { name: 'Sign in' }).click();
    await page.waitForURL(/\/members\/[^/]+\/$/);
    await look(page, 'signed-in');
  },
  // Ask for a password reset.
  async 'ask-reset'(page) {
    await page.goto(`${args.base}/members/${args.app}/sign-in`);
    await page.getByRole('link', { name: 'Forgot your password?' }).click();
    await look(page, 'reset-password');
    await page.getByLabel('Email address').fill(args.email);
    await page.getByRole('button', { name: 'Email me a link' }).click();
    await look(page, 'check-email');
  },
  // Choose a new password from the reset link, then sign in with it.
  async reset(page) {
    await page.goto(args.link);
    await look(page, 'choose-password');
    await page.getByLabel('New password').fill(args.password);
    await page.getByRole('button', { name: 'Save password and sign in' }).click();
    await page.waitForURL(/\/members\/[^/]+\/$/);
    await look(page, 'signed-in');
    await signOut(page);
    await signInWithPassword(page, args.email, args.password);
    await look(page, 'signed-in-again');
  },
};

(async () => {
  const browser = await chromium.launch({
    executablePath: process.env.LARDER_CHROMIUM || '/usr/bin/chromium',
    args: [
      '--no-sandbox', '--disable-gpu', '--disable-quic', '--no-first-run',
      '--disable-background-networking', '--disable-component-update', '--disable-sync',
    ],
  });
  let failed = null;
  try {
    const context = await browser.newContext();
    const page = await context.newPage();
    page.setDefaultTimeout(15000);
    page.on('console', (m) => {
      // A page answered 4xx on purpose (a used link) logs its status: the scenes check
      // statuses through what the page says. Anything else is a problem.
      const status = /^Failed to load resource: the server responded with a status of 4\d\d/;
      if (m.type() === 'error' && !status.test(m.text())) {
        seen.problems.push(`console: ${m.text()}`);
      }
    });
    page.on('pageerror', (e) => seen.problems.push(`page error: ${e.message}`));
    await scenes[scene](page);
  } catch (e) {
    failed = e;
  } finally {
    await browser.close();
  }
  process.stdout.write(JSON.stringify(seen) + '\n');
  if (failed) {
    process.stderr.write(`${failed.stack || failed}\n`);
    process.exit(1);
  }
})();
