// OneBot Gateway console: plain JavaScript, no build step, everything served by the admin listener.
"use strict";

const $ = (selector) => document.querySelector(selector);
const state = { token: sessionStorage.getItem("obg-token") || "", events: [], chat: null,
                lastAnswered: null, lastTime: 0, self_id: 0, catalog: [],
                // The accounts of the last overview, and the one the chat and actions views use
                // (by name; the first account until one is picked).
                accounts: [], account: "", overview: null };
const MAX_EVENTS = 500;

// --- API -------------------------------------------------------------------------------------

async function api(path, body) {
  const options = { headers: { Authorization: `Bearer ${state.token}` } };
  if (body !== undefined) {
    options.method = "POST";
    options.headers["Content-Type"] = "application/json";
    options.body = JSON.stringify(body);
  }
  const response = await fetch(path, options);
  if (response.status === 403) throw new Error("forbidden");
  return response.json();
}

// Runs on the picked account (the only one of a one-account gateway).
const call = (action, params = {}) => api("/api/call", { action, params, account: state.account || undefined });

// --- login -----------------------------------------------------------------------------------

async function start() {
  try {
    render(await api("/api/overview"));
  } catch (error) {
    showLogin(state.token ? "That token was refused." : "This console needs the admin listener's token.");
    return;
  }
  $("#login").hidden = true;
  $("#app").hidden = false;
  openStream();
  loadContacts();
  loadCatalog();
}

function showLogin(message) {
  $("#login-message").textContent = message;
  $("#login").hidden = false;
  $("#app").hidden = true;
}

$("#login-form").addEventListener("submit", (event) => {
  event.preventDefault();
  state.token = $("#token").value;
  sessionStorage.setItem("obg-token", state.token);
  start();
});

document.querySelectorAll("nav button").forEach((button) => button.addEventListener("click", () => {
  document.querySelectorAll("nav button").forEach((b) => b.classList.toggle("active", b === button));
  document.querySelectorAll(".tab").forEach((tab) => { tab.hidden = tab.id !== `tab-${button.dataset.tab}`; });
}));

// --- live stream -----------------------------------------------------------------------------

function openStream() {
  const source = new EventSource(`/api/stream?access_token=${encodeURIComponent(state.token)}`);
  source.addEventListener("open", () => { $("#connection").textContent = "live"; $("#connection").classList.add("live"); });
  source.addEventListener("error", () => { $("#connection").textContent = "reconnecting"; $("#connection").classList.remove("live"); });
  source.addEventListener("overview", (message) => render(JSON.parse(message.data)));
  source.addEventListener("event", (message) => onEvent(JSON.parse(message.data)));
}

function render(overview) {
  state.overview = overview;
  renderAccounts(overview.accounts || []);
  renderBackend();
  renderCluster(overview.cluster);
  $("#events-published").textContent = overview.events_published;
  const answered = Object.values(overview.actions).reduce((a, b) => a + b, 0);
  const now = Date.now() / 1000;
  if (state.lastAnswered !== null && now > state.lastTime) {
    $("#actions-per-second").textContent = ((answered - state.lastAnswered) / (now - state.lastTime)).toFixed(1);
  }
  state.lastAnswered = answered;
  state.lastTime = now;
  const failures = Object.entries(overview.actions).map(([code, n]) => `${code}: ${n}`).join(" · ");
  $("#retcodes").textContent = failures || "none yet";
  const rows = overview.adapters.map((a) => `<tr data-name="${esc(a.name)}"><td>${esc(a.name)}</td><td>${a.kind}</td>` +
    `<td>${esc(a.address)}</td><td class="state-${a.state.split(" ")[0]}">${esc(a.state)}</td>` +
    `<td>${a.subscribers}</td><td>${a.queue_depth}</td><td>${a.dropped}</td>` +
    `<td>${esc(policyText(a.policy))}</td><td>${esc(rateText(a.send_rate))}</td></tr>`);
  $("#adapters tbody").innerHTML = rows.join("");
}

// --- accounts --------------------------------------------------------------------------------

function picked() {
  return state.accounts.find((a) => a.name === state.account) || state.accounts[0];
}

function accountName(selfId) {
  const account = state.accounts.find((a) => a.self_id === selfId);
  return account ? account.name : String(selfId);
}

// An account's backend kind; an account of another node says which ("remote on n1").
function backendText(account) {
  if (account.kind !== "remote") return account.kind;
  const node = hostOf(account.self_id);
  return node ? `remote on ${node}` : "remote (no node has it)";
}

