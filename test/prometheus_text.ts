// A strict reader of the Prometheus text exposition format 0.0.4 (prometheus/docs,
// content/docs/instrumenting/exposition_formats.md), written from the format's description and not
// from prom-client, so that the metrics tests check the endpoints' text against the format rather
// than against the library that wrote it. It refuses: a sample of a family without # TYPE, a TYPE
// after the family's samples or given twice, an unknown type, a bad metric or label name, a label
// value with a bad escape, a value that is not a Go float, a histogram without its +Inf bucket or
// whose buckets are not cumulative, and a family whose samples are not together.

export interface Sample {
  readonly name: string;
  readonly labels: Readonly<Record<string, string>>;
  readonly value: number;
}

export interface Family {
  readonly name: string;
  readonly type: 'counter' | 'gauge' | 'histogram' | 'summary' | 'untyped';
  readonly help: string | undefined;
  readonly samples: Sample[];
}

const METRIC_NAME = /^[a-zA-Z_:][a-zA-Z0-9_:]*$/;
const LABEL_NAME = /^[a-zA-Z_][a-zA-Z0-9_]*$/;
const TYPES = new Set(['counter', 'gauge', 'histogram', 'summary', 'untyped']);
const SUFFIXES: Record<string, readonly string[]> = { histogram: ['_bucket', '_sum', '_count'], summary: ['_sum', '_count', ''], counter: [''], gauge: [''], untyped: [''] };

/** A value as Go's strconv.ParseFloat reads it (the format's rule): decimal or the words NaN and
 * [+-]Inf, which ParseFloat takes in any case (prom-client writes `Nan`). */
function parseValue(text: string): number {
  const word = text.toLowerCase();
  if (word === '+inf' || word === 'inf' || word === '+infinity' || word === 'infinity') return Infinity;
  if (word === '-inf' || word === '-infinity') return -Infinity;
  if (word === 'nan') return NaN;
  if (!/^[-+]?(\d+\.?\d*|\.\d+)([eE][-+]?\d+)?$/.test(text)) throw new Error(`not a float: ${text}`);
  return Number(text);
}

/** `{a="x",b="y"}` from position `i` (at the `{`); returns the labels and the position after `}`. */
function parseLabels(line: string, i: number): { labels: Record<string, string>; end: number } {
  const labels: Record<string, string> = {};
  i++;
  while (line[i] !== '}') {
    const eq = line.indexOf('=', i);
    if (eq < 0) throw new Error(`label without '=': ${line}`);
    const name = line.slice(i, eq).trim();
    if (!LABEL_NAME.test(name)) throw new Error(`bad label name ${name}`);
    if (line[eq + 1] !== '"') throw new Error(`label value not quoted: ${line}`);
    let value = '';
    let j = eq + 2;
    for (;; j++) {
      const ch = line[j];
      if (ch === undefined) throw new Error(`unterminated label value: ${line}`);
      if (ch === '"') break;
      if (ch === '\\') {
        const next = line[++j];
        if (next === 'n') value += '\n';
        else if (next === '\\' || next === '"') value += next;
        else throw new Error(`bad escape in label value: ${line}`);
      } else value += ch;
    }
    if (name in labels) throw new Error(`label ${name} twice: ${line}`);
    labels[name] = value;
    i = j + 1;
    if (line[i] === ',') i++;
    else if (line[i] !== '}') throw new Error(`expected ',' or '}': ${line}`);
  }
  return { labels, end: i + 1 };
}

function parseSample(line: string): Sample {
  const brace = line.indexOf('{');
  const space = line.indexOf(' ');
  let name: string;
  let labels: Record<string, string> = {};
  let rest: string;
  if (brace >= 0 && (space < 0 || brace < space)) {
    name = line.slice(0, brace);
    const parsed = parseLabels(line, brace);
    labels = parsed.labels;
    rest = line.slice(parsed.end);
  } else {
    name = line.slice(0, space);
    rest = line.slice(space);
  }
  if (!METRIC_NAME.test(name)) throw new Error(`bad metric name ${name}`);
  const fields = rest.trim().split(/\s+/);
  if (fields.length < 1 || fields.length > 2 || fields[0] === '') throw new Error(`bad sample: ${line}`);
  if (fields[1] !== undefined && !/^-?\d+$/.test(fields[1])) throw new Error(`bad timestamp: ${line}`);
  return { name, labels, value: parseValue(fields[0] as string) };
}

