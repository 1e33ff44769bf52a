// `moets chat [MODEL]`: an interactive chat in the terminal. Each turn the whole conversation is rendered with the
// model's chat template (src/io/chat-template.ts), encoded, and the reply generated from scratch (the KV cache is
// not kept between turns: the re-rendered history need not be a token prefix of what was generated); the reply
// streams as it is made and then joins the conversation. /reset starts over, /exit or Ctrl-D quits, Ctrl-C stops
// a reply (or quits at the prompt). `moets generate --chat` runs one turn of the same code (runChatTurn).
import { createInterface, type Interface } from 'node:readline';
import { Command } from 'commander';
import { MoetsError } from '../core/errors.ts';
import type { ChatMessage, ChatTemplate } from '../io/chat-template.ts';
import type { TextTokenizer } from '../io/tokenizer.ts';
import type { CausalLM } from '../models/model.ts';
import { oneLine, usageError } from './errors.ts';
import {
  deviceOption, modelArgument, resolveDevice, resolveModelArgument, samplingOptions, systemOption, type SamplingFlags,
} from './options.ts';

interface ChatFlags extends SamplingFlags {
  system?: string;
  device?: string;
}

/** The flags of `moets generate --chat` this file reads. */
export interface ChatTurnFlags extends ChatFlags {
  prompt?: string;
  ids?: Int32Array;
  format?: 'text' | 'ids';
}

const PROMPT = '> ';
const HELP = 'type a message; /reset starts a new conversation, /exit (or Ctrl-D) quits';

export function chatCommand(): Command {
  const command = new Command('chat')
    .description('chat with the model in the terminal, using the chat template of its tokenizer_config.json')
    .addArgument(modelArgument())
    .addOption(systemOption());
  for (const option of samplingOptions()) command.addOption(option);
  return command
    .addOption(deviceOption())
    .addHelpText('after', `
In the chat: /reset starts a new conversation (keeping --system), /exit or Ctrl-D quits, Ctrl-C stops a reply.
Input that is not a terminal is read line by line, one message a line (each echoed after the prompt).

Examples:
  $ moets chat
  $ moets chat path/to/Mixtral-8x7B-Instruct --system "Answer briefly." --temperature 0.7
  $ printf 'Hello\\n/exit\\n' | moets chat --temperature 0 --max-new-tokens 20`)
    .action(runChat);
}

/** What a conversation needs loaded: the model, its tokenizer and chat template, and the ids that end a reply. */
interface ChatSession {
  lm: CausalLM;
  tokenizer: TextTokenizer;
  template: ChatTemplate;
  stopTokenIds: number[];
  engine: typeof import('./engine.ts');
}

/** Loads what a chat needs; fails before the (slow) model load when the template rejects how the chat opens (--system). */
async function openSession(model: string | undefined, flags: ChatFlags): Promise<ChatSession> {
  const device = resolveDevice(flags.device);
  const engine = await import('./engine.ts');
  const { loadChatTemplate } = await import('../io/chat-template.ts');
  const dir = await resolveModelArgument(model);
  const tokenizer = engine.loadTokenizer(dir);
  const template = loadChatTemplate(dir);
  template.render([...openingMessages(flags.system), { role: 'user', content: 'Hello' }], { addGenerationPrompt: true });
  const lm = await engine.loadModel(dir, { device });
  // A reply ends at the model's EOS, the tokenizer's eos_token, or the template's end-of-turn token.
  const endOfTurn = template.endOfTurnTokenId(tokenizer);
  const stopTokenIds = [...new Set([...lm.eosTokenIds, ...tokenizer.eosTokenIds, ...(endOfTurn !== undefined ? [endOfTurn] : [])])];
  return { lm, tokenizer, template, stopTokenIds, engine };
}

function openingMessages(system: string | undefined): ChatMessage[] {
  return system !== undefined ? [{ role: 'system', content: system }] : [];
}

interface Reply {
  /** The reply as printed: what the tokens decode to (special tokens skipped), leading whitespace dropped. */
  text: string;
  /** The new ids, the stop id included when one ended the reply. */
  tokens: number[];
}

/**
 * The assistant's reply to `messages`: rendered with the generation prompt, generated until a stop id, the token
 * budget or `interrupted()`, its text passed to `write` as it is made (when given).
 */
