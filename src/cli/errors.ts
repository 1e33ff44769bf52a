// How the CLI reports failure. Every error a user can cause becomes one line on stderr,
// `moets: <what is wrong>; <what to do>`, and a non-zero exit: 2 for usage errors (bad flags, bad values),
// 1 for the rest (missing or malformed files, bad token ids, no such device). Anything else is a bug in moets
// and keeps its stack trace.
import { CommanderError } from 'commander';
import { MoetsError } from '../core/errors.ts';

export const EXIT_FAILURE = 1;
export const EXIT_USAGE = 2;

/** Thrown when commander has already printed what the user asked for (--help, --version): exit with `code`. */
export class CliExit extends Error {
  constructor(readonly code: number) {
    super(`exit ${code}`);
    this.name = 'CliExit';
  }
}

export function usageError(message: string): never {
  throw new MoetsError('usage', message);
}

/** One line, whatever the message held (commander appends "(Did you mean …?)" on a new line). */
export function oneLine(text: string): string {
  return text.replace(/\s*\n\s*/g, ' ').trim();
}

/**
 * The exit callback for one command: help and version exit cleanly, commander's own parse errors
 * (unknown option, missing value, too many arguments) become usage errors that point at this command's --help.
 */
export function commanderExitHandler(commandPath: string): (err: CommanderError) => never {
  return (err) => {
    if (err.code === 'commander.helpDisplayed' || err.code === 'commander.version') throw new CliExit(0);
    // `moets help generate` (exit code 0), or `moets` with no command (help printed on stderr, exit code 1).
    if (err.code === 'commander.help') throw new CliExit(err.exitCode === 0 ? 0 : EXIT_USAGE);
    const what = oneLine(err.message.replace(/^error:\s*/, '')).replace(/\.$/, '');
    return usageError(`${what}; run '${commandPath} --help' to see the usage`);
  };
}

/** Exit code for a user error of this kind. */
export function exitCodeFor(error: MoetsError): number {
  return error.kind === 'usage' ? EXIT_USAGE : EXIT_FAILURE;
}

/** Print what went wrong and return the process exit code. */
export function reportError(error: unknown, writeErr: (text: string) => void): number {
  if (error instanceof CliExit) return error.code;
  if (error instanceof MoetsError) {
    writeErr(`moets: ${oneLine(error.message)}\n`);
    return exitCodeFor(error);
  }
  if (error instanceof CommanderError) {
    // A commander error from a command without our exit handler: still one line.
    writeErr(`moets: ${oneLine(error.message.replace(/^error:\s*/, ''))}\n`);
    return error.exitCode === 0 ? 0 : EXIT_USAGE;
  }
  const stack = error instanceof Error ? (error.stack ?? String(error)) : String(error);
  writeErr(`moets: internal error (a bug in moets; please report it with the command you ran)\n${stack}\n`);
  return EXIT_FAILURE;
}
