// `moets bench moe-layer|decode`: the benchmarks of src/bench/ (one implementation; bench/*.ts only forward here).
// Progress goes to stderr, the table to stdout last, and --json FILE gets every cell (rewritten after each one, so a
// run cut short keeps what it measured). Flags are checked before any slow work.
import { Command, Option } from 'commander';
import type { DeviceChoice } from '../backend/registry.ts';
import { fail } from '../core/errors.ts';
import { commanderExitHandler, usageError } from './errors.ts';
import { deviceOption, resolveDevice, wholeNumber } from './options.ts';
import { checkOutputFile, writeFileAtomically } from './output-file.ts';

/** Commander's errors go through our handler (one line, exit 2), as program.ts does for the top-level commands. */
function subcommand(name: string): Command {
  return new Command(name)
    .exitOverride(commanderExitHandler(`moets bench ${name}`))
    .configureOutput({ outputError: () => {} })
    .showHelpAfterError(false)
    .helpOption('-h, --help', 'show this help');
}

/** `--flag a,b,c`: a non-empty comma-separated list, each item parsed by `item`. */
function list<T>(flag: string, item: (text: string) => T): (text: string) => T[] {
  return (text) => {
    const items = text.split(',').map((s) => s.trim());
    if (items.some((s) => s === '')) usageError(`${flag} '${text}' has an empty item; pass comma-separated values, e.g. ${flag} 1,32`);
    return items.map(item);
  };
}

/** Every name in `given` must be one of `known`. */
function checkNames(flag: string, given: readonly string[], known: readonly string[]): void {
  const unknown = given.filter((m) => !known.includes(m));
  if (unknown.length > 0) usageError(`${flag}: unknown '${unknown.join(',')}'; choose from ${known.join(', ')}`);
}

function jsonOption(): Option {
  return new Option('--json <file>', 'also write every cell as JSON to FILE (bench/compare.ts reads it)');
}

function log(line: string): void {
  process.stderr.write(`${line}\n`);
}

interface MoeLayerFlags {
  models?: string[];
  tokens?: number[];
  quick?: true;
  json?: string;
  device?: string;
}

function moeLayerCommand(): Command {
  return subcommand('moe-layer')
    .description('time one MoE layer (bf16, random weights, real models\' expert shapes) against its memory/compute floor (GPU only)')
    .option('--models <list>', 'comma-separated shapes (default: all five; --quick: Mixtral-8x7B,Qwen3-30B-A3B)', list('--models', String))
    .option('--tokens <list>', 'comma-separated token counts (default: 1,8,64,512,4096,16384; --quick: 1,64,4096)',
      list('--tokens', wholeNumber('--tokens', 1, 64)))
    .option('--quick', 'fewer cells and shorter timing (300 ms per cell instead of 1 s)')
    .addOption(jsonOption())
    .addOption(deviceOption())
    .addHelpText('after', `
Runs on the GPU only: the floors come from the GPU's measured copy bandwidth and bf16 GEMM rate, and the shapes
(up to 2.8 GB of experts per layer) are GPU-sized; on the CPU, bench/cpu-matmul.ts measures the kernels.

Example:
  $ moets bench moe-layer --device cuda --quick --json moe-layer.json`)
    .action(async (flags: MoeLayerFlags) => {
      const device = resolveDevice(flags.device);
      if (flags.json !== undefined) checkOutputFile('--json', flags.json, 'moe-layer.json');
      const bench = await import('../bench/moe-layer.ts');
      const models = flags.models ?? (flags.quick ? bench.QUICK_MODELS : bench.SHAPES.map((s) => s.model));
      checkNames('--models', models, bench.SHAPES.map((s) => s.model));
      const cuda = await openCuda(device);
      const file = await bench.runMoeLayerBench(cuda, {
        models,
        tokens: flags.tokens ?? (flags.quick ? bench.QUICK_TOKENS : bench.TOKENS),
        capMs: flags.quick ? 300 : 1000,
        save: (f) => flags.json !== undefined && writeFileAtomically('--json', flags.json, JSON.stringify(f, null, 2)),
        log,
      });
      process.stdout.write(`${bench.formatMoeTable(file.cells)}\n${bench.moeSummary(file.cells)}\n`);
    });
}

