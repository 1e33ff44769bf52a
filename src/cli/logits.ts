// `moets logits [MODEL] --ids 3,1,4 --out FILE`: one full forward pass over the ids; the logits go to FILE as
// float32 little-endian, row-major [tokens, vocab] (no header), and the shape is printed. FILE is written to
// a temporary name beside it and renamed at the end (output-file.ts), so a failure never leaves a partial FILE.
import { endianness } from 'node:os';
import { Command } from 'commander';
import { assert } from '../core/errors.ts';
import { deviceOption, modelArgument, parseTokenIds, resolveDevice, resolveModelArgument } from './options.ts';
import { checkOutputFile, writeFileAtomically } from './output-file.ts';

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
      checkOutputFile('--out', flags.out, 'logits.f32');
      const { loadModel } = await import('./engine.ts');
      const lm = await loadModel(await resolveModelArgument(model), { device });
      // logits: [T, V]  T = tokens, V = vocabulary
      const logits = await lm.forward(flags.ids, lm.newCache());
      const values = await logits.read();
      assert(values instanceof Float32Array && logits.rank === 2, `forward returned ${logits.toString()}`);
      writeFileAtomically('--out', flags.out, littleEndianBytes(values));
      process.stdout.write(`logits [${logits.shape.join(', ')}] f32 → ${flags.out}\n`);
      logits.dispose();
    });
}

function littleEndianBytes(values: Float32Array): Uint8Array {
  if (endianness() === 'LE') return new Uint8Array(values.buffer, values.byteOffset, values.byteLength);
  const bytes = new Uint8Array(values.byteLength);
  const view = new DataView(bytes.buffer);
  values.forEach((v, i) => view.setFloat32(i * 4, v, true));
  return bytes;
}
