// k6 scenario: posts a corpus made by corpus.py (one {"path","content_type","body","kind"}
// object a line), each delivery once, from VUS virtual users, and checks every answer
// against its kind: fresh deliveries and exact repeats 200, wrong secret words 401.
//
//   k6 run --no-usage-report -e CORPUS=corpus.jsonl -e BASE=http://127.0.0.1:8080 \
//     [-e VUS=64] [-e P99_MS=50] load-tests/k6/intake.js
//
// Thresholds: p99 of the webhook answers under P99_MS, and no unexpected answer. k6 exits
// 99 when one is crossed. Then run verify.py: nothing lost, nothing applied twice.
import http from 'k6/http';
import { check } from 'k6';
import { SharedArray } from 'k6/data';
import { Counter } from 'k6/metrics';
import exec from 'k6/execution';

const corpus = new SharedArray('corpus', () =>
  open(__ENV.CORPUS)
    .split('\n')
    .filter((line) => line.trim() !== '')
    .map((line) => JSON.parse(line)),
);
const base = (__ENV.BASE || 'http://127.0.0.1:8080').replace(/\/$/, '');
const unexpected = new Counter('unexpected_answers');

export const options = {
  scenarios: {
    burst: {
      executor: 'shared-iterations',
      vus: Number(__ENV.VUS || 64),
      iterations: corpus.length,
      maxDuration: '10m',
    },
  },
  thresholds: {
    'http_req_duration{scenario:burst}': [`p(99)<${Number(__ENV.P99_MS || 50)}`],
    unexpected_answers: ['count==0'],
  },
  summaryTrendStats: ['avg', 'p(50)', 'p(99)', 'max'],
};

export default function () {
  const d = corpus[exec.scenario.iterationInTest];
  const res = http.post(`${base}${d.path}`, d.body, {
    headers: { 'content-type': d.content_type },
    // The URL carries the app's token: name the request by its route instead.
    tags: { name: 'POST /webhooks/thrivecart/{token}' },
  });
  const want = d.kind === 'wrong_secret' ? 401 : 200;
  const ok = check(res, { [`${d.kind}: ${want}`]: (r) => r.status === want });
  if (!ok) {
    unexpected.add(1);
  }
}
