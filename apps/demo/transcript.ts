/** Who said what, in columns; every check of the story is counted. */
export class Transcript {
  readonly failures: string[] = [];
  private checks = 0;

  constructor(private readonly print: (line: string) => void) {}

  heading(text: string): void {
    this.print('');
    this.print(text);
  }

  say(who: string, text: string): void {
    this.print(`  ${who.padEnd(9)} ${text}`);
  }

  /** An expectation of the story; a broken one is shown and makes the demo fail. */
  expect(condition: boolean, what: string): void {
    this.checks++;
    if (!condition) {
      this.failures.push(what);
      this.say('✗', `expected ${what}`);
    }
  }

  summary(): string {
    return this.failures.length === 0
      ? `The story went as expected (${this.checks} checks passed).`
      : `The story did NOT go as expected: ${this.failures.length} of ${this.checks} checks failed.`;
  }
}

/** Tool arguments as the transcript shows them: compact JSON (they never hold a secret in this story). */
export function shown(args: unknown): string {
  return JSON.stringify(args ?? {});
}
