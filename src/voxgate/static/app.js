// voxgate web client: a plain ES module with no build step and no dependencies. Push-to-talk,
// typed questions and uploads go to POST /v1/chat (MediaRecorder, replies streamed as SSE);
// hands-free streams the microphone over the realtime socket /v1/realtime, where the server
// takes the turns. Replies play with Web Audio; each can be replayed from its own message.

const $ = (id) => document.getElementById(id);
const TOKEN_KEY = "voxgate.session"; // {token, expiresAt} in localStorage: shared by tabs
const CHOICES_KEY = "voxgate.choices"; // voice, model, speed: this browser's preferences
const HOLD_MS = 350; // a press longer than this is push-to-talk; shorter is a click
const FRAME_MS = 20; // hands-free: microphone audio goes out in frames this long
const CAPTURE_WORKLET = "/static/capture-worklet.js";
// Opus in WebM (Chromium, Firefox) or Ogg (older Firefox, Safari); else the browser's default.
const MIME_TYPES = ["audio/webm;codecs=opus", "audio/ogg;codecs=opus"];
const TOUCH = matchMedia("(pointer: coarse)").matches;
const IDLE_HINT = TOUCH ? "Hold the button to talk, or tap it to start and tap again to send."
                        : "Hold Space or the Talk button to speak, or click it to start and again to send.";

// Read by the browser tests; updated as reply audio chunks start playing. lastTurn is the
// latest turn, filled in as it goes (see beginTurn); lastReplay the latest replayed message.
const stats = (window.voxgateStats = {
  chunksPlayed: 0, lastTranscript: "", lastReply: "", lastTurn: null, lastReplay: null,
});

const state = {
  token: null,
  conversationId: null, // null: the next turn starts a new conversation
  persona: null,        // the open conversation's persona (or the one a new conversation will get)
  defaultPersona: null,
  personas: [],
  turn: null,           // the reply in the making: one at a time keeps the conversation in order
  offline: false,
  handsFree: false,
  search: "",
};

// ---------------------------------------------------------------- messages to the user

const setStatus = (text) => { $("status").textContent = text; };

function showAlert(text) {
  $("alert").textContent = text;
  $("alert").hidden = !text;
}

class ApiError extends Error {
  constructor(status, body) {
    super(body?.error?.message || `the server answered with status ${status}`);
    this.status = status;
    this.code = body?.error?.code;
  }
}
// fetch() rejects only when no answer arrived at all: the connection (or server) is gone.
class ConnectionLost extends Error {}

// What an error means to the person talking, in their words, not the API's.
const PLAIN = {
  no_speech: "I did not hear any words. Please try again, a little closer to the microphone.",
  busy: "voxgate is busy with other conversations. Please try again in a moment.",
  rate_limited: "That was a lot of questions at once. Please wait a moment, then try again.",
  question_too_long: "That question is too long for the model. Please ask a shorter one.",
};
const sentence = (text) => text.charAt(0).toUpperCase() + text.slice(1) + (/[.!?]$/.test(text) ? "" : ".");
const plainWords = (error) => PLAIN[error?.code] ?? sentence(error?.message || "something went wrong");

function report(err) {
  if (err instanceof ConnectionLost) return reconnect();
  if (err?.name === "NotAllowedError" || err?.name === "SecurityError") {
    return showAlert("Microphone access was denied. Allow the microphone for this site " +
                     "(the icon in the address bar), then try again — or type, or upload an audio file.");
  }
  if (err?.name === "NotFoundError") return showAlert("No microphone was found. Connect one, or upload an audio file.");
  if (err instanceof ApiError) return showAlert(plainWords(err));
  console.warn(err);
  showAlert(`Something went wrong: ${err?.message ?? err}`);
}

// Poll the cheap liveness probe until the server answers again, then pick up where we were.
async function reconnect() {
  showAlert("Connection to the server lost — reconnecting…");
  if (state.offline) return; // already polling
  state.offline = true;
  do await new Promise((resolve) => setTimeout(resolve, 2000));
  while (!(await fetch("/healthz", { cache: "no-store" }).then((r) => r.ok, () => false)));
  state.offline = false;
  showAlert("");
  setStatus("Reconnected. If your last question got no answer, please ask again.");
  if (!$("app").hidden) {
    await loadConversations().catch(report);
    if (state.conversationId) await openConversation(state.conversationId).catch(report);
    if (state.handsFree && !live.socket) connectLive();
  }
}

// ---------------------------------------------------------------- API

async function api(path, { method = "GET", json, form, auth = true, signal } = {}) {
  const headers = {};
  if (auth && state.token) headers.Authorization = `Bearer ${state.token}`;
  let body = form; // for FormData the browser writes the multipart boundary itself
  if (json !== undefined) {
    headers["Content-Type"] = "application/json";
    body = JSON.stringify(json);
  }
  const response = await fetch(path, { method, headers, body, signal }).catch((err) => {
    throw err.name === "AbortError" ? err : new ConnectionLost(err.message);
  });
  if (!response.ok) {
    const error = new ApiError(response.status, await response.json().catch(() => null));
    if (response.status === 401 && auth && state.token) signOut("Your session has expired: please sign in again.");
    throw error;
  }
  return response;
}

const getJson = async (path, options) => (await api(path, options)).json();

// EventSource cannot POST, so the SSE stream is read and split into events here.
async function* sseEvents(response) {
  const reader = response.body.pipeThrough(new TextDecoderStream()).getReader();
  let buffer = "";
  for (;;) {
    const chunk = await reader.read().catch((err) => {
      throw err.name === "AbortError" ? err : new ConnectionLost(err.message);
    });
    if (chunk.done) return;
    // Normalise line ends; a \r at the very end may be half of a \r\n, so it waits.
    buffer = (buffer + chunk.value).replace(/\r\n|\r(?!$)/g, "\n");
    let end;
    while ((end = buffer.indexOf("\n\n")) >= 0) {
      const block = buffer.slice(0, end);
      buffer = buffer.slice(end + 2);
      let event = "message";
      const data = [];
      for (const line of block.split("\n")) { // ":..." comments (keep-alives) have no field name
        const [, field, value] = line.match(/^([^:]*):? ?(.*)$/);
        if (field === "event") event = value;
        else if (field === "data") data.push(value);
      }
      if (data.length) yield { event, data: JSON.parse(data.join("\n")) };
    }
  }
}

// ---------------------------------------------------------------- sign in, across tabs

