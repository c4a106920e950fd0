#!/usr/bin/env node
/**
 * `npm run check:examples`: runs the shell examples of README.md and docs/*.md against the built
 * service (`npm run build` first; this builds nothing), with Stoplight Prism checking every
 * request and answer against the OpenAPI documents, and fails naming the file, block and command
 * when a command fails or Prism reports a violation, and when a document is missing.
 *
 *   npm run check:examples [-- [--verbose] [--keep] [FILE.md ...]]
 *
 * Which blocks run: a fenced block tagged `sh` runs, in order with the others of its file; one
 * tagged `sh no-run`, or in any other language, does not (see scripts/markdown-examples.mjs).
 * README.md's blocks run first, on their own; each page of docs/ then runs on a fresh service
 * after README.md's blocks, so that its examples start where the README's walk-through ends
 * ($ADMIN_TOKEN, $KEY, tenant acme, webhook 1).
 *
 * How they run: one Bash script per file (`set -e -o pipefail`), in a temporary folder with a
 * fresh `data/` folder (the service's DATA_DIR, so `cat data/admin-token` works as written) and a
 * link to examples/. The service is `node dist/cli.js serve --role api` (nothing is delivered, so
 * nothing leaves this machine) on a free port. `http://localhost:8080` in the examples is
 * replaced by a local router: `/api/v1/...` goes through Prism with the public document
 * (/api/v1/openapi.json), `/internal/v1/...` through Prism with the operator document
 * (/internal/v1/openapi.json, fetched with the admin token), everything else straight to the
 * service. Within the script:
 * - `curl` adds a header naming the line it was called from, so that a violation names it;
 * - `npx plandocket-webhooks ...` runs `node dist/cli.js ...` against the same database;
 * - `npm start` restarts the service (`serve`, all roles) with the variables set on its command
 *   line, and returns once it answers; any other `npm` command fails.
 *
 * Prism runs in proxy mode with `--errors`. When it refuses a request or an answer, the router
 * notes the violation and gives the example the service's own answer all the same (sending the
 * request on itself when Prism did not), so that one run lists every violation. A request that
 * Prism and the service both refuse, for the same reason, is an example of an error: no violation.
 */
import { spawn } from 'node:child_process';
import { randomBytes } from 'node:crypto';
import { once } from 'node:events';
import {
  closeSync,
  createWriteStream,
  existsSync,
  mkdtempSync,
  openSync,
  readFileSync,
  rmSync,
  statSync,
  symlinkSync,
} from 'node:fs';
import { mkdir, readdir, writeFile } from 'node:fs/promises';
import http from 'node:http';
import { createRequire } from 'node:module';
import { createServer } from 'node:net';
import os from 'node:os';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import { bashScript, codeBlocks, commandAt, isRunnable } from './markdown-examples.mjs';

const ROOT = path.resolve(path.dirname(fileURLToPath(import.meta.url)), '..');
const CLI = path.join(ROOT, 'dist', 'cli.js');
const FILE_TIMEOUT_MS = 180_000;
const START_TIMEOUT_MS = 60_000;
/** Variables of the service's configuration that must not leak in from the caller's shell. */
const SERVICE_VARIABLES = [
  'PORT',
  'HOST',
  'DATA_DIR',
  'DATABASE_URL',
  'ADMIN_TOKEN',
  'BASE_DOMAIN',
  'SECRETS_KEY',
  'RATE_LIMIT_STANDARD',
  'RATE_LIMIT_PROFESSIONAL',
  'RATE_LIMIT_BUSINESS',
  'RATE_LIMIT_ENTERPRISE',
  'ALLOW_HTTP_TARGETS',
  'ALLOWED_TARGET_CIDRS',
  'LOG_LEVEL',
  'RETRY_SCHEDULE',
  'DELIVERY_CONCURRENCY',
  'WEBHOOK_CONCURRENCY',
  'TENANT_CONCURRENCY',
  'ORIGIN_CONNECTIONS',
  'LEASE_MARGIN',
  'AUTO_DISABLE_AFTER',
  'RECOVERY_PROBE_INTERVAL',
  'OPERATOR_WEBHOOK_URL',
  'OPERATOR_WEBHOOK_SECRET',
  'CATCH_UP_WINDOW',
  'SHUTDOWN_GRACE',
  'DATABASE_CONNECT_TIMEOUT',
  'DATABASE_STATEMENT_TIMEOUT',
  'DATABASE_IDLE_IN_TRANSACTION_TIMEOUT',
  'PUBLIC_URL',
  'PORTAL_LINK_TTL',
  'PORTAL_SESSION_TTL',
  'MAX_WEBHOOKS_PER_TENANT',
  'RETENTION_DAYS',
  'SMTP_URL',
  'MAIL_FROM',
  'NODE_EXTRA_CA_CERTS',
];

