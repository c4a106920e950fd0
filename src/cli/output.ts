/** How the command line shows answers: aligned tables for people, JSON for scripts. */

export type Row = Record<string, string>;

/** Columns padded to their widest cell, a header line first. */
export function table(rows: Row[], columns: string[]): string {
  const widths = columns.map((c) => Math.max(c.length, ...rows.map((r) => (r[c] ?? '').length)));
  const line = (cells: string[]) =>
    cells
      .map((cell, i) => (i === cells.length - 1 ? cell : cell.padEnd(widths[i] as number)))
      .join('  ')
      .trimEnd();
  return `${[line(columns.map((c) => c.toUpperCase())), ...rows.map((r) => line(columns.map((c) => r[c] ?? '')))].join('\n')}\n`;
}

/** `name: value` lines, the names aligned. */
export function fields(entries: [string, string][]): string {
  const width = Math.max(...entries.map(([name]) => name.length));
  return `${entries.map(([name, value]) => `${`${name}:`.padEnd(width + 2)}${value}`.trimEnd()).join('\n')}\n`;
}

export const json = (value: unknown) => `${JSON.stringify(value, null, 2)}\n`;

/** A one-line progress bar on a terminal (redrawn in place); nothing when stderr is not one. */
export function progressBar(stream: NodeJS.WriteStream = process.stderr) {
  let drawn = false;
  return {
    update(done: number, total: number, label: string) {
      if (!stream.isTTY) return;
      const width = 30;
      const filled = total === 0 ? width : Math.round((done / total) * width);
      stream.write(`\r[${'#'.repeat(filled)}${'-'.repeat(width - filled)}] ${done}/${total} ${label}`);
      drawn = true;
    },
    end() {
      if (drawn) stream.write('\n');
    },
  };
}

/**
 * The examples at the end of a command's `--help`: each a command line after `plandocket-webhooks`,
 * environment variables first when it starts with some (`PORT=8081 portal-link acme`).
 */
export function examples(...commands: string[]): string {
  const line = (command: string) => {
    const [, env = '', args = command] = /^((?:[A-Z_]+=\S+ )*)(.*)$/.exec(command) ?? [];
    return `  $ ${env}plandocket-webhooks ${args}`;
  };
  return `\nExample${commands.length > 1 ? 's' : ''}:\n${commands.map(line).join('\n')}\n`;
}
