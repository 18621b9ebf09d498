// What the browser scenarios (chat.mjs, push.mjs) share: the chromium they drive, their
// report (steps, screenshots, page errors and what else a scenario records), their checks,
// and how a run ends: on a failure a screenshot of every open page, then the report as one
// JSON line on stdout and the exit code (0 when every check passed).
import { mkdirSync } from "node:fs";
import { join } from "node:path";
import { chromium } from "playwright-core";

const CHROMIUM = process.env.CHROMIUM_PATH || "/usr/bin/chromium";
const ARGS = ["--headless", "--no-sandbox", "--disable-gpu", "--disable-background-networking", "--disable-component-update", "--disable-sync", "--no-first-run"];
export const TIMEOUT = 10000;

/** A scenario writing its screenshots to outDir; `fields` start its report. */
export function scenario(outDir, fields = {}) {
  mkdirSync(outDir, { recursive: true });
  const started = Date.now();
  const report = { ok: false, steps: [], screenshots: [], page_errors: [], ...fields };

  function step(name) {
    report.steps.push({ name, at_ms: Date.now() - started });
  }

  async function expect(condition, what) {
    if (!condition) throw new Error(`expected ${what}`);
  }

  async function shot(page, name) {
    const path = join(outDir, `${name}.png`);
    await page.screenshot({ path });
    report.screenshots.push(path);
  }

  /** Launch chromium, run body(browser), check that no page threw, report and exit. */
  async function run(body) {
    const browser = await chromium.launch({ executablePath: CHROMIUM, args: ARGS, headless: true });
    try {
      await body(browser);
      await expect(report.page_errors.length === 0, `no page error, got ${JSON.stringify(report.page_errors)}`);
      report.ok = true;
    } catch (error) {
      report.error = String(error?.stack || error);
      const pages = browser.contexts().flatMap((context) => context.pages());
      for (const [index, page] of pages.entries()) {
        await page.screenshot({ path: join(outDir, `failure-${index}.png`) }).catch(() => {});
      }
    } finally {
      report.duration_ms = Date.now() - started;
      await browser.close();
    }
    console.log(JSON.stringify(report));
    process.exit(report.ok ? 0 : 1);
  }

  return { report, step, expect, shot, run };
}
