// The text tokenizer of a model directory: tokenizer.json (+ optional tokenizer_config.json) loaded through
// @huggingface/tokenizers, behind a small typed class. Loading is synchronous. Text goes in and out here;
// everything after this file works on token ids.
import { existsSync, readFileSync } from 'node:fs';
import { join } from 'node:path';
import { Tokenizer } from '@huggingface/tokenizers';
import { fail, MoetsError } from '../core/errors.ts';

export interface EncodeOptions {
  /** Add the special tokens the tokenizer's post-processor adds (BOS for Mistral, nothing for Qwen). Default true. */
  addSpecialTokens?: boolean;
}

export interface DecodeOptions {
  /** Drop special tokens (BOS, EOS, chat markers) from the text. Default false, as in Hugging Face. */
  skipSpecialTokens?: boolean;
}

/** When tokenizer_config.json names no eos_token: special tokens that end a text in common vocabularies. */
const USUAL_EOS_TOKENS = ['</s>', '<|endoftext|>', '<|im_end|>', '<|end_of_text|>', '<|eot_id|>', '<eos>'];

export class TextTokenizer {
  /** Token id of the config's bos_token; undefined when the config names none (Qwen). */
  readonly bosTokenId: number | undefined;
  /** Ids that end a text: the config's eos_token, or else the usual EOS names among the special tokens. */
  readonly eosTokenIds: readonly number[];
  /** One more than the largest token id, added tokens included. */
  readonly vocabSize: number;

  constructor(private readonly tokenizer: Tokenizer, config: Record<string, unknown>) {
    let maxId = -1;
    for (const id of tokenizer.get_vocab(true).values()) maxId = Math.max(maxId, id);
    this.vocabSize = maxId + 1;
    this.bosTokenId = this.idOfConfigToken(config['bos_token']);
    const configEos = this.idOfConfigToken(config['eos_token']);
    this.eosTokenIds = configEos !== undefined ? [configEos] : this.usualEosIds();
  }

  encode(text: string, opts: EncodeOptions = {}): number[] {
    return this.tokenizer.encode(text, { add_special_tokens: opts.addSpecialTokens ?? true }).ids;
  }

  /** Text of `ids`; every id must be an integer in [0, vocabSize). */
  decode(ids: readonly number[], opts: DecodeOptions = {}): string {
    if (ids.length === 0) return '';
    for (const id of ids) {
      if (!Number.isInteger(id) || id < 0 || id >= this.vocabSize) {
        fail('input', `token id ${id} is not in the tokenizer's vocabulary [0, ${this.vocabSize})`);
      }
    }
    return this.tokenizer.decode([...ids], { skip_special_tokens: opts.skipSpecialTokens ?? false });
  }

  /** Id of a token string (added tokens included), or undefined when the vocabulary lacks it. */
  tokenToId(token: string): number | undefined {
    return this.tokenizer.token_to_id(token);
  }

  /** bos_token / eos_token in tokenizer_config.json: a string, an AddedToken object {content}, or null. */
  private idOfConfigToken(entry: unknown): number | undefined {
    const content = typeof entry === 'object' && entry !== null ? (entry as { content?: unknown }).content : entry;
    return typeof content === 'string' ? this.tokenToId(content) : undefined;
  }

  private usualEosIds(): number[] {
    const ids: number[] = [];
    for (const [id, token] of this.tokenizer.get_added_tokens_decoder()) {
      if (token.special && USUAL_EOS_TOKENS.includes(token.content)) ids.push(id);
    }
    return ids.sort((a, b) => a - b);
  }
}

/** The tokenizer of a model directory: dir/tokenizer.json and, when present, dir/tokenizer_config.json. */
export function loadTokenizer(dir: string): TextTokenizer {
  const tokenizerPath = join(dir, 'tokenizer.json');
  if (!existsSync(tokenizerPath)) {
    fail('not-found', `${tokenizerPath} does not exist: text prompts need tokenizer.json (use --ids to pass token ids without it)`);
  }
  const tokenizerJson = readJsonObject(tokenizerPath);
  const configPath = join(dir, 'tokenizer_config.json');
  const config = existsSync(configPath) ? readJsonObject(configPath) : {};
  // The Python tokenizers library never cleans up spaces on decode and transformers 5 does only when the
  // config asks; @huggingface/tokenizers would default to true, so state it.
  config['clean_up_tokenization_spaces'] = config['clean_up_tokenization_spaces'] === true;
  try {
    return new TextTokenizer(new Tokenizer(tokenizerJson, config), config);
  } catch (err) {
    return fail('format', `${tokenizerPath}: not a usable tokenizer.json (${oneLine(err)})`);
  }
}

function readJsonObject(path: string): Record<string, unknown> {
  let value: unknown;
  try {
    value = JSON.parse(readFileSync(path, 'utf8'));
  } catch (err) {
    if (err instanceof SyntaxError) fail('format', `${path}: not valid JSON (${oneLine(err)})`);
    throw new MoetsError('not-found', `${path}: cannot be read (${oneLine(err)})`);
  }
  if (typeof value !== 'object' || value === null || Array.isArray(value)) {
    fail('format', `${path}: expected a JSON object`);
  }
  return value as Record<string, unknown>;
}

function oneLine(err: unknown): string {
  return (err instanceof Error ? err.message : String(err)).split('\n')[0]!;
}
