/** Thin client for the gateway's /v1 API: one place for auth headers, error mapping and streaming. */
import { readSSE } from "./sse";
import type {
  ChatChunk,
  ChatRequest,
  Collection,
  ConversationDetail,
  ConversationSummary,
  LoginResult,
  ModelInfo,
  Page,
} from "./types";

/** An OpenAI-shaped error ({"error": {message, type, code, param}}) plus HTTP context. */
export class ApiError extends Error {
  readonly status: number;
  readonly type: string;
  readonly code: string | null;
  readonly param: string | null;
  readonly requestId: string | null;
  readonly retryAfter: number | null;

  constructor(init: {
    status: number;
    message: string;
    type?: string | null;
    code?: string | number | null;
    param?: string | null;
    requestId?: string | null;
    retryAfter?: number | null;
  }) {
    super(init.message);
    this.name = "ApiError";
    this.status = init.status;
    this.type = init.type || (init.status === 0 ? "network_error" : "api_error");
    this.code = init.code === undefined || init.code === null ? null : String(init.code);
    this.param = init.param ?? null;
    this.requestId = init.requestId ?? null;
    this.retryAfter = init.retryAfter ?? null;
  }
}

type Json = Record<string, unknown>;

function isObject(v: unknown): v is Json {
  return typeof v === "object" && v !== null && !Array.isArray(v);
}

/** Extract message/type/code from any error body the gateway, FastAPI or a proxy may return. */
export function parseErrorBody(
  body: string,
  status: number,
): { message: string; type?: string; code?: string | number | null; param?: string | null } {
  let parsed: unknown;
  try {
    parsed = JSON.parse(body);
  } catch {
    const text = body.trim();
    return { message: text && text.length < 300 && !text.startsWith("<") ? text : defaultMessage(status) };
  }
  if (isObject(parsed)) {
    const err = parsed.error;
    if (isObject(err) && typeof err.message === "string") {
      return {
        message: err.message,
        type: typeof err.type === "string" ? err.type : undefined,
        code: typeof err.code === "string" || typeof err.code === "number" ? err.code : null,
        param: typeof err.param === "string" ? err.param : null,
      };
    }
    if (typeof err === "string") return { message: err };
    const detail = parsed.detail;
    if (typeof detail === "string") return { message: detail };
    if (Array.isArray(detail)) {
      const msgs = detail.map((d) => (isObject(d) && typeof d.msg === "string" ? d.msg : JSON.stringify(d)));
      return { message: msgs.join("; "), type: "invalid_request_error" };
    }
  }
  return { message: defaultMessage(status) };
}

function defaultMessage(status: number): string {
  const known: Record<number, string> = {
    400: "Bad request",
    401: "Not signed in or the key is invalid",
    403: "Not allowed",
    404: "Not found",
    413: "Request too large",
    429: "Rate limited",
    500: "Server error",
    502: "Upstream model server error",
    503: "Service unavailable",
    504: "Upstream timed out",
  };
  return known[status] ?? `HTTP ${status}`;
}

export async function errorFromResponse(res: Response): Promise<ApiError> {
  const text = await res.text().catch(() => "");
  const info = parseErrorBody(text, res.status);
  const ra = res.headers.get("retry-after");
  return new ApiError({
    status: res.status,
    ...info,
    requestId: res.headers.get("x-request-id"),
    retryAfter: ra !== null && /^\d+(\.\d+)?$/.test(ra) ? Number(ra) : null,
  });
}

/**
 * True when a feature is absent on this gateway (feature detection): the route does not exist
 * (404/405/501) or the server says it is switched off (503 with a `*_disabled` code, e.g. rag_disabled).
 */
export function isUnsupported(err: unknown): boolean {
  if (!(err instanceof ApiError)) return false;
  if (err.status === 404 || err.status === 405 || err.status === 501) return true;
  return err.status === 503 && (err.code?.endsWith("_disabled") ?? false);
}

export function isAbort(err: unknown): boolean {
  return err instanceof DOMException ? err.name === "AbortError" : (err as Error)?.name === "AbortError";
}

export interface ApiOptions {
  baseUrl?: string;
  fetch?: typeof fetch;
  getToken: () => string | null;
  /** Called on a 401; resolves true when credentials were refreshed and the request may be retried once. */
  onUnauthorized?: () => Promise<boolean>;
}

export class NovaApi {
  private readonly baseUrl: string;
  private readonly fetchImpl: typeof fetch;
  private readonly opts: ApiOptions;

  constructor(opts: ApiOptions) {
    this.opts = opts;
    this.baseUrl = (opts.baseUrl ?? "").replace(/\/$/, "");
    this.fetchImpl = opts.fetch ?? ((input, init) => globalThis.fetch(input, init));
  }