const args = process.argv.slice(2);
const verbose = args.includes('--verbose');
const keep = args.includes('--keep');
const only = args.filter((a) => !a.startsWith('--')).map((f) => path.relative(ROOT, path.resolve(f)));

function say(line = '') {
  process.stdout.write(`${line}\n`);
}

function freePort() {
  return new Promise((resolve, reject) => {
    const server = createServer();
    server.unref();
    server.on('error', reject);
    server.listen(0, '127.0.0.1', () => {
      const { port } = server.address();
      server.close(() => resolve(port));
    });
  });
}

const sleep = (ms) => new Promise((resolve) => setTimeout(resolve, ms));

/**
 * What an interruption (Ctrl-C, SIGTERM) must end at once: the processes started here, the
 * examples' process groups (which a Ctrl-C at the terminal does not reach), the temporary folder.
 */
const onInterrupt = new Set();
for (const signal of ['SIGINT', 'SIGTERM']) {
  process.once(signal, () => {
    for (const cleanup of onInterrupt) {
      try {
        cleanup();
      } catch {}
    }
    say(`check:examples: stopped by ${signal}.`);
    process.exit(130);
  });
}

/** The environment of the service and the examples: the caller's, less the service's settings. */
function cleanEnv(extra) {
  const env = { ...process.env };
  for (const name of SERVICE_VARIABLES) delete env[name];
  return { ...env, ...extra };
}

/** Sends one request and reads the whole answer. */
function exchange(port, { method, url, headers, body }, timeoutMs = 60_000) {
  return new Promise((resolve, reject) => {
    const request = http.request(
      { host: '127.0.0.1', port, method, path: url, headers, timeout: timeoutMs },
      (response) => {
        const chunks = [];
        response.on('data', (chunk) => chunks.push(chunk));
        response.on('end', () =>
          resolve({ status: response.statusCode, headers: response.headers, body: Buffer.concat(chunks) }),
        );
        response.on('error', reject);
      },
    );
    request.on('timeout', () => request.destroy(new Error(`no answer within ${timeoutMs / 1000} s`)));
    request.on('error', reject);
    request.end(body);
  });
}

async function readBody(request) {
  const chunks = [];
  for await (const chunk of request) chunks.push(chunk);
  return Buffer.concat(chunks);
}

const HOP_BY_HOP = new Set(['connection', 'keep-alive', 'transfer-encoding', 'content-length']);
function reply(response, answer) {
  const headers = Object.fromEntries(
    Object.entries(answer.headers).filter(([name]) => !HOP_BY_HOP.has(name)),
  );
  response.writeHead(answer.status, { ...headers, 'content-length': answer.body.length });
  response.end(answer.body);
}

async function waitFor(what, check, child) {
  const deadline = Date.now() + START_TIMEOUT_MS;
  while (Date.now() < deadline) {
    if (child && child.exitCode !== null) throw new Error(`${what} exited with code ${child.exitCode}`);
    if (await check().catch(() => false)) return;
    await sleep(100);
  }
  throw new Error(`${what} did not start within ${START_TIMEOUT_MS / 1000} s`);
}

async function stop(child, signal = 'SIGTERM') {
  if (child.exitCode !== null || child.signalCode !== null) return;
  const exited = once(child, 'exit');
  child.kill(signal);
  const timer = setTimeout(() => child.kill('SIGKILL'), 5_000);
  await exited;
  clearTimeout(timer);
}

