// voxgate web client: a plain ES module with no build step and no dependencies. Push-to-talk,
// typed questions and uploads go to POST /v1/chat (MediaRecorder, replies streamed as SSE);
// hands-free streams the microphone over the realtime socket /v1/realtime, where the server
// takes the turns. Replies play with Web Audio.

const $ = (id) => document.getElementById(id);
const TOKEN_KEY = "voxgate.token";
const HOLD_MS = 350; // a press longer than this is push-to-talk; shorter is a click
const FRAME_MS = 20; // hands-free: microphone audio goes out in frames this long
const CAPTURE_WORKLET = "/static/capture-worklet.js";
// Opus in WebM (Chromium, Firefox) or Ogg (older Firefox, Safari); else the browser's default.
const MIME_TYPES = ["audio/webm;codecs=opus", "audio/ogg;codecs=opus"];

// Read by the browser tests; updated as reply audio chunks start playing. lastTurn is the
// latest turn, filled in as it goes (see beginTurn).
const stats = (window.voxgateStats = { chunksPlayed: 0, lastTranscript: "", lastReply: "", lastTurn: null });

const state = {
  token: sessionStorage.getItem(TOKEN_KEY), // per tab, gone when the tab closes
  conversationId: null, // null: the next turn starts a new conversation
  turn: null,           // the reply in the making: one at a time keeps the conversation in order
  offline: false,
  handsFree: false,
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
  }
}
// fetch() rejects only when no answer arrived at all: the connection (or server) is gone.
class ConnectionLost extends Error {}

