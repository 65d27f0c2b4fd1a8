import { describe, expect, it } from "vitest";
import { readSSE, SSEParser, type SSEEvent } from "./sse";

function parseAll(chunks: string[]): SSEEvent[] {
  const p = new SSEParser();
  return [...chunks.flatMap((c) => p.feed(c)), ...p.end()];
}

function streamOf(chunks: (string | Uint8Array)[]): ReadableStream<Uint8Array> {
  const enc = new TextEncoder();
  return new ReadableStream({
    start(c) {
      for (const ch of chunks) c.enqueue(typeof ch === "string" ? enc.encode(ch) : ch);
      c.close();
    },
  });
}

describe("SSEParser", () => {
  it("parses OpenAI-style data events and [DONE]", () => {
    const evs = parseAll(['data: {"a":1}\n\ndata: {"a":2}\n\n', "data: [DONE]\n\n"]);
    expect(evs.map((e) => e.data)).toEqual(['{"a":1}', '{"a":2}', "[DONE]"]);
    expect(evs[0].event).toBe("message");
  });

  it("joins multi-line data with newlines and strips only one leading space", () => {
    const evs = parseAll(["data: line1\ndata:  line2\ndata\n\n"]);
    expect(evs).toEqual([{ event: "message", data: "line1\n line2\n" }]);
  });

  it("ignores comments and unknown fields, keeps event, id and retry", () => {
    const evs = parseAll([": keep-alive\n\nevent: ping\nid: 7\nretry: 3000\nfoo: bar\ndata: x\n\n"]);
    expect(evs).toEqual([{ event: "ping", data: "x", id: "7", retry: 3000 }]);
  });

  it("does not dispatch events without data and resets the event type", () => {
    const evs = parseAll(["event: nothing\n\ndata: y\n\n"]);
    expect(evs).toEqual([{ event: "message", data: "y" }]);
  });

  it("handles events split at every possible byte boundary", () => {
    const text = 'data: {"x":"hello"}\r\n\r\ndata: second\r\rdata: third\n\n';
    for (let cut = 0; cut <= text.length; cut++) {
      const evs = parseAll([text.slice(0, cut), text.slice(cut)]);
      expect(
        evs.map((e) => e.data),
        `cut at ${cut}`,
      ).toEqual(['{"x":"hello"}', "second", "third"]);
    }
  });

  it("treats CR, LF and CRLF alike, including a CR at the end of a chunk", () => {
    const evs = parseAll(["data: a\r", "\ndata: b\r", "\r", "data: c\n", "\n"]);
    expect(evs.map((e) => e.data)).toEqual(["a\nb", "c"]);
  });

  it("keeps a final event whose stream ends without a blank line", () => {
    expect(parseAll(["data: tail"]).map((e) => e.data)).toEqual(["tail"]);
  });
});

describe("readSSE", () => {
  it("decodes UTF-8 split across network chunks", async () => {
    const bytes = new TextEncoder().encode("data: héllo 🌍\n\n");
    const chunks = Array.from(bytes, (b) => new Uint8Array([b])); // one byte per chunk
    const out: string[] = [];
    for await (const ev of readSSE(streamOf(chunks))) out.push(ev.data);
    expect(out).toEqual(["héllo 🌍"]);
  });

  it("cancels the underlying stream when the consumer stops early", async () => {
    let cancelled = false;
    const body = new ReadableStream<Uint8Array>({
      pull(c) {
        c.enqueue(new TextEncoder().encode("data: more\n\n"));
      },
      cancel() {
        cancelled = true;
      },
    });
    for await (const ev of readSSE(body)) {
      expect(ev.data).toBe("more");
      break;
    }
    expect(cancelled).toBe(true);
  });
});
