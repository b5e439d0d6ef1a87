// What the dashboard's browser tests (dashboard.e2e.mjs, agent_actions.e2e.mjs) share: env lookup, screenshots,
// and a run in Debian's chromium through playwright-core (no browser download) with MIC_WAV as the microphone.
//
// env: BASE_URL (gateway), MIC_WAV (speech WAV for the fake microphone), CHROMIUM (default /usr/bin/chromium),
//      API_KEY (optional: stored as the dashboard's API key, as a user types it; calls then need a call token),
//      SCREENSHOTS (dir, optional), FAILURE_SCREENSHOT (file, optional), STEP_TIMEOUT_MS (default 20000)

import { mkdirSync } from 'node:fs';
import { join } from 'node:path';

import { chromium } from 'playwright-core';

export const env = (name, fallback) => {
  const v = process.env[name] ?? fallback;
  if (v === undefined) throw new Error(`set ${name}`);
  return v;
};
export const STEP_MS = Number(process.env.STEP_TIMEOUT_MS ?? 20000);

export async function shot(page, name) {
  const dir = process.env.SCREENSHOTS || '';
  if (!dir) return;
  mkdirSync(dir, { recursive: true });
  await page.screenshot({ path: join(dir, `${name}.png`), fullPage: true });
}

async function inChromium({ viewport, consoleErrors }, steps) {
  const base = env('BASE_URL');
  const args = [
    '--use-fake-ui-for-media-stream',
    '--use-fake-device-for-media-stream',
    `--use-file-for-fake-audio-capture=${env('MIC_WAV')}`,
    '--autoplay-policy=no-user-gesture-required',
    '--disable-gpu',
    '--disable-dev-shm-usage',
  ];
  if (typeof process.getuid === 'function' && process.getuid() === 0) args.push('--no-sandbox');
  const browser = await chromium.launch({ executablePath: env('CHROMIUM', '/usr/bin/chromium'), headless: true, args });
  const result = { ok: false };
  let page;
  try {
    const context = await browser.newContext({ viewport });
    await context.grantPermissions(['microphone'], { origin: base });
    if (process.env.API_KEY) {
      await context.addInitScript((key) => window.localStorage.setItem('victoria.apiKey', key), process.env.API_KEY);
    }
    page = await context.newPage();
    const problems = [];
    page.on('pageerror', (e) => problems.push(`page error: ${e.message}`));
    if (consoleErrors) page.on('console', (m) => m.type() === 'error' && problems.push(`console: ${m.text()}`));
    page.setDefaultTimeout(STEP_MS);
    await steps({ page, context, result });
    result.problems = problems;
    result.ok = true;
  } catch (err) {
    if (page && process.env.FAILURE_SCREENSHOT) await page.screenshot({ path: process.env.FAILURE_SCREENSHOT, fullPage: true }).catch(() => {});
    throw err;
  } finally {
    await browser.close();
  }
  console.log(JSON.stringify(result));
}

/**
 * Runs `steps({ page, context, result })` in a new chromium page (`viewport`; `consoleErrors`: console errors count
 * as problems, like page errors), then prints `result` as one JSON line with `ok: true` and the problems seen; on a
 * failure prints `<tag> FAILED: ...` and exits 1.
 */
export function runInChromium(tag, options, steps) {
  inChromium(options, steps).catch((err) => {
    console.error(`${tag} FAILED: ${err?.stack ?? err}`);
    process.exit(1);
  });
}