// The picker, the events' account filter and the accounts table; the picker and the table only
// show when there is more than one account.
function renderAccounts(accounts) {
  const names = accounts.map((a) => `${a.name}:${a.self_id}`).join(",");
  const changed = names !== state.accounts.map((a) => `${a.name}:${a.self_id}`).join(",");
  state.accounts = accounts;
  if (!state.account && accounts.length) state.account = accounts[0].name;
  const several = accounts.length > 1;
  if (changed) {
    $("#account").innerHTML = accounts.map((a) => `<option value="${esc(a.name)}">${esc(a.name)} (${a.self_id})</option>`).join("");
    const filter = $("#filter-account"), wanted = filter.value;
    filter.innerHTML = `<option value="">all accounts</option>` +
      accounts.map((a) => `<option value="${a.self_id}">${esc(a.name)} (${a.self_id})</option>`).join("");
    filter.value = accounts.some((a) => String(a.self_id) === wanted) ? wanted : "";
    if (accounts.length && !accounts.some((a) => a.name === state.account)) {
      pickAccount(accounts[0].name);  // the picked account was removed (a reload)
      return;
    }
  }
  $("#account").value = (picked() || {}).name || "";
  $("#account-picker").hidden = !several;
  $("#filter-account").hidden = !several;
  $("#accounts").hidden = !several;
  $("#accounts tbody").innerHTML = accounts.map((a) => {
    const answered = Object.values(a.actions || {}).reduce((x, y) => x + y, 0);
    return `<tr data-name="${esc(a.name)}" class="${a === picked() ? "picked" : ""}"><td>${esc(a.name)}</td>` +
      `<td>${a.self_id}</td><td>${esc(backendText(a))}</td><td class="state-${esc(a.state)}">${esc(a.state)}</td><td>${answered}</td></tr>`;
  }).join("");
}

// --- cluster ---------------------------------------------------------------------------------

// The node hosting `selfId` in the directory ("" when no node has it, or without a cluster).
function hostOf(selfId) {
  const nodes = (state.overview.cluster || {}).nodes || {};
  const found = Object.entries(nodes).find(([, accounts]) => accounts.some((a) => a.self_id === selfId));
  return found ? found[0] : "";
}

// The link to NATS and the directory: every node with the accounts it hosts (this node first).
function renderCluster(cluster) {
  $("#cluster").hidden = !cluster;
  if (!cluster) return;
  const link = $("#cluster-link");
  link.textContent = cluster.connected ? "connected" : "disconnected";
  link.classList.toggle("live", cluster.connected);
  const held = `${cluster.held_events} events held · ${cluster.dropped_events} dropped`;
  const error = cluster.connected ? "" : ` · ${cluster.error}`;
  $("#cluster-detail").textContent = `node ${cluster.node} · NATS ${cluster.servers.join(", ")} · ${held}${error}`;
  const nodes = Object.entries(cluster.nodes || {});
  nodes.sort(([a], [b]) => (a === cluster.node ? -1 : b === cluster.node ? 1 : a.localeCompare(b)));
  $("#cluster-nodes tbody").innerHTML = nodes.flatMap(([node, accounts]) => accounts.map((a, index) => {
    const online = a.online ? "online" : "offline";
    const name = index ? "" : `${esc(node)}${node === cluster.node ? " (this node)" : ""}`;
    return `<tr data-node="${esc(node)}" data-self-id="${a.self_id}"><td>${name}</td><td>${esc(a.name)}</td>` +
      `<td>${a.self_id}</td><td>${esc(a.kind)}</td><td class="state-${online}">${online}</td></tr>`;
  })).join("") || `<tr><td colspan="5">no account in the directory yet</td></tr>`;
}

// The picked account's backend and state (the first account's when there is none).
function renderBackend() {
  const backend = picked() || state.overview.backend;
  state.self_id = backend.self_id;
  $("#backend").textContent = `${backend.kind} · ${backend.self_id} · ${backend.state}`;
}

// The chat and actions views follow the picked account: its contacts, its catalog.
function pickAccount(name) {
  state.account = name;
  const account = picked();
  state.self_id = account ? account.self_id : 0;
  state.chat = null;
  $("#chat-title").textContent = "Pick a friend or a group";
  $("#messages").innerHTML = "";
  $("#chat-as").innerHTML = "";
  $("#chat-status").textContent = "";
  $("#envelope").textContent = "";
  renderAccounts(state.accounts);
  renderBackend();
  loadContacts();
  loadCatalog();
}

$("#account").addEventListener("change", () => pickAccount($("#account").value));

// An entry's `actions` rules in one line (process-level actions need an explicit allow).
function policyText(policy) {
  if (!policy) return "";
  const allow = policy.allow === null ? "all but process-level" : `allow ${policy.allow.join(", ") || "nothing"}`;
  return policy.deny.length ? `${allow} · deny ${policy.deny.join(", ")}` : allow;
}