/** Ends a whole process group (a file's script, its service and whatever it started). */
async function stopGroup(child) {
  const alive = () => {
    try {
      process.kill(-child.pid, 0);
      return true;
    } catch {
      return false;
    }
  };
  const signal = (name) => {
    try {
      process.kill(-child.pid, name);
    } catch {}
  };
  signal('SIGTERM');
  for (let i = 0; i < 50 && alive(); i++) await sleep(100);
  if (alive()) signal('SIGKILL');
}

/** Fetches the two OpenAPI documents from a service of their own. */
async function fetchDocuments(work) {
  const port = await freePort();
  const adminToken = `adm_${randomBytes(24).toString('base64url')}`;
  const log = openSync(path.join(work, 'documents-service.log'), 'w');
  const child = spawn(process.execPath, [CLI, 'serve', '--role', 'api'], {
    env: cleanEnv({
      DATA_DIR: path.join(work, 'documents-data'),
      PORT: String(port),
      HOST: '127.0.0.1',
      ADMIN_TOKEN: adminToken,
      LOG_LEVEL: 'warn',
      SHUTDOWN_GRACE: '1s',
    }),
    stdio: ['ignore', log, log],
  });
  const kill = () => child.kill('SIGKILL');
  onInterrupt.add(kill);
  try {
    const base = `http://127.0.0.1:${port}`;
    await waitFor('the service', async () => (await fetch(`${base}/healthz`)).ok, child);
    const get = async (url, headers) => {
      const response = await fetch(`${base}${url}`, { headers });
      return { status: response.status, text: await response.text() };
    };
    const publicDoc = await get('/api/v1/openapi.json');
    if (publicDoc.status !== 200) throw new Error(`GET /api/v1/openapi.json answered ${publicDoc.status}`);
    const operatorDoc = await get('/internal/v1/openapi.json', { authorization: `Bearer ${adminToken}` });
    const documents = {
      public: path.join(work, 'public-openapi.json'),
      operator: undefined,
      operatorStatus: operatorDoc.status,
    };
    await writeFile(documents.public, publicDoc.text);
    if (operatorDoc.status === 200) {
      documents.operator = path.join(work, 'operator-openapi.json');
      await writeFile(documents.operator, operatorDoc.text);
    }
    return documents;
  } finally {
    await stop(child);
    onInterrupt.delete(kill);
    closeSync(log);
  }
}

function prismBin() {
  const require = createRequire(import.meta.url);
  const manifest = require.resolve('@stoplight/prism-cli/package.json');
  const { bin } = JSON.parse(readFileSync(manifest, 'utf8'));
  return path.join(path.dirname(manifest), typeof bin === 'string' ? bin : bin.prism);
}

/** Prism in proxy mode with --errors, checking against `document`, sending on to `upstream`. */
async function startPrism(name, document, upstreamPort, work) {
  const port = await freePort();
  const log = createWriteStream(path.join(work, `prism-${name}.log`));
  const child = spawn(
    process.execPath,
    [
      prismBin(),
      'proxy',
      document,
      `http://127.0.0.1:${upstreamPort}`,
      '--errors',
      '--host',
      '127.0.0.1',
      '--port',
      String(port),
    ],
    { stdio: ['ignore', 'pipe', 'pipe'] },
  );
  onInterrupt.add(() => child.kill('SIGKILL'));
  let output = '';
  for (const stream of [child.stdout, child.stderr]) {
    stream.on('data', (chunk) => {
      output += chunk;
      log.write(chunk);
    });
  }
  try {
    await waitFor(`Prism (${name} document)`, async () => output.includes('Prism is listening'), child);
  } catch (error) {
    throw new Error(`${error.message}:\n${output.trim()}`);
  }
  return { name, port, child };
}

/**
 * The router between the examples and the service. Each request to `/api/v1/` or
 * `/internal/v1/` goes to its Prism, which sends it on to the recorder, which sends it to the
 * service and keeps the answer; Prism's verdict is noted and the example gets the service's answer.
 */
