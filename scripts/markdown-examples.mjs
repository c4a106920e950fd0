/**
 * The shell examples of the documentation, as `npm run check:examples` runs them
 * (scripts/check-examples.mjs). Plain functions on text: no files, no processes.
 *
 * The convention, for README.md and docs/*.md:
 * - a fenced block tagged `sh` is run, in order with the other `sh` blocks of its file;
 * - a block tagged `sh no-run` is shown only (starting a terminal program, installing, editing);
 * - blocks in any other language (`json`, `js`, `php`, `python`, `text`, ...) are never run.
 */

/** The address the examples are written against; the check sends it elsewhere. */
export const DOCUMENTED_ORIGIN = 'http://localhost:8080';

/**
 * The fenced code blocks of a Markdown text: `lang` and `flags` from the info string
 * (```sh no-run -> `sh`, [`no-run`]), and the lines between the fences with `firstLine`, the
 * 1-based line number of the first of them.
 */
export function codeBlocks(markdown) {
  const lines = markdown.split('\n');
  const blocks = [];
  let open;
  for (let i = 0; i < lines.length; i++) {
    const line = lines[i] ?? '';
    if (!open) {
      const start = /^( {0,3})(`{3,}|~{3,})\s*([^`\s]*)\s*(.*)$/.exec(line);
      if (start) {
        open = {
          indent: start[1].length,
          fence: start[2],
          lang: start[3].toLowerCase(),
          flags: start[4].split(/\s+/).filter(Boolean),
          firstLine: i + 2,
          lines: [],
        };
      }
      continue;
    }
    const trimmed = line.trim();
    if (trimmed.startsWith(open.fence[0].repeat(open.fence.length)) && /^(`+|~+)$/.test(trimmed)) {
      blocks.push({ lang: open.lang, flags: open.flags, firstLine: open.firstLine, lines: open.lines });
      open = undefined;
      continue;
    }
    // Content is written at the fence's indentation (inside a list item, for example).
    open.lines.push(line.slice(Math.min(open.indent, line.length - line.trimStart().length)));
  }
  return blocks;
}

/** Whether the check runs this block. */
export const isRunnable = (block) => block.lang === 'sh' && !block.flags.includes('no-run');

/**
 * The first and last line numbers (1-based, in the Markdown file) of the command on `line`
 * of `block`: a command goes on over lines that end with a backslash, a pipe, `&&` or `||`.
 */
export function commandAt(block, line) {
  const at = (n) => block.lines[n - block.firstLine] ?? '';
  const continues = (n) => /(\\|\||&&)\s*$/.test(at(n));
  let first = line;
  while (first > block.firstLine && continues(first - 1)) first--;
  let last = line;
  while (last < block.firstLine + block.lines.length - 1 && continues(last)) last++;
  return { first, last, text: block.lines.slice(first - block.firstLine, last - block.firstLine + 1) };
}

/**
 * One Bash script that runs the given blocks in order after `preamble`, with
 * DOCUMENTED_ORIGIN replaced by `origin`. `lines` maps each line number of the script to the
 * block and Markdown line it came from (preamble lines map to nothing).
 */
export function bashScript(preamble, parts, origin) {
  const out = preamble.trimEnd().split('\n');
  const lines = new Map();
  for (const { file, block, index } of parts) {
    out.push(`# ${file}:${block.firstLine} (block ${index})`);
    block.lines.forEach((text, i) => {
      out.push(text.split(DOCUMENTED_ORIGIN).join(origin));
      lines.set(out.length, { file, block, index, line: block.firstLine + i });
    });
  }
  return { text: `${out.join('\n')}\n`, lines };
}
