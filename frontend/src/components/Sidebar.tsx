import { useState } from "react";
import { authStore, chatStore } from "../app";
import { useAuth, useChat } from "../hooks";
import type { ConversationSummary } from "../lib/types";
import type { Credential } from "../stores/auth";

function ConversationItem({ conv, active }: { conv: ConversationSummary; active: boolean }) {
  const [editing, setEditing] = useState(false);
  const [title, setTitle] = useState(conv.title);
  const [confirming, setConfirming] = useState(false);
  const chat = chatStore.getState();

  if (editing) {
    const save = () => {
      setEditing(false);
      if (title.trim() && title.trim() !== conv.title) void chat.renameConversation(conv.id, title);
    };
    return (
      <li>
        <input
          autoFocus
          value={title}
          onChange={(e) => setTitle(e.target.value)}
          onBlur={save}
          onKeyDown={(e) => {
            if (e.key === "Enter") save();
            if (e.key === "Escape") {
              setTitle(conv.title);
              setEditing(false);
            }
          }}
          aria-label="Conversation title"
          className="w-full rounded-md border border-indigo-500/60 bg-slate-900 px-2 py-1.5 text-sm text-slate-100 outline-none"
        />
      </li>
    );
  }
  return (
    <li className="group relative">
      <button
        onClick={() => void chat.selectConversation(conv.id)}
        className={`w-full truncate rounded-md px-2 py-1.5 pr-14 text-left text-sm ${
          active ? "bg-slate-800 text-white" : "text-slate-300 hover:bg-slate-800/60"
        }`}
        title={conv.title}
      >
        {conv.title || "Untitled"}
      </button>
      <div
        className={`absolute inset-y-0 right-1 items-center gap-0.5 ${confirming ? "flex" : "hidden group-hover:flex"}`}
      >
        {confirming ? (
          <>
            <button
              onClick={() => void chat.deleteConversation(conv.id)}
              className="rounded bg-rose-600 px-1.5 py-0.5 text-xs text-white hover:bg-rose-500"
            >
              Delete
            </button>
            <button
              onClick={() => setConfirming(false)}
              className="rounded px-1 text-xs text-slate-400 hover:text-white"
              aria-label="Cancel delete"
            >
              ×
            </button>
          </>
        ) : (
          <>
            <button
              onClick={() => {
                setTitle(conv.title);
                setEditing(true);
              }}
              className="rounded p-1 text-slate-400 hover:bg-slate-700 hover:text-white"
              aria-label={`Rename ${conv.title}`}
            >
              <svg viewBox="0 0 20 20" className="h-3.5 w-3.5 fill-current" aria-hidden>
                <path d="M13.6 2.6a2 2 0 012.8 2.8l-9 9-3.8 1 1-3.8 9-9z" />
              </svg>
            </button>
            <button
              onClick={() => setConfirming(true)}
              className="rounded p-1 text-slate-400 hover:bg-slate-700 hover:text-rose-300"
              aria-label={`Delete ${conv.title}`}
            >
              <svg viewBox="0 0 20 20" className="h-3.5 w-3.5 fill-current" aria-hidden>
                <path d="M7 2h6l1 2h4v2H2V4h4l1-2zm-3 5h12l-1 11H5L4 7z" />
              </svg>
            </button>
          </>
        )}
      </div>
    </li>
  );
}

function who(c: Credential | null): string {
  if (!c) return "";
  if (c.kind === "jwt") return c.username;
  return c.token.length > 12 ? `key ${c.token.slice(0, 6)}…${c.token.slice(-4)}` : "API key";
}

export function Sidebar({ onNavigate }: { onNavigate?: () => void }) {
  const enabled = useChat((s) => s.features.conversations);
  const ready = useChat((s) => s.ready);
  const conversations = useChat((s) => s.conversations);
  const activeId = useChat((s) => s.activeId);
  const nextCursor = useChat((s) => s.nextCursor);
  const signedInAs = who(useAuth((s) => s.credential));

  return (
    <aside className="flex h-full w-64 flex-col border-r border-slate-800 bg-slate-900/80">
      <div className="flex items-center gap-2 px-4 py-4">
        <img src="/favicon.svg" alt="" className="h-6 w-6" />
        <span className="text-lg font-semibold tracking-tight text-white">Nova</span>
      </div>
      <div className="px-3">
        <button
          onClick={() => {
            chatStore.getState().newChat();
            onNavigate?.();
          }}
          className="flex w-full items-center gap-2 rounded-lg border border-slate-700 px-3 py-2 text-sm text-slate-200 hover:bg-slate-800"
        >
          <span className="text-lg leading-none">+</span> New chat
        </button>
      </div>
      <nav className="mt-4 flex-1 overflow-y-auto px-3" aria-label="Conversations">
        {enabled ? (
          <>
            {conversations.length === 0 && (
              <p className="px-2 text-sm text-slate-500">No conversations yet.</p>
            )}
            <ul className="space-y-0.5" onClick={onNavigate}>
              {conversations.map((c) => (
                <ConversationItem key={c.id} conv={c} active={c.id === activeId} />
              ))}
            </ul>
            {nextCursor && (
              <button
                onClick={() => void chatStore.getState().loadMoreConversations()}
                className="mt-2 w-full rounded-md px-2 py-1.5 text-sm text-slate-400 hover:bg-slate-800 hover:text-slate-200"
              >
                Load more
              </button>
            )}
          </>
        ) : (
          ready && (
            <p className="px-2 text-sm text-slate-500">
              This server keeps no conversation history; chats live in this tab only.
            </p>
          )
        )}
      </nav>
      <div className="flex items-center justify-between gap-2 border-t border-slate-800 px-4 py-3 text-sm">
        <span className="truncate text-slate-400" title={signedInAs}>
          {signedInAs}
        </span>
        <button
          onClick={() => void authStore.getState().logout()}
          className="shrink-0 rounded-md px-2 py-1 text-slate-300 hover:bg-slate-800 hover:text-white"
        >
          Sign out
        </button>
      </div>
    </aside>
  );
}
