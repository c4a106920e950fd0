/**
 * docs/benchmarks.md from a results file: `npx tsx bench/report.ts bench/results/bench-....json`
 * (the benchmark run writes it too).
 */
import { readFileSync, writeFileSync } from 'node:fs';
import path from 'node:path';
import { fileURLToPath } from 'node:url';

export type Row = { scenario: string; [metric: string]: number | string };
export interface Machine {
  cpu: string;
  cores: number;
  memory_gib: number;
  node: string;
  commit: string;
  date: string;
  mode: string;
  runs: number;
}

const ROOT = path.resolve(import.meta.dirname, '..');

/** One line per scenario: its name, then what was measured. */
export function renderMarkdown(
  machine: Machine,
  medians: Row[],
  resultsFile: string,
  postgres: boolean,
): string {
  const measured = (row: Row) =>
    Object.entries(row)
      .filter(([key]) => key !== 'scenario')
      .map(([key, value]) => `${key.replace(/_/g, ' ')}: **${value}**`)
      .join(', ');
  return [
    '# Benchmarks',
    '',
    `Machine: ${machine.cpu}, ${machine.cores} cores, ${machine.memory_gib} GiB, Node ${machine.node}. Commit ${machine.commit}, ${machine.date}.`,
    `Mode: ${machine.mode}, medians of ${machine.runs} run(s). Produced by \`npm run bench\`${postgres ? ' with `BENCH_DATABASE_URL` set' : ''}; the raw numbers are in \`bench/results/${path.basename(resultsFile)}\`.`,
    '',
    'The service runs from `dist/` as separate processes (SQLite: one `serve` process; PostgreSQL: one API',
    'process and one or two worker processes) and delivers to an HTTPS receiver in the benchmark process over',
    'loopback. The ceiling is the same receiver, payload and signing sent by a plain undici loop with 25',
    'connections (the per-webhook cap) and no database; `x ceiling` is a throughput divided by it. The API',
    "ceiling is Fastify in a process of its own answering the list's own bytes with no authentication,",
    'database or serialization; `x api ceiling` is the list route divided by it. Latencies run from the',
    'publish call (a batch every 10 ms) to the arrival at the receiver, over 20 steady seconds after 2 seconds',
    'at the same rate whose worst case is shown apart (`cold max`). The backlog is queued by the API alone,',
    'then the delivering processes start; RSS is theirs, summed. Start: `serve --role all` restarted on',
    'the SQLite database of a run whose deliveries were sent, from spawning the process to its first 200 on',
    '`/healthz` and on `/readyz`, the median of several starts. Noisy neighbour: tenant B publishes 50',
    'events a second for 20 s to one webhook, alone and then after tenant A queued 3,000 deliveries to 30',
    'webhooks that never answer (timeout 30 s, another origin); from the publish call to the arrival (an',
    "event of B not arrived within 120 s counts with the time waited). The target: B's p99 with A at most",
    '1.5 times its p99 without A, plus 20 ms.',
    '',
    '| scenario | measured |',
    '| --- | --- |',
    ...medians.map((row) => `| ${row.scenario} | ${measured(row)} |`),
    '',
  ].join('\n');
}

export function writeReport(machine: Machine, medians: Row[], resultsFile: string, postgres: boolean): void {
  writeFileSync(
    path.join(ROOT, 'docs', 'benchmarks.md'),
    renderMarkdown(machine, medians, resultsFile, postgres),
  );
}

if (process.argv[1] === fileURLToPath(import.meta.url)) {
  const file = process.argv[2] as string;
  const { machine, medians } = JSON.parse(readFileSync(file, 'utf8'));
  writeReport(
    machine,
    medians,
    file,
    medians.some((r: Row) => r.scenario.includes('postgres')),
  );
}
