// Measures the playground in headless Chromium: the time the core takes to replay a
// scenario of N samples (default 100,000) as the page reports it in #replay-ms, over
// several fresh page loads, and takes screenshots of the playground (laptop and phone).
//   node e2e/measure.mjs --dist dist [--samples 100000] [--runs 7] [--logs 0] [--shots DIR]
import fs from 'node:fs';
import path from 'node:path';
import { launch, ROOT } from './browser.mjs';
import { serveDist } from './static.mjs';

const args = Object.fromEntries(
  process.argv.slice(2).reduce((acc, a, i, all) => (a.startsWith('--') ? [...acc, [a.slice(2), all[i + 1]]] : acc), []),
);
const dist = path.resolve(args.dist || path.join(ROOT, 'dist'));
const samples = Number(args.samples || 100000);
const runs = Number(args.runs || 7);
const scenario = args.scenario || 'latency_step';
// --logs 0 replays metrics and deploys only (the scenario's log events left out).
const logs = args.logs === '0' ? '&logs=0' : '';

const statik = await serveDist(dist);
const browser = await launch();
try {
  const times = [];
  const warm = [];
  let replayed = 0;
  for (let i = 0; i < runs; i++) {
    const page = await browser.newPage();
    await page.goto(`${statik.url}/?scenario=${scenario}&samples=${samples}${logs}`);
    await page.waitForSelector('#replay-ms', { timeout: 120_000 });
    times.push(Number(await page.getAttribute('#replay-ms', 'data-ms')));
    replayed = Number(await page.textContent('#replay-samples'));
    // Further runs in the same page (new seeds): the engine's code is already compiled
    // by the browser's optimising tier.
    for (let seed = 2; seed <= 4; seed++) {
      const before = await page.getAttribute('#replay-ms', 'data-run');
      await page.fill('#seed', String(seed));
      await page.press('#seed', 'Tab');
      await page.waitForFunction((b) => document.querySelector('#replay-ms')?.getAttribute('data-run') !== b, before, { timeout: 120_000 });
      warm.push(Number(await page.getAttribute('#replay-ms', 'data-ms')));
    }
    await page.close();
  }
  const report = (label, xs) => {
    const sorted = [...xs].sort((a, b) => a - b);
    const median = sorted[Math.floor(sorted.length / 2)];
    console.log(`${label}: median ${median.toFixed(1)} ms, min ${sorted[0].toFixed(1)} ms, ` +
      `max ${sorted[sorted.length - 1].toFixed(1)} ms over ${xs.length} runs`);
  };
  console.log(`replay of ${replayed} samples (${scenario}${logs ? ', no log events' : ', with its log events'}) in Chromium, as reported by the page:`);
  report('  first run after page load', times);
  report('  later runs in the same page', warm);
  for (const f of fs.readdirSync(dist).filter((f) => f.endsWith('.wasm'))) {
    const buf = fs.readFileSync(path.join(dist, f));
    const gz = (await import('node:zlib')).gzipSync(buf, { level: 9 }).length;
    console.log(`${f}: ${buf.length} bytes raw, ${gz} bytes gzipped`);
  }
  if (args.shots) {
    fs.mkdirSync(args.shots, { recursive: true });
    for (const [name, viewport] of [['playground', { width: 1366, height: 900 }], ['playground-phone', { width: 390, height: 844 }]]) {
      const page = await browser.newPage({ viewport, deviceScaleFactor: 1 });
      await page.goto(`${statik.url}/?scenario=${scenario}`);
      await page.waitForSelector('figure.chart-figure');
      await page.screenshot({ path: path.join(args.shots, `${name}.png`), fullPage: true });
      await page.close();
    }
  }
} finally {
  await browser.close();
  statik.close();
}
