// Filing on the folder page (firm users): drag a document row onto a folder of the
// tree to move it there (the same route as the « Déplacer vers… » form), and the
// « Tout sélectionner » box for everyone. Everything works without this script.
(function () {
  "use strict";
  var all = document.getElementById("select-all");
  if (all && !all.dataset.wired) {
    all.dataset.wired = "1";
    all.hidden = false;
    all.addEventListener("change", function () {
      document.querySelectorAll("input.select-doc").forEach(function (box) { box.checked = all.checked; });
    });
  }
  var token = document.querySelector('meta[name="csrf-token"]');
  var dragged = null;
  document.addEventListener("dragstart", function (event) {
    var row = event.target.closest && event.target.closest("tr[data-document-id][draggable]");
    if (!row) return;
    dragged = row.dataset.documentId;
    event.dataTransfer.setData("text/plain", dragged);
    event.dataTransfer.effectAllowed = "move";
  });
  document.querySelectorAll(".folder-tree a[data-folder-id]").forEach(function (link) {
    link.addEventListener("dragover", function (event) {
      if (!dragged) return;
      event.preventDefault();
      link.classList.add("drop-target");
    });
    link.addEventListener("dragleave", function () { link.classList.remove("drop-target"); });
    link.addEventListener("drop", function (event) {
      event.preventDefault();
      link.classList.remove("drop-target");
      var id = dragged || event.dataTransfer.getData("text/plain");
      dragged = null;
      if (!id) return;
      var body = new FormData();
      body.append("folder_id", link.dataset.folderId);
      fetch("/documents/" + encodeURIComponent(id) + "/deplacer", {
        method: "POST", body: body, credentials: "same-origin",
        headers: {"Accept": "application/json", "X-CSRFToken": token ? token.content : ""}
      }).then(function (r) { return r.json().then(function (data) { return [r.ok, data]; }); })
        .then(function (pair) {
          var status = document.getElementById("filing-status");
          if (status) status.textContent = pair[0] ? pair[1].message : pair[1].error.message;
          if (pair[0]) {
            var row = document.querySelector('tr[data-document-id="' + id + '"]');
            if (row) row.remove();
          }
        });
    });
  });
})();