function report(err) {
  if (err instanceof ConnectionLost) return reconnect();
  if (err?.name === "NotAllowedError" || err?.name === "SecurityError") {
    return showAlert("Microphone access was denied. Allow the microphone for this site " +
                     "(the icon in the address bar), then try again — or upload an audio file.");
  }
  if (err?.name === "NotFoundError") return showAlert("No microphone was found. Connect one, or upload an audio file.");
  if (err instanceof ApiError) return showAlert(`Server error: ${err.message}`);
  console.error(err);
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
  if (state.token || !$("app").hidden) {
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

// ---------------------------------------------------------------- sign in

async function signIn(event) {
  event.preventDefault();
  audioContext(); // a user gesture: unlock audio now so replies can play by themselves
  const form = new FormData(event.target);
  try {
    const { access_token } = await getJson("/v1/auth/login", {
      method: "POST", auth: false,
      json: { username: form.get("username"), password: form.get("password") },
    });
    state.token = access_token;
    sessionStorage.setItem(TOKEN_KEY, access_token);
    event.target.reset();
    showAlert("");
    await enterApp();
  } catch (err) {
    // 422: a name or password the server could never accept; say the same as for 401.
    if (err instanceof ApiError && [401, 422].includes(err.status)) showAlert("Wrong username or password.");
    else report(err);
  }
}

function signOut(message = "") {
  state.token = null;
  sessionStorage.removeItem(TOKEN_KEY);
  $("hands-free").checked = false;
  setHandsFree(false);
  newConversation();
  $("app").hidden = $("sign-out").hidden = true;
  $("login").hidden = false;
  showAlert(message);
  $("username").focus();
}

async function enterApp() {
  const [me, personas] = await Promise.all([getJson("/v1/me"), getJson("/v1/personas")]);
  state.defaultPersona = me.default_persona;
  $("persona").replaceChildren(...personas.map((p) => new Option(p.builtin ? p.name : `${p.name} (yours)`, p.name)));
  $("persona").value = me.default_persona;
  $("login").hidden = true;
  $("app").hidden = false;
  $("sign-out").hidden = !state.token; // with VOXGATE_AUTH=off there is nobody to sign out
  await loadConversations();
  $("mic").focus();
}

// ---------------------------------------------------------------- conversations

async function loadConversations() {
  const page = await getJson("/v1/conversations?limit=50");
  $("conversations").replaceChildren(...page.data.map((c) => {
    const title = c.title || "Untitled";
    const open = button(title, () => openConversation(c.id));
    if (c.id === state.conversationId) open.setAttribute("aria-current", "true");
    const remove = button("✕", () => deleteConversation(c.id, title));
    remove.className = "delete";
    remove.setAttribute("aria-label", `Delete conversation “${title}”`);
    const item = document.createElement("li");
    item.append(open, remove);
    return item;
  }));
  return page.data;
}

function button(label, onClick) {
  const b = document.createElement("button");
  b.type = "button";
  b.textContent = label;
  b.addEventListener("click", () => onClick().catch(report));
  return b;
}

async function openConversation(id) {
  const c = await getJson(`/v1/conversations/${encodeURIComponent(id)}`);
  state.conversationId = c.id;
  $("chat-title").textContent = c.title || "Untitled";
  $("persona").value = c.persona || state.defaultPersona;
  // Loading history is not news: keep the live region quiet while it fills.
  $("messages").setAttribute("aria-live", "off");
  $("messages").replaceChildren();
  for (const m of c.messages) addMessage(m.role, m.role === "user" ? m.transcript ?? m.text : m.text);
  setTimeout(() => $("messages").setAttribute("aria-live", "polite"), 0);
  syncLive();
  await loadConversations();
  setStatus(`Opened “${$("chat-title").textContent}”.`);
}

function newConversation() {
  state.conversationId = null; // created by the server with the first turn
  $("chat-title").textContent = "New conversation";
  $("messages").replaceChildren();
  if (state.defaultPersona) $("persona").value = state.defaultPersona;
  for (const b of $("conversations").querySelectorAll("[aria-current]")) b.removeAttribute("aria-current");
  syncLive();
}

async function deleteConversation(id, title) {
  if (!confirm(`Delete the conversation “${title}”?`)) return;
  await api(`/v1/conversations/${encodeURIComponent(id)}`, { method: "DELETE" });
  if (id === state.conversationId) newConversation();
  await loadConversations();
  $("new-conversation").focus(); // the focused button is gone
  setStatus(`Deleted “${title}”.`);
}

function addMessage(role, text) {
  const item = document.createElement("li");
  item.className = role;
  const who = document.createElement("span");
  who.className = "who";
  who.textContent = role === "user" ? "You: " : "voxgate: ";
  const body = document.createElement("span");
  body.textContent = text;
  item.append(who, body);
  $("messages").append(item);
  item.scrollIntoView({ block: "nearest" });
  return body;
}

// ---------------------------------------------------------------- one turn

// A turn is the reply in the making, whichever way it comes: an SSE stream (push-to-talk,
// typed questions, uploads) or the realtime socket (hands-free). Both name their events
// alike. `spoken`: the question was the user's voice, so its end is when they stopped talking.
function beginTurn(via, { spoken = false, userText = null } = {}) {
  if (state.turn) dropTurn(state.turn);
  const turn = {
    via, endedAt: performance.now(), reply: null, abort: null, stopped: false, finished: false,
    stats: { via, spoken, speechToAudioMs: null, timings: null, models: null, stopped: false },
  };
  state.turn = turn;
  stats.lastTurn = turn.stats;
  showAlert("");
  player.reset();
  $("turn-stats").textContent = "";
  if (userText) addMessage("user", userText);
  controls();
  return turn;
}

function onReplyEvent(turn, type, data) {
  // A stopped turn's last messages, already on their way, are dropped; its end is news.
  if (turn.stopped && type !== "done" && type !== "interrupted") return;
  if (type === "transcript") {
    stats.lastTranscript = data.text;
    addMessage("user", data.text);
    setStatus("Thinking…");
  } else if (type === "text") {
    if (!turn.reply) {
      turn.reply = addMessage("assistant", "");
      // Announce the reply once complete, not word by word.
      $("messages").setAttribute("aria-busy", "true");
      setStatus("Answering…");
    }
    turn.reply.textContent += data.delta;
    stats.lastReply = turn.reply.textContent;
  } else if (type === "audio") {
    player.add(data.audio, (startsAt) => {
      if (turn.stats.speechToAudioMs !== null) return;
      turn.stats.speechToAudioMs = Math.round(startsAt - turn.endedAt);
      if (turn.finished) showTurnStats(turn.stats);
    });
  } else if (type === "done" || type === "interrupted") {
    finishTurn(turn, data, type === "interrupted" ? "interrupted" : null);
  } else if (type === "error") {
    throw new ApiError(500, data);
  }
}

// The server stored the turn (`done`), or as much of it as the user heard (`interrupted`).
function finishTurn(turn, data, stopped) {
  turn.finished = true;
  (turn.reply ??= addMessage("assistant", "")).textContent = stats.lastReply = data.reply;
  if (stopped) markStopped(turn, stopped);
  Object.assign(turn.stats, { timings: data.timings ?? null, models: data.models ?? null });
  showTurnStats(turn.stats);
  if (turn.via === "realtime") live.conversationId = data.conversation_id; // the session goes on in it
  state.conversationId = data.conversation_id;
  if (state.turn === turn) {
    if (stopped) {
      player.reset();
      setStatus("Interrupted.");
    } else {
      player.finish();
      setStatus(turn.via === "sse" ? `Answered in ${((performance.now() - turn.endedAt) / 1000).toFixed(1)} s.`
                                   : "Answered. Speak whenever you like.");
    }
    leaveTurn(turn);
  }
  // A first turn created the conversation (titled after the question): list it.
  loadConversations().then((listed) => {
    const title = listed.find((c) => c.id === data.conversation_id)?.title;
    if (title && state.conversationId === data.conversation_id) $("chat-title").textContent = title;
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
  item.append(note);
}

// The Stop button and Esc: silence the reply at once, and stop its making.
function stopReply() {
  const turn = state.turn;
  if (!turn) return player.stop(); // a finished reply still playing, or a replay
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
  showTurnStats(turn.stats); // the stage times follow with `interrupted`, if the server sends one
}

// Small, after each turn: how soon the voice came, the stage times, the models.
const STAGES = [["turn_wait", "turn"], ["stt", "STT"], ["llm", "LLM"], ["tts", "TTS"]];

function showTurnStats(turnStats) {
  const { timings, models, spoken, speechToAudioMs } = turnStats;
  const t = timings ?? {};
  const ms = (value) => Math.round(value);
  const firstAudio = t.speech_to_audio ?? speechToAudioMs; // the server's measure if it has one
  const parts = [];
  if (firstAudio != null) parts.push(`first audio ${ms(firstAudio)} ms after ${spoken ? "you stopped" : "sending"}`);
  for (const [key, label] of STAGES) if (t[key] != null) parts.push(`${label} ${ms(t[key])}`);
  const names = Object.values(models ?? {}).filter(Boolean);
  if (names.length) parts.push(names.join(" / "));
  $("turn-stats").textContent = parts.join(" · ");
  // Every number in the tooltip: the server's stage times, and the time this page measured.
  const details = Object.entries(t).filter(([, v]) => typeof v === "number")
    .map(([key, value]) => `${key.replaceAll("_", " ")}: ${ms(value)} ms`);
  if (speechToAudioMs != null) {
    const from = turnStats.via === "realtime" && spoken ? "the end of the turn" : "sending";
    details.push(`playing here ${speechToAudioMs} ms after ${from}`);
  }
  $("turn-stats").title = details.join("\n");
}

function controls() {
  $("upload").disabled = $("send").disabled = state.turn !== null;
  $("stop").disabled = state.turn === null && !player.isPlaying();
}

async function sendTurn(input) {
  if (state.turn) return setStatus("Please wait for the current reply.");
  if (input.text && live.ready) return sendLiveText(input.text); // hands-free: on its socket
  const turn = beginTurn("sse", { spoken: Boolean(input.spoken), userText: input.text });
  turn.abort = new AbortController();
  const form = new FormData();
  const fields = { reply_as: "voice", voice_format: "wav", stream: "true", persona: $("persona").value };
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
    setStatus("No answer.");
    report(err);
  } finally {
    leaveTurn(turn);
  }
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
  wavs: [], buffers: [], playing: [], decoding: Promise.resolve(), nextTime: 0, generation: 0,

  reset() {
    this.stop();
    this.generation += 1; // late decodes of the previous reply are dropped
    this.wavs = [];
    this.buffers = [];
    $("replay").disabled = true;
    $("download").hidden = true;
    if ($("download").href) URL.revokeObjectURL($("download").href);
    $("download").removeAttribute("href");
  },

  // onStart(when): called as the chunk starts playing, with its start on performance.now()'s clock.
  add(base64, onStart) {
    const bytes = Uint8Array.from(atob(base64), (c) => c.charCodeAt(0));
    this.wavs.push(bytes);
    const generation = this.generation;
    // decodeAudioData takes ownership of its buffer: give it a copy, the bytes are kept.
    this.decoding = this.decoding
      .then(() => audioContext().decodeAudioData(bytes.slice().buffer))
      .then((buffer) => {
        if (generation !== this.generation) return;
        this.buffers.push(buffer);
        this.schedule(buffer, onStart);
      })
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

  replay() {
    this.stop();
    for (const buffer of this.buffers) this.schedule(buffer);
  },

  // The reply is complete: offer it as one WAV once every chunk is decoded.
  finish() {
    const generation = this.generation;
    this.decoding.then(() => {
      if (generation !== this.generation || !this.wavs.length) return;
      $("replay").disabled = false;
      $("download").href = URL.createObjectURL(joinWavs(this.wavs));
      $("download").hidden = false;
    });
  },
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
  setStatus("Listening…");
}

function stopRecording() {
  const recorder = mic.recorder;
  mic.recorder = null;
  $("mic").setAttribute("aria-pressed", "false");
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

// The level meter: RMS of the last 1024 samples.
function showLevel() {
  if (!mic.analyser) return;
  const samples = new Float32Array(mic.analyser.fftSize);
  mic.analyser.getFloatTimeDomainData(samples);
  const level = Math.sqrt(samples.reduce((sum, x) => sum + x * x, 0) / samples.length);
  $("level").value = Math.min(1, level * 5);
}

async function setHandsFree(on) {
  state.handsFree = on;
  if (!on) {
    closeLive();
    if (mic.recorder) await stopRecording();
    closeMic();
    return setStatus("Hold Space or the Talk button to speak.");
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
  socket: null, node: null, ready: false, error: null,
  conversationId: null, persona: null, // what the session was started with
  stopping: null, // a turn the user stopped: the server may still say what it kept
  send(message) {
    if (this.socket?.readyState === WebSocket.OPEN) this.socket.send(JSON.stringify(message));
  },
};

function connectLive() {
  const url = `${location.protocol === "https:" ? "wss:" : "ws:"}//${location.host}/v1/realtime`;
  // A browser cannot set headers on a WebSocket: the token travels as a subprotocol.
  const socket = new WebSocket(url, state.token ? ["voxgate", `bearer.${state.token}`] : ["voxgate"]);
  Object.assign(live, { socket, ready: false, stopping: null, error: null,
                        conversationId: state.conversationId, persona: $("persona").value });
  setStatus("Hands-free: connecting…");
  socket.onopen = () => live.send({
    type: "session.start", conversation_id: live.conversationId, persona: live.persona,
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
      break;
    case "speech.started":
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
      if (turn) dropTurn(turn);
      if (message.error?.code === "no_speech") { // a cough, a door: the VAD heard a sound, Whisper no words
        setStatus("Sorry, I did not catch that. Please say it again.");
        break;
      }
      if (turn) setStatus("No answer.");
      showAlert(`Server error: ${message.error?.message}`);
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
  Object.assign(live, { socket: null, node: null, ready: false, stopping: null });
  if (node) {
    node.port.onmessage = null;
    mic.source?.disconnect(node);
  }
  socket?.close();
  if (state.turn?.via === "realtime") dropTurn(state.turn);
}

// A session belongs to one conversation and persona: another choice starts a new session.
function syncLive() {
  if (!live.socket || (live.conversationId === state.conversationId && live.persona === $("persona").value)) return;
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
  $("new-conversation").addEventListener("click", () => {
    newConversation();
    setStatus("New conversation: ask away.");
    $("mic").focus();
  });
  $("persona").addEventListener("change", safe(async () => {
    // The choice applies to the next turns and becomes the user's default.
    await api("/v1/me/settings", { method: "PUT", json: { default_persona: $("persona").value } });
    state.defaultPersona = $("persona").value;
    setStatus(`Persona: ${$("persona").value}.`);
    syncLive();
  }));
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
  $("replay").addEventListener("click", () => player.replay());
  $("stop").addEventListener("click", () => {
    stopReply();
    $("mic").focus(); // the focused button is disabled now
  });
  document.addEventListener("keydown", (e) => {
    if (e.key !== "Escape" || $("app").hidden || (!state.turn && !player.isPlaying())) return;
    e.preventDefault();
    stopReply();
  });
}

async function boot() {
  wire();
  if (!state.token) {
    // With VOXGATE_AUTH=off the API answers without a token: no sign-in form then.
    const open = await fetch("/v1/me").then((r) => r.ok, () => false);
    if (!open) {
      $("login").hidden = false;
      return $("username").focus();
    }
  }
  await enterApp().catch(report);
}

boot();
