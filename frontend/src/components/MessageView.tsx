import { memo } from "react";
import { citationView } from "../lib/citations";
import type { Citation } from "../lib/types";
import type { UiMessage } from "../stores/chat";
import { ErrorNote } from "./ErrorNote";
import { Markdown } from "./Markdown";

function formatMs(ms: number): string {
  return ms < 1000 ? `${Math.round(ms)} ms` : `${(ms / 1000).toFixed(1)} s`;
}

function Citations({ items }: { items: Citation[] }) {
  return (
    <details
      className="mt-3 rounded-lg border border-slate-700/60 bg-slate-900/60 text-sm"
      data-testid="citations"
    >
      <summary className="cursor-pointer select-none px-3 py-1.5 text-slate-300 hover:text-white">
        {items.length} source{items.length === 1 ? "" : "s"}
      </summary>
      <ol className="space-y-2 px-3 pb-3">
        {items.map((c, i) => {
          const v = citationView(c, i);
          return (
            <li key={i} className="flex gap-2">
              <span className="mt-0.5 flex h-5 w-5 shrink-0 items-center justify-center rounded bg-indigo-500/20 text-xs text-indigo-200">
                {v.n}
              </span>
              <div className="min-w-0">
                <p className="truncate font-medium text-slate-200">
                  {v.label}
                  <span className="ml-2 font-normal text-slate-500">
                    {v.collection ? `${v.collection} · ` : ""}chunk {v.chunk} · score {v.score}
                  </span>
                </p>
                <p className="line-clamp-3 text-slate-400">{v.snippet}</p>
              </div>
            </li>
          );
        })}
      </ol>
    </details>
  );
}

export const MessageView = memo(function MessageView({ message }: { message: UiMessage }) {
  if (message.role === "user") {
    return (
      <div className="flex justify-end" data-testid="message-user">
        <div className="max-w-[85%] whitespace-pre-wrap break-words rounded-2xl rounded-br-md bg-indigo-600 px-4 py-2.5 text-white shadow-sm">
          {message.content}
        </div>
      </div>
    );
  }
  const { usage, status } = message;
  const streaming = status === "streaming";
  return (
    <div className="flex gap-3" data-testid="message-assistant" data-status={status}>
      <div className="mt-0.5 flex h-7 w-7 shrink-0 items-center justify-center rounded-full bg-gradient-to-br from-indigo-400 to-cyan-400 text-xs font-bold text-slate-950">
        N
      </div>
      <div className="min-w-0 flex-1 leading-relaxed text-slate-200">
        {message.content ? (
          <div className={streaming ? "cursor-blink" : undefined} data-testid="answer">
            <Markdown text={message.content} />
          </div>
        ) : streaming ? (
          <div className="flex h-6 items-center gap-1" aria-label="Waiting for the model">
            {[0, 150, 300].map((d) => (
              <span
                key={d}
                className="h-1.5 w-1.5 animate-bounce rounded-full bg-slate-400"
                style={{ animationDelay: `${d}ms` }}
              />
            ))}
          </div>
        ) : null}
        {message.error && (
          <div className="mt-2">
            <ErrorNote error={message.error} />
          </div>
        )}
        {message.citations && message.citations.length > 0 && <Citations items={message.citations} />}
        {!streaming && (usage || status === "stopped" || message.durationMs !== undefined) && (
          <p className="mt-2 flex flex-wrap gap-x-3 text-xs text-slate-500" data-testid="usage">
            {status === "stopped" && <span className="text-amber-400/80">stopped</span>}
            {usage && (
              <span title="prompt + completion tokens">
                {usage.prompt_tokens} + {usage.completion_tokens} = {usage.total_tokens} tokens
              </span>
            )}
            {message.ttftMs !== undefined && <span>first token {formatMs(message.ttftMs)}</span>}
            {message.durationMs !== undefined && status !== "error" && (
              <span>{formatMs(message.durationMs)}</span>
            )}
          </p>
        )}
      </div>
    </div>
  );
});
