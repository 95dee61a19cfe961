// « Remplacer »: the native file input is hidden behind its French label (the browser's
// own button speaks the browser's language); show the chosen file's name in the label.
document.querySelectorAll(".replace-form input[type=file]").forEach(function (input) {
  input.addEventListener("change", function () {
    var label = input.form.querySelector("label.replace-choose .chosen");
    if (label) {
      label.textContent = input.files.length ? input.files[0].name : "aucun fichier choisi";
    }
  });
});
