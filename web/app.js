// Parley's browser client. One file, no framework: state in `state`, the DOM redrawn from it.
// HTTP for accounts, rooms, invites and history; the WebSocket for live events, sends,
// typing and read receipts. After a network drop it reconnects with `?since=<position>`,
// so it receives every event it missed, once, then live ones.
"use strict";

const $ = (id) => document.getElementById(id);

const state = {
  token: localStorage.getItem("parley.token"),
  me: null,
  rooms: new Map(),        // roomId -> summary {id, kind, name, lastMessage, unreadCount, myRole, lastSeq}
  details: new Map(),      // roomId -> {members}
  messages: new Map(),     // roomId -> Map(messageId -> message)
  hasMore: new Map(),      // roomId -> bool
  users: new Map(),        // userId -> user
  current: null,           // open roomId
  draftTo: null,           // user of a private chat whose room does not exist yet
  replyTo: null,           // message replied to
  editing: null,           // message being edited
  pending: new Map(),      // clientMsgId -> {roomId?, toUserId?, body, replyTo?}: sent, no ack yet
  typing: new Map(),       // roomId -> Map(userId -> timer)
  ws: null,
  position: null,          // last log position received: where a reconnect resumes
  backoff: 500,
  reconnectTimer: null,
  lastTypingSent: 0,
  expected: new Map(),     // roomId -> refreshes left: rooms events spoke of, not in the list yet
  retryTimer: null,
  thread: null,            // root message id of the open thread
  pins: new Map(),         // roomId -> [{message, pinnedBy, pinnedAt}]
  receipts: new Map(),     // roomId -> [{userId, seq}]
  presence: new Map(),     // userId -> "online" | "offline"
  picker: null,            // message id whose emoji picker is open
};

const QUICK_EMOJI = ["👍", "❤️", "😂", "🎉"];

// --- HTTP ---------------------------------------------------------------------------

async function api(method, path, body) {
  const headers = { "Content-Type": "application/json" };
  if (state.token) headers.Authorization = `Bearer ${state.token}`;
  const response = await fetch(path, { method, headers, body: body === undefined ? undefined : JSON.stringify(body) });
  const text = await response.text();
  const json = text ? JSON.parse(text) : {};
  if (!response.ok) {
    const error = new Error(json.error ? json.error.message : `${response.status}`);
    error.code = json.error && json.error.code;
    error.status = response.status;
    throw error;
  }
  return json;
}

function showError(error) {
  $("app-error").textContent = error ? (error.message || String(error)) : "";
}

function newId() {
  const bytes = new Uint8Array(16);
  crypto.getRandomValues(bytes);
  return Array.from(bytes, (b) => b.toString(16).padStart(2, "0")).join("");
}

async function user(userId) {
  if (!state.users.has(userId)) {
    try {
      state.users.set(userId, (await api("GET", `/v1/users/${encodeURIComponent(userId)}`)).user);
    } catch {
      state.users.set(userId, { id: userId, username: userId.slice(0, 8), displayName: userId.slice(0, 8) });
    }
  }
  return state.users.get(userId);
}

function nameOf(userId) {
  const u = state.users.get(userId);
  return u ? u.username : "…";
}

// --- accounts -----------------------------------------------------------------------

async function authenticate(action) {
  const username = $("auth-username").value.trim(), password = $("auth-password").value;
  $("auth-error").textContent = "";
  try {
    const reply = await api("POST", `/v1/auth/${action}`, { username, password });
    state.token = reply.token;
    localStorage.setItem("parley.token", reply.token);
    await start(reply.user);
  } catch (error) {
    $("auth-error").textContent = error.message;
  }
}

async function start(me) {
  state.me = me;
  state.users.set(me.id, me);
  $("me").textContent = `@${me.username}`;
  $("auth").hidden = true;
  $("app").hidden = false;
  await Promise.all([refreshRooms(), refreshInvites()]);
  connect();
  // Events keep the list current; this catches what the read model had not projected yet
  // when it was loaded (after a reload while projection lagged, say).
  setInterval(() => { if (document.visibilityState !== "hidden") refreshRooms(); }, 10000);
}

function logout() {
  localStorage.removeItem("parley.token");
  location.reload();
}

// --- rooms and invites ----------------------------------------------------------------

async function refreshRooms() {
  try {
    const { rooms } = await api("GET", "/v1/rooms");
    const known = new Map(state.rooms);
    state.rooms.clear();
    for (const room of rooms) {
      const old = known.get(room.id);
      // The read model may be a moment behind the events this client already has.
      if (old && old.lastMessage && (!room.lastMessage || room.lastMessage.seq < old.lastMessage.seq)) {
        room.lastMessage = old.lastMessage;
        room.unreadCount = old.unreadCount;
      }
      if (room.id === state.current) room.unreadCount = 0;
      state.rooms.set(room.id, room);
      if (room.kind === "direct" && !state.details.has(room.id)) await loadDetails(room.id);
      state.expected.delete(room.id);
    }
    renderRooms();
    showRoom();
    // The room list is read from a read model that may be a moment behind the log.
    for (const [roomId, left] of state.expected) {
      if (left <= 1) state.expected.delete(roomId); else state.expected.set(roomId, left - 1);
    }
    if (state.expected.size && !state.retryTimer) {
      state.retryTimer = setTimeout(() => { state.retryTimer = null; refreshRooms(); }, 300);
    }
  } catch (error) {
    showError(error);
  }
}

