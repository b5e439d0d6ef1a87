// Agent actions in Debian's chromium with playwright-core, against the whole stack (tests/e2e/test_dashboard.py
// starts it): gives the default agent an HTTP tool, a transfer target and a webhook in the Agents page (a schema
// that is not JSON is refused in the browser, the API's 422 shows on the tool it names), makes a simulator call in
// which the caller's words make the fake LLM call the tool and presses keypad keys, then opens the call in the
// History: the tool turn is collapsed and expands to its arguments and result, the keys are marked as keypad
// input, and the webhook is resent from its panel until the new delivery is delivered.
//
// env: BASE_URL, MIC_WAV, USER_TEXT (what the fake STT answers), TOOL_NAME, TOOL_URL, WEBHOOK_URL, KEYS (keypad
//      keys pressed, ending with the terminator), API_KEY (optional), CHROMIUM, SCREENSHOTS (optional)
// Prints one JSON line {"ok":true,...} on success; exits 1 with the reason otherwise.

import { env, runInChromium, shot, STEP_MS } from './browser.mjs';

const BASE = env('BASE_URL');
const TOOL = env('TOOL_NAME');
const KEYS = env('KEYS');
const SCHEMA = JSON.stringify({ type: 'object', properties: { party: { type: 'integer' } }, required: ['party'] });

const log = (...a) => console.error('[e2e actions]', ...a);

/** (a) the Agents page: tools, a transfer target, the webhook; browser and API validation on the way. */
async function configureAgent(page, result) {
  await page.goto(`${BASE}/agents`);
  await page.getByRole('heading', { name: /Agent “default”/ }).waitFor();
  const tool = (n) => page.getByRole('region', { name: new RegExp(`^Tool ${n}:`) });
  await page.getByRole('button', { name: 'Add tool' }).click(); // end_call, the first built-in
  await page.getByRole('button', { name: 'Add tool' }).click(); // transfer_call
  await tool(2).getByLabel('Target 1 name').fill('Sales'); // the API wants lowercase names
  await tool(2).getByLabel('Target 1 number').fill('+34910000001');
  await page.getByRole('button', { name: 'Add tool' }).click();
  await tool(3).getByLabel('Kind').selectOption('http');
  await tool(3).getByLabel('Tool name').fill(TOOL);
  await tool(3).getByLabel('Request address').fill(env('TOOL_URL'));
  const schema = tool(3).getByLabel('Parameters (JSON schema)');
  await schema.fill(SCHEMA.slice(0, -1)); // not JSON: refused before anything is sent
  await page.getByLabel('Webhook address').fill(env('WEBHOOK_URL'));
  await page.getByRole('button', { name: 'Save agent' }).click();
  await page.getByText('The agent was not saved: fix these fields.').waitFor();
  result.schemaRefused = (await schema.getAttribute('aria-invalid')) === 'true';

  await schema.fill(SCHEMA);
  await page.getByRole('button', { name: 'Save agent' }).click();
  await tool(2).getByRole('alert').filter({ hasText: /Sales/ }).waitFor(); // the API's 422, on tool 2
  result.apiErrorOnTool = (await tool(2).getByRole('alert').textContent())?.trim();
  await shot(page, 'agent-tools-error');

  await tool(2).getByLabel('Target 1 name').fill('sales');
  await page.getByRole('button', { name: 'Save agent' }).click();
  await page.getByText(/Saved — now version \d+/).waitFor();
  await tool(3).scrollIntoViewIfNeeded();
  await shot(page, 'agent-tools');
}

