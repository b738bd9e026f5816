/**
 * Every way the CLI stops, with its exit status. The message is one line for stderr: never a stack
 * trace, never a key.
 */
export abstract class CliError extends Error {
  abstract readonly exitCode: number;
}

/** Bad arguments or a bad file: nothing was sent. */
export class UsageError extends CliError {
  readonly exitCode = 2;
  constructor(
    message: string,
    /** Point at --help (bad arguments), or not (a bad file says what is wrong in it). */
    readonly showUsage = true,
  ) {
    super(message);
  }
}

/** The broker answered with an error (refused, not found, invalid). */
export class ApiRefused extends CliError {
  readonly exitCode = 1;
  constructor(
    message: string,
    readonly status: number,
    readonly error: string,
    readonly field: string | undefined,
  ) {
    super(message);
  }
}

/** No answer from the broker (connection refused, DNS, timeout), or it cannot serve (5xx). */
export class Unreachable extends CliError {
  readonly exitCode = 3;
}

/** `audit verify` found the chain broken. */
export class ChainBroken extends CliError {
  readonly exitCode = 4;
}
