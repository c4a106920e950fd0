import { type ChildProcess, spawn } from 'node:child_process';
import { writeFileSync } from 'node:fs';
import path from 'node:path';

const ROOT = path.resolve(import.meta.dirname, '../..');

export interface ServeProcess {
  child: ChildProcess;
  /** Everything the process printed so far. */
  output(): string;
  /** Resolves with the exit code (or signal name). */
  exited: Promise<number | string>;
  /** The port it listens on: the API's, or a worker's health and metrics. */
  port: number;
}

/** Whether the process has ended (by itself or by a signal). */
export function hasExited(serve: ServeProcess): boolean {
  return serve.child.exitCode !== null || serve.child.signalCode !== null;
}

/** Test clean-up: kills what is still running. */
export function killIfRunning(serves: (ServeProcess | undefined)[]): void {
  for (const serve of serves) if (serve && !hasExited(serve)) serve.child.kill('SIGKILL');
}

/**
 * Runs `plandocket-webhooks serve` from source in a child process, the way an operator does, with
 * the test certificate trusted through NODE_EXTRA_CA_CERTS. Resolves once it says it started.
 * A worker listens on `PORT` too (its health and metrics): give it `PORT: '0'` beside another.
 */
export async function startServe(
  env: Record<string, string>,
  role: 'all' | 'api' | 'worker',
  certificatePem: string,
  dataDir: string,
): Promise<ServeProcess> {
  const caFile = path.join(dataDir, 'test-ca.pem');
  writeFileSync(caFile, certificatePem);
  const child = spawn(process.execPath, ['--import', 'tsx', 'src/cli.ts', 'serve', '--role', role], {
    cwd: ROOT,
    env: { ...process.env, ...env, NODE_EXTRA_CA_CERTS: caFile, LOG_LEVEL: 'info' },
    stdio: ['ignore', 'pipe', 'pipe'],
  });
  let output = '';
  child.stdout?.on('data', (chunk) => {
    output += chunk;
  });
  child.stderr?.on('data', (chunk) => {
    output += chunk;
  });
  const exited = new Promise<number | string>((resolve) =>
    child.on('exit', (code, signal) => resolve(code ?? signal ?? 'unknown')),
  );
  // Starting takes a second or two, far longer on a busy machine.
  const deadline = Date.now() + 120_000;
  while (!/is listening on port|worker started/.test(output)) {
    if (child.exitCode !== null || Date.now() > deadline) {
      child.kill('SIGKILL');
      throw new Error(`serve did not start:\n${output}`);
    }
    await new Promise((resolve) => setTimeout(resolve, 50));
  }
  const port = Number(/"port":(\d+)/.exec(output)?.[1]);
  return { child, output: () => output, exited, port };
}
