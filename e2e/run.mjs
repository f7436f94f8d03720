// Browser tests of the web app in headless Chromium (playwright-core, Debian's chromium).
//   node e2e/run.mjs --dist dist [--server target/debug/watchdog] [--shots DIR]
// Without --server only the playground tests run; with it the dashboard is tested against
// a real `watchdog serve` on a free loopback port with a temporary state directory.
import assert from 'node:assert/strict';
import { spawnSync } from 'node:child_process';
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { launch, ROOT } from './browser.mjs';
import { serveDist } from './static.mjs';
import { startServer } from './server.mjs';
import { DEPLOY_AT, latencyStep, toCsv, toJsonl } from './data.mjs';

const args = Object.fromEntries(
  process.argv.slice(2).reduce((acc, a, i, all) => (a.startsWith('--') ? [...acc, [a.slice(2), all[i + 1]]] : acc), []),
);
const dist = path.resolve(args.dist || path.join(ROOT, 'dist'));
const shots = args.shots ? path.resolve(args.shots) : null;
if (shots) fs.mkdirSync(shots, { recursive: true });

const results = [];
async function test(name, fn) {
  const started = Date.now();
  try {
    await fn();
    results.push([name, 'ok']);
    console.log(`ok   ${name} (${Date.now() - started} ms)`);
  } catch (e) {
    results.push([name, 'FAILED']);
    console.log(`FAIL ${name}\n     ${String(e.stack || e).split('\n').slice(0, 6).join('\n     ')}`);
  }
}

function watchPage(page, errors) {
  page.on('pageerror', (e) => errors.push(`page error: ${e.message}`));
  page.on('console', (m) => {
    if (m.type() === 'error' && !/EventSource|Failed to load resource/.test(m.text())) errors.push(`console: ${m.text()}`);
  });
}