// An entry's `sendRate` and the sends waiting for it now.
function rateText(rate) {
  if (!rate) return "unlimited";
  const waiting = rate.waiting ? ` · ${rate.waiting} waiting` : "";
  return `${rate.per_minute}/min, burst ${rate.burst}${waiting}`;
}

// --- events ----------------------------------------------------------------------------------

function onEvent(event) {
  state.events.unshift(event);
  state.events.length = Math.min(state.events.length, MAX_EVENTS);
  renderEvents();
  if (state.chat && inChat(event)) appendMessage(event);
}

function summary(event) {
  const kind = event.message_type || event.notice_type || event.request_type || event.meta_event_type || "";
  const where = event.group_id ? `group ${event.group_id}` : event.user_id ? `user ${event.user_id}` : "";
  const text = event.raw_message || event.sub_type || "";
  const account = state.accounts.length > 1 ? ` [${accountName(event.self_id)}]` : "";
  return `${new Date(event.time * 1000).toLocaleTimeString()}${account} ${event.post_type}/${kind} ${where} ${text}`;
}

function renderEvents() {
  const type = $("#filter-type").value, chat = $("#filter-chat").value.trim(), text = $("#filter-text").value.trim();
  const account = $("#filter-account").value;
  const shown = state.events.filter((e) => (!account || String(e.self_id) === account) && (!type || e.post_type === type) &&
    (!chat || String(e.group_id) === chat || String(e.user_id) === chat) &&
    (!text || JSON.stringify(e).includes(text)));
  $("#event-list").innerHTML = shown.map((e) =>
    `<li data-post-type="${e.post_type}" data-self-id="${e.self_id}"><details><summary>${esc(summary(e))}</summary>` +
    `<pre>${esc(JSON.stringify(e, null, 2))}</pre></details></li>`).join("");
}

["#filter-account", "#filter-type", "#filter-chat", "#filter-text"].forEach((s) => $(s).addEventListener("input", renderEvents));
$("#events-clear").addEventListener("click", () => { state.events = []; renderEvents(); });

// --- chat ------------------------------------------------------------------------------------

async function loadContacts() {
  const friends = await call("get_friend_list");
  const groups = await call("get_group_list");
  $("#friends").innerHTML = "";
  $("#groups").innerHTML = "";
  if (friends.retcode !== 0) { $("#chat-status").textContent = friends.message; return; }
  $("#friends").innerHTML = friends.data.map((f) => `<li data-user="${f.user_id}">${esc(f.remark || f.nickname)} (${f.user_id})</li>`).join("");
  $("#groups").innerHTML = (groups.data || []).map((g) => `<li data-group="${g.group_id}">${esc(g.group_name)} (${g.group_id})</li>`).join("");
  document.querySelectorAll("#contacts li").forEach((li) => li.addEventListener("click", () => openChat(li)));
}

async function openChat(li) {
  document.querySelectorAll("#contacts li").forEach((other) => other.classList.toggle("selected", other === li));
  const group = li.dataset.group ? Number(li.dataset.group) : null;
  const user = li.dataset.user ? Number(li.dataset.user) : null;
  state.chat = { group, user };
  $("#chat-title").textContent = li.textContent;
  let members = [{ user_id: user, nickname: li.textContent }];
  if (group) members = (await call("get_group_member_list", { group_id: group })).data.filter((m) => m.user_id !== state.self_id);
  $("#chat-as").innerHTML = members.map((m) => `<option value="${m.user_id}">${esc(m.card || m.nickname)} (${m.user_id})</option>`).join("");
  const history = group ? await call("get_group_msg_history", { group_id: group, count: 50 })
                        : await call("get_friend_msg_history", { user_id: user, count: 50 });
  $("#messages").innerHTML = "";
  (history.data ? history.data.messages : []).forEach(appendMessage);
}

function inChat(event) {
  const chat = state.chat;
  // Each account gets its own copy of what happens in a shared group: show the picked one's.
  if (event.self_id !== undefined && event.self_id !== state.self_id) return false;
  if (event.post_type === "notice") return chat.group ? event.group_id === chat.group : event.user_id === chat.user && !event.group_id;
  if (event.post_type !== "message" && event.post_type !== "message_sent") return false;
  if (chat.group) return event.message_type === "group" && event.group_id === chat.group;
  return event.message_type === "private" && (event.user_id === chat.user || event.target_id === chat.user);
}

