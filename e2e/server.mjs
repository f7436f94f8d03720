// Starts a real `watchdog serve` for the dashboard tests: a free loopback port, a fresh
// state directory, an API token, the data's event time as its clock. stop() ends it.
import { spawn } from 'node:child_process';
import fs from 'node:fs';
import net from 'node:net';
import os from 'node:os';
import path from 'node:path';

function freePort() {
  return new Promise((resolve, reject) => {
    const s = net.createServer();
    s.listen(0, '127.0.0.1', () => {
      const { port } = s.address();
      s.close(() => resolve(port));
    });
    s.on('error', reject);
  });
}

export async function startServer({ bin, dist, token }) {
  const port = await freePort();
  const state = fs.mkdtempSync(path.join(os.tmpdir(), 'watchdog-e2e-'));
  const log = fs.openSync(path.join(state, 'server.log'), 'w');
  const child = spawn(bin, ['serve'], {
    env: {
      ...process.env,
      WATCHDOG_LISTEN: `127.0.0.1:${port}`,
      WATCHDOG_STATE_DIR: state,
      WATCHDOG_WEB_DIR: dist,
      WATCHDOG_API_TOKEN: token,
      WATCHDOG_CLOCK: 'data',
      RUST_LOG: process.env.RUST_LOG || 'info',
    },
    stdio: ['ignore', log, log],
  });
  const url = `http://127.0.0.1:${port}`;
  const stop = async () => {
    if (child.exitCode === null) {
      child.kill('SIGTERM');
      await new Promise((r) => { child.once('exit', r); setTimeout(r, 5000); });
    }
    if (!process.env.KEEP_STATE) fs.rmSync(state, { recursive: true, force: true });
  };
  for (let i = 0; i < 150; i++) {
    if (child.exitCode !== null) break;
    try {
      if ((await fetch(`${url}/healthz`)).ok) return { url, stop, state };
    } catch { /* not up yet */ }
    await new Promise((r) => setTimeout(r, 100));
  }
  const out = fs.readFileSync(path.join(state, 'server.log'), 'utf8');
  await stop();
  throw new Error(`watchdog serve did not come up on ${url}:\n${out}`);
}
