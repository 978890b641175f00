/**
 * The SQL filter forms Service Bus subscription rules use: comparisons, AND/OR/NOT, IN, LIKE,
 * EXISTS, IS [NOT] NULL, over application properties (`region`, `user.region`) and system
 * properties (`sys.Label`, `sys.CorrelationId`, ...). A missing property compares as unknown,
 * so `region = 'x'` does not match a message without `region` — as in Azure.
 */

export type Value = string | number | boolean | null | undefined;
export interface FilterInput {
  application: Record<string, unknown>;
  system: Record<string, unknown>;
}
type Node =
  | { t: 'lit'; v: Value }
  | { t: 'prop'; scope: 'user' | 'sys'; name: string }
  | { t: 'cmp'; op: string; l: Node; r: Node }
  | { t: 'and' | 'or'; l: Node; r: Node }
  | { t: 'not'; e: Node }
  | { t: 'in'; e: Node; list: Node[]; neg: boolean }
  | { t: 'like'; e: Node; pattern: string; neg: boolean }
  | { t: 'null'; e: Node; neg: boolean }
  | { t: 'exists'; p: Node };

export class SqlFilterError extends Error {
  constructor(expression: string, reason: string, what = 'SQL filter') {
    super(`${what} "${expression}": ${reason}`);
    this.name = 'SqlFilterError';
  }
}

const TOKEN = /\s*(?:(\d+(?:\.\d+)?)|'((?:[^']|'')*)'|(<>|!=|<=|>=|=|<|>|\(|\)|,|;)|(\[[^\]]+\]|[A-Za-z_][A-Za-z0-9_.]*))/y;
type Token = { k: 'num' | 'str' | 'op' | 'id'; v: string };

function tokenize(expression: string): Token[] {
  const tokens: Token[] = [];
  TOKEN.lastIndex = 0;
  while (TOKEN.lastIndex < expression.length) {
    if (/^\s*$/.test(expression.slice(TOKEN.lastIndex))) break;
    const m = TOKEN.exec(expression);
    if (!m) throw new SqlFilterError(expression, `unexpected text at "${expression.slice(TOKEN.lastIndex, TOKEN.lastIndex + 12)}"`);
    if (m[1] !== undefined) tokens.push({ k: 'num', v: m[1] });
    else if (m[2] !== undefined) tokens.push({ k: 'str', v: m[2].replace(/''/g, "'") });
    else if (m[3] !== undefined) tokens.push({ k: 'op', v: m[3] });
    else tokens.push({ k: 'id', v: m[4] });
  }
  return tokens;
}

/** `sys.Label`, `user.region`, `[odd name]` or `region` → where the property lives and its name. */
function propertyName(token: string): { scope: 'user' | 'sys'; name: string } {
  const name = token.startsWith('[') ? token.slice(1, -1) : token;
  const dot = name.indexOf('.');
  const scope = dot > 0 ? name.slice(0, dot).toLowerCase() : '';
  if (scope === 'sys' || scope === 'user') return { scope, name: name.slice(dot + 1) };
  return { scope: 'user', name };
}

export interface SqlAssignment {
  op: 'set' | 'remove';
  scope: 'user' | 'sys';
  name: string;
  value?: Value;
}

/**
 * The simple form of a SQL rule action: `SET name = literal` and `REMOVE name` statements,
 * separated by `;` (a literal: number, 'string', TRUE, FALSE, NULL). Expressions on the right-hand
 * side are not supported and say so.
 */
export function compileSqlAction(expression: string): SqlAssignment[] {
  const tokens = tokenize(expression);
  const out: SqlAssignment[] = [];
  const fail = (reason: string) => new SqlFilterError(expression, `${reason} (the emulator supports SET name = literal and REMOVE name, separated by ;)`, 'SQL rule action');
  let i = 0;
  while (i < tokens.length) {
    const verb = tokens[i++];
    const target = tokens[i++];
    if (verb?.k !== 'id' || target?.k !== 'id') throw fail(`expected SET or REMOVE and a property name at token ${i - 1}`);
    const where = propertyName(target.v);
    if (verb.v.toUpperCase() === 'REMOVE') out.push({ op: 'remove', ...where });
    else if (verb.v.toUpperCase() === 'SET') {
      if (tokens[i]?.v !== '=') throw fail(`expected "=" after SET ${target.v}`);
      const lit = tokens[i + 1];
      i += 2;
      const upper = lit?.k === 'id' ? lit.v.toUpperCase() : '';
      const value = lit?.k === 'num' ? Number(lit.v) : lit?.k === 'str' ? lit.v : upper === 'TRUE' ? true : upper === 'FALSE' ? false : upper === 'NULL' ? null : undefined;
      if (value === undefined) throw fail(`SET ${target.v} needs a literal value`);
      out.push({ op: 'set', ...where, value });
    } else throw fail(`unknown statement "${verb.v}"`);
    if (i < tokens.length && tokens[i++].v !== ';') throw fail(`expected ";" after the statement on ${target.v}`);
  }
  if (!out.length) throw fail('no statements');
  return out;
}

