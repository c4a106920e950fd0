#!/usr/bin/env node
/**
 * `npm start` builds only when the build is stale: when a source changed since the last build that
 * finished, or there is none. A restart with nothing changed then costs a few file stats, not tsc and
 * Vite (20 to 40 s).
 *
 *   node scripts/build-if-stale.mjs           builds (npm run build) if stale; `prestart`
 *   node scripts/build-if-stale.mjs --begin   first step of `npm run build`: notes the sources
 *   node scripts/build-if-stale.mjs --done    last step of `npm run build`: the build is current
 *
 * The stamp (dist/.build-stamp) lists every input file with its modification time and size as they
 * were when the build began, so a file changed while it ran, one added, removed or replaced by an
 * older copy (a restored backup, an unpacked archive) all count as changes. `--begin` removes the
 * stamp: a build that fails leaves none, and the next start builds again.
 *
 * Plain Node.js, no dependencies: it runs before anything is built.
 */
import { spawnSync } from 'node:child_process';
import {
  existsSync,
  mkdirSync,
  readdirSync,
  readFileSync,
  renameSync,
  rmSync,
  statSync,
  writeFileSync,
} from 'node:fs';
import path from 'node:path';

const ROOT = path.resolve(import.meta.dirname, '..');
const DIST = path.join(ROOT, 'dist');
const STAMP = path.join(DIST, '.build-stamp');
const PENDING = `${STAMP}.pending`;
/** What the build makes; a stamp without them is no build. */
const OUTPUTS = ['dist/cli.js', 'dist/portal/index.html'];
/** Folders whose every file is an input, and single files at the root (tsconfig*.json are added). */
const INPUT_DIRS = ['src', 'portal'];
const INPUT_FILES = ['package.json'];
/** Never inputs: build output, dependencies, and dot files (editor swap files, .DS_Store). */
const SKIPPED = new Set(['node_modules', 'dist']);

/** Every input file, relative to the root with `/`, and its modification time and size. */
function inputs() {
  /** @type {Record<string, [number, number]>} */
  const files = {};
  const add = (relative) => {
    const stat = statSync(path.join(ROOT, relative), { throwIfNoEntry: false });
    if (stat?.isFile()) files[relative.split(path.sep).join('/')] = [stat.mtimeMs, stat.size];
  };
  const walk = (relative) => {
    for (const entry of readdirSync(path.join(ROOT, relative), { withFileTypes: true })) {
      if (entry.name.startsWith('.') || SKIPPED.has(entry.name)) continue;
      const child = path.join(relative, entry.name);
      if (entry.isDirectory()) walk(child);
      else add(child);
    }
  };
  for (const dir of INPUT_DIRS) if (existsSync(path.join(ROOT, dir))) walk(dir);
  for (const file of INPUT_FILES) add(file);
  for (const name of readdirSync(ROOT)) if (/^tsconfig.*\.json$/.test(name)) add(name);
  return files;
}

/** Why the build is stale (a short sentence), or undefined when it is current. */
function staleness() {
  if (!existsSync(STAMP)) return 'no finished build (dist/.build-stamp is missing)';
  const missing = OUTPUTS.find((file) => !existsSync(path.join(ROOT, file)));
  if (missing) return `${missing} is missing`;
  let built;
  try {
    built = JSON.parse(readFileSync(STAMP, 'utf8')).files;
  } catch {
    return 'dist/.build-stamp cannot be read';
  }
  const now = inputs();
  const changed = [];
  for (const [file, [mtime, size]] of Object.entries(now)) {
    const before = built?.[file];
    if (!before) changed.push(`${file} (new)`);
    else if (before[0] !== mtime || before[1] !== size) changed.push(file);
  }
  for (const file of Object.keys(built ?? {})) if (!(file in now)) changed.push(`${file} (removed)`);
  if (changed.length === 0) return undefined;
  const more = changed.length > 3 ? ` and ${changed.length - 3} more` : '';
  return `changed since the last build: ${changed.slice(0, 3).join(', ')}${more}`;
}

/** `npm run build` with the npm that runs this script (npm_execpath), else the one on PATH. */
function build() {
  const npm = process.env.npm_execpath;
  const [command, args] = npm?.endsWith('js')
    ? [process.execPath, [npm, 'run', 'build']]
    : ['npm', ['run', 'build']];
  const result = spawnSync(command, args, {
    cwd: ROOT,
    stdio: 'inherit',
    shell: command === 'npm' && process.platform === 'win32',
  });
  if (result.error) throw result.error;
  return result.status ?? 1;
}

const mode = process.argv[2];
if (mode === '--begin') {
  mkdirSync(DIST, { recursive: true });
  rmSync(STAMP, { force: true });
  writeFileSync(PENDING, `${JSON.stringify({ began: new Date().toISOString(), files: inputs() })}\n`);
} else if (mode === '--done') {
  if (!existsSync(PENDING)) {
    console.error('build-if-stale: --done without --begin: no stamp written (the next start builds).');
  } else {
    renameSync(PENDING, STAMP);
  }
} else if (mode === undefined) {
  const reason = staleness();
  if (reason === undefined) {
    console.log('build-if-stale: dist/ is up to date with the sources; not rebuilding.');
  } else {
    console.log(`build-if-stale: ${reason}: building.`);
    process.exitCode = build();
  }
} else {
  console.error(`build-if-stale: unknown argument ${mode}; use none, --begin or --done.`);
  process.exitCode = 2;
}
