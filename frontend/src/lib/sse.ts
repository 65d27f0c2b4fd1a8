/**
 * Incremental Server-Sent Events parser (WHATWG "event stream interpretation").
 *
 * fetch() + a parser instead of EventSource because EventSource cannot POST a body,
 * send an Authorization header or be aborted mid-request.
 */

export interface SSEEvent {
  event: string;
  data: string;
  id?: string;
  retry?: number;
}

export class SSEParser {
  private buffer = "";
  private dataLines: string[] = [];
  private eventType = "";
  private lastId: string | undefined;
  private retry: number | undefined;
  /** A chunk ended in "\r": a following "\n" belongs to the same line break. */
  private pendingCR = false;

  /** Feed decoded text; returns the events completed by it. */
  feed(text: string): SSEEvent[] {
    if (this.pendingCR && text.startsWith("\n")) text = text.slice(1);
    this.pendingCR = false;
    this.buffer += text;
    const events: SSEEvent[] = [];
    let start = 0;
    for (let i = 0; i < this.buffer.length; i++) {
      const ch = this.buffer[i];
      if (ch !== "\n" && ch !== "\r") continue;
      const line = this.buffer.slice(start, i);
      if (ch === "\r") {
        if (i + 1 < this.buffer.length) {
          if (this.buffer[i + 1] === "\n") i++;
        } else {
          this.pendingCR = true;
        }
      }
      start = i + 1;
      const ev = this.processLine(line);
      if (ev) events.push(ev);
    }
    this.buffer = this.buffer.slice(start);
    return events;
  }

  /** End of stream: per spec an unterminated event is discarded, but a complete last line is kept. */
  end(): SSEEvent[] {
    const rest = this.buffer;
    this.buffer = "";
    const events: SSEEvent[] = [];
    if (rest) this.processLine(rest);
    const ev = this.processLine("");
    if (ev) events.push(ev);
    return events;
  }

  private processLine(line: string): SSEEvent | null {
    if (line === "") return this.dispatch();
    if (line.startsWith(":")) return null;
    const colon = line.indexOf(":");
    const field = colon === -1 ? line : line.slice(0, colon);
    let value = colon === -1 ? "" : line.slice(colon + 1);
    if (value.startsWith(" ")) value = value.slice(1);
    switch (field) {
      case "data":
        this.dataLines.push(value);
        break;
      case "event":
        this.eventType = value;
        break;
      case "id":
        if (!value.includes("\0")) this.lastId = value;
        break;
      case "retry":
        if (/^\d+$/.test(value)) this.retry = Number(value);
        break;
    }
    return null;
  }

  private dispatch(): SSEEvent | null {
    if (this.dataLines.length === 0) {
      this.eventType = "";
      return null;
    }
    const ev: SSEEvent = { event: this.eventType || "message", data: this.dataLines.join("\n") };
    if (this.lastId !== undefined) ev.id = this.lastId;
    if (this.retry !== undefined) ev.retry = this.retry;
    this.dataLines = [];
    this.eventType = "";
    return ev;
  }
}

/** Yield the events of a byte stream, decoding UTF-8 across chunk boundaries. */
export async function* readSSE(body: ReadableStream<Uint8Array>): AsyncGenerator<SSEEvent> {
  const parser = new SSEParser();
  const decoder = new TextDecoder();
  const reader = body.getReader();
  let finished = false;
  try {
    for (;;) {
      const { done, value } = await reader.read();
      if (done) break;
      yield* parser.feed(decoder.decode(value, { stream: true }));
    }
    finished = true;
    yield* parser.feed(decoder.decode());
    yield* parser.end();
  } finally {
    // The consumer stopped early (e.g. after [DONE]): close the connection instead of leaking it.
    if (!finished) await reader.cancel().catch(() => undefined);
    reader.releaseLock();
  }
}
