// Option parsing shared by the subcommands: numbers, token id lists, the device and the MODEL directory.
// Each parser takes the text the user typed and either returns the value or throws a usage error that names
// the flag, shows what was given and says what to pass instead.
import { existsSync, statSync } from 'node:fs';
import { join, resolve } from 'node:path';
import { Argument, Option } from 'commander';
import type { DeviceChoice } from '../backend/registry.ts';
import { fail } from '../core/errors.ts';
import { usageError } from './errors.ts';

const WHOLE_NUMBER = /^\+?\d+$/;
const DECIMAL = /^\+?(\d+\.?\d*|\.\d+)(e[+-]?\d+)?$/i;

/** A whole number in [min, max] (max optional), e.g. `--max-new-tokens 64`. */
export function wholeNumber(flag: string, min: number, example: number, max = Number.MAX_SAFE_INTEGER): (text: string) => number {
  return (text) => {
    const trimmed = text.trim();
    const value = WHOLE_NUMBER.test(trimmed) ? Number(trimmed) : NaN;
    if (!Number.isSafeInteger(value) || value < min || value > max) {
      const range = max === Number.MAX_SAFE_INTEGER ? `≥ ${min}` : `from ${min} to ${max}`;
      usageError(`${flag} must be a whole number ${range}, got '${text}'; pass e.g. ${flag} ${example}`);
    }
    return value;
  };
}

/** A finite decimal in [min, max], e.g. `--temperature 0.7`. */
export function decimal(flag: string, min: number, max: number, example: string): (text: string) => number {
  return (text) => {
    const trimmed = text.trim();
    const value = DECIMAL.test(trimmed) ? Number(trimmed) : NaN;
    if (!Number.isFinite(value) || value < min || value > max) {
      const range = max === Infinity ? `≥ ${min}` : `from ${min} to ${max}`;
      usageError(`${flag} must be a number ${range}, got '${text}'; pass e.g. ${flag} ${example}`);
    }
    return value;
  };
}

/** `--top-p`: a probability mass in (0, 1]. */
export function probability(flag: string): (text: string) => number {
  const inUnitInterval = decimal(flag, 0, 1, '0.9');
  return (text) => {
    const value = inUnitInterval(text);
    if (value === 0) usageError(`${flag} must be greater than 0 and at most 1, got '${text}'; pass e.g. ${flag} 0.9`);
    return value;
  };
}

/** `--ids 3,1,4`: a non-empty comma-separated list of token ids (whole numbers ≥ 0). */
export function parseTokenIds(text: string): Int32Array {
  const items = text.split(',');
  const ids = new Int32Array(items.length);
  items.forEach((item, i) => {
    const trimmed = item.trim();
    const id = WHOLE_NUMBER.test(trimmed) ? Number(trimmed) : NaN;
    if (!(id >= 0 && id <= 0x7fffffff)) {
      const what = trimmed === '' ? 'is empty' : `'${item}' is not a token id`;
      usageError(`--ids item ${i + 1} ${what} (got '${text}'); pass whole numbers ≥ 0 separated by commas, e.g. --ids 3,1,4`);
    }
    ids[i] = id;
  });
  return ids;
}

const DEVICES: readonly DeviceChoice[] = ['cpu', 'cuda', 'auto'];

/** The device from --device, else MOETS_DEVICE, else 'auto' (the best one this build has: today the CPU). */
export function resolveDevice(flag: string | undefined, env: string | undefined = process.env['MOETS_DEVICE']): DeviceChoice {
  const [text, source] = flag !== undefined ? [flag, '--device'] : env ? [env, 'MOETS_DEVICE'] : ['auto', 'default'];
  const device = DEVICES.find((d) => d === text.trim().toLowerCase());
  if (device === undefined) usageError(`unknown device '${text}' (from ${source}); use cpu, cuda or auto`);
  return device;
}

/** Checks a MODEL directory exists and has a config.json; returns its absolute path. */
export function checkModelDir(dir: string, isDefault: boolean): string {
  const path = resolve(dir);
  if (!existsSync(path)) {
    if (isDefault) fail('not-found', `the embedded default model is missing at ${path}; reinstall moets or pass a MODEL directory`);
    fail('not-found', `model directory '${dir}' does not exist; pass a directory with config.json and *.safetensors`);
  }
  if (!statSync(path).isDirectory()) {
    fail('usage', `MODEL '${dir}' is a file, not a directory; pass the directory that holds config.json and *.safetensors`);
  }
  if (!existsSync(join(path, 'config.json'))) {
    fail('not-found', `'${dir}' has no config.json; pass a Hugging Face model directory (config.json + *.safetensors)`);
  }
  return path;
}

/** The optional MODEL argument every command takes. */
export function modelArgument(): Argument {
  return new Argument('[model]', 'model directory (config.json, *.safetensors, tokenizer.json); default: the embedded model');
}

/** MODEL as given, or the embedded default model (found from the package root, not the working directory). */
export async function resolveModelArgument(model: string | undefined): Promise<string> {
  if (model !== undefined) return checkModelDir(model, false);
  const { DEFAULT_MODEL_DIR } = await import('./engine.ts');
  return checkModelDir(DEFAULT_MODEL_DIR, true);
}

/** `--device`: validated by resolveDevice in the action, so MOETS_DEVICE gets the same checks. */
export function deviceOption(): Option {
  return new Option('--device <device>', 'where to run: cpu, cuda or auto (default: $MOETS_DEVICE, else auto = best available)');
}

// Sampling flags shared by `generate` and `chat`. Defaults as llama.cpp's: temperature 0.8 with top-k 40 and
// top-p 0.95 reads well without wandering off.
export const DEFAULT_MAX_NEW_TOKENS = 64;
export const DEFAULT_TEMPERATURE = 0.8;
export const DEFAULT_TOP_K = 40;
export const DEFAULT_TOP_P = 0.95;

/** What the sampling options below parse to (commander's camel-cased flag names). */
export interface SamplingFlags {
  maxNewTokens: number;
  temperature: number;
  topK: number;
  topP: number;
  seed?: number;
}

/** --max-new-tokens, --temperature, --top-k, --top-p and --seed, with their parsers and defaults. */
export function samplingOptions(): Option[] {
  return [
    new Option('--max-new-tokens <n>', 'stop after this many new tokens (or at end-of-sequence)')
      .argParser(wholeNumber('--max-new-tokens', 1, 64)).default(DEFAULT_MAX_NEW_TOKENS),
    new Option('--temperature <t>', 'sampling temperature; 0 = greedy (always the most likely token)')
      .argParser(decimal('--temperature', 0, 100, '0.7')).default(DEFAULT_TEMPERATURE),
    new Option('--top-k <k>', 'sample only among the k most likely tokens; 0 = no limit')
      .argParser(wholeNumber('--top-k', 0, 40)).default(DEFAULT_TOP_K),
    new Option('--top-p <p>', 'sample only among the most likely tokens whose probabilities sum to p; 1 = no limit')
      .argParser(probability('--top-p')).default(DEFAULT_TOP_P),
    new Option('--seed <n>', 'random seed: the same seed gives the same text (default: a random seed)')
      .argParser(wholeNumber('--seed', 0, 42, 2 ** 32 - 1)),
  ];
}

/** `--system <text>`: the system message that opens a chat. */
export function systemOption(): Option {
  return new Option('--system <text>', 'a system message that opens the conversation (if the chat template accepts one)');
}
