import { useEffect, useRef, useState, type FormEvent, type KeyboardEvent } from "react";
import { chatStore } from "../app";
import { useChat } from "../hooks";

/** Message box: Enter sends, Shift+Enter adds a line, Stop aborts the running stream. */
export function Composer() {
  const [text, setText] = useState("");
  const streaming = useChat((s) => s.streaming);
  const model = useChat((s) => s.model);
  const ref = useRef<HTMLTextAreaElement>(null);

  useEffect(() => {
    const el = ref.current;
    if (!el) return;
    el.style.height = "auto";
    el.style.height = `${Math.min(el.scrollHeight, 240)}px`;
  }, [text]);

  useEffect(() => {
    if (!streaming) {
      ref.current?.focus();
      return;
    }
    const onEscape = (e: globalThis.KeyboardEvent) => {
      if (e.key === "Escape") chatStore.getState().stop();
    };
    window.addEventListener("keydown", onEscape);
    return () => window.removeEventListener("keydown", onEscape);
  }, [streaming]);

  const submit = (e?: FormEvent) => {
    e?.preventDefault();
    if (streaming || !text.trim() || !model) return;
    void chatStore.getState().send(text);
    setText("");
  };

  const onKey = (e: KeyboardEvent<HTMLTextAreaElement>) => {
    if (e.key === "Enter" && !e.shiftKey && !e.nativeEvent.isComposing) submit(e);
  };

  return (
    <form onSubmit={submit} className="mx-auto w-full max-w-3xl px-4 pb-4">
      <div className="flex items-end gap-2 rounded-2xl border border-slate-700 bg-slate-900 p-2 shadow-lg shadow-black/20 focus-within:border-indigo-500/70">
        <textarea
          ref={ref}
          value={text}
          onChange={(e) => setText(e.target.value)}
          onKeyDown={onKey}
          rows={1}
          placeholder={model ? `Message ${model}…` : "No model available"}
          aria-label="Message"
          className="max-h-60 min-h-[2.5rem] flex-1 resize-none bg-transparent px-2 py-2 text-slate-100 placeholder-slate-500 outline-none"
        />
        {streaming ? (
          <button
            type="button"
            onClick={() => chatStore.getState().stop()}
            className="flex h-10 items-center gap-2 rounded-xl bg-slate-700 px-4 text-sm font-medium text-white hover:bg-slate-600"
          >
            <span className="h-3 w-3 rounded-sm bg-white" aria-hidden />
            Stop
          </button>
        ) : (
          <button
            type="submit"
            disabled={!text.trim() || !model}
            className="h-10 rounded-xl bg-indigo-600 px-4 text-sm font-medium text-white hover:bg-indigo-500 disabled:cursor-not-allowed disabled:opacity-40"
          >
            Send
          </button>
        )}
      </div>
      <p className="mt-1.5 text-center text-xs text-slate-600">
        Enter to send · Shift+Enter for a new line · Esc stops
      </p>
    </form>
  );
}
