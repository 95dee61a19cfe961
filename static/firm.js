// Firm pages only (never loaded on a client's page): the folder switches'
// confirmation dialog, "Tester la connexion", selecting documents to send by hand,
// the connection form and copying a secret. Every form also works without this
// script: the server then shows its own confirmation page.
(function () {
  "use strict";
  var tokenMeta = document.querySelector("meta[name=csrf-token]");
  var csrf = tokenMeta ? tokenMeta.content : "";

  // POST to a "Tester la connexion" URL; shows the answer in `output`.
  function runTest(url, button, output) {
    button.disabled = true;
    output.className = "test-result";
    output.textContent = "Test en cours…";
    var body = new FormData();
    body.append("csrf_token", csrf);
    fetch(url, {method: "POST", body: body, credentials: "same-origin",
                headers: {"Accept": "application/json", "X-CSRFToken": csrf}})
      .then(function (r) { return r.json(); })
      .then(function (data) {
        output.textContent = data.message;
        output.className = "test-result " + (data.ok ? "ok" : "failed");
      })
      .catch(function () {
        output.textContent = "Le test n'a pas pu être lancé (réseau).";
        output.className = "test-result failed";
      })
      .then(function () { button.disabled = false; });
  }

  // --- folder switches -------------------------------------------------------------
  var dialog = document.getElementById("switch-dialog");
  var pending = null;  // the switch form waiting for confirmation

  function chosen(form) {
    var radio = form.querySelector("input[name=state]:checked");
    return radio ? radio.value : null;
  }

  function refreshApply(form) {
    var button = form.querySelector("button.apply");
    if (button) button.disabled = chosen(form) === form.dataset.current;
  }

  function restore(form) {
    var radio = form.querySelector("input[name=state][value='" + form.dataset.current + "']");
    if (radio) radio.checked = true;
    refreshApply(form);
  }

  document.querySelectorAll("form.switch").forEach(function (form) {
    refreshApply(form);
    form.addEventListener("change", function () { refreshApply(form); });
    form.addEventListener("submit", function (event) {
      if (!dialog || typeof dialog.showModal !== "function") return;  // server confirms
      if (form.querySelector("input[name=confirm]")) return;  // confirmed: let it go
      event.preventDefault();
      var state = chosen(form);
      if (!state || state === form.dataset.current) return;
      pending = form;
      document.getElementById("switch-dialog-message").textContent = form.dataset["msg" + state.charAt(0).toUpperCase() + state.slice(1)];
      var test = document.getElementById("switch-dialog-test");
      test.hidden = !(state === "on" && form.dataset.neverOk === "1");
      document.getElementById("switch-dialog-test-result").textContent = "";
      dialog.showModal();
      document.getElementById("switch-dialog-confirm").focus();
    });
  });

  if (dialog) {
    document.getElementById("switch-dialog-confirm").addEventListener("click", function () {
      if (!pending) return;
      var confirm = document.createElement("input");
      confirm.type = "hidden"; confirm.name = "confirm"; confirm.value = "1";
      pending.appendChild(confirm);
      dialog.close();
      pending.submit();
    });
    document.getElementById("switch-dialog-cancel").addEventListener("click", function () {
      dialog.close();
    });
    dialog.addEventListener("close", function () {
      // Cancelled (button or Escape): put the radios back as they were.
      if (pending && !pending.querySelector("input[name=confirm]")) {
        restore(pending);
        var focusBack = pending.querySelector("input[name=state]:checked");
        if (focusBack) focusBack.focus();
        pending = null;
      }
    });
    document.getElementById("switch-dialog-test-button").addEventListener("click", function (e) {
      if (pending) runTest(pending.dataset.testUrl, e.currentTarget,
                           document.getElementById("switch-dialog-test-result"));
    });
  }

  // --- "Tester la connexion" on the connections page ----------------------------------
  document.querySelectorAll("form.js-test").forEach(function (form) {
    form.addEventListener("submit", function (event) {
      event.preventDefault();
      runTest(form.dataset.testUrl, form.querySelector("button"), form.querySelector(".test-result"));
    });
  });

  // --- selecting documents to send by hand --------------------------------------------
  function wireSelectAll() {
    var all = document.getElementById("select-all");
    if (!all) return;
    all.hidden = false;
    all.addEventListener("change", function () {
      document.querySelectorAll("input.select-doc").forEach(function (box) { box.checked = all.checked; });
    });
  }
  wireSelectAll();
  // The upload script replaces the document table after a deposit: wire it again.
  var docs = document.getElementById("documents");
  if (docs && window.MutationObserver) {
    new MutationObserver(wireSelectAll).observe(docs.parentNode, {childList: true});
  }

  // --- the connection form: show the fields of the chosen connector ---------------------
  var integration = document.getElementById("c-integration");
  if (integration) {
    var showKind = function () {
      var option = integration.options[integration.selectedIndex];
      var kind = option ? option.dataset.kind : "";
      document.querySelectorAll(".fields-email").forEach(function (el) { el.hidden = kind !== "email"; });
      document.querySelectorAll(".fields-http").forEach(function (el) { el.hidden = kind !== "http"; });
    };
    integration.addEventListener("change", showKind);
    showKind();
  }

  // --- copying a secret shown once --------------------------------------------------------
  document.querySelectorAll("button.js-copy").forEach(function (button) {
    var field = document.getElementById(button.dataset.copy);
    if (!field || !navigator.clipboard) return;
    button.hidden = false;
    button.addEventListener("click", function () {
      navigator.clipboard.writeText(field.value).then(function () { button.textContent = "Copié"; });
    });
  });
})();
