// atx admin console: plain JS, no build step. Talks to the console's JSON API,
// which calls the TC's AdminService with the admin token given here.
"use strict";

const TOKEN_KEY = "atx.adminToken";
const OPERATOR_KEY = "atx.operator";
const REFRESH_MS = 5000;

const IN_PHASE_TWO = new Set([
  "Committing", "AsyncCommitting", "CommitRetrying", "Rollbacking", "RollbackRetrying",
  "TimeoutRollbacking", "TimeoutRollbackRetrying",
]);
const REVIVABLE = new Set([
  "RollbackFailed", "TimeoutRollbackFailed", "RollbackRetryTimeout", "CommitFailed",
  "CommitRetryTimeout",
]);
const FINAL = new Set([
  "Committed", "CommitFailed", "Rollbacked", "RollbackFailed", "TimeoutRollbacked",
  "TimeoutRollbackFailed", "Finished", "CommitRetryTimeout", "RollbackRetryTimeout",
]);

const ACTIONS = {
  "retry": {
    title: "Retry phase two now?",
    text: (s) => `Runs phase two of ${s.xid} (${s.status}) now. A failed session goes back to retrying.`,
    allowed: (s) => IN_PHASE_TWO.has(s.status) || REVIVABLE.has(s.status),
    done: "Phase two retried",
  },
  "stop-retry": {
    title: "Stop retrying?",
    text: (s) => `Background retries of ${s.xid} pause until resumed. Its locks stay held.`,
    allowed: (s) => IN_PHASE_TWO.has(s.status) && !s.retry_stopped,
    done: "Retries stopped",
  },
  "resume-retry": {
    title: "Resume retrying?",
    text: (s) => `Background retries of ${s.xid} start again at once.`,
    allowed: (s) => IN_PHASE_TWO.has(s.status) && s.retry_stopped,
    done: "Retries resumed",
  },
  "rollback": {
    title: "Roll back this transaction?",
    text: (s) => `Rolls back ${s.xid}, still in Begin: every branch is undone. This cannot be reversed.`,
    allowed: (s) => s.status === "Begin",
    destructive: true,
    done: "Rollback sent",
  },
  "delete": {
    title: "Delete this transaction?",
    text: (s) => `Deletes ${s.xid} (${s.status}) and releases its locks. Branch data is NOT repaired. This cannot be reversed.`,
    allowed: (s) => FINAL.has(s.status) || (IN_PHASE_TWO.has(s.status) && s.retry_stopped),
    destructive: true,
    done: "Deleted",
  },
};

const $ = (sel, root = document) => root.querySelector(sel);
const $$ = (sel, root = document) => Array.from(root.querySelectorAll(sel));

const state = {
  view: "transactions",
  tx: { tokens: [""], index: 0 },
  locks: { tokens: [""], index: 0 },
  audit: { tokens: [""], index: 0 },
  detailXid: null,
  detail: null,
  busy: false,
  loginPending: null,
};

// --- API -------------------------------------------------------------------

class ApiError extends Error {
  constructor(status, code, message) {
    super(message);
    this.status = status;
    this.code = code;
  }
}

async function api(path, options = {}) {
  const headers = { "Accept": "application/json" };
  const token = sessionStorage.getItem(TOKEN_KEY);
  if (token) headers["Authorization"] = "Bearer " + token;
  if (options.body !== undefined) headers["Content-Type"] = "application/json";
  const response = await fetch(path, {
    method: options.method || "GET",
    headers,
    body: options.body !== undefined ? JSON.stringify(options.body) : undefined,
  });
  let data = null;
  try { data = await response.json(); } catch (e) { data = null; }
  if (!response.ok) {
    const err = (data && data.error) || {};
    const error = new ApiError(response.status, err.code || "HTTP_" + response.status,
      err.message || response.statusText);
    if (response.status === 401 || response.status === 403) {
      await askToken(error.message);
      return api(path, options);
    }
    throw error;
  }
  return data;
}

function askToken(message) {
  if (state.loginPending) return state.loginPending;
  const dialog = $("#login");
  const error = $("#login-error");
  error.hidden = !message || !sessionStorage.getItem(TOKEN_KEY);
  error.textContent = message || "";
  sessionStorage.removeItem(TOKEN_KEY);
  $("#login-token").value = "";
  state.loginPending = new Promise((resolve) => {
    $("#login-form").onsubmit = (event) => {
      event.preventDefault();
      const value = $("#login-token").value.trim();
      if (!value) return;
      sessionStorage.setItem(TOKEN_KEY, value);
      dialog.close();
      $("#logout").hidden = false;
      state.loginPending = null;
      resolve();
    };
  });
  if (!dialog.open) dialog.showModal();
  return state.loginPending;
}