async function startRouter(servicePort, prisms, onRequest) {
  const recorded = new Map();
  let next = 0;

  const recorder = http.createServer(async (request, response) => {
    try {
      const body = await readBody(request);
      const id = String(request.headers['x-check-id']);
      const headers = { ...request.headers };
      delete headers['x-check-id'];
      const answer = await exchange(servicePort(), {
        method: request.method,
        url: request.url,
        headers,
        body,
      });
      recorded.set(id, answer);
      reply(response, answer);
    } catch (error) {
      response.writeHead(502).end(String(error));
    }
  });

  const front = http.createServer(async (request, response) => {
    try {
      const body = await readBody(request);
      const line = Number(request.headers['x-check-line']) || undefined;
      const headers = { ...request.headers };
      delete headers['x-check-line'];
      const { pathname } = new URL(request.url, 'http://localhost');
      const document = pathname.endsWith('/openapi.json')
        ? undefined
        : pathname.startsWith('/api/v1/')
          ? 'public'
          : pathname.startsWith('/internal/v1/')
            ? 'operator'
            : undefined;
      const prism = document && prisms[document];
      const seen = {
        line,
        method: request.method,
        path: request.url,
        document,
        validated: Boolean(prism),
        issues: [],
      };
      if (!prism) {
        reply(
          response,
          await exchange(servicePort(), { method: request.method, url: request.url, headers, body }),
        );
        onRequest(seen);
        return;
      }
      const id = String(++next);
      let verdict;
      try {
        verdict = readVerdict(
          await exchange(prism.port, {
            method: request.method,
            url: request.url,
            headers: { ...headers, 'x-check-id': id },
            body,
          }),
        );
      } catch (error) {
        verdict = { refusal: undefined, items: [], issues: [`Prism gave no answer: ${error.message}`] };
      }
      let answer = recorded.get(id);
      recorded.delete(id);
      if (answer || !verdict.refusal) {
        seen.issues.push(...verdict.issues);
      } else {
        // Prism refused the request before sending it on: the service answers it all the same,
        // and a refusal counts only where the service disagrees.
        answer = await exchange(servicePort(), { method: request.method, url: request.url, headers, body });
        const disputed = disagreements(verdict, answer);
        if (disputed.length > 0) {
          seen.issues.push(
            `Prism refused the request (${verdict.refusal}); the service answered ${answer.status}:`,
          );
          seen.issues.push(...disputed);
        } else {
          seen.agreed = true;
        }
      }
      reply(response, answer);
      onRequest(seen);
    } catch (error) {
      response.writeHead(502).end(`check:examples router: ${error.message}\n`);
    }
  });

  const listen = async (server) => {
    server.listen(0, '127.0.0.1');
    await once(server, 'listening');
    return server.address().port;
  };
  const recorderPort = await listen(recorder);
  const frontPort = await listen(front);
  return {
    recorderPort,
    frontPort,
    close: () => Promise.all([recorder, front].map((s) => new Promise((r) => s.close(r)))),
  };
}

/** One violation as Prism lists it, in words; items of a list are one (`data.*.id`). */
function describe(v) {
  const where = (v.location ?? []).map((part) => (/^\d+$/.test(part) ? '*' : part)).join('.');
  const message = String(v.message).replace(/\.\d+(?=\.|\s|$)/g, '.*');
  return `${v.severity ?? 'Error'}: ${where}${where ? ': ' : ''}${message}${v.code !== undefined ? ` (${v.code})` : ''}`;
}

/**
 * What Prism said about one exchange: `refusal`, the kind of error it answered with instead of
 * the service's answer (undefined when it passed the answer on); `items`, the violations it
 * listed; `issues`, all of it in words (its `sl-violations` header included).
 */
function readVerdict(answer) {
  const verdict = { refusal: undefined, items: [], issues: [] };
  const header = answer.headers['sl-violations'];
  if (typeof header === 'string') {
    try {
      verdict.issues.push(...new Set(JSON.parse(header).map(describe)));
    } catch {
      verdict.issues.push(`sl-violations: ${header}`);
    }
  }
  if (String(answer.headers['content-type']).startsWith('application/problem+json')) {
    let problem;
    try {
      problem = JSON.parse(answer.body.toString('utf8'));
    } catch {}
    if (problem && String(problem.type).startsWith('https://stoplight.io/prism/errors#')) {
      verdict.refusal = String(problem.type).split('#')[1];
      verdict.items = problem.validation ?? [];
      const listed = [...new Set(verdict.items.map(describe))].filter((d) => !verdict.issues.includes(d));
      if (listed.length === 0) verdict.issues.push(`${verdict.refusal}: ${problem.title}: ${problem.detail}`);
      else verdict.issues.push(...listed.map((d) => `${verdict.refusal}: ${d}`));
    }
  }
  return verdict;
}