// The token lives in localStorage until it expires, so every tab and reload stays signed in;
// signing out in one tab signs out all of them (the `storage` event).
function savedToken() {
  try {
    const saved = JSON.parse(localStorage.getItem(TOKEN_KEY));
    if (saved && Date.parse(saved.expiresAt) > Date.now() + 30_000) return saved.token;
  } catch { /* unreadable: sign in again */ }
  localStorage.removeItem(TOKEN_KEY);
  return null;
}

async function signIn(event) {
  event.preventDefault();
  audioContext(); // a user gesture: unlock audio now so replies can play by themselves
  const form = new FormData(event.target);
  try {
    const { access_token, expires_at } = await getJson("/v1/auth/login", {
      method: "POST", auth: false,
      json: { username: form.get("username"), password: form.get("password") },
    });
    state.token = access_token;
    localStorage.setItem(TOKEN_KEY, JSON.stringify({ token: access_token, expiresAt: expires_at }));
    event.target.reset();
    showAlert("");
    await enterApp();
  } catch (err) {
    // 422: a name or password the server could never accept; say the same as for 401.
    if (err instanceof ApiError && [401, 422].includes(err.status)) showAlert("Wrong username or password.");
    else if (err instanceof ApiError && err.status === 429) showAlert(sentence(err.message));
    else report(err);
  }
}

function signOut(message = "") {
  state.token = null;
  localStorage.removeItem(TOKEN_KEY);
  $("hands-free").checked = false;
  setHandsFree(false);
  newConversation();
  for (const id of ["app", "sign-out", "menu", "settings-toggle"]) $(id).hidden = true;
  $("login").hidden = false;
  showAlert(message);
  $("username").focus();
}

async function enterApp() {
  const [me, personas] = await Promise.all([getJson("/v1/me"), getJson("/v1/personas")]);
  state.defaultPersona = state.persona = me.default_persona;
  showPersonas(personas);
  $("login").hidden = true;
  $("app").hidden = $("menu").hidden = $("settings-toggle").hidden = false;
  $("sign-out").hidden = !state.token; // with VOXGATE_AUTH=off there is nobody to sign out
  $("sign-out").title = `Signed in as ${me.username}`;
  setStatus(IDLE_HINT);
  showTalkState();
  await Promise.all([loadConversations(), loadVoices(), loadModels()]);
  showEmptyChat();
  $("mic").focus({ preventScroll: true });
}

// ---------------------------------------------------------------- pickers: persona, voice, model

const choices = JSON.parse(localStorage.getItem(CHOICES_KEY) || "{}");
const saveChoices = () => localStorage.setItem(CHOICES_KEY, JSON.stringify(choices));

function showPersonas(personas) {
  state.personas = personas;
  $("persona").replaceChildren(...personas.map((p) => {
    const marks = [p.builtin ? "" : "yours", p.name === state.defaultPersona ? "default" : ""].filter(Boolean);
    return new Option(marks.length ? `${p.name} (${marks.join(", ")})` : p.name, p.name);
  }));
  $("persona").value = state.persona;
  showPersonaButtons();
}

function showPersonaButtons() {
  const persona = state.personas.find((p) => p.name === $("persona").value);
  $("make-default").disabled = $("persona").value === state.defaultPersona;
  $("edit-persona").disabled = !persona || persona.builtin;
}

// The persona belongs to the conversation: the account's default changes only by "Make default".
async function choosePersona() {
  state.persona = $("persona").value;
  showPersonaButtons();
  if (state.conversationId) {
    await api(`/v1/conversations/${encodeURIComponent(state.conversationId)}`,
              { method: "PATCH", json: { persona: state.persona } });
    setStatus(`This conversation now talks with the ${state.persona} persona.`);
  } else {
    setStatus(`The new conversation will use the ${state.persona} persona.`);
  }
  syncLive();
}

async function makeDefaultPersona() {
  await api("/v1/me/settings", { method: "PUT", json: { default_persona: $("persona").value } });
  state.defaultPersona = $("persona").value;
  showPersonas(state.personas);
  setStatus(`${state.defaultPersona} is now your default persona for new conversations.`);
}

function openPersonaDialog(persona) {
  const form = $("persona-form");
  form.reset();
  form.dataset.editing = persona?.name ?? "";
  $("persona-dialog-title").textContent = persona ? `Edit ${persona.name}` : "New persona";
  $("persona-name").disabled = Boolean(persona); // a name is the persona's id
  if (persona) {
    $("persona-name").value = persona.name;
    $("persona-prompt").value = persona.system_prompt;
    $("persona-voice").value = persona.voice ?? "";
    $("persona-language").value = persona.language ?? "";
    $("persona-temperature").value = persona.temperature ?? "";
  }
  $("persona-dialog").showModal();
}

async function savePersona(event) {
  event.preventDefault();
  const editing = $("persona-form").dataset.editing;
  const value = (id) => $(id).value.trim() || null;
  const fields = {
    system_prompt: $("persona-prompt").value.trim(), voice: value("persona-voice"),
    language: value("persona-language"),
    temperature: $("persona-temperature").value === "" ? null : Number($("persona-temperature").value),
  };
  try {
    const saved = await getJson(editing ? `/v1/personas/${encodeURIComponent(editing)}` : "/v1/personas", {
      method: editing ? "PATCH" : "POST", json: editing ? fields : { name: $("persona-name").value.trim(), ...fields },
    });
    $("persona-dialog").close();
    showPersonas(await getJson("/v1/personas"));
    $("persona").value = saved.name;
    await choosePersona();
    setStatus(`${editing ? "Saved" : "Created"} the ${saved.name} persona.`);
  } catch (err) {
    report(err); // the dialog stays open with what was typed
  }
}

// GET /v1/voices, grouped by language; each voice says its gender and engine.
async function loadVoices() {
  const { data } = await getJson("/v1/voices");
  const groups = new Map();
  for (const voice of data) {
    const language = voice.language ?? "any language";
    if (!groups.has(language)) groups.set(language, []);
    groups.get(language).push(voice);
  }
  const names = new Intl.DisplayNames([navigator.language || "en"], { type: "language" });
  const languageName = (code) => { try { return names.of(code); } catch { return code; } };
  const optgroups = () => [...groups].sort(([a], [b]) => languageName(a).localeCompare(languageName(b)))
    .map(([language, voices]) => {
      const group = document.createElement("optgroup");
      group.label = `${languageName(language)} (${language})`;
      group.append(...voices.map((v) => new Option(
        `${v.name} — ${[v.gender, v.engine, v.default ? "default" : ""].filter(Boolean).join(", ")}`, v.id)));
      return group;
    });
  $("voice").replaceChildren($("voice").options[0], ...optgroups());
  $("persona-voice").replaceChildren($("persona-voice").options[0], ...optgroups());
  $("voice").value = choices.voice ?? "";
  if ($("voice").value !== (choices.voice ?? "")) $("voice").value = ""; // the voice is gone
}