// --- formatting --------------------------------------------------------------

function fmtTime(ms) {
  if (!ms) return "–";
  const d = new Date(ms);
  const pad = (n, w = 2) => String(n).padStart(w, "0");
  return `${d.getFullYear()}-${pad(d.getMonth() + 1)}-${pad(d.getDate())} ` +
    `${pad(d.getHours())}:${pad(d.getMinutes())}:${pad(d.getSeconds())}.${pad(d.getMilliseconds(), 3)}`;
}

function statusClass(status) {
  if (status === "Begin") return "s-begin";
  if (status === "Committed" || status === "Finished") return "s-ok";
  if (status === "Rollbacked" || status === "TimeoutRollbacked") return "s-rolled";
  if (status.includes("Failed") || status.endsWith("RetryTimeout")) return "s-failed";
  return "s-progress";
}

function statusBadge(status, stopped) {
  const wrap = document.createElement("span");
  const pill = document.createElement("span");
  pill.className = "status " + statusClass(status);
  pill.textContent = status;
  wrap.appendChild(pill);
  if (stopped) {
    const badge = document.createElement("span");
    badge.className = "badge stopped";
    badge.textContent = "retry stopped";
    wrap.appendChild(badge);
  }
  return wrap;
}

function cell(content, className) {
  const td = document.createElement("td");
  if (content instanceof Node) td.appendChild(content);
  else td.textContent = content === undefined || content === null ? "" : String(content);
  if (className) td.className = className;
  return td;
}

function fillTable(table, rows, makeRow, emptyText) {
  const body = $("tbody", table);
  body.replaceChildren();
  if (!rows.length) {
    const tr = document.createElement("tr");
    const td = cell(emptyText, "empty");
    td.colSpan = $$("thead th", table).length;
    tr.appendChild(td);
    body.appendChild(tr);
    return;
  }
  for (const row of rows) body.appendChild(makeRow(row));
}

function toast(message, isError) {
  const el = $("#toast");
  el.textContent = message;
  el.className = isError ? "error" : "";
  el.hidden = false;
  clearTimeout(toast.timer);
  toast.timer = setTimeout(() => { el.hidden = true; }, isError ? 8000 : 3500);
}

function showError(error) {
  toast(error.code ? `[${error.code}] ${error.message}` : String(error), true);
}

function formQuery(form) {
  const params = new URLSearchParams();
  for (const [key, value] of new FormData(form).entries()) {
    if (value === "" || value === null) continue;
    if (key === "since" || key === "until") {
      const ms = new Date(value).getTime();
      if (!Number.isNaN(ms)) params.set(key, String(ms));
    } else if (key === "history") {
      params.set("history", "1");
    } else {
      params.set(key, value);
    }
  }
  return params;
}

function pager(name, pages, nextToken) {
  $(`#${name}-prev`).disabled = pages.index === 0;
  pages.tokens.length = pages.index + 1;
  if (nextToken) pages.tokens.push(nextToken);
  $(`#${name}-next`).disabled = !nextToken;
}

// --- transactions --------------------------------------------------------------

async function loadTransactions() {
  const params = formQuery($("#tx-filters"));
  const pages = state.tx;
  if (pages.tokens[pages.index]) params.set("page_token", pages.tokens[pages.index]);
  params.set("page_size", "25");
  const data = await api("/api/globals?" + params.toString());
  fillTable($("#tx-table"), data.sessions, (s) => {
    const tr = document.createElement("tr");
    tr.dataset.xid = s.xid;
    tr.dataset.status = s.status;
    if (s.xid === state.detailXid) tr.classList.add("selected");
    tr.append(
      cell(s.xid, "mono xid"),
      cell(statusBadge(s.status, s.retry_stopped), "status-cell"),
      cell(s.application_id),
      cell(s.transaction_name),
      cell(fmtTime(s.begin_time_ms)),
      cell(`${Math.round(s.timeout_ms / 1000)} s`),
      cell(s.retry_count),
    );
    tr.addEventListener("click", () => openDetail(s.xid));
    return tr;
  }, "No global transactions match.");
  $("#tx-count").textContent = `${data.sessions.length} shown of ${data.total_size}`;
  pager("tx", pages, data.next_page_token);
}

// --- detail --------------------------------------------------------------------------