/** The field a request violation is about: `body.retry_count` -> `retry_count`; a missing `page`. */
function fieldOf(item) {
  const location = (item.location ?? []).filter((part) => part !== 'request');
  const named = /property '([^']+)'/.exec(item.message ?? '');
  return [...location.slice(1), ...(item.code === 'required' && named ? [named[1]] : [])].join('.');
}

/**
 * Of Prism's reasons for refusing a request, those the service does not share: the service
 * refusing the same way (401 for credentials, 404 or 405 for a path, 415 for a body that is not
 * JSON, a 422 on the same fields)
 * means the document and the service agree.
 */
function disagreements(verdict, answer) {
  const status = answer.status;
  const all = verdict.issues;
  switch (verdict.refusal) {
    case 'UNAUTHORIZED':
      return status === 401 ? [] : all;
    case 'NO_PATH_MATCHED_ERROR':
    case 'NO_METHOD_MATCHED_ERROR':
      return status === 404 || status === 405 ? [] : all;
    case 'INVALID_CONTENT_TYPE':
      return status === 415 ? [] : all;
    case 'UNPROCESSABLE_ENTITY': {
      if (verdict.items.length === 0) return status === 422 ? [] : all;
      let fields = [];
      try {
        fields = Object.keys(JSON.parse(answer.body.toString('utf8')).errors ?? {});
      } catch {}
      const shared = (item) => {
        const where = (item.location ?? []).filter((part) => part !== 'request')[0];
        // Prism names some refusals by their status (415 for a content type).
        if (String(item.code) === String(status)) return true;
        if ([400, 413, 415].includes(status) && (where === 'body' || where === 'header')) return true;
        if (status !== 422) return false;
        const field = fieldOf(item);
        return fields.some((f) => f === field || f.startsWith(`${field}.`) || field.startsWith(`${f}.`));
      };
      return [...new Set(verdict.items.filter((item) => !shared(item)).map(describe))];
    }
    default:
      return all;
  }
}

function preamble() {
  return String.raw`
set -eE -o pipefail
__error() { printf '%s %s\n' "$1" "$2" >> "$CHECK_WORK/errors"; }
trap '__error $? $LINENO' ERR
# A failure is the caller's: its line is the one the error trap names.
curl() {
  local status=0
  command curl --max-time 60 -H "X-Check-Line: ${'$'}{BASH_LINENO[0]}" "$@" || status=$?
  return "$status"
}
npx() {
  local status=0
  if [ "${'$'}{1-}" = plandocket-webhooks ]; then
    shift
    node "$CHECK_CLI" "$@" || status=$?
  else
    command npx "$@" || status=$?
  fi
  return "$status"
}
__service_start() {
  node "$CHECK_CLI" serve --role "$1" >> "$CHECK_WORK/service.log" 2>&1 &
  echo $! > "$CHECK_WORK/service.pid"
  for _ in $(seq 600); do
    command curl -sf "http://127.0.0.1:$PORT/healthz" > /dev/null 2>&1 && return 0
    kill -0 "$(cat "$CHECK_WORK/service.pid")" 2> /dev/null || break
    sleep 0.1
  done
  echo "check:examples: the service did not start (see service.log)" >&2
  return 1
}
__service_stop() {
  local pid
  pid=$(cat "$CHECK_WORK/service.pid")
  kill "$pid" 2> /dev/null || true
  wait "$pid" 2> /dev/null || true
}
npm() {
  if [ "$*" = start ]; then
    __service_stop
    __service_start all
  else
    echo "check:examples does not run 'npm $*': tag the block 'sh no-run'" >&2
    return 1
  fi
}
__service_start api
`;
}

/** The runnable blocks of a Markdown file, numbered as they appear among all of its blocks. */
function runnableBlocks(file) {
  const blocks = codeBlocks(readFileSync(path.join(ROOT, file), 'utf8'));
  return blocks.map((block, i) => ({ file, block, index: i + 1 })).filter(({ block }) => isRunnable(block));
}