// The LLM and the custom models built on it (GET /v1/models).
async function loadModels() {
  const { data } = await getJson("/v1/models");
  const llms = data.filter((m) => m.role === "llm" && ["ready", "loaded"].includes(m.state)); // on disk
  const fallback = llms.find((m) => m.default)?.id;
  $("model").replaceChildren(new Option(fallback ? `Default (${fallback})` : "Default model", ""),
    ...llms.filter((m) => !m.default).map((m) => new Option(`${m.id}${m.source === "custom" ? " (custom)" : ""}`, m.id)));
  $("model").value = choices.model ?? "";
  if ($("model").value !== (choices.model ?? "")) $("model").value = "";
}

function chooseSetting(key) {
  choices[key] = $(key).value;
  saveChoices();
  syncLive();
}

// What every turn asks for, over either transport.
function turnOptions() {
  const options = { persona: state.persona };
  if ($("voice").value) options.voice = $("voice").value;
  if ($("model").value) options.model = $("model").value;
  return options;
}

// ---------------------------------------------------------------- conversations

const shortDate = new Intl.DateTimeFormat(undefined, { dateStyle: "medium", timeStyle: "short" });

async function loadConversations() {
  const query = new URLSearchParams({ limit: "100" });
  if (state.search) query.set("q", state.search);
  const page = await getJson(`/v1/conversations?${query}`);
  $("conversations").replaceChildren(...page.data.map((c) => {
    const title = c.title || "Untitled";
    const open = document.createElement("button");
    open.type = "button";
    open.className = "open";
    open.title = title; // the whole title, where two lines cut it
    const name = document.createElement("span");
    name.className = "title";
    name.textContent = title;
    const when = document.createElement("time");
    when.dateTime = c.updated_at;
    when.textContent = shortDate.format(new Date(c.updated_at));
    open.append(name, when);
    open.addEventListener("click", () => openConversation(c.id).then(closeDrawer).catch(report));
    const remove = button("✕", () => deleteConversation(c.id, title));
    remove.className = "delete";
    remove.setAttribute("aria-label", `Delete conversation “${title}”`);
    const item = document.createElement("li");
    item.dataset.id = c.id;
    if (c.id === state.conversationId) item.setAttribute("aria-current", "true");
    item.append(open, remove);
    return item;
  }));
  $("no-conversations").hidden = page.data.length > 0;
  $("no-conversations").textContent = state.search ? "No conversation has that in its title." : "No conversations yet.";
  return page.data;
}

function button(label, onClick) {
  const b = document.createElement("button");
  b.type = "button";
  b.textContent = label;
  b.addEventListener("click", () => onClick().catch(report));
  return b;
}

function markCurrent() {
  for (const item of $("conversations").children) {
    if (item.dataset.id === state.conversationId) item.setAttribute("aria-current", "true");
    else item.removeAttribute("aria-current");
  }
}

function setTitle(title) {
  $("chat-title").textContent = title;
  $("rename").hidden = !state.conversationId;
}

async function openConversation(id) {
  if (state.turn) dropTurn(state.turn);
  player.reset();
  const c = await getJson(`/v1/conversations/${encodeURIComponent(id)}`);
  state.conversationId = c.id;
  state.persona = c.persona || state.defaultPersona;
  $("persona").value = state.persona;
  showPersonaButtons();
  setTitle(c.title || "Untitled");
  // Loading history is not news: keep the live region quiet while it fills.
  $("messages").setAttribute("aria-live", "off");
  $("messages").replaceChildren();
  for (const m of c.messages) {
    if (m.role === "user") addMessage("user", m.transcript ?? m.text);
    else addReply(m.text, { messageId: m.id, conversationId: c.id, voice: m.voice, hasAudio: m.has_audio,
                            models: m.models, timings: m.timings });
  }
  setTimeout(() => $("messages").setAttribute("aria-live", "polite"), 0);
  markCurrent();
  syncLive();
  setStatus(`Opened “${$("chat-title").textContent}”.`);
}

function newConversation() {
  if (state.turn) dropTurn(state.turn);
  player.reset();
  state.conversationId = null; // created by the server with the first turn
  state.persona = state.defaultPersona;
  if (state.persona) $("persona").value = state.persona;
  showPersonaButtons();
  setTitle("New conversation");
  $("messages").replaceChildren();
  showEmptyChat();
  markCurrent();
  syncLive();
}

function showEmptyChat() {
  if ($("messages").children.length) return;
  const hint = document.createElement("li");
  hint.className = "empty";
  hint.textContent = "Ask anything: talk, or type below.";
  $("messages").append(hint);
}

async function renameConversation() {
  const title = prompt("Rename this conversation:", $("chat-title").textContent)?.trim();
  if (!title) return;
  await api(`/v1/conversations/${encodeURIComponent(state.conversationId)}`, { method: "PATCH", json: { title } });
  setTitle(title);
  await loadConversations();
  setStatus(`Renamed to “${title}”.`);
}

async function deleteConversation(id, title) {
  if (!confirm(`Delete the conversation “${title}”?`)) return;
  await api(`/v1/conversations/${encodeURIComponent(id)}`, { method: "DELETE" });
  if (id === state.conversationId) newConversation();
  await loadConversations();
  $("new-conversation").focus(); // the focused button is gone
  setStatus(`Deleted “${title}”.`);
}

// The drawer (phones): the list slides over the chat; Esc, the scrim or a choice closes it.
function openDrawer() {
  $("sidebar").classList.add("open");
  $("scrim").hidden = false;
  $("menu").setAttribute("aria-expanded", "true");
  $("new-conversation").focus();
}

function closeDrawer() {
  if (!$("sidebar").classList.contains("open")) return;
  $("sidebar").classList.remove("open");
  $("scrim").hidden = true;
  $("menu").setAttribute("aria-expanded", "false");
}

// ---------------------------------------------------------------- messages