async function openDetail(xid) {
  state.detailXid = xid;
  $$("#tx-table tbody tr").forEach((tr) => tr.classList.toggle("selected", tr.dataset.xid === xid));
  $("#detail").hidden = false;
  await loadDetail();
}

function closeDetail() {
  state.detailXid = null;
  state.detail = null;
  $("#detail").hidden = true;
  $$("#tx-table tbody tr.selected").forEach((tr) => tr.classList.remove("selected"));
}

async function loadDetail() {
  const xid = state.detailXid;
  if (!xid) return;
  let data;
  try {
    data = await api("/api/globals/" + encodeURIComponent(xid));
  } catch (error) {
    if (error.status === 404) {
      $("#detail-status").textContent = "gone";
      $("#detail-status").className = "status";
      $$("#detail-actions button").forEach((b) => { b.disabled = true; });
      return;
    }
    throw error;
  }
  if (xid !== state.detailXid) return;
  renderDetail(data.session, data.locks);
}

function renderDetail(s, locks) {
  state.detail = s;
  $("#detail").dataset.xid = s.xid;
  $("#detail-xid").textContent = s.xid;
  const status = $("#detail-status");
  status.textContent = s.status;
  status.className = "status " + statusClass(s.status);
  $("#detail-stopped").hidden = !s.retry_stopped;
  const fields = [
    ["Application", s.application_id || "–"],
    ["Name", s.transaction_name || "–"],
    ["Transaction id", s.transaction_id],
    ["Begun", fmtTime(s.begin_time_ms)],
    ["Last change", fmtTime(s.modified_time_ms)],
    ["Timeout", `${s.timeout_ms} ms`],
    ["Phase-two attempts", s.retry_count],
  ];
  const dl = $("#detail-fields");
  dl.replaceChildren();
  for (const [key, value] of fields) {
    const dt = document.createElement("dt");
    dt.textContent = key;
    const dd = document.createElement("dd");
    dd.textContent = String(value);
    dl.append(dt, dd);
  }
  for (const button of $$("#detail-actions button")) {
    button.disabled = !ACTIONS[button.dataset.action].allowed(s);
  }
  fillTable($("#branches"), s.branches, (b) => {
    const tr = document.createElement("tr");
    tr.dataset.branchId = b.branch_id;
    tr.append(
      cell(b.branch_id, "mono"),
      cell(b.resource_id, "mono"),
      cell(b.branch_type),
      cell(b.status, "branch-status"),
      cell(b.lock_keys, "mono"),
      cell(b.application_data, "mono"),
      cell(b.client_id, "mono"),
      cell(fmtTime(b.begin_time_ms)),
    );
    return tr;
  }, "No branches registered.");
  fillTable($("#detail-locks"), locks, (l) => {
    const tr = document.createElement("tr");
    tr.append(cell(l.branch_id, "mono"), cell(l.resource_id, "mono"), cell(l.table_name),
      cell(l.pk, "mono"), cell(fmtTime(l.created_time_ms)));
    return tr;
  }, "No locks held.");
}

function confirmAction(action, session) {
  const spec = ACTIONS[action];
  const dialog = $("#confirm");
  $("#confirm-title").textContent = spec.title;
  $("#confirm-text").textContent = spec.text(session);
  $("#confirm-operator").value = localStorage.getItem(OPERATOR_KEY) || "";
  const ok = $("#confirm-ok");
  ok.classList.toggle("danger", !!spec.destructive);
  ok.textContent = spec.destructive ? "Yes, " + action.replace("-", " ") : "Confirm";
  return new Promise((resolve) => {
    dialog.addEventListener("close", () => resolve(dialog.returnValue === "ok"), { once: true });
    dialog.returnValue = "";
    dialog.showModal();
  });
}

async function runAction(action) {
  const session = state.detail;
  if (!session || state.busy) return;
  if (!(await confirmAction(action, session))) return;
  const operator = $("#confirm-operator").value.trim();
  if (operator) localStorage.setItem(OPERATOR_KEY, operator);
  state.busy = true;
  try {
    const path = `/api/globals/${encodeURIComponent(session.xid)}/${action}`;
    const data = await api(path, { method: "POST", body: { confirm: true, operator } });
    if (data.session) {
      toast(`${ACTIONS[action].done}: ${data.session.xid} is now ${data.session.status}`);
      await loadDetail();
    } else {
      toast(`${ACTIONS[action].done}: ${session.xid}`);
      closeDetail();
    }
    await loadTransactions();
  } catch (error) {
    showError(error);
    await loadDetail().catch(() => {});
  } finally {
    state.busy = false;
  }
}

