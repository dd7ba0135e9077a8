// The ccfleet dashboard: reads dashboard/events (SSE) with fetch, so that an admin key can go
// in a header (EventSource cannot send one), and redraws the tables on every snapshot.
// The key, when the fleet asks for one, is kept in sessionStorage: for this tab's session only.
"use strict";

(() => {
  const KEY_STORAGE = "ccfleet.adminKey";
  const RETRY_MS = 1000;

  // ---- small DOM helpers: every value goes in as text, never as HTML ----
  function el(tag, attrs = {}, ...children) {
    const node = document.createElement(tag);
    for (const [name, value] of Object.entries(attrs)) {
      if (name === "class") node.className = value;
      else node.setAttribute(name, value);
    }
    for (const child of children) {
      node.append(child instanceof Node ? child : String(child));
    }
    return node;
  }

  function fillBody(tableId, rows, emptyText, columns) {
    const body = document.querySelector(`#${tableId} tbody`);
    if (rows.length === 0) {
      body.replaceChildren(el("tr", {}, el("td", { class: "empty", colspan: columns }, emptyText)));
    } else {
      body.replaceChildren(...rows);
    }
  }

  function bar(done, total, wide = false) {
    const share = total > 0 ? Math.min(100, (100 * done) / total) : 0;
    const fill = el("span");
    fill.style.width = `${share.toFixed(1)}%`;
    return el("span", { class: "meter" },
      el("span", { class: wide ? "bar wide" : "bar", role: "progressbar",
        "aria-valuenow": String(done), "aria-valuemax": String(total) }, fill),
      `${done} / ${total}`);
  }

  function shareBar(share) {
    const percent = Math.max(0, Math.min(100, 100 * share));
    const fill = el("span");
    fill.style.width = `${percent.toFixed(1)}%`;
    return el("span", { class: "meter" },
      el("span", { class: "bar", role: "progressbar", "aria-valuenow": percent.toFixed(0),
        "aria-valuemax": "100" }, fill),
      `${percent.toFixed(0)} %`);
  }

  // Each usage window of an account: a bar of its share used and when it resets; `slow`
  // after its upstream sent nothing within the first-byte timeout.
  function headroom(account, nowS) {
    const parts = account.windows.map((w) => el("div", { class: "window", "data-window": w.name,
      title: w.status },
      `${w.name} `, shareBar(w.utilization),
      ` resets ${clock(w.resets_at)} (in ${duration(w.resets_at - nowS)})`));
    if (account.slow) {
      parts.push(el("span", { class: "badge slow",
        title: `${account.first_byte_timeouts} attempts abandoned for a silent upstream` }, "slow"));
    }
    return parts.length ? parts : ["–"];
  }

  // ---- formatting ----
  function duration(seconds) {
    const s = Math.max(0, Math.round(seconds));
    if (s < 60) return `${s} s`;
    if (s < 3600) return `${Math.floor(s / 60)} min ${s % 60} s`;
    return `${Math.floor(s / 3600)} h ${Math.floor((s % 3600) / 60)} min`;
  }

  function millis(ms) {
    if (ms === null || ms === undefined) return "–";
    return ms < 1000 ? `${Math.round(ms)} ms` : `${(ms / 1000).toFixed(2)} s`;
  }

  function money(usd) {
    return usd > 0 && usd < 0.01 ? `$${usd.toFixed(6)}` : `$${usd.toFixed(2)}`;
  }

  // A broken worker's reason first (its CLI cannot serve), then its last error.
  function problems(worker) {
    return [worker.broken_reason, worker.last_error].filter(Boolean).join(" · ");
  }

  function clock(epochSeconds) {
    return new Date(epochSeconds * 1000).toLocaleTimeString([], { hour12: false });
  }

  function windowName(seconds) {
    return seconds % 60 === 0 ? `last ${seconds / 60} min` : `last ${seconds} s`;
  }

  // ---- rendering one snapshot ----
  function render(view) {
    const nowS = view.at_ms / 1000;
    const t = view.totals;
    document.getElementById("totals").replaceChildren(
      el("b", {}, t.live_workers), " workers · ",
      el("b", {}, `${t.busy} / ${t.slots}`), " slots busy · ",
      el("b", {}, t.free_slots), " free");

    fillBody("requests", view.requests.map((r) => el("tr", { "data-window": r.window_s },
      el("td", {}, windowName(r.window_s)),
      el("td", { class: "num" }, r.requests_per_s.toFixed(2)),
      el("td", { class: "num ttft-p50" }, millis(r.ttft_p50_ms)),
      el("td", { class: "num ttft-p99" }, millis(r.ttft_p99_ms)),
      el("td", { class: "num" }, el("span", { class: r.errors ? "badge errors" : "" },
        `${(100 * r.error_rate).toFixed(1)} %`)),
      el("td", { class: "num requests" }, r.requests))), "no figures yet", 6);

    // A cooldown belongs to the account: a ready worker of a cooling account takes no job.
    const cooling = new Set(view.accounts.filter((a) => a.cooling).map((a) => a.name));
    const stateOf = (w) => (w.state === "ready" && cooling.has(w.account) ? "cooling" : w.state);
    fillBody("workers", view.workers.map((w) => el("tr", { "data-worker-id": w.id },
      el("td", {}, w.host),
      el("td", {}, w.account),
      el("td", {}, el("code", {}, w.id)),
      el("td", {}, el("span", { class: `badge state ${stateOf(w)}` }, stateOf(w))),
      el("td", {}, bar(w.busy, w.slots)),
      el("td", {}, w.cli_version || "–"),
      el("td", { class: "error", title: problems(w) }, problems(w)))),
      "no live worker", 7);

    fillBody("accounts", view.accounts.map((a) => el("tr", { "data-account": a.name },
      el("td", {}, a.name),
      el("td", { class: "num" }, a.workers),
      el("td", {}, bar(a.busy, a.slots)),
      el("td", {}, a.cooling
        ? el("span", { class: "badge state cooling", title: a.reason },
          `cooling until ${clock(a.cooling_until)} (in ${duration(a.cooling_until - nowS)})`)
        : el("span", { class: "badge state ready" }, "ready")),
      el("td", { class: "headroom" }, ...headroom(a, nowS)),
      el("td", { class: "num spend" }, money(a.month_usd),
        a.monthly_usd ? ` of ${money(a.monthly_usd)}` : ""))),
      "no account", 6);

    fillBody("lanes", view.lanes.map((l) => el("tr", { "data-lane": l.name },
      el("td", {}, l.name),
      el("td", { class: "num waiting" }, l.waiting),
      el("td", { class: "num" }, l.waiting ? duration(l.oldest_wait_s) : "–"))),
      "no lane", 3);

    fillBody("batches", view.batches.map((b) => el("tr", { "data-batch-id": b.id },
      el("td", {}, el("code", {}, b.id)),
      el("td", {}, b.status),
      el("td", {}, bar(b.done, b.total, true)),
      el("td", { class: "num" }, b.succeeded),
      el("td", { class: "num" }, b.errored))),
      "no batch in progress", 5);
  }

  function setConnection(state, text) {
    const node = document.getElementById("connection");
    node.dataset.state = state;
    node.textContent = text;
  }

  // ---- the admin key ----
  function askForKey(reason) {
    const dialog = document.getElementById("key-dialog");
    const input = document.getElementById("key-input");
    document.getElementById("key-reason").textContent = reason;
    input.value = "";
    return new Promise((resolve) => {
      document.getElementById("key-form").addEventListener("submit", () => {
        sessionStorage.setItem(KEY_STORAGE, input.value);
        resolve();
      }, { once: true });
      dialog.showModal();
    });
  }

  // ---- reading Server-Sent Events from a fetch response ----
  function dispatch(block, onEvent) {
    let name = "message";
    const data = [];
    for (const line of block.split("\n")) {
      if (line === "" || line.startsWith(":")) continue;
      const colon = line.indexOf(":");
      const field = colon < 0 ? line : line.slice(0, colon);
      const value = colon < 0 ? "" : line.slice(colon + 1).replace(/^ /, "");
      if (field === "event") name = value;
      else if (field === "data") data.push(value);
    }
    if (data.length) onEvent(name, data.join("\n"));
  }

  async function readEvents(response, onEvent) {
    const reader = response.body.pipeThrough(new TextDecoderStream()).getReader();
    let raw = "";
    let text = "";
    for (;;) {
      const { value, done } = await reader.read();
      if (done) return;
      raw += value;
      // A CR at the end may be the first half of a CRLF: keep it for the next read.
      const cut = raw.endsWith("\r") ? raw.length - 1 : raw.length;
      text += raw.slice(0, cut).replace(/\r\n?/g, "\n");
      raw = raw.slice(cut);
      let end;
      while ((end = text.indexOf("\n\n")) >= 0) {
        dispatch(text.slice(0, end), onEvent);
        text = text.slice(end + 2);
      }
    }
  }

  let serverFailed = false; // the last event was an error: wait before reconnecting

  function onEvent(name, data) {
    serverFailed = name === "error";
    if (name === "snapshot") {
      const view = JSON.parse(data);
      render(view);
      setConnection("live", `live · ${clock(view.at_ms / 1000)}`);
    } else if (name === "error") {
      const body = JSON.parse(data);
      setConnection("offline", body.error ? body.error.message : "error");
    }
  }

  async function follow() {
    for (;;) {
      let retryMs = RETRY_MS;
      try {
        const key = sessionStorage.getItem(KEY_STORAGE);
        const response = await fetch("dashboard/events", {
          headers: key ? { "x-api-key": key } : {},
          cache: "no-store",
        });
        if (response.status === 401 || response.status === 403) {
          await askForKey(key ? "That key is not an admin key of this fleet." : "This fleet needs an admin key.");
          continue;
        }
        if (!response.ok) throw new Error(`the front end answered ${response.status}`);
        await readEvents(response, onEvent);
        // A stream ends after a while (or on an error event): reconnect, to any front end.
        retryMs = serverFailed ? RETRY_MS : 0;
      } catch (error) {
        setConnection("offline", `reconnecting: ${error.message}`);
      }
      await new Promise((resolve) => setTimeout(resolve, retryMs));
    }
  }

  follow();
})();
