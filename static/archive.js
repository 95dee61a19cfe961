// Copy buttons next to the e-mail drop addresses (ged.web.archive).
(function () {
  "use strict";
  function copied(button) {
    button.textContent = "Copié";
    button.classList.add("copied");
    setTimeout(function () { button.textContent = "Copier"; button.classList.remove("copied"); }, 2000);
  }
  function fallback(button) {
    // Without the Clipboard API (plain http on a LAN), select the field and copy.
    var field = button.parentNode.querySelector("input");
    field.focus();
    field.select();
    try { if (document.execCommand("copy")) { copied(button); } } catch (e) { /* the text stays selected */ }
  }
  document.addEventListener("click", function (event) {
    var button = event.target.closest("button.copy[data-copy]");
    if (!button) { return; }
    if (navigator.clipboard && window.isSecureContext) {
      navigator.clipboard.writeText(button.dataset.copy).then(function () { copied(button); },
                                                                function () { fallback(button); });
    } else {
      fallback(button);
    }
  });
})();
