// The drop zones of document requests: each file chosen (or photographed) is sent at
// once against its request, with a progress bar; the page reloads when all are in.
(function () {
  "use strict";
  var forms = document.querySelectorAll("form.request-drop");
  Array.prototype.forEach.call(forms, function (form) {
    var token = form.querySelector("input[name=csrf_token]").value;
    var list = form.querySelector(".upload-progress");
    var submit = form.querySelector(".request-submit");
    var maxBytes = parseInt(form.dataset.maxMb, 10) * 1024 * 1024;
    if (submit) submit.hidden = true;

    function send(file) {
      return new Promise(function (resolve) {
        var li = document.createElement("li");
        var name = document.createElement("span");
        name.textContent = file.name;
        var bar = document.createElement("progress");
        bar.max = 100; bar.value = 0;
        bar.setAttribute("aria-label", "Envoi de " + file.name);
        li.appendChild(name); li.appendChild(bar); list.appendChild(li);
        function fail(message) {
          var p = document.createElement("span");
          p.className = "error"; p.setAttribute("role", "alert"); p.textContent = message;
          bar.remove(); li.appendChild(p); resolve(false);
        }
        if (file.size > maxBytes) return fail(file.name + " : le fichier dépasse la taille maximale.");
        var data = new FormData();
        data.append("csrf_token", token);
        data.append("file", file, file.name);
        var xhr = new XMLHttpRequest();
        xhr.open("POST", form.action);
        xhr.setRequestHeader("Accept", "application/json");
        xhr.setRequestHeader("X-CSRFToken", token);
        xhr.upload.onprogress = function (e) { if (e.lengthComputable) bar.value = Math.round(100 * e.loaded / e.total); };
        xhr.onload = function () {
          if (xhr.status === 201) {
            var ok = document.createElement("span"); ok.className = "done"; ok.textContent = "Déposé";
            bar.replaceWith(ok); resolve(true);
          } else {
            var msg = "Refusé";
            try { msg = JSON.parse(xhr.responseText).error.message; } catch (e) { /* default */ }
            fail(file.name + " : " + msg);
          }
        };
        xhr.onerror = function () { fail(file.name + " : échec de l'envoi (réseau)."); };
        xhr.send(data);
      });
    }

    function sendAll(files) {
      Promise.all(Array.prototype.map.call(files, send)).then(function (results) {
        if (results.length && results.every(Boolean)) window.setTimeout(function () { window.location.reload(); }, 600);
      });
    }

    Array.prototype.forEach.call(form.querySelectorAll("input[type=file]"), function (input) {
      input.addEventListener("change", function () { if (input.files.length) sendAll(input.files); input.value = ""; });
    });
    form.addEventListener("dragover", function (e) { e.preventDefault(); form.classList.add("dragover"); });
    form.addEventListener("dragleave", function () { form.classList.remove("dragover"); });
    form.addEventListener("drop", function (e) {
      e.preventDefault(); form.classList.remove("dragover");
      if (e.dataTransfer.files.length) sendAll(e.dataTransfer.files);
    });
  });
}());