// --- locks and audit -------------------------------------------------------------------

async function loadLocks() {
  const params = formQuery($("#lock-filters"));
  const pages = state.locks;
  if (pages.tokens[pages.index]) params.set("page_token", pages.tokens[pages.index]);
  params.set("page_size", "50");
  const data = await api("/api/locks?" + params.toString());
  fillTable($("#lock-table"), data.locks, (l) => {
    const tr = document.createElement("tr");
    const link = document.createElement("a");
    link.href = "#";
    link.textContent = l.xid;
    link.addEventListener("click", (e) => { e.preventDefault(); openDetail(l.xid); });
    tr.append(cell(link, "mono"), cell(l.branch_id, "mono"), cell(l.resource_id, "mono"),
      cell(l.table_name), cell(l.pk, "mono"), cell(fmtTime(l.created_time_ms)));
    return tr;
  }, "No global locks held.");
  $("#lock-count").textContent = `${data.locks.length} shown of ${data.total_size}`;
  pager("lock", pages, data.next_page_token);
}

async function loadAudit() {
  const params = formQuery($("#audit-filters"));
  const pages = state.audit;
  if (pages.tokens[pages.index]) params.set("page_token", pages.tokens[pages.index]);
  params.set("page_size", "50");
  const data = await api("/api/audit?" + params.toString());
  fillTable($("#audit-table"), data.entries, (e) => {
    const tr = document.createElement("tr");
    const result = document.createElement("span");
    result.className = "status " + (e.result === "ok" ? "s-ok" : "s-failed");
    result.textContent = e.result;
    tr.append(cell(fmtTime(e.time_ms)), cell(e.operator), cell(e.action), cell(e.xid, "mono"),
      cell(result), cell(e.detail));
    return tr;
  }, "No admin actions recorded.");
  pager("audit", pages, data.next_page_token);
}

// --- wiring ------------------------------------------------------------------------------

const LOADERS = { transactions: loadTransactions, locks: loadLocks, audit: loadAudit };

function refresh() {
  const work = [LOADERS[state.view]()];
  if (state.detailXid) work.push(loadDetail());
  return Promise.all(work).catch(showError);
}

function switchView(view) {
  state.view = view;
  $$(".tab").forEach((t) => t.classList.toggle("active", t.dataset.view === view));
  $$(".view").forEach((v) => { v.hidden = v.id !== "view-" + view; });
  refresh();
}

function wirePaging(name, pages, loader) {
  $(`#${name}-prev`).addEventListener("click", () => { pages.index -= 1; loader().catch(showError); });
  $(`#${name}-next`).addEventListener("click", () => { pages.index += 1; loader().catch(showError); });
}

function wireFilters(formId, pages, loader) {
  const form = $(formId);
  form.addEventListener("submit", (e) => {
    e.preventDefault();
    pages.tokens = [""];
    pages.index = 0;
    loader().catch(showError);
  });
  form.addEventListener("reset", () => setTimeout(() => form.requestSubmit(), 0));
}

document.addEventListener("DOMContentLoaded", () => {
  $$(".tab").forEach((t) => t.addEventListener("click", () => switchView(t.dataset.view)));
  wireFilters("#tx-filters", state.tx, loadTransactions);
  wireFilters("#lock-filters", state.locks, loadLocks);
  wireFilters("#audit-filters", state.audit, loadAudit);
  wirePaging("tx", state.tx, loadTransactions);
  wirePaging("lock", state.locks, loadLocks);
  wirePaging("audit", state.audit, loadAudit);
  $("#refresh").addEventListener("click", refresh);
  $("#detail-close").addEventListener("click", closeDetail);
  document.addEventListener("keydown", (e) => { if (e.key === "Escape" && !$("#confirm").open) closeDetail(); });
  $$("#detail-actions button").forEach((b) => b.addEventListener("click", () => runAction(b.dataset.action)));
  $("#logout").hidden = !sessionStorage.getItem(TOKEN_KEY);
  $("#logout").addEventListener("click", () => {
    sessionStorage.removeItem(TOKEN_KEY);
    $("#logout").hidden = true;
    askToken("").then(refresh);
  });
  setInterval(() => {
    if ($("#auto-refresh").checked && !state.busy && !state.loginPending && !$("#confirm").open) {
      refresh();
    }
  }, REFRESH_MS);
  api("/api/info").then((info) => { $("#tc-address").textContent = "TC " + info.tc; }).catch(showError);
  refresh();
});