function appendMessage(event) {
  const list = $("#messages");
  if (event.post_type === "notice") {
    if (event.notice_type.endsWith("_recall")) {
      const recalled = list.querySelector(`li[data-id="${event.message_id}"]`);
      if (recalled) recalled.classList.add("recalled");
    }
    list.insertAdjacentHTML("beforeend", `<li class="notice">${esc(event.notice_type)} ${esc(event.sub_type || "")}</li>`);
  } else {
    if (list.querySelector(`li[data-id="${event.message_id}"]`)) return;
    const mine = event.user_id === state.self_id;
    const who = event.sender ? (event.sender.card || event.sender.nickname) : event.user_id;
    const recall = mine ? "" : `<button type="button" data-recall="${event.message_id}">recall</button>`;
    list.insertAdjacentHTML("beforeend", `<li class="${mine ? "bot" : "user"}" data-id="${event.message_id}">` +
      `<span class="meta">${esc(String(who))}${recall}</span><span class="bubble">${esc(event.raw_message)}</span></li>`);
  }
  list.scrollTop = list.scrollHeight;
}

$("#messages").addEventListener("click", async (event) => {
  const id = event.target.dataset.recall;
  if (id) report(await call("sandbox_recall_message", { message_id: Number(id) }));
});

function report(envelope) {
  $("#chat-status").textContent = envelope.retcode === 0 ? "" : `${envelope.retcode}: ${envelope.message}`;
}

$("#chat-form").addEventListener("submit", async (event) => {
  event.preventDefault();
  const chat = state.chat, text = $("#chat-input").value;
  if (!chat || !text) return;
  const params = { message_type: chat.group ? "group" : "private", user_id: Number($("#chat-as").value), message: text };
  if (chat.group) params.group_id = chat.group;
  report(await call("sandbox_receive_message", params));
  $("#chat-input").value = "";
});

$("#chat-poke").addEventListener("click", async () => {
  const chat = state.chat;
  if (!chat) return;
  const params = { user_id: Number($("#chat-as").value), target_id: state.self_id };
  if (chat.group) params.group_id = chat.group;
  report(await call("sandbox_poke", params));
});

$("#chat-request").addEventListener("click", async () => {
  const chat = state.chat;
  if (!chat) return;
  const user = Number($("#chat-as").value);
  report(chat.group ? await call("sandbox_group_request", { group_id: chat.group, user_id: user, comment: "let me in", sub_type: "add" })
                    : await call("sandbox_friend_request", { user_id: user, comment: "hello" }));
});

// --- actions ---------------------------------------------------------------------------------

async function loadCatalog() {
  const catalog = await api(state.account ? `/api/catalog?account=${encodeURIComponent(state.account)}` : "/api/catalog");
  state.catalog = catalog.actions;
  $("#action-select").innerHTML = catalog.actions.map((a) => `<option value="${a.name}">${a.name}</option>`).join("");
  $("#action-names").innerHTML = catalog.actions.map((a) => `<option value="${a.name}">`).join("");
  showAction();
}

function fieldFor(name, schema, required) {
  const type = schema.type || (schema.anyOf || []).map((s) => s.type).find((t) => t && t !== "null") || "json";
  const hint = `${type}${required ? ", required" : ""}${schema.default !== undefined ? `, default ${JSON.stringify(schema.default)}` : ""}`;
  const input = type === "boolean" ? `<select name="${name}" data-type="boolean"><option value=""></option><option>true</option><option>false</option></select>`
    : `<input name="${name}" data-type="${type}" placeholder="${esc(schema.description || "")}">`;
  return `<label><span>${name}</span>${input}<small>${esc(hint)}</small></label>`;
}

function showAction() {
  const action = state.catalog.find((a) => a.name === $("#action-select").value);
  if (!action) return;
  $("#action-summary").textContent = action.summary;
  const properties = action.schema.properties || {};
  const required = action.schema.required || [];
  $("#action-fields").innerHTML = Object.entries(properties).map(([name, schema]) => fieldFor(name, schema, required.includes(name))).join("");
}

$("#action-select").addEventListener("change", showAction);
$("#action-search").addEventListener("change", () => { $("#action-select").value = $("#action-search").value; showAction(); });

function parseField(input) {
  const value = input.value;
  if (value === "") return undefined;
  if (input.dataset.type === "integer" || input.dataset.type === "number") return Number(value);
  if (input.dataset.type === "boolean") return value === "true";
  if (input.dataset.type === "string") return value;
  try { return JSON.parse(value); } catch { return value; }
}

$("#action-form").addEventListener("submit", async (event) => {
  event.preventDefault();
  const params = {};
  document.querySelectorAll("#action-fields [name]").forEach((input) => {
    const value = parseField(input);
    if (value !== undefined) params[input.name] = value;
  });
  $("#envelope").textContent = JSON.stringify(await call($("#action-select").value, params), null, 2);
});

function esc(text) {
  return String(text).replace(/[&<>"']/g, (c) => ({ "&": "&amp;", "<": "&lt;", ">": "&gt;", '"': "&quot;", "'": "&#39;" })[c]);
}

start();
