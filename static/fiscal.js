// The fiscal-year run's progress bar: asks for the task's state until it is done.
(function () {
  "use strict";
  var box = document.getElementById("fiscal-task");
  if (!box) return;
  var bar = document.getElementById("fiscal-progress");
  var state = document.getElementById("fiscal-state");
  var fr = new Intl.NumberFormat("fr-FR");
  function poll() {
    fetch(box.dataset.statusUrl, {headers: {"Accept": "application/json"}, credentials: "same-origin"})
      .then(function (r) { return r.json(); })
      .then(function (t) {
        if (t.total) { bar.max = t.total; bar.value = t.done; }
        if (t.status === "done") {
          bar.max = 1; bar.value = 1;
          state.textContent = "Terminé.";
          var res = document.getElementById("fiscal-result");
          res.hidden = false;
          res.textContent = fr.format(t.result.companies) + " entreprise(s) · " +
            fr.format(t.result.folders_created) + " dossier(s) créé(s) · " +
            fr.format(t.result.switches_carried) + " envoi(s) automatique(s) reporté(s)";
        } else if (t.status === "failed") {
          state.textContent = "Échec : " + (t.error || "");
        } else {
          state.textContent = "En cours… " + fr.format(t.done) + " entreprise(s) traitée(s)" +
            (t.total ? " sur " + fr.format(t.total) : "") + ".";
          window.setTimeout(poll, 1000);
        }
      });
  }
  if (state.textContent.trim() !== "Terminé.") poll();
})();
