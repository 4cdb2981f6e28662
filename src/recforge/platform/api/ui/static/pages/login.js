// Token login: the token is checked with GET /whoami and kept in sessionStorage only.
import { api, el, errorBox, fill, login } from "../app.js";

export async function render(main) {
  const input = el("input", { id: "token", type: "password", autocomplete: "off", required: true,
    placeholder: "platform token", "aria-label": "token" });
  const msg = el("div", { id: "login-message" });
  const form = el("form", { class: "login", id: "login" },
    el("label", { for: "token" }, "Token"), input,
    el("button", { type: "submit" }, "Log in"), msg);
  form.addEventListener("submit", async (ev) => {
    ev.preventDefault();
    const t = input.value.trim();
    try {
      const who = await api("/whoami", { auth: t });
      login(t, who);
      location.hash = "#/jobs";
    } catch (err) {
      fill(msg, errorBox(err.status === 401 ? "unknown, revoked or expired token" : err));
    }
  });
  fill(main, el("h1", {}, "Log in"),
    el("p", { class: "muted" }, "Paste a token from `recforge platform token` (kept in this tab only)."),
    form);
  input.focus();
}
