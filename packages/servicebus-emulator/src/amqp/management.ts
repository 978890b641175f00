import { randomUUID } from 'node:crypto';
import * as rhea from 'rhea';
import { LockLostError, type AmqpMessage, type MessageStore } from '../messages';
import type { Namespace, ResolvedEntity } from '../namespace';
import { bytesToUuid, longArray, outgoing, scheduledEnqueueTime, toArray, toNumber, uuidToBytes } from './codec';
import { decodeMessage, encodeMessage } from './rhea-adapter';

/**
 * Request/response on `<entity>/$management`: the operations the @azure/service-bus SDK sends
 * there, one handler each. An operation not in the table is answered 501 (not implemented) with
 * its name, so a client learns which call the emulator lacks.
 */

export interface ManagementResponse {
  status: number;
  description?: string;
  condition?: string;
  body?: unknown;
}

interface ManagementRequest {
  path: string;
  entity: ResolvedEntity;
  body: Record<string, unknown>;
}

type Handler = (request: ManagementRequest) => ManagementResponse;

const OPERATIONS = new Map<string, Handler>([
  ['com.microsoft:peek-message', peek],
  ['com.microsoft:renew-lock', renewLock],
  ['com.microsoft:schedule-message', schedule],
  ['com.microsoft:cancel-scheduled-message', cancelScheduled],
  ['com.microsoft:receive-by-sequence-number', receiveDeferred],
  ['com.microsoft:update-disposition', updateDisposition],
]);

export function management(ns: Namespace, path: string, request: AmqpMessage, notFound: (path: string) => string): ManagementResponse {
  const operation = String(request.application_properties?.operation ?? '');
  const entity = ns.resolve(path);
  if (!entity) return { status: 404, condition: 'amqp:not-found', description: notFound(path) };
  const handler = OPERATIONS.get(operation);
  if (!handler) return { status: 501, condition: 'amqp:not-implemented', description: `the Service Bus emulator does not implement ${operation}` };
  try {
    return handler({ path, entity, body: (request.body ?? {}) as Record<string, unknown> });
  } catch (e) {
    if (e instanceof LockLostError) return { status: 410, condition: e.condition, description: e.message };
    throw e;
  }
}

function peek({ path, entity, body }: ManagementRequest): ManagementResponse {
  if (!entity.store) return { status: 400, description: `cannot peek a topic (${path}): peek a subscription` };
  const entries = entity.store.peek(toNumber(body['from-sequence-number']), toNumber(body['message-count']) || 1);
  if (!entries.length) return { status: 204, description: 'No messages' };
  return { status: 200, body: { messages: entries.map((e) => ({ message: encodeMessage(outgoing(e, true)) })) } };
}

function renewLock({ path, entity, body }: ManagementRequest): ManagementResponse {
  const store = requireStore(entity, path);
  const tokens = toArray(body['lock-tokens']).map(bytesToUuid);
  return { status: 200, body: { expirations: tokens.map((t) => new Date(store.renewLock(t))) } };
}

function schedule({ path, entity, body }: ManagementRequest): ManagementResponse {
  const target = entity.sendable;
  if (!target) return { status: 400, description: `cannot schedule on ${path}: send to a queue or topic` };
  const seqs: number[] = [];
  for (const item of toArray(body.messages) as Array<Record<string, unknown>>) {
    const encoded = item.message as Buffer;
    const m = decodeMessage(encoded);
    if (m.message_id === undefined || m.message_id === null) m.message_id = String(item['message-id'] ?? randomUUID().replace(/-/g, ''));
    if (encoded.length > target.maxMessageBytes) return { status: 413, condition: 'amqp:link:message-size-exceeded', description: `message of ${encoded.length} bytes exceeds ${target.maxMessageBytes}` };
    seqs.push(target.send(m, encoded.length, scheduledEnqueueTime(m)).seq);
  }
  return { status: 200, body: { 'sequence-numbers': longArray(seqs) } };
}

function cancelScheduled({ path, entity, body }: ManagementRequest): ManagementResponse {
  if (!entity.sendable) return { status: 400, description: `cannot cancel on ${path}` };
  entity.sendable.cancelScheduled(toArray(body['sequence-numbers']).map(toNumber));
  return { status: 200 };
}

function receiveDeferred({ path, entity, body }: ManagementRequest): ManagementResponse {
  const store = requireStore(entity, path);
  const receiveAndDelete = toNumber(body['receiver-settle-mode']) === 0;
  const found = store.receiveDeferred(toArray(body['sequence-numbers']).map(toNumber), receiveAndDelete);
  if (!found.length) return { status: 404, condition: 'com.microsoft:message-not-found', description: 'The requested deferred messages were not found.' };
  return {
    status: 200,
    body: {
      messages: found.map(({ entry, token }) => ({
        message: encodeMessage(outgoing(entry)),
        ...(token ? { 'lock-token': rhea.types.wrap_uuid(uuidToBytes(token)) } : {}),
      })),
    },
  };
}

function updateDisposition({ path, entity, body }: ManagementRequest): ManagementResponse {
  const store = requireStore(entity, path);
  const status = String(body['disposition-status']);
  const props = body['properties-to-modify'] as Record<string, unknown> | undefined;
  for (const token of toArray(body['lock-tokens']).map(bytesToUuid)) {
    if (status === 'completed') store.complete(token);
    else if (status === 'abandoned') store.abandon(token, props);
    else if (status === 'defered' || status === 'deferred') store.defer(token, props);
    else if (status === 'suspended') store.deadLetter(token, body['deadletter-reason'] as string | undefined, body['deadletter-description'] as string | undefined, props);
    else return { status: 400, description: `unknown disposition-status ${status}` };
  }
  return { status: 200 };
}

function requireStore(entity: ResolvedEntity, path: string): MessageStore {
  if (!entity.store) throw new Error(`${path} is not a queue or subscription`);
  return entity.store;
}