async function loadDetails(roomId) {
  try {
    const { room } = await api("GET", `/v1/rooms/${roomId}`);
    state.details.set(roomId, room);
    await Promise.all(room.members.map((m) => user(m.userId)));
    for (const m of room.members) {
      if (m.userId !== state.me.id && !state.presence.has(m.userId)) loadPresence(m.userId);
    }
    return room;
  } catch (error) {
    if (error.status !== 403 && error.status !== 404) showError(error);
    return null;
  }
}

async function loadPresence(userId) {
  try {
    const { status } = await api("GET", `/v1/users/${encodeURIComponent(userId)}/presence`);
    if (!state.presence.has(userId)) state.presence.set(userId, status);
    showRoom();
  } catch { /* shown as offline */ }
}

async function loadPins(roomId) {
  try {
    const { pins } = await api("GET", `/v1/rooms/${roomId}/pins`);
    state.pins.set(roomId, pins);
    return pins;
  } catch { return null; }
}

async function loadReceipts(roomId) {
  try {
    const { receipts } = await api("GET", `/v1/rooms/${roomId}/receipts`);
    state.receipts.set(roomId, receipts);
    return receipts;
  } catch { return null; }
}

async function loadThread(roomId, rootId) {
  try {
    const { messages } = await api("GET", `/v1/rooms/${roomId}/messages/${rootId}/thread?limit=200`);
    const map = state.messages.get(roomId) || new Map();
    for (const message of messages) if (!map.has(message.id)) map.set(message.id, message);
    state.messages.set(roomId, map);
    await Promise.all(messages.map((m) => user(m.senderId)));
    return messages;
  } catch (error) { showError(error); return null; }
}

// An event this client received may not be in the read models yet (the projectors follow
// the log a few milliseconds behind the WebSocket): `load` again every 300 ms, at most 10
// times, until `fresh` says what it read shows the event (or the read failed: null). Runs
// beside the event handling, then redraws.
// Read models trail the log: reloads until `fresh` holds, waiting 0.3, 0.6, 1.2, then 2 s between tries, for about
// 35 s in all (a server that just restarted waits out its predecessor's projector leases, 10 s, before it projects).
function untilFresh(load, fresh) {
  (async () => {
    for (let tries = 0; tries < 20; tries++) {
      const result = await load();
      if (result === null || fresh(result)) break;
      await new Promise((resolve) => setTimeout(resolve, Math.min(300 * 2 ** Math.min(tries, 3), 2000)));
    }
    renderRooms();
    showRoom();
  })();
}

// Room details again until they show what an event said of `userId`: joined or invited
// (with `role`, when given), or gone (`null`: left, removed, declined). The details list
// only the joined and invited members.
function refreshMember(roomId, userId, memberState, role) {
  untilFresh(() => loadDetails(roomId), (room) => {
    const member = room.members.find((m) => m.userId === userId);
    if (memberState === null) return member === undefined;
    return member !== undefined && member.state === memberState && (role === undefined || member.role === role);
  });
}

function title(room) {
  if (room.kind === "group") return room.name || "(group)";
  const detail = state.details.get(room.id);
  const other = detail && detail.members.find((m) => m.userId !== state.me.id);
  return other ? `@${nameOf(other.userId)}` : "(private chat)";
}

function renderRooms() {
  const list = $("rooms");
  list.replaceChildren();
  const rooms = [...state.rooms.values()].sort((a, b) =>
    (b.lastMessage ? Date.parse(b.lastMessage.sentAt) : Date.parse(b.createdAt || 0)) -
    (a.lastMessage ? Date.parse(a.lastMessage.sentAt) : Date.parse(a.createdAt || 0)));
  for (const room of rooms) {
    const li = document.createElement("li");
    li.dataset.roomId = room.id;
    li.className = "room" + (room.id === state.current ? " current" : "");
    const name = document.createElement("span");
    name.className = "name";
    name.textContent = title(room);
    const last = document.createElement("span");
    last.className = "last";
    if (room.lastMessage) {
      last.textContent = room.lastMessage.deleted || room.lastMessage.body == null
        ? "message deleted" : `${nameOf(room.lastMessage.senderId)}: ${room.lastMessage.body}`;
    }
    li.append(name);
    if (room.unreadCount > 0) {
      const badge = document.createElement("span");
      badge.className = "unread";
      badge.textContent = String(room.unreadCount);
      li.append(badge);
    }
    if (room.mentionCount > 0) {
      const badge = document.createElement("span");
      badge.className = "mentions";
      badge.textContent = `@${room.mentionCount}`;
      li.append(badge);
    }
    li.append(last);
    li.onclick = () => openRoom(room.id);
    list.append(li);
  }
}

