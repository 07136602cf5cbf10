// camdock console: the one script (CSP: script-src 'self'). The pages work without it; with it
// the bays table follows the daemon live (server-sent events) and videos play in the page.
"use strict";
document.addEventListener("DOMContentLoaded", () => {
  const table = document.getElementById("bays");
  if (table && window.EventSource) {
    const source = new EventSource(table.dataset.stream);
    source.onmessage = (event) => {
      const body = table.querySelector("tbody");
      body.replaceChildren();
      for (const b of JSON.parse(event.data)) {
        const row = document.createElement("tr");
        row.dataset.bay = b.bay;
        const pct = b.bytes_total ? (100 * (b.bytes_done || 0) / b.bytes_total).toFixed(1) + "%" : "—";
        for (const [text, cls, isolate] of [[b.bay], [b.phase_text || b.phase, "phase phase-" + b.phase],
                                            [b.camera || "—"], [b.officer || "—", "", true], [pct], [b.message || ""]]) {
          const cell = document.createElement("td");
          if (isolate) {  // a name in <bdi>: its direction never reorders the cells beside it
            const bdi = document.createElement("bdi");
            bdi.textContent = text;
            cell.appendChild(bdi);
          } else {
            cell.textContent = text;
          }
          if (cls) cell.className = cls;
          row.appendChild(cell);
        }
        body.appendChild(row);
      }
    };
  }
  for (const link of document.querySelectorAll("a[data-video]")) {
    link.addEventListener("click", (event) => {
      event.preventDefault();
      const video = document.createElement("video");
      video.src = link.dataset.video;
      video.controls = true;
      video.autoplay = true;
      video.muted = true;
      document.getElementById("player").replaceChildren(video);
    });
  }
});