const browser = await launch();
const statik = await serveDist(dist);
let server = null;
try {
  await test('playground: a bad-deploy scenario shows a regression with charts', async () => {
    const page = await browser.newPage({ viewport: { width: 1366, height: 900 }, acceptDownloads: true });
    const errors = [];
    watchPage(page, errors);
    await page.goto(`${statik.url}/?scenario=latency_step&seed=3`);
    await page.waitForSelector('.verdict-summary [data-verdict]', { timeout: 30_000 });
    assert.equal(await page.getAttribute('.verdict-summary [data-verdict]', 'data-verdict'), 'regression');
    assert.ok((await page.locator('figure.chart-figure').count()) >= 2, 'one chart per metric');
    assert.ok(await page.locator('svg circle.detect-dot').count() >= 1, 'detection point drawn');
    assert.ok(await page.locator('svg line.threshold').count() >= 1, 'threshold drawn');
    assert.match(await page.textContent('.triage'), /Recommended action/);
    // Exports download what is on screen.
    const [md] = await Promise.all([page.waitForEvent('download'), page.click('#export-md')]);
    assert.equal(md.suggestedFilename(), 'watchdog-verdicts.md');
    assert.match(fs.readFileSync(await md.path(), 'utf8'), /regression/);
    const [js] = await Promise.all([page.waitForEvent('download'), page.click('#export-json')]);
    const doc = JSON.parse(fs.readFileSync(await js.path(), 'utf8'));
    assert.equal(doc[0].verdict.verdict, 'regression');
    assert.ok(doc[0].triage.recommended_action);
    // Changing a setting re-runs and rewrites the URL, so the link reproduces the run.
    await page.selectOption('#scenario', 'healthy');
    await page.waitForFunction(() => location.search.includes('scenario=healthy'));
    await page.waitForSelector('.verdict-summary [data-verdict="healthy"], .verdict-summary [data-verdict="inconclusive"]');
    await page.fill('#far', '0.02');
    await page.press('#far', 'Tab');
    await page.waitForFunction(() => location.search.includes('far=0.02'));
    const link = page.url();
    const again = await browser.newPage();
    await again.goto(link);
    await again.waitForSelector('.verdict-summary [data-verdict]');
    assert.equal(await again.inputValue('#far'), '0.02');
    assert.equal(await again.inputValue('#scenario'), 'healthy');
    await again.close();
    if (shots) await page.screenshot({ path: path.join(shots, 'playground-healthy.png'), fullPage: true });
    assert.deepEqual(errors, []);
    await page.close();
  });

  await test('playground: canary against stable, side by side', async () => {
    const page = await browser.newPage({ viewport: { width: 1366, height: 900 } });
    const errors = [];
    watchPage(page, errors);
    await page.goto(`${statik.url}/?scenario=canary_bad`);
    await page.waitForSelector('.verdict-summary [data-verdict]', { timeout: 30_000 });
    assert.equal(await page.getAttribute('.verdict-summary [data-verdict]', 'data-verdict'), 'regression');
    await page.waitForSelector('section.canary[data-canary-outcome="worse"]');
    assert.ok((await page.locator('svg.pair-chart polyline.canary').count()) >= 1, 'both versions drawn');
    assert.match(await page.textContent('section.canary'), /v1\.4\.2.*v1\.4\.1/s);
    // A shared dependency outage hits both versions: healthy against the concurrent stable.
    await page.selectOption('#scenario', 'canary_shared_outage');
    await page.waitForSelector('section.canary[data-canary-outcome="sharedshift"]', { timeout: 30_000 });
    assert.equal(await page.getAttribute('.verdict-summary [data-verdict]', 'data-verdict'), 'healthy');
    assert.match(await page.textContent('section.canary'), /before\/after alone: regression/);
    if (shots) await page.screenshot({ path: path.join(shots, 'playground-canary.png'), fullPage: true });
    assert.deepEqual(errors, []);
    await page.close();
  });

  await test('playground: usable by keyboard alone', async () => {
    const page = await browser.newPage({ viewport: { width: 1366, height: 900 } });
    await page.goto(`${statik.url}/?scenario=overlapping_deploys`);
    await page.waitForSelector('.verdict-summary [data-verdict]');
    // The first Tab reaches the skip link; Tabs then reach the scenario picker.
    await page.keyboard.press('Tab');
    assert.equal(await page.evaluate(() => document.activeElement.className), 'skip');
    for (let i = 0; i < 15 && (await page.evaluate(() => document.activeElement.id)) !== 'scenario'; i++) {
      await page.keyboard.press('Tab');
    }
    assert.equal(await page.evaluate(() => document.activeElement.id), 'scenario');
    // One tab per deploy; Enter on the second shows the second deploy.
    const tab = page.locator('.tabs button').nth(1);
    await tab.focus();
    await page.keyboard.press('Enter');
    await page.waitForFunction(() => document.querySelectorAll('.tabs button')[1]?.getAttribute('aria-selected') === 'true');
    assert.match(await page.textContent('.verdict-summary'), /search/);
    // Every form control has a label.
    const unlabelled = await page.$$eval('input, select, textarea', (els) =>
      els.filter((e) => !(e.labels && e.labels.length) && !e.getAttribute('aria-label')).map((e) => e.id || e.name));
    assert.deepEqual(unlabelled, []);
    await page.close();
  });

  await test('playground: loaded CSV metrics and JSONL deploys replay', async () => {
    const page = await browser.newPage({ viewport: { width: 1366, height: 900 } });
    const errors = [];
    watchPage(page, errors);
    await page.goto(`${statik.url}/?scenario=healthy`);
    await page.waitForSelector('.verdict-summary [data-verdict]');
    const { samples, deploys } = latencyStep({ deployId: 'upload-v9' });
    await page.setInputFiles('#files', [
      { name: 'metrics.csv', mimeType: 'text/csv', buffer: Buffer.from(toCsv(samples)) },
      { name: 'deploys.jsonl', mimeType: 'application/x-ndjson', buffer: Buffer.from(toJsonl(deploys)) },
    ]);
    await page.waitForSelector('#loaded-files');
    assert.match(await page.textContent('#loaded-files'), /540 samples, 1 deploys/);
    await page.waitForFunction(() => document.querySelector('.verdict-summary')?.textContent.includes('upload-v9'));
    assert.equal(await page.getAttribute('.verdict-summary [data-verdict]', 'data-verdict'), 'regression');
    // A malformed file is reported with its name, line and field, and nothing else is lost.
    await page.setInputFiles('#files', [
      { name: 'bad.csv', mimeType: 'text/csv', buffer: Buffer.from('timestamp,p95_latency_ms\n2026-03-30T11:00:00Z,fast\n') },
    ]);
    await page.waitForSelector('[role="alert"]');
    assert.match(await page.textContent('[role="alert"]'), /bad\.csv: line 2: field `p95_latency_ms`/);
    assert.match(await page.textContent('.verdict-summary'), /upload-v9/);
    assert.deepEqual(errors, []);
    await page.close();
  });

  const bin = args.server;
  if (bin) {
    const token = 'e2e-token-' + process.pid;
    server = await startServer({ bin, dist, token });
    const post = async (what, body) => {
      const r = await fetch(`${server.url}/api/v1/${what}`, {
        method: 'POST',
        headers: { 'content-type': 'application/json', authorization: `Bearer ${token}` },
        body: typeof body === 'string' ? body : JSON.stringify(body),
      });
      assert.ok(r.ok, `POST ${what}: ${r.status} ${await r.text()}`);
    };
    // The bad deploy: the core's latency_step scenario written by `watchdog simulate`,
    // sent as NDJSON, deploy first.
    const sim = fs.mkdtempSync(path.join(os.tmpdir(), 'watchdog-sim-'));
    const done = spawnSync(bin, ['simulate', '--scenario', 'latency_step', '--seed', '11', '--out', sim], { encoding: 'utf8' });
    assert.equal(done.status, 0, `watchdog simulate failed: ${done.stderr}`);
    const read = (f) => fs.readFileSync(path.join(sim, f), 'utf8');
    const firstDeploy = JSON.parse(read('deploys.jsonl').split('\n')[0]);
    const service = firstDeploy.service;
    const deployId = firstDeploy.deploy_id;
    await post('deploys', read('deploys.jsonl'));
    await post('metrics', read('metrics.jsonl'));
    if (fs.existsSync(path.join(sim, 'logs.jsonl')) && read('logs.jsonl').trim()) await post('logs', read('logs.jsonl'));
    fs.rmSync(sim, { recursive: true, force: true });
    let incidentId = null;
    for (let i = 0; i < 100 && incidentId === null; i++) {
      const list = await (await fetch(`${server.url}/api/v1/incidents?service=${service}`)).json();
      if (list.items?.length) incidentId = list.items[0].id;
      else await new Promise((r) => setTimeout(r, 200));
    }

    await test('dashboard: lists the incident created through the API', async () => {
      assert.notEqual(incidentId, null, 'the server opened an incident for the bad deploy');
      const page = await browser.newPage({ viewport: { width: 1366, height: 900 } });
      await page.goto(`${server.url}/incidents`);
      await page.waitForSelector('.incident-item');
      assert.ok((await page.textContent('.incident-list')).includes(deployId));
      await page.fill('#q', 'no-such-incident-xyz');
      await page.press('#q', 'Enter');
      await page.waitForSelector('.empty');
      // Filters live in the URL: a reload (or a shared link) keeps them.
      await page.selectOption('#status', 'open');
      await page.waitForFunction(() => location.search.includes('status=open') && location.search.includes('q=no-such-incident-xyz'));
      await page.reload();
      await page.waitForSelector('.empty');
      assert.equal(await page.inputValue('#q'), 'no-such-incident-xyz');
      assert.equal(await page.inputValue('#status'), 'open');
      await page.close();
    });

    await test('dashboard: a saved note is still there after a reload', async () => {
      const page = await browser.newPage({ viewport: { width: 1366, height: 900 } });
      await page.goto(`${server.url}/incidents/${incidentId}`);
      await page.waitForSelector('#incident-title');
      // Without the token the write is refused, and the page says so.
      await page.fill('#note-text', 'first look: latency only');
      await page.click('.note-form button[type=submit]');
      await page.waitForSelector('[role="alert"]');
      assert.match(await page.textContent('[role="alert"]'), /401|403|token/i);
      await page.click('details.token summary');
      await page.fill('#api-token', token);
      await page.click('details.token button[type=submit]');
      await page.fill('#note-author', 'e2e');
      const note = `rolled back ${deployId} at 12:10`;
      await page.fill('#note-text', note);
      await page.click('.note-form button[type=submit]');
      await page.waitForFunction((n) => document.querySelector('.notes')?.textContent.includes(n), note);
      await page.reload();
      await page.waitForSelector('.notes .note');
      assert.ok((await page.textContent('.notes')).includes(note));
      await page.close();
    });

    await test('dashboard: a status change shows in the audit trail', async () => {
      const page = await browser.newPage({ viewport: { width: 1366, height: 900 } });
      await page.goto(`${server.url}/incidents/${incidentId}`);
      await page.waitForSelector('#incident-title');
      // A fresh browser context: the token goes in again through the header field.
      await page.click('details.token summary');
      await page.fill('#api-token', token);
      await page.press('#api-token', 'Enter');
      await page.click('button[data-status="acknowledged"]');
      await page.waitForFunction(() => /acknowledged/i.test(document.querySelector('.audit')?.textContent || ''));
      await page.waitForSelector('.tag.status-acknowledged');
      await page.reload();
      await page.waitForSelector('.audit li');
      assert.match(await page.textContent('.audit'), /acknowledged/i);
      await page.waitForSelector('figure.chart-figure', { timeout: 10_000 });
      const [md] = await Promise.all([page.waitForEvent('download'), page.click('text=Export Markdown')]);
      assert.equal(md.suggestedFilename(), `incident-${incidentId}.md`);
      assert.ok(fs.readFileSync(await md.path(), 'utf8').includes(deployId));
      if (shots) await page.screenshot({ path: path.join(shots, 'incident.png'), fullPage: true });
      await page.close();
    });

    await test('dashboard: a new incident appears live, without a reload', async () => {
      const page = await browser.newPage({ viewport: { width: 1366, height: 900 } });
      await page.goto(`${server.url}/incidents`);
      await page.waitForSelector('.incident-item');
      await page.waitForSelector('.live-open', { timeout: 10_000 });
      // Later than everything sent so far: the server's clock is the data's event time, and
      // samples behind its watermark are late.
      const more = latencyStep({ service: 'search', deployId: 'search-v8.2.0', seed: 5, deployAt: DEPLOY_AT + 3 * 3600_000 });
      await post('deploys', more.deploys);
      await post('metrics', more.samples);
      await page.waitForFunction(() => document.querySelector('.incident-list')?.textContent.includes('search-v8.2.0'), null, { timeout: 15_000 });
      await page.close();
    });

    await test('dashboard: the deploy history shows the verdict', async () => {
      const page = await browser.newPage();
      await page.goto(`${server.url}/deploys`);
      await page.waitForSelector('table.deploys');
      const row = page.locator('table.deploys tr', { hasText: deployId });
      assert.match(await row.textContent(), /regression/);
      await page.close();
    });

    await test('dashboard: a canary deploy shows both versions on its deploy and incident pages', async () => {
      // Six hours after everything sent so far (event time is the data's).
      const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'watchdog-canary-'));
      const sim = spawnSync(bin, ['simulate', '--scenario', 'canary_bad', '--prefix', 'canary-', '--shift-secs', '21600', '--out', dir], { encoding: 'utf8' });
      assert.equal(sim.status, 0, `watchdog simulate failed: ${sim.stderr}`);
      await post('deploys', fs.readFileSync(path.join(dir, 'deploys.jsonl'), 'utf8'));
      await post('metrics', fs.readFileSync(path.join(dir, 'metrics.jsonl'), 'utf8'));
      fs.rmSync(dir, { recursive: true, force: true });
      let row = null;
      for (let i = 0; i < 100 && !(row && row.incident_id); i++) {
        const list = await (await fetch(`${server.url}/api/v1/deploys?service=canary-checkout`)).json();
        row = list.items?.[0] ?? null;
        if (!(row && row.incident_id)) await new Promise((r) => setTimeout(r, 200));
      }
      assert.ok(row && row.incident_id, 'the bad canary opened an incident');
      const page = await browser.newPage({ viewport: { width: 1366, height: 900 } });
      await page.goto(`${server.url}/deploys`);
      await page.click(`table.deploys a[href="/deploys/${row.id}"]`);
      await page.waitForSelector('section.canary[data-canary-outcome="worse"]');
      assert.ok((await page.locator('table.canary-table tbody tr').count()) >= 1);
      await page.goto(`${server.url}/incidents/${row.incident_id}`);
      await page.waitForSelector('section.canary svg.pair-chart');
      if (shots) await page.screenshot({ path: path.join(shots, 'incident-canary.png'), fullPage: true });
      await page.close();
    });
  } else {
    console.log('skip dashboard tests: no --server binary given');
  }
} finally {
  await browser.close();
  statik.close();
  if (server) await server.stop();
}
const failed = results.filter(([, r]) => r !== 'ok').length;
console.log(`\n${results.length - failed} passed, ${failed} failed`);
process.exit(failed ? 1 : 0);