/** The CUDA backend, or one line saying the MoE-layer benchmark needs it. */
async function openCuda(device: DeviceChoice) {
  const [{ getBackend }, { CudaBackend }] = await Promise.all([import('../backend/registry.ts'), import('../backend/cuda/cuda-backend.ts')]);
  if (device === 'cpu') fail('unsupported', 'moets bench moe-layer measures the GPU kernels; pass --device cuda on a machine with an NVIDIA GPU');
  const backend = getBackend(device);
  if (!(backend instanceof CudaBackend)) fail('unsupported', 'moets bench moe-layer needs a CUDA GPU and --device auto found none; pass --device cuda to see why');
  return backend;
}

/** Batch 1 (issue 3's target) and, on the GPU, 32; the CPU run is a quick smoke case. */
const defaultBatches = (onGpu: boolean) => (onGpu ? [1, 32] : [1]);

interface DecodeFlags {
  models?: string[];
  batch?: number[];
  promptTokens: number;
  steps: number;
  warmup: number;
  json?: string;
  device?: string;
}

function decodeCommand(): Command {
  return subcommand('decode')
    .description('greedy decode tokens/s at batch 1 (and more) against the HBM floor (active weight bytes per step ÷ bandwidth)')
    .option('--models <list>', 'comma-separated: default (the embedded model), Mixtral-8x7B, Qwen3-30B-A3B (full-size '
      + 'configs, random bf16 weights, GPU only) (default: all three on the GPU, default on the CPU)', list('--models', String))
    .option('--batch <list>', 'comma-separated batch sizes: sequences decoded in lockstep (default: 1,32 on the GPU, 1 on the CPU)',
      list('--batch', wholeNumber('--batch', 1, 1)))
    .addOption(new Option('--prompt-tokens <n>', 'prompt length P prefilled before the timed steps')
      .argParser(wholeNumber('--prompt-tokens', 1, 128)).default(128))
    .addOption(new Option('--steps <n>', 'decode steps timed').argParser(wholeNumber('--steps', 1, 64)).default(64))
    .addOption(new Option('--warmup <n>', 'untimed decode steps first: the first runs op by op, the second captures the step '
      + '(a CUDA graph) that the timed steps replay')
      .argParser(wholeNumber('--warmup', 0, 4)).default(4))
    .addOption(jsonOption())
    .addOption(deviceOption())
    .addHelpText('after', `
Each step's time is the wall clock of one decode step (B new tokens, logits back on the host); the greedy pick is
outside it. The floor counts the weights a step must read (attention, norms, routers, the experts the batch chose,
LM head, embedding rows) and the KV cache, over the copy bandwidth measured in the same run.

Examples:
  $ moets bench decode --device cpu --steps 16                   the embedded model on the CPU
  $ moets bench decode --device cuda --json decode.json          full-size Mixtral-8x7B and Qwen3-30B-A3B shapes`)
    .action(async (flags: DecodeFlags) => {
      const device = resolveDevice(flags.device);
      if (flags.json !== undefined) checkOutputFile('--json', flags.json, 'decode.json');
      const [bench, { getBackend }] = await Promise.all([import('../bench/decode.ts'), import('../backend/registry.ts')]);
      const onGpu = getBackend(device).name !== 'cpu';
      const batches = flags.batch ?? defaultBatches(onGpu);
      const models = flags.models ?? (onGpu ? bench.DECODE_MODELS.map((m) => m.name) : ['default']);
      checkNames('--models', models, bench.DECODE_MODELS.map((m) => m.name));
      const tooBig = models.filter((m) => !onGpu && m !== 'default');
      if (tooBig.length > 0) fail('unsupported', `${tooBig.join(', ')}: full-size models run on the GPU only (tens of GB of weights); pass --device cuda, or --models default`);
      const file = await bench.runDecodeBench({
        device, models, batches, promptTokens: flags.promptTokens, steps: flags.steps, warmup: flags.warmup,
        save: (f) => flags.json !== undefined && writeFileAtomically('--json', flags.json, JSON.stringify(f, null, 2)),
        log,
      });
      process.stdout.write(`${bench.formatDecodeTable(file.cells)}\n${bench.decodeSummary(file.cells)}\n`);
    });
}

export function benchCommand(): Command {
  return new Command('bench')
    .description('benchmarks: one MoE layer (GPU) or whole-model decode, against the hardware floor; --json for the cells')
    .addCommand(moeLayerCommand())
    .addCommand(decodeCommand())
    .addHelpText('after', `
Examples:
  $ moets bench decode --device cpu --steps 16
  $ moets bench moe-layer --device cuda --json moe-layer.json
Compare with the PyTorch peers (scripts/peer_*.py): node --import tsx bench/compare.ts MOETS.json PEER.json`);
}
