import { EntityRequestError } from './errors';
import type { AmqpMessage } from './messages';
import { compileSqlAction, compileSqlFilter, type FilterInput, type SqlAssignment } from './sql-filter';
import type { RuleConfig } from './topology';

/**
 * Subscription rules: a SQL or correlation filter compiled once into a predicate over a message's
 * application and system properties, and an optional SQL action that gives the subscription its
 * own annotated copy. A rule that cannot work (bad SQL, an unknown system property) is refused
 * when it is created, never when a message arrives.
 */

export type Filter = (input: FilterInput) => boolean;

export interface Rule {
  name: string;
  config: RuleConfig;
  filter: Filter;
  /** A SQL rule action: the subscription gets its own annotated copy for this rule. */
  action?: (message: AmqpMessage) => AmqpMessage;
  createdAt: Date;
}

/** A subscription created without rules gets the $Default rule, which matches everything. */
export const DEFAULT_RULE: RuleConfig = { Name: '$Default', Properties: { FilterType: 'Sql', SqlFilter: { SqlExpression: '1=1' } } };

/** Broker (system) properties by the names filters and actions use, and where AMQP carries them. */
const SYSTEM_PROPERTIES = {
  MessageId: 'message_id',
  CorrelationId: 'correlation_id',
  Label: 'subject',
  Subject: 'subject',
  ContentType: 'content_type',
  To: 'to',
  ReplyTo: 'reply_to',
  SessionId: 'group_id',
  ReplyToSessionId: 'reply_to_group_id',
} as const;

export function filterInput(m: AmqpMessage): FilterInput {
  const str = (v: unknown) => (v === undefined || v === null ? undefined : Buffer.isBuffer(v) ? v.toString('hex') : String(v));
  const system: Record<string, unknown> = {};
  for (const [name, field] of Object.entries(SYSTEM_PROPERTIES)) system[name] = str(m[field]);
  return { application: (m.application_properties ?? {}) as Record<string, unknown>, system };
}

function systemField(ruleName: string, name: string): (typeof SYSTEM_PROPERTIES)[keyof typeof SYSTEM_PROPERTIES] {
  const field = Object.entries(SYSTEM_PROPERTIES).find(([known]) => known.toLowerCase() === name.toLowerCase())?.[1];
  if (!field) throw new EntityRequestError('bad-request', `rule ${ruleName}: sys.${name} is not a system property an action can set (use one of ${Object.keys(SYSTEM_PROPERTIES).join(', ')})`);
  return field;
}

function applyAction(message: AmqpMessage, ruleName: string, assignments: SqlAssignment[]): AmqpMessage {
  const copy: AmqpMessage = { ...message, application_properties: { ...message.application_properties } };
  const app = copy.application_properties!;
  for (const a of assignments) {
    if (a.scope === 'sys') {
      const field = systemField(ruleName, a.name);
      if (a.op === 'remove' || a.value === null) delete copy[field];
      else copy[field] = String(a.value);
    } else if (a.op === 'remove') delete app[a.name];
    else app[a.name] = a.value;
  }
  app.RuleName = ruleName;
  return copy;
}

export function compileRule(config: RuleConfig): Rule {
  const actionText = config.Properties.Action?.SqlExpression?.trim();
  const assignments = actionText ? compileSqlAction(actionText) : undefined;
  // A bad system property name is refused when the rule is created, not when a message arrives.
  for (const a of assignments ?? []) if (a.scope === 'sys') systemField(config.Name, a.name);
  return {
    name: config.Name,
    config,
    filter: compileFilter(config),
    action: assignments ? (m) => applyAction(m, config.Name, assignments) : undefined,
    createdAt: new Date(),
  };
}

function compileFilter(config: RuleConfig): Filter {
  const p = config.Properties;
  if (p.FilterType === 'Sql') return compileSqlFilter(p.SqlFilter!.SqlExpression);
  const c = p.CorrelationFilter!;
  const system: Array<[string, string | undefined]> = [
    ['ContentType', c.ContentType],
    ['CorrelationId', c.CorrelationId],
    ['Label', c.Label],
    ['MessageId', c.MessageId],
    ['ReplyTo', c.ReplyTo],
    ['ReplyToSessionId', c.ReplyToSessionId],
    ['SessionId', c.SessionId],
    ['To', c.To],
  ];
  const wanted = system.filter(([, v]) => v !== undefined && v !== '');
  const props = Object.entries(c.Properties ?? {});
  // A correlation filter matches when every property it names is equal (and it names at least one).
  return (input) =>
    (wanted.length > 0 || props.length > 0) &&
    wanted.every(([k, v]) => input.system[k] === v) &&
    props.every(([k, v]) => input.application[k] === v);
}