function addMessage(role, text) {
  $("messages").querySelector(".empty")?.remove();
  const item = document.createElement("li");
  item.className = role;
  const who = document.createElement("span");
  who.className = "who";
  who.textContent = role === "user" ? "You: " : "voxgate: ";
  const body = document.createElement("span");
  body.className = "body";
  body.textContent = text;
  item.append(who, body);
  $("messages").append(item);
  item.scrollIntoView({ block: "nearest" });
  return body;
}

// A reply with its own Replay and Download, which fetch its audio when first asked:
// the audio of this session's turn, the stored recording, or the text spoken again.
function addReply(text, info = {}) {
  const body = addMessage("assistant", text);
  const item = body.parentElement;
  item.reply = { wavs: null, blob: null, ...info };
  const meta = document.createElement("small");
  meta.className = "meta";
  const actions = document.createElement("div");
  actions.className = "actions";
  const replay = button("Replay", () => replayMessage(item));
  const download = button("Download", () => downloadMessage(item));
  replay.setAttribute("aria-label", "Replay this reply");
  download.setAttribute("aria-label", "Download this reply");
  actions.append(replay, download);
  item.append(meta, actions);
  showReplyInfo(item);
  return body;
}

// The reply's audio as a Blob, fetched (or joined) once.
async function replyAudio(item) {
  const reply = item.reply;
  if (reply.blob) return reply.blob;
  if (reply.wavs?.length) reply.blob = joinWavs(reply.wavs);
  else if (reply.hasAudio && reply.messageId) {
    const path = `/v1/conversations/${encodeURIComponent(reply.conversationId)}/messages/${reply.messageId}/audio`;
    reply.blob = await (await api(path)).blob();
  } else {
    const text = item.querySelector(".body").textContent;
    reply.blob = await (await api("/v1/audio/speech", {
      method: "POST", json: { input: text, voice: reply.voice || "default", response_format: "wav" },
    })).blob();
  }
  return reply.blob;
}

async function replayMessage(item) {
  audioContext();
  if (state.turn) return setStatus("Please wait for the current reply.");
  setStatus("Replaying…");
  const blob = await replyAudio(item);
  await player.playBlob(blob);
  stats.lastReplay = { messageId: item.reply.messageId, conversationId: item.reply.conversationId, bytes: blob.size };
  setStatus("Replaying the reply. Esc or Stop ends it.");
}

async function downloadMessage(item) {
  const blob = await replyAudio(item);
  const link = document.createElement("a");
  link.href = URL.createObjectURL(blob);
  link.download = `voxgate-reply-${item.reply.messageId ?? "latest"}.${blob.type.includes("wav") ? "wav" : blob.type.split("/")[1] || "audio"}`;
  document.body.append(link);
  link.click();
  link.remove();
  setTimeout(() => URL.revokeObjectURL(link.href), 60_000);
}

// Small, under each reply: the models, how soon the voice came, the stage times.
const STAGES = [["turn_wait", "turn"], ["stt", "STT"], ["llm", "LLM"], ["tts", "TTS"]];

function showReplyInfo(item, turnStats = null) {
  const { models, timings } = turnStats ?? item.reply;
  const t = timings ?? {};
  const ms = (value) => Math.round(value);
  const firstAudio = t.speech_to_audio ?? turnStats?.speechToAudioMs; // the server's measure if it has one
  const parts = [];
  const names = Object.values(models ?? {}).filter(Boolean);
  if (names.length) parts.push(names.join(" · "));
  if (firstAudio != null) {
    const after = turnStats ? ` after ${turnStats.spoken ? "you stopped" : "sending"}` : "";
    parts.push(`first audio ${ms(firstAudio)} ms${after}`);
  }
  for (const [key, label] of STAGES) if (typeof t[key] === "number") parts.push(`${label} ${ms(t[key])} ms`);
  const meta = item.querySelector(".meta");
  meta.textContent = parts.join(" · ");
  // Every number in the tooltip: the server's stage times, and the time this page measured.
  const details = Object.entries(t).filter(([, v]) => typeof v === "number")
    .map(([key, value]) => `${key.replaceAll("_", " ")}: ${ms(value)} ms`);
  if (turnStats?.speechToAudioMs != null) {
    const from = turnStats.via === "realtime" && turnStats.spoken ? "the end of the turn" : "sending";
    details.push(`playing here ${turnStats.speechToAudioMs} ms after ${from}`);
  }
  if (item.reply.voice) details.push(`voice: ${item.reply.voice}`);
  meta.title = details.join("\n");
}

// ---------------------------------------------------------------- one turn

// A turn is the reply in the making, whichever way it comes: an SSE stream (push-to-talk,
// typed questions, uploads) or the realtime socket (hands-free). Both name their events
// alike. `spoken`: the question was the user's voice, so its end is when they stopped talking.
function beginTurn(via, { spoken = false, userText = null } = {}) {
  if (state.turn) dropTurn(state.turn);
  const turn = {
    via, endedAt: performance.now(), reply: null, question: null, abort: null, stopped: false, finished: false,
    stats: { via, spoken, speechToAudioMs: null, timings: null, models: null, voice: null, stopped: false },
  };
  state.turn = turn;
  stats.lastTurn = turn.stats;
  showAlert("");
  player.reset();
  if (userText) turn.question = addMessage("user", userText);
  controls();
  return turn;
}

function replyItem(turn) {
  if (!turn.reply) {
    turn.reply = addReply("", { wavs: player.wavs });
    // Announce the reply once complete, not word by word.
    $("messages").setAttribute("aria-busy", "true");
  }
  return turn.reply.parentElement;
}

function onReplyEvent(turn, type, data) {
  // A stopped turn's last messages, already on their way, are dropped; its end is news.
  if (turn.stopped && type !== "done" && type !== "interrupted") return;
  if (type === "transcript") {
    stats.lastTranscript = data.text;
    turn.question = addMessage("user", data.text);
    setStatus("Thinking…");
  } else if (type === "text") {
    replyItem(turn);
    turn.reply.textContent += data.delta;
    stats.lastReply = turn.reply.textContent;
    turn.reply.parentElement.scrollIntoView({ block: "nearest" });
  } else if (type === "audio") {
    const item = replyItem(turn);
    player.add(data.audio, (startsAt) => {
      if (turn.stats.speechToAudioMs !== null) return;
      turn.stats.speechToAudioMs = Math.round(startsAt - turn.endedAt);
      showReplyInfo(item, turn.stats);
    });
  } else if (type === "done" || type === "interrupted") {
    finishTurn(turn, data, type === "interrupted" ? "interrupted" : null);
  } else if (type === "error") {
    throw new ApiError(500, data);
  }
  showTalkState();
}

