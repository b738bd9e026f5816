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

/** What the broker answered with an error. */
export interface Refusal {
  status: number;
  /** Its `error` code (invalid_request, not_found...). */
  error: string;
  /** Its `error_description`. */
  description: string;
  /** Its `field`: the input it refused, when it names one. */
  field: string | undefined;
}

/** The broker answered with an error (refused, not found, invalid). */
export class ApiRefused extends CliError implements Refusal {
  readonly exitCode = 1;
  readonly status: number;
  readonly error: string;
  readonly description: string;
  readonly field: string | undefined;

  constructor(message: string, refusal: Refusal) {
    super(message);
    ({ status: this.status, error: this.error, description: this.description, field: this.field } = refusal);
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
