#!/usr/bin/env node
import { buildProgram } from './cli/program.js';

/** The operator's command line: see src/cli/program.ts. */

// better-sqlite3 13 crashes on older Node.js lines (a segmentation fault, no message): say why instead.
const nodeMajor = Number(process.versions.node.split('.')[0]);
if (nodeMajor < 22) {
  process.stderr.write(`PlanDocket Webhooks needs Node.js 22 or newer; this is ${process.version}.\n`);
  process.exit(1);
}

buildProgram()
  .parseAsync()
  .catch((error: unknown) => {
    process.stderr.write(`${error instanceof Error ? error.message : String(error)}\n`);
    process.exit(1);
  });
