// Keeps the queue page live: every few seconds the part inside #live is fetched again and swapped in.
// A signed-out session (401) reloads the page, which then shows the sign-in page.
(function () {
  const live = document.getElementById("live");
  if (!live) return;
  const every = Number(live.dataset.refresh) || 2000;
  async function refresh() {
    try {
      const response = await fetch(live.dataset.src, {credentials: "same-origin", cache: "no-store"});
      if (response.status === 401) { window.location.reload(); return; }
      if (response.ok) live.innerHTML = await response.text();
    } catch (e) { /* the server is restarting: try again next time */ }
    setTimeout(refresh, every);
  }
  setTimeout(refresh, every);
})();
