// newsletter preview: reload the page when the issue is rebuilt, keeping each frame's scroll.
// Loaded by the page around the frames only, never by email.html (on disk or served): a long
// poll on data-reload answers as soon as the version moves away from data-version.
(() => {
  const script = document.currentScript;
  const version = script.dataset.version;
  const endpoint = script.dataset.reload;
  const KEY = "newsletter-preview-scroll";
  const frames = () => [...document.querySelectorAll("iframe[data-frame]")];
  window.addEventListener("load", () => {
    let saved = null;
    try { saved = JSON.parse(sessionStorage.getItem(KEY) || "null"); } catch (e) {}
    sessionStorage.removeItem(KEY);
    if (!saved) return;
    window.scrollTo(0, saved.page || 0);
    for (const f of frames()) {
      try { f.contentWindow.scrollTo(0, saved[f.id] || 0); } catch (e) {}
    }
  });
  const save = () => {
    const s = {page: window.scrollY};
    for (const f of frames()) {
      try { s[f.id] = f.contentWindow.scrollY; } catch (e) {}
    }
    sessionStorage.setItem(KEY, JSON.stringify(s));
  };
  const poll = () => {
    fetch(endpoint + "?v=" + encodeURIComponent(version), {cache: "no-store"})
      .then((r) => r.json())
      .then((d) => {
        if (d.version !== version) { save(); location.reload(); } else { poll(); }
      })
      .catch(() => setTimeout(poll, 1000));  // the server is restarting, or gone
  };
  poll();
})();