/** Runs one file's script; resolves with what happened. */
async function runFile(run, context) {
  const { file, parts, work } = run;
  await mkdir(path.join(work, 'data'), { recursive: true });
  symlinkSync(path.join(ROOT, 'examples'), path.join(work, 'examples'));
  const { text, lines } = bashScript(preamble(), parts, `http://127.0.0.1:${context.frontPort}`);
  await writeFile(path.join(work, 'examples.sh'), text);
  context.lines = lines;
  context.file = file;
  const outputFile = path.join(work, 'output.log');
  const output = createWriteStream(outputFile);
  const child = spawn('bash', [path.join(work, 'examples.sh')], {
    cwd: work,
    detached: true,
    env: cleanEnv({
      // The examples' `node` is the one running this check.
      PATH: `${path.dirname(process.execPath)}${path.delimiter}${process.env.PATH ?? ''}`,
      CHECK_WORK: work,
      CHECK_CLI: CLI,
      DATA_DIR: path.join(work, 'data'),
      PORT: String(context.servicePort),
      HOST: '127.0.0.1',
      LOG_LEVEL: 'warn',
      SHUTDOWN_GRACE: '1s',
    }),
    stdio: ['ignore', 'pipe', 'pipe'],
  });
  const killGroup = () => process.kill(-child.pid, 'SIGKILL');
  onInterrupt.add(killGroup);
  for (const stream of [child.stdout, child.stderr]) {
    stream.on('data', (chunk) => {
      output.write(chunk);
      if (verbose) process.stdout.write(chunk);
    });
  }
  let timedOut = false;
  const timer = setTimeout(() => {
    timedOut = true;
    void stopGroup(child);
  }, FILE_TIMEOUT_MS);
  const [code] = await once(child, 'exit');
  clearTimeout(timer);
  await stopGroup(child);
  onInterrupt.delete(killGroup);
  output.end();
  await once(output, 'close');

  const errorsFile = path.join(work, 'errors');
  const errors = existsSync(errorsFile)
    ? readFileSync(errorsFile, 'utf8')
        .trim()
        .split('\n')
        .map((l) => l.split(' ').map(Number))
    : [];
  // The first error on a line of the examples (not of the preamble's helpers) names the command.
  const failedAt = errors.map(([status, line]) => ({ status, at: lines.get(line) })).find((e) => e.at);
  const tail = readFileSync(outputFile, 'utf8')
    .trimEnd()
    .split('\n')
    .slice(-15)
    .map((line) => (line.length > 400 ? `... ${line.slice(-400)}` : line));
  return { file, code, timedOut, failedAt, tail, ran: parts };
}

function where(at) {
  return `${at.file}:${at.line} (block ${at.index})`;
}

function indent(lines, prefix = '    ') {
  return lines.map((l) => `${prefix}${l}`).join('\n');
}

async function main() {
  if (!existsSync(CLI)) {
    say('check:examples: dist/cli.js is missing: run `npm run build` first.');
    process.exit(1);
  }
  // The build's stamp (scripts/build-if-stale.mjs) is written when a build ends; tsc leaves the
  // files it did not change as they were.
  const stamp = path.join(ROOT, 'dist', '.build-stamp');
  const built = statSync(existsSync(stamp) ? stamp : CLI).mtimeMs;
  const sources = ['src', 'portal/src'].map((d) => path.join(ROOT, d));
  const newest = Math.max(...(await Promise.all(sources.map(newestMtime))));
  if (newest > built) {
    say('check:examples: note: src/ is newer than dist/: this checks the last build (`npm run build`).');
  }

  const docs = (await readdir(path.join(ROOT, 'docs')))
    .filter((f) => f.endsWith('.md'))
    .sort()
    .map((f) => `docs/${f}`);
  const files = ['README.md', ...docs].filter((f) => only.length === 0 || only.includes(f));
  const readme = runnableBlocks('README.md');

  const work = mkdtempSync(path.join(os.tmpdir(), 'check-examples-'));
  if (!keep) onInterrupt.add(() => rmSync(work, { recursive: true, force: true }));
  const context = { servicePort: await freePort(), frontPort: 0, lines: new Map(), file: '' };
  const requests = [];
  const prisms = {};
  let router;
  try {
    const documents = await fetchDocuments(work);
    router = await startRouter(
      () => context.servicePort,
      prisms,
      (seen) => {
        const at = seen.line === undefined ? undefined : context.lines.get(seen.line);
        requests.push({ ...seen, at, file: context.file });
      },
    );
    context.frontPort = router.frontPort;
    prisms.public = await startPrism('public', documents.public, router.recorderPort, work);
    if (documents.operator) {
      prisms.operator = await startPrism('operator', documents.operator, router.recorderPort, work);
    }

    const results = [];
    for (const [n, file] of files.entries()) {
      const own = runnableBlocks(file);
      if (own.length === 0) continue;
      const parts = file === 'README.md' ? own : [...readme, ...own];
      const run = { file, parts, work: path.join(work, `run-${n + 1}-${path.basename(file, '.md')}`) };
      const result = await runFile(run, context);
      results.push(result);
      const status = result.code === 0 ? 'ok' : result.timedOut ? 'timed out' : 'FAILED';
      say(`${file}: ${own.length} block${own.length === 1 ? '' : 's'} ${status}`);
    }
    report(results, requests, documents, work);
  } finally {
    for (const prism of Object.values(prisms)) await stop(prism.child);
    await router?.close();
    if (!keep) rmSync(work, { recursive: true, force: true });
  }
}

