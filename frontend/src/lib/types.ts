/** Wire types of the Nova (OpenAI-compatible) API that the UI uses. */

export type Role = "system" | "user" | "assistant";

export interface WireMessage {
  role: Role;
  content: string;
}

export interface ModelInfo {
  id: string;
  owned_by?: string;
}

export interface Usage {
  prompt_tokens: number;
  completion_tokens: number;
  total_tokens: number;
}

/**
 * A source of a grounded answer (`nova.citations`). The gateway sends
 * {index, collection, document_id, filename, chunk_index, score, snippet}; the older design shape
 * {document, chunk, score, snippet} is accepted too. See lib/citations.ts.
 */
export interface Citation {
  index?: number;
  collection?: string;
  document_id?: string;
  filename?: string;
  chunk_index?: number;
  document?: string | { id?: string; name?: string; title?: string; filename?: string };
  chunk?: number | string;
  score: number;
  snippet: string;
}

export interface ChatRequest {
  model: string;
  messages: WireMessage[];
  conversation_id?: string;
  rag?: { collections: string[] };
}

export interface ChatChunk {
  id?: string;
  choices: {
    index: number;
    delta: { role?: Role; content?: string | null };
    finish_reason?: string | null;
  }[];
  usage?: Usage | null;
  nova?: { citations?: Citation[] };
}

export interface ConversationSummary {
  id: string;
  title: string;
  created_at: string;
  updated_at: string;
}

export interface ConversationDetail {
  id: string;
  title: string;
  /** status: complete | partial (client left or stream cut) | error (with `error` saying why). */
  messages: { role: Role; content: string; created_at?: string; status?: string; error?: string | null }[];
}

export interface Page<T> {
  data: T[];
  next_cursor: string | null;
}

export interface Collection {
  id: string;
  name?: string;
  description?: string;
  documents?: number;
}

export interface LoginResult {
  access_token: string;
  refresh_token?: string;
  expires_in?: number;
  token_type?: string;
}