async function refreshInvites() {
  try {
    const { invites } = await api("GET", "/v1/invites");
    const list = $("invites");
    list.replaceChildren();
    for (const invite of invites) {
      await user(invite.invitedBy);
      const li = document.createElement("li");
      li.dataset.roomId = invite.roomId;
      li.className = "invite";
      const text = document.createElement("span");
      text.textContent = `${invite.roomName || "a group"} (from @${nameOf(invite.invitedBy)})`;
      const accept = document.createElement("button");
      accept.textContent = "Accept";
      accept.className = "accept";
      accept.onclick = () => answerInvite(invite.roomId, "join");
      const decline = document.createElement("button");
      decline.textContent = "Decline";
      decline.className = "secondary decline";
      decline.onclick = () => answerInvite(invite.roomId, "decline");
      li.append(text, accept, decline);
      list.append(li);
    }
    $("invites-box").hidden = invites.length === 0;
    return invites;
  } catch (error) {
    showError(error);
    return null;
  }
}

async function answerInvite(roomId, answer) {
  try {
    await api("POST", `/v1/rooms/${roomId}/${answer}`);
    document.querySelector(`#invites li[data-room-id="${roomId}"]`)?.remove();
    $("invites-box").hidden = $("invites").children.length === 0;
    if (answer === "join") {
      await refreshRooms();
      if (!state.rooms.has(roomId)) {
        // Projected a moment later: show it now, the next refresh fills it in.
        state.rooms.set(roomId, { id: roomId, kind: "group", name: "", unreadCount: 0, myRole: "member" });
      }
      await openRoom(roomId);
    }
  } catch (error) {
    showError(error);
  }
}

// A user by username (remembered for showing names).
async function lookUpUser(username) {
  const { user } = await api("GET", `/v1/users?username=${encodeURIComponent(username)}`);
  state.users.set(user.id, user);
  return user;
}

async function startDirect(username) {
  try {
    const other = await lookUpUser(username);
    for (const room of state.rooms.values()) {
      const detail = state.details.get(room.id);
      if (room.kind === "direct" && detail && detail.members.some((m) => m.userId === other.id)) return openRoom(room.id);
    }
    // No room yet: the first message creates it (the server does, once, whoever sends first).
    state.current = null;
    state.draftTo = other;
    renderRooms();
    showRoom();
  } catch (error) {
    showError(error.status === 404 ? new Error(`no user named ${username}`) : error);
  }
}

async function createGroup(name) {
  try {
    const { room } = await api("POST", "/v1/rooms", { name });
    state.rooms.set(room.id, { ...room, unreadCount: 0, myRole: "owner" });
    state.details.set(room.id, room);
    await openRoom(room.id);
  } catch (error) {
    showError(error);
  }
}

async function invite(username) {
  try {
    const other = await lookUpUser(username);
    await api("POST", `/v1/rooms/${state.current}/invites`, { userId: other.id });
    $("invite-username").value = "";
    showError(null);
  } catch (error) {
    showError(error.status === 404 ? new Error(`no user named ${username}`) : error);
  }
}

// --- search ----------------------------------------------------------------------------

// Words (each a prefix) and "quoted phrases" over my rooms, newest first; a result opens its room.
async function search(query, more) {
  const box = $("search-box");
  const list = $("search-results");
  if (!more) { list.replaceChildren(); state.searchNext = null; }
  box.hidden = false;
  try {
    const page = await api("GET", `/v1/search?q=${encodeURIComponent(query)}&limit=20` +
      (more && state.searchNext ? `&before=${encodeURIComponent(state.searchNext)}` : ""));
    for (const result of page.results) {
      const li = document.createElement("li");
      li.className = "result";
      const room = state.rooms.get(result.roomId);
      const where = document.createElement("span");
      where.className = "name";
      where.textContent = `${room ? title(room) : "(room)"} · ${nameOf(result.message.senderId)}`;
      const text = document.createElement("span");
      text.className = "last";
      text.textContent = result.message.body ?? "";
      li.append(where, text);
      li.onclick = () => openRoom(result.roomId);
      list.append(li);
    }
    if (!more && page.results.length === 0) {
      const li = document.createElement("li");
      li.className = "hint";
      li.textContent = "Nothing found.";
      list.append(li);
    }
    state.searchQuery = query;
    state.searchNext = page.next;
    $("search-more").hidden = !page.hasMore;
  } catch (error) {
    showError(error);
  }
}

// --- a room's messages ----------------------------------------------------------------

async function openRoom(roomId) {
  state.current = roomId;
  state.draftTo = null;
  state.replyTo = state.editing = null;
  if (state.thread && state.messages.get(roomId)?.get(state.thread) === undefined) state.thread = null;
  const room = state.rooms.get(roomId);
  if (room) { room.unreadCount = 0; room.mentionCount = 0; }
  renderRooms();
  showRoom();
  await loadDetails(roomId);
  if (!state.messages.has(roomId)) await loadHistory(roomId);
  await Promise.all([loadPins(roomId), loadReceipts(roomId)]);
  showRoom();
  markRead(roomId);
}

async function loadHistory(roomId, before) {
  try {
    const query = before ? `?limit=50&before=${before}` : "?limit=50";
    const { messages, hasMore } = await api("GET", `/v1/rooms/${roomId}/messages${query}`);
    const map = state.messages.get(roomId) || new Map();
    for (const message of messages) {
      // What arrived live is at least as new as the read model.
      if (!map.has(message.id)) map.set(message.id, message);
    }
    state.messages.set(roomId, map);
    state.hasMore.set(roomId, hasMore);
    await Promise.all(messages.map((m) => user(m.senderId)));
  } catch (error) {
    showError(error);
  }
}

