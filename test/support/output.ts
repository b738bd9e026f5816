/**
 * Captures what the process writes to stdout and stderr (where the broker's logger writes), line by
 * line, while still passing it through. `restore` puts the streams back; `clear` forgets the lines.
 */
export function captureOutput(): { lines: string[]; clear(): void; restore(): void } {
  const lines: string[] = [];
  const writes = { stdout: process.stdout.write.bind(process.stdout), stderr: process.stderr.write.bind(process.stderr) };
  for (const stream of ['stdout', 'stderr'] as const) {
    process[stream].write = ((chunk: string | Uint8Array, ...rest: unknown[]) => {
      lines.push(
        ...String(chunk)
          .split('\n')
          .filter((line) => line.trim() !== ''),
      );
      return (writes[stream] as (chunk: string | Uint8Array, ...rest: unknown[]) => boolean)(chunk, ...rest);
    }) as typeof process.stdout.write;
  }
  return {
    lines,
    clear: () => void lines.splice(0),
    restore() {
      process.stdout.write = writes.stdout;
      process.stderr.write = writes.stderr;
    },
  };
}
