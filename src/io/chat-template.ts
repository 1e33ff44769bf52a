// A model's chat template: the Jinja program in tokenizer_config.json (or chat_template.jinja) that turns a
// conversation into the text the model was tuned on, rendered with @huggingface/jinja the way transformers 5
// renders it (PreTrainedTokenizerBase.apply_chat_template): the variables `messages`, `add_generation_prompt`,
// `tools` and `documents` (None), and the named special tokens of the config as strings; the rendered text is
// then encoded WITHOUT the tokenizer's own special tokens, because the template already wrote them (BOS).
import { existsSync, readdirSync, readFileSync } from 'node:fs';
import { join } from 'node:path';
import { Template } from '@huggingface/jinja';
import { fail } from '../core/errors.ts';
import type { TextTokenizer } from './tokenizer.ts';

export interface ChatMessage {
  /** 'system', 'user' or 'assistant' (templates may accept more, e.g. 'tool'). */
  role: string;
  content: string;
}

export interface ChatRenderOptions {
  /** Append the header that opens the assistant's turn (what generation continues). */
  addGenerationPrompt: boolean;
}

/** transformers' SPECIAL_TOKENS_ATTRIBUTES: the named special tokens every template receives (when set). */
const SPECIAL_TOKEN_NAMES = ['bos_token', 'eos_token', 'unk_token', 'sep_token', 'pad_token', 'cls_token', 'mask_token'];

/** What to do when a model cannot chat, appended to every error of this file. */
const WHAT_TO_DO = 'use moets generate --prompt for plain text';

export class ChatTemplate {
  private readonly template: Template;

  /**
   * @param source the Jinja source
   * @param specialTokens named special tokens as strings (bos_token, eos_token, …), passed to the template
   * @param origin where the source came from, for error messages (a file path)
   */
  constructor(readonly source: string, private readonly specialTokens: Readonly<Record<string, string>>, readonly origin: string) {
    try {
      this.template = new Template(source);
    } catch (err) {
      fail('format', `${origin}: the chat template is not valid Jinja (${firstLine(err)}); fix the template or ${WHAT_TO_DO}`);
    }
  }

  /** The conversation as the model's text; a template that rejects it (raise_exception) fails with its message. */
  render(messages: readonly ChatMessage[], opts: ChatRenderOptions): string {
    const variables = {
      ...this.specialTokens,
      // As transformers: tools and documents are None when not given (so `tools is none` holds).
      tools: null,
      documents: null,
      messages: messages.map((m) => ({ role: m.role, content: m.content })),
      add_generation_prompt: opts.addGenerationPrompt,
    };
    try {
      return this.template.render(variables);
    } catch (err) {
      return fail('input', `the chat template of ${this.origin} cannot render this conversation: ${firstLine(err)}; `
        + `change the conversation (roles, order, --system) or ${WHAT_TO_DO}`);
    }
  }

  /** Token ids of the rendered conversation: encoded without adding special tokens (apply_chat_template does the same). */
  encode(tokenizer: TextTokenizer, messages: readonly ChatMessage[], opts: ChatRenderOptions): number[] {
    return tokenizer.encode(this.render(messages, opts), { addSpecialTokens: false });
  }

  /**
   * The special token that closes an assistant turn (`<|im_end|>`, `<|eot_id|>`, `</s>`…), found by rendering a
   * finished assistant turn and reading the first token after its text; undefined when that is not a special token.
   */
  endOfTurnTokenId(tokenizer: TextTokenizer): number | undefined {
    const marker = 'MOETS_END_OF_TURN_PROBE';
    let rendered: string;
    try {
      rendered = this.render([{ role: 'user', content: 'Hi' }, { role: 'assistant', content: marker }], { addGenerationPrompt: false });
    } catch {
      return undefined;
    }
    const after = rendered.slice(rendered.lastIndexOf(marker) + marker.length);
    if (rendered.lastIndexOf(marker) < 0 || after === '') return undefined;
    const first = tokenizer.encode(after, { addSpecialTokens: false })[0];
    if (first === undefined) return undefined;
    // A special token has text of its own that skipSpecialTokens removes (a bare '▁' has none either way).
    const isSpecial = tokenizer.decode([first]) !== '' && tokenizer.decode([first], { skipSpecialTokens: true }) === '';
    return isSpecial ? first : undefined;
  }
}

