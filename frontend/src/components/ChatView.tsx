import { useEffect, useRef, useState } from "react";
import { chatStore } from "../app";
import { useChat } from "../hooks";
import { Composer } from "./Composer";
import { ErrorNote } from "./ErrorNote";
import { Header } from "./Header";
import { MessageView } from "./MessageView";
import { Sidebar } from "./Sidebar";

function Messages() {
  const messages = useChat((s) => s.messages);
  const loading = useChat((s) => s.loadingConversation);
  const model = useChat((s) => s.model);
  const ref = useRef<HTMLDivElement>(null);
  const stick = useRef(true);

  // Follow the stream only while the user is at the bottom; scrolling up to read stops it.
  useEffect(() => {
    const el = ref.current;
    if (el && stick.current) el.scrollTop = el.scrollHeight;
  }, [messages]);

  return (
    <div
      ref={ref}
      onScroll={(e) => {
        const el = e.currentTarget;
        stick.current = el.scrollHeight - el.scrollTop - el.clientHeight < 80;
      }}
      className="flex-1 overflow-y-auto"
    >
      {messages.length === 0 ? (
        <div className="flex h-full flex-col items-center justify-center px-6 text-center">
          {loading ? (
            <p className="text-slate-500">Loading conversation…</p>
          ) : (
            <>
              <img src="/favicon.svg" alt="" className="mb-4 h-12 w-12 opacity-90" />
              <h2 className="text-2xl font-semibold text-white">How can I help?</h2>
              <p className="mt-2 text-sm text-slate-400">
                {model ? `Chatting with ${model}` : "Loading models…"}
              </p>
            </>
          )}
        </div>
      ) : (
        <div className="mx-auto max-w-3xl space-y-6 px-4 py-6">
          {messages.map((m) => (
            <MessageView key={m.id} message={m} />
          ))}
        </div>
      )}
    </div>
  );
}

export function ChatView() {
  const notice = useChat((s) => s.notice);
  const [menu, setMenu] = useState(false);

  useEffect(() => {
    void chatStore.getState().init();
  }, []);

  return (
    <div className="flex h-full">
      {/* One sidebar: a fixed overlay on small screens when opened, a column from md up. */}
      <div className={`${menu ? "fixed inset-0 z-30 flex" : "hidden"} md:static md:z-auto md:flex`}>
        <Sidebar onNavigate={() => setMenu(false)} />
        {menu && (
          <button
            className="flex-1 bg-black/50 md:hidden"
            onClick={() => setMenu(false)}
            aria-label="Close conversations"
          />
        )}
      </div>
      <main className="flex min-w-0 flex-1 flex-col">
        <Header onMenu={() => setMenu(true)} />
        {notice && (
          <div className="mx-auto w-full max-w-3xl px-4 pt-3">
            <ErrorNote error={notice} onDismiss={() => chatStore.getState().dismissNotice()} />
          </div>
        )}
        <Messages />
        <Composer />
      </main>
    </div>
  );
}