// The server stored the turn (`done`), or as much of it as the user heard (`interrupted`).
function finishTurn(turn, data, stopped) {
  turn.finished = true;
  const item = replyItem(turn);
  turn.reply.textContent = stats.lastReply = data.reply;
  Object.assign(item.reply, { messageId: data.message_id, conversationId: data.conversation_id, voice: data.voice,
                              models: data.models, timings: data.timings });
  if (stopped) {
    markStopped(turn, stopped);
    item.reply.wavs = null; // the stored reply is what was heard, not every chunk that came
  }
  Object.assign(turn.stats, { timings: data.timings ?? null, models: data.models ?? null, voice: data.voice ?? null });
  showReplyInfo(item, turn.stats);
  if (turn.via === "realtime") live.conversationId = data.conversation_id; // the session goes on in it
  const created = !state.conversationId;
  state.conversationId = data.conversation_id;
  if (state.turn === turn) {
    if (stopped) {
      player.reset();
      setStatus("Interrupted.");
    } else {
      setStatus(turn.via === "sse" ? "Answered." : "Answered. Speak whenever you like.");
    }
    leaveTurn(turn);
  }
  // A first turn created the conversation (titled after the question): list it.
  loadConversations().then((listed) => {
    const title = listed.find((c) => c.id === data.conversation_id)?.title;
    if (created && title && state.conversationId === data.conversation_id) setTitle(title);
    markCurrent();
  }).catch(report);
  syncLive();
}

// The turn is no longer the page's: its controls are free again.
function leaveTurn(turn) {
  if (state.turn !== turn) return;
  state.turn = null;
  $("messages").removeAttribute("aria-busy");
  controls();
}

// Another turn takes over (the user spoke while an upload was answered, or the socket
// closed): this one is abandoned without a word to the server, which knows already.
function dropTurn(turn) {
  turn.stopped = true;
  markStopped(turn, "interrupted");
  turn.abort?.abort();
  player.reset();
  leaveTurn(turn);
}

function markStopped(turn, how) {
  turn.stats.stopped = true;
  const item = turn.reply?.parentElement;
  if (!item || item.classList.contains("stopped")) return;
  item.classList.add("stopped");
  const note = document.createElement("span");
  note.className = "note";
  note.textContent = ` (${how})`;
  turn.reply.after(note);
}

// The Stop button and Esc: silence the reply at once, and stop its making.
function stopReply() {
  const turn = state.turn;
  if (!turn) { // a finished reply still playing, or a replay
    player.stop();
    return setStatus("Stopped.");
  }
  turn.stopped = true;
  markStopped(turn, "stopped");
  if (turn.via === "sse") {
    turn.abort.abort(); // the server stops at the next token and keeps nothing of the turn
    setStatus("Stopped. An unfinished answer is not saved.");
  } else {
    // The server keeps what the user heard and says so with `interrupted` (unless nothing was).
    live.stopping = turn;
    live.send({ type: "response.cancel" });
    setStatus("Stopped.");
  }
  player.reset();
  leaveTurn(turn);
  if (turn.reply) showReplyInfo(turn.reply.parentElement, turn.stats); // stage times follow with `interrupted`
}

function controls() {
  $("upload").disabled = $("send").disabled = state.turn !== null;
  $("stop").disabled = state.turn === null && !player.isPlaying();
  showTalkState();
}

// The talk control's colour and label: what voxgate is doing, at a glance.
function showTalkState() {
  let [key, label] = state.handsFree ? ["idle", live.ready ? "Hands-free: listening for you" : "Hands-free"]
                                     : ["idle", TOUCH ? "Tap or hold to talk" : "Talk (hold Space)"];
  if (mic.recorder || live.hearing) [key, label] = ["listening", "Listening…"];
  else if (player.isPlaying()) [key, label] = ["speaking", TOUCH ? "Speaking… (Stop ends it)" : "Speaking… (Esc or Stop to end)"];
  else if (state.turn) [key, label] = ["thinking", "Thinking…"];
  $("talk").dataset.state = key;
  if ($("talk-state").textContent !== label) $("talk-state").textContent = label;
}

async function sendTurn(input) {
  if (state.turn) return setStatus("Please wait for the current reply.");
  if (input.text && live.ready) return sendLiveText(input.text); // hands-free: on its socket
  const turn = beginTurn("sse", { spoken: Boolean(input.spoken), userText: input.text });
  turn.abort = new AbortController();
  const form = new FormData();
  const fields = { reply_as: "voice", voice_format: "wav", stream: "true", ...turnOptions() };
  if (state.conversationId) fields.conversation_id = state.conversationId;
  for (const [key, value] of Object.entries(fields)) form.append(key, value);
  if (input.text) form.append("text", input.text);
  else form.append("audio", input.audio, input.audio.name || `speech.${input.audio.type.includes("ogg") ? "ogg" : "webm"}`);
  setStatus(input.text ? "Thinking…" : "Transcribing…");
  try {
    const response = await api("/v1/chat", { method: "POST", form, signal: turn.abort.signal });
    if (!response.headers.get("content-type")?.startsWith("text/event-stream")) {
      throw new Error("the server did not stream its reply (is it an older voxgate?)");
    }
    for await (const { event, data } of sseEvents(response)) onReplyEvent(turn, event, data);
    if (!turn.finished) throw new ConnectionLost("the reply stream ended early");
  } catch (err) {
    if (turn.stopped) return; // stopped by the user, or another turn took over
    unsend(turn, input.text);
    report(err);
  } finally {
    leaveTurn(turn);
  }
}

// A turn that failed left nothing on the server: take it out of the chat, and give a typed
// question back to the text box so it can be sent again.
function unsend(turn, text) {
  turn.question?.parentElement.remove();
  turn.reply?.parentElement.remove();
  if (text && !$("text").value) $("text").value = text;
  setStatus(text ? "Not sent: your question is back in the text box." : "No answer.");
  showEmptyChat();
}

// ---------------------------------------------------------------- reply audio