/**
 * The chat template of a model directory, found as transformers 5 finds it: chat_template.jinja (and
 * additional_chat_templates/*.jinja) take priority over `chat_template` in tokenizer_config.json, which is a
 * string or a list of {name, template}; with several templates the one named "default" is used.
 */
export function loadChatTemplate(dir: string): ChatTemplate {
  const configPath = join(dir, 'tokenizer_config.json');
  const config = existsSync(configPath) ? readConfig(configPath) : {};
  const found = templateFiles(dir) ?? configTemplates(config, configPath);
  if (found === undefined) {
    fail('unsupported', `${dir} has no chat template (no chat_template in tokenizer_config.json, no chat_template.jinja); `
      + `${WHAT_TO_DO}, or add a chat_template to tokenizer_config.json`);
  }
  const source = found.templates.get('default');
  if (source === undefined) {
    fail('unsupported', `${found.origin} has several chat templates (${[...found.templates.keys()].join(', ')}) and none `
      + `named "default"; name one "default", or ${WHAT_TO_DO}`);
  }
  return new ChatTemplate(source, specialTokensOf(config), found.origin);
}

interface FoundTemplates {
  templates: Map<string, string>;
  origin: string;
}

/** chat_template.jinja → "default", additional_chat_templates/NAME.jinja → NAME; undefined when neither exists. */
function templateFiles(dir: string): FoundTemplates | undefined {
  const templates = new Map<string, string>();
  const main = join(dir, 'chat_template.jinja');
  if (existsSync(main)) templates.set('default', readFileSync(main, 'utf8'));
  const extraDir = join(dir, 'additional_chat_templates');
  if (existsSync(extraDir)) {
    for (const file of readdirSync(extraDir).filter((f) => f.endsWith('.jinja')).sort()) {
      templates.set(file.slice(0, -'.jinja'.length), readFileSync(join(extraDir, file), 'utf8'));
    }
  }
  return templates.size > 0 ? { templates, origin: existsSync(main) ? main : extraDir } : undefined;
}

function configTemplates(config: Record<string, unknown>, configPath: string): FoundTemplates | undefined {
  const entry = config['chat_template'];
  if (entry === undefined || entry === null) return undefined;
  if (typeof entry === 'string') return { templates: new Map([['default', entry]]), origin: configPath };
  const named = Array.isArray(entry) ? entry.map((item: unknown) => namedTemplate(item, configPath)) : undefined;
  if (named === undefined) {
    fail('format', `${configPath}: chat_template must be a string or a list of {name, template}; fix the file or ${WHAT_TO_DO}`);
  }
  return { templates: new Map(named), origin: configPath };
}

function namedTemplate(item: unknown, configPath: string): [string, string] {
  const { name, template } = (typeof item === 'object' && item !== null ? item : {}) as { name?: unknown; template?: unknown };
  if (typeof name !== 'string' || typeof template !== 'string') {
    fail('format', `${configPath}: each chat_template entry must be {"name": string, "template": string}; fix the file or ${WHAT_TO_DO}`);
  }
  return [name, template];
}

/** bos_token, eos_token, … as strings: a config entry is a string or an AddedToken object {content}; null is left out. */
function specialTokensOf(config: Record<string, unknown>): Record<string, string> {
  const tokens: Record<string, string> = {};
  for (const name of SPECIAL_TOKEN_NAMES) {
    const entry = config[name];
    const content = typeof entry === 'object' && entry !== null ? (entry as { content?: unknown }).content : entry;
    if (typeof content === 'string') tokens[name] = content;
  }
  return tokens;
}

function readConfig(path: string): Record<string, unknown> {
  let value: unknown;
  try {
    value = JSON.parse(readFileSync(path, 'utf8'));
  } catch (err) {
    return fail('format', `${path}: not valid JSON (${firstLine(err)}); fix the file or ${WHAT_TO_DO}`);
  }
  if (typeof value !== 'object' || value === null || Array.isArray(value)) {
    fail('format', `${path}: expected a JSON object; fix the file or ${WHAT_TO_DO}`);
  }
  return value as Record<string, unknown>;
}

function firstLine(err: unknown): string {
  return (err instanceof Error ? err.message : String(err)).split('\n')[0]!.replace(/(?<!\.)[.;]\s*$/, '');
}