  /** Send a request; non-2xx becomes ApiError, network failures become ApiError(status 0). */
  async request(
    path: string,
    init: RequestInit = {},
    token?: string | null,
    retried = false,
  ): Promise<Response> {
    const headers = new Headers(init.headers);
    const bearer = token === undefined ? this.opts.getToken() : token;
    if (bearer) headers.set("Authorization", `Bearer ${bearer}`);
    if (init.body !== undefined && !headers.has("Content-Type"))
      headers.set("Content-Type", "application/json");
    let res: Response;
    try {
      res = await this.fetchImpl(this.baseUrl + path, { ...init, headers });
    } catch (err) {
      if (isAbort(err)) throw err;
      throw new ApiError({ status: 0, message: `Cannot reach the server (${(err as Error).message})` });
    }
    if (res.ok) return res;
    const err = await errorFromResponse(res);
    if (res.status === 401 && token === undefined && !retried && this.opts.onUnauthorized) {
      if (await this.opts.onUnauthorized()) return this.request(path, init, undefined, true);
    }
    throw err;
  }

  private async json<T>(path: string, init: RequestInit = {}, token?: string | null): Promise<T> {
    const res = await this.request(path, init, token);
    if (res.status === 204) return undefined as T;
    return (await res.json()) as T;
  }

  /** Lists models; with an explicit token it doubles as a credential check at sign-in. */
  async listModels(token?: string): Promise<ModelInfo[]> {
    const body = await this.json<{ data: ModelInfo[] }>("/v1/models", {}, token);
    return body.data;
  }

  /**
   * Stream a chat completion. Yields parsed chunks until [DONE]; an error event inside the
   * stream (the upstream failed after the first byte) is thrown as ApiError.
   */
  async *streamChat(req: ChatRequest, signal?: AbortSignal): AsyncGenerator<ChatChunk> {
    const res = await this.request("/v1/chat/completions", {
      method: "POST",
      body: JSON.stringify({ ...req, stream: true, stream_options: { include_usage: true } }),
      headers: { Accept: "text/event-stream" },
      signal,
    });
    if (!res.body) throw new ApiError({ status: res.status, message: "Empty response body" });
    const requestId = res.headers.get("x-request-id");
    for await (const ev of readSSE(res.body)) {
      if (ev.data === "[DONE]") return;
      let parsed: unknown;
      try {
        parsed = JSON.parse(ev.data);
      } catch {
        throw new ApiError({ status: 502, message: "Malformed stream data from server", requestId });
      }
      if (isObject(parsed) && parsed.error !== undefined) {
        const info = parseErrorBody(ev.data, 502);
        throw new ApiError({ status: 502, ...info, requestId });
      }
      yield parsed as unknown as ChatChunk;
    }
  }

  listConversations(limit = 30, cursor?: string | null): Promise<Page<ConversationSummary>> {
    const q = new URLSearchParams({ limit: String(limit) });
    if (cursor) q.set("cursor", cursor);
    return this.json(`/v1/conversations?${q}`);
  }

  createConversation(title: string, model?: string): Promise<ConversationSummary> {
    return this.json("/v1/conversations", { method: "POST", body: JSON.stringify({ title, model }) });
  }

  getConversation(id: string): Promise<ConversationDetail> {
    return this.json(`/v1/conversations/${encodeURIComponent(id)}`);
  }

  renameConversation(id: string, title: string): Promise<ConversationSummary> {
    return this.json(`/v1/conversations/${encodeURIComponent(id)}`, {
      method: "PATCH",
      body: JSON.stringify({ title }),
    });
  }

  async deleteConversation(id: string): Promise<void> {
    const res = await this.request(`/v1/conversations/${encodeURIComponent(id)}`, { method: "DELETE" });
    await res.body?.cancel().catch(() => undefined);
  }

  async listCollections(): Promise<Collection[]> {
    const body = await this.json<{ data: Collection[] } | Collection[]>("/v1/collections");
    return Array.isArray(body) ? body : body.data;
  }

  login(username: string, password: string): Promise<LoginResult> {
    return this.json(
      "/v1/auth/login",
      { method: "POST", body: JSON.stringify({ username, password }) },
      null,
    );
  }

  /** Revoke a JWT session: the refresh token, and the access token sent alongside it. */
  async logout(refreshToken: string, accessToken: string): Promise<void> {
    const res = await this.request(
      "/v1/auth/logout",
      { method: "POST", body: JSON.stringify({ refresh_token: refreshToken }) },
      accessToken,
    );
    await res.body?.cancel().catch(() => undefined);
  }

  refresh(refreshToken: string): Promise<LoginResult> {
    return this.json(
      "/v1/auth/refresh",
      { method: "POST", body: JSON.stringify({ refresh_token: refreshToken }) },
      null,
    );
  }
}
