// Drives /console in headless Chromium (playwright-core, installed by tests/test_console.py)
// and prints what a person would have seen, as JSON, for the test to judge.
// Environment: BASE, API_KEY, SECRET_KEY, PHOTO_REGISTER, PHOTO_OTHER, PHOTO_PROBE, PHOTO_GROUP,
// SHOT, MODULES.
import { mkdtempSync, rmSync } from "node:fs";
import { createRequire } from "node:module";
import { tmpdir } from "node:os";
import { join } from "node:path";

const env = process.env;
const { chromium } = createRequire(join(env.MODULES, "noop.js"))("playwright-core");
// This machine's network is closed: without these flags Chromium waits on connections.
const FLAGS = [
  "--headless", "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
  "--disable-background-networking", "--disable-component-update", "--disable-sync",
];

const profile = mkdtempSync(join(tmpdir(), "facesvc-console-"));
const context = await chromium.launchPersistentContext(profile, {
  executablePath: "/usr/bin/chromium", headless: true, args: FLAGS, viewport: { width: 1280, height: 900 },
});
const seen = { errors: [], step: "launch" };
let page;
try {
  page = await context.newPage();
  page.setDefaultTimeout(60000);
  page.on("pageerror", (error) => seen.errors.push(String(error)));
  page.on("dialog", (dialog) => dialog.accept());
  const labels = () => page.locator(".face-box .label").allTextContents();
  const users = () => page.locator("#users li").evaluateAll((items) => items.map((li) => li.dataset.uid));
  // Runs an action and waits until the photo it leads to is analysed (detect + identify).
  const analysed = async (action) => {
    const before = Number((await page.getAttribute("#photo-status", "data-done")) || 0);
    await action();
    await page.waitForFunction((n) => Number(document.getElementById("photo-status").dataset.done || 0) > n, before);
  };

  seen.step = "sign in";
  await page.goto(`${env.BASE}/console`);
  await page.fill("#api-key", env.API_KEY);
  await page.fill("#secret-key", env.SECRET_KEY);
  await page.click("#sign-in");
  await page.waitForSelector("#app-panel:not([hidden])");
  seen.appShown = await page.textContent("#app-id");
  seen.storedSecret = await page.evaluate((secret) => JSON.stringify(sessionStorage).includes(secret), env.SECRET_KEY);

  // An unknown face: a box, no name.
  seen.step = "first photo";
  await analysed(() => page.setInputFiles("#photo-input", env.PHOTO_REGISTER));
  seen.labelsBefore = await labels();

  // Register that person, and someone else who is then deleted.
  seen.step = "register and delete";
  await page.fill("#reg-uid", "person01");
  await page.fill("#reg-info", "Ann Example");
  await page.fill("#reg-group", "staff");
  await analysed(() => page.click("#register"));
  seen.labelsAfterRegister = await labels();
  await analysed(() => page.setInputFiles("#photo-input", env.PHOTO_OTHER));
  await page.fill("#reg-uid", "person02");
  await page.fill("#reg-info", "Bob Example");
  await analysed(() => page.click("#register"));
  seen.usersAfterRegister = await users();
  await analysed(() => page.click('#users li[data-uid="person02"] button'));
  seen.usersAfterDelete = await users();

  // Another photo of the registered person: the box now carries the name, with attributes.
  seen.step = "probe";
  await analysed(() => page.setInputFiles("#photo-input", env.PHOTO_PROBE));
  seen.labelsProbe = await labels();
  seen.tableProbe = await page.locator("#faces tbody tr").first().locator("td").allTextContents();
  seen.groups = await page.locator("#groups li").allTextContents();

  // A group photo: a box on every face, the name only on the registered person's.
  seen.step = "group photo";
  await analysed(() => page.setInputFiles("#photo-input", env.PHOTO_GROUP));
  seen.labelsGroup = await labels();
  await page.screenshot({ path: env.SHOT, fullPage: true });
  seen.step = "done";
} catch (error) {
  // Say where it stopped and what the page showed, for the test's failure message.
  seen.error = String(error);
  seen.status = page && (await page.textContent("#photo-status").catch(() => null));
  if (page) await page.screenshot({ path: env.SHOT, fullPage: true }).catch(() => null);
  process.exitCode = 1;
} finally {
  await context.close();
  rmSync(profile, { recursive: true, force: true });
}
console.log(JSON.stringify(seen));
