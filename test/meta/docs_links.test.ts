// Keeps the repository's cross-references honest (docs/architecture.md, CONTRIBUTING.md "Layout"): code,
// tests, benchmarks and docs cite sections of docs/architecture.md ("§3") and rules of CONTRIBUTING.md
// ("rule 2", "Layout"), and the Markdown pages link to one another and to files of the tree. A
// renumbered section, a dropped rule, a renamed or moved file leaves a citation pointing at nothing;
// this test finds every one. The extractors are checked first on samples, so a scan that silently
// finds nothing cannot pass.

import { test } from 'node:test';
import assert from 'node:assert/strict';
import { existsSync, readdirSync, readFileSync, statSync } from 'node:fs';
import { dirname, join, relative, resolve, sep } from 'node:path';
import { fileURLToPath } from 'node:url';

const ROOT = resolve(dirname(fileURLToPath(import.meta.url)), '../../..');
const ARCHITECTURE = 'docs/architecture.md';
const CONTRIBUTING = 'CONTRIBUTING.md';
/** Folders never scanned or linked into: installed packages, build output, git's own. */
const SKIPPED_DIRS = new Set(['node_modules', 'dist', '.git']);
/** Fewer citations than this means the scan is broken, not that the tree stopped citing (about 90 today). */
const ARCHITECTURE_CITATIONS_MIN = 50;

/** One problem found, as `path:line: what`. */
type Problem = string;

function* files(dir: string, extension: string): Generator<string> {
  for (const name of readdirSync(dir)) {
    if (SKIPPED_DIRS.has(name) || name.startsWith('build-')) continue;
    const p = join(dir, name);
    if (statSync(p).isDirectory()) yield* files(p, extension);
    else if (p.endsWith(extension)) yield p;
  }
}

/** Every file whose citations are checked: sources, tests and benchmarks, and every Markdown page. */
function citingFiles(): string[] {
  const out: string[] = [];
  for (const dir of ['src', 'test', 'bench']) out.push(...files(join(ROOT, dir), '.ts'));
  out.push(...files(join(ROOT, 'docs'), '.md'), join(ROOT, 'README.md'), join(ROOT, CONTRIBUTING));
  return out;
}

function lineOf(text: string, index: number): number {
  return text.slice(0, index).split('\n').length;
}

