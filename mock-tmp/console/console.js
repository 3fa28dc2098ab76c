// The mock-tmp console: reads and drives the mock's control plane (/_mock/v1) from the page it
// serves. No framework and no build step; every value from the mock is put on the page as text
// (textContent), never as markup, so a device name or a journal note cannot become script.
"use strict";

const REFRESH_MS = 1000;
const JOURNAL_ROWS = 100;

// What each section last showed, so an unchanged section is not rebuilt (which would take the
// focus and the half-typed code out of an activation-code field).
const shown = {};

function el(tag, attrs, ...children) {
  const node = document.createElement(tag);
  for (const [name, value] of Object.entries(attrs || {})) {
    if (value === undefined || value === null || value === false) continue;
    if (name === "text") node.textContent = String(value);
    else if (name.startsWith("on")) node.addEventListener(name.slice(2), value);
    else node.setAttribute(name, value === true ? "" : String(value));
  }
  for (const child of children) {
    if (child === undefined || child === null) continue;
    node.append(child instanceof Node ? child : document.createTextNode(String(child)));
  }
  return node;
}

async function call(method, path, body) {
  const init = { method, headers: {} };
  if (body !== undefined) {
    init.headers["content-type"] = "application/json";
    init.body = JSON.stringify(body);
  }
  const response = await fetch(path, init);
  const text = await response.text();
  let json = null;
  try { json = text ? JSON.parse(text) : null; } catch (_) { json = { raw: text }; }
  return { ok: response.ok, status: response.status, json };
}

function showResult(what, answer) {
  const result = document.getElementById("result");
  result.textContent = what + " → " + answer.status + "\n" + JSON.stringify(answer.json, null, 2);
  result.dataset.status = String(answer.status);
  const json = answer.json || {};
  result.dataset.path = json.path || "";
  result.dataset.tokenId = json.tokenId || "";
  result.dataset.notificationId = json.activationNotificationId || json.notificationId || "";
  refresh();
}

function replaceRows(tableId, key, data, render) {
  const text = JSON.stringify(data);
  if (shown[tableId] === text) return;
  shown[tableId] = text;
  const body = document.querySelector("#" + tableId + " tbody");
  body.replaceChildren(...render(data));
  if (key) body.dataset.rows = String(data.length);
}

function short(value, n) {
  if (!value) return "";
  return value.length > n ? value.slice(0, n) + "…" : value;
}

function time(value) {
  return value ? value.replace("T", " ").replace(/\.\d+Z$/, "Z") : "";
}

// --- tokens

function tokenRows(tokens) {
  return tokens.map((t) => {
    const waiting = t.status === "INACTIVE" && t.otp;
    const otpCell = waiting
      ? el("td", {},
          el("input", { class: "otp-input", "aria-label": "activation code for " + t.tokenId, size: 8, inputmode: "numeric", autocomplete: "off" }),
          el("button", { type: "button", class: "otp-submit", text: "Enter code", onclick: (e) => enterOtp(t.tokenId, e.target) }),
          el("div", { class: "small", text: t.otp.wrongAttempts + " wrong · expires " + time(t.otp.expiresAt) }))
      : el("td", { class: "small", text: t.status === "INACTIVE" ? "no code pending" : "" });
    // The step-up methods the issuer offered: the cardholder picks (or switches) here.
    const stepUp = t.stepUp || { offered: [] };
    if (t.status === "INACTIVE" && stepUp.offered.length) {
      otpCell.append(el("div", { class: "small", text: stepUp.chosen ? "chosen: " + stepUp.chosen : "no method chosen yet" }));
      for (const method of stepUp.offered) {
        otpCell.append(el("button", { type: "button", class: "step-up", "data-method": method.type, text: method.type + " · " + method.value, onclick: () => chooseStepUp(t.tokenId, method.type) }));
      }
    }
    const actions = el("td", {});
    if (t.status === "ACTIVE") actions.append(el("button", { type: "button", class: "suspend", text: "Suspend", onclick: () => walletAction(t.tokenId, "suspend") }));
    if (t.status === "SUSPENDED") actions.append(el("button", { type: "button", class: "resume", text: "Resume", onclick: () => walletAction(t.tokenId, "resume") }));
    if (t.status !== "DEACTIVATED") actions.append(el("button", { type: "button", class: "remove", text: "Remove", onclick: () => removeToken(t.tokenId) }));
    const wallet = (t.tokenRequestor && t.tokenRequestor.wallet) || "";
    return el("tr", { "data-token-id": t.tokenId },
      el("td", { class: "mono", title: t.tokenId, text: short(t.tokenId, 20) }),
      el("td", { text: t.cardId }, productLine(t.product)),
      el("td", { text: wallet + (t.deviceName ? " · " + t.deviceName : "") }),
      el("td", { class: "status status-" + t.status, text: t.status }),
      el("td", { text: (t.suspendedBy || []).join(", ") }),
      otpCell,
      actions);
  });
}

// The product and card art the wallet shows for a token, once the issuer sent them.
function productLine(product) {
  if (!product) return null;
  const parts = [product.productName, product.cardArtId && "art " + product.cardArtId].filter(Boolean);
  return el("div", { class: "small product", text: parts.join(" · ") });
}

async function enterOtp(tokenId, button) {
  const input = button.parentElement.querySelector(".otp-input");
  showResult("activation code for " + tokenId, await call("POST", "/_mock/v1/simulate/tokens/" + encodeURIComponent(tokenId) + "/otp", { otp: input.value.trim() }));
}

async function chooseStepUp(tokenId, method) {
  showResult("step-up " + method + " for " + tokenId, await call("POST", "/_mock/v1/simulate/tokens/" + encodeURIComponent(tokenId) + "/step-up", { method }));
}

