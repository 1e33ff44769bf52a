// Reading config.json: the raw JSON object plus typed accessors that turn a missing or bad field into one
// clear line naming the file and the field. Unknown keys are ignored (as mlx-lm does).
import { existsSync, readFileSync, statSync } from 'node:fs';
import { join } from 'node:path';
import { fail } from '../core/errors.ts';

export type JsonObject = Record<string, unknown>;

export function readJsonObject(path: string, what: string): JsonObject {
  if (!existsSync(path)) fail('not-found', `${path}: not found; ${what}`);
  let parsed: unknown;
  try {
    parsed = JSON.parse(readFileSync(path, 'utf8'));
  } catch (e) {
    fail('format', `${path}: not valid JSON (${(e as Error).message}); fix or replace the file`);
  }
  if (typeof parsed !== 'object' || parsed === null || Array.isArray(parsed)) {
    fail('format', `${path}: expected a JSON object`);
  }
  return parsed as JsonObject;
}

/** config.json of a model directory, with field accessors that report the file on failure. */
export class ModelConfig {
  private constructor(readonly path: string, readonly raw: JsonObject) {}

  static read(dir: string): ModelConfig {
    if (!existsSync(dir)) fail('not-found', `model directory ${dir} does not exist; pass a directory with config.json and *.safetensors`);
    if (!statSync(dir).isDirectory()) fail('usage', `${dir} is not a directory; MODEL must be a directory with config.json and *.safetensors`);
    const path = join(dir, 'config.json');
    return new ModelConfig(path, readJsonObject(path, 'a model directory needs the config.json of its checkpoint'));
  }

  static fromObject(path: string, raw: JsonObject): ModelConfig {
    return new ModelConfig(path, raw);
  }

  /**
   * The first of `names` present in the file, else the first: for fields that transformers' attribute_map lets a
   * config.json spell two ways (Qwen3-MoE saves `num_local_experts` for `num_experts`).
   */
  alias(...names: [string, ...string[]]): string {
    return names.find((n) => this.has(n)) ?? names[0];
  }

  has(key: string): boolean {
    return this.raw[key] !== undefined && this.raw[key] !== null;
  }

  private bad(key: string, want: string): never {
    return fail('format', `${this.path}: "${key}" must be ${want}, got ${JSON.stringify(this.raw[key])}; fix config.json (it must match the checkpoint)`);
  }

  /** A required integer ≥ min (default 1). */
  int(key: string, fallback?: number, min = 1): number {
    const v = this.raw[key] ?? fallback;
    if (v === undefined || v === null) fail('format', `${this.path}: missing "${key}" (an integer ≥ ${min}); add it to config.json`);
    if (typeof v !== 'number' || !Number.isInteger(v) || v < min) this.bad(key, `an integer ≥ ${min}`);
    return v;
  }

  /** A required positive number (or a fallback when absent). */
  positive(key: string, fallback?: number): number {
    const v = this.raw[key] ?? fallback;
    if (v === undefined || v === null) fail('format', `${this.path}: missing "${key}" (a positive number); add it to config.json`);
    if (typeof v !== 'number' || !(v > 0) || !Number.isFinite(v)) this.bad(key, 'a positive number');
    return v;
  }

  optionalPositive(key: string): number | undefined {
    return this.has(key) ? this.positive(key) : undefined;
  }

  bool(key: string, fallback: boolean): boolean {
    const v = this.raw[key] ?? fallback;
    if (typeof v !== 'boolean') this.bad(key, 'true or false');
    return v;
  }

  string(key: string, fallback?: string): string {
    const v = this.raw[key] ?? fallback;
    if (typeof v !== 'string') this.bad(key, 'a string');
    return v;
  }

  intList(key: string): number[] {
    const v = this.raw[key] ?? [];
    if (!Array.isArray(v) || !v.every((x) => Number.isInteger(x) && x >= 0)) this.bad(key, 'a list of integers ≥ 0');
    return v as number[];
  }

  stringList(key: string): string[] | undefined {
    const v = this.raw[key];
    if (v === undefined || v === null) return undefined;
    if (!Array.isArray(v) || !v.every((x) => typeof x === 'string')) this.bad(key, 'a list of strings');
    return v as string[];
  }

  /** An int or list of ints (eos_token_id), as a list; empty when absent. */
  idList(key: string): number[] {
    const v = this.raw[key];
    if (v === undefined || v === null) return [];
    const list = Array.isArray(v) ? v : [v];
    if (!list.every((x) => Number.isInteger(x) && x >= 0)) this.bad(key, 'a token id or a list of token ids');
    return list as number[];
  }

  object(key: string): JsonObject | undefined {
    const v = this.raw[key];
    if (v === undefined || v === null) return undefined;
    if (typeof v !== 'object' || Array.isArray(v)) this.bad(key, 'an object');
    return v as JsonObject;
  }
}
