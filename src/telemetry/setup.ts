import { context, metrics, propagation, trace } from '@opentelemetry/api';
import { AsyncLocalStorageContextManager } from '@opentelemetry/context-async-hooks';
import { W3CTraceContextPropagator } from '@opentelemetry/core';
import { PrometheusExporter, PrometheusSerializer } from '@opentelemetry/exporter-prometheus';
import { resourceFromAttributes } from '@opentelemetry/resources';
import { MeterProvider, PeriodicExportingMetricReader, type MetricReader } from '@opentelemetry/sdk-metrics';
import { BasicTracerProvider, BatchSpanProcessor, SimpleSpanProcessor, type SpanExporter, type SpanProcessor } from '@opentelemetry/sdk-trace-base';

/**
 * Where georeg's traces and metrics go, decided once per process from the environment:
 *
 * - metrics are always kept in memory and served as Prometheus text at `GET /api/metrics`
 *   (counters and histograms cost an addition each);
 * - `OTEL_EXPORTER_OTLP_ENDPOINT` set: traces and metrics also go to that OTLP/HTTP collector
 *   (the standard OTEL_* variables apply: headers, protocol paths, service name);
 * - `APPLICATIONINSIGHTS_CONNECTION_STRING` set: traces and metrics also go to Application
 *   Insights through `@azure/monitor-opentelemetry` (which then owns the global providers);
 * - neither, and no exporter given by a test: no tracer provider is registered, so every span
 *   call below is the API's no-op and tracing costs nothing.
 */

export interface TelemetryOptions {
  env?: Record<string, string | undefined>;
  /** Extra span exporter (tests: an InMemorySpanExporter), exported span by span. */
  spanExporter?: SpanExporter;
}

export interface Telemetry {
  tracing: boolean;
  exporters: string[];
  /** The in-memory metrics as Prometheus text exposition format. */
  prometheusText(): Promise<string>;
}

let started: Telemetry | undefined;

export function telemetry(): Telemetry | undefined {
  return started;
}

/** Idempotent: the first call in a process decides (but for a span exporter given later). */
export function startTelemetry(options: TelemetryOptions = {}): Telemetry {
  if (started) {
    // A span exporter given after a start without tracing (a test sharing its process with
    // others that started a runtime first): tracing starts now, through that exporter.
    if (options.spanExporter && !started.tracing) {
      trace.setGlobalTracerProvider(new BasicTracerProvider({ resource: resourceFor(options.env ?? process.env), spanProcessors: [new SimpleSpanProcessor(options.spanExporter)] }));
      started.tracing = true;
      started.exporters.push('span exporter (given)');
    }
    return started;
  }
  const env = options.env ?? process.env;
  const resource = resourceFor(env);

  // The reader behind /api/metrics: it never starts its own HTTP server.
  const prometheus = new PrometheusExporter({ preventServerStart: true, withoutScopeInfo: true });
  const readers: MetricReader[] = [prometheus];
  const processors: SpanProcessor[] = [];
  const exporters: string[] = ['prometheus (/api/metrics)'];
  if (options.spanExporter) {
    processors.push(new SimpleSpanProcessor(options.spanExporter));
    exporters.push('span exporter (given)');
  }
  if (env.OTEL_EXPORTER_OTLP_ENDPOINT) {
    // Loaded only when wanted (~0.1 s of every process start otherwise).
    // eslint-disable-next-line @typescript-eslint/no-require-imports
    const { OTLPTraceExporter } = require('@opentelemetry/exporter-trace-otlp-http') as typeof import('@opentelemetry/exporter-trace-otlp-http');
    // eslint-disable-next-line @typescript-eslint/no-require-imports
    const { OTLPMetricExporter } = require('@opentelemetry/exporter-metrics-otlp-http') as typeof import('@opentelemetry/exporter-metrics-otlp-http');
    processors.push(new BatchSpanProcessor(new OTLPTraceExporter()));
    readers.push(new PeriodicExportingMetricReader({ exporter: new OTLPMetricExporter(), exportIntervalMillis: 30_000 }));
    exporters.push(`otlp (${env.OTEL_EXPORTER_OTLP_ENDPOINT})`);
  }

  if (env.APPLICATIONINSIGHTS_CONNECTION_STRING) {
    // Loaded only when wanted: it brings the Node SDK and the Azure SDK's own instrumentation.
    // eslint-disable-next-line @typescript-eslint/no-require-imports
    const { useAzureMonitor } = require('@azure/monitor-opentelemetry') as typeof import('@azure/monitor-opentelemetry');
    useAzureMonitor({ azureMonitorExporterOptions: { connectionString: env.APPLICATIONINSIGHTS_CONNECTION_STRING }, resource, spanProcessors: processors, metricReaders: readers });
    exporters.push('azure monitor (APPLICATIONINSIGHTS_CONNECTION_STRING)');
  } else {
    context.setGlobalContextManager(new AsyncLocalStorageContextManager().enable());
    propagation.setGlobalPropagator(new W3CTraceContextPropagator());
    metrics.setGlobalMeterProvider(new MeterProvider({ resource, readers }));
    if (processors.length) trace.setGlobalTracerProvider(new BasicTracerProvider({ resource, spanProcessors: processors }));
  }

  const serializer = new PrometheusSerializer();
  started = {
    tracing: processors.length > 0 || Boolean(env.APPLICATIONINSIGHTS_CONNECTION_STRING),
    exporters,
    async prometheusText() {
      const { resourceMetrics } = await prometheus.collect();
      return serializer.serialize(resourceMetrics);
    },
  };
  return started;
}

function resourceFor(env: Record<string, string | undefined>) {
  const serviceName = env.OTEL_SERVICE_NAME ?? (env.REGION_NAME ? `georeg-${env.REGION_NAME}` : 'georeg');
  return resourceFromAttributes({ 'service.name': serviceName, 'service.namespace': 'georeg', ...(env.REGION_NAME ? { 'cloud.region': env.REGION_NAME } : {}) });
}
