/** Normalise a citation from either wire shape into what the UI shows. */
import type { Citation } from "./types";

export interface CitationView {
  n: number;
  label: string;
  collection: string | null;
  chunk: string;
  score: string;
  snippet: string;
}

export function citationView(c: Citation, position: number): CitationView {
  const doc = c.document;
  const docLabel = typeof doc === "string" ? doc : (doc?.title ?? doc?.name ?? doc?.filename ?? doc?.id);
  const chunk = c.chunk_index ?? c.chunk;
  const score = Number(c.score);
  return {
    n: typeof c.index === "number" ? c.index : position + 1,
    label: c.filename || docLabel || c.document_id || "document",
    collection: c.collection ?? null,
    chunk: chunk === undefined ? "?" : String(chunk),
    score: Number.isFinite(score) ? score.toFixed(3) : "?",
    snippet: c.snippet ?? "",
  };
}