async function walletAction(tokenId, action) {
  showResult(action + " " + tokenId, await call("POST", "/_mock/v1/simulate/tokens/" + encodeURIComponent(tokenId) + "/wallet/" + action, {}));
}

async function removeToken(tokenId) {
  showResult("remove " + tokenId, await call("POST", "/_mock/v1/simulate/tokens/" + encodeURIComponent(tokenId) + "/remove", {}));
}

// --- cards, journal, faults, sender

function cardRows(cards) {
  return cards.map((c) => el("tr", { "data-card-id": c.cardId },
    el("td", { text: c.cardId }),
    el("td", { class: "mono", text: c.panLast4 ? "•••• " + c.panLast4 : "" }),
    el("td", { class: "status status-" + c.status, text: c.status }),
    el("td", { text: c.replacedBy || "" }),
    el("td", { text: c.inDatacore ? "yes" : "" }),
    el("td", { class: "small", text: time(c.updatedAt) })));
}

function journalRows(entries) {
  return entries.slice(-JOURNAL_ROWS).reverse().map((e) => el("tr", { class: "outcome-" + e.outcome },
    el("td", { text: e.seq }),
    el("td", { class: "small", text: time(e.at) }),
    el("td", { text: e.direction === "sent" ? "TMP → issuer" : "→ TMP" }),
    el("td", { class: "mono", text: e.method + " " + e.path }),
    el("td", { text: e.status || "" }),
    el("td", { text: e.outcome }),
    el("td", { text: e.attempt || "" }),
    el("td", { class: "mono small", title: e.traceId || "", text: short(e.traceId, 8) }),
    el("td", { class: "small", text: e.note || "" })));
}

function faultRows(faults) {
  return faults.map((f) => {
    const effect = [
      f.error_status ? "status " + f.error_status : null,
      f.drop_connection ? "drop" : null,
      f.discard ? "lose" : null,
      f.latency_ms ? f.latency_ms + " ms" : null,
      f.after_delivery ? "after delivery" : null,
    ].filter(Boolean).join(", ");
    return el("tr", { "data-fault-id": f.id },
      el("td", { text: f.id }),
      el("td", { class: "mono", text: f.route }),
      el("td", { text: effect }),
      el("td", { text: f.times === null || f.times === undefined ? "always" : Math.max(0, f.times - f.fired) }),
      el("td", {}, el("button", { type: "button", class: "remove-fault", text: "Remove", onclick: async () => { await call("DELETE", "/_mock/v1/faults/" + f.id); refresh(); } })));
  });
}

async function addFault() {
  const number = (id) => { const v = document.getElementById(id).value.trim(); return v === "" ? undefined : Number(v); };
  const rule = {
    route: document.getElementById("fault-route").value.trim(),
    error_status: number("fault-status"),
    times: number("fault-times"),
    drop_connection: document.getElementById("fault-drop").checked,
    discard: document.getElementById("fault-discard").checked,
  };
  showResult("add fault", await call("POST", "/_mock/v1/faults", rule));
}

// --- simulator

async function tokenize(event) {
  const value = (id) => document.getElementById(id).value.trim();
  const card = { pan: value("pan"), expiry: value("expiry") };
  if (value("cvc")) card.cvc = value("cvc");
  const body = { card, wallet: value("wallet"), walletScore: Number(event.target.dataset.score) };
  if (value("device-id")) body.deviceId = value("device-id");
  if (value("step-up")) body.stepUpMethod = value("step-up");
  showResult("tokenize (" + event.target.id + ")", await call("POST", "/_mock/v1/simulate/tokenizations", body));
}

async function push() {
  showResult("push", await call("POST", "/_mock/v1/simulate/wallet/push", { payload: document.getElementById("push-payload").value.trim() }));
}

// --- refresh

let refreshing = false;

async function refresh() {
  if (refreshing) return;
  refreshing = true;
  try {
    const [tokens, cards, journal, faults, sender, clock] = await Promise.all([
      call("GET", "/_mock/v1/tokens"),
      call("GET", "/_mock/v1/cards"),
      call("GET", "/_mock/v1/requests"),
      call("GET", "/_mock/v1/faults"),
      call("GET", "/_mock/v1/sender"),
      call("GET", "/_mock/v1/clock"),
    ]);
    replaceRows("tokens", true, tokens.json.tokens, tokenRows);
    replaceRows("cards", true, cards.json.cards, cardRows);
    replaceRows("journal", true, journal.json.requests, journalRows);
    replaceRows("faults", true, faults.json.faults, faultRows);
    document.getElementById("sender").textContent = JSON.stringify(sender.json.behaviour, null, 2);
    document.getElementById("pending").textContent = String(sender.json.pending);
    document.getElementById("clock").textContent = time(clock.json.now) + (clock.json.offsetSecs ? " (+" + clock.json.offsetSecs + " s)" : "");
    const connection = document.getElementById("connection");
    connection.textContent = "live";
    connection.className = "ok";
  } catch (error) {
    const connection = document.getElementById("connection");
    connection.textContent = "the mock does not answer";
    connection.className = "down";
  } finally {
    refreshing = false;
  }
}

document.addEventListener("DOMContentLoaded", () => {
  for (const id of ["green", "yellow", "red"]) document.getElementById(id).addEventListener("click", tokenize);
  document.getElementById("push").addEventListener("click", push);
  document.getElementById("add-fault").addEventListener("click", addFault);
  document.getElementById("reset").addEventListener("click", async () => showResult("reset", await call("POST", "/_mock/v1/reset")));
  refresh();
  setInterval(refresh, REFRESH_MS);
});
