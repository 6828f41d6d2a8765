// The live page of one bulk QA run (GET /ops/bulk-runs/{id}). Plain browser JavaScript, no build step.
// Credentials: a bearer token from the URL fragment (#token=…, never sent to a server) or the form, kept
// in sessionStorage. The token only goes in an Authorization header, to get a short-lived stream ticket;
// the ticket, never the token, goes in the EventSource URL.
(() => {
  const runId = document.body.dataset.runId;
  const api = `/api/v1/data-ops/bulk-runs/${runId}`;
  const TOKEN_KEY = 'ferry.token';
  const BACKOFF_MS = [1000, 2000, 5000, 10000];
  const TERMINAL = {
    bulk_run_completed: 'Completed',
    bulk_run_failed: 'Failed',
    bulk_run_interrupted: 'Interrupted (its workers stopped; start a new run)',
    bulk_run_cancelled: 'Cancelled',
  };
  const $ = (id) => document.getElementById(id);

  let run = null;
  let lastEventId = null;
  let source = null;
  let attempt = 0;
  let connections = 0;
  let finished = false;
  let retryTimer = null;

  function takeToken() {
    const match = /(?:^#|&)token=([^&]+)/.exec(window.location.hash);
    if (match) {
      sessionStorage.setItem(TOKEN_KEY, decodeURIComponent(match[1]));
      // Out of the address bar and the history as soon as it is read.
      history.replaceState(null, '', window.location.pathname + window.location.search);
    }
    return sessionStorage.getItem(TOKEN_KEY);
  }

  function setConnection(state, text) {
    const el = $('connection');
    el.dataset.state = state;
    el.dataset.connections = String(connections);
    el.textContent = text;
  }

  function showError(text) {
    const el = $('error');
    el.hidden = !text;
    el.textContent = text || '';
  }

  function render(next) {
    // Every frame carries the whole run; a resumed stream may repeat an older one: keep the highest version.
    if (run && next.version < run.version) return;
    run = next;
    $('run').hidden = false;
    for (const key of [
      'total_count',
      'processed_count',
      'passed_count',
      'qa_failed_count',
      'processing_failed_count',
      'skipped_count',
    ]) {
      $(key).textContent = String(run[key]);
    }
    const fraction = run.total_count > 0 ? run.processed_count / run.total_count : run.status === 'completed' ? 1 : 0;
    $('progress').value = fraction;
    $('percent').textContent = `${Math.floor(fraction * 100)} %`;
    $('status').textContent = run.status;
    $('status').dataset.status = run.status;
    const body = $('failures').tBodies[0];
    const failures = Object.entries(run.failures_by_check).sort((a, b) => b[1] - a[1] || a[0].localeCompare(b[0]));
    if (failures.length === 0) {
      // An empty table reads as "not loaded"; say there is nothing (yet).
      const tr = document.createElement('tr');
      tr.className = 'none';
      const td = document.createElement('td');
      td.colSpan = 2;
      td.textContent = ['completed', 'failed', 'interrupted', 'cancelled'].includes(run.status)
        ? 'No check failed.'
        : 'No check has failed so far.';
      tr.append(td);
      body.replaceChildren(tr);
      return;
    }
    body.replaceChildren(
      ...failures.map(([check, count]) => {
        const tr = document.createElement('tr');
        const name = document.createElement('td');
        name.textContent = check;
        const n = document.createElement('td');
        n.textContent = String(count);
        tr.append(name, n);
        return tr;
      }),
    );
  }

  function onFrame(event) {
    attempt = 0;
    if (event.lastEventId) lastEventId = event.lastEventId;
    render(JSON.parse(event.data));
    const terminal = TERMINAL[event.type];
    if (terminal) {
      finished = true;
      source.close();
      source = null;
      const el = $('terminal');
      el.hidden = false;
      el.dataset.event = event.type;
      el.textContent = `${terminal}${run.error_message ? `: ${run.error_message}` : ''}`;
      setConnection('closed', 'Finished');
    }
  }

  function scheduleReconnect() {
    if (finished || retryTimer) return;
    const delay = BACKOFF_MS[Math.min(attempt, BACKOFF_MS.length - 1)];
    attempt++;
    setConnection('reconnecting', `Connection lost; reconnecting in ${delay / 1000} s…`);
    retryTimer = setTimeout(() => {
      retryTimer = null;
      void connect();
    }, delay);
  }

  async function connect() {
    const token = sessionStorage.getItem(TOKEN_KEY);
    if (!token) {
      $('token-form').hidden = false;
      return;
    }
    setConnection('connecting', 'Connecting…');
    let res;
    try {
      // A fresh ticket for every connection: an old one may have expired.
      res = await fetch(`${api}/events-ticket`, { method: 'POST', headers: { authorization: `Bearer ${token}` } });
    } catch {
      scheduleReconnect();
      return;
    }
    if (res.status === 401 || res.status === 403) {
      sessionStorage.removeItem(TOKEN_KEY);
      $('token-form').hidden = false;
      setConnection('idle', 'Not connected');
      showError('The token was refused; enter another.');
      return;
    }
    if (res.status === 404) {
      setConnection('idle', 'Not connected');
      showError('No such run in your organization.');
      return;
    }
    if (!res.ok) {
      scheduleReconnect();
      return;
    }
    showError('');
    const ticket = await res.json();
    const url = new URL(ticket.events_url, window.location.href);
    if (lastEventId) url.searchParams.set('last_event_id', lastEventId);
    source = new EventSource(url.toString());
    source.addEventListener('open', () => {
      connections++;
      setConnection('open', connections > 1 ? `Live (reconnected ${connections - 1}×)` : 'Live');
    });
    for (const name of ['bulk_run_snapshot', 'bulk_run_progress', ...Object.keys(TERMINAL)]) {
      source.addEventListener(name, onFrame);
    }
    source.addEventListener('error', () => {
      // The browser would retry with the same URL (and an expiring ticket): reconnect ourselves instead.
      if (!source) return;
      source.close();
      source = null;
      scheduleReconnect();
    });
  }

  $('token-form').addEventListener('submit', (event) => {
    event.preventDefault();
    sessionStorage.setItem(TOKEN_KEY, $('token').value.trim());
    $('token').value = '';
    $('token-form').hidden = true;
    showError('');
    void connect();
  });

  takeToken();
  void connect();
})();
