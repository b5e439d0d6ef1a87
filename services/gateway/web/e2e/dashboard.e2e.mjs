// Drives the dashboard in Debian's chromium with playwright-core (no browser download): edits the default agent's
// first message, makes a simulator call and sees it greet with that message, makes a call with a WAV file as the
// microphone and sees the caller's words transcribed (with the call on the Status page meanwhile), then finds that
// call in the History with its transcript. Run by tests/e2e/test_dashboard.py, which starts the stack.
//
// env: BASE_URL (gateway), MIC_WAV (speech WAV for the fake microphone), SCREENSHOTS (dir, optional),
//      FIRST_MESSAGE (the greeting to set), USER_TEXT (what the fake STT answers), CHROMIUM (default /usr/bin/chromium),
//      API_KEY (optional: stored as the dashboard's API key, as a user types it; calls then need a call token)
// Prints one JSON line {"ok":true,...} on success; exits 1 with the reason otherwise.

import { env, runInChromium, shot, STEP_MS } from './browser.mjs';

const BASE = env('BASE_URL');
const FIRST = env('FIRST_MESSAGE');
const USER_TEXT = env('USER_TEXT');

const log = (...a) => console.error('[e2e]', ...a);

runInChromium('[e2e]', { viewport: { width: 1280, height: 860 }, consoleErrors: true }, async ({ page, context, result }) => {
  // (a) edit the default agent's first message
  log('agents page');
  await page.goto(`${BASE}/agents`);
  await page.getByRole('heading', { name: /Agent “default”/ }).waitFor();
  await page.getByLabel('First message', { exact: true }).fill(FIRST);
  await page.getByRole('button', { name: 'Save agent' }).click();
  await page.getByText(/Saved — now version \d+/).waitFor();
  await shot(page, 'agents');

  // ... and a call greets with it (microphone muted: the page sends silence)
  log('simulator call with the new greeting');
  await page.getByRole('link', { name: 'Simulator' }).click();
  await page.getByRole('button', { name: 'Mute mic' }).click();
  await page.getByLabel('Agent', { exact: true }).selectOption('default');
  await page.getByRole('button', { name: 'Call' }).click();
  await page.getByTestId('call-status').getByText('In call').waitFor();
  const greeting = page.locator('li[data-role="assistant"]').filter({ hasText: FIRST });
  await greeting.first().waitFor();
  result.greetingCallId = (await page.getByTestId('call-status').locator('.font-mono').textContent())?.trim();
  await page.getByRole('button', { name: 'Hang up' }).click();
  await page.getByTestId('call-status').getByText('Call ended').waitFor();

  // (b) a call with the WAV as the microphone: the caller's words show up in the transcript
  log('simulator call with speech');
  await page.getByRole('button', { name: 'Unmute mic' }).click();
  await page.getByRole('button', { name: 'Call' }).click();
  await page.getByTestId('call-status').getByText('In call').waitFor();
  const callId = (await page.getByTestId('call-status').locator('.font-mono').textContent())?.trim();
  result.callId = callId;
  await page.locator('li[data-role="user"]').filter({ hasText: USER_TEXT }).first().waitFor({ timeout: 30000 });
  await page.locator('li[data-role="assistant"]').nth(1).waitFor({ timeout: 30000 }); // the reply
  const meter = Number(await page.getByRole('meter', { name: 'Microphone level' }).getAttribute('aria-valuenow'));
  result.latencyRows = await page.getByRole('table', { name: 'Turn latency' }).locator('tbody tr').count();
  // the speech starts 0.8 s into the file, while the greeting still plays: a barge-in the page counted
  result.bargeIns = Number((await page.getByText(/Barge-ins this call: \d+/).textContent()).match(/\d+/)[0]);

  // the Status page lists the call while it runs
  log('status page');
  const status = await context.newPage();
  status.setDefaultTimeout(STEP_MS);
  await status.goto(`${BASE}/status`);
  await status.getByRole('table', { name: 'Active calls' }).getByText(callId).waitFor();
  await status.getByRole('region', { name: 'Service stt' }).waitFor();
  await shot(status, 'status');
  await status.close();

  await shot(page, 'simulator');
  await page.getByRole('button', { name: 'Hang up' }).click();
  await page.getByTestId('call-status').getByText('Call ended').waitFor();

  // (c) the call in the History, with its transcript
  log('history');
  await page.getByRole('link', { name: 'History' }).click();
  const row = page.locator(`tr[data-call-id="${callId}"]`);
  const deadline = Date.now() + STEP_MS;
  for (;;) {
    await page.getByRole('table', { name: 'Calls' }).or(page.getByText('No calls match')).first().waitFor();
    if ((await row.count()) > 0 && !(await row.textContent()).includes('in_progress')) break;
    if (Date.now() > deadline) throw new Error(`call ${callId} not in the history`);
    await page.waitForTimeout(300);
    await page.getByRole('button', { name: 'Refresh' }).click();
  }
  await shot(page, 'history');
  await row.getByRole('link', { name: callId }).click();
  const transcript = page.getByRole('list', { name: 'Transcript' });
  await transcript.locator('li[data-role="user"]').filter({ hasText: USER_TEXT }).first().waitFor();
  result.historyLines = await transcript.locator('li').count();
  result.endReason = (await page.getByTestId('end-reason').textContent())?.trim();
  await shot(page, 'call-detail');

  result.meterSeen = meter;
});