let context = null;
// One AudioContext for playback, created or resumed during a user gesture (sign in, a
// press of the Talk button) so that the browser's autoplay rules let replies play alone.
function audioContext() {
  context ??= new AudioContext();
  if (context.state === "suspended") context.resume();
  return context;
}

// Each `audio` event carries a complete small WAV. Chunks are decoded in arrival order and
// scheduled back to back on the AudioContext clock, so clauses join without gaps. The speed
// applies to chunks scheduled after a change (and to replays) through playbackRate, which,
// unlike an <audio> element's, also shifts the pitch a little.
const player = {
  wavs: [], playing: [], decoding: Promise.resolve(), nextTime: 0, generation: 0,

  reset() {
    this.stop();
    this.generation += 1; // late decodes of the previous reply are dropped
    this.wavs = [];
  },

  // onStart(when): called as the chunk starts playing, with its start on performance.now()'s clock.
  add(base64, onStart) {
    const bytes = Uint8Array.from(atob(base64), (c) => c.charCodeAt(0));
    this.wavs.push(bytes);
    this.decode(bytes.buffer, onStart);
  },

  // A whole reply again (Replay): it takes the place of whatever was playing.
  async playBlob(blob) {
    this.reset();
    this.decode(await blob.arrayBuffer());
    await this.decoding;
  },

  decode(buffer, onStart) {
    const generation = this.generation;
    // decodeAudioData takes ownership of its buffer: give it a copy, the bytes are kept.
    this.decoding = this.decoding
      .then(() => audioContext().decodeAudioData(buffer.slice(0)))
      .then((decoded) => { if (generation === this.generation) this.schedule(decoded, onStart); })
      .catch((err) => showAlert(`Could not play part of the reply: ${err.message}`));
  },

  schedule(buffer, onStart) {
    const ctx = audioContext();
    const rate = Number($("speed").value);
    const source = ctx.createBufferSource();
    source.buffer = buffer;
    source.playbackRate.value = rate;
    source.connect(ctx.destination);
    const start = Math.max(ctx.currentTime + 0.05, this.nextTime);
    source.start(start);
    this.nextTime = start + buffer.duration / rate;
    const delay = (start - ctx.currentTime) * 1000;
    const startsAt = performance.now() + delay;
    const timer = setTimeout(() => {
      if (ctx.state !== "running") return;
      stats.chunksPlayed += 1;
      onStart?.(startsAt);
    }, delay);
    const entry = { source, timer };
    this.playing.push(entry);
    source.onended = () => {
      this.playing = this.playing.filter((e) => e !== entry);
      controls();
    };
    controls();
  },

  stop() {
    for (const { source, timer } of this.playing) {
      clearTimeout(timer);
      source.onended = null;
      source.stop();
    }
    this.playing = [];
    this.nextTime = 0;
    controls();
  },

  isPlaying() { return this.playing.length > 0; },
};

// One WAV from the chunks: their PCM "data" payloads joined under a new 44-byte header.
// All chunks of a reply share one format (the voice's rate, mono, 16-bit PCM).
function joinWavs(wavs) {
  let format = null;
  const parts = [];
  for (const bytes of wavs) {
    const view = new DataView(bytes.buffer, bytes.byteOffset, bytes.byteLength);
    for (let pos = 12; pos + 8 <= bytes.length;) {
      const id = String.fromCharCode(...bytes.subarray(pos, pos + 4));
      const size = Math.min(view.getUint32(pos + 4, true), bytes.length - pos - 8);
      if (id === "fmt ") format ??= bytes.slice(pos + 8, pos + 24);
      if (id === "data") parts.push(bytes.subarray(pos + 8, pos + 8 + size));
      pos += 8 + size + (size & 1); // chunks are padded to an even length
    }
  }
  const length = parts.reduce((sum, part) => sum + part.length, 0);
  const out = new Uint8Array(44 + length);
  const view = new DataView(out.buffer);
  const ascii = (pos, text) => [...text].forEach((c, i) => { out[pos + i] = c.charCodeAt(0); });
  ascii(0, "RIFF"); view.setUint32(4, 36 + length, true); ascii(8, "WAVE");
  ascii(12, "fmt "); view.setUint32(16, 16, true); out.set(format, 20);
  view.setUint16(20, 1, true); // plain PCM, even if a chunk said WAVE_FORMAT_EXTENSIBLE
  ascii(36, "data"); view.setUint32(40, length, true);
  let pos = 44;
  for (const part of parts) { out.set(part, pos); pos += part.length; }
  return new Blob([out], { type: "audio/wav" });
}
// ---------------------------------------------------------------- microphone

const mic = { stream: null, ctx: null, source: null, analyser: null, worklet: null, timer: 0, recorder: null, chunks: [] };

async function openMic() {
  if (mic.stream) return;
  if (!navigator.mediaDevices?.getUserMedia) {
    throw new Error("the microphone needs a secure page: open voxgate over HTTPS or on localhost");
  }
  // The browser's echo cancellation keeps most of the reply's own voice out of hands-free
  // input; the server recognises what is left.
  mic.stream = await navigator.mediaDevices.getUserMedia({
    audio: { echoCancellation: true, noiseSuppression: true, autoGainControl: true },
  });
  // Its own context at the microphone's rate: some Firefox versions refuse to connect a
  // stream to a context running at another rate.
  const rate = mic.stream.getAudioTracks()[0].getSettings().sampleRate;
  mic.ctx = new AudioContext(rate ? { sampleRate: rate } : {});
  mic.ctx.resume();
  mic.source = mic.ctx.createMediaStreamSource(mic.stream);
  mic.analyser = mic.ctx.createAnalyser();
  mic.analyser.fftSize = 1024;
  mic.source.connect(mic.analyser);
  // A timer, not requestAnimationFrame, which stops in a background tab.
  mic.timer = setInterval(showLevel, 50);
}

// Release the microphone whenever it is not needed, so the browser's "recording" indicator
// only shows while voxgate really listens.
function closeMic() {
  clearInterval(mic.timer);
  mic.stream?.getTracks().forEach((track) => track.stop());
  mic.ctx?.close();
  Object.assign(mic, { stream: null, ctx: null, source: null, analyser: null, worklet: null, recorder: null });
  $("level").value = 0;
  $("talk").style.setProperty("--level", 0);
}

