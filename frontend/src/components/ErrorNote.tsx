import type { ApiError } from "../lib/api";

/** Shows an OpenAI-shaped error with everything needed to report it (status, type, code, request id). */
export function ErrorNote({ error, onDismiss }: { error: ApiError; onDismiss?: () => void }) {
  const meta = [
    error.status ? `HTTP ${error.status}` : null,
    error.type,
    error.code ? `code ${error.code}` : null,
    error.param ? `param ${error.param}` : null,
    error.retryAfter !== null ? `retry after ${error.retryAfter}s` : null,
  ].filter(Boolean);
  return (
    <div
      role="alert"
      className="flex items-start gap-3 rounded-lg border border-rose-500/40 bg-rose-500/10 px-3 py-2 text-sm text-rose-100"
    >
      <svg viewBox="0 0 20 20" className="mt-0.5 h-4 w-4 shrink-0 fill-rose-400" aria-hidden>
        <path d="M10 2a8 8 0 100 16 8 8 0 000-16zm-.9 4h1.8v5.2H9.1V6zm0 6.8h1.8v1.8H9.1v-1.8z" />
      </svg>
      <div className="min-w-0 flex-1">
        <p className="break-words font-medium">{error.message}</p>
        <p className="mt-0.5 text-xs text-rose-200/70">
          {meta.join(" · ")}
          {error.requestId && (
            <>
              {" · request "}
              <code className="font-mono">{error.requestId}</code>
            </>
          )}
        </p>
      </div>
      {onDismiss && (
        <button
          onClick={onDismiss}
          className="rounded px-1 text-rose-200/70 hover:bg-rose-500/20 hover:text-rose-100"
          aria-label="Dismiss error"
        >
          ×
        </button>
      )}
    </div>
  );
}