async function generateReply(
  s: ChatSession, messages: readonly ChatMessage[], flags: SamplingFlags,
  write?: (text: string) => void, interrupted: () => boolean = () => false,
): Promise<Reply> {
  const promptIds = s.template.encode(s.tokenizer, messages, { addGenerationPrompt: true });
  if (promptIds.length >= s.lm.maxPositions) {
    throw new MoetsError('input', `the conversation is ${promptIds.length} tokens and fills the model's ${s.lm.maxPositions} `
      + 'positions; start a new one (/reset in a chat) or shorten the messages');
  }
  const decoder = new s.engine.StreamDecoder(s.tokenizer, { skipSpecialTokens: true, contextIds: promptIds });
  const reply: Reply = { text: '', tokens: [] };
  const show = (piece: string) => {
    const shown = reply.text === '' ? piece.trimStart() : piece;
    reply.text += shown;
    if (shown !== '') write?.(shown);
  };
  try {
    await s.engine.generate(s.lm, promptIds, {
      maxNewTokens: flags.maxNewTokens, temperature: flags.temperature, topK: flags.topK, topP: flags.topP,
      ...(flags.seed !== undefined ? { seed: flags.seed } : {}),
      stopTokenIds: s.stopTokenIds,
      onToken: async (id) => {
        reply.tokens.push(id);
        show(decoder.push(id));
        // Let a pending key press (Ctrl-C) reach readline between tokens; stop the reply if it asked to.
        await new Promise<void>((resolve) => setImmediate(resolve));
        if (interrupted()) throw new ReplyInterrupted();
      },
    });
  } catch (err) {
    if (!(err instanceof ReplyInterrupted)) throw err;
  }
  show(decoder.flush());
  return reply;
}

class ReplyInterrupted extends Error {}

/** `moets generate --chat`: the prompt (from --prompt, or stdin when it is not a terminal) as one user turn. */
export async function runChatTurn(model: string | undefined, flags: ChatTurnFlags): Promise<void> {
  if (flags.ids !== undefined) usageError('--chat takes a text message, not --ids; pass --prompt "Hello" or pipe the message on stdin');
  const message = flags.prompt ?? await readStdinMessage();
  if (message.trim() === '') usageError('the chat message is empty; pass some text, e.g. --prompt "Hello"');
  const session = await openSession(model, flags);
  const messages = [...openingMessages(flags.system), { role: 'user', content: message }];
  if ((flags.format ?? 'text') === 'ids') {
    const { tokens } = await generateReply(session, messages, flags);
    writeOut(`${tokens.join(',')}\n`);
  } else {
    await generateReply(session, messages, flags, writeOut);
    writeOut('\n');
  }
}

async function readStdinMessage(): Promise<string> {
  if (process.stdin.isTTY) {
    usageError('--chat needs a message: pass --prompt "Hello", pipe it on stdin, or use moets chat for a conversation');
  }
  const chunks: Buffer[] = [];
  for await (const chunk of process.stdin) chunks.push(chunk as Buffer);
  return Buffer.concat(chunks).toString('utf8').replace(/\r?\n$/, '');
}

async function runChat(model: string | undefined, flags: ChatFlags): Promise<void> {
  const session = await openSession(model, flags);
  const interactive = process.stdin.isTTY === true;
  const rl = createInterface({ input: process.stdin, output: process.stdout, terminal: interactive, prompt: PROMPT });
  let generating = false;
  let stopReply = false;
  rl.on('SIGINT', () => {
    if (generating) stopReply = true;
    else rl.close();
  });
  if (interactive) writeOut(`moets chat: ${HELP}\n`);
  let messages = openingMessages(flags.system);
  rl.prompt();
  for await (const line of rl) {
    if (!interactive) writeOut(`${line}\n`);
    const command = line.trim();
    if (command === '/exit') return closeChat(rl, false);
    if (command === '/reset') {
      messages = openingMessages(flags.system);
      writeOut('(new conversation)\n');
    } else if (command.startsWith('/')) {
      writeOut(`unknown command ${command}; ${HELP}\n`);
    } else if (command !== '') {
      generating = true;
      stopReply = false;
      messages = await takeTurn(session, messages, line, flags, () => stopReply);
      generating = false;
    }
    rl.prompt();
  }
  closeChat(rl, true);
}

/** One exchange: the conversation with the user's line and the reply, or as it was when the turn failed. */
async function takeTurn(
  session: ChatSession, messages: ChatMessage[], line: string, flags: SamplingFlags, interrupted: () => boolean,
): Promise<ChatMessage[]> {
  const withUser = [...messages, { role: 'user', content: line }];
  try {
    const reply = await generateReply(session, withUser, flags, writeOut, interrupted);
    writeOut('\n');
    return [...withUser, { role: 'assistant', content: reply.text.trimEnd() }];
  } catch (err) {
    // A message the template rejects, or a conversation too long for the model: say so and keep chatting.
    if (!(err instanceof MoetsError)) throw err;
    process.stderr.write(`moets: ${oneLine(err.message)}\n`);
    return messages;
  }
}

/** End of the chat: /exit (the line is already echoed) or end of input (Ctrl-D: finish the prompt's line). */
function closeChat(rl: Interface, endOfInput: boolean): void {
  rl.close();
  if (endOfInput) writeOut('\n');
}

function writeOut(text: string): void {
  if (text !== '') process.stdout.write(text);
}