function sortedMessages(roomId) {
  return [...(state.messages.get(roomId) || new Map()).values()].sort((a, b) => a.seq - b.seq);
}

function showRoom() {
  const open = state.current || state.draftTo;
  $("empty").hidden = !!open;
  $("room").hidden = !open;
  if (!open) return;
  const room = state.rooms.get(state.current);
  const detail = state.details.get(state.current);
  $("room-title").textContent = state.draftTo ? `@${state.draftTo.username}` : room ? title(room) : "";
  const myRole = detail && detail.members.find((m) => m.userId === state.me.id)?.role;
  renderMembers(room, detail, myRole);
  renderPins(room, myRole);
  $("invite-form").hidden = !(room && room.kind === "group" && (myRole === "owner" || myRole === "admin"));
  $("older").hidden = !state.hasMore.get(state.current);
  $("reply-bar").hidden = !state.replyTo;
  if (state.replyTo) $("reply-text").textContent = `Replying to @${nameOf(state.replyTo.senderId)}: ${state.replyTo.body || ""}`;
  $("edit-bar").hidden = !state.editing;
  $("send").textContent = state.editing ? "Save" : "Send";
  renderMessages(myRole);
  renderThread();
  renderTyping();
}

const RANK = { owner: 2, admin: 1, member: 0 };

// The joined members with a presence dot, and for an owner or admin the moderation of those below them.
function renderMembers(room, detail, myRole) {
  const box = $("room-members");
  box.replaceChildren();
  if (!detail) return;
  for (const m of detail.members.filter((m) => m.state === "joined")) {
    const span = document.createElement("span");
    span.className = "member";
    span.dataset.userId = m.userId;
    const dot = document.createElement("span");
    const online = m.userId === state.me.id || state.presence.get(m.userId) === "online";
    dot.className = "dot" + (online ? " online" : "");
    dot.title = online ? "online" : "offline";
    span.append(dot, `@${nameOf(m.userId)}${m.role === "member" ? "" : ` (${m.role})`}${m.muted ? " (muted)" : ""}`);
    if (room && room.kind === "group" && myRole && RANK[myRole] > RANK[m.role] && m.userId !== state.me.id && RANK[myRole] >= 1) {
      span.append(button(m.muted ? "Unmute" : "Mute", m.muted ? "unmute" : "mute", () => moderate(m.userId, m.muted ? "unmute" : "mute")));
      span.append(button("Ban", "ban", () => moderate(m.userId, "ban")));
    }
    box.append(span);
  }
}

async function moderate(userId, action) {
  const roomId = state.current;
  try {
    if (action === "mute") await api("POST", `/v1/rooms/${roomId}/mutes/${userId}`, {});
    if (action === "unmute") await api("DELETE", `/v1/rooms/${roomId}/mutes/${userId}`);
    if (action === "ban") {
      const reason = window.prompt(`Ban @${nameOf(userId)}: why?`, "") || undefined;
      await api("POST", `/v1/rooms/${roomId}/bans/${userId}`, reason ? { reason } : {});
    }
    untilFresh(() => loadDetails(roomId), (room) => {
      const m = room.members.find((x) => x.userId === userId);
      return action === "ban" ? m === undefined : !!(m && m.muted) === (action === "mute");
    });
  } catch (error) { showError(error); }
}

function mayPin(room, myRole) {
  return room && (room.kind === "direct" || myRole === "owner" || myRole === "admin");
}

function renderPins(room, myRole) {
  const pins = state.current ? state.pins.get(state.current) || [] : [];
  const bar = $("pins");
  bar.replaceChildren();
  bar.hidden = pins.length === 0;
  for (const pin of pins) {
    const span = document.createElement("span");
    span.className = "pin";
    span.dataset.messageId = pin.message.id;
    span.append(`📌 ${nameOf(pin.message.senderId)}: ${pin.message.deleted ? "message deleted" : pin.message.body}`);
    if (mayPin(room, myRole)) span.append(button("unpin", "unpin", () => pinMessage(pin.message, false)));
    bar.append(span);
  }
}

async function pinMessage(message, pinned) {
  try {
    await api(pinned ? "PUT" : "DELETE", `/v1/rooms/${message.roomId}/pins/${message.id}`);
    refreshPins(message.roomId, message.id, pinned);
  } catch (error) { showError(error); }
}

function refreshPins(roomId, messageId, pinned) {
  untilFresh(() => loadPins(roomId), (pins) => pins.some((p) => p.message.id === messageId) === pinned);
}

async function toggleReaction(message, emoji) {
  const mine = (message.reactions || []).find((r) => r.emoji === emoji && r.me);
  state.picker = null;
  try {
    if (mine) await api("DELETE", `/v1/rooms/${message.roomId}/messages/${message.id}/reactions/${encodeURIComponent(emoji)}`);
    else await api("POST", `/v1/rooms/${message.roomId}/messages/${message.id}/reactions`, { emoji });
  } catch (error) { showError(error); }
  showRoom();
}

