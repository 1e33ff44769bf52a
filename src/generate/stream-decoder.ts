// Streaming detokenisation: feed generated token ids one at a time, get back the new text to print.
// Decoding one id alone is wrong for sentencepiece vocabularies (the decoder strips the leading space of the
// first token) and for characters split over several byte tokens (emoji, CJK). So, as text-generation-inference
// does, each step decodes the ids since a settled checkpoint twice — without and with the unprinted ids — and
// prints the difference; while that text ends with U+FFFD (an incomplete UTF-8 character) it prints nothing.
import type { DecodeOptions } from '../io/tokenizer.ts';

/** What the stream needs of a tokenizer (TextTokenizer has it). */
export interface IdsToText {
  decode(ids: readonly number[], opts?: DecodeOptions): string;
}

export interface StreamDecoderOptions {
  skipSpecialTokens?: boolean;
  /** Ids already shown (the prompt): they give the first new token its leading space; they are never printed. */
  contextIds?: readonly number[];
}

const REPLACEMENT_CHARACTER = '\uFFFD';

export class StreamDecoder {
  private readonly ids: number[];
  /** ids[prefixOffset, readOffset) is text already printed, decoded again as context for the next ids. */
  private prefixOffset = 0;
  /** ids from readOffset on have not been printed yet. */
  private readOffset: number;
  private readonly decodeOptions: DecodeOptions;

  constructor(private readonly tokenizer: IdsToText, opts: StreamDecoderOptions = {}) {
    this.ids = [...(opts.contextIds ?? [])];
    this.readOffset = this.ids.length;
    this.decodeOptions = { skipSpecialTokens: opts.skipSpecialTokens ?? false };
  }

  /** Add one id; returns the text it completes ('' while a character or word start is still pending). */
  push(id: number): string {
    this.ids.push(id);
    return this.advance(false);
  }

  /** At the end of the stream: whatever is still held back (an invalid byte sequence prints as U+FFFD). */
  flush(): string {
    return this.advance(true);
  }

  private advance(final: boolean): string {
    if (this.readOffset === this.ids.length) return '';
    const printed = this.tokenizer.decode(this.ids.slice(this.prefixOffset, this.readOffset), this.decodeOptions);
    const extended = this.tokenizer.decode(this.ids.slice(this.prefixOffset), this.decodeOptions);
    const complete = final || !extended.endsWith(REPLACEMENT_CHARACTER);
    if (extended.length <= printed.length || !complete) return '';
    this.prefixOffset = this.readOffset;
    this.readOffset = this.ids.length;
    return extended.slice(printed.length);
  }
}
