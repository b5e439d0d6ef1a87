/// <reference types="vite/client" />
// The two languages stay in step, and no visible English is left in the components outside i18next:
// a static check over src/**/*.tsx with the TypeScript parser.
import ts from 'typescript';

import { formatDuration, formatMs, formatTime } from '../components/ui';
import en from './en.json';
import es from './es.json';
import i18n, { intlLocale, setLanguage, toLanguage, LANGUAGE_STORAGE } from './index';

type Tree = { [key: string]: string | Tree };

const PLURAL = /_(zero|one|two|few|many|other)$/;

function flatten(tree: Tree, prefix = ''): Record<string, string> {
  const out: Record<string, string> = {};
  for (const [k, v] of Object.entries(tree)) {
    const key = prefix ? `${prefix}.${k}` : k;
    if (typeof v === 'string') out[key] = v;
    else Object.assign(out, flatten(v, key));
  }
  return out;
}

const EN = flatten(en as Tree);
const ES = flatten(es as Tree);
/** Keys without plural suffixes: languages have different plural forms (Spanish has "many", English has not). */
const baseKeys = (flat: Record<string, string>) => [...new Set(Object.keys(flat).map((k) => k.replace(PLURAL, '')))].sort();
const vars = (text: string) => [...text.matchAll(/\{\{\s*(\w+)/g)].map((m) => m[1]).sort();
const tags = (text: string) => [...text.matchAll(/<\/?(\w+)>/g)].map((m) => m[0]).sort();

describe('the es and en resources', () => {
  it('have exactly the same keys (plural forms aside), none empty', () => {
    expect(baseKeys(ES)).toEqual(baseKeys(EN));
    for (const [k, v] of [...Object.entries(EN), ...Object.entries(ES)]) expect(v.trim(), k).not.toBe('');
  });

  it('have the one and other plural forms of every plural key in both languages', () => {
    const plurals = new Set(Object.keys({ ...EN, ...ES }).filter((k) => PLURAL.test(k)).map((k) => k.replace(PLURAL, '')));
    expect(plurals.size).toBeGreaterThan(0);
    for (const base of plurals)
      for (const flat of [EN, ES]) {
        expect(flat, base).toHaveProperty([`${base}_one`]);
        expect(flat, base).toHaveProperty([`${base}_other`]);
      }
  });

  it('use the same interpolation variables and markup in both languages', () => {
    for (const [k, text] of Object.entries(EN)) {
      const other = ES[k] ?? ES[k.replace(PLURAL, '_other')];
      expect(vars(other), k).toEqual(vars(text));
      expect(tags(other), k).toEqual(tags(text));
    }
  });

  it('differ: the Spanish is not a copy of the English', () => {
    const same = Object.keys(EN).filter((k) => EN[k] === ES[k] && /\p{L}{3,}/u.test(EN[k].replace(/\{\{\w+\}\}/g, '')));
    // brand names, acronyms, formats and JSON examples may read the same in both languages
    const expected = [
      'app.languageNames.en',
      'app.languageNames.es',
      'agentForm.fields.overlaysHint',
      'history.clients.telnyx',
      'history.clients.twilio',
      'simulator.columns.audio',
      'simulator.columns.llm',
      'simulator.columns.stt',
      'simulator.columns.tts',
      'simulator.transcriptError', // "error {{code}}: …" is Spanish too
    ];
    expect(same.sort()).toEqual(expected.sort());
  });

  it('are Spanish from Spain with its punctuation', () => {
    expect(ES['agents.confirmDelete']).toMatch(/^¿.*\?$/);
    expect(Object.values(ES).join(' ')).toMatch(/[áéíóúñ]/);
  });
});

describe('the language', () => {
  afterEach(() => localStorage.clear());

  it('follows the browser: es* is Spanish, anything else English', () => {
    expect(['es', 'es-ES', 'es-419', 'ES-mx'].map(toLanguage)).toEqual(['es', 'es', 'es', 'es']);
    expect(['en-US', 'fr', 'pt-BR', '', null, undefined].map(toLanguage)).toEqual(['en', 'en', 'en', 'en', 'en', 'en']);
    expect(intlLocale('es')).toBe('es-ES');
    expect(intlLocale('en')).toBe('en-US');
  });

  it('switches, is remembered in localStorage and sets <html lang>', async () => {
    await setLanguage('es');
    expect(i18n.language).toBe('es');
    expect(localStorage.getItem(LANGUAGE_STORAGE)).toBe('es');
    expect(document.documentElement.lang).toBe('es');
    expect(i18n.t('app.nav.history')).toBe('Historial');
    await setLanguage('en');
    expect(localStorage.getItem(LANGUAGE_STORAGE)).toBe('en');
    expect(document.documentElement.lang).toBe('en');
  });

  it('formats plurals, numbers, durations and dates in the chosen language', async () => {
    expect(i18n.t('callDetail.extractionFailed', { count: 1 })).toBe('Extraction failed after 1 attempt.');
    expect(i18n.t('callDetail.extractionFailed', { count: 3 })).toBe('Extraction failed after 3 attempts.');
    expect(formatMs(12345.6)).toBe('12,346 ms');
    expect(formatDuration(65)).toBe('1m 05s');
    expect(formatTime('2031-01-02T03:04:05Z')).toBe(new Date('2031-01-02T03:04:05Z').toLocaleString('en-US'));
    await i18n.changeLanguage('es');
    expect(i18n.t('callDetail.extractionFailed', { count: 1 })).toBe('La extracción ha fallado tras 1 intento.');
    expect(i18n.t('callDetail.extractionFailed', { count: 3 })).toBe('La extracción ha fallado tras 3 intentos.');
    expect(i18n.t('callDetail.extractionFailed', { count: 1_000_000 })).toMatch(/1000000 intentos/);
    expect(formatMs(12345.6)).toBe('12.346 ms');
    expect(formatDuration(65)).toBe('1 min 05 s');
    expect(formatTime('2031-01-02T03:04:05Z')).toBe(new Date('2031-01-02T03:04:05Z').toLocaleString('es-ES'));
  });
});

// ---- the static check -------------------------------------------------------------------------------------------

/** Every source file's text, by path relative to src/ (tests aside): Vite reads them, no Node API needed. */
const SOURCES: Record<string, string> = Object.fromEntries(
  Object.entries(
    import.meta.glob(['../**/*.{ts,tsx}', '!../**/*.test.{ts,tsx}'], { query: '?raw', import: 'default', eager: true }) as Record<string, string>,
  ).map(([path, text]) => [path.replace(/^\.\.\//, ''), text]),
);
/** Words that read the same in every language: the brand, file formats and units. */
const ALLOWED = ['Victoria', 'CSV', 'JSON', 'ms', 's'];
const ALLOWED_RE = new RegExp(`\\b(${ALLOWED.join('|')})\\b`, 'g');
/** Attributes a person sees or hears (screen readers), on HTML elements and on our components (Card title, Field label…). */
const VISIBLE_ATTRS = new Set(['title', 'label', 'placeholder', 'aria-label', 'aria-description', 'alt', 'hint', 'message', 'aria-valuetext']);
const hasWords = (text: string) => /\p{L}/u.test(text.replace(ALLOWED_RE, ''));

/** String literals that end up as text: directly in {…}, or as a branch of ?:, &&, ||, ??. */
function visibleStrings(expr: ts.Expression | undefined): ts.Node[] {
  if (!expr) return [];
  if (ts.isStringLiteral(expr) || ts.isNoSubstitutionTemplateLiteral(expr) || ts.isTemplateExpression(expr)) return [expr];
  if (ts.isParenthesizedExpression(expr)) return visibleStrings(expr.expression);
  if (ts.isConditionalExpression(expr)) return [...visibleStrings(expr.whenTrue), ...visibleStrings(expr.whenFalse)];
  const logical = [ts.SyntaxKind.AmpersandAmpersandToken, ts.SyntaxKind.BarBarToken, ts.SyntaxKind.QuestionQuestionToken];
  if (ts.isBinaryExpression(expr) && logical.includes(expr.operatorToken.kind))
    return [...visibleStrings(expr.left), ...visibleStrings(expr.right)];
  return [];
}

function literalText(node: ts.Node, sf: ts.SourceFile): string {
  if (ts.isJsxText(node) || ts.isStringLiteral(node) || ts.isNoSubstitutionTemplateLiteral(node)) return node.text;
  if (ts.isTemplateExpression(node)) return [node.head.text, ...node.templateSpans.map((s) => s.literal.text)].join(' ');
  return node.getText(sf);
}

/** "file:line: text" for every text with words that does not come from t() in a .tsx source. */
function untranslated(name: string, source: string): string[] {
  const sf = ts.createSourceFile(name, source, ts.ScriptTarget.Latest, true, ts.ScriptKind.TSX);
  const candidates: ts.Node[] = [];
  const visit = (node: ts.Node) => {
    if (ts.isJsxText(node)) candidates.push(node);
    if (ts.isJsxExpression(node) && !ts.isJsxAttribute(node.parent)) candidates.push(...visibleStrings(node.expression));
    if (ts.isJsxAttribute(node) && VISIBLE_ATTRS.has(node.name.getText(sf)) && node.initializer) {
      const init = node.initializer;
      candidates.push(...(ts.isStringLiteral(init) ? [init] : ts.isJsxExpression(init) ? visibleStrings(init.expression) : []));
    }
    ts.forEachChild(node, visit);
  };
  visit(sf);
  return candidates
    .filter((n) => hasWords(literalText(n, sf)))
    .map((n) => `${name}:${sf.getLineAndCharacterOfPosition(n.getStart(sf)).line + 1}: ${literalText(n, sf).trim()}`);
}

describe('the components', () => {
  const files = Object.keys(SOURCES).filter((p) => p.endsWith('.tsx'));

  it('are all checked', () => {
    expect(files).toEqual(expect.arrayContaining(['App.tsx', 'components/ui.tsx', 'features/agents/AgentForm.tsx', 'features/status/StatusPage.tsx']));
    expect(files.length).toBeGreaterThanOrEqual(10);
  });

  it('show no text outside t(): no JSX text, visible attribute or {"string"} with words', () => {
    expect(files.flatMap((f) => untranslated(f, SOURCES[f]))).toEqual([]);
  });

  it('the check finds English left in JSX, and lets brand names, units and symbols through', () => {
    const sample = [
      'export const A = () => (',
      '  <div title="Hello there" aria-label={ok ? \'Fine\' : t(\'x\')} className="text-sm">',
      '    Press <b>Call</b>{\' · not ready\'}{t(\'y\')} · 12 ms #{n} Victoria {`${n} calls`}',
      '  </div>',
      ');',
    ].join('\n');
    expect(untranslated('sample.tsx', sample)).toEqual([
      'sample.tsx:2: Hello there',
      'sample.tsx:2: Fine',
      'sample.tsx:3: Press',
      'sample.tsx:3: Call',
      'sample.tsx:3: · not ready',
      'sample.tsx:3: calls',
    ]);
  });

  it("use only keys the resources have (t('…') with a literal key)", () => {
    const missing: string[] = [];
    for (const [file, text] of Object.entries(SOURCES)) {
      for (const m of text.matchAll(/\bt\(\s*'([\w.]+)'/g)) {
        const key = m[1];
        if (!(key in EN) && !(`${key}_other` in EN)) missing.push(`${file}: ${key}`);
      }
      for (const m of text.matchAll(/i18nKey="([\w.]+)"/g)) if (!(m[1] in EN)) missing.push(`${file}: ${m[1]}`);
    }
    expect(Object.keys(SOURCES)).toContain('features/simulator/callEngine.ts');
    expect(missing).toEqual([]);
  });
});