/** (b) a call: the caller's words make the LLM call the tool; then keypad keys. */
async function makeCall(page, result) {
  await page.getByRole('link', { name: 'Simulator' }).click();
  await page.getByLabel('Agent', { exact: true }).selectOption('default');
  await page.getByRole('button', { name: 'Call' }).click();
  await page.getByTestId('call-status').getByText('In call').waitFor();
  result.callId = (await page.getByTestId('call-status').locator('.font-mono').textContent())?.trim();
  const transcript = page.getByRole('list', { name: 'Live transcript' });
  await transcript.locator('li[data-role="tool"]').filter({ hasText: TOOL }).first().waitFor({ timeout: 30000 });
  await page.getByRole('button', { name: 'Mute mic' }).click(); // Chrome loops the file: no more tool calls
  result.liveToolLine = (await transcript.locator('li[data-role="tool"]').first().textContent())?.trim();
  const keypad = page.getByRole('group', { name: 'Keypad' });
  for (const key of KEYS) await keypad.getByRole('button', { name: key, exact: true }).click();
  await page.getByTestId('keys-sent').getByText(`Keys pressed: ${KEYS}`).waitFor();
  // the keys are the caller's turn (terminator stripped), and the agent answers it
  const digits = KEYS.replace(/[#*]$/, '');
  const keysTurn = `li[data-role="user"]:has-text("${digits}")`;
  await transcript.locator(keysTurn).last().waitFor({ timeout: 30000 });
  await transcript.locator(`${keysTurn} ~ li[data-role="assistant"]`).first().waitFor({ timeout: 30000 });
  await shot(page, 'simulator-actions');
  await page.getByRole('button', { name: 'Hang up' }).click();
  await page.getByTestId('call-status').getByText('Call ended').waitFor();
}

/** Reloads the page until `locator` shows (the recorder writes history and deliveries a moment later). */
async function reloadUntil(page, locator, what) {
  const deadline = Date.now() + 3 * STEP_MS;
  for (;;) {
    if ((await locator.count()) > 0) return;
    if (Date.now() > deadline) throw new Error(`${what}: not shown`);
    await page.waitForTimeout(500);
    await page.reload();
    await page.getByRole('heading', { name: 'Call', exact: true }).waitFor();
  }
}

/** (c) the call's page: the tool turn, the keypad turn, the webhook and its resend. */
async function callDetail(page, result) {
  await page.goto(`${BASE}/history/${encodeURIComponent(result.callId)}`);
  await page.getByRole('heading', { name: 'Call', exact: true }).waitFor();
  const transcript = page.getByRole('list', { name: 'Transcript' });
  const toolRow = transcript.locator('li[data-role="tool"]').filter({ hasText: TOOL }).first();
  await reloadUntil(page, toolRow, 'the tool turn');
  const toggle = toolRow.getByRole('button');
  result.collapsed = (await toggle.getAttribute('aria-expanded')) === 'false' && (await toolRow.getByTestId('tool-arguments').count()) === 0;
  result.toolSummary = (await toggle.textContent())?.trim();
  await toggle.click();
  result.toolArguments = await toolRow.getByTestId('tool-arguments').textContent();
  result.toolResult = await toolRow.getByTestId('tool-result').textContent();
  result.dtmfLine = (await transcript.locator('li[data-dtmf="true"]').first().textContent())?.trim();

  const deliveries = page.getByRole('list', { name: 'Webhook deliveries' }).locator('li[data-delivery-id]');
  await reloadUntil(page, deliveries, 'the webhook delivery');
  if ((await toggle.getAttribute('aria-expanded')) === 'false') await toggle.click(); // a reload collapsed it
  await page.getByRole('button', { name: 'Resend' }).click();
  const queued = page.getByText(/Resend queued \(delivery [^)]+\)\./);
  await queued.waitFor();
  result.resentId = (await queued.textContent()).match(/delivery ([^)]+)\)/)[1];
  const resent = page.locator(`li[data-delivery-id="${result.resentId}"]`);
  await resent.waitFor(); // the page refreshed after the POST
  await page.locator(`li[data-delivery-id="${result.resentId}"][data-status="delivered"]`).waitFor({ timeout: 30000 });
  result.deliveryIds = await deliveries.evaluateAll((els) => els.map((e) => e.getAttribute('data-delivery-id')));
  await shot(page, 'call-detail-actions');
}

runInChromium('[e2e actions]', { viewport: { width: 1280, height: 900 } }, async ({ page, result }) => {
  log('agents page');
  await configureAgent(page, result);
  log('simulator call');
  await makeCall(page, result);
  log('call detail');
  await callDetail(page, result);
});