// A message's reactions as chips (click: add or take back mine), and the quick picker when open.
function reactionsOf(message) {
  const box = document.createElement("span");
  box.className = "reactions";
  for (const r of message.reactions || []) {
    const chip = button(`${r.emoji} ${r.count}`, "reaction" + (r.me ? " mine" : ""), () => toggleReaction(message, r.emoji));
    chip.dataset.emoji = r.emoji;
    box.append(chip);
  }
  if (state.picker === message.id) {
    const picker = document.createElement("span");
    picker.className = "picker";
    for (const emoji of QUICK_EMOJI) picker.append(button(emoji, "pick", () => toggleReaction(message, emoji)));
    box.append(picker);
  }
  return box;
}

// Reactions change by events: count them here until the read model is asked again.
function applyReaction(roomId, messageId, emoji, actorId, added) {
  const message = state.messages.get(roomId)?.get(messageId);
  if (!message) return;
  const reactions = message.reactions || [];
  let r = reactions.find((x) => x.emoji === emoji);
  if (added) {
    if (!r) { r = { emoji, count: 0, me: false }; reactions.push(r); }
    r.count += 1;
    if (actorId === state.me.id) r.me = true;
  } else if (r) {
    r.count -= 1;
    if (actorId === state.me.id) r.me = false;
    if (r.count <= 0) reactions.splice(reactions.indexOf(r), 1);
  }
  message.reactions = reactions;
}

function renderThread() {
  const open = !!(state.thread && state.current);
  $("thread").hidden = !open;
  document.querySelector(".layout").classList.toggle("with-thread", open);
  const list = $("thread-messages");
  list.replaceChildren();
  if (!open) return;
  const map = state.messages.get(state.current) || new Map();
  const root = map.get(state.thread);
  const replies = [...map.values()].filter((m) => m.threadRootId === state.thread).sort((a, b) => a.seq - b.seq);
  for (const message of root ? [root, ...replies] : replies) {
    const li = document.createElement("li");
    li.className = "message" + (message === root ? " root" : "");
    li.dataset.messageId = message.id;
    const sender = document.createElement("span");
    sender.className = "sender";
    sender.textContent = nameOf(message.senderId);
    const body = document.createElement("span");
    body.className = message.deleted ? "body deleted" : "body";
    body.textContent = message.deleted ? "message deleted" : message.body;
    li.append(sender, body, reactionsOf(message));
    list.append(li);
  }
}

async function openThread(message) {
  state.thread = message.id;
  showRoom();
  await loadThread(message.roomId, message.id);
  showRoom();
}

// `@username` words naming a joined member of the open room become mentions.
function mentionsIn(body) {
  const detail = state.details.get(state.current);
  if (!detail) return [];
  const ids = [];
  for (const [, name] of body.matchAll(/@([A-Za-z0-9_.-]+)/g)) {
    const m = detail.members.find((x) => x.state === "joined" && nameOf(x.userId) === name.toLowerCase());
    if (m && !ids.includes(m.userId)) ids.push(m.userId);
  }
  return ids;
}

function renderMessages(myRole) {
  const list = $("messages");
  const atBottom = list.scrollHeight - list.scrollTop - list.clientHeight < 40;
  list.replaceChildren();
  const messages = state.current ? sortedMessages(state.current) : [];
  const byId = new Map(messages.map((m) => [m.id, m]));
  const pending = [...state.pending.entries()].filter(([, p]) => !p.threadRootId &&
    (state.current ? p.roomId === state.current : state.draftTo && p.toUserId === state.draftTo.id));
  const room = state.rooms.get(state.current);
  const timeline = messages.filter((m) => !m.threadRootId);
  const lastShown = timeline[timeline.length - 1];
  for (const message of timeline) {
    const li = document.createElement("li");
    li.className = "message" + ((message.mentions || []).includes(state.me.id) && !message.deleted ? " mentioned" : "");
    li.dataset.seq = String(message.seq);
    li.dataset.messageId = message.id;
    if (message.replyTo && !message.deleted) {
      const quoted = byId.get(message.replyTo);
      const quote = document.createElement("div");
      quote.className = "quote";
      quote.textContent = quoted ? `@${nameOf(quoted.senderId)}: ${quoted.deleted ? "message deleted" : quoted.body}` : "a reply";
      li.append(quote);
    }
    const sender = document.createElement("span");
    sender.className = "sender";
    sender.textContent = nameOf(message.senderId);
    const body = document.createElement("span");
    body.className = message.deleted ? "body deleted" : "body";
    body.textContent = message.deleted ? "message deleted" : message.body;
    li.append(sender, body);
    if (message.editedAt && !message.deleted) {
      const meta = document.createElement("span");
      meta.className = "meta edited";
      meta.textContent = "(edited)";
      li.append(meta);
    }
    if (!message.deleted) li.append(reactionsOf(message));
    if (!message.deleted) {
      const actions = document.createElement("span");
      actions.className = "actions";
      actions.append(button("React", "react", () => { state.picker = state.picker === message.id ? null : message.id; showRoom(); }));
      actions.append(button("Thread", "thread", () => openThread(message)));
      if (mayPin(room, myRole)) {
        const pinned = (state.pins.get(message.roomId) || []).some((p) => p.message.id === message.id);
        actions.append(button(pinned ? "Unpin" : "Pin", pinned ? "unpin" : "pin", () => pinMessage(message, !pinned)));
      }
      actions.append(button("Reply", "reply", () => { state.replyTo = message; state.editing = null; showRoom(); $("composer-input").focus(); }));
      if (message.senderId === state.me.id) {
        actions.append(button("Edit", "edit", () => {
          state.editing = message; state.replyTo = null; $("composer-input").value = message.body; showRoom(); $("composer-input").focus();
        }));
      }
      if (message.senderId === state.me.id || myRole === "owner" || myRole === "admin") {
        actions.append(button("Delete", "delete", () => deleteMessage(message)));
      }
      li.append(actions);
    }
    if (message.thread && message.thread.replyCount > 0) {
      const n = message.thread.replyCount;
      li.append(button(`${n} ${n === 1 ? "reply" : "replies"}`, "thread-link", () => openThread(message)));
    }
    if (message === lastShown) {
      const readers = (state.receipts.get(message.roomId) || [])
        .filter((r) => r.userId !== state.me.id && r.userId !== message.senderId && r.seq >= message.seq);
      if (readers.length) {
        const seen = document.createElement("span");
        seen.className = "seen";
        seen.textContent = `Seen by ${readers.map((r) => `@${nameOf(r.userId)}`).join(", ")}`;
        li.append(seen);
      }
    }
    list.append(li);
  }
  for (const [ref, p] of pending) {
    const li = document.createElement("li");
    li.className = "message pending";
    li.dataset.ref = ref;
    const sender = document.createElement("span");
    sender.className = "sender";
    sender.textContent = state.me.username;
    const body = document.createElement("span");
    body.className = "body";
    body.textContent = p.body;
    const meta = document.createElement("span");
    meta.className = "meta";
    meta.textContent = "sending…";
    li.append(sender, body, meta);
    list.append(li);
  }
  if (atBottom) list.scrollTop = list.scrollHeight;
}

