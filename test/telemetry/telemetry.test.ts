import { InMemorySpanExporter, type ReadableSpan } from '@opentelemetry/sdk-trace-base';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { generated } from '../support/images';
import { silentLogger } from '../../src/common/log';
import { startStack, type Stack } from '../support/stack';
import { startTelemetry } from '../../src/telemetry/setup';
import { pushImage, settled } from '../support/pipeline';
import { startSubscriber, type Subscriber } from '../webhooks/subscriber';

/**
 * Traces and metrics on the real stack. An in-memory span exporter sees the spans the pipeline
 * makes; one trace must run from the push notification through each region's job to each
 * webhook POST (whose `traceparent` the subscriber receives). /api/metrics must parse as
 * Prometheus text, and its counters must add up to the pushes made.
 */

const REPLICAS = ['eastus', 'westeurope'];
const spans = new InMemorySpanExporter();
let stack: Stack;
let subscriber: Subscriber;

beforeAll(async () => {
  // Test files share worker processes: a runtime started by an earlier file may have started
  // telemetry already, without tracing; the exporter given here starts it. No OTLP or Azure Monitor.
  startTelemetry({ spanExporter: spans, env: {} });
  stack = await startStack({ replicas: REPLICAS, httpPort: 0, log: silentLogger });
  subscriber = await startSubscriber();
  for (const region of REPLICAS) {
    const res = await fetch(`${stack.host.url}/api/webhooks`, {
      method: 'POST',
      headers: { 'Content-Type': 'application/json', ...stack.adminHeaders },
      body: JSON.stringify({ name: `hook${region}`, region, serviceUri: subscriber.url, actions: ['push'] }),
    });
    expect(res.status).toBe(201);
  }
}, 120_000);

afterAll(async () => {
  await subscriber?.close();
  await stack?.close();
});

const traceIdOf = (traceparent: string) => traceparent.split('-')[1];

describe('OpenTelemetry', () => {
  it('one trace runs from the push notification through every region to each webhook POST', async () => {
    const image = generated('otel/web', '1', { generate: { layers: 3, layerSize: 4096 }, seed: 'otel-trace' });
    const p = await pushImage(stack, image);
    await subscriber.waitFor(2);

    expect(spans.getFinishedSpans().map((s) => s.name)).toContain('POST /api/push');
    const root = spans.getFinishedSpans().find((s) => s.name === 'POST /api/push')!;
    const traceId = root.spanContext().traceId;
    // Each POST carries the trace (the deliver step's client span).
    for (const r of subscriber.received) expect(traceIdOf(r.headers.traceparent)).toBe(traceId);

    // The process spans end after their handler returns: wait for the last of them.
    const inTrace = () => spans.getFinishedSpans().filter((s) => s.spanContext().traceId === traceId);
    await expect.poll(() => inTrace().filter((s) => s.name === 'process webhook-deliveries').length, { timeout: 10_000 }).toBe(2);
    const named = (name: string) => inTrace().filter((s) => s.name === name);
    expect(named('georeg.plan')).toHaveLength(1);
    expect(named('send replication')).toHaveLength(1);
    expect(named('send replication')[0].attributes).toMatchObject({ 'messaging.system': 'servicebus', 'messaging.destination.name': 'replication', 'messaging.operation.type': 'send' });

    for (const region of REPLICAS) {
      const [job] = inTrace().filter((s) => s.name === `process replication/${region}`);
      expect(job.attributes).toMatchObject({
        'messaging.system': 'servicebus',
        'messaging.destination.name': 'replication',
        'messaging.destination.subscription.name': region,
        'messaging.operation.type': 'process',
        'messaging.message.id': `${p.pushId}:${region}`,
        'messaging.message.conversation_id': p.pushId,
        'georeg.outcome': 'completed',
      });
      expect(job.attributes['messaging.servicebus.message.delivery_count']).toBeTypeOf('number');
      const under = (s: ReadableSpan) => descends(s, job, inTrace());
      // 3 layers, the config and the manifest, each copied in a span of its own.
      const copies = named('georeg.copy_blob').filter(under);
      expect(copies).toHaveLength(5);
      for (const c of copies) {
        expect(c.attributes['georeg.region']).toBe(region);
        expect(c.attributes['georeg.copy.bytes']).toBe(c.attributes['georeg.blob.size']);
        expect(c.attributes['georeg.copy.method']).toBeTypeOf('string');
      }
      expect(named('georeg.commit').filter(under)).toHaveLength(1);
      expect(named('georeg.status').filter(under)).toHaveLength(1);
      expect(named('send webhook-deliveries').filter(under)).toHaveLength(1);
    }
    const deliveries = named('process webhook-deliveries');
    expect(deliveries.map((d) => d.attributes['georeg.region']).sort()).toEqual(REPLICAS);
    for (const d of deliveries) {
      expect(d.attributes).toMatchObject({ 'messaging.destination.name': 'webhook-deliveries', 'messaging.operation.type': 'process', 'georeg.outcome': 'completed' });
      const [post] = named(`POST hook${d.attributes['georeg.region']}`);
      expect(post.parentSpanContext?.spanId).toBe(d.spanContext().spanId);
    }
  });

  it('/api/metrics answers Prometheus text whose counters match the pushes made', async () => {
    const before = parsePrometheus(await metricsText());
    const images = [1, 2].map((n) => generated('otel/metrics', String(n), { generate: { layers: 2, layerSize: 2048 + n }, seed: `otel-metrics-${n}` }));
    for (const image of images) await settled(stack, (await pushImage(stack, image)).pushId, REPLICAS);
    await subscriber.waitFor(2 + 2 * REPLICAS.length);

    const blobs = images.reduce((n, i) => n + i.blobs.length + i.manifests.length, 0);
    const bytes = images.reduce((n, i) => n + [...i.blobs, ...i.manifests].reduce((s, d) => s + d.size, 0), 0);
    await expect.poll(async () => delta(parsePrometheus(await metricsText()), before, 'georeg_webhook_deliveries_total', { outcome: 'completed' }), { timeout: 10_000 }).toBe(images.length * REPLICAS.length);
    const after = parsePrometheus(await metricsText());
    for (const region of REPLICAS) {
      expect(delta(after, before, 'georeg_jobs_total', { region, outcome: 'completed' })).toBe(images.length);
      expect(delta(after, before, 'georeg_blobs_total', { region, result: 'copied' })).toBe(blobs);
      expect(delta(after, before, 'georeg_bytes_total', { region, result: 'copied' })).toBe(bytes);
      expect(delta(after, before, 'georeg_push_to_ready_count', { region })).toBe(images.length);
      expect(sum(after, 'georeg_replica_lag', { region })).toBe(0);
    }
    expect(after.types.get('georeg_jobs_total') ?? after.types.get('georeg_jobs')).toBe('counter');
    expect(after.types.get('georeg_push_to_ready')).toBe('histogram');

    const anonymous = await fetch(`${stack.host.url}/api/metrics`);
    expect(anonymous.status).toBe(401);
  });
});

