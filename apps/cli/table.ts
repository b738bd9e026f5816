/** Columns padded to their widest cell; the last column is not padded. Cells are single-line. */
export function table(headers: readonly string[], rows: ReadonlyArray<readonly string[]>): string {
  const clean = rows.map((row) => row.map((cell) => cell.replace(/[\r\n\t]+/g, ' ')));
  const widths = headers.map((header, i) => Math.max(header.length, ...clean.map((row) => (row[i] ?? '').length)));
  const line = (cells: readonly string[]) =>
    cells
      .map((cell, i) => (i === cells.length - 1 ? cell : cell.padEnd(widths[i]!)))
      .join('  ')
      .trimEnd();
  return [line(headers), ...clean.map(line)].join('\n') + '\n';
}