function button(text, className, action) {
  const b = document.createElement("button");
  b.className = `link ${className}`;
  b.textContent = text;
  b.onclick = action;
  return b;
}

function renderTyping() {
  const typers = state.current ? [...(state.typing.get(state.current) || new Map()).keys()] : [];
  $("typing").textContent = typers.length ? `${typers.map(nameOf).join(", ")} ${typers.length === 1 ? "is" : "are"} typing…` : "";
}

async function deleteMessage(message) {
  try {
    await api("DELETE", `/v1/rooms/${message.roomId}/messages/${message.id}`);
  } catch (error) {
    showError(error);
  }
}

async function submitComposer() {
  const input = $("composer-input");
  const body = input.value.trim();
  if (!body) return;
  if (state.editing) {
    const message = state.editing;
    state.editing = null;
    input.value = "";
    try {
      await api("PATCH", `/v1/rooms/${message.roomId}/messages/${message.id}`, { body });
    } catch (error) {
      showError(error);
    }
    showRoom();
    return;
  }
  const ref = newId();
  const send = state.draftTo ? { toUserId: state.draftTo.id, body } : { roomId: state.current, body };
  if (state.replyTo) send.replyTo = state.replyTo.id;
  if (state.current) { const mentions = mentionsIn(body); if (mentions.length) send.mentions = mentions; }
  state.pending.set(ref, send);
  state.replyTo = null;
  input.value = "";
  showRoom();
  transmit(ref);
}

function transmit(ref) {
  const p = state.pending.get(ref);
  if (p && state.ws && state.ws.readyState === WebSocket.OPEN) {
    state.ws.send(JSON.stringify({ type: "send", clientMsgId: ref, ...p }));
  }
}

function markRead(roomId) {
  const messages = sortedMessages(roomId);
  const last = messages[messages.length - 1];
  if (last && document.visibilityState !== "hidden" && state.ws && state.ws.readyState === WebSocket.OPEN) {
    state.ws.send(JSON.stringify({ type: "read", roomId, seq: last.seq }));
  }
}

function sendTyping() {
  const now = Date.now();
  if (state.current && now - state.lastTypingSent > 2000 && state.ws && state.ws.readyState === WebSocket.OPEN) {
    state.lastTypingSent = now;
    state.ws.send(JSON.stringify({ type: "typing", roomId: state.current }));
  }
}

// --- the WebSocket --------------------------------------------------------------------

function connect() {
  clearTimeout(state.reconnectTimer);
  if (!navigator.onLine) return setOffline(true);
  const scheme = location.protocol === "https:" ? "wss" : "ws";
  let url = `${scheme}://${location.host}/v1/ws?token=${encodeURIComponent(state.token)}`;
  if (state.position) url += `&since=${encodeURIComponent(state.position)}`;
  const ws = new WebSocket(url);
  state.ws = ws;
  ws.onmessage = (message) => {
    if (state.ws !== ws) return;
    let frame;
    try { frame = JSON.parse(message.data); } catch { return; }
    receive(frame);
  };
  ws.onclose = (closed) => {
    if (state.ws !== ws) return;
    state.ws = null;
    // 4401: the token was refused (expired, say); reconnecting with it cannot work.
    if (closed.code === 4401) return logout();
    setOffline(true);
    if (navigator.onLine) {
      state.reconnectTimer = setTimeout(connect, state.backoff);
      state.backoff = Math.min(state.backoff * 2, 8000);
    }
  };
}

