// `moets logits [MODEL] --ids 3,1,4 --out FILE`: one full forward pass over the ids; the logits go to FILE as
// float32 little-endian, row-major [tokens, vocab] (no header), and the shape is printed. FILE is written to
// a temporary name beside it and renamed at the end, so a failure never leaves a partial FILE behind.
import { existsSync, renameSync, rmSync, statSync, writeFileSync } from 'node:fs';
import { endianness } from 'node:os';
import { basename, dirname, join, resolve } from 'node:path';
import { Command } from 'commander';
import { assert, fail } from '../core/errors.ts';
import { usageError } from './errors.ts';
import { deviceOption, modelArgument, parseTokenIds, resolveDevice, resolveModelArgument } from './options.ts';

interface LogitsFlags {
  ids: Int32Array;
  out: string;
  device?: string;
}

export function logitsCommand(): Command {
  return new Command('logits')
    .description('run one full forward pass over token ids and write the logits as raw float32')
    .addArgument(modelArgument())
    .requiredOption('--ids <ids>', 'input token ids, comma-separated, e.g. 3,1,4', parseTokenIds)
    .requiredOption('--out <file>', 'output file: float32 little-endian, row-major [tokens, vocab], no header')
    .addOption(deviceOption())
    .addHelpText('after', `
Example:
  $ moets logits path/to/model --ids 3,1,4 --out logits.f32
  logits [3, 32000] f32 → logits.f32
Read it back in Python with numpy.fromfile("logits.f32", "<f4").reshape(3, 32000).`)
    .action(async (model: string | undefined, flags: LogitsFlags) => {
      const device = resolveDevice(flags.device);
      checkOutputPath(flags.out);
      const { loadModel } = await import('./engine.ts');
      const lm = await loadModel(await resolveModelArgument(model), { device });
      // logits: [T, V]  T = tokens, V = vocabulary
      const logits = await lm.forward(flags.ids, lm.newCache());
      const values = await logits.read();
      assert(values instanceof Float32Array && logits.rank === 2, `forward returned ${logits.toString()}`);
      writeFileAtomically(flags.out, littleEndianBytes(values));
      process.stdout.write(`logits [${logits.shape.join(', ')}] f32 → ${flags.out}\n`);
      logits.dispose();
    });
}

/** Fail before the (slow) forward pass when --out cannot be a file. */
function checkOutputPath(out: string): void {
  const parent = dirname(resolve(out));
  if (!existsSync(parent) || !statSync(parent).isDirectory()) {
    usageError(`--out '${out}': directory '${dirname(out)}' does not exist; create it or pass a path in an existing directory`);
  }
  if (existsSync(out) && statSync(out).isDirectory()) {
    usageError(`--out '${out}' is a directory; pass a file name, e.g. --out ${join(out, 'logits.f32')}`);
  }
}

function littleEndianBytes(values: Float32Array): Uint8Array {
  if (endianness() === 'LE') return new Uint8Array(values.buffer, values.byteOffset, values.byteLength);
  const bytes = new Uint8Array(values.byteLength);
  const view = new DataView(bytes.buffer);
  values.forEach((v, i) => view.setFloat32(i * 4, v, true));
  return bytes;
}

/** Write to `<file>.<pid>.tmp` in the same directory, then rename over `file` (atomic on one file system). */
function writeFileAtomically(file: string, bytes: Uint8Array): void {
  const temporary = join(dirname(file), `.${basename(file)}.${process.pid}.tmp`);
  try {
    writeFileSync(temporary, bytes);
    renameSync(temporary, file);
  } catch (error) {
    rmSync(temporary, { force: true });
    const reason = (error as NodeJS.ErrnoException).code ?? String(error);
    fail('input', `cannot write --out '${file}' (${reason}); check the path is writable and the disk has room`);
  }
}
