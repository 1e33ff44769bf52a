// The `moets` command line (bin/moets.js imports this file): runs the program (program.ts) and is the one place
// where a failure becomes what the user sees — a one-line `moets: …` message and exit 2 (usage) or 1 (other),
// or a stack trace for a bug (errors.ts).
import { reportError } from './errors.ts';
import { buildProgram } from './program.ts';

/** Runs the CLI on `argv` (as process.argv) and returns the exit code. */
export async function main(argv: readonly string[]): Promise<number> {
  try {
    await buildProgram().parseAsync([...argv]);
    return 0;
  } catch (error) {
    return reportError(error, (text) => process.stderr.write(text));
  }
}

// A closed pipe (`moets generate … | head -1`) ends the output, it is not an error.
process.stdout.on('error', (error: NodeJS.ErrnoException) => {
  if (error.code === 'EPIPE') process.exit(0);
  throw error;
});

process.exitCode = await main(process.argv);
