import { ChatView } from "./components/ChatView";
import { SignIn } from "./components/SignIn";
import { useAuth } from "./hooks";

export default function App() {
  const signedIn = useAuth((s) => s.credential !== null);
  return signedIn ? <ChatView /> : <SignIn />;
}
