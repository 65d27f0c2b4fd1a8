import { describe, expect, it } from "vitest";
import { citationView } from "./citations";

describe("citationView", () => {
  it("reads the gateway's citation shape, keeping the number the model cites", () => {
    const v = citationView(
      {
        index: 2,
        collection: "handbook",
        document_id: "doc_1",
        filename: "guide.md",
        chunk_index: 4,
        score: 0.87654,
        snippet: "text",
      },
      0,
    );
    expect(v).toEqual({
      n: 2,
      label: "guide.md",
      collection: "handbook",
      chunk: "4",
      score: "0.877",
      snippet: "text",
    });
  });

  it("reads the design's {document, chunk} shape, string or object", () => {
    expect(citationView({ document: "faq.md", chunk: 0, score: 0.5, snippet: "s" }, 3)).toMatchObject({
      n: 4,
      label: "faq.md",
      chunk: "0",
      collection: null,
    });
    expect(
      citationView({ document: { id: "d9", title: "Manual" }, chunk: 1, score: 1, snippet: "" }, 0).label,
    ).toBe("Manual");
  });

  it("degrades gracefully on missing fields", () => {
    expect(citationView({ document_id: "d1", score: Number.NaN, snippet: "" } as never, 0)).toMatchObject({
      label: "d1",
      chunk: "?",
      score: "?",
    });
  });
});