function descends(span: ReadableSpan, ancestor: ReadableSpan, all: ReadableSpan[]): boolean {
  const byId = new Map(all.map((s) => [s.spanContext().spanId, s]));
  for (let s: ReadableSpan | undefined = span; s; s = byId.get(s.parentSpanContext?.spanId ?? '')) if (s === ancestor) return true;
  return false;
}

async function metricsText(): Promise<string> {
  const res = await fetch(`${stack.host.url}/api/metrics`, { headers: stack.adminHeaders });
  expect(res.status).toBe(200);
  expect(res.headers.get('content-type')).toContain('text/plain');
  return res.text();
}

interface Sample {
  name: string;
  labels: Record<string, string>;
  value: number;
}

/** The Prometheus text exposition format, strictly: anything else in the body fails the test. */
function parsePrometheus(text: string): { samples: Sample[]; types: Map<string, string> } {
  const samples: Sample[] = [];
  const types = new Map<string, string>();
  for (const line of text.split('\n')) {
    if (line === '') continue;
    const meta = /^# (HELP|TYPE) ([a-zA-Z_:][a-zA-Z0-9_:]*) (.*)$/.exec(line);
    if (meta) {
      if (meta[1] === 'TYPE') {
        expect(['counter', 'gauge', 'histogram', 'summary', 'untyped']).toContain(meta[3]);
        types.set(meta[2], meta[3]);
      }
      continue;
    }
    // Any other line starting with # is a comment in the text format (the serializer writes # UNIT).
    if (line.startsWith('#')) continue;
    const m = /^([a-zA-Z_:][a-zA-Z0-9_:]*)(?:\{(.*)\})? (\S+)(?: (-?\d+))?$/.exec(line);
    expect(m, `not a Prometheus sample line: ${line}`).not.toBeNull();
    const labels: Record<string, string> = {};
    const labelText = m![2] ?? '';
    const re = /([a-zA-Z_][a-zA-Z0-9_]*)="((?:[^"\\]|\\.)*)",?/gy;
    let consumed = 0;
    for (let l = re.exec(labelText); l; l = re.exec(labelText)) {
      labels[l[1]] = l[2].replace(/\\(.)/g, (_, c: string) => (c === 'n' ? '\n' : c));
      consumed = re.lastIndex;
    }
    expect(consumed, `bad labels in: ${line}`).toBe(labelText.length);
    const value = m![3] === '+Inf' ? Infinity : m![3] === '-Inf' ? -Infinity : Number(m![3]);
    expect(Number.isNaN(value) && m![3] !== 'NaN', `bad value in: ${line}`).toBe(false);
    samples.push({ name: m![1], labels, value });
  }
  return { samples, types };
}

function sum(parsed: { samples: Sample[] }, name: string, labels: Record<string, string>): number {
  return parsed.samples.filter((s) => s.name === name && Object.entries(labels).every(([k, v]) => s.labels[k] === v)).reduce((n, s) => n + s.value, 0);
}

function delta(after: { samples: Sample[] }, before: { samples: Sample[] }, name: string, labels: Record<string, string>): number {
  return sum(after, name, labels) - sum(before, name, labels);
}
