/**
 * The generated API reference (typedoc.json, `npm run build` -> docs/api/) is only as good as its
 * doc comments: every exported function, class (and its public methods) and interface of the
 * reference's entry points has one. TypeDoc's `validation.notDocumented` warns at build time; this
 * test fails in the unit suite, without running TypeDoc (a parse of each entry point, no type check).
 * The package's public modules (harness/public/*: `egresslab`, `egresslab/vitest`,
 * `egresslab/matchers`) are entry points, and every function, class, interface and type they
 * re-export from a module that is not one is documented where it is declared.
 */
import { readFileSync } from 'node:fs';
import { dirname, join, posix } from 'node:path';
import ts from 'typescript';
import { describe, expect, it } from 'vitest';
import { projectRoot } from '../util/paths.js';

const isExported = (n: ts.Node): boolean => ts.canHaveModifiers(n) && (ts.getModifiers(n) ?? []).some((m) => m.kind === ts.SyntaxKind.ExportKeyword);

const hasDocComment = (n: ts.Node): boolean => ts.getJSDocCommentsAndTags(n).length > 0;

const isPublicMember = (m: ts.ClassElement): boolean =>
  !(ts.canHaveModifiers(m) && (ts.getModifiers(m) ?? []).some((x) => x.kind === ts.SyntaxKind.PrivateKeyword || x.kind === ts.SyntaxKind.ProtectedKeyword)) &&
  !(m.name && ts.isPrivateIdentifier(m.name));

function nameOf(n: ts.NamedDeclaration, source: ts.SourceFile): string {
  return n.name ? n.name.getText(source) : '(anonymous)';
}

/** Exported functions, classes, public methods of exported classes and interfaces without a doc comment: "file: Name". */
function undocumentedExports(fileName: string, text: string): string[] {
  const source = ts.createSourceFile(fileName, text, ts.ScriptTarget.Latest, true);
  const missing: string[] = [];
  const documentedFunctions = new Set<string>();
  const miss = (what: string) => missing.push(`${fileName}: ${what}`);
  for (const s of source.statements) {
    if (!isExported(s)) continue;
    if (ts.isFunctionDeclaration(s)) {
      // Overloads: one documented signature documents the function.
      const name = nameOf(s, source);
      if (hasDocComment(s)) documentedFunctions.add(name);
      else if (!s.body || documentedFunctions.has(name)) continue;
      else if (!source.statements.some((o) => o !== s && ts.isFunctionDeclaration(o) && nameOf(o, source) === name && hasDocComment(o))) miss(name);
    } else if (ts.isInterfaceDeclaration(s)) {
      if (!hasDocComment(s)) miss(nameOf(s, source));
    } else if (ts.isClassDeclaration(s)) {
      const cls = nameOf(s, source);
      if (!hasDocComment(s)) miss(cls);
      for (const m of s.members) {
        if (!(ts.isMethodDeclaration(m) || ts.isGetAccessorDeclaration(m)) || !isPublicMember(m)) continue;
        if (ts.isMethodDeclaration(m) && !m.body) continue; // overload signature
        if (!hasDocComment(m)) miss(`${cls}.${m.name.getText(source)}`);
      }
    }
  }
  return missing;
}

/** Which of `names` are declared in the file as a function, class, interface or type without a doc comment: "file: Name". */
function undocumentedDeclarations(fileName: string, text: string, names: readonly string[]): string[] {
  const source = ts.createSourceFile(fileName, text, ts.ScriptTarget.Latest, true);
  const wanted = new Set(names);
  const documented = new Set<string>();
  const seen = new Set<string>();
  for (const s of source.statements) {
    if (!(ts.isFunctionDeclaration(s) || ts.isClassDeclaration(s) || ts.isInterfaceDeclaration(s) || ts.isTypeAliasDeclaration(s)) || !s.name) continue;
    const name = s.name.text;
    if (!wanted.has(name)) continue;
    seen.add(name);
    if (hasDocComment(s)) documented.add(name);
  }
  return [...seen].filter((n) => !documented.has(n)).map((n) => `${fileName}: ${n}`);
}

/** The reference's entry points, from typedoc.json. */
function entryPoints(): string[] {
  const config = JSON.parse(readFileSync(join(projectRoot(), 'typedoc.json'), 'utf8')) as { entryPoints?: unknown };
  if (!Array.isArray(config.entryPoints) || config.entryPoints.some((e) => typeof e !== 'string')) {
    throw new Error(`typedoc.json: entryPoints must be a list of file names, got ${JSON.stringify(config.entryPoints)}`);
  }
  return config.entryPoints as string[];
}

describe('API reference doc comments', () => {
  it('flags what it should (and nothing else)', () => {
    const text = [
      '/** ok */ export function documented(): void {}',
      'export function bare(): void {}',
      'function internal(): void {}',
      '/** ok */ export interface Doc {}',
      'export interface Bare {}',
      '/** ok */ export class C {',
      '  /** ok */ m(): void {}',
      '  n(): void {}',
      '  private p(): void {}',
      '  #q(): void {}',
      '}',
      '/** one doc */ export function over(a: string): void;',
      'export function over(a: number): void;',
      'export function over(a: unknown): void {}',
    ].join('\n');
    expect(undocumentedExports('x.ts', text)).toEqual(['x.ts: bare', 'x.ts: Bare', 'x.ts: C.n']);
  });

  it('every exported function, class, method and interface of the entry points has a doc comment', () => {
    const files = entryPoints();
    expect(files.length).toBeGreaterThan(0);
    const missing = files.flatMap((f) => undocumentedExports(f, readFileSync(join(projectRoot(), f), 'utf8')));
    expect(missing, `add a /** one-line */ doc comment to each (they make the API reference, docs/api/)`).toEqual([]);
  });

  it('the public modules are entry points, and what they re-export from other modules is documented', () => {
    const files = entryPoints();
    const publicModules = ['harness/public/index.ts', 'harness/public/vitest.ts', 'harness/public/matchers.ts'];
    expect(publicModules.filter((f) => !files.includes(f))).toEqual([]);
    const missing: string[] = [];
    for (const f of publicModules) {
      const source = ts.createSourceFile(f, readFileSync(join(projectRoot(), f), 'utf8'), ts.ScriptTarget.Latest, true);
      for (const s of source.statements) {
        if (!ts.isExportDeclaration(s) || !s.moduleSpecifier || !s.exportClause || !ts.isNamedExports(s.exportClause)) continue;
        const target = posix.join(dirname(f), (s.moduleSpecifier as ts.StringLiteral).text).replace(/\.js$/, '.ts');
        if (files.includes(target)) continue; // checked whole above
        const names = s.exportClause.elements.map((e) => (e.propertyName ?? e.name).text);
        missing.push(...undocumentedDeclarations(target, readFileSync(join(projectRoot(), target), 'utf8'), names));
      }
    }
    expect(missing, 'add a /** one-line */ doc comment where each is declared (the reference shows them under harness/public)').toEqual([]);
  });
});