function familyOf(families: Map<string, Family>, sampleName: string): Family | undefined {
  for (const [name, f] of families) {
    if ((SUFFIXES[f.type] ?? []).some((s) => sampleName === name + s)) return f;
  }
  return undefined;
}

/** Parses exposition text; throws on anything the format does not allow. */
export function parsePrometheusText(text: string): Map<string, Family> {
  const families = new Map<string, Family>();
  const helps = new Map<string, string>();
  const finished = new Set<string>();
  let current: Family | undefined;
  for (const line of text.split('\n')) {
    if (line === '') continue;
    if (line.startsWith('#')) {
      const m = /^# (HELP|TYPE) (\S+) ?(.*)$/.exec(line);
      if (m === null) continue; // a plain comment
      const [, kind, name, arg] = m as unknown as [string, string, string, string];
      if (!METRIC_NAME.test(name)) throw new Error(`bad metric name ${name}`);
      if (kind === 'HELP') {
        helps.set(name, arg);
        continue;
      }
      if (!TYPES.has(arg)) throw new Error(`unknown type ${arg}`);
      if (families.has(name)) throw new Error(`TYPE of ${name} twice, or after its samples`);
      if (current !== undefined) finished.add(current.name);
      current = { name, type: arg as Family['type'], help: helps.get(name), samples: [] };
      families.set(name, current);
      continue;
    }
    const sample = parseSample(line);
    const family = familyOf(families, sample.name);
    if (family === undefined) throw new Error(`sample ${sample.name} has no # TYPE`);
    if (family !== current || finished.has(family.name)) throw new Error(`samples of ${family.name} are not together`);
    family.samples.push(sample);
  }
  for (const f of families.values()) if (f.type === 'histogram') checkHistogram(f);
  return families;
}

/** Each label set's buckets are cumulative, end in +Inf, and +Inf equals _count. */
function checkHistogram(f: Family): void {
  const series = new Map<string, { buckets: [number, number][]; count?: number }>();
  for (const s of f.samples) {
    const { le, ...rest } = s.labels;
    const key = JSON.stringify(Object.entries(rest).sort());
    const entry = series.get(key) ?? { buckets: [] };
    series.set(key, entry);
    if (s.name === `${f.name}_bucket`) {
      if (le === undefined) throw new Error(`${f.name}_bucket without le`);
      entry.buckets.push([parseValue(le), s.value]);
    } else if (s.name === `${f.name}_count`) entry.count = s.value;
  }
  for (const [key, { buckets, count }] of series) {
    const last = buckets[buckets.length - 1];
    if (last === undefined || last[0] !== Infinity) throw new Error(`${f.name}${key}: no +Inf bucket`);
    for (let i = 1; i < buckets.length; i++) {
      const [le0, n0] = buckets[i - 1] as [number, number];
      const [le1, n1] = buckets[i] as [number, number];
      if (!(le1 > le0) || n1 < n0) throw new Error(`${f.name}${key}: buckets not cumulative`);
    }
    if (count !== last[1]) throw new Error(`${f.name}${key}: _count differs from the +Inf bucket`);
  }
}

/** The value of the one sample named `name` whose labels include `labels`, summed over matches; 0 when none. */
export function sampleSum(families: Map<string, Family>, name: string, labels: Readonly<Record<string, string>> = {}): number {
  let sum = 0;
  for (const f of families.values()) {
    for (const s of f.samples) {
      if (s.name !== name) continue;
      if (Object.entries(labels).every(([k, v]) => s.labels[k] === v)) sum += s.value;
    }
  }
  return sum;
}

/** The samples named `name` (any labels). */
export function samplesOf(families: Map<string, Family>, name: string): Sample[] {
  return [...families.values()].flatMap((f) => f.samples.filter((s) => s.name === name));
}
