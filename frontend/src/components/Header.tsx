import { useEffect, useRef, useState } from "react";
import { chatStore } from "../app";
import { useChat } from "../hooks";

function CollectionPicker() {
  const collections = useChat((s) => s.collections);
  const selected = useChat((s) => s.selectedCollections);
  const [open, setOpen] = useState(false);
  const ref = useRef<HTMLDivElement>(null);

  useEffect(() => {
    if (!open) return;
    const close = (e: MouseEvent) => {
      if (!ref.current?.contains(e.target as Node)) setOpen(false);
    };
    document.addEventListener("mousedown", close);
    return () => document.removeEventListener("mousedown", close);
  }, [open]);

  return (
    <div className="relative" ref={ref}>
      <button
        onClick={() => setOpen(!open)}
        aria-expanded={open}
        className={`rounded-lg border px-3 py-1.5 text-sm ${
          selected.length
            ? "border-emerald-500/50 bg-emerald-500/10 text-emerald-200"
            : "border-slate-700 text-slate-300 hover:bg-slate-800"
        }`}
      >
        {selected.length ? `Documents: ${selected.length}` : "Documents"}
      </button>
      {open && (
        <div className="absolute right-0 z-20 mt-1 w-64 rounded-lg border border-slate-700 bg-slate-900 p-2 shadow-xl">
          <p className="px-2 pb-1 text-xs text-slate-500">Ground answers in these collections</p>
          {collections.length === 0 && (
            <p className="px-2 py-1 text-sm text-slate-400">No collections yet.</p>
          )}
          {collections.map((c) => (
            <label
              key={c.id}
              className="flex cursor-pointer items-center gap-2 rounded px-2 py-1.5 text-sm hover:bg-slate-800"
            >
              <input
                type="checkbox"
                checked={selected.includes(c.id)}
                onChange={() => chatStore.getState().toggleCollection(c.id)}
                className="accent-emerald-500"
              />
              <span className="min-w-0">
                <span className="block truncate">{c.name ?? c.id}</span>
                {(c.description || c.documents !== undefined) && (
                  <span className="block truncate text-xs text-slate-500">
                    {[c.description, c.documents !== undefined ? `${c.documents} docs` : ""]
                      .filter(Boolean)
                      .join(" · ")}
                  </span>
                )}
              </span>
            </label>
          ))}
        </div>
      )}
    </div>
  );
}

export function Header({ onMenu }: { onMenu: () => void }) {
  const models = useChat((s) => s.models);
  const model = useChat((s) => s.model);
  const streaming = useChat((s) => s.streaming);
  const rag = useChat((s) => s.features.collections);
  const title = useChat((s) => s.conversations.find((c) => c.id === s.activeId)?.title);

  return (
    <header className="flex items-center gap-3 border-b border-slate-800 px-4 py-2.5">
      <button
        onClick={onMenu}
        className="rounded-md p-1.5 text-slate-300 hover:bg-slate-800 md:hidden"
        aria-label="Open conversations"
      >
        <svg viewBox="0 0 20 20" className="h-5 w-5 fill-current" aria-hidden>
          <path d="M3 5h14v2H3zm0 4h14v2H3zm0 4h14v2H3z" />
        </svg>
      </button>
      <h1 className="min-w-0 flex-1 truncate text-sm font-medium text-slate-300">{title ?? "New chat"}</h1>
      {rag && <CollectionPicker />}
      <select
        value={model}
        onChange={(e) => chatStore.getState().setModel(e.target.value)}
        disabled={streaming || models.length === 0}
        aria-label="Model"
        className="max-w-[12rem] rounded-lg border border-slate-700 bg-slate-900 px-2 py-1.5 text-sm text-slate-100 outline-none focus:border-indigo-500 disabled:opacity-60"
      >
        {models.length === 0 && <option value="">No models</option>}
        {models.map((m) => (
          <option key={m.id} value={m.id}>
            {m.id}
          </option>
        ))}
      </select>
    </header>
  );
}
