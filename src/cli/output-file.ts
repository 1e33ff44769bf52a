// Files a command writes on request (`--out FILE`, `--routing-stats-json FILE`): the path is checked before any slow work, and
// the file is written under a temporary name beside it and renamed at the end, so a failure never leaves a
// partial FILE behind.
import { existsSync, renameSync, rmSync, statSync, writeFileSync } from 'node:fs';
import { basename, dirname, join, resolve } from 'node:path';
import { fail } from '../core/errors.ts';
import { usageError } from './errors.ts';

/** Fail early (a usage error naming `flag`) when `file` cannot be an output file. */
export function checkOutputFile(flag: string, file: string, exampleName: string): void {
  const parent = dirname(resolve(file));
  if (!existsSync(parent) || !statSync(parent).isDirectory()) {
    usageError(`${flag} '${file}': directory '${dirname(file)}' does not exist; create it or pass a path in an existing directory`);
  }
  if (existsSync(file) && statSync(file).isDirectory()) {
    usageError(`${flag} '${file}' is a directory; pass a file name, e.g. ${flag} ${join(file, exampleName)}`);
  }
}

/** Write to `.<name>.<pid>.tmp` in the same directory, then rename over `file` (atomic on one file system). */
export function writeFileAtomically(flag: string, file: string, data: string | Uint8Array): void {
  const temporary = join(dirname(file), `.${basename(file)}.${process.pid}.tmp`);
  try {
    writeFileSync(temporary, data);
    renameSync(temporary, file);
  } catch (error) {
    rmSync(temporary, { force: true });
    const reason = (error as NodeJS.ErrnoException).code ?? String(error);
    fail('input', `cannot write ${flag} '${file}' (${reason}); check the path is writable and the disk has room`);
  }
}