/** Numbers of the `## N. Title` headings, in order. */
export function sectionNumbers(markdown: string): number[] {
  return [...markdown.matchAll(/^## (\d+)\. \S/gm)].map((m) => Number(m[1]));
}

/** Titles of the `## Title` headings (numbered or not) and numbers of the `### N. Title` rules. */
export function contributingAnchors(markdown: string): { sections: Set<string>; rules: Set<number> } {
  const sections = new Set([...markdown.matchAll(/^## (.+?)\s*$/gm)].map((m) => m[1] ?? ''));
  const rules = new Set([...markdown.matchAll(/^### (\d+)\. \S/gm)].map((m) => Number(m[1])));
  return { sections, rules };
}

/** Section numbers cited after "architecture.md" (with or without docs/): "§1, §3 and §9" gives 1, 3, 9. */
export function architectureCitations(text: string): { section: number; index: number }[] {
  const out: { section: number; index: number }[] = [];
  for (const m of text.matchAll(/architecture\.md((?:\s*(?:,|and)?\s*§\s?\d+)+)/g)) {
    for (const n of (m[1] ?? '').matchAll(/\d+/g)) out.push({ section: Number(n[0]), index: m.index });
  }
  return out;
}

/** Citations of CONTRIBUTING.md: `rule N` or a quoted section name ("Layout"). */
export function contributingCitations(text: string): { rule?: number; section?: string; index: number }[] {
  const out: { rule?: number; section?: string; index: number }[] = [];
  for (const m of text.matchAll(/CONTRIBUTING\.md(?:\s+rules?\s+(\d+)|\s+"([^"]+)")/g)) {
    if (m[1] !== undefined) out.push({ rule: Number(m[1]), index: m.index });
    else out.push({ section: m[2] ?? '', index: m.index });
  }
  return out;
}

/** Link targets of a Markdown page outside fenced code: inline `[text](target)` and `[ref]: target`. */
export function markdownLinks(markdown: string): { target: string; index: number }[] {
  const prose = markdown.replace(/^```[^\n]*\n[\s\S]*?^```/gm, (block) => ' '.repeat(block.length));
  const out: { target: string; index: number }[] = [];
  for (const m of prose.matchAll(/\[[^\]\n]*\]\(\s*<?([^)\s>]+)>?(?:\s+"[^"]*")?\s*\)/g)) out.push({ target: m[1] ?? '', index: m.index });
  for (const m of prose.matchAll(/^\s*\[[^\]\n]+\]:\s*<?(\S+?)>?(?:\s|$)/gm)) out.push({ target: m[1] ?? '', index: m.index });
  return out;
}

/** The repository file a relative link names, or undefined for links that leave the tree's files
 * (a URL with a scheme, a mail address, an anchor within the page). */
export function linkedPath(fromFile: string, target: string): string | undefined {
  if (/^[a-z][a-z0-9+.-]*:/i.test(target) || target.startsWith('#')) return undefined;
  const path = decodeURIComponent(target.replace(/[#?].*$/, ''));
  return resolve(dirname(fromFile), path);
}

/** Why a link target is not a repository file, or undefined when it is one. */
export function linkProblem(root: string, path: string): string | undefined {
  const rel = relative(root, path);
  if (rel.startsWith('..') || rel === '') return 'points outside the repository';
  if (rel.split(sep).some((part) => SKIPPED_DIRS.has(part))) return 'points into a generated or installed folder';
  if (!existsSync(path)) return 'does not exist';
  return undefined;
}

function architectureProblems(): { problems: Problem[]; count: number } {
  const sections = new Set(sectionNumbers(readFileSync(join(ROOT, ARCHITECTURE), 'utf8')));
  const problems: Problem[] = [];
  let count = 0;
  for (const file of citingFiles()) {
    const text = readFileSync(file, 'utf8');
    for (const c of architectureCitations(text)) {
      count++;
      if (!sections.has(c.section)) problems.push(`${relative(ROOT, file)}:${lineOf(text, c.index)}: §${c.section} is not a section of ${ARCHITECTURE}`);
    }
  }
  return { problems, count };
}

test('the extractors find what they must, and only that', () => {
  const file = 'architecture' + '.md'; // split so this file's own samples are not citations
  assert.deepEqual(architectureCitations(`see docs/${file} §1, §3 and §12; (${file} §7) and SP 800-38F §6.2`).map((c) => c.section), [1, 3, 12, 7]);
  assert.deepEqual(architectureCitations(`${file}'s appliance user`), []);
  const contributing = 'CONTRIBUTING' + '.md';
  assert.deepEqual(contributingCitations(`(${contributing} rule 3) and (${contributing} "Layout")`).map((c) => c.rule ?? c.section), [3, 'Layout']);
  assert.deepEqual(sectionNumbers('# T\n\n## 1. A\n### 2. not a section\n## 10. B\n## Notes\n'), [1, 10]);
  const links = markdownLinks('[a](b.md) [c](https://x.org/) [d](e.md#part "title")\n```\n[f](g.md)\n```\n[ref]: h.md\n');
  assert.deepEqual(links.map((l) => l.target), ['b.md', 'https://x.org/', 'e.md#part', 'h.md']);
  const from = join(ROOT, 'docs', 'x.md');
  assert.equal(linkedPath(from, 'https://x.org/'), undefined);
  assert.equal(linkedPath(from, '#section'), undefined);
  assert.equal(linkedPath(from, '../README.md#status'), join(ROOT, 'README.md'));
  assert.equal(linkProblem(ROOT, join(ROOT, 'README.md')), undefined);
  assert.equal(linkProblem(ROOT, join(ROOT, 'docs', 'no-such-page.md')), 'does not exist');
  assert.equal(linkProblem(ROOT, resolve(ROOT, '..', 'elsewhere.md')), 'points outside the repository');
});

test(`${ARCHITECTURE} numbers its sections 1 to 10, in order`, () => {
  const numbers = sectionNumbers(readFileSync(join(ROOT, ARCHITECTURE), 'utf8'));
  assert.deepEqual(numbers, Array.from({ length: 10 }, (_, i) => i + 1));
});

test(`every ${ARCHITECTURE} §N cited in src, test, bench and the docs is a section that exists`, () => {
  const { problems, count } = architectureProblems();
  assert.deepEqual(problems, []);
  assert.ok(count >= ARCHITECTURE_CITATIONS_MIN, `only ${count} citations found: the scan is broken`);
});

test(`every §N ${ARCHITECTURE} cites of itself is a section that exists`, () => {
  const text = readFileSync(join(ROOT, ARCHITECTURE), 'utf8');
  const sections = new Set(sectionNumbers(text));
  const missing = [...text.matchAll(/§\s?(\d+)/g)].filter((m) => !sections.has(Number(m[1]))).map((m) => `line ${lineOf(text, m.index)}: §${m[1]}`);
  assert.deepEqual(missing, []);
});

test(`every ${CONTRIBUTING} rule or section cited exists`, () => {
  const { sections, rules } = contributingAnchors(readFileSync(join(ROOT, CONTRIBUTING), 'utf8'));
  assert.deepEqual([...rules], Array.from({ length: 9 }, (_, i) => i + 1), 'rules 1 to 9, in order');
  const problems: Problem[] = [];
  let count = 0;
  for (const file of citingFiles()) {
    const text = readFileSync(file, 'utf8');
    for (const c of contributingCitations(text)) {
      count++;
      const ok = c.rule !== undefined ? rules.has(c.rule) : sections.has(c.section ?? '');
      if (!ok) problems.push(`${relative(ROOT, file)}:${lineOf(text, c.index)}: ${c.rule !== undefined ? `rule ${c.rule}` : `"${c.section}"`} is not in ${CONTRIBUTING}`);
    }
  }
  assert.deepEqual(problems, []);
  assert.ok(count > 0, 'no citation found: the scan is broken');
});

test('every relative link in docs/, README.md and CONTRIBUTING.md names a file of the repository', () => {
  const pages = [...files(join(ROOT, 'docs'), '.md'), join(ROOT, 'README.md'), join(ROOT, CONTRIBUTING)];
  const problems: Problem[] = [];
  let count = 0;
  for (const page of pages) {
    const text = readFileSync(page, 'utf8');
    for (const link of markdownLinks(text)) {
      const path = linkedPath(page, link.target);
      if (path === undefined) continue;
      count++;
      const problem = linkProblem(ROOT, path);
      if (problem !== undefined) problems.push(`${relative(ROOT, page)}:${lineOf(text, link.index)}: ${link.target} ${problem}`);
    }
  }
  assert.deepEqual(problems, []);
  assert.ok(count > 0, 'no relative link found: the scan is broken');
});