function startRecording() {
  if (mic.recorder) return;
  const mimeType = MIME_TYPES.find((type) => MediaRecorder.isTypeSupported(type));
  const recorder = new MediaRecorder(mic.stream, mimeType ? { mimeType } : {});
  mic.chunks = [];
  recorder.ondataavailable = (e) => { if (e.data.size) mic.chunks.push(e.data); };
  recorder.start();
  mic.recorder = recorder;
  $("mic").setAttribute("aria-pressed", "true");
  setStatus("Listening… release (or press again) to send.");
  showTalkState();
}

function stopRecording() {
  const recorder = mic.recorder;
  mic.recorder = null;
  $("mic").setAttribute("aria-pressed", "false");
  showTalkState();
  return new Promise((resolve) => {
    recorder.onstop = () => resolve(new Blob(mic.chunks, { type: recorder.mimeType }));
    recorder.stop();
  });
}

async function finishRecording() {
  const audio = await stopRecording();
  if (!state.handsFree) closeMic();
  await sendTurn({ audio, spoken: true });
}

// The level: RMS of the last 1024 samples, on the meter and as the talk button's halo.
function showLevel() {
  if (!mic.analyser) return;
  const samples = new Float32Array(mic.analyser.fftSize);
  mic.analyser.getFloatTimeDomainData(samples);
  const level = Math.min(1, 5 * Math.sqrt(samples.reduce((sum, x) => sum + x * x, 0) / samples.length));
  $("level").value = level;
  $("talk").style.setProperty("--level", level.toFixed(2));
}

async function setHandsFree(on) {
  state.handsFree = on;
  if (!on) {
    closeLive();
    if (mic.recorder) await stopRecording();
    closeMic();
    showTalkState();
    return setStatus(IDLE_HINT);
  }
  audioContext();
  try {
    await openMic();
    await (mic.worklet ??= mic.ctx.audioWorklet.addModule(CAPTURE_WORKLET));
    if (!state.handsFree) return; // switched off meanwhile
    connectLive();
  } catch (err) {
    state.handsFree = $("hands-free").checked = false;
    closeMic();
    report(err);
  }
}

// ---------------------------------------------------------------- hands-free: the realtime socket

// The microphone streams 16-bit PCM from an AudioWorklet, in 20 ms frames, over
// /v1/realtime. The server finds where turns end, starts answering at the first pause, and
// judges speech over a reply (its own voice coming back, an "mm-hmm", or a real
// interruption), so the microphone stays on while the reply plays.
const live = {
  socket: null, node: null, ready: false, error: null, hearing: false,
  conversationId: null, options: "", // what the session was started with
  stopping: null, // a turn the user stopped: the server may still say what it kept
  send(message) {
    if (this.socket?.readyState === WebSocket.OPEN) this.socket.send(JSON.stringify(message));
  },
};

function connectLive() {
  const url = `${location.protocol === "https:" ? "wss:" : "ws:"}//${location.host}/v1/realtime`;
  // A browser cannot set headers on a WebSocket: the token travels as a subprotocol.
  const socket = new WebSocket(url, state.token ? ["voxgate", `bearer.${state.token}`] : ["voxgate"]);
  const options = turnOptions();
  Object.assign(live, { socket, ready: false, stopping: null, error: null, hearing: false,
                        conversationId: state.conversationId, options: JSON.stringify(options) });
  setStatus("Hands-free: connecting…");
  socket.onopen = () => live.send({
    type: "session.start", conversation_id: live.conversationId, ...options,
    reply_as: "voice", voice_format: "wav", input_format: "pcm16", sample_rate: mic.ctx.sampleRate,
  });
  socket.onmessage = (e) => { if (socket === live.socket) onLiveMessage(JSON.parse(e.data)); };
  socket.onclose = (e) => { if (socket === live.socket) onLiveClosed(e); };
}

function streamMic() {
  const node = new AudioWorkletNode(mic.ctx, "pcm16-capture", {
    numberOfInputs: 1, numberOfOutputs: 0,
    processorOptions: { frameSamples: Math.round((mic.ctx.sampleRate * FRAME_MS) / 1000) },
  });
  const socket = live.socket;
  node.port.onmessage = (e) => { if (socket.readyState === WebSocket.OPEN) socket.send(e.data); };
  mic.source.connect(node);
  live.node = node;
}

function onLiveMessage(message) {
  const turn = state.turn?.via === "realtime" ? state.turn : null;
  switch (message.type) {
    case "session.ready":
      live.ready = true;
      streamMic();
      setStatus("Hands-free: just start speaking. You can talk over the reply.");
      showTalkState();
      break;
    case "speech.started":
      live.hearing = true;
      showTalkState();
      if (!state.turn) setStatus("Listening…");
      break;
    case "output.paused": // the user talks over the reply: hold it while the server judges
      context?.suspend();
      break;
    case "output.resumed": // only an "mm-hmm" or our own echo: go on where it stopped
      context?.resume();
      break;
    case "speech.stopped": // the turn is over: its answer follows
      live.stopping = null;
      live.hearing = false;
      beginTurn("realtime", { spoken: true });
      setStatus("Transcribing…");
      break;
    case "transcript":
    case "text":
    case "audio":
      if (!turn) break; // the last words of a reply the user stopped
      live.stopping = null; // a new turn's first message: the stopped one has had its say
      onReplyEvent(turn, message.type, message);
      break;
    case "done":
    case "interrupted": {
      const ended = live.stopping ?? turn;
      live.stopping = null;
      if (ended) finishTurn(ended, message, message.type === "interrupted" ? "interrupted" : null);
      break;
    }
    case "error":
      live.error = message.error;
      live.hearing = false;
      if (turn) dropTurn(turn);
      if (message.error?.code === "no_speech") { // a cough, a door: the VAD heard a sound, Whisper no words
        setStatus("Sorry, I did not catch that. Please say it again.");
        break;
      }
      if (turn) setStatus("No answer.");
      showAlert(plainWords(message.error));
      break;
  }
}

function onLiveClosed(event) {
  const { ready, error } = live;
  closeLive();
  if (event.code === 1008) return signOut("Your session has expired: please sign in again.");
  if (!ready && error) { // the server refused the session: trying again would not help
    state.handsFree = $("hands-free").checked = false;
    closeMic();
    return;
  }
  report(new ConnectionLost(`the realtime connection closed (${event.code})`)); // reconnects
}

// Stop streaming and close the session; a reply in the making on it is abandoned.
function closeLive() {
  const { socket, node } = live;
  Object.assign(live, { socket: null, node: null, ready: false, stopping: null, hearing: false });
  if (node) {
    node.port.onmessage = null;
    mic.source?.disconnect(node);
  }
  socket?.close();
  if (state.turn?.via === "realtime") dropTurn(state.turn);
}

