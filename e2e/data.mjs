// A deterministic bad deploy in the replay formats, for file replay and for the server:
// an hour of baseline every 10 s, a deploy at 12:00, and p95 latency 40 % higher from a
// minute after it.
function rng(seed) {
  let s = seed >>> 0;
  return () => {
    s = (Math.imul(s, 1664525) + 1013904223) >>> 0;
    return s / 4294967296;
  };
}

export const DEPLOY_AT = Date.parse('2026-03-30T12:00:00Z');

export function latencyStep({ service = 'checkout', environment = 'production', deployId = 'v1.4.2', seed = 7, deployAt = DEPLOY_AT } = {}) {
  const r = rng(seed);
  const gauss = () => Math.sqrt(-2 * Math.log(r() + 1e-12)) * Math.cos(2 * Math.PI * r());
  const samples = [];
  for (let i = -360; i < 180; i++) {
    const t = deployAt + i * 10_000;
    const bad = t >= deployAt + 60_000;
    samples.push({
      timestamp: new Date(t).toISOString().replace('.000Z', 'Z'),
      service, environment,
      error_rate: Math.max(0, 0.01 + 0.001 * gauss()),
      p95_latency_ms: (bad ? 280 : 200) + 8 * gauss(),
      request_rate: 1200 + 30 * gauss(),
    });
  }
  const deploys = [{ timestamp: new Date(deployAt).toISOString().replace('.000Z', 'Z'), deploy_id: deployId, service, environment }];
  return { samples, deploys };
}

export function toCsv(samples) {
  const cols = ['timestamp', 'error_rate', 'p95_latency_ms', 'request_rate'];
  return [cols.join(','), ...samples.map((s) => cols.map((c) => s[c]).join(','))].join('\n') + '\n';
}

export const toJsonl = (records) => records.map((r) => JSON.stringify(r)).join('\n') + '\n';