async function newestMtime(dir) {
  let newest = 0;
  for (const entry of await readdir(dir, { withFileTypes: true, recursive: true })) {
    if (entry.isFile()) newest = Math.max(newest, statSync(path.join(entry.parentPath, entry.name)).mtimeMs);
  }
  return newest;
}

function report(results, requests, documents, work) {
  let problems = 0;
  const failures = results.filter((r) => r.code !== 0);
  if (failures.length > 0 || requests.some((r) => r.issues.length > 0)) say();
  for (const result of failures) {
    problems++;
    const at = result.failedAt?.at;
    if (at) {
      const command = commandAt(at.block, at.line);
      const setup = at.file !== result.file ? ` (run before ${result.file})` : '';
      say(`FAILED ${where({ ...at, line: command.first })}${setup}: exit status ${result.failedAt.status}`);
      say(indent(command.text));
    } else {
      say(
        `FAILED ${result.file}: ${result.timedOut ? `timed out after ${FILE_TIMEOUT_MS / 1000} s` : `exit code ${result.code}`}`,
      );
    }
    say('  last output:');
    say(indent(result.tail));
  }

  // Violations, once each even where README.md's blocks ran before several pages.
  const reported = new Set();
  for (const request of requests) {
    if (request.issues.length === 0) continue;
    const at = request.at;
    const key = `${at ? `${at.file}:${at.line}` : request.file} ${request.method} ${request.path} ${request.issues.join('|')}`;
    if (reported.has(key)) continue;
    reported.add(key);
    problems++;
    const place = at
      ? where({ ...at, line: commandAt(at.block, at.line).first })
      : `${request.file} (line unknown)`;
    say(`VIOLATION ${place}: ${request.method} ${request.path} (${request.document} document)`);
    if (at) say(indent(commandAt(at.block, at.line).text));
    say(indent(request.issues, '  - '));
  }

  const validated = requests.filter((r) => r.validated).length;
  const byDocument = (name) => requests.filter((r) => r.document === name && r.validated).length;
  const agreed = requests.filter((r) => r.agreed).length;
  say();
  if (!documents.operator) {
    problems++;
    const unchecked = requests.filter((r) => r.document === 'operator').length;
    say(
      `MISSING the operator API's document: GET /internal/v1/openapi.json answered ${documents.operatorStatus}, ` +
        `so ${unchecked} requests to /internal/v1/ went to the service unchecked.`,
    );
  }
  say(
    `${results.length} files run, ${failures.length} failed; ${requests.length} requests, ${validated} checked by Prism ` +
      `(public document ${byDocument('public')}, operator document ${byDocument('operator')}; ` +
      `${agreed} refused by Prism and the service alike); ` +
      `${reported.size} violation${reported.size === 1 ? '' : 's'}.`,
  );
  if (keep) say(`Kept: ${work}`);
  process.exitCode = problems > 0 ? 1 : 0;
}

main().catch((error) => {
  say(`check:examples: ${error.stack ?? error}`);
  process.exit(1);
});