export function compileSqlFilter(expression: string): (input: FilterInput) => boolean {
  const tokens = tokenize(expression);
  let i = 0;
  const peekKw = (kw: string) => tokens[i]?.k === 'id' && tokens[i].v.toUpperCase() === kw;
  const takeKw = (kw: string) => (peekKw(kw) ? (i++, true) : false);
  const takeOp = (op: string) => (tokens[i]?.k === 'op' && tokens[i].v === op ? (i++, true) : false);
  const expect = (op: string) => {
    if (!takeOp(op)) throw new SqlFilterError(expression, `expected "${op}" at token ${i + 1}`);
  };

  const operand = (): Node => {
    const tok = tokens[i++];
    if (!tok) throw new SqlFilterError(expression, 'ends too early');
    if (tok.k === 'num') return { t: 'lit', v: Number(tok.v) };
    if (tok.k === 'str') return { t: 'lit', v: tok.v };
    if (tok.k === 'op' && tok.v === '(') {
      const e = or();
      expect(')');
      return e;
    }
    if (tok.k === 'id') {
      const upper = tok.v.toUpperCase();
      if (upper === 'TRUE') return { t: 'lit', v: true };
      if (upper === 'FALSE') return { t: 'lit', v: false };
      if (upper === 'NULL') return { t: 'lit', v: null };
      return { t: 'prop', ...propertyName(tok.v) };
    }
    throw new SqlFilterError(expression, `unexpected "${tok.v}"`);
  };

  const predicate = (): Node => {
    if (takeKw('EXISTS')) {
      expect('(');
      const p = operand();
      expect(')');
      if (p.t !== 'prop') throw new SqlFilterError(expression, 'EXISTS takes a property name');
      return { t: 'exists', p };
    }
    const l = operand();
    if (takeKw('IS')) {
      const neg = takeKw('NOT');
      if (!takeKw('NULL')) throw new SqlFilterError(expression, 'expected NULL after IS');
      return { t: 'null', e: l, neg };
    }
    const neg = takeKw('NOT');
    if (takeKw('IN')) {
      expect('(');
      const list = [operand()];
      while (takeOp(',')) list.push(operand());
      expect(')');
      return { t: 'in', e: l, list, neg };
    }
    if (takeKw('LIKE')) {
      const p = operand();
      if (p.t !== 'lit' || typeof p.v !== 'string') throw new SqlFilterError(expression, 'LIKE takes a string pattern');
      return { t: 'like', e: l, pattern: p.v, neg };
    }
    if (neg) throw new SqlFilterError(expression, 'expected IN or LIKE after NOT');
    const op = tokens[i];
    if (op?.k === 'op' && ['=', '<>', '!=', '<', '>', '<=', '>='].includes(op.v)) {
      i++;
      return { t: 'cmp', op: op.v === '!=' ? '<>' : op.v, l, r: operand() };
    }
    return l;
  };
  const not = (): Node => (takeKw('NOT') ? { t: 'not', e: not() } : predicate());
  const and = (): Node => {
    let l = not();
    while (takeKw('AND')) l = { t: 'and', l, r: not() };
    return l;
  };
  const or = (): Node => {
    let l = and();
    while (takeKw('OR')) l = { t: 'or', l, r: and() };
    return l;
  };
  const ast = or();
  if (i < tokens.length) throw new SqlFilterError(expression, `unexpected "${tokens[i].v}" after the expression`);
  return (input) => evaluate(ast, input) === true;
}

/** Three-valued: undefined means unknown (a missing property). */
function evaluate(n: Node, input: FilterInput): Value {
  switch (n.t) {
    case 'lit':
      return n.v;
    case 'prop':
      return lookup(n, input);
    case 'exists':
      return lookup(n.p as Extract<Node, { t: 'prop' }>, input) !== undefined;
    case 'null': {
      const v = evaluate(n.e, input);
      const isNull = v === undefined || v === null;
      return n.neg ? !isNull : isNull;
    }
    case 'not': {
      const v = evaluate(n.e, input);
      return v === undefined ? undefined : !v;
    }
    case 'and': {
      const l = evaluate(n.l, input);
      const r = evaluate(n.r, input);
      if (l === false || r === false) return false;
      return l === undefined || r === undefined ? undefined : true;
    }
    case 'or': {
      const l = evaluate(n.l, input);
      const r = evaluate(n.r, input);
      if (l === true || r === true) return true;
      return l === undefined || r === undefined ? undefined : false;
    }
    case 'in': {
      const v = evaluate(n.e, input);
      if (v === undefined || v === null) return undefined;
      const found = n.list.some((x) => equal(v, evaluate(x, input)));
      return n.neg ? !found : found;
    }
    case 'like': {
      const v = evaluate(n.e, input);
      if (typeof v !== 'string') return undefined;
      const re = new RegExp(`^${n.pattern.replace(/[.*+?^${}()|[\]\\]/g, '\\$&').replace(/%/g, '.*').replace(/_/g, '.')}$`, 's');
      return n.neg ? !re.test(v) : re.test(v);
    }
    case 'cmp': {
      const l = evaluate(n.l, input);
      const r = evaluate(n.r, input);
      if (l === undefined || r === undefined || l === null || r === null) return undefined;
      switch (n.op) {
        case '=':
          return equal(l, r);
        case '<>':
          return !equal(l, r);
        default: {
          if (typeof l !== typeof r) return undefined;
          const a = l as number | string;
          const b = r as number | string;
          return n.op === '<' ? a < b : n.op === '>' ? a > b : n.op === '<=' ? a <= b : a >= b;
        }
      }
    }
  }
}

function equal(a: Value, b: Value): boolean {
  return a === b;
}

function lookup(p: { scope: 'user' | 'sys'; name: string }, input: FilterInput): Value {
  const source = p.scope === 'sys' ? input.system : input.application;
  const key = Object.keys(source).find((k) => k.toLowerCase() === p.name.toLowerCase());
  const v = key === undefined ? undefined : source[key];
  if (v === undefined) return undefined;
  if (v === null || typeof v === 'string' || typeof v === 'number' || typeof v === 'boolean') return v;
  if (v instanceof Date) return v.getTime();
  return String(v);
}