function setOffline(offline) {
  $("banner").hidden = !offline;
}

async function receive(frame) {
  switch (frame.type) {
    case "hello": {
      state.backoff = 500;
      setOffline(false);
      const resumed = !!state.position;
      if (!state.position) state.position = frame.position;
      if (resumed && !frame.recovered) {
        // Older than the log keeps: start again from what the read models hold.
        state.messages.clear();
        state.position = frame.position;
        await refreshRooms();
        if (state.current) await loadHistory(state.current);
      }
      for (const ref of state.pending.keys()) transmit(ref);
      if (resumed) { refreshRooms(); refreshInvites(); }
      showRoom();
      break;
    }
    case "event":
      state.position = frame.position;
      await apply(frame.event);
      break;
    case "ack": {
      const sent = state.pending.get(frame.ref);
      state.pending.delete(frame.ref);
      const message = frame.message;
      addMessage(message);
      if (sent && sent.toUserId && state.draftTo && state.draftTo.id === sent.toUserId) {
        // The first private message made the room: it is the open room from now on.
        state.draftTo = null;
        if (!state.rooms.has(message.roomId)) {
          state.rooms.set(message.roomId, { id: message.roomId, kind: "direct", unreadCount: 0, lastMessage: message });
        }
        await openRoom(message.roomId);
        refreshRooms();
      }
      showRoom();
      break;
    }
    case "typing": {
      if (frame.userId === state.me.id) break;
      await user(frame.userId);
      const typers = state.typing.get(frame.roomId) || new Map();
      clearTimeout(typers.get(frame.userId));
      typers.set(frame.userId, setTimeout(() => { typers.delete(frame.userId); renderTyping(); }, 3000));
      state.typing.set(frame.roomId, typers);
      renderTyping();
      break;
    }
    case "presence":
      state.presence.set(frame.userId, frame.status);
      showRoom();
      break;
    case "error":
      if (frame.ref && state.pending.has(frame.ref) && frame.code !== "service_unavailable" && frame.code !== "rate_limited") {
        state.pending.delete(frame.ref);  // refused for good: say so and drop it
        showRoom();
      }
      showError(new Error(frame.message || frame.code));
      break;
  }
}

function addMessage(message) {
  const map = state.messages.get(message.roomId);
  if (map) map.set(message.id, { ...(map.get(message.id) || {}), ...message });
  const room = state.rooms.get(message.roomId);
  if (room && (!room.lastMessage || room.lastMessage.seq <= message.seq)) {
    room.lastMessage = { id: message.id, seq: message.seq, senderId: message.senderId, body: message.body, sentAt: message.sentAt, deleted: !!message.deleted };
  }
}