// A session belongs to one conversation, persona, voice and model: another choice starts a new session.
function syncLive() {
  if (!live.socket || (live.conversationId === state.conversationId && live.options === JSON.stringify(turnOptions()))) {
    return;
  }
  closeLive();
  connectLive();
}

// A typed question in hands-free mode goes over the socket too, so its reply takes part in
// the session's turn-taking.
function sendLiveText(text) {
  beginTurn("realtime", { userText: text });
  live.stopping = null;
  live.send({ type: "input.text", text });
  setStatus("Thinking…");
}

// Push-to-talk: holding the button (or Space) records until release; a short press is a
// click, which starts recording, and the next press sends it.
const ptt = { pressedAt: 0, starting: null };

async function press() {
  audioContext();
  if (mic.recorder) return finishRecording(); // the second click
  if (state.handsFree) return setStatus("Hands-free is on: just start speaking.");
  if (state.turn) return setStatus("Please wait for the current reply.");
  if (ptt.starting) return;
  ptt.pressedAt = performance.now();
  ptt.starting = openMic().then(() => { startRecording(); return true; }, (err) => {
    closeMic();
    report(err);
    return false;
  });
}

async function release() {
  const starting = ptt.starting;
  ptt.starting = null;
  if (!starting) return;
  // Measured now, not after the wait: a permission prompt must not turn a click into a hold.
  const held = performance.now() - ptt.pressedAt;
  if ((await starting) && held >= HOLD_MS && mic.recorder) await finishRecording();
}

// ---------------------------------------------------------------- wiring

function wire() {
  const safe = (fn) => (...args) => Promise.resolve(fn(...args)).catch(report);
  $("login").addEventListener("submit", signIn);
  $("sign-out").addEventListener("click", () => signOut());
  $("menu").addEventListener("click", openDrawer);
  $("scrim").addEventListener("click", closeDrawer);
  $("settings-toggle").addEventListener("click", () => {
    const open = $("settings").hidden;
    $("settings").hidden = !open;
    $("settings-toggle").setAttribute("aria-expanded", String(open));
    if (open) $("persona").focus();
  });
  $("new-conversation").addEventListener("click", () => {
    newConversation();
    closeDrawer();
    setStatus("New conversation: ask away.");
    $("mic").focus();
  });
  let searching = 0;
  $("search").addEventListener("input", () => {
    clearTimeout(searching); // one request when the typing pauses, not one per key
    searching = setTimeout(safe(() => { state.search = $("search").value.trim(); return loadConversations(); }), 250);
  });
  $("rename").addEventListener("click", safe(renameConversation));
  $("persona").addEventListener("change", safe(choosePersona));
  $("make-default").addEventListener("click", safe(makeDefaultPersona));
  $("new-persona").addEventListener("click", () => openPersonaDialog(null));
  $("edit-persona").addEventListener("click", () =>
    openPersonaDialog(state.personas.find((p) => p.name === $("persona").value)));
  $("persona-form").addEventListener("submit", savePersona);
  $("persona-cancel").addEventListener("click", () => $("persona-dialog").close());
  $("voice").addEventListener("change", () => chooseSetting("voice"));
  $("model").addEventListener("change", () => chooseSetting("model"));
  $("speed").value = choices.speed ?? "1";
  $("speed").addEventListener("change", () => { choices.speed = $("speed").value; saveChoices(); });
  $("hands-free").addEventListener("change", safe(() => setHandsFree($("hands-free").checked)));

  const micButton = $("mic");
  micButton.addEventListener("pointerdown", (e) => {
    if (e.button !== 0) return;
    micButton.setPointerCapture(e.pointerId); // the release counts even off the button
    press().catch(report);
  });
  for (const type of ["pointerup", "pointercancel"]) micButton.addEventListener(type, safe(release));
  micButton.addEventListener("contextmenu", (e) => e.preventDefault()); // long touch
  // Enter, or a screen reader's click (detail 0), toggles like a click of the mouse.
  micButton.addEventListener("click", (e) => {
    if (e.detail !== 0) return;
    press().then(() => { ptt.starting = null; }).catch(report);
  });
  // Space is push-to-talk on the Talk button or with nothing focused; elsewhere it keeps
  // its usual meaning (pressing the focused button, typing a space).
  const spaceTalks = (e) => e.code === "Space" && !$("app").hidden &&
    (e.target === micButton || e.target === document.body);
  for (const type of ["keydown", "keyup"]) {
    document.addEventListener(type, (e) => {
      if (!spaceTalks(e)) return;
      e.preventDefault();
      if (type === "keyup") release().catch(report);
      else if (!e.repeat) press().catch(report);
    });
  }

  $("upload").addEventListener("click", () => { audioContext(); $("file").click(); });
  $("file").addEventListener("change", () => {
    const file = $("file").files[0];
    $("file").value = "";
    if (file) sendTurn({ audio: file });
  });
  $("text-form").addEventListener("submit", (e) => {
    e.preventDefault();
    audioContext();
    const text = $("text").value.trim();
    if (!text || state.turn) return;
    $("text").value = "";
    sendTurn({ text });
  });
  $("stop").addEventListener("click", () => {
    stopReply();
    $("mic").focus(); // the focused button is disabled now
  });
  document.addEventListener("keydown", (e) => {
    if (e.key !== "Escape" || $("app").hidden || $("persona-dialog").open) return;
    if ($("sidebar").classList.contains("open")) {
      closeDrawer();
      return $("menu").focus();
    }
    if (!state.turn && !player.isPlaying()) return;
    e.preventDefault();
    stopReply();
  });
  // Another tab signed in or out: follow it.
  addEventListener("storage", (e) => {
    if (e.key !== TOKEN_KEY) return;
    const token = savedToken();
    if (!token && state.token) signOut("You signed out in another tab.");
    else if (token && !state.token) {
      state.token = token;
      showAlert("");
      enterApp().catch(report);
    }
  });
}

async function boot() {
  wire();
  // Asked first, so that a page load never makes a request that fails.
  const { auth } = await getJson("/v1/auth/config", { auth: false });
  state.token = auth === "off" ? null : savedToken();
  if (auth === "on" && !state.token) {
    $("login").hidden = false;
    return $("username").focus();
  }
  await enterApp();
}

boot().catch(report);