async function apply(event) {
  const data = event.data || {};
  const roomId = event.roomId;
  switch (event.type) {
    case "message.sent": {
      await user(event.actorId);
      const known = state.messages.get(roomId)?.has(data.messageId);
      addMessage({
        id: data.messageId, roomId, seq: event.seq, senderId: event.actorId, body: data.body,
        clientMsgId: data.clientMsgId, replyTo: data.replyTo || null, sentAt: event.at, deleted: false,
        threadRootId: data.threadRootId || null, mentions: data.mentions || [], reactions: [],
      });
      if (data.threadRootId && !known) {
        const root = state.messages.get(roomId)?.get(data.threadRootId);
        if (root) root.thread = { replyCount: ((root.thread && root.thread.replyCount) || 0) + 1, lastReplyAt: event.at, lastReplySeq: event.seq };
      }
      const room = state.rooms.get(roomId);
      if (!room) { state.expected.set(roomId, 10); refreshRooms(); break; }
      if (event.actorId !== state.me.id && !known) {
        if (roomId === state.current && document.visibilityState !== "hidden") markRead(roomId);
        else {
          room.unreadCount = (room.unreadCount || 0) + 1;
          if ((data.mentions || []).includes(state.me.id)) room.mentionCount = (room.mentionCount || 0) + 1;
        }
      }
      const typers = state.typing.get(roomId);
      if (typers && typers.has(event.actorId)) { clearTimeout(typers.get(event.actorId)); typers.delete(event.actorId); }
      break;
    }
    case "message.edited": {
      const message = state.messages.get(roomId)?.get(data.messageId);
      if (message) { message.body = data.body; message.editedAt = event.at; }
      const room = state.rooms.get(roomId);
      if (room && room.lastMessage && room.lastMessage.id === data.messageId) room.lastMessage.body = data.body;
      break;
    }
    case "message.deleted": {
      const message = state.messages.get(roomId)?.get(data.messageId);
      if (message) { message.deleted = true; message.body = null; message.reactions = []; }
      const room = state.rooms.get(roomId);
      if (room && room.lastMessage && room.lastMessage.id === data.messageId) { room.lastMessage.deleted = true; room.lastMessage.body = null; }
      break;
    }
    case "room.read":
      if (event.actorId === state.me.id && state.rooms.has(roomId)) {
        const room = state.rooms.get(roomId);
        if (!room.lastMessage || data.seq >= room.lastMessage.seq) { room.unreadCount = 0; room.mentionCount = 0; }
      } else if (roomId === state.current) {
        untilFresh(() => loadReceipts(roomId), (receipts) => receipts.some((r) => r.userId === event.actorId && r.seq >= data.seq));
      }
      break;
    case "reaction.added":
    case "reaction.removed":
      applyReaction(roomId, data.messageId, data.emoji, event.actorId, event.type === "reaction.added");
      break;
    case "message.pinned":
    case "message.unpinned":
      if (roomId === state.current) refreshPins(roomId, data.messageId, event.type === "message.pinned");
      break;
    case "member.muted":
    case "member.unmuted":
      if (roomId === state.current) loadDetails(roomId).then(showRoom);
      if (data.userId === state.me.id) showError(new Error(event.type === "member.muted" ? "You were muted in this room" : ""));
      break;
    case "member.banned":
      if (data.userId === state.me.id) {
        const room = state.rooms.get(roomId);
        showError(new Error(`You were banned from ${room ? title(room) : "a room"}${data.reason ? `: ${data.reason}` : ""}`));
        state.rooms.delete(roomId);
        state.messages.delete(roomId);
        if (state.current === roomId) { state.current = null; state.thread = null; }
      } else if (roomId === state.current) {
        refreshMember(roomId, data.userId, null);
      }
      break;
    case "room.renamed": {
      const room = state.rooms.get(roomId);
      if (room) room.name = data.name;
      break;
    }
    case "member.invited":
      if (data.userId === state.me.id) untilFresh(refreshInvites, (invites) => invites.some((i) => i.roomId === roomId));
      else if (roomId === state.current) refreshMember(roomId, data.userId, "invited");
      break;
    case "member.removed":
    case "member.left":
      if (data.userId === state.me.id) {
        state.rooms.delete(roomId);
        state.messages.delete(roomId);
        if (state.current === roomId) state.current = null;
      } else if (roomId === state.current) {
        refreshMember(roomId, data.userId, null);
      }
      break;
    case "room.created":
    case "member.joined":
    case "member.role_changed":
    case "invite.declined":
      if (roomId === state.current) {
        if (event.type === "room.created") await loadDetails(roomId);
        else if (event.type === "member.joined") refreshMember(roomId, data.userId, "joined");
        else if (event.type === "member.role_changed") refreshMember(roomId, data.userId, "joined", data.role);
        else refreshMember(roomId, data.userId, null);
      }
      if (!state.rooms.has(roomId) || event.type === "room.created") {
        if (!state.rooms.has(roomId) && event.type !== "invite.declined") state.expected.set(roomId, 10);
        await refreshRooms();
      }
      break;
  }
  renderRooms();
  showRoom();
}

// --- wiring -----------------------------------------------------------------------------

$("auth-form").addEventListener("submit", (e) => {
  e.preventDefault();
  authenticate(e.submitter && e.submitter.dataset.action === "register" ? "register" : "login");
});
$("logout").onclick = logout;
$("new-direct").addEventListener("submit", (e) => { e.preventDefault(); startDirect($("direct-username").value.trim()); $("direct-username").value = ""; });
$("search-form").addEventListener("submit", (e) => {
  e.preventDefault();
  const query = $("search-input").value.trim();
  if (query) search(query, false);
});
$("search-more").onclick = () => search(state.searchQuery, true);
$("search-close").onclick = () => { $("search-box").hidden = true; };
$("new-group").addEventListener("submit", (e) => { e.preventDefault(); createGroup($("group-name").value.trim()); $("group-name").value = ""; });
$("invite-form").addEventListener("submit", (e) => { e.preventDefault(); invite($("invite-username").value.trim()); });
$("composer").addEventListener("submit", (e) => { e.preventDefault(); submitComposer(); });
$("composer-input").addEventListener("input", sendTyping);
$("thread-composer").addEventListener("submit", (e) => {
  e.preventDefault();
  const body = $("thread-input").value.trim();
  if (!body || !state.thread) return;
  const ref = newId();
  const send = { roomId: state.current, body, threadRootId: state.thread };
  const mentions = mentionsIn(body);
  if (mentions.length) send.mentions = mentions;
  state.pending.set(ref, send);
  $("thread-input").value = "";
  transmit(ref);
});
$("thread-close").onclick = () => { state.thread = null; showRoom(); };
$("reply-cancel").onclick = () => { state.replyTo = null; showRoom(); };
$("edit-cancel").onclick = () => { state.editing = null; $("composer-input").value = ""; showRoom(); };
$("older").onclick = async () => {
  const messages = sortedMessages(state.current);
  if (messages.length) await loadHistory(state.current, messages[0].seq);
  showRoom();
};
// The operating system says the network is gone: close at once instead of waiting for a
// timeout, and come back (with `since`) as soon as it returns.
window.addEventListener("offline", () => {
  setOffline(true);
  const ws = state.ws;
  state.ws = null;
  if (ws) ws.close();
});
window.addEventListener("online", () => { state.backoff = 500; connect(); });
document.addEventListener("visibilitychange", () => { if (state.current) { markRead(state.current); renderRooms(); } });

(async () => {
  if (!state.token) return;
  try {
    const { user: me } = await api("GET", "/v1/me");
    await start(me);
  } catch {
    localStorage.removeItem("parley.token");
    state.token = null;
  }
})();
